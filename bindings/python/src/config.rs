//! `SecurityConfig`: the engine's configuration, built from keyword
//! arguments (the keys of the Rust config files) or read from a file.

use std::path::PathBuf;

use llm_security::SecurityConfig;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{config_error, to_py};

/// The engine's configuration. Keyword arguments are the keys of the
/// TOML/YAML/JSON config files the Rust engine reads (nested tables as
/// dicts); an unknown key raises ConfigError naming it.
#[pyclass(name = "SecurityConfig", module = "llm_security", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PySecurityConfig {
    pub(crate) inner: SecurityConfig,
}

#[pymethods]
impl PySecurityConfig {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<PySecurityConfig> {
        let json = match kwargs {
            Some(d) => dumps_config(py, d.as_any())?,
            None => "{}".to_owned(),
        };
        parse_json(py, &json)
    }

    /// Reads a `.toml`, `.yaml`/`.yml` or `.json` config file, the same
    /// files `SecurityConfig::from_path` reads in Rust.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<PySecurityConfig> {
        let inner = py.detach(move || SecurityConfig::from_path(&path)).map_err(|e| to_py(py, e))?;
        Ok(PySecurityConfig { inner })
    }

    /// The config from a dict shaped like the config files.
    #[staticmethod]
    fn from_dict(py: Python<'_>, data: &Bound<'_, PyDict>) -> PyResult<PySecurityConfig> {
        parse_json(py, &dumps_config(py, data.as_any())?)
    }

    /// Every setting, as a dict shaped like the config files (defaults
    /// included): `SecurityConfig.from_dict(c.to_dict()) == c`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = serde_json::to_string(&self.inner).map_err(|e| config_error(e.to_string()))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Run the prompt-injection rules on inputs.
    #[getter]
    fn prompt_injection_detection(&self) -> bool {
        self.inner.prompt_injection_detection
    }

    /// Run the jailbreak rules on inputs.
    #[getter]
    fn jailbreak_detection(&self) -> bool {
        self.inner.jailbreak_detection
    }

    /// Report Unicode attacks.
    #[getter]
    fn unicode_attack_detection(&self) -> bool {
        self.inner.unicode_attack_detection
    }

    /// Run the output validators in validate_output.
    #[getter]
    fn output_validation(&self) -> bool {
        self.inner.output_validation
    }

    /// Longest text accepted, in UTF-8 bytes.
    #[getter]
    fn max_input_bytes(&self) -> usize {
        self.inner.max_input_bytes
    }

    fn __repr__(&self) -> String {
        repr(&self.inner)
    }
}

/// `SecurityConfig(...)` with the top-level switches.
pub(crate) fn repr(c: &SecurityConfig) -> String {
    let b = |v: bool| if v { "True" } else { "False" };
    format!(
        "SecurityConfig(prompt_injection_detection={}, jailbreak_detection={}, unicode_attack_detection={}, \
         output_validation={}, max_input_bytes={}, classifier_enabled={})",
        b(c.prompt_injection_detection),
        b(c.jailbreak_detection),
        b(c.unicode_attack_detection),
        b(c.output_validation),
        c.max_input_bytes,
        b(c.classifier.enabled),
    )
}

/// `json.dumps(value)`, NaN and infinities refused; the error is Python's
/// (a TypeError or ValueError naming what JSON cannot hold).
pub(crate) fn dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<String> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("allow_nan", false)?;
    py.import("json")?.call_method("dumps", (value,), Some(&kwargs)).and_then(|s| s.extract::<String>())
}

/// `dumps` for config values: what JSON cannot hold is a ConfigError.
fn dumps_config(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<String> {
    dumps(py, value).map_err(|e| config_error(format!("not representable as JSON: {e}")))
}

/// Deserializes and validates a config; errors name the key's full path
/// (`threat_model.jailbreak.dan_atacks: unknown field ...`).
fn parse_json(py: Python<'_>, json: &str) -> PyResult<PySecurityConfig> {
    let de = &mut serde_json::Deserializer::from_str(json);
    let inner: SecurityConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = without_position(&e.into_inner());
        if path == "." { config_error(message) } else { config_error(format!("{path}: {message}")) }
    })?;
    inner.validate().map_err(|e| to_py(py, e))?;
    Ok(PySecurityConfig { inner })
}

/// The error's message without serde_json's " at line L column C": the
/// JSON is made from keyword arguments, so its positions mean nothing to
/// the caller.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&suffix) {
        Some(m) => m.to_owned(),
        None => message,
    }
}
