//! `security_profile = "profile.toml"`: the security model as a file
//! (TOML, YAML or JSON; see docs/SECURITY_MODEL.md), applied when the
//! server starts.
//!
//! The engine part switches the engine's controls; a switch the build
//! cannot honour stops the start with the engine's error naming it. The
//! server part — what only a running server provides — is checked against
//! this configuration: a switch whose control the configuration does not
//! run (anomaly detection with no statistical detector, retention switched
//! off, prompts stored in full…) stops the start too, naming the switch and
//! what to configure. Nothing is accepted and then ignored.

use llm_security::{SecurityEngine, SecurityProfile, ServerRequirement};
use llm_sentinel::SentinelConfig;
use llm_sentinel::action::ActionSpec;

use crate::config::{ConfigError, InputRetention, ReceiverKind, ServerConfig};

/// Why this configuration does not provide `r`, or `None` when it does.
fn unmet(r: ServerRequirement, config: &ServerConfig, sentinel: &SentinelConfig) -> Option<String> {
    let detectors = || sentinel.detectors.iter().filter(|d| d.enabled);
    let has_type = |types: &[&str]| detectors().any(|d| types.contains(&d.kind_name.as_str()));
    let has_action = |f: fn(&ActionSpec) -> bool| detectors().any(|d| d.actions.iter().any(f));
    match r {
        // What every server does.
        ServerRequirement::ApiKeys
        | ServerRequirement::Scopes
        | ServerRequirement::TenantIsolation
        | ServerRequirement::AuditLog
        | ServerRequirement::Metrics
        | ServerRequirement::AnomalyTriage
        | ServerRequirement::IncidentTiming
        | ServerRequirement::SessionTermination
        | ServerRequirement::Lockdown
        | ServerRequirement::RiskScoring
        | ServerRequirement::Webhooks => None,
        ServerRequirement::Escalation => config
            .sentinel
            .escalations
            .is_empty()
            .then(|| "no escalation chain ([[sentinel.escalations]] is empty)".to_owned()),
        ServerRequirement::Quarantine => {
            (!config.quarantine.enabled).then(|| "[quarantine] is not enabled (quarantine.enabled = false)".to_owned())
        }
        ServerRequirement::Correlation => {
            (!config.campaigns.enabled).then(|| "campaigns.enabled is false (no correlation into campaigns)".to_owned())
        }
        ServerRequirement::RiskPolicy => config
            .risk
            .block_above
            .is_none()
            .then(|| "risk.block_above is not set (no subject is refused on its risk)".to_owned()),
        ServerRequirement::AnomalyDetection => (!has_type(&["statistical", "entropy"]))
            .then(|| "no enabled statistical or entropy detector in [sentinel] detectors".to_owned()),
        ServerRequirement::BehavioralDetection => {
            (!has_type(&["behavioral"])).then(|| "no enabled behavioral detector in [sentinel] detectors".to_owned())
        }
        ServerRequirement::ShieldActions => (!has_action(|a| matches!(a, ActionSpec::Shield(_))))
            .then(|| "no enabled detector has a shield action".to_owned()),
        ServerRequirement::Alerts => (!has_action(|a| matches!(a, ActionSpec::Alert(_))))
            .then(|| "no enabled detector has an alert action".to_owned()),
        ServerRequirement::EmailNotification => alerted(ReceiverKind::Email, config, sentinel),
        ServerRequirement::SmsNotification => alerted(ReceiverKind::Sms, config, sentinel),
        ServerRequirement::IncidentActions => (!has_action(|a| matches!(a, ActionSpec::Incident(_))))
            .then(|| "no enabled detector has an incident action".to_owned()),
        ServerRequirement::Retention => (config.storage.retention_days == 0)
            .then(|| "storage.retention_days is 0 (stored content is kept forever)".to_owned()),
        ServerRequirement::RedactedStorage => (config.storage.input == InputRetention::Full)
            .then(|| "storage.input is \"full\" (prompts are stored as received)".to_owned()),
        ServerRequirement::EncryptionAtRest => config
            .storage
            .encryption
            .is_none()
            .then(|| "[storage.encryption] is not configured (stored text is not encrypted)".to_owned()),
        ServerRequirement::PurposeTags => (!config.privacy.require_purpose)
            .then(|| "privacy.require_purpose is off (a stored kind may lack a declared purpose)".to_owned()),
        // A requirement added to the engine that this server does not know.
        other => Some(format!("this server does not know how to provide {other}")),
    }
}

/// Why no alert reaches a receiver of `kind`, or `None` when an enabled
/// detector's alert action names one configured in `[sentinel] receivers`.
fn alerted(kind: ReceiverKind, config: &ServerConfig, sentinel: &SentinelConfig) -> Option<String> {
    let of_kind = |name: &str| config.sentinel.receivers.iter().any(|r| r.kind == kind && r.name == name);
    let named = sentinel.detectors.iter().filter(|d| d.enabled).any(|d| {
        d.actions.iter().any(|a| matches!(a, ActionSpec::Alert(al) if al.receivers.iter().any(|n| of_kind(n))))
    });
    (!named).then(|| {
        format!(
            "no enabled detector's alert action names a receiver of type \"{}\" in [sentinel] receivers",
            kind.as_str()
        )
    })
}

