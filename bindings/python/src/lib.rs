//! Python bindings of the llm-security engine: the native module
//! `llm_security._native` of the `llm-security` Python package.
//!
//! The classes mirror the Rust names (`SecurityConfig`, `SecurityEngine`,
//! `Analysis`, `Threat`, `Sanitized`, `Redaction`, `OutputStream`,
//! `StreamStep`); the pure-Python package
//! in `python/llm_security/` re-exports them and adds the asyncio helpers.
//! Scans run with the GIL released, so Python threads scan in parallel.
//! Spans are given in Python string indices (code points), with the
//! engine's UTF-8 byte offsets beside them.

use pyo3::prelude::*;

mod config;
mod engine;
mod errors;
mod offsets;
mod results;
mod stream;

/// The native module. Its classes are re-exported by `llm_security`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<config::PySecurityConfig>()?;
    m.add_class::<engine::PySecurityEngine>()?;
    m.add_class::<results::PyAnalysis>()?;
    m.add_class::<results::PyThreat>()?;
    m.add_class::<results::PyRedaction>()?;
    m.add_class::<results::PySanitized>()?;
    m.add_class::<stream::PyOutputStream>()?;
    m.add_class::<stream::PyStreamStep>()?;
    m.add("LlmSecurityError", py.get_type::<errors::LlmSecurityError>())?;
    m.add("InputTooLarge", py.get_type::<errors::InputTooLarge>())?;
    m.add("ConfigError", py.get_type::<errors::ConfigError>())?;
    m.add("CONTEXT_KINDS", engine::context_kind_names())?;
    m.add("THREAT_TYPES", llm_security::ThreatType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
