//! Scan results as immutable Python objects: `Analysis`, `Threat`,
//! `Sanitized`, `Redaction`.
//!
//! They hold plain Rust data, built while the GIL is released; Python
//! objects for their parts are made only when read.

use llm_security::{Analysis, Redaction, Sanitized, Threat};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::offsets::CharOffsets;

/// A `(start, end)` pair.
type Pair = (usize, usize);

/// One finding of one scanner.
#[pyclass(name = "Threat", module = "llm_security", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PyThreat {
    /// The threat type, e.g. "prompt_injection" or "secret_leak".
    #[pyo3(get, name = "type")]
    kind: &'static str,
    /// The technique within the type, e.g. "direct_injection", "email".
    #[pyo3(get)]
    category: String,
    /// "low", "medium", "high" or "critical".
    #[pyo3(get)]
    severity: &'static str,
    /// How sure the scanner is, in [0, 1].
    #[pyo3(get)]
    confidence: f64,
    /// (start, end) in Python string indices: text[start:end] is the match.
    #[pyo3(get)]
    span: Pair,
    /// (start, end) in UTF-8 bytes, as the Rust engine reports it.
    #[pyo3(get)]
    byte_span: Pair,
    /// A short reason; never the full matched secret.
    #[pyo3(get)]
    evidence: String,
    /// The id of the scanner that raised it.
    #[pyo3(get)]
    scanner: String,
    /// The rule inside the scanner, when it has several.
    #[pyo3(get)]
    rule: Option<String>,
    /// The encoding the match was found under (e.g. "base64"), if any.
    #[pyo3(get)]
    decoded_from: Option<&'static str>,
    /// Scanner-specific facts, e.g. {"cwe": "CWE-78"} for unsafe code or
    /// {"signal": "compliance"} for a harmful response; empty when none.
    #[pyo3(get)]
    metadata: std::collections::BTreeMap<String, String>,
}

impl PyThreat {
    fn new(t: &Threat, at: &CharOffsets) -> PyThreat {
        PyThreat::mapped(t, |b| at.get(b))
    }

    /// The threat type's name.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// The threat with its byte offsets turned into string indices by `char_at`.
    pub(crate) fn mapped(t: &Threat, char_at: impl Fn(usize) -> usize) -> PyThreat {
        PyThreat {
            kind: t.kind.as_str(),
            category: t.category.clone(),
            severity: t.severity.as_str(),
            confidence: t.confidence,
            span: (char_at(t.span.start), char_at(t.span.end)),
            byte_span: (t.span.start, t.span.end),
            evidence: t.evidence.clone(),
            scanner: t.scanner.clone(),
            rule: t.rule.clone(),
            decoded_from: t.decoded_from.map(|e| e.as_str()),
            metadata: t.metadata.clone(),
        }
    }
}

#[pymethods]
impl PyThreat {
    /// The threat as a dict of JSON types.
    pub(crate) fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("type", self.kind)?;
        d.set_item("category", &self.category)?;
        d.set_item("severity", self.severity)?;
        d.set_item("confidence", self.confidence)?;
        d.set_item("span", pair(py, self.span)?)?;
        d.set_item("byte_span", pair(py, self.byte_span)?)?;
        d.set_item("evidence", &self.evidence)?;
        d.set_item("scanner", &self.scanner)?;
        d.set_item("rule", &self.rule)?;
        d.set_item("decoded_from", self.decoded_from)?;
        d.set_item("metadata", self.metadata.clone())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Threat(type={}, category={}, severity={}, confidence={:.2}, span=({}, {}))",
            quote(self.kind),
            quote(&self.category),
            quote(self.severity),
            self.confidence,
            self.span.0,
            self.span.1
        )
    }
}

