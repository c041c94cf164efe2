//! docs/SECURITY_MODEL.md's flag table is the code's: every switch, what
//! enforces it, and the test that shows it. Run with `LLMSEC_BLESS=1` to
//! rewrite the table after changing a disposition.

use llm_security::SecurityProfile;
use llm_security::model::{Disposition, disposition};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/SECURITY_MODEL.md");
const BEGIN: &str = "<!-- flag-table:begin -->\n";
const END: &str = "<!-- flag-table:end -->";

fn table() -> String {
    let mut out = String::from("| Switch | Enforced by | Test |\n|---|---|---|\n");
    for (path, _) in SecurityProfile::every_flag(true).flags() {
        let (what, test) = match disposition(&path) {
            Some(d @ Disposition::Engine(_)) => {
                (d.to_string(), "`model_wiring::every_engine_switch_flips_its_controls`")
            }
            Some(d @ Disposition::Server(_)) => (d.to_string(), "`model_refusals::server_switches_are_requirements`"),
            Some(d @ Disposition::Refused(_)) => (d.to_string(), "`model_refusals::every_refused_switch_is_named`"),
            None => ("**none**".to_owned(), "-"),
        };
        out.push_str(&format!("| `{path}` | {what} | {test} |\n"));
    }
    out
}

#[test]
fn docs_flag_table_is_current() {
    let doc = std::fs::read_to_string(DOC).expect("docs/SECURITY_MODEL.md is readable");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/SECURITY_MODEL.md has no flag-table markers")
    };
    let current = &doc[b + BEGIN.len()..e];
    let want = table();
    if current != want {
        if std::env::var_os("LLMSEC_BLESS").is_some() {
            let updated = format!("{}{want}{}", &doc[..b + BEGIN.len()], &doc[e..]);
            std::fs::write(DOC, updated).expect("docs/SECURITY_MODEL.md is writable");
        } else {
            panic!("docs/SECURITY_MODEL.md's flag table is stale: rerun with LLMSEC_BLESS=1");
        }
    }
}
