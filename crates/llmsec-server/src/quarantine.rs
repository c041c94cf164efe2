//! Threat quarantine: the `[quarantine]` section and the hold rule. A
//! request or completion whose findings meet the rule is not answered as
//! usual but held for a person to review: queued in the store (whole, so
//! the reviewer reads what was said and a release hands it back), listed
//! by `GET /api/v1/quarantine`, and released or discarded by a key with
//! the `triage` scope. Nobody deciding within `hold_secs` applies
//! `on_expiry`. The pipeline is [`crate::service::quarantine`].
//!
//! Where items are held: REST and GraphQL analyses (`/api/security/analyze`,
//! `/validate`, their batches, `analyzeInput`, `validateOutput`) answer
//! with `quarantined: {id, status}` beside the usual fields; the gateway
//! answers a held completion with `held_for_review` and the item's id, and
//! hands the original answer back on `GET /v1/quarantine/{id}` once
//! released.

use llm_security::{Severity, Threat, Verdict};
use serde::{Deserialize, Serialize};

/// What happens to an item nobody decided on within `hold_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// It becomes `expired`: never handed out (the safe default).
    #[default]
    Discard,
    /// It is released (decided by `system`).
    Release,
}

/// The `[quarantine]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Hold what meets the rule; off by default.
    pub enabled: bool,
    /// Hold a text with a finding at or above this severity (`low`,
    /// `medium`, `high`, `critical`), whatever its verdict; none: severity
    /// alone holds nothing.
    pub min_severity: Option<Severity>,
    /// Hold a text the policy gave one of these verdicts (`sanitize`,
    /// `block`); default `["block"]`: what would be refused is held for a
    /// person instead.
    pub verdicts: Vec<Verdict>,
    /// How long an item waits for review (60 s to 30 days; default a day).
    pub hold_secs: u64,
    /// `discard` (default) or `release`, applied past `hold_secs`.
    pub on_expiry: OnExpiry,
}

impl Default for QuarantineConfig {
    fn default() -> QuarantineConfig {
        QuarantineConfig {
            enabled: false,
            min_severity: None,
            verdicts: vec![Verdict::Block],
            hold_secs: 86_400,
            on_expiry: OnExpiry::Discard,
        }
    }
}

/// The longest hold: 30 days.
pub const MAX_HOLD_SECS: u64 = 30 * 86_400;

impl QuarantineConfig {
    /// Checks the section; errors name `quarantine.<field>`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(60..=MAX_HOLD_SECS).contains(&self.hold_secs) {
            return Err(("quarantine.hold_secs".into(), format!("must be between 60 and {MAX_HOLD_SECS}")));
        }
        if self.verdicts.contains(&Verdict::Allow) {
            return Err((
                "quarantine.verdicts".into(),
                "allow would hold every text let through; use sanitize or block (or min_severity)".into(),
            ));
        }
        if self.enabled && self.min_severity.is_none() && self.verdicts.is_empty() {
            return Err((
                "quarantine.verdicts".into(),
                "with no verdicts and no min_severity nothing is ever held; set one".into(),
            ));
        }
        Ok(())
    }

    /// Whether a text with this verdict and these findings is held.
    pub fn holds(&self, verdict: Verdict, threats: &[Threat]) -> bool {
        self.enabled
            && (self.verdicts.contains(&verdict)
                || self.min_severity.is_some_and(|min| threats.iter().any(|t| t.severity >= min)))
    }
}

/// The highest severity among `threats` (`""` when there are none).
pub fn max_severity(threats: &[Threat]) -> &'static str {
    threats.iter().map(|t| t.severity).max().map_or("", Severity::as_str)
}

/// What is kept of the findings beside the held text: what was found and
/// where, never the evidence (which quotes the text: the held text lives
/// in its own column only).
pub fn findings(threats: &[Threat]) -> serde_json::Value {
    threats
        .iter()
        .map(|t| {
            serde_json::json!({
                "type": t.kind.as_str(),
                "category": t.category,
                "severity": t.severity.as_str(),
                "confidence": t.confidence,
                "scanner": t.scanner,
                "span": {"start": t.span.start, "end": t.span.end},
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threat(severity: Severity) -> Threat {
        let span = llm_security::Span::new(3, 9);
        Threat::new(llm_security::ThreatType::SecretLeak, "api_key", severity, 0.9, span, "AKIA…", "secrets")
    }

    #[test]
    fn the_rule_holds_by_verdict_or_by_severity_and_only_when_enabled() {
        let mut c = QuarantineConfig { enabled: true, ..QuarantineConfig::default() };
        assert!(c.holds(Verdict::Block, &[]), "the default holds what would be blocked");
        assert!(!c.holds(Verdict::Sanitize, &[threat(Severity::Critical)]));
        c.min_severity = Some(Severity::High);
        assert!(c.holds(Verdict::Sanitize, &[threat(Severity::Low), threat(Severity::High)]));
        assert!(!c.holds(Verdict::Allow, &[threat(Severity::Medium)]));
        c.enabled = false;
        assert!(!c.holds(Verdict::Block, &[threat(Severity::Critical)]), "off holds nothing");
    }

    #[test]
    fn findings_keep_no_evidence() {
        let f = findings(&[threat(Severity::Critical)]);
        assert_eq!(f[0]["type"], "secret_leak");
        assert_eq!(f[0]["severity"], "critical");
        assert_eq!(f[0]["span"]["end"], 9);
        assert!(!f.to_string().contains("AKIA"), "{f}");
        assert_eq!(max_severity(&[threat(Severity::Low), threat(Severity::High)]), "high");
        assert_eq!(max_severity(&[]), "");
    }

    #[test]
    fn invalid_sections_name_the_key() {
        let bad = |c: QuarantineConfig| c.validate().err().map(|(f, _)| f);
        assert_eq!(
            bad(QuarantineConfig { hold_secs: 5, ..Default::default() }).as_deref(),
            Some("quarantine.hold_secs")
        );
        assert_eq!(
            bad(QuarantineConfig { verdicts: vec![Verdict::Allow], ..Default::default() }).as_deref(),
            Some("quarantine.verdicts")
        );
        assert_eq!(
            bad(QuarantineConfig { enabled: true, verdicts: vec![], ..Default::default() }).as_deref(),
            Some("quarantine.verdicts")
        );
        assert_eq!(bad(QuarantineConfig { enabled: true, ..Default::default() }), None);
    }

    #[test]
    fn the_section_reads_from_toml_and_refuses_unknown_keys() {
        let c: QuarantineConfig = toml::from_str(
            "enabled = true\nmin_severity = \"high\"\nverdicts = [\"sanitize\", \"block\"]\nhold_secs = 600\non_expiry = \"release\"\n",
        )
        .unwrap_or_default();
        assert_eq!(
            c,
            QuarantineConfig {
                enabled: true,
                min_severity: Some(Severity::High),
                verdicts: vec![Verdict::Sanitize, Verdict::Block],
                hold_secs: 600,
                on_expiry: OnExpiry::Release,
            }
        );
        let back: QuarantineConfig = toml::from_str(&toml::to_string(&c).unwrap_or_default()).unwrap_or_default();
        assert_eq!(back, c, "round trip");
        let err = toml::from_str::<QuarantineConfig>("enabled = true\nhold_for = 5\n").err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("hold_for")), "{err:?}");
        let err = toml::from_str::<QuarantineConfig>("on_expiry = \"keep\"\n").err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("keep")), "{err:?}");
    }
}
