//! Invariants the fuzz targets check on every [`Analysis`].
//!
//! The engine's contract (DESIGN.md, `Scanner` docs): every span lies inside
//! the original text on UTF-8 character boundaries and every confidence is
//! in `[0, 1]`, whatever the input. A violation panics, which libFuzzer
//! reports as a crash with the input saved under `artifacts/`.

use llm_security::{Analysis, Span};

/// Panics unless `span` is a valid, non-reversed char-boundary range of `text`.
pub fn check_span(text: &str, span: Span, what: &str) {
    assert!(
        span.start <= span.end && span.end <= text.len(),
        "{what}: span {}..{} out of range for {} bytes",
        span.start,
        span.end,
        text.len()
    );
    assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "{what}: span {}..{} not on char boundaries",
        span.start,
        span.end
    );
}

/// Panics unless `x` is a number in `[0, 1]`.
pub fn check_unit(x: f64, what: &str) {
    assert!((0.0..=1.0).contains(&x), "{what}: {x} is not in [0, 1]");
}

/// Checks every span and confidence of `a`, an analysis of `text`.
pub fn check_analysis(text: &str, a: &Analysis) {
    check_unit(a.confidence(), "analysis confidence");
    for t in a.threats() {
        check_span(text, t.span, &format!("threat {}/{}", t.kind, t.category));
        check_unit(t.confidence, &format!("threat {}/{}", t.kind, t.category));
    }
    for r in a.redactions() {
        check_span(text, r.span, "redaction");
    }
    if let Some(span) = a.refusal() {
        check_span(text, span, "refusal");
    }
    assert_eq!(a.is_secure(), a.verdict() == llm_security::Verdict::Allow, "is_secure disagrees with the verdict");
}
