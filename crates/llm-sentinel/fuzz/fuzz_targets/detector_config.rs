//! Fuzzes detector configs: any YAML either loads or is an error naming a
//! path, never a panic; what loads builds a Sentinel.
//!
//! Run from crates/llm-sentinel: `cargo +nightly fuzz run detector_config`.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use llm_sentinel::{ManualClock, Sentinel, SentinelConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else { return };
    match SentinelConfig::from_yaml(yaml) {
        Err(e) => assert!(!e.path.is_empty()),
        Ok(config) => {
            // Plugins start processes: not what is fuzzed here.
            if config.detectors.iter().any(|d| d.plugin.is_some()) {
                return;
            }
            let _ = Sentinel::new(config, Arc::new(ManualClock::new(0)));
        }
    }
});
