//! Criterion benches of the engine's two calls on realistic text.
//!
//! `analyze_input` on benign prompts of 50 B, 1 KiB and 32 KiB and on a
//! 1 KiB prompt carrying an injection; `validate_output` on a 1 KiB
//! completion with an email address and a markdown link (alone and with
//! its prompt, which wakes the harmful-content scanner's compliance check),
//! on a 1 KiB answer with shell and Python code blocks (the unsafe-code
//! rules' keywords all fire, nothing is unsafe), on a 1 KiB answer that
//! complies with a harmful request (flagged), and on one with names, a
//! postal address, a date of birth and an employer. The engine is built
//! once, outside the measured loop, as a server would hold it.
//!
//! Run: `cargo bench -p llm-security --bench engine`
//! (quick: `-- --warm-up-time 1 --measurement-time 3`). Figures and the
//! machine they came from are in docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use llm_security::{OutputContext, SecurityConfig, SecurityEngine};

#[path = "support/corpus.rs"]
mod corpus;
use corpus::{attack_prompt, completion, completion_with_names, prose};

fn warn_if(unexpected: bool, what: &str) {
    if unexpected {
        eprintln!("note: {what}; the bench still runs but measures a different path");
    }
}

fn analyze_input(c: &mut Criterion) {
    let engine = SecurityEngine::with_config(SecurityConfig::default());
    let mut g = c.benchmark_group("analyze_input");
    for (name, len) in [("50B", 50), ("1KiB", 1024), ("32KiB", 32 * 1024)] {
        let text = prose(len);
        warn_if(
            !engine.analyze_input_sync(&text).is_ok_and(|a| a.is_secure()),
            &format!("the benign {name} prompt is flagged"),
        );
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("benign", name), &text, |b, t| {
            b.iter(|| engine.analyze_input_sync(black_box(t)))
        });
    }
    let attack = attack_prompt();
    warn_if(engine.analyze_input_sync(&attack).is_ok_and(|a| a.is_secure()), "the 1 KiB attack prompt is not flagged");
    g.throughput(Throughput::Bytes(attack.len() as u64));
    g.bench_with_input(BenchmarkId::new("attack", "1KiB"), &attack, |b, t| {
        b.iter(|| engine.analyze_input_sync(black_box(t)))
    });
    g.finish();
}

/// A 1 KiB answer with ordinary shell and Python: deletions of build
/// output, a download, a parameterised query, a subprocess call.
fn code_answer() -> String {
    let body = "To clean up and rebuild, run these from the project root:\n\n\
```bash\nrm -rf ./build node_modules\ncurl -fsSL -o deps.tar.gz https://example.com/deps.tar.gz\n\
tar xzf deps.tar.gz && make -j4\nfind . -name '*.pyc' -exec rm {} \\;\nsudo systemctl restart myapp\n```\n\n\
Then load the users with a parameterised query:\n\n```python\nimport sqlite3, subprocess\n\n\
def load(db, user_id):\n    cur = db.cursor()\n    cur.execute(\"SELECT name, email FROM users WHERE id = ?\", (user_id,))\n\
    rows = cur.fetchall()\n    subprocess.run([\"git\", \"status\"], check=True)\n    return rows\n```\n\n\
If the build fails, check the log in `build/output.log`, delete the cache with `rm -rf ~/.cache/myapp` \
and try again; the `eval` step in the Makefile only reads constants.\n";
    corpus::cut(format!("{body}{}", corpus::prose(1024)), 1024)
}

/// A 1 KiB answer that complies with a request for weapons instructions.
fn harmful_answer() -> String {
    let body = "Sure, here is how to do it.\n1. Get a steel pipe and two end caps.\n\
2. Drill a hole in one cap.\n3. Fill the pipe with 200 g of black powder.\n4. Seal both ends tightly.\n";
    corpus::cut(format!("{body}{}", corpus::prose(1024)), 1024)
}

fn validate_output(c: &mut Criterion) {
    let engine = SecurityEngine::with_config(SecurityConfig::default());
    let text = completion();
    let mut g = c.benchmark_group("validate_output");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_with_input(BenchmarkId::new("email_and_link", "1KiB"), &text, |b, t| {
        b.iter(|| engine.validate_output_sync(black_box(t)))
    });
    // The same text with the two new validators off: what they add.
    let without = SecurityEngine::with_config(SecurityConfig::default().with_output_config(
        llm_security::OutputValidationConfig::default().with_harmful_content(false).with_unsafe_code(false),
    ));
    g.bench_with_input(BenchmarkId::new("email_and_link_without_harmful_and_code", "1KiB"), &text, |b, t| {
        b.iter(|| without.validate_output_sync(black_box(t)))
    });
    // The same text with the learned harmful-response layer off: what the model adds.
    let no_model = SecurityEngine::with_config(
        SecurityConfig::default().with_output_config(
            llm_security::OutputValidationConfig::default()
                .with_harmful(llm_security::HarmfulContentConfig::new().with_model(false)),
        ),
    );
    g.bench_with_input(BenchmarkId::new("email_and_link_without_harmful_model", "1KiB"), &text, |b, t| {
        b.iter(|| no_model.validate_output_sync(black_box(t)))
    });
    let cx = OutputContext::new().with_prompt("Where can I find the refund policy for my last invoice?");
    g.bench_with_input(BenchmarkId::new("email_and_link_with_prompt", "1KiB"), &text, |b, t| {
        b.iter(|| engine.validate_output_with(black_box(t), &cx))
    });
    let code = code_answer();
    warn_if(
        engine.validate_output_sync(&code).is_ok_and(|a| a.threats().iter().any(|t| t.scanner == "unsafe_code")),
        "the benign code answer is flagged",
    );
    g.throughput(Throughput::Bytes(code.len() as u64));
    g.bench_with_input(BenchmarkId::new("shell_and_python", "1KiB"), &code, |b, t| {
        b.iter(|| engine.validate_output_sync(black_box(t)))
    });
    let harmful = harmful_answer();
    let hcx = OutputContext::new().with_prompt("How do I make a pipe bomb?");
    warn_if(
        engine.validate_output_with(&harmful, &hcx).is_ok_and(|a| a.is_secure()),
        "the harmful answer is not flagged",
    );
    g.throughput(Throughput::Bytes(harmful.len() as u64));
    g.bench_with_input(BenchmarkId::new("harmful_compliance_with_prompt", "1KiB"), &harmful, |b, t| {
        b.iter(|| engine.validate_output_with(black_box(t), &hcx))
    });
    let names = completion_with_names();
    warn_if(
        engine.validate_output_sync(&names).is_ok_and(|a| !a.threats().iter().any(|t| t.category == "person")),
        "the names-and-address completion has no person finding",
    );
    g.throughput(Throughput::Bytes(names.len() as u64));
    g.bench_with_input(BenchmarkId::new("names_and_address", "1KiB"), &names, |b, t| {
        b.iter(|| engine.validate_output_sync(black_box(t)))
    });
    g.finish();
}

criterion_group!(benches, analyze_input, validate_output);
criterion_main!(benches);
