//! The one seam every scanner implements.

use std::borrow::Cow;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::normalize::{Normalized, View};
use crate::types::Threat;

/// The format a completion is expected to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedFormat {
    /// A JSON document (optionally in one fenced code block).
    Json,
    /// A well-formed XML document.
    Xml,
}

/// What the caller knows about a completion beyond its text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputContext {
    /// The format the application expects back.
    #[serde(default)]
    pub expected_format: Option<ExpectedFormat>,
    /// A JSON Schema the completion must satisfy (implies JSON).
    #[serde(default)]
    pub json_schema: Option<serde_json::Value>,
    /// The system prompt the completion must not repeat.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// The prompt that produced the completion, if the caller has it.
    #[serde(default)]
    pub prompt: Option<String>,
}

impl OutputContext {
    /// An empty context.
    pub fn new() -> OutputContext {
        OutputContext::default()
    }

    /// Expects the completion in this format.
    pub fn with_expected_format(mut self, f: ExpectedFormat) -> OutputContext {
        self.expected_format = Some(f);
        self
    }

    /// Expects JSON that satisfies this schema.
    pub fn with_json_schema(mut self, schema: serde_json::Value) -> OutputContext {
        self.expected_format = Some(ExpectedFormat::Json);
        self.json_schema = Some(schema);
        self
    }

    /// The system prompt to check for leakage.
    pub fn with_system_prompt(mut self, p: impl Into<String>) -> OutputContext {
        self.system_prompt = Some(p.into());
        self
    }

    /// The prompt that produced the completion.
    pub fn with_prompt(mut self, p: impl Into<String>) -> OutputContext {
        self.prompt = Some(p.into());
        self
    }
}

/// Everything a scanner may read for one text.
#[derive(Debug, Clone, Copy)]
pub struct ScanContext<'a> {
    /// The text, normalized, with its decoded views and span maps.
    pub normalized: &'a Normalized<'a>,
    /// Set when a completion is validated.
    pub output: Option<&'a OutputContext>,
}

impl<'a> ScanContext<'a> {
    /// The original text.
    pub fn original(&self) -> &'a str {
        self.normalized.original()
    }

    /// A view's text with ASCII letters lowercased (what keyword automata
    /// match on): the primary view's is computed once per text and shared
    /// by every scanner.
    pub fn lowercase(&self, view: &View<'a>) -> Cow<'a, str> {
        match view.encoding {
            None => Cow::Borrowed(self.normalized.lowercase()),
            Some(_) => Cow::Owned(crate::normalize::fold_case(view.text)),
        }
    }
}

/// A scanner: reads one text and reports threats.
///
/// Contract, checked for every built-in scanner by the compliance test:
/// every span lies inside the original text on character boundaries, every
/// confidence is in `[0, 1]`, the result is deterministic, and no input
/// makes it panic. Scanners see the normalized original, never another
/// scanner's output.
pub trait Scanner: Send + Sync + Debug {
    /// The configured instance id (used in threats and timings).
    fn id(&self) -> &str;

    /// Appends what it finds to `out`.
    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<crate::types::Threat>);
}

/// Drops the duplicates of a threat found again in another view of the
/// same text (same span, scanner, category and rule), keeping the
/// strongest: a clause read weakly as written and fully once decoded
/// (`d.e t.u` → `de tu`) counts as read.
pub(crate) fn dedup(threats: &mut Vec<Threat>) {
    threats.sort_by(|a, b| {
        (a.span.start, a.span.end, &a.scanner, &a.category, &a.rule)
            .cmp(&(b.span.start, b.span.end, &b.scanner, &b.category, &b.rule))
            .then(b.severity.cmp(&a.severity))
            .then(b.confidence.total_cmp(&a.confidence))
    });
    threats.dedup_by(|b, a| a.span == b.span && a.scanner == b.scanner && a.category == b.category && a.rule == b.rule);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Encoding, Severity, Span, ThreatType};

    fn threat(confidence: f64, severity: Severity, from: Option<Encoding>) -> Threat {
        Threat::new(
            ThreatType::PromptInjection,
            "prompt_extraction",
            severity,
            confidence,
            Span::new(0, 6),
            "",
            "intent",
        )
        .with_rule("intent.extraction.es")
        .with_decoded_from(from)
    }

    #[test]
    fn dedup_keeps_the_strongest_reading_of_a_clause() {
        // Read weakly as written, fully once the separators are removed.
        let mut t = vec![threat(0.4, Severity::Low, None), threat(0.9, Severity::High, Some(Encoding::Spaced))];
        dedup(&mut t);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].severity, t[0].decoded_from), (Severity::High, Some(Encoding::Spaced)));
        // Another rule on the same span is another finding.
        let mut t = vec![threat(0.4, Severity::Low, None), threat(0.4, Severity::Low, None).with_rule("other")];
        dedup(&mut t);
        assert_eq!(t.len(), 2);
    }
}
