//! Actions a detector runs when it opens an anomaly (the detector entry's
//! `actions:` list): their configs, checked when the YAML is loaded, and the pure
//! parts of running them (webhook templates, incident bodies). Delivery
//! itself (HTTP through the server's durable outbox, shield enforcements in
//! the store) belongs to the server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::anomaly::Anomaly;
use crate::detector::{EntityKind, Millis, Severity, duration_str, parse_duration};

/// `shield`: block or rate-limit an entity for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldAction {
    /// A remote Shield endpoint, accepted because the published detector
    /// YAML has it; the built-in gateway and `/api/security/analyze` enforce
    /// without it.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `block` or `rate_limit`.
    pub action: ShieldKind,
    /// Whom to enforce on: `request` (the anomaly's own entity), or an entity kind.
    #[serde(default)]
    pub target: Option<String>,
    /// How long.
    #[serde(with = "duration_str", default = "default_shield_duration")]
    pub duration: Millis,
    /// Shown to the blocked caller and in the audit.
    #[serde(default)]
    pub reason: Option<String>,
    /// `limit` and `window` for rate limits; anything else is kept.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
}

fn default_shield_duration() -> Millis {
    3_600_000
}

/// Block or rate-limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShieldKind {
    /// Refuse every request of the entity.
    Block,
    /// Let `limit` requests per `window` through.
    RateLimit,
}

impl ShieldAction {
    /// The entity kind enforced on, given the anomaly's entity kind.
    pub fn target_kind(&self, anomaly_entity: EntityKind) -> Result<EntityKind, String> {
        match self.target.as_deref() {
            None | Some("request") | Some("entity") => Ok(anomaly_entity),
            Some(t) => serde_json::from_value(serde_json::Value::String(t.to_owned()))
                .map_err(|_| format!("target: {t:?} is not request, application, tenant, user, model, session or ip")),
        }
    }

    /// `(limit, window)` of a rate limit.
    pub fn rate(&self) -> Result<(u64, Millis), String> {
        let limit = self
            .parameters
            .get("limit")
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .filter(|l| *l > 0)
            .ok_or("parameters.limit: a positive integer is required for rate_limit")?;
        let window = match self.parameters.get("window") {
            None => 60_000,
            Some(v) => parse_duration(v.as_str().ok_or("parameters.window: a duration like 1m")?)
                .map_err(|e| format!("parameters.window: {e}"))?,
        };
        Ok((limit, window))
    }

    fn validate(&self) -> Result<(), String> {
        self.target_kind(EntityKind::Application)?;
        if self.action == ShieldKind::RateLimit {
            self.rate()?;
        }
        Ok(())
    }
}

/// `alert`: notify receivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    /// Overrides the anomaly's severity in the alert.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Receiver names, defined in the server's `alerting.receivers`.
    pub receivers: Vec<String>,
}

/// `incident`: open (and later update and comment on) an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentAction {
    /// Create one when the anomaly opens.
    #[serde(default = "yes")]
    pub auto_create: bool,
    /// `P1`…`P4`; default from the anomaly's severity (critical P1, warning P2, info P3).
    #[serde(default)]
    pub severity: Option<String>,
    /// The incident manager's base URL; default the server's `incidents.url`.
    #[serde(default)]
    pub url: Option<String>,
}

fn yes() -> bool {
    true
}

/// `webhook`: POST the anomaly (or a rendered template) to a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAction {
    /// Where.
    pub url: String,
    /// A body template with `{{ .anomaly.FIELD }}` placeholders (Slack and the like); default the anomaly as JSON.
    #[serde(default)]
    pub template: Option<String>,
    /// HMAC secret for the signature header (`X-Llmsec-Signature`).
    #[serde(default)]
    pub secret: Option<String>,
}

/// One configured action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
pub enum ActionSpec {
    /// Block or rate-limit.
    Shield(ShieldAction),
    /// Notify receivers.
    Alert(AlertAction),
    /// Open an incident.
    Incident(IncidentAction),
    /// POST to a URL.
    Webhook(WebhookAction),
}

