//! What the dashboard's security charts show, computed from a tenant's
//! stored security events and telemetry over a time range:
//!
//! - per time bucket, the analyses, the blocks, the attacks (analyses that
//!   found prompt injection or a jailbreak) and how many of them passed (a
//!   verdict other than `block`): the attack success rate over time, and the
//!   engine's p50 / p99 time;
//! - per bucket, the mean token entropy of completions (from their
//!   logprobs) and its drift: the Population Stability Index of the
//!   bucket's entropies against the first quarter of the range's, binned as
//!   Sentinel's `entropy` detector bins them;
//! - the attack success rate of the red-team runs stored in the range;
//! - a users × tools matrix of tool calls (the most active users and tools);
//! - access and abuse by client address and by role: requests, errors,
//!   gateway refusals, and calls that carried threats.
//!
//! At most [`MAX_ROWS`] events and as many telemetry rows are read; the
//! answer says when the range held more.

use std::collections::{BTreeMap, HashMap};

use llm_sentinel::detectors::entropy::{mean_token_entropy, population_stability};
use llm_sentinel::event::TelemetryEvent;
use llmsec_store::{EventQuery, Millis, Scope};
use serde::{Deserialize, Serialize};

use super::series::{MAX_BUCKETS, aggregate};
use super::{Caller, ServiceError, Services, parse_time};
use crate::time::rfc3339;

/// Events, and telemetry rows, one query reads at most.
pub const MAX_ROWS: u32 = 50_000;
/// Rows and columns of the tool matrix, and rows of the access tables.
const TOP: usize = 12;
/// Histogram bins of the drift comparison (Sentinel's default).
const DRIFT_BINS: usize = 10;

/// The request: `start`, `end` (RFC 3339 or Unix ms) and the bucket size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightsQuery {
    /// From (inclusive).
    pub start: String,
    /// To (exclusive).
    pub end: String,
    /// Bucket size, e.g. `1h` (default).
    #[serde(default = "default_granularity")]
    pub granularity: String,
}

fn default_granularity() -> String {
    "1h".into()
}

/// One bucket of analyses.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecurityPoint {
    /// Bucket start.
    pub timestamp: Option<String>,
    /// Analyses stored.
    pub analyses: u64,
    /// Of which blocked.
    pub blocked: u64,
    /// Analyses that found prompt injection or a jailbreak.
    pub attacks: u64,
    /// Of which not blocked.
    pub attacks_passed: u64,
    /// `attacks_passed / attacks`; absent without attacks.
    pub attack_success_rate: Option<f64>,
    /// The engine's median time (µs), of analyses that recorded it.
    pub analysis_us_p50: Option<f64>,
    /// The engine's 99th-percentile time (µs).
    pub analysis_us_p99: Option<f64>,
}

/// One bucket of completions' token entropy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EntropyPoint {
    /// Bucket start.
    pub timestamp: Option<String>,
    /// Completions with logprobs.
    pub completions: u64,
    /// Their mean token entropy (nats).
    pub mean_entropy: Option<f64>,
    /// PSI against the first quarter of the range's completions.
    pub psi: Option<f64>,
}

/// Tool calls by user and tool.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Heatmap {
    /// Rows: the users with the most tool calls.
    pub users: Vec<String>,
    /// Columns: the most called tools.
    pub tools: Vec<String>,
    /// `counts[user][tool]`.
    pub counts: Vec<Vec<u64>>,
}

/// Calls from one client address or role.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct AccessRow {
    /// The address or role.
    pub key: String,
    /// LLM calls reported.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Of which refused by the gateway.
    pub blocked: u64,
    /// Of which carried threats.
    pub threats: u64,
}

/// One stored red-team run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedteamPoint {
    /// When it ran.
    pub timestamp: Option<String>,
    /// What was attacked.
    pub target: String,
    /// Judged trials (errors excluded).
    pub trials: u64,
    /// Its attack success rate.
    pub attack_success_rate: f64,
}

