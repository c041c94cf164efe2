//! The GraphQL object, input and enum types of Sentinel's schema, and
//! their conversions from Sentinel's anomalies, detectors and enums.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject};
use llm_sentinel::detector::DetectorKind;
use llm_sentinel::{Anomaly as SAnomaly, AnomalyStatus as SStatus, Severity as SSeverity};

use crate::error::ApiError;
use crate::gql::gql_error;
use crate::service::parse_time;
use crate::state::AppState;
use crate::time::rfc3339;

/// How bad an anomaly is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Severity {
    /// Info.
    Info,
    /// Warning.
    Warning,
    /// Critical.
    Critical,
}

impl From<SSeverity> for Severity {
    fn from(s: SSeverity) -> Self {
        match s {
            SSeverity::Info => Severity::Info,
            SSeverity::Warning => Severity::Warning,
            SSeverity::Critical => Severity::Critical,
        }
    }
}

impl Severity {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Where an anomaly stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AnomalyStatus {
    /// Open.
    Active,
    /// Someone is on it.
    Acknowledged,
    /// Over.
    Resolved,
    /// Muted.
    Suppressed,
}

impl From<SStatus> for AnomalyStatus {
    fn from(s: SStatus) -> Self {
        match s {
            SStatus::Active => AnomalyStatus::Active,
            SStatus::Acknowledged => AnomalyStatus::Acknowledged,
            SStatus::Resolved => AnomalyStatus::Resolved,
            SStatus::Suppressed => AnomalyStatus::Suppressed,
        }
    }
}

impl AnomalyStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AnomalyStatus::Active => "active",
            AnomalyStatus::Acknowledged => "acknowledged",
            AnomalyStatus::Resolved => "resolved",
            AnomalyStatus::Suppressed => "suppressed",
        }
    }
}

/// The detector types (`ML` is the threat detector).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum DetectorType {
    /// zscore / EWMA / MAD.
    Statistical,
    /// Threshold expressions.
    Rule,
    /// The engine on texts.
    Ml,
    /// Per-entity baselines.
    Behavioral,
    /// Token entropy and drift.
    Entropy,
    /// External process.
    Plugin,
}

impl From<DetectorKind> for DetectorType {
    fn from(k: DetectorKind) -> Self {
        match k {
            DetectorKind::Statistical => DetectorType::Statistical,
            DetectorKind::Rule => DetectorType::Rule,
            DetectorKind::Threat => DetectorType::Ml,
            DetectorKind::Behavioral => DetectorType::Behavioral,
            DetectorKind::Entropy => DetectorType::Entropy,
            DetectorKind::Plugin => DetectorType::Plugin,
        }
    }
}

/// The thing an anomaly is about.
#[derive(SimpleObject, Debug, Clone)]
pub struct Entity {
    /// `application`, `tenant`, `user`, `model`, `session`, `ip`.
    #[graphql(name = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
    /// A display name (the id).
    pub name: String,
}

/// A block or rate limit in force on an entity of the tenant (set by a
/// detector's shield action, a Shield gRPC action, or a lockdown).
#[derive(SimpleObject, Debug, Clone)]
pub struct Enforcement {
    /// Its id.
    pub id: ID,
    /// What it holds.
    pub entity: Entity,
    /// `block` or `rate_limit`.
    pub action: String,
    /// Requests per window, for a rate limit.
    pub rate_limit: Option<u64>,
    /// The window in milliseconds, for a rate limit.
    pub window_ms: Option<i64>,
    /// Why (shown to refused callers).
    pub reason: String,
    /// The anomaly that caused it.
    pub anomaly_id: Option<String>,
    /// When it started (RFC 3339).
    pub created_at: Option<String>,
    /// When it ends (RFC 3339).
    pub expires_at: Option<String>,
}

