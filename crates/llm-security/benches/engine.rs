//! Criterion benches of the engine's two calls on realistic text.
//!
//! `analyze_input` on benign prompts of 50 B, 1 KiB and 32 KiB and on a
//! 1 KiB prompt carrying an injection; `validate_output` on a 1 KiB
//! completion with an email address and a markdown link, and on one with
//! names, a postal address, a date of birth and an employer. The engine is
//! built once, outside the measured loop, as a server would hold it.
//!
//! Run: `cargo bench -p llm-security --bench engine`
//! (quick: `-- --warm-up-time 1 --measurement-time 3`). Figures and the
//! machine they came from are in docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use llm_security::{SecurityConfig, SecurityEngine};

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

fn validate_output(c: &mut Criterion) {
    let engine = SecurityEngine::with_config(SecurityConfig::default());
    let text = completion();
    let mut g = c.benchmark_group("validate_output");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_with_input(BenchmarkId::new("email_and_link", "1KiB"), &text, |b, t| {
        b.iter(|| engine.validate_output_sync(black_box(t)))
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