impl ActionSpec {
    /// The action's type name.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::Shield(_) => "shield",
            ActionSpec::Alert(_) => "alert",
            ActionSpec::Incident(_) => "incident",
            ActionSpec::Webhook(_) => "webhook",
        }
    }

    /// Reads one entry of `actions:`: `{type, config}`, or the alert
    /// shorthand `{alert: RECEIVER, severity: S}` that the published detector
    /// YAML also uses.
    pub fn from_value(v: &serde_json::Value) -> Result<ActionSpec, String> {
        let obj = v.as_object().ok_or("an action is a mapping with `type` and `config`")?;
        if !obj.contains_key("type")
            && let Some(receiver) = obj.get("alert").and_then(|r| r.as_str())
        {
            if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "alert" | "severity")) {
                return Err(format!("unknown key `{k}` in the alert shorthand (expected alert, severity)"));
            }
            let severity = match obj.get("severity") {
                Some(s) => Some(serde_json::from_value(s.clone()).map_err(|e| format!("severity: {e}"))?),
                None => None,
            };
            return Ok(ActionSpec::Alert(AlertAction { severity, receivers: vec![receiver.to_owned()] }));
        }
        let kind =
            obj.get("type").and_then(|t| t.as_str()).ok_or("type: required (shield, alert, incident, webhook)")?;
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "type" | "config")) {
            return Err(format!("unknown key `{k}` (an action has `type` and `config`)"));
        }
        let config = obj.get("config").cloned().unwrap_or_else(|| serde_json::json!({}));
        let parse = |e: serde_json::Error| format!("config: {e}");
        let spec = match kind {
            "shield" => ActionSpec::Shield(serde_json::from_value(config).map_err(parse)?),
            "alert" => ActionSpec::Alert(serde_json::from_value(config).map_err(parse)?),
            "incident" => ActionSpec::Incident(serde_json::from_value(config).map_err(parse)?),
            "webhook" => ActionSpec::Webhook(serde_json::from_value(config).map_err(parse)?),
            other => return Err(format!("type: unknown action {other:?} (expected shield, alert, incident, webhook)")),
        };
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            ActionSpec::Shield(s) => s.validate(),
            ActionSpec::Alert(a) if a.receivers.is_empty() => {
                Err("config.receivers: name at least one receiver".into())
            }
            ActionSpec::Alert(_) => Ok(()),
            ActionSpec::Incident(i) => match i.severity.as_deref() {
                Some(s) if !matches!(s, "P1" | "P2" | "P3" | "P4") => {
                    Err(format!("config.severity: {s:?} is not P1-P4"))
                }
                _ => Ok(()),
            },
            ActionSpec::Webhook(w) => {
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(format!("config.url: {:?} is not an http(s) URL", w.url));
                }
                if let Some(t) = &w.template {
                    check_template(t).map_err(|e| format!("config.template: {e}"))?;
                }
                Ok(())
            }
        }
    }
}

/// The anomaly as templates and webhook bodies see it (`anomaly.*`), with
/// times as RFC 3339.
pub fn anomaly_view(a: &Anomaly) -> serde_json::Value {
    let time = |ms: Millis| {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    let mut v = serde_json::to_value(a).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("timestamp".into(), serde_json::json!(time(a.timestamp)));
        o.insert("last_seen".into(), serde_json::json!(time(a.last_seen)));
        o.insert("resolved_at".into(), serde_json::json!(a.resolved_at.and_then(time)));
        o.insert("acknowledged_at".into(), serde_json::json!(a.acknowledged_at.and_then(time)));
        o.insert("severity".into(), serde_json::json!(a.severity.as_str()));
    }
    serde_json::json!({ "anomaly": v })
}

/// Checks a template's placeholders: each `{{ .anomaly.PATH }}` must name a
/// field of the anomaly.
pub fn check_template(t: &str) -> Result<(), String> {
    let sample = anomaly_view(&crate::anomaly::sample());
    for path in placeholders(t)? {
        lookup(&sample, &path).ok_or_else(|| format!("unknown placeholder {{{{ .{path} }}}}"))?;
    }
    Ok(())
}

fn placeholders(t: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or_else(|| format!("unclosed {{{{ at byte {}", t.len() - rest.len() + i))?;
        let inner = after[..j].trim();
        let path = inner.strip_prefix('.').ok_or_else(|| format!("placeholder {{{{ {inner} }}}} must start with ."))?;
        out.push(path.to_owned());
        rest = &after[j + 2..];
    }
    Ok(out)
}

