//! Elasticsearch / OpenSearch: the `_bulk` API with ECS documents.
//!
//! `POST {url}/_bulk` (`Content-Type: application/x-ndjson`), one `create`
//! action per delivery whose `_id` is the delivery id, into a daily index
//! `{index_prefix}-YYYY.MM.DD` (the event's UTC date):
//!
//! ```text
//! {"create":{"_index":"llmsec-events-2026.12.07","_id":"<delivery id>"}}
//! {"@timestamp":"…","event":{"kind":"alert",…},"rule":{"name":…},"labels":{"tenant":…},"message":…,"llmsec":{…}}
//! ```
//!
//! `create` refuses an `_id` the index already holds, so a redelivery (the
//! same delivery id) is answered 409 for its item: that counts as
//! delivered. Elasticsearch answers a bulk request 200 even when items
//! failed, with `"errors": true`; the items are read one by one and any
//! status other than 2xx or 409 fails the delivery (it is retried).
//!
//! Documents use ECS field names: `@timestamp`, `event.kind` (`alert`),
//! `event.category`, `event.type`, `event.action` (the llmsec event name),
//! `event.severity` (21/47/73/99 for low/medium/high/critical), `event.id`
//! (the security event's or anomaly's id), `rule.name`, `user.id`,
//! `source.ip`, `labels.tenant`, `message`; the rest under `llmsec.*`.
//! Authentication: `Authorization: ApiKey <key>` (the encoded key Elastic
//! hands out) or HTTP basic with `username` and a password.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::event::{SinkEvent, Subject};
use super::{BuildContext, FieldError, Level, Secret};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError};

/// `kind = "elastic"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticConfig {
    /// The cluster's base URL, e.g. `https://es.example:9200`.
    pub url: String,
    /// Daily indices are named `{index_prefix}-YYYY.MM.DD`.
    #[serde(default = "default_prefix")]
    pub index_prefix: String,
    /// The environment variable holding an API key (the encoded form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The file holding an API key (the encoded form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// The user for basic authentication (with `password_env` or `password_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The environment variable holding the basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The file holding the basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

fn default_prefix() -> String {
    "llmsec-events".into()
}

impl ElasticConfig {
    fn check(&self) -> Result<(), FieldError> {
        super::check_base_url(&self.url)?;
        let prefix_ok = !self.index_prefix.is_empty()
            && !self.index_prefix.starts_with(['-', '_', '+'])
            && self.index_prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !prefix_ok {
            return Err(FieldError::new(
                "index_prefix",
                "must be lowercase letters, digits, '-', '_' or '.', not starting with '-' or '_'",
            ));
        }
        let api_key = self.api_key_env.is_some() || self.api_key_file.is_some();
        let basic = self.username.is_some() || self.password_env.is_some() || self.password_file.is_some();
        match (api_key, basic) {
            (true, true) => Err(FieldError::new("api_key_env", "set an API key or a username and password, not both")),
            (true, false) => super::check_secret("api_key", &self.api_key_env, &self.api_key_file),
            (false, true) => {
                if self.username.as_deref().is_none_or(str::is_empty) {
                    return Err(FieldError::new("username", "must be set with password_env or password_file"));
                }
                super::check_secret("password", &self.password_env, &self.password_file)
            }
            (false, false) => Ok(()),
        }
    }
}

impl super::KindConfig for ElasticConfig {
    fn kind_name(&self) -> &'static str {
        "elastic"
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<std::sync::Arc<dyn OutboxPublisher>, FieldError> {
        Ok(std::sync::Arc::new(Elastic::new(self, ctx)?))
    }
}

#[derive(Debug)]
enum Auth {
    None,
    ApiKey(Secret),
    Basic(String, Secret),
}

/// Indexes each delivery as one ECS document.
#[derive(Debug)]
pub struct Elastic {
    endpoint: String,
    prefix: String,
    auth: Auth,
    client: reqwest::Client,
}

impl Elastic {
    /// A publisher for `config`, its secret read now.
    pub fn new(config: &ElasticConfig, ctx: &BuildContext<'_>) -> Result<Elastic, FieldError> {
        super::KindConfig::validate(config)?;
        let auth = if config.api_key_env.is_some() || config.api_key_file.is_some() {
            Auth::ApiKey(super::secret("api_key", config.api_key_env.as_deref(), config.api_key_file.as_deref(), ctx)?)
        } else if let Some(user) = &config.username {
            let p = super::secret("password", config.password_env.as_deref(), config.password_file.as_deref(), ctx)?;
            Auth::Basic(user.clone(), p)
        } else {
            Auth::None
        };
        Ok(Elastic {
            endpoint: super::join(&config.url, "/_bulk"),
            prefix: config.index_prefix.clone(),
            auth,
            client: ctx.client.clone(),
        })
    }
}

