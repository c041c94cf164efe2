//! Fuzzes event intake: any bytes either fail to parse, fail validation
//! naming a field, or run through every detector kind without a panic,
//! with scores in [0, 1].
//!
//! Run from crates/llm-sentinel: `cargo +nightly fuzz run telemetry_event`.

#![no_main]

use std::sync::{Arc, LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use llm_sentinel::event::TelemetryEvent;
use llm_sentinel::{ManualClock, Sentinel, SentinelConfig};

static SENTINEL: LazyLock<Mutex<Sentinel>> = LazyLock::new(|| {
    let config = SentinelConfig::from_yaml(
        r#"
detectors:
  - id: cost
    type: statistical
    config: {metric: cost, min_samples: 2}
  - id: rate
    type: statistical
    config: {metric: cost_per_minute, strategy: mad, min_samples: 2}
  - id: rule
    type: rule
    config: {expression: 'count(1m) > 3 || sum(data.cost, 1h) > 10 || contains(lower(data.prompt), "ignore")'}
  - id: switching
    type: behavioral
    config: {kind: model_switching, window_size: 3}
  - id: tools
    type: behavioral
    config: {kind: tool_mix, min_samples: 2, window_size: 3}
  - id: ml
    type: ml
    threshold: 0.5
  - id: entropy
    type: entropy
    config: {baseline_size: 10, window_size: 5}
"#,
    )
    .unwrap();
    Mutex::new(Sentinel::new(config, Arc::new(ManualClock::new(1_764_000_000_000))).unwrap())
});

fuzz_target!(|data: &[u8]| {
    let Ok(e) = serde_json::from_slice::<TelemetryEvent>(data) else { return };
    if let Err(err) = e.validate() {
        assert!(!err.field.is_empty());
        return;
    }
    let mut s = SENTINEL.lock().unwrap();
    for o in s.process(&e).into_iter().chain(s.tick()) {
        assert!((0.0..=1.0).contains(&o.anomaly.score), "score {}", o.anomaly.score);
    }
});
