//! Output validators (placeholder until they land).
use crate::canary::CanaryIssuer;
use crate::config::OutputValidationConfig;
use crate::normalize::Normalized;
use crate::scanner::Scanner;
use crate::types::Span;
/// Builds the output validators.
pub(crate) fn build(
    _cfg: &OutputValidationConfig,
    _canary: &CanaryIssuer,
) -> Vec<Box<dyn Scanner>> {
    Vec::new()
}
/// Refusal.
pub(crate) fn refusal(_n: &Normalized<'_>) -> Option<Span> {
    None
}