/// Reads the profile `config.security_profile` names (if any), checks that
/// this configuration provides every server control it asks for, and
/// returns `engine` with the profile's engine controls.
pub fn apply(
    config: &ServerConfig,
    sentinel: &SentinelConfig,
    engine: SecurityEngine,
) -> Result<SecurityEngine, ConfigError> {
    let Some(path) = &config.security_profile else { return Ok(engine) };
    let profile = SecurityProfile::from_path(path)
        .map_err(|e| ConfigError::Invalid { field: "security_profile".into(), message: e.to_string() })?;
    let mut missing = Vec::new();
    for (r, switches) in profile.server_requirements() {
        if let Some(why) = unmet(r, config, sentinel) {
            missing.push(format!("{} ({r}): {why}", switches.join(", ")));
        }
    }
    if !missing.is_empty() {
        return Err(ConfigError::Invalid {
            field: "security_profile".into(),
            message: format!("{}: switched on but not provided here: {}", path.display(), missing.join("; ")),
        });
    }
    engine.try_with_profile(profile).map_err(|e| ConfigError::Invalid {
        field: "security_profile".into(),
        message: format!("{}: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(yaml: &str) -> SentinelConfig {
        SentinelConfig::from_yaml(yaml).unwrap()
    }

    #[test]
    fn requirements_follow_the_configuration() {
        let none = sentinel("detectors: []\n");
        let stat = sentinel(
            "detectors:\n  - id: s\n    type: statistical\n    metric: latency_ms\n    actions:\n      - type: shield\n        config: {action: block}\n",
        );
        let mut c = ServerConfig::default();
        assert!(unmet(ServerRequirement::AuditLog, &c, &none).is_none());
        assert!(unmet(ServerRequirement::AnomalyDetection, &c, &none).is_some());
        assert!(unmet(ServerRequirement::AnomalyDetection, &c, &stat).is_none());
        assert!(unmet(ServerRequirement::ShieldActions, &c, &stat).is_none());
        assert!(unmet(ServerRequirement::Alerts, &c, &stat).is_some());
        assert!(unmet(ServerRequirement::Retention, &c, &none).is_none());
        assert!(unmet(ServerRequirement::EmailNotification, &c, &stat).unwrap().contains("\"email\""));
        let alerting = sentinel(
            "detectors:\n  - id: s\n    type: statistical\n    metric: latency_ms\n    actions:\n      - type: alert\n        config: {receivers: [soc]}\n",
        );
        c.sentinel.receivers =
            vec![crate::config::Receiver { name: "soc".into(), kind: ReceiverKind::Email, ..Default::default() }];
        assert!(unmet(ServerRequirement::EmailNotification, &c, &alerting).is_none());
        assert!(unmet(ServerRequirement::SmsNotification, &c, &alerting).unwrap().contains("\"sms\""));
        assert!(unmet(ServerRequirement::EmailNotification, &c, &stat).is_some(), "a receiver no action names");
        c.storage.retention_days = 0;
        assert!(unmet(ServerRequirement::Retention, &c, &none).unwrap().contains("retention_days"));
        c.storage.input = InputRetention::Full;
        assert!(unmet(ServerRequirement::RedactedStorage, &c, &none).unwrap().contains("full"));
        assert!(unmet(ServerRequirement::RiskScoring, &c, &none).is_none());
        assert!(unmet(ServerRequirement::EncryptionAtRest, &c, &none).unwrap().contains("[storage.encryption]"));
        c.storage.encryption =
            Some(llmsec_store::EncryptionConfig { key_file: Some("/k".into()), ..Default::default() });
        assert!(unmet(ServerRequirement::EncryptionAtRest, &c, &none).is_none());
        assert!(unmet(ServerRequirement::PurposeTags, &c, &none).unwrap().contains("require_purpose"));
        c.privacy.require_purpose = true;
        assert!(unmet(ServerRequirement::PurposeTags, &c, &none).is_none());
        assert!(unmet(ServerRequirement::Escalation, &c, &none).unwrap().contains("escalations"));
        assert!(unmet(ServerRequirement::Correlation, &c, &none).unwrap().contains("campaigns.enabled"));
        let mut correlating = c.clone();
        correlating.campaigns.enabled = true;
        assert!(unmet(ServerRequirement::Correlation, &correlating, &none).is_none());
        assert!(unmet(ServerRequirement::RiskPolicy, &c, &none).unwrap().contains("risk.block_above"));
        let mut limited = c.clone();
        limited.risk.block_above = Some(80.0);
        assert!(unmet(ServerRequirement::RiskPolicy, &limited, &none).is_none());
        assert!(unmet(ServerRequirement::Quarantine, &c, &none).unwrap().contains("quarantine.enabled"));
        let mut held = c.clone();
        held.quarantine.enabled = true;
        assert!(unmet(ServerRequirement::Quarantine, &held, &none).is_none());
    }
}
