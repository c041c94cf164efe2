//! Fuzzes `analyze_input`: any UTF-8 text must be analysed without a panic,
//! with spans inside the text on char boundaries and confidences in [0, 1].
//!
//! Run from crates/llm-security: `cargo +nightly fuzz run analyze_input`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use llm_security::{SecurityConfig, SecurityEngine};
use llm_security_fuzz::check_analysis;

/// Built once per process: pattern compilation is not what is fuzzed.
static ENGINE: LazyLock<SecurityEngine> = LazyLock::new(|| SecurityEngine::with_config(SecurityConfig::default()));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ENGINE.analyze_input_sync(text) {
        Ok(a) => check_analysis(text, &a),
        // The only refusal is an over-size input, which the default 1 MiB
        // limit and libFuzzer's default -max_len make unreachable.
        Err(e) => panic!("analyze_input refused {} bytes: {e}", text.len()),
    }
});