/// The answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Insights {
    /// Range start.
    pub start: Option<String>,
    /// Range end.
    pub end: Option<String>,
    /// Bucket size.
    pub granularity: String,
    /// Analyses per bucket.
    pub security: Vec<SecurityPoint>,
    /// Completion entropy per bucket.
    pub entropy: Vec<EntropyPoint>,
    /// Red-team runs in the range, oldest first (at most 1,000).
    pub redteam: Vec<RedteamPoint>,
    /// Tool calls by user and tool.
    pub tool_heatmap: Heatmap,
    /// Calls by client address, most abused first.
    pub by_ip: Vec<AccessRow>,
    /// Calls by role, most abused first.
    pub by_role: Vec<AccessRow>,
    /// Security events read.
    pub events_read: usize,
    /// Telemetry events read.
    pub telemetry_read: usize,
    /// The range held more rows than were read.
    pub truncated: bool,
}

/// Threat types that make an analysis an attack.
fn is_attack(threats: &serde_json::Value) -> bool {
    threats.as_array().is_some_and(|ts| {
        ts.iter().any(|t| matches!(t.get("type").and_then(|v| v.as_str()), Some("prompt_injection" | "jailbreak")))
    })
}

/// Computes the insights of the caller's tenant.
pub async fn compute(svc: &Services, caller: &Caller, q: &InsightsQuery) -> Result<Insights, ServiceError> {
    caller.require(Scope::Read)?;
    let start = parse_time("start", &q.start)?;
    let end = parse_time("end", &q.end)?;
    if end <= start {
        return Err(ServiceError::field("end", "must be after start"));
    }
    let step =
        llm_sentinel::detector::parse_duration(&q.granularity).map_err(|e| ServiceError::field("granularity", e))?;
    let buckets = (end - start + step - 1) / step;
    if buckets > MAX_BUCKETS {
        return Err(ServiceError::field("granularity", format!("{buckets} buckets; at most {MAX_BUCKETS}")));
    }
    let buckets = buckets as usize;
    let bucket_of = |t: Millis| (((t - start) / step) as usize).min(buckets - 1);
    let stamp = |i: usize| rfc3339(start + i as i64 * step);

    // Security events, newest first, a page at a time.
    let mut per_bucket: Vec<(SecurityPoint, Vec<f64>)> = (0..buckets)
        .map(|i| {
            let p = SecurityPoint {
                timestamp: stamp(i),
                analyses: 0,
                blocked: 0,
                attacks: 0,
                attacks_passed: 0,
                attack_success_rate: None,
                analysis_us_p50: None,
                analysis_us_p99: None,
            };
            (p, Vec::new())
        })
        .collect();
    let query =
        EventQuery { tenant: caller.tenant.clone(), since: Some(start), until: Some(end), ..EventQuery::default() };
    let (events_read, mut truncated) =
        llmsec_store::for_each_event(svc.store.as_ref(), &query, Some(MAX_ROWS as usize), |e| {
            let (p, times) = &mut per_bucket[bucket_of(e.timestamp)];
            p.analyses += 1;
            let blocked = e.verdict == "block";
            p.blocked += u64::from(blocked);
            if is_attack(&e.threats) {
                p.attacks += 1;
                p.attacks_passed += u64::from(!blocked);
            }
            if let Some(us) = e.analysis_us {
                times.push(us as f64);
            }
        })
        .await?;
    let security = per_bucket
        .into_iter()
        .map(|(mut p, mut times)| {
            p.attack_success_rate = (p.attacks > 0).then(|| p.attacks_passed as f64 / p.attacks as f64);
            p.analysis_us_p50 = aggregate("p50", &mut times);
            p.analysis_us_p99 = aggregate("p99", &mut times);
            p
        })
        .collect();

    let mut runs = svc.store.redteam_runs(&caller.tenant, start, end, 1000).await?;
    runs.reverse();
    let redteam = runs
        .into_iter()
        .map(|r| RedteamPoint {
            timestamp: rfc3339(r.timestamp),
            target: r.target,
            trials: r.trials.saturating_sub(r.errors),
            attack_success_rate: r.asr,
        })
        .collect();
    let rows = svc.store.telemetry(&caller.tenant, start, end, MAX_ROWS).await?;
    truncated |= rows.len() as u32 >= MAX_ROWS;
    let events: Vec<TelemetryEvent> = rows.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
    Ok(Insights {
        start: rfc3339(start),
        end: rfc3339(end),
        granularity: q.granularity.clone(),
        security,
        entropy: entropy(&events, buckets, &bucket_of, &stamp),
        redteam,
        tool_heatmap: heatmap(&events),
        by_ip: access(&events, |e| e.metadata.ip.clone()),
        by_role: access(&events, |e| e.metadata.role.clone()),
        events_read,
        telemetry_read: events.len(),
        truncated,
    })
}

