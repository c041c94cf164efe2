//! Seed 002's Sentinel GraphQL schema, merged into `/graphql`:
//!
//! ```graphql
//! type Query {
//!   anomalies(filter: AnomalyFilter, timeRange: TimeRange!, pagination: Pagination): AnomalyConnection!
//!   anomaly(id: ID!): Anomaly
//!   metrics(names: [String!]!, dimensions: [DimensionInput!], timeRange: TimeRange!,
//!           aggregation: Aggregation!, granularity: Granularity!): [MetricSeries!]!
//!   statistics(timeRange: TimeRange!, groupBy: [String!]): Statistics!
//!   detectors(filter: DetectorFilter): [Detector!]!
//!   alerts(filter: AlertFilter, timeRange: TimeRange!): AlertConnection!
//! }
//! type Mutation {
//!   acknowledgeAnomaly(id: ID!, acknowledgedBy: String!, note: String): Anomaly!
//!   updateDetector(id: ID!, config: DetectorConfigInput!): Detector!
//!   testDetector(id: ID!, testData: JSON!): DetectorTestResult!
//! }
//! type Subscription {
//!   anomalyDetected(filter: AnomalyFilter): Anomaly!
//!   metricsUpdated(names: [String!]!): MetricUpdate!
//! }
//! ```
//! Reads need scope `read`; `acknowledgeAnomaly` needs `triage` (which
//! `admin` includes); `updateDetector` and `testDetector` need `admin`.
//! Everything is confined to the caller's tenant: `updateDetector` changes
//! the caller's tenant's detector only, and an id of another tenant's
//! anomaly or detector is not found.

use std::time::Duration;

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject, Subscription};
use futures_util::Stream;
use llm_sentinel::detector::DetectorKind;
use llm_sentinel::event::TelemetryEvent;
use llm_sentinel::{Anomaly as SAnomaly, AnomalyStatus as SStatus, Severity as SSeverity};
use llmsec_store::{AnomalyQuery, Scope};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;
use crate::api::admin::rfc3339;
use crate::api::events::parse_time;
use crate::api::series::{Dimension, MetricsQuery};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graphql::gql_error;

fn caller<'a>(ctx: &'a Context<'_>, scope: Scope) -> async_graphql::Result<&'a Caller> {
    let c = ctx.data::<Caller>().map_err(|_| gql_error(ApiError::Unauthorized))?;
    c.require(scope).map_err(gql_error)?;
    Ok(c)
}

/// Seed 002's severities.
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
    fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Seed 002's statuses.
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
    fn as_str(self) -> &'static str {
        match self {
            AnomalyStatus::Active => "active",
            AnomalyStatus::Acknowledged => "acknowledged",
            AnomalyStatus::Resolved => "resolved",
            AnomalyStatus::Suppressed => "suppressed",
        }
    }
}

/// Seed 002's detector types, plus ours (`ML` is the threat detector).
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

/// Seed 002's `Anomaly`.
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
            if let Some(row) = state.store.anomaly(&self.tenant, id).await.map_err(|e| gql_error(e.into()))?
                && let Ok(a) = serde_json::from_str::<SAnomaly>(&row.body)
            {
                out.push(Anomaly::new(&self.tenant, &a));
            }
        }
        Ok(out)
    }
}

