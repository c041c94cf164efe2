//! Splunk SOAR (formerly Phantom): one container (case) per delivery, with
//! one artifact carrying CEF fields.
//!
//! 1. `POST {url}/rest/container` with `ph-auth-token: <token>`:
//!    `{"name", "label", "severity": "low"|"medium"|"high", "status": "new",
//!    "source_data_identifier": "<delivery id>", "description", "tags", "data"}`.
//!    SOAR answers `{"success": true, "id": 7}`; a container with the same
//!    `source_data_identifier` already there is answered `{"failed": true,
//!    "message": "duplicate", "existing_container_id": 7}`, which this sink
//!    takes as the container (a redelivery does not open a second case).
//! 2. `POST {url}/rest/artifact`: `{"container_id": 7, "name", "label",
//!    "severity", "source_data_identifier": "<delivery id>", "type": "llmsec",
//!    "run_automation": true, "cef": {…}}`; `existing_artifact_id` in the
//!    answer likewise counts as created.
//!
//! Only anomalies and blocked security events are sent (the queueing side
//! filters, [`super::SinkConfig::accepts`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::event::{SinkEvent, Subject};
use super::{BuildContext, FieldError, Level, Secret};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError};

/// `kind = "soar"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoarConfig {
    /// The SOAR base URL, e.g. `https://soar.example`.
    pub url: String,
    /// The environment variable holding the automation user's `ph-auth-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The file holding the `ph-auth-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The container label (SOAR routes playbooks by it).
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_label() -> String {
    "events".into()
}

impl SoarConfig {
    fn check(&self) -> Result<(), FieldError> {
        super::check_base_url(&self.url)?;
        super::check_secret("token", &self.token_env, &self.token_file)?;
        if self.label.is_empty() || !self.label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(FieldError::new("label", "must be letters, digits or '_'"));
        }
        Ok(())
    }
}

impl super::KindConfig for SoarConfig {
    fn kind_name(&self) -> &'static str {
        "soar"
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn verdicts(&self) -> &'static [super::Verdict] {
        // A SOAR container is a case: only refusals are cases.
        &[super::Verdict::Block]
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<std::sync::Arc<dyn OutboxPublisher>, FieldError> {
        Ok(std::sync::Arc::new(Soar::new(self, ctx)?))
    }
}

/// Opens a SOAR container with one artifact per delivery.
#[derive(Debug)]
pub struct Soar {
    containers: String,
    artifacts: String,
    label: String,
    token: Secret,
    client: reqwest::Client,
}

impl Soar {
    /// A publisher for `config`, its token read now.
    pub fn new(config: &SoarConfig, ctx: &BuildContext<'_>) -> Result<Soar, FieldError> {
        super::KindConfig::validate(config)?;
        let token = super::secret("token", config.token_env.as_deref(), config.token_file.as_deref(), ctx)?;
        Ok(Soar {
            containers: super::join(&config.url, "/rest/container"),
            artifacts: super::join(&config.url, "/rest/artifact"),
            label: config.label.clone(),
            token,
            client: ctx.client.clone(),
        })
    }

    async fn post(&self, url: &str, what: &str, body: &Value, existing: &str) -> Result<u64, PublishError> {
        let resp = self
            .client
            .post(url)
            .header("ph-auth-token", self.token.expose())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| super::send_failure(what, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| super::send_failure(what, &e))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // A duplicate source_data_identifier: SOAR names what is already there.
        if let Some(id) = answer.get(existing).and_then(Value::as_u64) {
            return Ok(id);
        }
        if !status.is_success() || answer.get("success").and_then(Value::as_bool) != Some(true) {
            return Err(super::http_failure(what, status, &bytes));
        }
        answer.get("id").and_then(Value::as_u64).ok_or_else(|| super::http_failure(what, status, &bytes))
    }
}

