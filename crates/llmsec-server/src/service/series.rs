//! Time series of telemetry metrics, bucketed by `granularity`, aggregated
//! by `aggregation`, optionally split by a dimension: computed from the
//! stored telemetry and anomalies of the caller's tenant (at most
//! [`MAX_EVENTS`] events a query). REST's `POST /api/v1/metrics/query` and
//! GraphQL's `metrics` query and `metricsUpdated` subscription read it.

use std::collections::BTreeMap;

use llm_sentinel::detector::parse_duration;
use llm_sentinel::event::TelemetryEvent;
use llmsec_store::{AnomalyQuery, Millis, Scope};
use serde::{Deserialize, Serialize};

use super::{Caller, ServiceError, Services, parse_time};
use crate::time::rfc3339;

/// Events one query reads at most.
pub const MAX_EVENTS: u32 = 100_000;
/// Buckets one series holds at most.
pub const MAX_BUCKETS: i64 = 10_000;

/// The metrics a query may name.
pub const METRICS: &[&str] = &[
    "cost",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "request_count",
    "error_rate",
    "anomaly_count",
    "anomaly_rate",
];

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// Metric names.
    pub metrics: Vec<String>,
    /// From (RFC 3339 or Unix ms).
    pub start: String,
    /// To (exclusive).
    pub end: String,
    /// `avg`, `sum`, `min`, `max`, `count`, `p50`, `p95`, `p99`.
    #[serde(default = "default_aggregation")]
    pub aggregation: String,
    /// Bucket size, e.g. `5m`.
    #[serde(default = "default_granularity")]
    pub granularity: String,
    /// Split by `application`, `model` or `user`.
    #[serde(default)]
    pub group_by: Option<String>,
}

fn default_aggregation() -> String {
    "avg".into()
}

fn default_granularity() -> String {
    "5m".into()
}

/// One point.
#[derive(Debug, Serialize, PartialEq)]
pub struct Datapoint {
    /// Bucket start (RFC 3339).
    pub timestamp: Option<String>,
    /// The aggregate; absent for an empty bucket of a value metric.
    pub value: Option<f64>,
}

fn unit(metric: &str) -> Option<&'static str> {
    match metric {
        "cost" => Some("currency"),
        "latency_ms" => Some("ms"),
        "total_tokens" | "prompt_tokens" | "completion_tokens" => Some("tokens"),
        "request_count" | "anomaly_count" => Some("count"),
        "error_rate" => Some("ratio"),
        "anomaly_rate" => Some("per 1000 events"),
        _ => None,
    }
}

fn value_of(metric: &str, e: &TelemetryEvent) -> Option<f64> {
    match metric {
        "cost" => e.data.cost,
        "total_tokens" => e.total_tokens().map(|v| v as f64),
        "prompt_tokens" => e.data.prompt_tokens.map(|v| v as f64),
        "completion_tokens" => e.data.completion_tokens.map(|v| v as f64),
        "latency_ms" => e.data.latency_ms,
        _ => None,
    }
}

/// Aggregates a bucket's values.
pub fn aggregate(how: &str, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return if how == "count" || how == "sum" { Some(0.0) } else { None };
    }
    let n = values.len() as f64;
    Some(match how {
        "sum" => values.iter().sum(),
        "count" => n,
        "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "avg" => values.iter().sum::<f64>() / n,
        p => {
            let q = match p {
                "p50" => 0.50,
                "p95" => 0.95,
                _ => 0.99,
            };
            values.sort_by(f64::total_cmp);
            // Nearest rank.
            let rank = ((q * n).ceil() as usize).clamp(1, values.len());
            values[rank - 1]
        }
    })
}

/// One series.
#[derive(Debug, Serialize, PartialEq)]
pub struct Series {
    /// The metric.
    pub name: String,
    /// `[{name, value}]` when split.
    pub dimensions: Vec<Dimension>,
    /// One point per bucket.
    pub datapoints: Vec<Datapoint>,
    /// The unit.
    pub unit: Option<&'static str>,
    /// How buckets were aggregated.
    pub aggregation: String,
}

/// A dimension of a series.
#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct Dimension {
    /// `application`, `model` or `user`.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// The series a query asks for; `only` keeps events whose dimension
