//! Turns threats into a verdict: allow, sanitize or block, per threat type
//! with severity and confidence thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::types::{Severity, Threat, ThreatType, Verdict};

/// What to do with threats of one type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// The verdict a threat at or above both thresholds triggers.
    pub action: Verdict,
    /// Threats below this severity are allowed.
    #[serde(default = "low")]
    pub min_severity: Severity,
    /// Threats below this confidence are allowed.
    #[serde(default)]
    pub min_confidence: f64,
}

fn low() -> Severity {
    Severity::Low
}

impl PolicyRule {
    /// A rule.
    pub fn new(action: Verdict, min_severity: Severity, min_confidence: f64) -> PolicyRule {
        PolicyRule { action, min_severity, min_confidence }
    }

    /// The verdict this rule gives one threat.
    pub fn verdict_for(&self, t: &Threat) -> Verdict {
        if t.severity >= self.min_severity && t.confidence >= self.min_confidence {
            self.action
        } else {
            Verdict::Allow
        }
    }
}

/// The built-in rule for a threat type.
pub fn default_rule(t: ThreatType) -> PolicyRule {
    use Severity::*;
    use Verdict::*;
    match t {
        // Weak rules are graded Low; the classifier reports only above its
        // calibrated operating threshold. Severity is the gate here.
        ThreatType::PromptInjection | ThreatType::Jailbreak => PolicyRule::new(Block, Medium, 0.0),
        ThreatType::UnicodeAttack => PolicyRule::new(Sanitize, Medium, 0.0),
        ThreatType::SensitiveData | ThreatType::SecretLeak => PolicyRule::new(Sanitize, Low, 0.0),
        ThreatType::OutputManipulation
        | ThreatType::DataExfiltration
        | ThreatType::MaliciousContent
        | ThreatType::SystemPromptLeak
        | ThreatType::PolicyViolation => PolicyRule::new(Block, Medium, 0.0),
    }
}

/// Per-type rules; types not listed use [`default_rule`]. In a config file:
///
/// ```toml
/// [policy.prompt_injection]
/// action = "block"
/// min_severity = "medium"
/// min_confidence = 0.5
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyConfig {
    rules: BTreeMap<ThreatType, PolicyRule>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig { rules: ThreatType::ALL.iter().map(|&t| (t, default_rule(t))).collect() }
    }
}

impl PolicyConfig {
    /// The built-in policy.
    pub fn new() -> PolicyConfig {
        PolicyConfig::default()
    }

    /// Overrides the rule for one type.
    pub fn with_rule(mut self, t: ThreatType, rule: PolicyRule) -> PolicyConfig {
        self.rules.insert(t, rule);
        self
    }

    /// The rule in force for a type.
    pub fn rule(&self, t: ThreatType) -> PolicyRule {
        self.rules.get(&t).copied().unwrap_or_else(|| default_rule(t))
    }

    /// The verdict for a set of threats: the strictest any threat triggers.
    pub fn verdict(&self, threats: &[Threat]) -> Verdict {
        threats.iter().map(|t| self.rule(t.kind).verdict_for(t)).max().unwrap_or(Verdict::Allow)
    }

    /// Checks thresholds.
    pub fn validate(&self) -> Result<(), Error> {
        for (t, r) in &self.rules {
            if !(0.0..=1.0).contains(&r.min_confidence) || r.min_confidence.is_nan() {
                return Err(Error::Config(format!(
                    "policy.{t}.min_confidence must be in [0, 1], got {}",
                    r.min_confidence
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Span;

    fn threat(kind: ThreatType, sev: Severity, conf: f64) -> Threat {
        Threat::new(kind, "x", sev, conf, Span::new(0, 1), "", "test")
    }

    #[test]
    fn strictest_verdict_wins() {
        let p = PolicyConfig::default();
        let ts = [
            threat(ThreatType::SensitiveData, Severity::Low, 0.9),
            threat(ThreatType::PromptInjection, Severity::High, 0.9),
        ];
        assert_eq!(p.verdict(&ts), Verdict::Block);
        assert_eq!(p.verdict(&ts[..1]), Verdict::Sanitize);
        assert_eq!(p.verdict(&[]), Verdict::Allow);
    }

    #[test]
    fn thresholds_let_weak_threats_through() {
        let p = PolicyConfig::default();
        assert_eq!(p.verdict(&[threat(ThreatType::PromptInjection, Severity::Low, 0.9)]), Verdict::Allow);
        let strict =
            p.clone().with_rule(ThreatType::PromptInjection, PolicyRule::new(Verdict::Block, Severity::Medium, 0.5));
        assert_eq!(strict.verdict(&[threat(ThreatType::PromptInjection, Severity::High, 0.3)]), Verdict::Allow);
    }

    #[test]
    fn partial_policy_file_keeps_defaults_for_other_types() {
        let p: PolicyConfig = toml::from_str("[jailbreak]\naction = \"sanitize\"\n").unwrap_or_default();
        assert_eq!(p.rule(ThreatType::Jailbreak).action, Verdict::Sanitize);
        assert_eq!(p.rule(ThreatType::PromptInjection), default_rule(ThreatType::PromptInjection));
        let bad: Result<PolicyConfig, _> = toml::from_str("[jailbrake]\naction = \"block\"\n");
        assert!(bad.err().map(|e| e.to_string()).unwrap_or_default().contains("jailbrake"));
    }
}
