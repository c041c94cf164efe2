//! What each switch of the security model does: the one table that maps a
//! switch's path (`section.slot.switch`) to engine controls ([`Knob`]s),
//! to a control only the server has ([`ServerRequirement`]), or to a
//! refusal with the reason the build cannot honour it.
//!
//! A knob named by several switches runs only if every one of them that is
//! set is on: switching any of them off switches it off. A switch set on
//! turns its knob on even where the engine's config had it off (the
//! classifier, for one).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::SecurityConfig;
use crate::types::{ThreatType, Verdict};

/// An engine control a switch of the security model turns on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Knob {
    /// `prompt_injection_detection`: the injection rules, intent grammar and indirect scanner.
    PromptInjection,
    /// `jailbreak_detection`: the jailbreak rules, suffix and persuasion scanners.
    Jailbreak,
    /// `unicode_attack_detection`: the Unicode scanner's reports.
    UnicodeReport,
    /// Normalizer steps that fold look-alike letters and strip combining marks
    /// (`threat_model.unicode.homoglyph_attacks`, `unicode_normalization_attacks`).
    Normalize,
    /// Normalizer steps that decode base64/hex/URL/ROT13/leetspeak, escapes and
    /// tag smuggling (`threat_model.unicode.encoding_attacks`,
    /// `unicode_escape_attacks`, `unicode_encoding_attacks`).
    Decode,
    /// `classifier.enabled`: the learned prompt-attack classifier.
    Classifier,
    /// `threat_model.prompt_injection.indirect_injection`: instructions planted for an AI reader.
    Indirect,
    /// `threat_model.jailbreak.persuasion`: harmful requests wrapped in persuasion.
    Persuasion,
    /// `sanitize.strip_invisible`: sanitized text drops invisible characters.
    StripInvisible,
    /// `sanitize.always`: every analysis carries sanitized text.
    SanitizeAlways,
    /// `output_validation`: the output validators run at all.
    OutputValidation,
    /// `output.secrets`.
    OutSecrets,
    /// `output.pii`.
    OutPii,
    /// `output.exfiltration`.
    OutExfiltration,
    /// `output.markup`.
    OutMarkup,
    /// `output.format`.
    OutFormat,
    /// `output.system_prompt_leak`.
    OutLeakage,
    /// `output.harmful_content`.
    OutHarmful,
    /// `output.unsafe_code`.
    OutUnsafeCode,
    /// `output.refusal_detection`.
    OutRefusal,
    /// `input_data.secrets`: secrets in prompts.
    InSecrets,
    /// `input_data.pii`: personal data in prompts.
    InPii,
    /// Policy `block` for prompt injection, jailbreak and Unicode attacks; off: they are reported, allowed.
    BlockThreats,
    /// Policy `block` for malicious content and policy violations; off: reported, allowed.
    BlockContent,
    /// Policy `block` for output manipulation (format); off: reported, allowed.
    BlockFormat,
    /// Policy `block` for data exfiltration and system-prompt leaks; off: reported, allowed.
    BlockPolicy,
    /// Policy `sanitize` for secrets and personal data; off: reported, allowed.
    SanitizeData,
    /// Redundant validation applies to prompts.
    RecheckInput,
    /// Redundant validation applies to completions.
    RecheckOutput,
    /// Redundant validation re-scans the sanitized text.
    FinalRecheck,
    /// Redundant validation runs every scanner twice and compares.
    Consistency,
    /// `Analysis::timings`: time per scanner.
    Timings,
    /// The threat-intelligence scanners (needs a loaded feed).
    ThreatIntel,
}