/// (`application`, `model`, `user`) has the given value.
///
/// Answers the series, how many events were read, and whether the read
/// stopped at [`MAX_EVENTS`].
pub async fn compute(
    svc: &Services,
    caller: &Caller,
    q: &MetricsQuery,
    only: &[Dimension],
) -> Result<(Vec<Series>, usize, bool), ServiceError> {
    caller.require(Scope::Read)?;
    let tenant = caller.tenant.as_str();
    if q.metrics.is_empty() {
        return Err(ServiceError::field("metrics", format!("name at least one of {}", METRICS.join(", "))));
    }
    if let Some((i, m)) = q.metrics.iter().enumerate().find(|(_, m)| !METRICS.contains(&m.as_str())) {
        return Err(ServiceError::field(
            format!("metrics[{i}]"),
            format!("unknown metric {m:?}; expected one of {}", METRICS.join(", ")),
        ));
    }
    if !["avg", "sum", "min", "max", "count", "p50", "p95", "p99"].contains(&q.aggregation.as_str()) {
        return Err(ServiceError::field("aggregation", "must be avg, sum, min, max, count, p50, p95 or p99"));
    }
    let group = match q.group_by.as_deref() {
        None => None,
        Some(g @ ("application" | "model" | "user")) => Some(g),
        Some(_) => return Err(ServiceError::field("group_by", "must be application, model or user")),
    };
    let start = parse_time("start", &q.start)?;
    let end = parse_time("end", &q.end)?;
    if end <= start {
        return Err(ServiceError::field("end", "must be after start"));
    }
    let step = parse_duration(&q.granularity).map_err(|e| ServiceError::field("granularity", e))?;
    let buckets = (end - start + step - 1) / step;
    if buckets > MAX_BUCKETS {
        return Err(ServiceError::field("granularity", format!("{buckets} buckets; at most {MAX_BUCKETS} per series")));
    }
    for (i, d) in only.iter().enumerate() {
        if !matches!(d.name.as_str(), "application" | "model" | "user") {
            return Err(ServiceError::field(format!("dimensions[{i}].name"), "must be application, model or user"));
        }
    }
    let rows = svc.store.telemetry(tenant, start, end, MAX_EVENTS).await?;
    let dim_of = |e: &TelemetryEvent, name: &str| -> String {
        match name {
            "application" => e.application_id.clone(),
            "model" => e.data.model.clone().unwrap_or_default(),
            _ => e.metadata.user_id.clone().unwrap_or_default(),
        }
    };
    let events: Vec<TelemetryEvent> = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<TelemetryEvent>(&r.body).ok())
        .filter(|e| only.iter().all(|d| dim_of(e, &d.name) == d.value))
        .collect();
    let wants_anomalies = q.metrics.iter().any(|m| m.starts_with("anomaly_"));
    let anomaly_times: Vec<(Millis, Option<String>)> = if wants_anomalies {
        let aq = AnomalyQuery {
            tenant: tenant.to_owned(),
            start: Some(start),
            end: Some(end),
            limit: 1000,
            ..Default::default()
        };
        let (rows, _) = svc.store.anomalies(&aq).await?;
        rows.into_iter().map(|r| (r.timestamp, r.application_id)).collect()
    } else {
        Vec::new()
    };
    let dim = |e: &TelemetryEvent| -> String {
        match group {
            Some("application") => e.application_id.clone(),
            Some("model") => e.data.model.clone().unwrap_or_default(),
            Some("user") => e.metadata.user_id.clone().unwrap_or_default(),
            _ => String::new(),
        }
    };
    let bucket_of = |t: Millis| ((t - start) / step) as usize;
    let mut series = Vec::new();
    for metric in &q.metrics {
        // dimension value → per-bucket samples (value metrics) or (events, errors).
        let mut groups: BTreeMap<String, Vec<(Vec<f64>, u64, u64)>> = BTreeMap::new();
        for e in &events {
            let slot = groups.entry(dim(e)).or_insert_with(|| vec![(Vec::new(), 0, 0); buckets as usize]);
            let b = &mut slot[bucket_of(e.millis())];
            b.1 += 1;
            if e.is_error() {
                b.2 += 1;
            }
            if let Some(v) = value_of(metric, e) {
                b.0.push(v);
            }
        }
        if metric.starts_with("anomaly_") && group.is_some_and(|g| g != "application") {
            return Err(ServiceError::field("group_by", "anomaly metrics split by application only"));
        }
        let mut anomaly_counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (t, app) in &anomaly_times {
            let key = if group.is_some() { app.clone().unwrap_or_default() } else { String::new() };
            anomaly_counts.entry(key.clone()).or_insert_with(|| vec![0; buckets as usize])[bucket_of(*t)] += 1;
            groups.entry(key).or_insert_with(|| vec![(Vec::new(), 0, 0); buckets as usize]);
        }
        if groups.is_empty() {
            groups.insert(String::new(), vec![(Vec::new(), 0, 0); buckets as usize]);
        }
        for (key, slots) in groups {
            let datapoints: Vec<Datapoint> = slots
                .into_iter()
                .enumerate()
                .map(|(i, (mut values, n, errors))| {
                    let value = match metric.as_str() {
                        "request_count" => Some(n as f64),
                        "error_rate" => (n > 0).then(|| errors as f64 / n as f64),
                        "anomaly_count" => Some(anomaly_counts.get(&key).map_or(0, |c| c[i]) as f64),
                        "anomaly_rate" => {
                            let a = anomaly_counts.get(&key).map_or(0, |c| c[i]) as f64;
                            (n > 0).then(|| a * 1000.0 / n as f64)
                        }
                        _ => aggregate(&q.aggregation, &mut values),
                    };
                    Datapoint { timestamp: rfc3339(start + i as i64 * step), value }
                })
                .collect();
            let dimensions = match group {
                Some(g) => vec![Dimension { name: g.to_owned(), value: key }],
                None => Vec::new(),
            };
            series.push(Series {
                name: metric.clone(),
                dimensions,
                datapoints,
                unit: unit(metric),
                aggregation: q.aggregation.clone(),
            });
        }
    }
    Ok((series, events.len(), rows.len() as u32 >= MAX_EVENTS))
}

#[cfg(test)]
mod tests {
    use super::aggregate;

    #[test]
    fn aggregations() {
        let v = || vec![3.0, 1.0, 2.0, 10.0];
        assert_eq!(aggregate("sum", &mut v()), Some(16.0));
        assert_eq!(aggregate("avg", &mut v()), Some(4.0));
        assert_eq!(aggregate("min", &mut v()), Some(1.0));
        assert_eq!(aggregate("max", &mut v()), Some(10.0));
        assert_eq!(aggregate("count", &mut v()), Some(4.0));
        assert_eq!(aggregate("p50", &mut v()), Some(2.0));
        assert_eq!(aggregate("p99", &mut v()), Some(10.0));
        assert_eq!(aggregate("avg", &mut []), None);
        assert_eq!(aggregate("sum", &mut []), Some(0.0));
    }
}