impl Anomaly {
    fn new(tenant: &str, a: &SAnomaly) -> Anomaly {
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
                    message: x.message.clone(),
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

/// Seed 002's `AnomalyFilter`.
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
    fn matches(&self, a: &SAnomaly) -> bool {
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

/// Seed 002's `TimeRange` (RFC 3339).
#[derive(InputObject, Debug, Clone)]
pub struct TimeRange {
    /// From (inclusive).
    pub start: String,
    /// To (exclusive).
    pub end: String,
}

impl TimeRange {
    fn millis(&self) -> async_graphql::Result<(i64, i64)> {
        let s = parse_time("timeRange.start", &self.start).map_err(gql_error)?;
        let e = parse_time("timeRange.end", &self.end).map_err(gql_error)?;
        if e <= s {
            return Err(gql_error(ApiError::field("timeRange.end", "must be after start")));
        }
        Ok((s, e))
    }
}

/// Seed 002's `Pagination`.
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

/// Seed 002's `MetricSeries`.
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

/// Seed 002's `Statistics`.
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
    fn new(d: llm_sentinel::DetectorInfo, admin: bool) -> Self {
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

/// Sentinel queries.
#[derive(Debug, Default)]
pub struct SentinelQuery;

async fn load(state: &AppState, tenant: &str, start: i64, end: i64) -> async_graphql::Result<Vec<SAnomaly>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let q = AnomalyQuery {
            tenant: tenant.to_owned(),
            start: Some(start),
            end: Some(end),
            limit: 1000,
            offset,
            ..Default::default()
        };
        let (rows, total) = state.store.anomalies(&q).await.map_err(|e| gql_error(e.into()))?;
        offset += rows.len() as u32;
        let done = rows.is_empty() || u64::from(offset) >= total || offset >= 100_000;
        out.extend(rows.iter().filter_map(|r| serde_json::from_str::<SAnomaly>(&r.body).ok()));
        if done {
            return Ok(out);
        }
    }
}

#[Object]
impl SentinelQuery {
    /// Anomalies opened in the range, newest first.
    async fn anomalies(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnomalyFilter>,
        time_range: TimeRange,
        pagination: Option<Pagination>,
    ) -> async_graphql::Result<AnomalyConnection> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let (start, end) = time_range.millis()?;
        let p = pagination.unwrap_or(Pagination { limit: 100, offset: 0 });
        if !(1..=1000).contains(&p.limit) || p.offset < 0 {
            return Err(gql_error(ApiError::field("pagination", "limit must be 1-1000 and offset ≥ 0")));
        }
        let f = filter.unwrap_or_default();
        let q = AnomalyQuery {
            tenant: c.tenant.clone(),
            start: Some(start),
            end: Some(end),
            severities: f.severities.iter().flatten().map(|s| s.as_str().to_owned()).collect(),
            statuses: f.statuses.iter().flatten().map(|s| s.as_str().to_owned()).collect(),
            detector_ids: f.detector_ids.clone().unwrap_or_default(),
            application_ids: f.application_ids.clone().unwrap_or_default(),
            score_min: f.score_min,
            score_max: f.score_max,
            limit: p.limit as u32,
            offset: p.offset as u32,
        };
        let (rows, total) = state.store.anomalies(&q).await.map_err(|e| gql_error(e.into()))?;
        let edges: Vec<AnomalyEdge> = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<SAnomaly>(&r.body).ok())
            .enumerate()
            .map(|(i, a)| AnomalyEdge {
                cursor: (p.offset as usize + i + 1).to_string(),
                node: Anomaly::new(&c.tenant, &a),
            })
            .collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        let has_next_page = (p.offset as u64 + edges.len() as u64) < total;
        Ok(AnomalyConnection { edges, page_info: PageInfo { has_next_page, end_cursor }, total_count: total })
    }

    /// One anomaly of the caller's tenant.
    async fn anomaly(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Anomaly>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let row = state.store.anomaly(&c.tenant, &id).await.map_err(|e| gql_error(e.into()))?;
        Ok(row.and_then(|r| serde_json::from_str::<SAnomaly>(&r.body).ok()).map(|a| Anomaly::new(&c.tenant, &a)))
    }