impl From<&llmsec_store::Enforcement> for Enforcement {
    fn from(e: &llmsec_store::Enforcement) -> Enforcement {
        Enforcement {
            id: ID(e.id.clone()),
            entity: Entity { kind: e.entity_kind.clone(), id: e.entity_id.clone(), name: e.entity_id.clone() },
            action: e.action.clone(),
            rate_limit: e.rate_limit,
            window_ms: e.window_ms,
            reason: e.reason.clone(),
            anomaly_id: e.anomaly_id.clone(),
            created_at: crate::time::rfc3339(e.created_at),
            expires_at: crate::time::rfc3339(e.expires_at),
        }
    }
}

/// A subject's risk score: a decaying sum of its threats, anomalies and
/// enforcements on 0–100.
#[derive(SimpleObject, Debug, Clone)]
pub struct RiskScore {
    /// `user`, `session` or `application`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// 0–100.
    pub score: f64,
    /// The decayed points behind the score.
    pub points: f64,
    /// Analyses with threats counted.
    pub threats: u32,
    /// Anomalies counted.
    pub anomalies: u32,
    /// Enforcements counted.
    pub enforcements: u32,
    /// When it last changed (RFC 3339).
    pub updated_at: Option<String>,
}

impl From<crate::risk::Risk> for RiskScore {
    fn from(r: crate::risk::Risk) -> RiskScore {
        RiskScore {
            kind: r.kind.as_str().to_owned(),
            id: r.id,
            score: r.score,
            points: r.points,
            threats: r.threats,
            anomalies: r.anomalies,
            enforcements: r.enforcements,
            updated_at: (r.updated_at > 0).then(|| crate::time::rfc3339(r.updated_at)).flatten(),
        }
    }
}

/// The numbers behind an anomaly.
#[derive(SimpleObject, Debug, Clone)]
pub struct AnomalyMetrics {
    /// Expected.
    pub baseline: Option<f64>,
    /// Seen.
    pub observed: Option<f64>,
    /// Distance.
    pub deviation: Option<f64>,
    /// Threshold.
    pub threshold: Option<f64>,
}

/// Where and when.
#[derive(SimpleObject, Debug, Clone)]
pub struct AnomalyContext {
    /// Window start (RFC 3339).
    pub window_start: Option<String>,
    /// Window end.
    pub window_end: Option<String>,
    /// Events that triggered it.
    pub sample_events: Vec<String>,
    /// The application.
    pub application_id: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
}

/// An action run for an anomaly.
#[derive(SimpleObject, Debug, Clone)]
pub struct ActionTaken {
    /// Its id.
    pub id: String,
    /// `shield`, `alert`, `incident`, `webhook`.
    #[graphql(name = "type")]
    pub kind: String,
    /// `pending`, `succeeded`, `failed`, …
    pub status: String,
    /// Details.
    pub message: String,
    /// When.
    pub at: Option<String>,
}

/// An anomaly a detector opened.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Anomaly {
    /// Its id.
    pub id: ID,
    /// When it opened (RFC 3339).
    pub timestamp: Option<String>,
    /// The detector.
    pub detector_id: String,
    /// The detector's type.
    pub detector_type: DetectorType,
    /// How bad.
    pub severity: Severity,
    /// How anomalous, `[0, 1]`.
    pub score: f64,
    /// Where it stands.
    pub status: AnomalyStatus,
    /// One line.
    pub title: String,
    /// For people.
    pub description: String,
    /// What it is about.
    pub affected_entity: Entity,
    /// Numbers.
    pub metrics: AnomalyMetrics,
    /// Where and when.
    pub context: AnomalyContext,
    /// Actions run.
    pub actions_taken: Vec<ActionTaken>,
    /// The incident opened for it.
    pub incident_id: Option<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<String>,
    /// Findings absorbed.
    pub occurrences: u64,
    #[graphql(skip)]
    related_ids: Vec<String>,
    #[graphql(skip)]
    tenant: String,
}