/// One placeholder the sanitizer put in place of a secret or PII value.
#[pyclass(name = "Redaction", module = "llm_security", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PyRedaction {
    /// The placeholder, e.g. "[REDACTED_EMAIL_1]".
    #[pyo3(get)]
    placeholder: String,
    /// The value it replaced; only with reversible sanitizing.
    #[pyo3(get)]
    original: Option<String>,
    /// Where the value was in the original text (Python string indices).
    #[pyo3(get)]
    span: Pair,
    /// The same in UTF-8 bytes.
    #[pyo3(get)]
    byte_span: Pair,
}

impl PyRedaction {
    fn new(r: &Redaction, at: &CharOffsets) -> PyRedaction {
        PyRedaction {
            placeholder: r.placeholder.clone(),
            original: r.original.clone(),
            span: (at.get(r.span.start), at.get(r.span.end)),
            byte_span: (r.span.start, r.span.end),
        }
    }
}

#[pymethods]
impl PyRedaction {
    /// The redaction as a dict of JSON types.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("placeholder", &self.placeholder)?;
        d.set_item("original", &self.original)?;
        d.set_item("span", pair(py, self.span)?)?;
        d.set_item("byte_span", pair(py, self.byte_span)?)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        // The original value is a secret or personal data: never printed.
        format!("Redaction(placeholder={}, span=({}, {}))", quote(&self.placeholder), self.span.0, self.span.1)
    }
}

/// The result of analyze_input, analyze_context or validate_output.
#[pyclass(name = "Analysis", module = "llm_security", frozen)]
#[derive(Debug)]
pub(crate) struct PyAnalysis {
    analysis: Analysis,
    threats: Vec<PyThreat>,
    redactions: Vec<PyRedaction>,
    refusal: Option<Pair>,
}

impl PyAnalysis {
    /// Wraps an engine result for `text` (the text it analysed).
    pub(crate) fn new(text: &str, analysis: Analysis) -> PyAnalysis {
        let spans = analysis
            .threats()
            .iter()
            .map(|t| t.span)
            .chain(analysis.redactions().iter().map(|r| r.span))
            .chain(analysis.refusal());
        let at = CharOffsets::new(text, spans.flat_map(|s| [s.start, s.end]));
        PyAnalysis {
            threats: analysis.threats().iter().map(|t| PyThreat::new(t, &at)).collect(),
            redactions: analysis.redactions().iter().map(|r| PyRedaction::new(r, &at)).collect(),
            refusal: analysis.refusal().map(|s| (at.get(s.start), at.get(s.end))),
            analysis,
        }
    }
}

#[pymethods]
impl PyAnalysis {
    /// True when the verdict is "allow": the text may pass unchanged.
    #[getter]
    fn is_secure(&self) -> bool {
        self.analysis.is_secure()
    }