impl Knob {
    /// What the knob sets, for the flag table.
    pub fn describe(self) -> &'static str {
        use Knob::*;
        match self {
            PromptInjection => "`prompt_injection_detection`",
            Jailbreak => "`jailbreak_detection`",
            UnicodeReport => "`unicode_attack_detection`",
            Normalize => "normalizer: homoglyph folding, combining-mark stripping",
            Decode => "normalizer: encoding, escape and tag decoding",
            Classifier => "`classifier.enabled`",
            Indirect => "`threat_model.prompt_injection.indirect_injection`",
            Persuasion => "`threat_model.jailbreak.persuasion`",
            StripInvisible => "`sanitize.strip_invisible`",
            SanitizeAlways => "`sanitize.always`",
            OutputValidation => "`output_validation`",
            OutSecrets => "`output.secrets`",
            OutPii => "`output.pii`",
            OutExfiltration => "`output.exfiltration`",
            OutMarkup => "`output.markup`",
            OutFormat => "`output.format`",
            OutLeakage => "`output.system_prompt_leak`",
            OutHarmful => "`output.harmful_content`",
            OutUnsafeCode => "`output.unsafe_code`",
            OutRefusal => "`output.refusal_detection`",
            InSecrets => "`input_data.secrets`",
            InPii => "`input_data.pii`",
            BlockThreats => "policy: block injection/jailbreak/Unicode",
            BlockContent => "policy: block malicious content/policy violation",
            BlockFormat => "policy: block output manipulation",
            BlockPolicy => "policy: block exfiltration/prompt leak",
            SanitizeData => "policy: sanitize secrets/PII",
            RecheckInput => "redundant checks on prompts",
            RecheckOutput => "redundant checks on completions",
            FinalRecheck => "re-scan of the sanitized text",
            Consistency => "two scanner passes compared",
            Timings => "`Analysis::timings`",
            ThreatIntel => "threat-intelligence scanners (`SecurityEngine::with_threat_intel`)",
        }
    }

    /// Every knob.
    pub const ALL: [Knob; 33] = {
        use Knob::*;
        [
            PromptInjection,
            Jailbreak,
            UnicodeReport,
            Normalize,
            Decode,
            Classifier,
            Indirect,
            Persuasion,
            StripInvisible,
            SanitizeAlways,
            OutputValidation,
            OutSecrets,
            OutPii,
            OutExfiltration,
            OutMarkup,
            OutFormat,
            OutLeakage,
            OutHarmful,
            OutUnsafeCode,
            OutRefusal,
            InSecrets,
            InPii,
            BlockThreats,
            BlockContent,
            BlockFormat,
            BlockPolicy,
            SanitizeData,
            RecheckInput,
            RecheckOutput,
            FinalRecheck,
            Consistency,
            Timings,
            ThreatIntel,
        ]
    };
}

/// A control only `llmsec serve` can provide. A profile that asks for one
/// lists it in [`SecurityProfile::server_requirements`](crate::SecurityProfile::server_requirements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerRequirement {
    /// Every API call authenticated with an API key.
    ApiKeys,
    /// API keys limited to scopes (`ingest`, `analyze`, `read`, `admin`).
    Scopes,
    /// A key never sees another tenant's data.
    TenantIsolation,
    /// The append-only, hash-chained audit log.
    AuditLog,
    /// `/metrics` (request latency, errors, threats).
    Metrics,
    /// Sentinel's statistical detectors over telemetry.
    AnomalyDetection,
    /// Sentinel's behavioral (per-entity baseline) detectors.
    BehavioralDetection,
    /// Anomaly acknowledge/resolve through the API.
    AnomalyTriage,
    /// Time to acknowledge and to resolve anomalies (MTTA/MTTR) in the
    /// reports and the on-call view (`/api/v1/oncall`).
    IncidentTiming,
    /// Sentinel's shield action: block an entity for a duration.
    ShieldActions,
    /// Ending a blocked subject's gateway streams in flight and refusing
    /// its next calls (every server: enforcements reach the gateway's relays).
    SessionTermination,
    /// A tenant-wide block switch (`/api/v1/lockdown`, GraphQL `lockdown`), audited.
    Lockdown,
    /// Flagged requests and completions held for human review, released
    /// or discarded by a `triage` key (`[quarantine] enabled`).
    Quarantine,
    /// Decaying risk scores per user, session and application
    /// (`/api/v1/risk`, GraphQL `riskScores`, the Rego input's `request.risk`).
    RiskScoring,
    /// Subjects refused at or above a risk score (`[risk] block_above`).
    RiskPolicy,
    /// Threats and anomalies correlated across users and sessions into
    /// campaigns with attribution (`[campaigns] enabled`, `/api/v1/campaigns`).
    Correlation,
    /// Escalation chains for unacknowledged anomalies (`[[sentinel.escalations]]`).
    Escalation,
    /// Sentinel's alert action to receivers.
    Alerts,
    /// Alerts sent as e-mail (an `email` receiver an alert action names).
    EmailNotification,
    /// Alerts sent as SMS (an `sms` receiver an alert action names).
    SmsNotification,
    /// Sentinel's incident action (an incident manager over HTTP).
    IncidentActions,
    /// Signed webhooks from the durable outbox.
    Webhooks,
    /// Stored prompts deleted after the retention period.
    Retention,
    /// Prompts stored redacted or not at all.
    RedactedStorage,
    /// Stored prompt and completion text encrypted at rest (`[storage.encryption]`).
    EncryptionAtRest,
    /// Every stored kind of record tagged with a declared purpose
    /// (`[privacy] purposes`, `require_purpose`).
    PurposeTags,
}

