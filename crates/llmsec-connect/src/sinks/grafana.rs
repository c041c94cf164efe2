//! Grafana annotations: an anomaly as a region on dashboards.
//!
//! `POST {url}/api/annotations` with `Authorization: Bearer <token>` (a
//! service-account token) and
//!
//! ```json
//! {"time": <first seen, ms>, "timeEnd": <last seen (or resolution), ms>,
//!  "tags": ["llmsec", "anomaly.detected", "warning", "detector:cost-spike"],
//!  "text": "…", "dashboardUID": "…", "panelId": 4}
//! ```
//!
//! `dashboardUID` and `panelId` only when configured (without them the
//! annotation is an organisation-wide one, shown by dashboards that query
//! annotations by tag). Grafana answers `{"message": "Annotation added",
//! "id": 1}`; any non-2xx status is a failure. Grafana does not deduplicate
//! annotations, so a redelivery after a lost answer adds a second one with
//! the same `text` (which ends with the delivery id).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::event::{SinkEvent, Subject};
use super::{BuildContext, FieldError, Secret};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError};

/// `kind = "grafana"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaConfig {
    /// Grafana's base URL, e.g. `https://grafana.example`.
    pub url: String,
    /// The environment variable holding a service-account token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// The file holding a service-account token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The dashboard to annotate; organisation-wide when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_uid: Option<String>,
    /// The panel of that dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel_id: Option<u64>,
}

impl GrafanaConfig {
    fn check(&self) -> Result<(), FieldError> {
        super::check_base_url(&self.url)?;
        super::check_secret("token", &self.token_env, &self.token_file)?;
        if self.dashboard_uid.as_deref().is_some_and(str::is_empty) {
            return Err(FieldError::new("dashboard_uid", "must not be empty"));
        }
        if self.panel_id.is_some() && self.dashboard_uid.is_none() {
            return Err(FieldError::new("panel_id", "needs dashboard_uid"));
        }
        Ok(())
    }
}

impl super::KindConfig for GrafanaConfig {
    fn kind_name(&self) -> &'static str {
        "grafana"
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn events(&self) -> &'static [super::EventName] {
        // Annotations are regions of time: anomalies have one, analyses do not.
        &super::EventName::ALL[1..]
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<std::sync::Arc<dyn OutboxPublisher>, FieldError> {
        Ok(std::sync::Arc::new(Grafana::new(self, ctx)?))
    }
}

/// Adds one annotation per anomaly change.
#[derive(Debug)]
pub struct Grafana {
    endpoint: String,
    config: GrafanaConfig,
    token: Secret,
    client: reqwest::Client,
}

impl Grafana {
    /// A publisher for `config`, its token read now.
    pub fn new(config: &GrafanaConfig, ctx: &BuildContext<'_>) -> Result<Grafana, FieldError> {
        super::KindConfig::validate(config)?;
        let token = super::secret("token", config.token_env.as_deref(), config.token_file.as_deref(), ctx)?;
        Ok(Grafana {
            endpoint: super::join(&config.url, "/api/annotations"),
            config: config.clone(),
            token,
            client: ctx.client.clone(),
        })
    }
}

/// The annotation of an anomaly change; `None` for a security event.
pub fn annotation(e: &SinkEvent, dashboard_uid: Option<&str>, panel_id: Option<u64>) -> Option<Value> {
    let Subject::Anomaly(a) = &e.subject else { return None };
    let end = a.resolved_at.filter(|_| e.event == super::EventName::AnomalyResolved).unwrap_or(a.last_seen);
    let mut v = json!({
        "time": a.timestamp,
        "timeEnd": end.max(a.timestamp),
        "tags": ["llmsec", e.event.as_str(), a.severity.as_str(), format!("detector:{}", a.detector_id)],
        "text": format!("{}<br>{} (tenant {}, delivery {})", a.title, a.description, e.tenant, e.id),
    });
    if let Some(d) = dashboard_uid {
        v["dashboardUID"] = d.into();
    }
    if let Some(p) = panel_id {
        v["panelId"] = p.into();
    }
    Some(v)
}