fn lookup<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(v, |v, k| match v {
        serde_json::Value::Object(o) => o.get(k),
        serde_json::Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Renders a template: each placeholder becomes the value, JSON-escaped
/// (without quotes) for strings, so a template that is JSON stays JSON
/// whatever the anomaly's text holds.
pub fn render(t: &str, a: &Anomaly) -> Result<String, String> {
    let view = anomaly_view(a);
    let mut out = String::with_capacity(t.len() + 256);
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or("unclosed {{")?;
        let path = after[..j].trim().trim_start_matches('.');
        match lookup(&view, path) {
            Some(serde_json::Value::String(s)) => {
                let quoted = serde_json::to_string(s).map_err(|e| e.to_string())?;
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            Some(serde_json::Value::Null) | None => {}
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The incident manager's body for a new incident: `severity` as a priority
/// (the configured `P1`–`P4`, else `P1`–`P3` from the anomaly's severity),
/// title, a Markdown description, the anomaly's ids and score under
/// `metadata`, the affected entity and remediation steps.
pub fn incident_body(a: &Anomaly, cfg: &IncidentAction) -> serde_json::Value {
    let severity = cfg.severity.clone().unwrap_or_else(|| {
        match a.severity {
            Severity::Critical => "P1",
            Severity::Warning => "P2",
            Severity::Info => "P3",
        }
        .to_owned()
    });
    let view = anomaly_view(a);
    let v = &view["anomaly"];
    serde_json::json!({
        "source": "llm-sentinel",
        "incident_type": "anomaly_detected",
        "severity": severity,
        "title": a.title,
        "description": format!(
            "## Anomaly Details\n\n**Detector:** {}\n**Application:** {}\n**Confidence Score:** {:.1}%\n**Detected At:** {}\n\n## Description\n\n{}\n",
            a.detector_id,
            a.context.application_id.as_deref().unwrap_or("-"),
            a.score * 100.0,
            v["timestamp"].as_str().unwrap_or("-"),
            a.description
        ),
        "metadata": {
            "anomaly_id": a.id,
            "detector_id": a.detector_id,
            "application_id": a.context.application_id,
            "score": a.score,
            "timestamp": v["timestamp"],
        },
        "affected_entities": [{"type": a.affected_entity.kind.as_str(), "id": a.affected_entity.id, "name": a.affected_entity.id}],
        "remediation_actions": [
            format!("Review anomaly {} in Sentinel", a.id),
            "Investigate sample events for patterns".to_owned(),
            "Check related anomalies for correlation".to_owned(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Slack Block Kit template, as a webhook action would configure it:
    /// placeholders inside JSON strings, so rendering must escape them.
    const SLACK: &str = r#"{
  "text": "Critical Anomaly Detected",
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "{{ .anomaly.title }}"}},
    {"type": "section", "fields": [
      {"type": "mrkdwn", "text": "*Severity:*\n{{ .anomaly.severity }}"},
      {"type": "mrkdwn", "text": "*Score:*\n{{ .anomaly.score }}"}
    ]},
    {"type": "section", "text": {"type": "mrkdwn", "text": "{{ .anomaly.description }}"}}
  ]
}"#;

    #[test]
    fn a_slack_template_renders_to_valid_json() {
        let mut a = crate::anomaly::sample();
        a.title = "Cost spike: \"chatbot\"\nline two".into();
        a.description = "tab\tand backslash \\ and <b>".into();
        let body = render(SLACK, &a).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["blocks"][0]["text"]["text"], a.title);
        assert_eq!(v["blocks"][1]["fields"][0]["text"], "*Severity:*\nwarning");
        assert_eq!(v["blocks"][1]["fields"][1]["text"], format!("*Score:*\n{}", a.score));
        assert_eq!(v["blocks"][2]["text"]["text"], a.description);
        check_template(SLACK).unwrap();
        assert!(check_template("{{ .anomaly.nope }}").unwrap_err().contains("anomaly.nope"));
        assert!(check_template("{{ .anomaly.title").is_err());
    }

    #[test]
    fn every_action_type_and_the_alert_shorthand_parse() {
        for v in [
            json!({"type": "shield", "config": {"endpoint": "shield.example.com:9090", "action": "block", "target": "request",
                   "duration": "1h", "reason": "Prompt injection attack detected",
                   "parameters": {"block_type": "immediate", "notify_user": true}}}),
            json!({"type": "alert", "config": {"severity": "critical", "receivers": ["security-team", "pagerduty-security"]}}),
            json!({"type": "shield", "config": {"action": "rate_limit", "target": "application", "duration": "10m",
                   "parameters": {"limit": 100, "window": "1m"}}}),
            json!({"type": "incident", "config": {"auto_create": true, "severity": "P1"}}),
            json!({"type": "webhook", "config": {"url": "https://dashboard.example.com/api/events"}}),
            json!({"alert": "unusual-behavior", "severity": "warning"}),
        ] {
            ActionSpec::from_value(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }

    #[test]
    fn bad_actions_are_named() {
        for (v, needle) in [
            (json!({"type": "page", "config": {}}), "unknown action"),
            (json!({"type": "shield", "config": {"action": "block", "durration": "1h"}}), "durration"),
            (json!({"type": "shield", "config": {"action": "rate_limit"}}), "parameters.limit"),
            (json!({"type": "shield", "config": {"action": "block", "target": "planet"}}), "target"),
            (json!({"type": "alert", "config": {"receivers": []}}), "receivers"),
            (json!({"type": "incident", "config": {"severity": "sev0"}}), "severity"),
            (json!({"type": "webhook", "config": {"url": "ftp://x"}}), "url"),
            (json!({"type": "alert", "config": {"receivers": ["a"]}, "when": "always"}), "when"),
            (json!({"alert": "x", "colour": "red"}), "colour"),
        ] {
            let e = ActionSpec::from_value(&v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    #[test]
    fn incident_bodies_map_severity_and_carry_the_anomaly() {
        let a = crate::anomaly::sample();
        let b = incident_body(&a, &IncidentAction { auto_create: true, severity: None, url: None });
        assert_eq!(b["severity"], "P2");
        assert_eq!(b["metadata"]["anomaly_id"], a.id);
        assert!(b["description"].as_str().unwrap().contains("## Anomaly Details"));
    }
}