impl fmt::Display for ServerRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// What one switch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// On: these engine controls run; off: they do not.
    Engine(&'static [Knob]),
    /// On: the server must provide this control.
    Server(ServerRequirement),
    /// On: refused, for this reason.
    Refused(&'static str),
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disposition::Engine(knobs) => {
                let parts: Vec<&str> = knobs.iter().map(|k| k.describe()).collect();
                write!(f, "engine: {}", parts.join(", "))
            }
            Disposition::Server(r) => write!(f, "server requirement `{r}`"),
            Disposition::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

const RISK: &str = "risk is scored per user, session and application (server), not per text, context or intent";
const INTEL: &str = "feeds are matched (threat_feeds), but no threat analysis, modeling or hunting is built on them";
const INTEL_MODELS: &str = "no learned model over threat intelligence";
const COMPLIANCE: &str = "a control of the framework, not one the engine can enforce; the server's posture report (`llmsec report --posture-only`, `GET /api/v1/reports/posture`) says which of the framework's controls a deployment meets";
const INCIDENT: &str = "no investigation, coordination or recovery workflow in this build (quarantine, session termination, lockdown and escalation are server requirements)";
const ENCRYPTION: &str = "no TLS of its own (left to a proxy); stored prompts are encrypted at rest only by the server's [storage.encryption]";
const CONVERSATION: &str = "the engine judges one text at a time; no multi-turn conversation analysis";
const ACCURACY: &str = "the engine keeps no personal data whose accuracy it could maintain";
const PRACTICE: &str = "a practice of the team, not a control the software can run";
const HOST: &str = "no host metrics; use a node exporter";
const REPORTS: &str = "reports are the server's (`llmsec report`, `GET /api/v1/reports`: volumes, blocks, threats, MTTA/MTTR, posture), not an engine control";
const ANALYTICS: &str =
    "no trend, context or intent analytics in this build (correlation and attribution are the server's campaigns)";
const ML_ANOMALY: &str = "Sentinel's anomaly detectors are statistical; no learned anomaly model";
const FORMAT_IN: &str = "prompts have no expected format; format validation applies to completions";
const TEXT_POLICY: &str = "plain text has no format to validate";
const INTERMEDIATE: &str = "the engine sees the prompt and the completion, no step between them";
const INFRA: &str = "network and endpoint security sit outside this software (firewall, TLS proxy, host agent)";

/// The detectors of the engine's three input scanners.
const DETECT: &[Knob] = &[Knob::PromptInjection, Knob::Jailbreak, Knob::UnicodeReport];
const RULES: &[Knob] = &[Knob::PromptInjection, Knob::Jailbreak];

/// What the switch at `path` does, or `None` for a path that is no switch.
pub fn disposition(path: &str) -> Option<Disposition> {
    use Disposition::{Engine as E, Refused as R, Server as S};
    use Knob::*;
    use ServerRequirement as Q;
    let (section, rest) = path.split_once('.')?;
    // Whole sections with one answer.
    match section {
        "regulatory_compliance" | "industry_standards" => return Some(R(COMPLIANCE)),
        "security_reporting" => {
            return Some(match rest {
                "technical_reporting.technical_metrics" | "technical_reporting.security_metrics" => S(Q::Metrics),
                _ => R(REPORTS),
            });
        }
        _ => {}
    }
    Some(match path {
        // Defense in depth.
        "multi_layer_security.input_validation_layer.pattern_detection" => E(RULES),
        "multi_layer_security.input_validation_layer.semantic_analysis" => E(&[Classifier]),
        "multi_layer_security.input_validation_layer.behavioral_analysis" => S(Q::BehavioralDetection),
        "multi_layer_security.input_validation_layer.unicode_normalization" => E(&[Normalize]),
        "multi_layer_security.input_validation_layer.encoding_validation" => E(&[Decode]),
        "multi_layer_security.processing_layer.threat_detection" => E(DETECT),
        "multi_layer_security.processing_layer.risk_assessment" => R(RISK),
        "multi_layer_security.processing_layer.context_analysis" => E(&[Indirect]),
        "multi_layer_security.processing_layer.intent_analysis" => E(&[Persuasion]),
        "multi_layer_security.processing_layer.anomaly_detection" => S(Q::AnomalyDetection),
        "multi_layer_security.output_validation_layer.content_validation" => E(&[OutHarmful]),
        "multi_layer_security.output_validation_layer.format_validation" => E(&[OutFormat]),
        "multi_layer_security.output_validation_layer.policy_compliance" => E(&[BlockContent, BlockPolicy]),
        "multi_layer_security.output_validation_layer.sensitive_information_detection" => E(&[OutSecrets, OutPii]),
        "multi_layer_security.output_validation_layer.malicious_content_detection" => {
            E(&[OutMarkup, OutUnsafeCode, OutExfiltration])
        }
        "multi_layer_security.monitoring_layer.real_time_monitoring" => S(Q::Metrics),
        "multi_layer_security.monitoring_layer.threat_intelligence" => E(&[ThreatIntel]),
        "multi_layer_security.monitoring_layer.behavioral_monitoring" => S(Q::BehavioralDetection),
        "multi_layer_security.monitoring_layer.performance_monitoring" => E(&[Timings]),
        "multi_layer_security.monitoring_layer.security_metrics" => S(Q::Metrics),
        "redundant_validation.input_validation" => E(&[RecheckInput]),
        "redundant_validation.output_validation" => E(&[RecheckOutput]),
        "redundant_validation.intermediate_validation" => R(INTERMEDIATE),
        "redundant_validation.final_validation" => E(&[FinalRecheck]),
        "redundant_validation.validation_consistency" => E(&[Consistency]),
        "redundant_validation.validation_redundancy" => E(&[Classifier]),
        // Zero trust.
        "zero_trust_config.continuous_verification" => S(Q::ApiKeys),
        "zero_trust_config.least_privilege_access" => S(Q::Scopes),
        "zero_trust_config.micro_segmentation" => S(Q::TenantIsolation),
        "zero_trust_config.encryption_everywhere" => R(ENCRYPTION),
        "zero_trust_config.audit_everything" => S(Q::AuditLog),
        "zero_trust_config.never_trust" => E(&[SanitizeAlways]),
        "zero_trust_config.always_verify" => E(&[OutputValidation]),
        "continuous_monitoring.real_time_monitoring" => S(Q::Metrics),
        "continuous_monitoring.behavioral_analysis" => S(Q::BehavioralDetection),
        "continuous_monitoring.anomaly_detection" => S(Q::AnomalyDetection),
        "continuous_monitoring.threat_detection" => E(DETECT),
        "continuous_monitoring.incident_response" => S(Q::IncidentActions),
        "continuous_monitoring.threat_intelligence" => E(&[ThreatIntel]),
        "continuous_monitoring.security_metrics" => S(Q::Metrics),
        // Input validation.
        "input_validation.pattern_validation.regex_patterns" => E(RULES),
        "input_validation.pattern_validation.fuzzy_matching" => E(&[Normalize]),
        "input_validation.pattern_validation.semantic_analysis" => E(&[Classifier]),
        "input_validation.pattern_validation.behavioral_analysis" => S(Q::BehavioralDetection),
        "input_validation.content_validation.malicious_content_detection" => E(RULES),
        "input_validation.content_validation.sensitive_information_detection" => E(&[InSecrets, InPii]),
        "input_validation.content_validation.policy_violation_detection" => E(&[BlockThreats]),
        "input_validation.content_validation.format_validation" => R(FORMAT_IN),
        "input_validation.encoding_validation.unicode_normalization" => E(&[Normalize]),
        "input_validation.encoding_validation.encoding_standardization" => E(&[Decode]),
        "input_validation.encoding_validation.character_filtering" => E(&[StripInvisible]),
        "input_validation.encoding_validation.encoding_validation" => E(&[UnicodeReport]),
        "input_validation.context_validation.context_analysis" => E(&[Indirect]),
        "input_validation.context_validation.intent_analysis" => E(&[Persuasion]),
        "input_validation.context_validation.behavioral_analysis" => S(Q::BehavioralDetection),
        "input_validation.context_validation.anomaly_detection" => S(Q::AnomalyDetection),
        // Output validation.
        "output_validation.content_validation.malicious_content_detection" => E(&[OutHarmful, OutUnsafeCode]),
        "output_validation.content_validation.sensitive_information_detection" => E(&[OutSecrets, OutPii]),
        "output_validation.content_validation.policy_violation_detection" => E(&[BlockContent]),
        "output_validation.content_validation.format_validation" => E(&[OutFormat]),
        "output_validation.format_validation.json_validation" => E(&[OutFormat]),
        "output_validation.format_validation.xml_validation" => E(&[OutFormat]),
        "output_validation.format_validation.html_validation" => E(&[OutMarkup]),
        "output_validation.format_validation.format_confusion_detection" => E(&[BlockFormat]),
        "output_validation.policy_validation.content_policy" => E(&[BlockContent]),
        "output_validation.policy_validation.security_policy" => E(&[BlockPolicy]),
        "output_validation.policy_validation.compliance_policy" => R(COMPLIANCE),
        "output_validation.policy_validation.privacy_policy" => E(&[SanitizeData]),
        "output_validation.security_validation.threat_detection" => E(&[OutputValidation]),
        "output_validation.security_validation.risk_assessment" => R(RISK),
        "output_validation.security_validation.security_analysis" => E(&[OutLeakage, OutExfiltration]),
        "output_validation.security_validation.vulnerability_assessment" => E(&[OutUnsafeCode]),
        // Threat detection.
        "threat_detection.pattern_detection.regex_patterns" => E(RULES),
        "threat_detection.pattern_detection.fuzzy_matching" => E(&[Normalize]),
        "threat_detection.pattern_detection.semantic_analysis" => E(&[Classifier]),
        "threat_detection.pattern_detection.behavioral_analysis" => S(Q::BehavioralDetection),
        "threat_detection.anomaly_detection.statistical_analysis" => S(Q::AnomalyDetection),
        "threat_detection.anomaly_detection.behavioral_analysis" => S(Q::BehavioralDetection),
        "threat_detection.anomaly_detection.temporal_analysis" => S(Q::AnomalyDetection),
        "threat_detection.anomaly_detection.contextual_analysis" => S(Q::AnomalyDetection),
        "threat_detection.machine_learning.classification_models" => E(&[Classifier]),
        "threat_detection.machine_learning.anomaly_detection_models" => R(ML_ANOMALY),
        "threat_detection.machine_learning.behavioral_models" => S(Q::BehavioralDetection),
        "threat_detection.machine_learning.threat_intelligence_models" => R(INTEL_MODELS),
        "threat_detection.threat_intelligence.threat_feeds" => E(&[ThreatIntel]),
        "threat_detection.threat_intelligence.threat_analysis"
        | "threat_detection.threat_intelligence.threat_modeling"
        | "threat_detection.threat_intelligence.threat_hunting" => R(INTEL),
        // Behavioral analysis.
        "behavioral_analysis.user_behavior_analysis.user_patterns" => S(Q::BehavioralDetection),
        "behavioral_analysis.user_behavior_analysis.user_anomalies" => S(Q::AnomalyDetection),
        "behavioral_analysis.user_behavior_analysis.user_risk_scoring" => S(Q::RiskScoring),
        "behavioral_analysis.user_behavior_analysis.user_profiling" => S(Q::BehavioralDetection),
        "behavioral_analysis.conversation_analysis.conversation_risk_scoring" => S(Q::RiskScoring),
        p if p.starts_with("behavioral_analysis.conversation_analysis.") => R(CONVERSATION),
        "behavioral_analysis.context_analysis.context_patterns" => E(&[Indirect]),
        "behavioral_analysis.context_analysis.context_anomalies" => R(ANALYTICS),
        "behavioral_analysis.context_analysis.context_risk_scoring" => R(RISK),
        "behavioral_analysis.context_analysis.context_profiling" => R(ANALYTICS),
        "behavioral_analysis.intent_analysis.intent_classification" => E(&[Persuasion]),
        "behavioral_analysis.intent_analysis.intent_anomalies" => R(ANALYTICS),
        "behavioral_analysis.intent_analysis.intent_risk_scoring" => R(RISK),
        "behavioral_analysis.intent_analysis.intent_profiling" => R(ANALYTICS),
        // Threat mitigation.
        "threat_mitigation.input_sanitization.character_filtering" => E(&[StripInvisible]),
        "threat_mitigation.input_sanitization.content_filtering" => E(&[SanitizeData]),
        "threat_mitigation.input_sanitization.encoding_standardization" => E(&[Decode]),
        "threat_mitigation.input_sanitization.unicode_normalization" => E(&[Normalize]),
        "threat_mitigation.output_filtering.content_filtering" => E(&[SanitizeData]),
        "threat_mitigation.output_filtering.format_filtering" => E(&[BlockFormat]),
        "threat_mitigation.output_filtering.policy_filtering" => E(&[BlockContent]),
        "threat_mitigation.output_filtering.security_filtering" => E(&[BlockPolicy]),
        "threat_mitigation.response_blocking.threat_blocking" => E(&[BlockThreats]),
        "threat_mitigation.response_blocking.content_blocking" => E(&[BlockContent]),
        "threat_mitigation.response_blocking.format_blocking" => E(&[BlockFormat]),
        "threat_mitigation.response_blocking.policy_blocking" => E(&[BlockPolicy]),
        "threat_mitigation.incident_response.automatic_response" => S(Q::ShieldActions),
        "threat_mitigation.incident_response.manual_response" => S(Q::AnomalyTriage),
        "threat_mitigation.incident_response.escalation" => S(Q::Escalation),
        "threat_mitigation.incident_response.notification" => S(Q::Webhooks),
        // Incident response.
        "incident_response.automatic_response.user_blocking" => S(Q::ShieldActions),
        "incident_response.automatic_response.session_termination" => S(Q::SessionTermination),
        "incident_response.automatic_response.system_lockdown" => S(Q::Lockdown),
        "incident_response.automatic_response.threat_quarantine" => S(Q::Quarantine),
        p if p.starts_with("incident_response.automatic_response.") => R(INCIDENT),
        "incident_response.manual_response.incident_investigation" => S(Q::AnomalyTriage),
        p if p.starts_with("incident_response.manual_response.") => R(INCIDENT),
        p if p.starts_with("incident_response.escalation.") => S(Q::Escalation),
        "incident_response.notification.alert_notification" => S(Q::Alerts),
        "incident_response.notification.webhook_notification" => S(Q::Webhooks),
        "incident_response.notification.email_notification" => S(Q::EmailNotification),
        "incident_response.notification.sms_notification" => S(Q::SmsNotification),
        // Content security policy.
        "content_security_policy.content_filtering.malicious_content" => E(&[OutHarmful]),
        "content_security_policy.content_filtering.sensitive_information" => E(&[OutSecrets, OutPii, InSecrets, InPii]),
        "content_security_policy.content_filtering.policy_violations" => E(&[BlockContent]),
        "content_security_policy.content_filtering.security_threats" => E(&[BlockThreats]),
        "content_security_policy.format_policy.json_policy" => E(&[OutFormat]),
        "content_security_policy.format_policy.xml_policy" => E(&[OutFormat]),
        "content_security_policy.format_policy.html_policy" => E(&[OutMarkup]),
        "content_security_policy.format_policy.text_policy" => R(TEXT_POLICY),
        "content_security_policy.encoding_policy.unicode_policy" => E(&[UnicodeReport]),
        "content_security_policy.encoding_policy.encoding_policy" => E(&[Decode]),
        "content_security_policy.encoding_policy.character_policy" => E(&[StripInvisible]),
        "content_security_policy.encoding_policy.normalization_policy" => E(&[Normalize]),
        "content_security_policy.security_policy.threat_policy" => E(&[BlockThreats]),
        "content_security_policy.security_policy.risk_policy" => S(Q::RiskPolicy),
        "content_security_policy.security_policy.vulnerability_policy" => E(&[OutUnsafeCode]),
        "content_security_policy.security_policy.compliance_policy" => R(COMPLIANCE),
        // Privacy policy.
        "privacy_policy.data_minimization.data_collection" => S(Q::RedactedStorage),
        "privacy_policy.data_minimization.data_processing" => E(&[SanitizeData]),
        "privacy_policy.data_minimization.data_storage" => S(Q::RedactedStorage),
        "privacy_policy.data_minimization.data_retention" => S(Q::Retention),
        p if p.starts_with("privacy_policy.purpose_limitation.") => S(Q::PurposeTags),
        "privacy_policy.storage_limitation.storage_duration" => S(Q::Retention),
        "privacy_policy.storage_limitation.storage_purpose" => S(Q::PurposeTags),
        "privacy_policy.storage_limitation.storage_security" => S(Q::EncryptionAtRest),
        "privacy_policy.storage_limitation.storage_retention" => S(Q::Retention),
        p if p.starts_with("privacy_policy.accuracy.") => R(ACCURACY),
        "privacy_policy.confidentiality.data_encryption" => S(Q::EncryptionAtRest),
        "privacy_policy.confidentiality.access_control" => S(Q::Scopes),
        "privacy_policy.confidentiality.audit_logging" => S(Q::AuditLog),
        "privacy_policy.confidentiality.data_protection" => E(&[SanitizeData]),
        // Monitoring.
        "threat_monitoring.real_time_monitoring.threat_detection" => E(DETECT),
        "threat_monitoring.real_time_monitoring.anomaly_detection" => S(Q::AnomalyDetection),
        "threat_monitoring.real_time_monitoring.behavioral_analysis" => S(Q::BehavioralDetection),
        "threat_monitoring.real_time_monitoring.risk_assessment" => R(RISK),
        "threat_monitoring.threat_intelligence.threat_feeds" => E(&[ThreatIntel]),
        p if p.starts_with("threat_monitoring.threat_intelligence.") => R(INTEL),
        "threat_monitoring.security_metrics.threat_metrics" => S(Q::Metrics),
        "threat_monitoring.security_metrics.risk_metrics" => R(RISK),
        "threat_monitoring.security_metrics.performance_metrics" => S(Q::Metrics),
        "threat_monitoring.security_metrics.compliance_metrics" => R(COMPLIANCE),
        "threat_monitoring.incident_monitoring.incident_detection" => S(Q::AnomalyDetection),
        "threat_monitoring.incident_monitoring.incident_analysis" => S(Q::AnomalyTriage),
        "threat_monitoring.incident_monitoring.incident_response" => S(Q::IncidentActions),
        "threat_monitoring.incident_monitoring.incident_recovery" => R(INCIDENT),
        p if p.starts_with("performance_monitoring.system_monitoring.") => R(HOST),
        p if p.starts_with("performance_monitoring.application_monitoring.") => S(Q::Metrics),
        "performance_monitoring.security_monitoring.threat_detection_time" => E(&[Timings]),
        "performance_monitoring.security_monitoring.risk_assessment_time" => R(RISK),
        "performance_monitoring.security_monitoring.incident_response_time" => S(Q::IncidentTiming),
        "performance_monitoring.security_monitoring.recovery_time" => S(Q::IncidentTiming),
        p if p.starts_with("performance_monitoring.compliance_monitoring.") => R(COMPLIANCE),
        // Analytics.
        "threat_analytics.risk_analysis.risk_mitigation" => E(&[BlockThreats]),
        p if p.starts_with("threat_analytics.risk_analysis.") => R(RISK),
        "threat_analytics.behavioral_analysis.user_behavior" => S(Q::BehavioralDetection),
        "threat_analytics.behavioral_analysis.application_behavior" => S(Q::AnomalyDetection),
        "threat_analytics.threat_analysis.threat_correlation" => S(Q::Correlation),
        "threat_analytics.threat_analysis.threat_attribution" => S(Q::Correlation),
        p if p.starts_with("threat_analytics.") => R(ANALYTICS),
        // Security by design.
        p if p.starts_with("security_by_design.secure_design.") => R(PRACTICE),
        "security_by_design.privacy_by_design.data_minimization" => S(Q::RedactedStorage),
        "security_by_design.privacy_by_design.purpose_limitation" => S(Q::PurposeTags),
        "security_by_design.privacy_by_design.storage_limitation" => S(Q::Retention),
        "security_by_design.privacy_by_design.accuracy" => R(ACCURACY),
        "security_by_design.privacy_by_design.confidentiality" => E(&[SanitizeData]),
        "security_by_design.default_security.secure_defaults" => R(PRACTICE),
        "security_by_design.default_security.least_privilege" => S(Q::Scopes),
        "security_by_design.default_security.fail_secure" => E(&[FinalRecheck, RecheckInput, RecheckOutput]),
        "security_by_design.default_security.defense_in_depth" => E(&[Consistency, RecheckInput, RecheckOutput]),
        "security_by_design.continuous_security.continuous_monitoring" => S(Q::Metrics),
        p if p.starts_with("security_by_design.continuous_security.") => R(PRACTICE),
        // Security architecture.
        "security_architecture.layered_security.application_security" => E(DETECT),
        "security_architecture.layered_security.data_security" => E(&[SanitizeData]),
        p if p.starts_with("security_architecture.layered_security.") => R(INFRA),
        "security_architecture.defense_in_depth.multiple_layers" => E(&[OutputValidation]),
        "security_architecture.defense_in_depth.redundant_controls" => E(&[FinalRecheck, RecheckInput, RecheckOutput]),
        "security_architecture.defense_in_depth.diverse_controls" => E(&[Classifier]),
        "security_architecture.defense_in_depth.comprehensive_coverage" => R(PRACTICE),
        "security_architecture.zero_trust.never_trust" => E(&[SanitizeAlways]),
        "security_architecture.zero_trust.always_verify" => E(&[OutputValidation]),
        "security_architecture.zero_trust.least_privilege" => S(Q::Scopes),
        "security_architecture.zero_trust.continuous_monitoring" => S(Q::Metrics),
        "security_architecture.security_automation.automated_detection" => E(DETECT),
        "security_architecture.security_automation.automated_response" => S(Q::ShieldActions),
        "security_architecture.security_automation.automated_remediation" => E(&[SanitizeData]),
        "security_architecture.security_automation.automated_compliance" => R(COMPLIANCE),
        // Security operations center.
        "security_operations_center.threat_hunting.behavioral_analysis" => S(Q::BehavioralDetection),
        "security_operations_center.threat_hunting.anomaly_detection" => S(Q::AnomalyDetection),
        "security_operations_center.threat_hunting.threat_intelligence" => E(&[ThreatIntel]),
        p if p.starts_with("security_operations_center.threat_hunting.") => R(INTEL),
        "security_operations_center.incident_response.incident_detection" => S(Q::AnomalyDetection),
        "security_operations_center.incident_response.incident_analysis" => S(Q::AnomalyTriage),
        "security_operations_center.incident_response.incident_containment" => S(Q::ShieldActions),
        "security_operations_center.incident_response.incident_recovery" => R(INCIDENT),
        "security_operations_center.security_monitoring.real_time_monitoring" => S(Q::Metrics),
        "security_operations_center.security_monitoring.threat_detection" => E(DETECT),
        "security_operations_center.security_monitoring.risk_assessment" => R(RISK),
        "security_operations_center.security_monitoring.compliance_monitoring" => R(COMPLIANCE),
        "security_operations_center.security_analytics.performance_analytics" => S(Q::Metrics),
        "security_operations_center.security_analytics.behavioral_analytics" => S(Q::BehavioralDetection),
        p if p.starts_with("security_operations_center.security_analytics.") => R(ANALYTICS),
        // Governance.
        "security_governance.policy_management.policy_monitoring" => S(Q::AuditLog),
        "security_governance.security_governance.security_monitoring" => S(Q::Metrics),
        p if p.starts_with("security_governance.") => R(PRACTICE),
        _ => return None,
    })
}

/// The engine side of an evaluated profile: what the engine does beyond
/// its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Runtime {
    /// Redundant checks on `[prompts, completions]`.
    pub recheck: [bool; 2],
    /// Re-scan the sanitized text.
    pub final_recheck: bool,
    /// Run every scanner twice and compare.
    pub consistency: bool,
    /// Fill `Analysis::timings`.
    pub timings: bool,
    /// Run the threat-intelligence scanners when feeds are loaded.
    pub intel: bool,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime { recheck: [false, false], final_recheck: false, consistency: false, timings: true, intel: true }
    }
}