fn entropy(
    events: &[TelemetryEvent],
    buckets: usize,
    bucket_of: &dyn Fn(Millis) -> usize,
    stamp: &dyn Fn(usize) -> Option<String>,
) -> Vec<EntropyPoint> {
    // Telemetry rows come oldest first.
    let values: Vec<(usize, f64)> = events
        .iter()
        .filter_map(|e| e.data.logprobs.as_deref().and_then(mean_token_entropy).map(|h| (bucket_of(e.millis()), h)))
        .collect();
    let baseline: Vec<f64> = values.iter().take(values.len().div_ceil(4)).map(|(_, h)| *h).collect();
    let mut by_bucket: Vec<Vec<f64>> = vec![Vec::new(); buckets];
    for (b, h) in values {
        by_bucket[b].push(h);
    }
    by_bucket
        .into_iter()
        .enumerate()
        .map(|(i, hs)| EntropyPoint {
            timestamp: stamp(i),
            completions: hs.len() as u64,
            mean_entropy: (!hs.is_empty()).then(|| hs.iter().sum::<f64>() / hs.len() as f64),
            psi: population_stability(&baseline, &hs, DRIFT_BINS),
        })
        .collect()
}

fn heatmap(events: &[TelemetryEvent]) -> Heatmap {
    let mut cells: HashMap<(String, String), u64> = HashMap::new();
    let mut per_user: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_tool: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        let (Some(user), Some(tools)) = (&e.metadata.user_id, &e.metadata.tool_calls) else { continue };
        for t in tools {
            *cells.entry((user.clone(), t.clone())).or_default() += 1;
            *per_user.entry(user.clone()).or_default() += 1;
            *per_tool.entry(t.clone()).or_default() += 1;
        }
    }
    let top = |m: BTreeMap<String, u64>| -> Vec<String> {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        // Most first; ties by name (the map's order, kept by a stable sort).
        v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        v.into_iter().take(TOP).map(|(k, _)| k).collect()
    };
    let (users, tools) = (top(per_user), top(per_tool));
    let counts = users
        .iter()
        .map(|u| tools.iter().map(|t| cells.get(&(u.clone(), t.clone())).copied().unwrap_or(0)).collect())
        .collect();
    Heatmap { users, tools, counts }
}

