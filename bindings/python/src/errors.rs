//! The exceptions the package raises, and the mapping from the engine's
//! `Error` onto them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(llm_security, LlmSecurityError, PyException, "Base class of every error llm_security raises.");
create_exception!(
    llm_security,
    InputTooLarge,
    LlmSecurityError,
    "The text is longer than the config's max_input_bytes (UTF-8 bytes); nothing was scanned. \
     Attributes: length (the text's UTF-8 length) and max_bytes (the limit)."
);
create_exception!(
    llm_security,
    ConfigError,
    LlmSecurityError,
    "A configuration value or file is invalid: an unknown key (named in the message), a value of \
     the wrong type or out of range, or a file that cannot be read."
);

/// The Python exception for an engine error.
pub(crate) fn to_py(py: Python<'_>, e: llm_security::Error) -> PyErr {
    match e {
        llm_security::Error::InputTooLarge { len, max } => {
            let err = InputTooLarge::new_err(e.to_string());
            let value = err.value(py);
            // Setting an attribute on a fresh exception instance only fails
            // when the interpreter is out of memory; the message carries
            // both numbers anyway.
            let _ = value.setattr("length", len);
            let _ = value.setattr("max_bytes", max);
            err
        }
        llm_security::Error::Config(m) => ConfigError::new_err(m),
        other => LlmSecurityError::new_err(other.to_string()),
    }
}

/// A `ConfigError` with this message.
pub(crate) fn config_error(message: impl Into<String>) -> PyErr {
    ConfigError::new_err(message.into())
}