/// Turns `Block` (or, for `SanitizeData`, `Sanitize`) rules of these types
/// into `Allow`: the findings are still reported.
fn relax(cfg: &mut SecurityConfig, types: &[ThreatType], from: Verdict) {
    for &t in types {
        let mut rule = cfg.policy.rule(t);
        if rule.action == from {
            rule.action = Verdict::Allow;
            cfg.policy = cfg.policy.clone().with_rule(t, rule);
        }
    }
}

/// Sets one knob on a config (or the runtime).
pub(crate) fn apply(knob: Knob, on: bool, cfg: &mut SecurityConfig, rt: &mut Runtime) {
    use Knob::*;
    let u = &mut cfg.threat_model.unicode;
    match knob {
        PromptInjection => cfg.prompt_injection_detection = on,
        Jailbreak => cfg.jailbreak_detection = on,
        UnicodeReport => cfg.unicode_attack_detection = on,
        Normalize => {
            u.homoglyph_attacks = on;
            u.unicode_normalization_attacks = on;
        }
        Decode => {
            u.encoding_attacks = on;
            u.unicode_escape_attacks = on;
            u.unicode_encoding_attacks = on;
        }
        Classifier => cfg.classifier.enabled = on,
        Indirect => cfg.threat_model.prompt_injection.indirect_injection = on,
        Persuasion => cfg.threat_model.jailbreak.persuasion = on,
        StripInvisible => cfg.sanitize.strip_invisible = on,
        SanitizeAlways => cfg.sanitize.always = on,
        OutputValidation => cfg.output_validation = on,
        OutSecrets => cfg.output.secrets = on,
        OutPii => cfg.output.pii = on,
        OutExfiltration => cfg.output.exfiltration = on,
        OutMarkup => cfg.output.markup = on,
        OutFormat => cfg.output.format = on,
        OutLeakage => cfg.output.system_prompt_leak = on,
        OutHarmful => cfg.output.harmful_content = on,
        OutUnsafeCode => cfg.output.unsafe_code = on,
        OutRefusal => cfg.output.refusal_detection = on,
        InSecrets => cfg.input_data.secrets = on,
        InPii => cfg.input_data.pii = on,
        BlockThreats if !on => {
            relax(cfg, &[ThreatType::PromptInjection, ThreatType::Jailbreak, ThreatType::UnicodeAttack], Verdict::Block)
        }
        BlockContent if !on => relax(cfg, &[ThreatType::MaliciousContent, ThreatType::PolicyViolation], Verdict::Block),
        BlockFormat if !on => relax(cfg, &[ThreatType::OutputManipulation], Verdict::Block),
        BlockPolicy if !on => relax(cfg, &[ThreatType::DataExfiltration, ThreatType::SystemPromptLeak], Verdict::Block),
        SanitizeData if !on => relax(cfg, &[ThreatType::SensitiveData, ThreatType::SecretLeak], Verdict::Sanitize),
        // On, the policy's own rules stand.
        BlockThreats | BlockContent | BlockFormat | BlockPolicy | SanitizeData => {}
        RecheckInput => rt.recheck[0] = on,
        RecheckOutput => rt.recheck[1] = on,
        FinalRecheck => rt.final_recheck = on,
        Consistency => rt.consistency = on,
        Timings => rt.timings = on,
        ThreatIntel => rt.intel = on,
    }
}