/// SOAR's severity of a level (SOAR has low, medium and high).
pub fn soar_severity(level: Option<Level>) -> &'static str {
    match level {
        None | Some(Level::Low) => "low",
        Some(Level::Medium) => "medium",
        Some(Level::High | Level::Critical) => "high",
    }
}

/// The container of a delivery.
pub fn container(e: &SinkEvent, label: &str) -> Value {
    let name = match &e.subject {
        Subject::Security(s) => {
            format!("llmsec: blocked {} ({})", s.event_type, e.rule().unwrap_or_else(|| "no rule".into()))
        }
        Subject::Anomaly(a) => format!("llmsec {}: {}", e.event.as_str(), a.title),
    };
    json!({
        "name": name,
        "label": label,
        "severity": soar_severity(e.level()),
        "status": "new",
        "source_data_identifier": e.id,
        "description": e.message(),
        "tags": ["llmsec", e.event.as_str()],
        "data": {"tenant": e.tenant, "event": e.event.as_str(), "llmsec": e.data()},
    })
}

/// The artifact of a delivery, in `container_id`, with CEF fields.
pub fn artifact(e: &SinkEvent, label: &str, container_id: u64) -> Value {
    let mut cef = json!({
        "deviceVendor": "llmsec",
        "deviceProduct": "llm-security",
        "externalId": e.subject_id(),
        "rt": e.time_ms(),
        "msg": e.message(),
        "cs1Label": "tenant",
        "cs1": e.tenant,
    });
    match &e.subject {
        Subject::Security(s) => {
            cef["act"] = "block".into();
            cef["cat"] = s.event_type.clone().into();
            cef["cfp1Label"] = "confidence".into();
            cef["cfp1"] = s.confidence.into();
        }
        Subject::Anomaly(a) => {
            cef["act"] = e.event.as_str().into();
            cef["cat"] = "anomaly".into();
            cef["cs3Label"] = "affected_entity".into();
            cef["cs3"] = format!("{}:{}", a.affected_entity.kind.as_str(), a.affected_entity.id).into();
            cef["cfp1Label"] = "score".into();
            cef["cfp1"] = a.score.into();
        }
    }
    if let Some(r) = e.rule() {
        cef["cs2Label"] = "rule".into();
        cef["cs2"] = r.into();
    }
    if let Some(u) = e.user() {
        cef["suser"] = u.into();
    }
    if let Some(ip) = e.source_ip() {
        cef["sourceAddress"] = ip.into();
    }
    json!({
        "container_id": container_id,
        "name": e.rule().unwrap_or_else(|| e.event.as_str().to_owned()),
        "label": label,
        "severity": soar_severity(e.level()),
        "source_data_identifier": e.id,
        "type": "llmsec",
        "run_automation": true,
        "cef": cef,
    })
}

