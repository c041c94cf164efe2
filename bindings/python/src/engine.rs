//! `SecurityEngine`: scans with the GIL released.

use std::str::FromStr;

use llm_security::{ContextKind, ExpectedFormat, OutputContext, SecurityEngine};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::config::{PySecurityConfig, dumps};
use crate::errors::to_py;
use crate::results::{PyAnalysis, PySanitized};
use crate::stream::PyOutputStream;

/// The names `analyze_context` accepts for its kind, in the engine's order.
pub(crate) fn context_kind_names() -> Vec<&'static str> {
    ContextKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The security engine, built once from a SecurityConfig (all scanners on
/// when None). Thread-safe: share one engine between threads.
#[pyclass(name = "SecurityEngine", module = "llm_security", frozen, subclass)]
#[derive(Debug)]
pub(crate) struct PySecurityEngine {
    inner: SecurityEngine,
}

/// An engine error at one index of a batch.
type BatchError = (usize, llm_security::Error);

#[pymethods]
impl PySecurityEngine {
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(py: Python<'_>, config: Option<&Bound<'_, PySecurityConfig>>) -> PyResult<PySecurityEngine> {
        let config = config.map(|c| c.get().inner.clone()).unwrap_or_default();
        // Building compiles the pattern sets (once per process): no GIL.
        let inner = py.detach(move || SecurityEngine::try_with_config(config)).map_err(|e| to_py(py, e))?;
        Ok(PySecurityEngine { inner })
    }

    /// The config the engine was built from.
    #[getter]
    fn config(&self) -> PySecurityConfig {
        PySecurityConfig { inner: self.inner.config().clone() }
    }

    /// Analyses a prompt: prompt injection, jailbreaks, Unicode attacks,
    /// secrets and personal data. With `context` (one of CONTEXT_KINDS) the
    /// text is untrusted content instead, analysed as analyze_context(text,
    /// context) does: the server's `analyze` route with its `context` field.
    #[pyo3(signature = (text, context=None))]
    fn analyze_input(&self, py: Python<'_>, text: String, context: Option<&str>) -> PyResult<PyAnalysis> {
        let kind = context.map(context_kind).transpose()?;
        let engine = &self.inner;
        py.detach(|| {
            match kind {
                None => engine.analyze_input_sync(&text),
                Some(kind) => engine.analyze_context_sync(&text, kind),
            }
            .map(|a| PyAnalysis::new(&text, a))
        })
        .map_err(|e| to_py(py, e))
    }

    /// Analyses each prompt of a list (each text of one context kind, with
    /// `context`), in order, with the GIL released for the whole batch.
    #[pyo3(signature = (texts, context=None))]
    fn analyze_input_batch(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        context: Option<&str>,
    ) -> PyResult<Vec<PyAnalysis>> {
        let kind = context.map(context_kind).transpose()?;
        let engine = &self.inner;
        batch(py, texts, |t| match kind {
            None => engine.analyze_input_sync(t),
            Some(kind) => engine.analyze_context_sync(t, kind),
        })
    }

    /// Analyses untrusted content the model will read (a document, an
    /// e-mail, a web page, a tool result) for instructions planted for an
    /// AI reader. `kind` is one of CONTEXT_KINDS.
    fn analyze_context(&self, py: Python<'_>, text: String, kind: &str) -> PyResult<PyAnalysis> {
        let kind = context_kind(kind)?;
        let engine = &self.inner;
        py.detach(|| engine.analyze_context_sync(&text, kind).map(|a| PyAnalysis::new(&text, a)))
            .map_err(|e| to_py(py, e))
    }

    /// analyze_context over a list of texts of one kind.
    fn analyze_context_batch(&self, py: Python<'_>, texts: Vec<String>, kind: &str) -> PyResult<Vec<PyAnalysis>> {
        let kind = context_kind(kind)?;
        let engine = &self.inner;
        batch(py, texts, |t| engine.analyze_context_sync(t, kind))
    }

    /// Validates a completion: secrets, personal data, exfiltration links,
    /// markup, canary tokens and system-prompt leakage, Unicode attacks,
    /// refusals, and the expected format ("json" or "xml") or JSON Schema
    /// (a dict, or its JSON text).
    #[pyo3(signature = (text, system_prompt=None, expected_format=None, json_schema=None, prompt=None))]
    fn validate_output(
        &self,
        py: Python<'_>,
        text: String,
        system_prompt: Option<String>,
        expected_format: Option<&str>,
        json_schema: Option<&Bound<'_, PyAny>>,
        prompt: Option<String>,
    ) -> PyResult<PyAnalysis> {
        let cx = output_context(py, system_prompt, expected_format, json_schema, prompt)?;
        let engine = &self.inner;
        py.detach(|| engine.validate_output_with(&text, &cx).map(|a| PyAnalysis::new(&text, a)))
            .map_err(|e| to_py(py, e))
    }

    /// validate_output over a list of completions sharing one context.
    #[pyo3(signature = (texts, system_prompt=None, expected_format=None, json_schema=None, prompt=None))]
    fn validate_output_batch(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        system_prompt: Option<String>,
        expected_format: Option<&str>,
        json_schema: Option<&Bound<'_, PyAny>>,
        prompt: Option<String>,
    ) -> PyResult<Vec<PyAnalysis>> {
        let cx = output_context(py, system_prompt, expected_format, json_schema, prompt)?;
        let engine = &self.inner;
        batch(py, texts, |t| engine.validate_output_with(t, &cx))
    }

    /// Redacts secrets and personal data and strips invisible characters,
    /// whatever the policy says.
    fn sanitize(&self, py: Python<'_>, text: String) -> PyResult<PySanitized> {
        let engine = &self.inner;
        py.detach(|| engine.sanitize(&text).map(|s| PySanitized::new(&text, s))).map_err(|e| to_py(py, e))
    }

    /// sanitize over a list of texts.
    fn sanitize_batch(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<PySanitized>> {
        let engine = &self.inner;
        let out: Result<Vec<PySanitized>, BatchError> = py.detach(|| {
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| engine.sanitize(t).map(|s| PySanitized::new(t, s)).map_err(|e| (i, e)))
                .collect()
        });
        out.map_err(|(i, e)| batch_error(py, i, e))
    }

    /// A stream validating a completion that arrives in chunks (a streamed
    /// model answer): push() each chunk and release what it returns, then
    /// finish(). Text is released once it is `hold_back_bytes` from the end
    /// of what arrived, never in the middle of a finding, so a secret split
    /// across chunks is redacted whole; a scan runs once `min_scan_bytes` of
    /// new text have arrived. `system_prompt` and `prompt` as for
    /// validate_output; formats and JSON Schemas do not apply to streams.
    #[pyo3(signature = (system_prompt=None, prompt=None, *, hold_back_bytes=512, min_scan_bytes=128, max_held_bytes=65536))]
    fn output_stream(
        &self,
        system_prompt: Option<String>,
        prompt: Option<String>,
        hold_back_bytes: usize,
        min_scan_bytes: usize,
        max_held_bytes: usize,
    ) -> PyResult<PyOutputStream> {
        let opts = crate::stream::options(hold_back_bytes, min_scan_bytes, max_held_bytes)?;
        let mut cx = OutputContext::new();
        cx.system_prompt = system_prompt;
        cx.prompt = prompt;
        Ok(PyOutputStream::new(self.inner.output_stream_with(cx, opts), &opts))
    }

    /// A fresh canary token to plant in a system prompt. validate_output
    /// reports a completion containing it as a "system_prompt_leak" (any
    /// engine whose config has the same output.canary_secret recognises it).
    fn issue_canary(&self) -> String {
        self.inner.issue_canary()
    }

    fn __repr__(&self) -> String {
        format!("SecurityEngine({})", crate::config::repr(self.inner.config()))
    }
}

/// Runs `scan` over `texts` with the GIL released; an error names the
/// index of the text that caused it.
fn batch(
    py: Python<'_>,
    texts: Vec<String>,
    scan: impl Fn(&str) -> Result<llm_security::Analysis, llm_security::Error> + Send + Sync,
) -> PyResult<Vec<PyAnalysis>> {
    let out: Result<Vec<PyAnalysis>, BatchError> = py.detach(|| {
        texts.iter().enumerate().map(|(i, t)| scan(t).map(|a| PyAnalysis::new(t, a)).map_err(|e| (i, e))).collect()
    });
    out.map_err(|(i, e)| batch_error(py, i, e))
}

/// The engine error of `texts[i]`, with the index in front of the message.
fn batch_error(py: Python<'_>, i: usize, e: llm_security::Error) -> PyErr {
    let err = to_py(py, e);
    let value = err.value(py);
    let message = format!("texts[{i}]: {value}");
    // args[0] is the message str(err) shows; replacing it keeps the type
    // and the attributes (length, max_bytes) of the error.
    if let Ok(args) = pyo3::types::PyTuple::new(py, [message]) {
        let _ = value.setattr("args", args);
    }
    let _ = value.setattr("index", i);
    err
}

fn context_kind(kind: &str) -> PyResult<ContextKind> {
    ContextKind::from_str(kind).map_err(|e| match e {
        llm_security::Error::Config(m) => PyValueError::new_err(m),
        other => PyValueError::new_err(other.to_string()),
    })
}

fn output_context(
    py: Python<'_>,
    system_prompt: Option<String>,
    expected_format: Option<&str>,
    json_schema: Option<&Bound<'_, PyAny>>,
    prompt: Option<String>,
) -> PyResult<OutputContext> {
    let mut cx = OutputContext::new();
    cx.system_prompt = system_prompt;
    cx.prompt = prompt;
    cx.expected_format = match expected_format {
        None => None,
        Some("json") => Some(ExpectedFormat::Json),
        Some("xml") => Some(ExpectedFormat::Xml),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown expected_format {other:?}; expected \"json\" or \"xml\""
            )));
        }
    };
    if let Some(schema) = json_schema {
        let json = if schema.is_instance_of::<PyString>() {
            schema.extract::<String>()?
        } else {
            dumps(py, schema)
                .map_err(|e| PyValueError::new_err(format!("json_schema is not representable as JSON: {e}")))?
        };
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| PyValueError::new_err(format!("json_schema is not JSON: {e}")))?;
        cx = cx.with_json_schema(value);
    }
    Ok(cx)
}
