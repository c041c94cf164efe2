//! Fuzzes the linter: any UTF-8 text, read as a text template, a YAML or a
//! JSON prompt config (the first byte picks), must lint without a panic,
//! with every finding on a line of the file and the SARIF log built.
//!
//! Run from crates/llmsec-lint: `cargo +nightly fuzz run lint`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use llmsec_lint::{LintConfig, Linter, report};

/// Built once per process: the engine's pattern compilation is not what
/// is fuzzed.
static LINTER: LazyLock<Linter> = LazyLock::new(|| match Linter::new(LintConfig::default(), None) {
    Ok(l) => l,
    Err(e) => panic!("the default linter does not build: {e}"),
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = match pick % 4 {
        0 => "t.txt",
        1 => "t.j2",
        2 => "t.yaml",
        _ => "t.json",
    };
    let file = LINTER.lint(path, text);
    let lines = text.split('\n').count().max(1);
    for f in &file.findings {
        assert!(
            f.start.line >= 1 && f.start.line <= lines && f.start.column >= 1,
            "{}: finding at {}:{} in a file of {lines} lines",
            f.rule.id,
            f.start.line,
            f.start.column
        );
    }
    let _ = report::sarif(&[file], "0");
});