#[async_trait::async_trait]
impl OutboxPublisher for Soar {
    async fn publish(&self, record: OutboxRecord<'_>) -> Result<(), PublishError> {
        let e = SinkEvent::from_record(&record)?;
        if let Subject::Security(s) = &e.subject
            && s.verdict != "block"
        {
            return Err(PublishError(format!(
                "soar: security event {} has verdict {}; only blocked events open cases",
                s.event_id, s.verdict
            )));
        }
        let id =
            self.post(&self.containers, "soar container", &container(&e, &self.label), "existing_container_id").await?;
        self.post(&self.artifacts, "soar artifact", &artifact(&e, &self.label, id), "existing_artifact_id").await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::http::StatusCode;

    use super::*;
    use crate::sinks::testing::{self, Got, Receiver};

    const TOKEN: &str = "c29hci10b2tlbg==";

    /// Answers as SOAR's REST API does, deduplicating on source_data_identifier.
    async fn soar() -> Receiver {
        let ids: Arc<Mutex<HashMap<(String, String), u64>>> = Arc::default();
        Receiver::start(move |g: &Got| {
            if g.header("ph-auth-token") != Some(TOKEN) {
                return (StatusCode::UNAUTHORIZED, r#"{"failed": true, "message": "Authentication failed"}"#.into());
            }
            let b = g.json();
            let sdi = b["source_data_identifier"].as_str().unwrap().to_owned();
            let mut ids = ids.lock().unwrap();
            let next = ids.len() as u64 + 7;
            let (key, existing) = match g.path.as_str() {
                "/rest/container" => ("container", "existing_container_id"),
                "/rest/artifact" => ("artifact", "existing_artifact_id"),
                _ => return (StatusCode::NOT_FOUND, "{}".into()),
            };
            if let Some(id) = ids.get(&(key.to_owned(), sdi.clone())) {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"failed": true, "message": "duplicate", existing: id}).to_string(),
                );
            }
            ids.insert((key.to_owned(), sdi), next);
            (StatusCode::OK, json!({"success": true, "id": next}).to_string())
        })
        .await
    }

    fn config(url: &str) -> SoarConfig {
        SoarConfig { url: url.into(), token_env: Some("SOAR".into()), token_file: None, label: "llmsec".into() }
    }

    fn env(k: &str) -> Option<String> {
        (k == "SOAR").then(|| TOKEN.to_owned())
    }

    #[tokio::test]
    async fn a_container_then_an_artifact_in_it_and_a_redelivery_opens_no_second_case() {
        let rx = soar().await;
        let s = Soar::new(&config(&rx.url), &testing::context(&env)).unwrap();
        let sec = testing::security_envelope("d-1", "block");
        s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        let got = rx.all();
        let paths: Vec<&str> = got.iter().map(|g| g.path.as_str()).collect();
        assert_eq!(paths, ["/rest/container", "/rest/artifact", "/rest/container", "/rest/artifact"]);
        let c = got[0].json();
        assert_eq!((c["label"].as_str(), c["severity"].as_str()), (Some("llmsec"), Some("high")));
        assert_eq!((c["source_data_identifier"].as_str(), c["status"].as_str()), (Some("d-1"), Some("new")));
        assert!(c["name"].as_str().unwrap().starts_with("llmsec: blocked prompt_injection"));
        let a = got[1].json();
        assert_eq!(a["container_id"], 7, "the id SOAR answered");
        assert_eq!(a["source_data_identifier"], "d-1");
        assert_eq!(a["cef"]["act"], "block");
        assert_eq!((a["cef"]["suser"].as_str(), a["cef"]["externalId"].as_str()), (Some("alice"), Some("ev-1")));
        assert_eq!((a["cef"]["cs1Label"].as_str(), a["cef"]["cs1"].as_str()), (Some("tenant"), Some("acme")));
        assert_eq!(got[3].json()["container_id"], 7, "the redelivery's artifact goes to the existing container");
    }

    #[tokio::test]
    async fn anomalies_open_cases_allowed_events_do_not_and_a_bad_token_fails() {
        let rx = soar().await;
        let s = Soar::new(&config(&rx.url), &testing::context(&env)).unwrap();
        let an = testing::anomaly_envelope("d-2", "anomaly.detected");
        s.publish(testing::record("d-2", "anomaly.detected", &an)).await.unwrap();
        let a = rx.all()[1].json();
        assert_eq!(a["cef"]["cs3"], "application:chatbot-prod");
        assert_eq!(a["severity"], "medium");
        let allowed = testing::security_envelope("d-3", "allow");
        let e = s.publish(testing::record("d-3", "security_event", &allowed)).await.unwrap_err();
        assert!(e.0.contains("only blocked"), "{e}");
        assert_eq!(rx.all().len(), 2, "nothing sent for it");
        let bad = Soar::new(&config(&rx.url), &testing::context(&|_| Some("wrong".into()))).unwrap();
        let e = bad.publish(testing::record("d-2", "anomaly.detected", &an)).await.unwrap_err();
        assert!(e.0.contains("401") && !e.0.contains("wrong"), "{e}");
    }
}
