//! `OutputStream`: the engine's incremental output validation of a
//! completion that arrives in chunks, and `StreamStep`, what one chunk gives
//! back.

use std::sync::{Mutex, MutexGuard, PoisonError};

use llm_security::{OutputStream, StreamOptions, StreamStep};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::errors::to_py;
use crate::offsets::StreamOffsets;
use crate::results::{PyThreat, quote};

/// Bytes of already-released text a window may reach back into, beyond the
/// engine's own left context (64 bytes) and `max_held_bytes`: spans are
/// mapped to string indices while they can still be reported.
const OFFSET_SLACK_BYTES: usize = 4096;

/// The stream and the offset map of the text it received.
#[derive(Debug)]
struct State {
    stream: OutputStream,
    offsets: StreamOffsets,
}

/// A completion validated chunk by chunk (`SecurityEngine.output_stream`).
#[pyclass(name = "OutputStream", module = "llm_security", frozen)]
#[derive(Debug)]
pub(crate) struct PyOutputStream {
    state: Mutex<State>,
    /// How many bytes of the received text the offset map keeps.
    keep_bytes: usize,
}

impl PyOutputStream {
    /// A Python stream over `stream`, built with `opts`.
    pub(crate) fn new(stream: OutputStream, opts: &StreamOptions) -> PyOutputStream {
        PyOutputStream {
            state: Mutex::new(State { stream, offsets: StreamOffsets::default() }),
            keep_bytes: opts.max_held_bytes.saturating_add(opts.hold_back_bytes).saturating_add(OFFSET_SLACK_BYTES),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside the engine would poison the lock; the state is
        // still consistent (the engine's step is all-or-nothing).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wraps the engine's step, its spans mapped to string indices.
    fn step(&self, state: &mut State, step: StreamStep) -> PyStreamStep {
        let threats = step.threats.iter().map(|t| PyThreat::mapped(t, |b| state.offsets.get(b))).collect();
        state.offsets.keep_last(self.keep_bytes);
        PyStreamStep { text: step.text, threats, blocked: step.blocked }
    }
}

#[pymethods]
impl PyOutputStream {
    /// Appends the next chunk of the completion. Returns the text now safe
    /// to release (possibly empty) and the threats first seen. After a
    /// block, or after finish(), chunks are ignored.
    fn push(&self, py: Python<'_>, chunk: String) -> PyResult<PyStreamStep> {
        py.detach(|| {
            let mut state = self.lock();
            state.offsets.push(&chunk);
            let step = state.stream.push(&chunk)?;
            Ok(self.step(&mut state, step))
        })
        .map_err(|e| to_py(py, e))
    }

    /// Scans and releases whatever is still held. Call once, when the
    /// completion ends.
    fn finish(&self, py: Python<'_>) -> PyResult<PyStreamStep> {
        py.detach(|| {
            let mut state = self.lock();
            let step = state.stream.finish()?;
            Ok(self.step(&mut state, step))
        })
        .map_err(|e| to_py(py, e))
    }

    /// The verdict over every threat seen so far: "allow", "sanitize" or
    /// "block".
    #[getter]
    fn verdict(&self) -> &'static str {
        self.lock().stream.verdict().as_str()
    }

    /// True once the verdict is "block": nothing more will be released.
    #[getter]
    fn blocked(&self) -> bool {
        self.lock().stream.is_blocked()
    }

    /// The stream's counters: chunks, scans, bytes_in, bytes_scanned,
    /// bytes_out.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.lock().stream.stats();
        let d = PyDict::new(py);
        d.set_item("chunks", s.chunks)?;
        d.set_item("scans", s.scans)?;
        d.set_item("bytes_in", s.bytes_in)?;
        d.set_item("bytes_scanned", s.bytes_scanned)?;
        d.set_item("bytes_out", s.bytes_out)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let state = self.lock();
        let s = state.stream.stats();
        format!(
            "OutputStream(verdict={}, blocked={}, chunks={}, bytes_in={}, bytes_out={})",
            quote(state.stream.verdict().as_str()),
            if state.stream.is_blocked() { "True" } else { "False" },
            s.chunks,
            s.bytes_in,
            s.bytes_out
        )
    }
}

/// What one push() or finish() gives back.
#[pyclass(name = "StreamStep", module = "llm_security", frozen)]
#[derive(Debug)]
pub(crate) struct PyStreamStep {
    /// Text now safe to release, sanitized where the policy sanitizes.
    #[pyo3(get)]
    text: String,
    threats: Vec<PyThreat>,
    /// True once the verdict is "block".
    #[pyo3(get)]
    blocked: bool,
}

#[pymethods]
impl PyStreamStep {
    /// The threats first reported in this step; spans index the whole
    /// completion as received.
    #[getter]
    fn threats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.threats.iter().cloned())
    }

    /// The step as a dict of JSON types.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("text", &self.text)?;
        let threats = PyList::empty(py);
        for t in &self.threats {
            threats.append(t.to_dict(py)?)?;
        }
        d.set_item("threats", threats)?;
        d.set_item("blocked", self.blocked)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let kinds: Vec<String> = self.threats.iter().map(|t| quote(t.kind())).collect();
        format!(
            "StreamStep(text={}, threats=[{}], blocked={})",
            quote(&self.text),
            kinds.join(", "),
            if self.blocked { "True" } else { "False" }
        )
    }
}

/// The options of `SecurityEngine.output_stream`, checked: a bad value is a
/// ValueError naming it.
pub(crate) fn options(hold_back_bytes: usize, min_scan_bytes: usize, max_held_bytes: usize) -> PyResult<StreamOptions> {
    let opts = StreamOptions { hold_back_bytes, min_scan_bytes, max_held_bytes, never_block: false };
    opts.validate().map_err(|e| match e {
        llm_security::Error::Config(m) => PyValueError::new_err(m),
        other => PyValueError::new_err(other.to_string()),
    })?;
    Ok(opts)
}
