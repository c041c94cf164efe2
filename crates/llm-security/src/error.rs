//! The engine's error type.

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is longer than the configured maximum; nothing was scanned.
    #[error("input is {len} bytes, over the configured maximum of {max} bytes")]
    InputTooLarge {
        /// Length of the text.
        len: usize,
        /// The configured maximum (`max_input_bytes`).
        max: usize,
    },
    /// A configuration file or value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A pattern file inside the crate failed to compile.
    #[error("pattern {id} in {file}: {message}")]
    Pattern {
        /// The pattern file.
        file: String,
        /// The rule id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A classifier model file is corrupt, truncated or of another version.
    #[error("invalid classifier model: {0}")]
    Model(String),
    /// A JSON Schema supplied for output validation is invalid.
    #[error("invalid JSON Schema: {0}")]
    Schema(String),
    /// The security-model profile has switches the build cannot honour
    /// (or that contradict each other); the engine fails closed.
    #[error(transparent)]
    Profile(#[from] crate::model::ProfileError),
}