    /// Time series of telemetry metrics.
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        names: Vec<String>,
        dimensions: Option<Vec<DimensionInput>>,
        time_range: TimeRange,
        aggregation: Aggregation,
        granularity: Granularity,
    ) -> async_graphql::Result<Vec<MetricSeries>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let agg = match aggregation {
            Aggregation::Avg => "avg",
            Aggregation::Sum => "sum",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Count => "count",
            Aggregation::P50 => "p50",
            Aggregation::P95 => "p95",
            Aggregation::P99 => "p99",
        };
        let gran = match granularity {
            Granularity::OneMinute => "1m",
            Granularity::FiveMinutes => "5m",
            Granularity::FifteenMinutes => "15m",
            Granularity::OneHour => "1h",
            Granularity::OneDay => "1d",
        };
        let q = MetricsQuery {
            metrics: names,
            start: time_range.start,
            end: time_range.end,
            aggregation: agg.into(),
            granularity: gran.into(),
            group_by: None,
        };
        let only: Vec<Dimension> =
            dimensions.unwrap_or_default().into_iter().map(|d| Dimension { name: d.name, value: d.value }).collect();
        let (series, _, _) = crate::api::series::compute(state, &c.tenant, &q, &only).await.map_err(gql_error)?;
        Ok(series
            .into_iter()
            .map(|s| MetricSeries {
                name: s.name,
                dimensions: only
                    .iter()
                    .map(|d| GqlDimension { name: d.name.clone(), value: d.value.clone() })
                    .collect(),
                datapoints: s
                    .datapoints
                    .into_iter()
                    .map(|p| Datapoint { timestamp: p.timestamp, value: p.value })
                    .collect(),
                unit: s.unit.map(str::to_owned),
                aggregation,
            })
            .collect())
    }

    /// Statistics of the anomalies opened in the range.
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        time_range: TimeRange,
        group_by: Option<Vec<String>>,
    ) -> async_graphql::Result<Statistics> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let (start, end) = time_range.millis()?;
        let groups = group_by.unwrap_or_default();
        if let Some(g) =
            groups.iter().find(|g| !matches!(g.as_str(), "detector_id" | "severity" | "application_id" | "entity"))
        {
            return Err(gql_error(ApiError::field(
                "groupBy",
                format!("{g:?} is not detector_id, severity, application_id or entity"),
            )));
        }
        let wants = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
        let s =
            crate::api::anomalies::compute_stats(state, &c.tenant, Some(start), Some(end)).await.map_err(gql_error)?;
        let conv = |v: Vec<crate::api::anomalies::Count>, on: bool| -> Vec<KeyCount> {
            if on { v.into_iter().map(|c| KeyCount { key: c.key, count: c.count }).collect() } else { Vec::new() }
        };
        Ok(Statistics {
            total_anomalies: s.total_anomalies,
            anomalies_by_detector: conv(s.anomalies_by_detector, wants("detector_id")),
            anomalies_by_severity: conv(s.anomalies_by_severity, wants("severity")),
            anomalies_by_application: conv(s.anomalies_by_application, wants("application_id")),
            top_affected_entities: conv(s.top_affected_entities, wants("entity")),
            detection_rate: s.detection_rate,
            average_score: s.average_score,
            mttr: s.mttr,
        })
    }

    /// The detectors and their state for the caller's tenant.
    async fn detectors(
        &self,
        ctx: &Context<'_>,
        filter: Option<DetectorFilter>,
    ) -> async_graphql::Result<Vec<Detector>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let f = filter.unwrap_or_default();
        let admin = c.scopes.contains(&Scope::Admin);
        Ok(state
            .sentinel
            .detectors(&c.tenant)
            .into_iter()
            .map(|d| Detector::new(d, admin))
            .filter(|d| {
                f.types.as_ref().is_none_or(|t| t.contains(&d.kind)) && f.enabled.is_none_or(|e| e == d.enabled)
            })
            .collect())
    }

    /// Alerts sent for anomalies opened in the range.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertFilter>,
        time_range: TimeRange,
    ) -> async_graphql::Result<AlertConnection> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let (start, end) = time_range.millis()?;
        let f = filter.unwrap_or_default();
        let mut nodes = Vec::new();
        for a in load(state, &c.tenant, start, end).await? {
            let sev: Severity = a.severity.into();
            for (i, x) in a.actions_taken.iter().enumerate().filter(|(_, x)| x.kind == "alert") {
                if f.severities.as_ref().is_some_and(|s| !s.contains(&sev))
                    || f.statuses.as_ref().is_some_and(|s| !s.contains(&x.status))
                {
                    continue;
                }
                nodes.push(Alert {
                    id: ID(format!("{}:{i}", a.id)),
                    anomaly_id: a.id.clone(),
                    severity: sev,
                    title: a.title.clone(),
                    message: x.message.clone(),
                    status: x.status.clone(),
                    timestamp: rfc3339(x.at),
                });
            }
        }
        let total_count = nodes.len() as u64;
        Ok(AlertConnection { nodes, total_count })
    }
}

