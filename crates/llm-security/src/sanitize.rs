//! Sanitizer (placeholder until the output validators land).
use crate::config::SanitizeConfig;
use crate::types::{Redaction, Threat};
/// Sanitized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    /// Text.
    pub text: String,
    /// Redactions.
    pub redactions: Vec<Redaction>,
}
/// Sanitizes.
pub fn sanitize(original: &str, _threats: &[Threat], _cfg: &SanitizeConfig) -> Sanitized {
    Sanitized {
        text: original.to_owned(),
        redactions: Vec::new(),
    }
}
/// Restores.
pub fn restore(text: &str, _redactions: &[Redaction]) -> String {
    text.to_owned()
}