#[ComplexObject]
impl Anomaly {
    /// Open anomalies of the same entity from other detectors.
    async fn related_anomalies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Anomaly>> {
        let state = ctx.data::<AppState>()?;
        let mut out = Vec::new();
        for id in self.related_ids.iter().take(50) {
            if let Some(row) = state.store.anomaly(&self.tenant, id).await.map_err(gql_error)?
                && let Ok(a) = serde_json::from_str::<SAnomaly>(&row.body)
            {
                out.push(Anomaly::new(&self.tenant, &a));
            }
        }
        Ok(out)
    }
}

impl Anomaly {
    pub(super) fn new(tenant: &str, a: &SAnomaly) -> Anomaly {
        Anomaly {
            id: ID(a.id.clone()),
            timestamp: rfc3339(a.timestamp),
            detector_id: a.detector_id.clone(),
            detector_type: a.detector_type.into(),
            severity: a.severity.into(),
            score: a.score,
            status: a.status.into(),
            title: a.title.clone(),
            description: a.description.clone(),
            affected_entity: Entity {
                kind: a.affected_entity.kind.as_str().to_owned(),
                id: a.affected_entity.id.clone(),
                name: a.affected_entity.id.clone(),
            },
            metrics: AnomalyMetrics {
                baseline: a.metrics.baseline,
                observed: a.metrics.observed,
                deviation: a.metrics.deviation,
                threshold: a.metrics.threshold,
            },
            context: AnomalyContext {
                window_start: rfc3339(a.context.window_start),
                window_end: rfc3339(a.context.window_end),
                sample_events: a.context.sample_events.clone(),
                application_id: a.context.application_id.clone(),
                tenant_id: a.context.tenant_id.clone(),
            },
            actions_taken: a
                .actions_taken
                .iter()
                .map(|x| ActionTaken {
                    id: x.id.clone(),
                    kind: x.kind.clone(),
                    status: x.status.clone(),
                    // Rows stored before messages were masked may name a URL in full.
                    message: crate::redact::mask_urls_in_text(&x.message),
                    at: rfc3339(x.at),
                })
                .collect(),
            incident_id: a.incident_id.clone(),
            acknowledged_by: a.acknowledged_by.clone(),
            acknowledged_at: a.acknowledged_at.and_then(rfc3339),
            resolved_at: a.resolved_at.and_then(rfc3339),
            occurrences: a.occurrences,
            related_ids: a.related_anomalies.clone(),
            tenant: tenant.to_owned(),
        }
    }
}

/// Which anomalies to keep: each field given must match.
#[derive(InputObject, Debug, Default, Clone)]
pub struct AnomalyFilter {
    /// Any of these detectors.
    pub detector_ids: Option<Vec<String>>,
    /// Any of these severities.
    pub severities: Option<Vec<Severity>>,
    /// Any of these statuses.
    pub statuses: Option<Vec<AnomalyStatus>>,
    /// Any of these applications.
    pub application_ids: Option<Vec<String>>,
    /// Lowest score.
    pub score_min: Option<f64>,
    /// Highest score.
    pub score_max: Option<f64>,
}

impl AnomalyFilter {
    pub(super) fn matches(&self, a: &SAnomaly) -> bool {
        let sev: Severity = a.severity.into();
        let st: AnomalyStatus = a.status.into();
        self.detector_ids.as_ref().is_none_or(|v| v.contains(&a.detector_id))
            && self.severities.as_ref().is_none_or(|v| v.contains(&sev))
            && self.statuses.as_ref().is_none_or(|v| v.contains(&st))
            && self
                .application_ids
                .as_ref()
                .is_none_or(|v| a.context.application_id.as_ref().is_some_and(|app| v.contains(app)))
            && self.score_min.is_none_or(|m| a.score >= m)
            && self.score_max.is_none_or(|m| a.score <= m)
    }
}

/// A time range (RFC 3339).
#[derive(InputObject, Debug, Clone)]
pub struct TimeRange {
    /// From (inclusive).
    pub start: String,
    /// To (exclusive).
    pub end: String,
}