/// A refused detector change as a GraphQL error: not found, or a 400 naming `config`.
fn detector_error(id: &str, e: crate::sentinel::DetectorError) -> async_graphql::Error {
    use crate::sentinel::DetectorError;
    gql_error(match e {
        DetectorError::NotFound(_) => ApiError::NotFound(format!("no detector {id:?}")),
        DetectorError::Invalid(m) => ApiError::field("config", m),
        DetectorError::Store(e) => e.into(),
    })
}

/// Sentinel mutations (`acknowledgeAnomaly`: scope `triage`; the others: `admin`).
#[derive(Debug, Default)]
pub struct SentinelMutation;

#[Object]
impl SentinelMutation {
    /// ACTIVE → ACKNOWLEDGED.
    async fn acknowledge_anomaly(
        &self,
        ctx: &Context<'_>,
        id: ID,
        acknowledged_by: String,
        note: Option<String>,
    ) -> async_graphql::Result<Anomaly> {
        let c = caller(ctx, Scope::Triage)?;
        let state = ctx.data::<AppState>()?;
        if acknowledged_by.trim().is_empty() || acknowledged_by.len() > 256 {
            return Err(gql_error(ApiError::field("acknowledgedBy", "must be 1-256 characters")));
        }
        let a =
            state.sentinel.acknowledge(&c.tenant, &id, acknowledged_by.trim(), note).await.map_err(|e| match e {
                crate::sentinel::TransitionError::NotFound => {
                    gql_error(ApiError::NotFound(format!("no anomaly {:?}", id.as_str())))
                }
                crate::sentinel::TransitionError::Store(e) => gql_error(e.into()),
                e => gql_error(ApiError::field("id", e.to_string())),
            })?;
        crate::api::admin::audit(state, c, "anomaly.acknowledge", &id, serde_json::json!({"tenant": c.tenant}))
            .await
            .map_err(gql_error)?;
        Ok(Anomaly::new(&c.tenant, &a))
    }

    /// Changes the caller's tenant's detector live (validated first; the
    /// old one is kept on error). Fields left out stay as they are. The
    /// change is stored for this tenant, laid over the detectors file, and
    /// never written to the file; other tenants keep their own detectors.
    async fn update_detector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        config: DetectorConfigInput,
    ) -> async_graphql::Result<Detector> {
        let c = caller(ctx, Scope::Admin)?;
        let state = ctx.data::<AppState>()?;
        let mut fields = serde_json::Map::new();
        if let Some(k) = config.kind {
            fields.insert("type".into(), k.into());
        }
        if let Some(n) = config.name {
            fields.insert("name".into(), n.into());
        }
        if let Some(e) = config.enabled {
            fields.insert("enabled".into(), e.into());
        }
        if let Some(s) = config.severity {
            fields.insert("severity".into(), s.as_str().into());
        }
        if let Some(cfg) = config.config {
            fields.insert("config".into(), cfg.0);
        }
        if let Some(a) = config.actions {
            fields.insert("actions".into(), a.0);
        }
        let (info, _) =
            state.sentinel.update_detector(&c.tenant, &id, fields.clone()).await.map_err(|e| detector_error(&id, e))?;
        // The audit log is read back: it keeps the change without its secrets.
        let mut details = serde_json::json!({"tenant": c.tenant, "fields": fields});
        crate::redact::redact_secrets(&mut details);
        crate::api::admin::audit(state, c, "detector.update", &id, details).await.map_err(gql_error)?;
        let mut d = Detector::new(info, true);
        d.tracked_entities = 0;
        Ok(d)
    }

    /// Runs a detector on `testData` (a list of telemetry events) with fresh
    /// state; changes nothing.
    async fn test_detector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        test_data: async_graphql::Json<serde_json::Value>,
    ) -> async_graphql::Result<DetectorTestResult> {
        let c = caller(ctx, Scope::Admin)?;
        let state = ctx.data::<AppState>()?;
        let list = match test_data.0 {
            serde_json::Value::Array(a) => a,
            v @ serde_json::Value::Object(_) => vec![v],
            _ => return Err(gql_error(ApiError::field("testData", "a telemetry event or a list of them"))),
        };
        let mut events = Vec::with_capacity(list.len());
        for (i, v) in list.into_iter().enumerate() {
            let e: TelemetryEvent = serde_json::from_value(v)
                .map_err(|e| gql_error(ApiError::field(format!("testData[{i}]"), e.to_string())))?;
            e.validate()
                .map_err(|err| gql_error(ApiError::field(format!("testData[{i}].{}", err.field), err.message)))?;
            events.push(e);
        }
        let findings = state.sentinel.test_detector(&c.tenant, &id, &events).map_err(|e| detector_error(&id, e))?;
        Ok(DetectorTestResult {
            events_processed: events.len() as u64,
            findings: findings
                .into_iter()
                .map(|f| TestFinding {
                    severity: f.severity.into(),
                    score: f.score,
                    title: f.title,
                    description: f.description,
                    affected_entity: Entity {
                        kind: f.entity.kind.as_str().to_owned(),
                        id: f.entity.id.clone(),
                        name: f.entity.id,
                    },
                    observed: f.observed,
                    threshold: f.threshold,
                    event_id: f.event_id,
                })
                .collect(),
        })
    }
}

