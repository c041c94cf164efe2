//! Untrusted content the model will read: e-mails, web pages, documents,
//! tool results. [`SecurityEngine::analyze_context`](crate::SecurityEngine::analyze_context)
//! scans such text for instructions planted for an AI reader (indirect
//! prompt injection).
//!
//! Content has its own operating point. A user prompt is addressed to the
//! model by design, so only confident findings block it. Content is data:
//! text in it that addresses an AI reader at all is out of place, so in
//! context mode a prompt-injection finding of any severity blocks once its
//! confidence reaches [`ContextConfig::min_confidence`]. The verdict is the
//! stricter of that rule and the ordinary policy, with the action the
//! policy configures for prompt injection.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::policy::PolicyConfig;
use crate::types::{Threat, ThreatType, Verdict};

/// What kind of content a text is, for
/// [`analyze_context`](crate::SecurityEngine::analyze_context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextKind {
    /// A file or retrieved document (text, PDF, spreadsheet, slide).
    Document,
    /// An e-mail (headers and body).
    Email,
    /// A web page or a fragment of one (HTML or extracted text).
    #[serde(rename = "webpage", alias = "web_page")]
    WebPage,
    /// The result of a tool or function call (JSON, records, API answers).
    ToolOutput,
    /// Source code, a diff or a configuration file.
    Code,
    /// Messages of other people in a chat or channel.
    Chat,
    /// Calendar entries and invitations.
    Calendar,
    /// A search result snippet.
    SearchResult,
    /// Content of a kind not listed here.
    Other,
}

impl ContextKind {
    /// Every kind, in declaration order.
    pub const ALL: [ContextKind; 9] = [
        ContextKind::Document,
        ContextKind::Email,
        ContextKind::WebPage,
        ContextKind::ToolOutput,
        ContextKind::Code,
        ContextKind::Chat,
        ContextKind::Calendar,
        ContextKind::SearchResult,
        ContextKind::Other,
    ];

    /// The snake_case name used in JSON, the CLI and stored events.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Document => "document",
            ContextKind::Email => "email",
            ContextKind::WebPage => "webpage",
            ContextKind::ToolOutput => "tool_output",
            ContextKind::Code => "code",
            ContextKind::Chat => "chat",
            ContextKind::Calendar => "calendar",
            ContextKind::SearchResult => "search_result",
            ContextKind::Other => "other",
        }
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        ContextKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for ContextKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContextKind {
    type Err = Error;

    /// Reads a kind by its name (`web_page` is accepted for `webpage`).
    fn from_str(s: &str) -> Result<ContextKind, Error> {
        if s == "web_page" {
            return Ok(ContextKind::WebPage);
        }
        ContextKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::Config(format!("unknown context kind {s:?}; expected one of {}", ContextKind::names()))
        })
    }
}

/// The operating point of context mode. In a config file:
///
/// ```toml
/// [context]
/// min_confidence = 0.5
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextConfig {
    /// In context mode, a prompt-injection finding of any severity at or
    /// above this confidence triggers the policy's prompt-injection action.
    pub min_confidence: f64,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig { min_confidence: 0.5 }
    }
}

impl ContextConfig {
    /// Checks the threshold.
    pub fn validate(&self) -> Result<(), Error> {
        let t = self.min_confidence;
        if !(0.0..=1.0).contains(&t) || t.is_nan() {
            return Err(Error::Config(format!("context.min_confidence must be in [0, 1], got {t}")));
        }
        Ok(())
    }

    /// The verdict for threats found in content: the policy's, or the
    /// prompt-injection action when a finding reaches the context threshold
    /// (whatever its severity), whichever is stricter.
    pub fn verdict(&self, policy: &PolicyConfig, threats: &[Threat]) -> Verdict {
        let base = policy.verdict(threats);
        let rule = policy.rule(ThreatType::PromptInjection);
        let floor = self.min_confidence.max(rule.min_confidence);
        let lowered = threats
            .iter()
            .filter(|t| t.kind == ThreatType::PromptInjection && t.confidence >= floor)
            .map(|_| rule.action)
            .max()
            .unwrap_or(Verdict::Allow);
        base.max(lowered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Severity, Span};

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for k in ContextKind::ALL {
            let s = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
            assert_eq!(k.as_str().parse::<ContextKind>().ok(), Some(k));
            assert_eq!(serde_json::from_str::<ContextKind>(&s).ok(), Some(k));
        }
        assert_eq!(serde_json::from_str::<ContextKind>("\"web_page\"").ok(), Some(ContextKind::WebPage));
        assert_eq!("web_page".parse::<ContextKind>().ok(), Some(ContextKind::WebPage));
        let e = "e-mail".parse::<ContextKind>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("e-mail") && e.contains("tool_output"), "{e}");
    }

    #[test]
    fn low_severity_findings_block_in_context_only_above_the_threshold() {
        let policy = PolicyConfig::default();
        let cx = ContextConfig::default();
        let t = |c| Threat::new(ThreatType::PromptInjection, "x", Severity::Low, c, Span::new(0, 1), "", "t");
        assert_eq!(policy.verdict(&[t(0.6)]), Verdict::Allow, "a prompt lets it through");
        assert_eq!(cx.verdict(&policy, &[t(0.6)]), Verdict::Block);
        assert_eq!(cx.verdict(&policy, &[t(0.4)]), Verdict::Allow);
        let pii = Threat::new(ThreatType::SensitiveData, "email", Severity::Low, 0.9, Span::new(0, 1), "", "t");
        assert_eq!(cx.verdict(&policy, &[pii]), Verdict::Sanitize, "other types keep the policy");
    }

    #[test]
    fn threshold_out_of_range_is_refused() {
        assert!(ContextConfig { min_confidence: 1.5 }.validate().is_err());
        assert!(ContextConfig { min_confidence: f64::NAN }.validate().is_err());
        assert!(ContextConfig::default().validate().is_ok());
    }
}