#[async_trait::async_trait]
impl OutboxPublisher for Grafana {
    async fn publish(&self, record: OutboxRecord<'_>) -> Result<(), PublishError> {
        let e = SinkEvent::from_record(&record)?;
        let body = annotation(&e, self.config.dashboard_uid.as_deref(), self.config.panel_id)
            .ok_or_else(|| PublishError(format!("grafana: {} is not an anomaly change", e.event.as_str())))?;
        let resp = self
            .client
            .post(&self.endpoint)
            .bearer_auth(self.token.expose())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| super::send_failure("grafana", &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| super::send_failure("grafana", &e))?;
        if !status.is_success() {
            return Err(super::http_failure("grafana annotation", status, &bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::sinks::testing::{self, Receiver};

    #[tokio::test]
    async fn an_anomaly_becomes_a_region_annotation_with_tags() {
        let rx = Receiver::start(|g| match g.header("authorization") {
            Some("Bearer glsa_test") => (StatusCode::OK, r#"{"message":"Annotation added","id":1}"#.into()),
            _ => (StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#.into()),
        })
        .await;
        let c = GrafanaConfig {
            url: rx.url.clone(),
            token_env: Some("G".into()),
            token_file: None,
            dashboard_uid: Some("llmsec-overview".into()),
            panel_id: Some(4),
        };
        let g = Grafana::new(&c, &testing::context(&|k| (k == "G").then(|| "glsa_test".into()))).unwrap();
        let an = testing::anomaly_envelope("d-1", "anomaly.resolved");
        g.publish(testing::record("d-1", "anomaly.resolved", &an)).await.unwrap();
        let got = &rx.all()[0];
        assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/api/annotations"));
        let b = got.json();
        assert_eq!(b["time"], 1_764_000_000_000_i64, "first seen, ms");
        assert_eq!(b["timeEnd"], 1_764_000_900_000_i64, "resolved: the region ends at the resolution");
        assert_eq!(b["tags"], json!(["llmsec", "anomaly.resolved", "warning", "detector:cost-spike-detector"]));
        assert_eq!((b["dashboardUID"].as_str(), b["panelId"].as_u64()), (Some("llmsec-overview"), Some(4)));
        assert!(b["text"].as_str().unwrap().contains("delivery d-1"));
        let sec = testing::security_envelope("d-2", "block");
        assert!(g.publish(testing::record("d-2", "security_event", &sec)).await.is_err());
        let bad = Grafana::new(&c, &testing::context(&|_| Some("nope".into()))).unwrap();
        let e = bad.publish(testing::record("d-1", "anomaly.resolved", &an)).await.unwrap_err();
        assert!(e.0.contains("401"), "{e}");
    }

    #[test]
    fn an_open_anomaly_spans_first_to_last_seen_and_panel_needs_a_dashboard() {
        let mut a = llm_sentinel::anomaly::sample();
        a.last_seen = a.timestamp + 60_000;
        let env = serde_json::json!({"id": "d", "event": "anomaly.detected", "tenant": "t", "data": a}).to_string();
        let e = SinkEvent::from_record(&testing::record("d", "anomaly.detected", env.as_bytes())).unwrap();
        let v = annotation(&e, None, None).unwrap();
        assert_eq!(v["timeEnd"].as_i64().unwrap() - v["time"].as_i64().unwrap(), 60_000);
        assert!(v.get("dashboardUID").is_none() && v.get("panelId").is_none());
        let c = GrafanaConfig {
            url: "http://g".into(),
            token_env: Some("G".into()),
            token_file: None,
            dashboard_uid: None,
            panel_id: Some(1),
        };
        assert_eq!(c.check().unwrap_err().field, "panel_id");
    }
}
