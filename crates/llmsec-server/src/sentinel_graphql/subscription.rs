//! The subscription root of Sentinel's schema: new anomalies as they are
//! opened, and the latest value of named metrics on a fixed period.

use std::time::Duration;

use async_graphql::{Context, Subscription};
use futures_util::Stream;
use llmsec_store::Scope;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

use super::types::{Anomaly, AnomalyFilter, MetricUpdate};
use crate::error::ApiError;
use crate::gql::caller;
use crate::gql::gql_error;
use crate::service::Caller;
use crate::service::series::{METRICS, MetricsQuery, compute};
use crate::state::AppState;
use crate::time::rfc3339;

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
        if let Some((i, n)) = names.iter().enumerate().find(|(_, n)| !METRICS.contains(&n.as_str())) {
            return Err(gql_error(ApiError::field(format!("names[{i}]"), format!("unknown metric {n:?}"))));
        }
        let c = c.clone();
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(METRICS_EVERY));
        let updates = tokio_stream::StreamExt::then(ticks, move |_| {
            let state = state.clone();
            let c = c.clone();
            let names = names.clone();
            async move { latest(&state, &c, &names).await }
        });
        Ok(futures_util::StreamExt::flat_map(updates, futures_util::stream::iter))
    }
}

/// The last minute of each metric.
async fn latest(state: &AppState, caller: &Caller, names: &[String]) -> Vec<MetricUpdate> {
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
        let value = match compute(&state.services, caller, &q, &[]).await {
            Ok((series, _, _)) => series.first().and_then(|s| s.datapoints.first()).and_then(|p| p.value),
            Err(_) => None,
        };
        out.push(MetricUpdate { name: n.clone(), value, timestamp: rfc3339(now) });
    }
    out
}
