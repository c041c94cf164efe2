//! The query root of Sentinel's schema: anomalies, one anomaly, metric
//! series, statistics, detectors and alerts, all of the caller's tenant.

use async_graphql::{Context, ID, Object};
use llm_sentinel::Anomaly as SAnomaly;
use llmsec_store::{AnomalyQuery, Scope};

use super::types::{
    Aggregation, Alert, AlertConnection, AlertFilter, Anomaly, AnomalyConnection, AnomalyEdge, AnomalyFilter,
    Datapoint, Detector, DetectorFilter, DimensionInput, Enforcement, GqlDimension, Granularity, KeyCount,
    MetricSeries, PageInfo, Pagination, RiskScore, Severity, Statistics, TimeRange,
};
use crate::error::ApiError;
use crate::gql::caller;
use crate::gql::gql_error;
use crate::service::series::{Dimension, MetricsQuery};
use crate::state::AppState;
use crate::time::rfc3339;

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
        let (rows, total) = state.store.anomalies(&q).await.map_err(gql_error)?;
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
        let (rows, total) = crate::service::anomalies::list(&state.services, c, q).await.map_err(gql_error)?;
        let edges: Vec<AnomalyEdge> = rows
            .iter()
            .enumerate()
            .map(|(i, a)| AnomalyEdge {
                cursor: (p.offset as usize + i + 1).to_string(),
                node: Anomaly::new(&c.tenant, a),
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
        match crate::service::anomalies::get(&state.services, c, &id).await {
            Ok(a) => Ok(Some(Anomaly::new(&c.tenant, &a))),
            Err(crate::service::ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(gql_error(e)),
        }
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
        let (series, _, _) = crate::service::series::compute(&state.services, c, &q, &only).await.map_err(gql_error)?;
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
        let s = crate::service::anomalies::statistics(&state.services, c, Some(start), Some(end))
            .await
            .map_err(gql_error)?;
        let conv = |v: Vec<crate::service::anomalies::Count>, on: bool| -> Vec<KeyCount> {
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

    /// The caller's tenant's enforcements in force now.
    async fn enforcements(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Enforcement>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let list = crate::service::anomalies::enforcements(&state.services, c).await.map_err(gql_error)?;
        Ok(list.iter().map(Enforcement::from).collect())
    }

    /// The caller's tenant's riskiest subjects now (of `kind`: `user`,
    /// `session` or `application`; all by default), highest first.
    async fn risk_scores(
        &self,
        ctx: &Context<'_>,
        kind: Option<String>,
        #[graphql(default = 20)] limit: u32,
    ) -> async_graphql::Result<Vec<RiskScore>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let kind = match kind.as_deref() {
            None => None,
            Some(k) => Some(crate::risk::RiskKind::parse(k).ok_or_else(|| {
                gql_error(crate::service::ServiceError::field("kind", "must be user, session or application"))
            })?),
        };
        if !(1..=1000).contains(&limit) {
            return Err(gql_error(crate::service::ServiceError::field("limit", "must be 1-1000")));
        }
        let sentinel = &state.services.sentinel;
        Ok(sentinel
            .risk()
            .top(&c.tenant, kind, limit as usize, sentinel.now())
            .into_iter()
            .map(RiskScore::from)
            .collect())
    }

    /// The caller's tenant's lockdown in force, or null.
    async fn lockdown(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Enforcement>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let e = crate::service::anomalies::lockdown_state(&state.services, c).await.map_err(gql_error)?;
        Ok(e.as_ref().map(Enforcement::from))
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
        let admin = c.has(Scope::Admin);
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
