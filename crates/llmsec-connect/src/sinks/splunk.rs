//! Splunk HTTP Event Collector.
//!
//! `POST {url}/services/collector/event` with `Authorization: Splunk
//! <token>` and one JSON event:
//!
//! ```json
//! {"time": 1796601600.5, "host": "llmsec", "source": "llmsec",
//!  "sourcetype": "llmsec:security_event", "index": "security",
//!  "event": {"id": "<delivery id>", "event": "security_event", "tenant": "acme", "data": {…}}}
//! ```
//!
//! `sourcetype` is `llmsec:security_event` or `llmsec:anomaly`; `index` only
//! when configured; `X-Splunk-Request-Channel` when a channel is configured
//! (HEC requires one when indexer acknowledgement is on). HEC answers
//! `{"text":"Success","code":0}`; any other code, or a non-2xx status, is a
//! failure (retried by the outbox). HEC does not deduplicate, so the
//! delivery id travels in `event.id` for searches to drop redeliveries.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::event::{SinkEvent, Subject};
use super::{BuildContext, FieldError, Secret};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError};

/// `kind = "splunk_hec"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// The collector's base URL, e.g. `https://splunk.example:8088`.
    pub url: String,
    /// The environment variable holding the HEC token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The file holding the HEC token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The index; the token's default index when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The `X-Splunk-Request-Channel` (a GUID), when the token needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The `host` field of every event.
    #[serde(default = "default_host")]
    pub host: String,
}

pub(crate) fn default_host() -> String {
    "llmsec".into()
}