    /// "allow", "sanitize" or "block".
    #[getter]
    fn verdict(&self) -> &'static str {
        self.analysis.verdict().as_str()
    }

    /// Noisy-OR of the threat confidences, in [0, 1] (0 with no threats).
    #[getter]
    fn confidence(&self) -> f64 {
        self.analysis.confidence()
    }

    /// The sanitized text when the verdict is "sanitize" (or the config
    /// sanitizes always); None otherwise.
    #[getter]
    fn sanitized(&self) -> Option<&str> {
        self.analysis.sanitized()
    }

    /// Every threat found, ordered by span start (also those below the
    /// policy's thresholds, which do not change the verdict).
    #[getter]
    fn threats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.threats.iter().cloned())
    }

    /// The placeholders the sanitizer used.
    #[getter]
    fn redactions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.redactions.iter().cloned())
    }

    /// "input", "output" or "context".
    #[getter]
    fn stage(&self) -> &'static str {
        self.analysis.stage().as_str()
    }

    /// For analyze_context: the kind of content analysed.
    #[getter]
    fn context(&self) -> Option<&'static str> {
        self.analysis.context().map(|k| k.as_str())
    }

    /// For completions: (start, end) of a refusal ("I'm sorry, but I
    /// can't ..."), in Python string indices, or None.
    #[getter]
    fn refusal(&self) -> Option<Pair> {
        self.refusal
    }

    /// The highest severity among the threats, or None.
    #[getter]
    fn max_severity(&self) -> Option<&'static str> {
        self.analysis.max_severity().map(|s| s.as_str())
    }

    /// Wall time of the scan, in seconds.
    #[getter]
    fn analysis_time(&self) -> f64 {
        self.analysis.analysis_time().as_secs_f64()
    }

    /// (scanner id, nanoseconds) for each scanner, in the order they ran.
    #[getter]
    fn timings(&self) -> Vec<(String, u64)> {
        self.analysis.timings().iter().map(|t| (t.scanner.clone(), t.nanos)).collect()
    }

    /// True when any threat has this type (e.g. "jailbreak").
    fn has(&self, threat_type: &str) -> bool {
        self.threats.iter().any(|t| t.kind == threat_type)
    }

    /// The analysis as a dict of JSON types (json.dumps takes it as is).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("stage", self.stage())?;
        d.set_item("context", self.context())?;
        d.set_item("verdict", self.verdict())?;
        d.set_item("is_secure", self.is_secure())?;
        d.set_item("confidence", self.confidence())?;
        d.set_item("sanitized", self.sanitized())?;
        let threats = PyList::empty(py);
        for t in &self.threats {
            threats.append(t.to_dict(py)?)?;
        }
        d.set_item("threats", threats)?;
        let redactions = PyList::empty(py);
        for r in &self.redactions {
            redactions.append(r.to_dict(py)?)?;
        }
        d.set_item("redactions", redactions)?;
        d.set_item("refusal", self.refusal.map(|p| pair(py, p)).transpose()?)?;
        d.set_item("analysis_time", self.analysis_time())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let threats: Vec<String> = self
            .threats
            .iter()
            .map(|t| {
                format!("{}/{} {} {:.2} @{}..{}", t.kind, t.category, t.severity, t.confidence, t.span.0, t.span.1)
            })
            .collect();
        format!(
            "Analysis(stage={}, verdict={}, is_secure={}, confidence={:.2}, threats=[{}])",
            quote(self.stage()),
            quote(self.verdict()),
            if self.is_secure() { "True" } else { "False" },
            self.confidence(),
            threats.join(", ")
        )
    }
}

/// Text after sanitize(): secrets and PII replaced by placeholders,
/// invisible characters stripped.
#[pyclass(name = "Sanitized", module = "llm_security", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PySanitized {
    /// The sanitized text.
    #[pyo3(get)]
    text: String,
    redactions: Vec<PyRedaction>,
}

impl PySanitized {
    /// Wraps the sanitizer's result for `original` (the text sanitized).
    pub(crate) fn new(original: &str, s: Sanitized) -> PySanitized {
        let at = CharOffsets::new(original, s.redactions.iter().flat_map(|r| [r.span.start, r.span.end]));
        PySanitized { redactions: s.redactions.iter().map(|r| PyRedaction::new(r, &at)).collect(), text: s.text }
    }
}

#[pymethods]
impl PySanitized {
    /// One entry per redacted span, in text order.
    #[getter]
    fn redactions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.redactions.iter().cloned())
    }

    /// The result as a dict of JSON types.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("text", &self.text)?;
        let redactions = PyList::empty(py);
        for r in &self.redactions {
            redactions.append(r.to_dict(py)?)?;
        }
        d.set_item("redactions", redactions)?;
        Ok(d)
    }

    fn __str__(&self) -> &str {
        &self.text
    }

    fn __repr__(&self) -> String {
        format!("Sanitized(text={}, redactions={})", quote(&self.text), self.redactions.len())
    }
}

/// A pair as a Python list (what JSON round-trips to).
pub(crate) fn pair(py: Python<'_>, p: Pair) -> PyResult<Bound<'_, PyList>> {
    PyList::new(py, [p.0, p.1])
}

/// `s` as a Python string literal in single quotes, for reprs.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push('"'),
            c => out.extend(c.escape_debug()),
        }
    }
    out.push('\'');
    out
}