impl TimeRange {
    pub(super) fn millis(&self) -> async_graphql::Result<(i64, i64)> {
        let s = parse_time("timeRange.start", &self.start).map_err(gql_error)?;
        let e = parse_time("timeRange.end", &self.end).map_err(gql_error)?;
        if e <= s {
            return Err(gql_error(ApiError::field("timeRange.end", "must be after start")));
        }
        Ok((s, e))
    }
}

/// A page: its size and the rows before it.
#[derive(InputObject, Debug, Clone)]
pub struct Pagination {
    /// Page size (1-1000).
    #[graphql(default = 100)]
    pub limit: i32,
    /// Rows to skip.
    #[graphql(default = 0)]
    pub offset: i32,
}

/// An edge.
#[derive(SimpleObject, Debug)]
pub struct AnomalyEdge {
    /// The offset of this edge, as a cursor.
    pub cursor: String,
    /// The anomaly.
    pub node: Anomaly,
}

/// Paging state.
#[derive(SimpleObject, Debug)]
#[graphql(name = "AnomalyPageInfo")]
pub struct PageInfo {
    /// More follow.
    pub has_next_page: bool,
    /// The last edge's cursor.
    pub end_cursor: Option<String>,
}

/// A page of anomalies.
#[derive(SimpleObject, Debug)]
pub struct AnomalyConnection {
    /// The anomalies, newest first.
    pub edges: Vec<AnomalyEdge>,
    /// Paging.
    pub page_info: PageInfo,
    /// Matching in all.
    pub total_count: u64,
}

/// Bucket aggregation.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Aggregation {
    /// Mean.
    Avg,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Count of values.
    Count,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

/// Bucket size.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Granularity {
    /// 1 minute.
    OneMinute,
    /// 5 minutes.
    FiveMinutes,
    /// 15 minutes.
    FifteenMinutes,
    /// 1 hour.
    OneHour,
    /// 1 day.
    OneDay,
}

/// A dimension filter.
#[derive(InputObject, Debug, Clone)]
pub struct DimensionInput {
    /// `application`, `model` or `user`.
    pub name: String,
    /// The value to keep.
    pub value: String,
}