/// ECS `event.severity` of a level.
pub fn ecs_severity(level: Option<Level>) -> u8 {
    match level {
        None => 0,
        Some(Level::Low) => 21,
        Some(Level::Medium) => 47,
        Some(Level::High) => 73,
        Some(Level::Critical) => 99,
    }
}

/// The index a delivery goes to: `{prefix}-YYYY.MM.DD` of its UTC date.
pub fn index_name(prefix: &str, e: &SinkEvent) -> String {
    let date = chrono::DateTime::from_timestamp_millis(e.time_ms()).unwrap_or_default();
    format!("{prefix}-{}", date.format("%Y.%m.%d"))
}

/// The ECS document of a delivery.
pub fn ecs_document(e: &SinkEvent) -> Value {
    let ts = chrono::DateTime::from_timestamp_millis(e.time_ms()).unwrap_or_default();
    let (event_type, llmsec) = match &e.subject {
        Subject::Security(s) => (
            if s.verdict == "block" { "denied" } else { "info" },
            json!({
                "delivery_id": e.id, "verdict": s.verdict, "event_type": s.event_type,
                "confidence": s.confidence, "threats": s.threats, "session_id": s.session_id,
            }),
        ),
        Subject::Anomaly(a) => (
            "indicator",
            json!({
                "delivery_id": e.id, "detector_id": a.detector_id, "detector_type": a.detector_type,
                "status": a.status, "score": a.score, "severity": a.severity, "title": a.title,
                "description": a.description, "affected_entity": a.affected_entity, "metrics": a.metrics,
                "application_id": a.context.application_id, "first_seen": a.timestamp, "last_seen": a.last_seen,
                "occurrences": a.occurrences, "incident_id": a.incident_id,
            }),
        ),
    };
    let mut doc = json!({
        "@timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": [event_type],
            "action": e.event.as_str(),
            "severity": ecs_severity(e.level()),
            "id": e.subject_id(),
            "dataset": if e.event.is_anomaly() { "llmsec.anomaly" } else { "llmsec.security_event" },
            "provider": "llmsec",
        },
        "labels": {"tenant": e.tenant},
        "message": e.message(),
        "llmsec": llmsec,
    });
    if let Some(r) = e.rule() {
        doc["rule"] = json!({"name": r});
    }
    if let Some(u) = e.user() {
        doc["user"] = json!({"id": u});
    }
    if let Some(ip) = e.source_ip() {
        doc["source"] = json!({"ip": ip});
    }
    doc
}