/// Sentinel subscriptions (scope `read`).
#[derive(Debug, Default)]
pub struct SentinelSubscription;

/// How often `metricsUpdated` pushes.
pub const METRICS_EVERY: Duration = Duration::from_secs(5);

#[Subscription]
impl SentinelSubscription {
    /// New anomalies of the caller's tenant that match `filter`.
    async fn anomaly_detected(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnomalyFilter>,
    ) -> async_graphql::Result<impl Stream<Item = Anomaly> + use<>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let tenant = c.tenant.clone();
        let f = filter.unwrap_or_default();
        let rx = state.sentinel.feed.subscribe();
        Ok(BroadcastStream::new(rx).filter_map(move |n| {
            let n = n.ok()?;
            (n.tenant == tenant && n.change == llm_sentinel::Change::Created && f.matches(&n.anomaly))
                .then(|| Anomaly::new(&n.tenant, &n.anomaly))
        }))
    }

    /// The named metrics over the last minute, every 5 seconds.
    async fn metrics_updated(
        &self,
        ctx: &Context<'_>,
        names: Vec<String>,
    ) -> async_graphql::Result<impl Stream<Item = MetricUpdate> + use<>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?.clone();
        if let Some((i, n)) = names.iter().enumerate().find(|(_, n)| !crate::api::series::METRICS.contains(&n.as_str()))
        {
            return Err(gql_error(ApiError::field(format!("names[{i}]"), format!("unknown metric {n:?}"))));
        }
        let tenant = c.tenant.clone();
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(METRICS_EVERY));
        let updates = tokio_stream::StreamExt::then(ticks, move |_| {
            let state = state.clone();
            let tenant = tenant.clone();
            let names = names.clone();
            async move { latest(&state, &tenant, &names).await }
        });
        Ok(futures_util::StreamExt::flat_map(updates, futures_util::stream::iter))
    }
}

/// The last minute of each metric.
async fn latest(state: &AppState, tenant: &str, names: &[String]) -> Vec<MetricUpdate> {
    let now = state.sentinel.now();
    let start = now - 60_000;
    let agg = |n: &str| if matches!(n, "cost" | "request_count" | "anomaly_count") { "sum" } else { "avg" };
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let q = MetricsQuery {
            metrics: vec![n.clone()],
            start: start.to_string(),
            end: now.max(start + 1).to_string(),
            aggregation: agg(n).into(),
            granularity: "1m".into(),
            group_by: None,
        };
        let value = match crate::api::series::compute(state, tenant, &q, &[]).await {
            Ok((series, _, _)) => series.first().and_then(|s| s.datapoints.first()).and_then(|p| p.value),
            Err(_) => None,
        };
        out.push(MetricUpdate { name: n.clone(), value, timestamp: rfc3339(now) });
    }
    out
}