fn access(events: &[TelemetryEvent], key: impl Fn(&TelemetryEvent) -> Option<String>) -> Vec<AccessRow> {
    let mut rows: BTreeMap<String, AccessRow> = BTreeMap::new();
    for e in events {
        let Some(k) = key(e) else { continue };
        let r = rows.entry(k.clone()).or_insert_with(|| AccessRow { key: k, ..AccessRow::default() });
        r.requests += 1;
        r.errors += u64::from(e.is_error());
        r.blocked += u64::from(e.data.status.as_deref() == Some("blocked"));
        r.threats +=
            u64::from(e.metadata.extra.get("threats").and_then(|t| t.as_array()).is_some_and(|a| !a.is_empty()));
    }
    let mut v: Vec<AccessRow> = rows.into_values().collect();
    // Most abuse first (refusals, then threats, then errors), then volume.
    v.sort_by_key(|r| std::cmp::Reverse((r.blocked, r.threats, r.errors, r.requests)));
    v.truncate(TOP);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(user: &str, ip: &str, tools: &[&str], status: &str, logprobs: Option<Vec<f64>>) -> TelemetryEvent {
        let mut v = json!({
            "event_id": uuid::Uuid::new_v4().to_string(), "timestamp": "2026-01-01T00:00:00Z",
            "event_type": if status == "success" { "llm.response" } else { "llm.error" },
            "application_id": "app",
            "data": {"status": status},
            "metadata": {"user_id": user, "ip": ip, "role": "agent"}
        });
        if !tools.is_empty() {
            v["metadata"]["tool_calls"] = json!(tools);
        }
        if let Some(l) = logprobs {
            v["data"]["logprobs"] = json!(l);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn attacks_are_injection_or_jailbreak_findings() {
        assert!(is_attack(&json!([{"type": "jailbreak"}])));
        assert!(is_attack(&json!([{"type": "pii_exposure"}, {"type": "prompt_injection"}])));
        assert!(!is_attack(&json!([{"type": "pii_exposure"}])));
        assert!(!is_attack(&json!(null)));
    }

    #[test]
    fn heatmap_counts_tool_calls_per_user_most_active_first() {
        let events = vec![
            event("u1", "10.0.0.1", &["search", "shell"], "success", None),
            event("u1", "10.0.0.1", &["shell"], "success", None),
            event("u2", "10.0.0.2", &["search"], "success", None),
            event("u3", "10.0.0.3", &[], "success", None),
        ];
        let h = heatmap(&events);
        assert_eq!(h.users, vec!["u1", "u2"]);
        assert_eq!(h.tools, vec!["search", "shell"]);
        assert_eq!(h.counts, vec![vec![1, 2], vec![1, 0]]);
    }

    #[test]
    fn access_puts_refusals_first() {
        let events = vec![
            event("u1", "10.0.0.1", &[], "success", None),
            event("u1", "10.0.0.1", &[], "success", None),
            event("u2", "10.0.0.9", &[], "blocked", None),
        ];
        let rows = access(&events, |e| e.metadata.ip.clone());
        assert_eq!(rows[0], AccessRow { key: "10.0.0.9".into(), requests: 1, errors: 1, blocked: 1, threats: 0 });
        assert_eq!((rows[1].key.as_str(), rows[1].requests), ("10.0.0.1", 2));
        assert_eq!(access(&events, |e| e.metadata.role.clone())[0].requests, 3);
    }

    #[test]
    fn entropy_drift_is_measured_against_the_first_quarter() {
        // Two buckets: calm completions (one cycle of values, twice), then unsure ones.
        let calm: Vec<TelemetryEvent> =
            (0..40).map(|i| event("u", "ip", &[], "success", Some(vec![-0.2 - 0.001 * (i % 20) as f64]))).collect();
        let unsure: Vec<TelemetryEvent> =
            (0..40).map(|i| event("u", "ip", &[], "success", Some(vec![-3.0 - 0.001 * i as f64]))).collect();
        let events: Vec<TelemetryEvent> = calm.into_iter().chain(unsure).collect();
        let index: HashMap<String, usize> = events.iter().enumerate().map(|(i, e)| (e.event_id.clone(), i)).collect();
        // Bucket by position: the first 40 events in bucket 0.
        let ids: Vec<i64> = events.iter().map(|e| index[&e.event_id] as i64).collect();
        let mut shifted = events.clone();
        for (e, i) in shifted.iter_mut().zip(&ids) {
            e.timestamp = chrono::DateTime::from_timestamp_millis(*i).unwrap();
        }
        let points = entropy(&shifted, 2, &|t| usize::from(t >= 40), &|i| Some(i.to_string()));
        assert_eq!((points[0].completions, points[1].completions), (40, 40));
        assert!(points[0].mean_entropy.unwrap() < 0.3 && points[1].mean_entropy.unwrap() > 2.9);
        assert!(points[0].psi.unwrap() < 0.5, "{:?}", points[0].psi);
        assert!(points[1].psi.unwrap() > 2.0, "{:?}", points[1].psi);
    }
}