/// Reads a `_bulk` answer: `Ok` when every item was created or already there (409).
pub fn check_bulk_answer(answer: &Value) -> Result<(), String> {
    if answer.get("errors").and_then(Value::as_bool) == Some(false) {
        return Ok(());
    }
    let items = answer.get("items").and_then(Value::as_array).ok_or("answer has no items")?;
    for item in items {
        let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
            return Err("an item with no action".into());
        };
        match result.get("status").and_then(Value::as_u64) {
            Some(200..=299 | 409) => {}
            status => {
                let why = result
                    .get("error")
                    .and_then(|e| e.get("type").or_else(|| e.get("reason")))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(format!("item status {}: {why}", status.map_or("none".into(), |s| s.to_string())));
            }
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl OutboxPublisher for Elastic {
    async fn publish(&self, record: OutboxRecord<'_>) -> Result<(), PublishError> {
        let e = SinkEvent::from_record(&record)?;
        let action = json!({"create": {"_index": index_name(&self.prefix, &e), "_id": e.id}});
        let body = format!("{action}\n{}\n", ecs_document(&e));
        let mut req = self.client.post(&self.endpoint).header("content-type", "application/x-ndjson").body(body);
        req = match &self.auth {
            Auth::None => req,
            Auth::ApiKey(k) => req.header("authorization", format!("ApiKey {}", k.expose())),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
        };
        let resp = req.send().await.map_err(|e| super::send_failure("elastic", &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| super::send_failure("elastic", &e))?;
        if !status.is_success() {
            return Err(super::http_failure("elastic bulk", status, &bytes));
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| super::http_failure("elastic bulk: answer is not JSON", status, &bytes))?;
        check_bulk_answer(&answer).map_err(|why| PublishError(format!("elastic bulk: {why}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use axum::http::StatusCode;

    use super::*;
    use crate::sinks::testing::{self, Got, Receiver};

    fn config(url: &str) -> ElasticConfig {
        ElasticConfig {
            url: url.into(),
            index_prefix: "llmsec-events".into(),
            api_key_env: Some("ES_KEY".into()),
            api_key_file: None,
            username: None,
            password_env: None,
            password_file: None,
        }
    }

    fn env(k: &str) -> Option<String> {
        match k {
            "ES_KEY" => Some("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".into()),
            "ES_PASS" => Some("changeme".into()),
            _ => None,
        }
    }

    /// Answers as `_bulk` does: each `create` of an `_id` already indexed is 409.
    async fn cluster() -> Receiver {
        let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
        Receiver::start(move |g: &Got| {
            let text = String::from_utf8_lossy(&g.body).into_owned();
            let mut items = Vec::new();
            let mut errors = false;
            for pair in text.lines().collect::<Vec<_>>().chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).unwrap();
                let id = action["create"]["_id"].as_str().unwrap().to_owned();
                let index = action["create"]["_index"].clone();
                if seen.lock().unwrap().insert(id.clone()) {
                    items.push(json!({"create": {"_index": index, "_id": id, "status": 201, "result": "created"}}));
                } else {
                    errors = true;
                    items.push(json!({"create": {"_index": index, "_id": id, "status": 409,
                        "error": {"type": "version_conflict_engine_exception", "reason": "document already exists"}}}));
                }
            }
            (StatusCode::OK, json!({"took": 3, "errors": errors, "items": items}).to_string())
        })
        .await
    }

    #[tokio::test]
    async fn bulk_create_with_the_delivery_id_ecs_fields_and_a_daily_index() {
        let rx = cluster().await;
        let es = Elastic::new(&config(&rx.url), &testing::context(&env)).unwrap();
        let sec = testing::security_envelope("d-1", "block");
        es.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        let got = &rx.all()[0];
        assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/_bulk"));
        assert_eq!(got.header("content-type"), Some("application/x-ndjson"));
        assert!(got.header("authorization").unwrap().starts_with("ApiKey VnVhQ2ZH"));
        let text = String::from_utf8(got.body.clone()).unwrap();
        assert!(text.ends_with('\n'), "NDJSON ends with a newline");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0], json!({"create": {"_index": "llmsec-events-2026.12.07", "_id": "d-1"}}));
        let d = &lines[1];
        assert_eq!(d["@timestamp"], "2026-12-07T00:00:00.500Z");
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["category"], json!(["intrusion_detection"]));
        assert_eq!(d["event"]["type"], json!(["denied"]));
        assert_eq!((d["event"]["action"].as_str(), d["event"]["id"].as_str()), (Some("security_event"), Some("ev-1")));
        assert_eq!(d["event"]["severity"], 73);
        assert_eq!(d["rule"]["name"], "prompt_injection/direct_injection");
        assert_eq!((d["user"]["id"].as_str(), d["labels"]["tenant"].as_str()), (Some("alice"), Some("acme")));
        assert_eq!(d["llmsec"]["verdict"], "block");
        assert!(d["message"].as_str().unwrap().contains("block"));
    }

    #[tokio::test]
    async fn a_redelivery_conflicts_and_counts_as_delivered_other_item_errors_fail() {
        let rx = cluster().await;
        let mut c = config(&rx.url);
        (c.api_key_env, c.username, c.password_env) = (None, Some("elastic".into()), Some("ES_PASS".into()));
        let es = Elastic::new(&c, &testing::context(&env)).unwrap();
        let an = testing::anomaly_envelope("d-2", "anomaly.detected");
        es.publish(testing::record("d-2", "anomaly.detected", &an)).await.unwrap();
        es.publish(testing::record("d-2", "anomaly.detected", &an)).await.unwrap();
        let got = rx.all();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].header("authorization"), Some("Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="), "elastic:changeme");
        let doc: Value = serde_json::from_str(String::from_utf8_lossy(&got[0].body).lines().nth(1).unwrap()).unwrap();
        assert_eq!(doc["event"]["dataset"], "llmsec.anomaly");
        assert_eq!(doc["rule"]["name"], "cost-spike-detector");
        assert_eq!(doc["event"]["severity"], 47);
        assert_eq!(doc["@timestamp"], "2025-11-24T16:00:00.000Z");
        let failed = json!({"errors": true, "items": [{"create": {"status": 400,
            "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}}]});
        assert_eq!(check_bulk_answer(&failed).unwrap_err(), "item status 400: mapper_parsing_exception");
        let rejected = json!({"errors": true, "items": [{"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}]});
        assert!(check_bulk_answer(&rejected).unwrap_err().contains("429"));
        assert!(check_bulk_answer(&json!({"errors": true})).is_err(), "errors without items");
    }

    #[test]
    fn auth_settings_are_checked() {
        let mut c = config("http://h");
        c.username = Some("u".into());
        assert_eq!(c.check().unwrap_err().field, "api_key_env");
        c.api_key_env = None;
        assert_eq!(c.check().unwrap_err().field, "password");
        c.index_prefix = "Bad".into();
        assert_eq!(c.check().unwrap_err().field, "index_prefix");
    }
}