impl SplunkHecConfig {
    fn check(&self) -> Result<(), FieldError> {
        super::check_base_url(&self.url)?;
        super::check_secret("token", &self.token_env, &self.token_file)?;
        if let Some(c) = &self.channel
            && (c.is_empty() || !c.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        {
            return Err(FieldError::new("channel", "must be a GUID (hex digits and '-')"));
        }
        if self.index.as_deref().is_some_and(str::is_empty) {
            return Err(FieldError::new("index", "must not be empty (leave it out for the token's default)"));
        }
        if self.host.is_empty() {
            return Err(FieldError::new("host", "must not be empty"));
        }
        Ok(())
    }
}

impl super::KindConfig for SplunkHecConfig {
    fn kind_name(&self) -> &'static str {
        "splunk_hec"
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<std::sync::Arc<dyn OutboxPublisher>, FieldError> {
        Ok(std::sync::Arc::new(SplunkHec::new(self, ctx)?))
    }
}

/// Sends each delivery as one HEC event.
#[derive(Debug)]
pub struct SplunkHec {
    config: SplunkHecConfig,
    endpoint: String,
    token: Secret,
    client: reqwest::Client,
}

impl SplunkHec {
    /// A publisher for `config`, its token read now.
    pub fn new(config: &SplunkHecConfig, ctx: &BuildContext<'_>) -> Result<SplunkHec, FieldError> {
        super::KindConfig::validate(config)?;
        let token = super::secret("token", config.token_env.as_deref(), config.token_file.as_deref(), ctx)?;
        Ok(SplunkHec {
            endpoint: super::join(&config.url, "/services/collector/event"),
            config: config.clone(),
            token,
            client: ctx.client.clone(),
        })
    }
}

/// The HEC event for a delivery.
pub fn hec_event(e: &SinkEvent, host: &str, index: Option<&str>) -> Value {
    let sourcetype = match e.subject {
        Subject::Security(_) => "llmsec:security_event",
        Subject::Anomaly(_) => "llmsec:anomaly",
    };
    let mut v = json!({
        "time": e.time_ms() as f64 / 1000.0,
        "host": host,
        "source": "llmsec",
        "sourcetype": sourcetype,
        "event": {"id": e.id, "event": e.event.as_str(), "tenant": e.tenant, "data": e.data()},
    });
    if let Some(i) = index {
        v["index"] = i.into();
    }
    v
}

#[async_trait::async_trait]
impl OutboxPublisher for SplunkHec {
    async fn publish(&self, record: OutboxRecord<'_>) -> Result<(), PublishError> {
        let e = SinkEvent::from_record(&record)?;
        let body = hec_event(&e, &self.config.host, self.config.index.as_deref());
        let mut req = self
            .client
            .post(&self.endpoint)
            .header("authorization", format!("Splunk {}", self.token.expose()))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(c) = &self.config.channel {
            req = req.header("x-splunk-request-channel", c);
        }
        let resp = req.send().await.map_err(|e| super::send_failure("splunk hec", &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| super::send_failure("splunk hec", &e))?;
        if !status.is_success() {
            return Err(super::http_failure("splunk hec", status, &bytes));
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| super::http_failure("splunk hec: answer is not HEC JSON", status, &bytes))?;
        match answer.get("code").and_then(Value::as_i64) {
            Some(0) => Ok(()),
            _ => Err(super::http_failure("splunk hec: non-zero code", status, &bytes)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::sinks::testing::{self, Receiver};

    const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

    fn config(url: &str) -> SplunkHecConfig {
        SplunkHecConfig {
            url: format!("{url}/"),
            token_env: Some("HEC".into()),
            token_file: None,
            index: Some("llm".into()),
            channel: Some("0aa3a5a0-4a1c-4d1e-9d4c-3f5b2e6c7d8e".into()),
            host: "gw-1".into(),
        }
    }

    fn env(k: &str) -> Option<String> {
        (k == "HEC").then(|| TOKEN.to_owned())
    }

    #[tokio::test]
    async fn posts_one_hec_event_with_token_channel_and_sourcetype() {
        // The receiver answers as HEC does: 401 without the token, else Success.
        let rx = Receiver::start(|g| match g.header("authorization") {
            Some(a) if a == format!("Splunk {TOKEN}") => (StatusCode::OK, r#"{"text":"Success","code":0}"#.into()),
            _ => (StatusCode::UNAUTHORIZED, r#"{"text":"Token is required","code":2}"#.into()),
        })
        .await;
        let hec = SplunkHec::new(&config(&rx.url), &testing::context(&env)).unwrap();
        let sec = testing::security_envelope("d-1", "block");
        hec.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        let an = testing::anomaly_envelope("d-2", "anomaly.detected");
        hec.publish(testing::record("d-2", "anomaly.detected", &an)).await.unwrap();
        let got = rx.all();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/services/collector/event"));
        assert_eq!(got[0].header("x-splunk-request-channel"), Some("0aa3a5a0-4a1c-4d1e-9d4c-3f5b2e6c7d8e"));
        assert_eq!(got[0].header("content-type"), Some("application/json"));
        let b = got[0].json();
        assert_eq!(b["time"], 1_796_601_600.5, "epoch seconds with the milliseconds as a fraction");
        assert_eq!((b["host"].as_str(), b["source"].as_str()), (Some("gw-1"), Some("llmsec")));
        assert_eq!((b["sourcetype"].as_str(), b["index"].as_str()), (Some("llmsec:security_event"), Some("llm")));
        assert_eq!(b["event"]["id"], "d-1");
        assert_eq!(b["event"]["data"]["verdict"], "block");
        assert_eq!(b.as_object().unwrap().len(), 6, "time, host, source, sourcetype, index, event: {b}");
        let a = got[1].json();
        assert_eq!(a["sourcetype"], "llmsec:anomaly");
        assert_eq!(a["event"]["data"]["detector_id"], "cost-spike-detector");
        assert_eq!(a["time"], 1_764_000_000.0);
    }

    #[tokio::test]
    async fn a_non_zero_code_or_status_is_a_failure() {
        let rx = Receiver::start(|g| {
            if g.body.windows(4).any(|w| w == b"d-bu") {
                (StatusCode::OK, r#"{"text":"Server is busy","code":9}"#.into())
            } else {
                (StatusCode::FORBIDDEN, r#"{"text":"Invalid token","code":4}"#.into())
            }
        })
        .await;
        let mut c = config(&rx.url);
        c.channel = None;
        c.index = None;
        let hec = SplunkHec::new(&c, &testing::context(&env)).unwrap();
        let sec = testing::security_envelope("d-busy", "block");
        let e = hec.publish(testing::record("d-busy", "security_event", &sec)).await.unwrap_err();
        assert!(e.0.contains("non-zero code") && e.0.contains("busy"), "{e}");
        let sec = testing::security_envelope("d-x", "block");
        let e = hec.publish(testing::record("d-x", "security_event", &sec)).await.unwrap_err();
        assert!(e.0.contains("403") && !e.0.contains(TOKEN), "{e}");
        let got = rx.all();
        assert!(got[0].headers.get("x-splunk-request-channel").is_none(), "no channel configured, none sent");
        assert!(got[0].json().get("index").is_none(), "no index configured, none sent");
    }

    #[test]
    fn a_missing_token_is_named() {
        let e = SplunkHec::new(&config("http://127.0.0.1:1"), &testing::context(&|_| None)).unwrap_err();
        assert_eq!(e.field, "token_env");
    }
}