/// A dimension.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Dimension")]
pub struct GqlDimension {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A point.
#[derive(SimpleObject, Debug, Clone)]
pub struct Datapoint {
    /// Bucket start.
    pub timestamp: Option<String>,
    /// Value.
    pub value: Option<f64>,
}

/// A metric's time series.
#[derive(SimpleObject, Debug, Clone)]
pub struct MetricSeries {
    /// Metric.
    pub name: String,
    /// Dimensions.
    pub dimensions: Vec<GqlDimension>,
    /// Points.
    pub datapoints: Vec<Datapoint>,
    /// Unit.
    pub unit: Option<String>,
    /// Aggregation.
    pub aggregation: Aggregation,
}

/// A count per key.
#[derive(SimpleObject, Debug, Clone)]
pub struct KeyCount {
    /// The key.
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Statistics of the anomalies in a range.
#[derive(SimpleObject, Debug, Clone)]
pub struct Statistics {
    /// Anomalies in the range.
    pub total_anomalies: u64,
    /// By detector.
    pub anomalies_by_detector: Vec<KeyCount>,
    /// By severity.
    pub anomalies_by_severity: Vec<KeyCount>,
    /// By application.
    pub anomalies_by_application: Vec<KeyCount>,
    /// By entity (`kind:id`).
    pub top_affected_entities: Vec<KeyCount>,
    /// Anomalies per 1,000 events.
    pub detection_rate: f64,
    /// Mean score.
    pub average_score: f64,
    /// Mean time to resolution, seconds.
    pub mttr: Option<f64>,
}

/// `detectors(filter:)`.
#[derive(InputObject, Debug, Default)]
pub struct DetectorFilter {
    /// Only these types.
    pub types: Option<Vec<DetectorType>>,
    /// Only enabled (true) or disabled (false) ones.
    pub enabled: Option<bool>,
}

/// A detector.
#[derive(SimpleObject, Debug, Clone)]
pub struct Detector {
    /// Id.
    pub id: ID,
    /// Name.
    pub name: Option<String>,
    /// Type.
    #[graphql(name = "type")]
    pub kind: DetectorType,
    /// On or off.
    pub enabled: bool,
    /// Its `config:` block (secrets redacted; URLs masked without `admin`).
    pub config: async_graphql::Json<serde_json::Value>,
    /// Its actions (secrets redacted; URLs masked without `admin`).
    pub actions: async_graphql::Json<serde_json::Value>,
    /// Entities it tracks for the caller's tenant.
    pub tracked_entities: u64,
}

impl Detector {
    /// The detector as a caller reads it: never a secret (signing secrets,
    /// tokens, header values), and URLs masked unless the caller is `admin`.
    pub(super) fn new(d: llm_sentinel::DetectorInfo, admin: bool) -> Self {
        let actions = serde_json::to_value(&d.actions).unwrap_or_default();
        Detector {
            id: ID(d.id),
            name: d.name,
            kind: d.kind.into(),
            enabled: d.enabled,
            config: async_graphql::Json(crate::redact::for_reader(d.config, admin)),
            actions: async_graphql::Json(crate::redact::for_reader(actions, admin)),
            tracked_entities: d.tracked_entities as u64,
        }
    }
}

/// `updateDetector(config:)`: the detector's YAML entry fields.
#[derive(InputObject, Debug)]
pub struct DetectorConfigInput {
    /// Type (default: unchanged).
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// On or off (default: unchanged).
    pub enabled: Option<bool>,
    /// Severity of its anomalies.
    pub severity: Option<Severity>,
    /// The `config:` block (default: unchanged).
    pub config: Option<async_graphql::Json<serde_json::Value>>,
    /// The `actions:` list (default: unchanged).
    pub actions: Option<async_graphql::Json<serde_json::Value>>,
}

/// A finding of a dry run.
#[derive(SimpleObject, Debug)]
pub struct TestFinding {
    /// Severity.
    pub severity: Severity,
    /// Score.
    pub score: f64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Entity.
    pub affected_entity: Entity,
    /// Observed value.
    pub observed: Option<f64>,
    /// Threshold.
    pub threshold: Option<f64>,
    /// Triggering event.
    pub event_id: Option<String>,
}

/// `testDetector`'s answer.
#[derive(SimpleObject, Debug)]
pub struct DetectorTestResult {
    /// Events run.
    pub events_processed: u64,
    /// What the detector found (it keeps no state from the run).
    pub findings: Vec<TestFinding>,
}

/// An alert sent for an anomaly.
#[derive(SimpleObject, Debug)]
pub struct Alert {
    /// `<anomaly id>:<action index>`.
    pub id: ID,
    /// The anomaly.
    pub anomaly_id: String,
    /// Its severity.
    pub severity: Severity,
    /// Its title.
    pub title: String,
    /// Receivers and outcome.
    pub message: String,
    /// `succeeded`, `failed`.
    pub status: String,
    /// When.
    pub timestamp: Option<String>,
}

/// `alerts(filter:)`.
#[derive(InputObject, Debug, Default)]
pub struct AlertFilter {
    /// Only these severities.
    pub severities: Option<Vec<Severity>>,
    /// Only these statuses.
    pub statuses: Option<Vec<String>>,
}

/// Alerts in a range.
#[derive(SimpleObject, Debug)]
pub struct AlertConnection {
    /// The alerts, newest first.
    pub nodes: Vec<Alert>,
    /// How many.
    pub total_count: u64,
}

/// A metric's latest value.
#[derive(SimpleObject, Debug, Clone)]
pub struct MetricUpdate {
    /// Metric.
    pub name: String,
    /// Value over the last minute (sum for counts and cost, mean otherwise).
    pub value: Option<f64>,
    /// When.
    pub timestamp: Option<String>,
}
