//! The threat model's vocabulary: threat types, severities, spans and the
//! per-call [`Analysis`] that aggregates what the scanners found.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What kind of attack or leak a [`Threat`] is: the threat categories the
/// engine detects and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThreatType {
    /// Text that tries to override or hijack the application's instructions.
    PromptInjection,
    /// Text that tries to remove the model's safety behaviour.
    Jailbreak,
    /// Invisible, bidirectional, smuggled or look-alike characters.
    UnicodeAttack,
    /// A completion that breaks the expected format or smuggles markup.
    OutputManipulation,
    /// Personal data (email, phone, card, SSN, IBAN, IP address).
    SensitiveData,
    /// Credentials: API keys, tokens, private keys, high-entropy secrets.
    SecretLeak,
    /// Links or images that carry data to a third party.
    DataExfiltration,
    /// Active content: script tags, event handlers, `javascript:` URLs.
    MaliciousContent,
    /// The system prompt (or its canary token) showing up in a completion.
    SystemPromptLeak,
    /// Anything a policy forbids that fits none of the above.
    PolicyViolation,
}

impl ThreatType {
    /// Every threat type, in declaration order.
    pub const ALL: [ThreatType; 10] = [
        ThreatType::PromptInjection,
        ThreatType::Jailbreak,
        ThreatType::UnicodeAttack,
        ThreatType::OutputManipulation,
        ThreatType::SensitiveData,
        ThreatType::SecretLeak,
        ThreatType::DataExfiltration,
        ThreatType::MaliciousContent,
        ThreatType::SystemPromptLeak,
        ThreatType::PolicyViolation,
    ];

    /// The snake_case name used in config files, JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatType::PromptInjection => "prompt_injection",
            ThreatType::Jailbreak => "jailbreak",
            ThreatType::UnicodeAttack => "unicode_attack",
            ThreatType::OutputManipulation => "output_manipulation",
            ThreatType::SensitiveData => "sensitive_data",
            ThreatType::SecretLeak => "secret_leak",
            ThreatType::DataExfiltration => "data_exfiltration",
            ThreatType::MaliciousContent => "malicious_content",
            ThreatType::SystemPromptLeak => "system_prompt_leak",
            ThreatType::PolicyViolation => "policy_violation",
        }
    }
}

impl fmt::Display for ThreatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a threat is, on four levels ordered `Low < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Minor; worth recording, rarely worth blocking.
    Low,
    /// Moderate.
    Medium,
    /// Significant compromise.
    High,
    /// Complete compromise.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A half-open byte range `[start, end)` into the ORIGINAL text that was
/// scanned, always on UTF-8 character boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`; the two are swapped if reversed.
    pub fn new(start: usize, end: usize) -> Span {
        if start <= end { Span { start, end } } else { Span { start: end, end: start } }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True for an empty span.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The slice of `text` this span covers (empty if out of range).
    pub fn slice<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.start..self.end).unwrap_or("")
    }
}

impl From<std::ops::Range<usize>> for Span {
    fn from(r: std::ops::Range<usize>) -> Span {
        Span::new(r.start, r.end)
    }
}

/// Where the text that matched came from, when it was not the plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Encoding {
    /// A base64 segment.
    Base64,
    /// A hex segment (`69676e6f7265`, `\x69\x67`).
    Hex,
    /// Percent-encoding (`%69%67`).
    Url,
    /// `\u0069`, `\u{69}` or `&#x69;` escapes.
    UnicodeEscape,
    /// The whole text read with ROT13.
    Rot13,
    /// The text read with leetspeak digits and symbols turned back to letters.
    Leetspeak,
    /// Unicode tag characters (U+E0000 block, "ASCII smuggling").
    TagCharacters,
    /// Bytes hidden in variation selectors.
    VariationSelectors,
    /// Letters spread out by spaces or punctuation (`i g n o r e`).
    Spaced,
}

impl Encoding {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Url => "url",
            Encoding::UnicodeEscape => "unicode_escape",
            Encoding::Rot13 => "rot13",
            Encoding::Leetspeak => "leetspeak",
            Encoding::TagCharacters => "tag_characters",
            Encoding::VariationSelectors => "variation_selectors",
            Encoding::Spaced => "spaced",
        }
    }
}

/// One finding of one scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threat {
    /// The threat type.
    #[serde(rename = "type")]
    pub kind: ThreatType,
    /// The technique within the type, e.g. `direct_injection`, `email`, `zero_width`.
    pub category: String,
    /// How bad it is.
    pub severity: Severity,
    /// How sure the scanner is, in `[0, 1]`.
    pub confidence: f64,
    /// Bytes of the original text that carry the threat.
    pub span: Span,
    /// A short human-readable reason, never the full matched secret.
    pub evidence: String,
    /// The id of the scanner that raised it.
    pub scanner: String,
    /// The rule inside the scanner, when it has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Set when the match was found only after decoding this encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded_from: Option<Encoding>,
    /// Scanner-specific facts about the finding, e.g. `cwe = "CWE-78"` for
    /// unsafe code or `signal = "compliance"` for a harmful response.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl Threat {
    /// A threat with its confidence clamped into `[0, 1]` (NaN becomes 0).
    pub fn new(
        kind: ThreatType,
        category: impl Into<String>,
        severity: Severity,
        confidence: f64,
        span: Span,
        evidence: impl Into<String>,
        scanner: impl Into<String>,
    ) -> Threat {
        Threat {
            kind,
            category: category.into(),
            severity,
            confidence: clamp_unit(confidence),
            span,
            evidence: evidence.into(),
            scanner: scanner.into(),
            rule: None,
            decoded_from: None,
            metadata: std::collections::BTreeMap::new(),
        }
    }

    /// Adds a metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Threat {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Names the rule that matched.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Threat {
        self.rule = Some(rule.into());
        self
    }

    /// Marks the threat as found inside decoded text.
    pub fn with_decoded_from(mut self, encoding: Option<Encoding>) -> Threat {
        self.decoded_from = encoding;
        self
    }
}

