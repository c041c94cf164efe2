//! Latency percentiles of `analyze_input` / `analyze_context` /
//! `validate_output` on the bench texts (criterion reports means; the targets are p50 and p99).
//! `+classifier` rows turn the classifier on; the `-input_data` row turns
//! off the secret and PII findings on prompts; `~` rows turn off the
//! free-text entity types of `validate_output` (names, addresses, dates of
//! birth), to show what they cost; the `^` row turns off the learned
//! harmful-response layer.
//!
//! ```text
//! cargo run --release -p llm-security --example latency
//! ```

use std::time::Instant;

use llm_security::config::{OutputValidationConfig, PiiConfig};
use llm_security::{ClassifierConfig, ContextKind, InputDataConfig, SecurityConfig, SecurityEngine};

#[path = "../benches/support/corpus.rs"]
mod corpus;

fn percentiles(mut ns: Vec<u128>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

fn main() -> Result<(), llm_security::Error> {
    let engine = SecurityEngine::new();
    let with_classifier = SecurityEngine::with_config(
        SecurityConfig::new().with_classifier(ClassifierConfig { enabled: true, threshold: None }),
    );
    let without_data = SecurityEngine::with_config(SecurityConfig::new().with_input_data(InputDataConfig::none()));
    let no_entities = PiiConfig {
        person: false,
        location: false,
        organization: false,
        street_address: false,
        date_of_birth: false,
        ..PiiConfig::default()
    };
    let mut without_entities = SecurityConfig::new();
    without_entities.output = OutputValidationConfig { pii_types: no_entities, ..OutputValidationConfig::default() };
    let without_entities = SecurityEngine::with_config(without_entities);
    let mut without_model = SecurityConfig::new();
    without_model.output.harmful.model = false;
    let without_model = SecurityEngine::with_config(without_model);
    /// Which engine call a case times.
    #[derive(Clone, Copy)]
    enum Call {
        Input,
        Context,
        Output,
    }
    let cases = [
        ("analyze_input benign 50 B", corpus::prose(50), Call::Input, 20_000),
        ("analyze_input benign 1 KiB", corpus::prose(1024), Call::Input, 20_000),
        ("analyze_input benign 32 KiB", corpus::prose(32 * 1024), Call::Input, 1_000),
        ("analyze_input attack 1 KiB", corpus::attack_prompt(), Call::Input, 20_000),
        ("-input_data benign 1 KiB", corpus::prose(1024), Call::Input, 20_000),
        ("analyze_context email 1 KiB", corpus::prose(1024), Call::Context, 20_000),
        ("+classifier benign 1 KiB", corpus::prose(1024), Call::Input, 20_000),
        ("+classifier benign 32 KiB", corpus::prose(32 * 1024), Call::Input, 1_000),
        ("validate_output 1 KiB", corpus::completion(), Call::Output, 20_000),
        ("~validate_output 1 KiB", corpus::completion(), Call::Output, 20_000),
        ("^validate_output 1 KiB", corpus::completion(), Call::Output, 20_000),
        ("validate_output names 1 KiB", corpus::completion_with_names(), Call::Output, 20_000),
        ("~validate_output names 1 KiB", corpus::completion_with_names(), Call::Output, 20_000),
    ];
    println!("{:32} {:>10} {:>10} {:>10}", "call", "p50 µs", "p99 µs", "max µs");
    for (name, text, call, n) in cases {
        let e = match name.as_bytes()[0] {
            b'+' => &with_classifier,
            b'-' => &without_data,
            b'~' => &without_entities,
            b'^' => &without_model,
            _ => &engine,
        };
        let run = |t: &str| match call {
            Call::Input => e.analyze_input_sync(t),
            Call::Context => e.analyze_context_sync(t, ContextKind::Email),
            Call::Output => e.validate_output_sync(t),
        };
        for _ in 0..n / 10 {
            run(&text)?;
        }
        let mut ns = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            std::hint::black_box(run(std::hint::black_box(&text))?);
            ns.push(t0.elapsed().as_nanos());
        }
        let (p50, p99, max) = percentiles(ns);
        println!("{name:32} {p50:10.1} {p99:10.1} {max:10.1}");
    }
    Ok(())
}
