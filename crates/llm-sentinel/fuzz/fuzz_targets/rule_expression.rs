//! Fuzzes the rule language: any text either parses or is an error with an
//! offset inside it; what parses renders back to itself, builds a detector,
//! and evaluates on events without a panic.
//!
//! Run from crates/llm-sentinel: `cargo +nightly fuzz run rule_expression`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_sentinel::Detector;
use llm_sentinel::detectors::rule::{RuleConfig, RuleDetector, parse};
use llm_sentinel::event::TelemetryEvent;

fn events() -> Vec<TelemetryEvent> {
    (0..5)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "event_id": format!("e{i}"), "timestamp": format!("2026-11-26T10:00:0{i}Z"),
                "event_type": if i == 3 { "llm.error" } else { "llm.response" },
                "application_id": "app", "data": {"model": "gpt-4o", "cost": 0.5 * i as f64, "prompt": "Hello World"},
                "metadata": {"user_id": "u", "tier": "gold", "score": 3}
            }))
            .unwrap()
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match parse(src) {
        Err(e) => assert!(e.offset <= src.len(), "offset {} past {} bytes", e.offset, src.len()),
        Ok(expr) => {
            let rendered = expr.to_string();
            assert_eq!(parse(&rendered).ok(), Some(expr), "render did not round-trip: {rendered}");
            let config: RuleConfig = serde_json::from_value(serde_json::json!({"expression": src})).unwrap();
            if let Ok(mut d) = RuleDetector::new("fuzz", llm_sentinel::Severity::Warning, config) {
                let mut out = Vec::new();
                for e in events() {
                    d.observe(&e, e.millis(), &mut out);
                }
                for f in &out {
                    assert!((0.0..=1.0).contains(&f.score), "score {}", f.score);
                }
            }
        }
    }
});