/// Clamps a score into `[0, 1]`; NaN maps to 0.
pub fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// What the policy decided for one analysed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Pass the text on unchanged.
    #[default]
    Allow,
    /// Pass on the sanitized text (secrets and PII redacted, invisible characters stripped).
    Sanitize,
    /// Refuse the text.
    Block,
}

impl Verdict {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Sanitize => "sanitize",
            Verdict::Block => "block",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of the model a text was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A prompt going to the model.
    Input,
    /// A completion coming from the model.
    Output,
    /// Untrusted content the model will read: a document, an e-mail, a
    /// tool result (see [`ContextKind`](crate::ContextKind)).
    Context,
}

impl Stage {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Output => "output",
            Stage::Context => "context",
        }
    }
}

/// Time one scanner took on one text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannerTiming {
    /// The scanner id.
    pub scanner: String,
    /// Wall time, in nanoseconds.
    pub nanos: u64,
}

/// One placeholder the sanitizer put in place of a secret or PII value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// The placeholder, e.g. `[REDACTED_EMAIL_1]`.
    pub placeholder: String,
    /// The value it replaced. Present only when reversible redaction is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// Where the value was in the original text.
    pub span: Span,
}

/// The result of [`analyze_input`](crate::SecurityEngine::analyze_input),
/// [`analyze_context`](crate::SecurityEngine::analyze_context) or
/// [`validate_output`](crate::SecurityEngine::validate_output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub(crate) stage: Stage,
    pub(crate) threats: Vec<Threat>,
    pub(crate) confidence: f64,
    pub(crate) verdict: Verdict,
    pub(crate) analysis_time: Duration,
    pub(crate) timings: Vec<ScannerTiming>,
    pub(crate) sanitized: Option<String>,
    pub(crate) redactions: Vec<Redaction>,
    pub(crate) refusal: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) context: Option<crate::context::ContextKind>,
}

impl Analysis {
    /// True when the policy lets the text through unchanged (verdict `allow`).
    ///
    /// Threats below the policy's thresholds are still listed in
    /// [`threats`](Self::threats) even when the text is secure.
    pub fn is_secure(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// Every threat found, ordered by span start.
    pub fn threats(&self) -> &[Threat] {
        &self.threats
    }

    /// How likely the text is an attack or a leak, in `[0, 1]`: the
    /// noisy-OR of the threat confidences (0 when nothing was found).
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// What the policy decided.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Wall time of the whole analysis.
    pub fn analysis_time(&self) -> Duration {
        self.analysis_time
    }

    /// Time per scanner, in the order they ran.
    pub fn timings(&self) -> &[ScannerTiming] {
        &self.timings
    }

    /// The sanitized text when the verdict is `sanitize` (or when the engine
    /// was asked to always sanitize); `None` otherwise.
    pub fn sanitized(&self) -> Option<&str> {
        self.sanitized.as_deref()
    }

    /// The placeholders the sanitizer used.
    pub fn redactions(&self) -> &[Redaction] {
        &self.redactions
    }

    /// For completions: where the model refused ("I'm sorry, but I can't…"), if it did.
    pub fn refusal(&self) -> Option<Span> {
        self.refusal
    }

    /// Which side of the model the text was on.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// For [`analyze_context`](crate::SecurityEngine::analyze_context): the
    /// kind of content that was analysed.
    pub fn context(&self) -> Option<crate::context::ContextKind> {
        self.context
    }

    /// The highest severity among the threats, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.threats.iter().map(|t| t.severity).max()
    }

    /// True when any threat has the given type.
    pub fn has(&self, kind: ThreatType) -> bool {
        self.threats.iter().any(|t| t.kind == kind)
    }
}

/// Noisy-OR of independent confidences: `1 - Π(1 - c)`.
pub fn noisy_or(confidences: impl IntoIterator<Item = f64>) -> f64 {
    let miss: f64 = confidences.into_iter().map(|c| 1.0 - clamp_unit(c)).product();
    clamp_unit(1.0 - miss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_low_to_critical() {
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::High < Severity::Critical);
    }

    #[test]
    fn confidence_is_clamped() {
        let t = Threat::new(ThreatType::Jailbreak, "dan", Severity::High, 7.0, Span::new(0, 1), "", "x");
        assert_eq!(t.confidence, 1.0);
        let t = Threat::new(ThreatType::Jailbreak, "dan", Severity::High, f64::NAN, Span::new(0, 1), "", "x");
        assert_eq!(t.confidence, 0.0);
    }

    #[test]
    fn noisy_or_combines() {
        assert_eq!(noisy_or([]), 0.0);
        assert!((noisy_or([0.5, 0.5]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn threat_type_names_round_trip_through_serde() {
        for t in ThreatType::ALL {
            let s = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(s, format!("\"{}\"", t.as_str()));
        }
    }
}
