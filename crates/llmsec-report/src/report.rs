//! The compliance report for a time range: an executive summary, a
//! technical appendix and the posture. Figures come from the tenant's
//! stored security events (paged through, newest first) and anomalies.

use std::collections::BTreeMap;

use llmsec_store::{EventQuery, Millis, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ReportError;
use crate::evidence::{AnomalyStats, DAY_MS, DetectorAnomalies, Evidence, anomaly_stats};
use crate::posture::{Posture, evaluate};
use crate::time::{date, rfc3339};

/// The version of the JSON shape; raised when a field changes meaning or goes.
pub const SHAPE_VERSION: u32 = 1;
/// Blocked events listed in the appendix at most.
pub const BLOCKED_SAMPLES: usize = 10;
/// Characters of a listed event's stored (redacted) text kept.
pub const SAMPLE_CHARS: usize = 200;
/// Longest range a report covers, in days.
pub const MAX_RANGE_DAYS: i64 = 366;

/// A name with a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Count {
    /// The name.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// One UTC day of the range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Analyses.
    pub analyses: u64,
    /// Of which blocked.
    pub blocked: u64,
    /// Threats found.
    pub threats: u64,
}

/// The executive summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Analyses stored in the range (inputs and outputs).
    pub analyses: u64,
    /// Verdict `block`.
    pub blocked: u64,
    /// Verdict `sanitize`.
    pub sanitized: u64,
    /// Verdict `allow`.
    pub allowed: u64,
    /// blocked / analyses (0 when there are none).
    pub block_rate: f64,
    /// Threats found in all.
    pub threats: u64,
    /// The five most frequent threat categories.
    pub top_categories: Vec<Count>,
    /// Per UTC day, every day of the range.
    pub daily: Vec<Day>,
    /// Anomalies opened in the range.
    pub anomalies: AnomalyTotals,
}

/// Anomaly figures of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyTotals {
    /// Opened in the range.
    pub opened: u64,
    /// Of those, acknowledged.
    pub acknowledged: u64,
    /// Of those, resolved.
    pub resolved: u64,
    /// Of those, still active.
    pub active: u64,
    /// Mean time to acknowledge, milliseconds.
    pub mtta_ms: Option<i64>,
    /// Mean time to resolve, milliseconds.
    pub mttr_ms: Option<i64>,
}

/// One threat category by severity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryRow {
    /// The category (the engine's threat type, e.g. `prompt_injection`).
    pub category: String,
    /// Severity `low`.
    pub low: u64,
    /// Severity `medium`.
    pub medium: u64,
    /// Severity `high`.
    pub high: u64,
    /// Severity `critical`.
    pub critical: u64,
    /// All severities.
    pub total: u64,
}

/// A blocked event as listed: its stored text only when storage keeps it redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedSample {
    /// The event id.
    pub id: String,
    /// When (RFC 3339).
    pub timestamp: String,
    /// `input_analysis` or `output_validation`.
    pub event_type: String,
    /// Threat categories found.
    pub categories: Vec<String>,
    /// The stored redacted text, cut to [`SAMPLE_CHARS`] characters.
    pub redacted_input: Option<String>,
}

/// The technical appendix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appendix {
    /// Threat categories by severity, most frequent first.
    pub categories: Vec<CategoryRow>,
    /// Threats per engine scanner (detector), most frequent first.
    pub detectors: Vec<Count>,
    /// Anomalies per Sentinel detector.
    pub anomalies_by_detector: BTreeMap<String, DetectorAnomalies>,
    /// The newest blocked events.
    pub blocked_samples: Vec<BlockedSample>,
    /// Why `redacted_input` is absent, when it is.
    pub samples_note: Option<String>,
    /// The red-team run given, if any.
    pub redteam: Option<crate::redteam::RedTeam>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SHAPE_VERSION`].
    pub version: u32,
    /// The tenant.
    pub tenant: String,
    /// Start of the range (RFC 3339, inclusive).
    pub from: String,
    /// End of the range (RFC 3339, exclusive).
    pub to: String,
    /// When it was made.
    pub generated_at: String,
    /// The executive summary.
    pub summary: Summary,
    /// The technical appendix.
    pub appendix: Appendix,
    /// The posture at the time the report was made.
    pub posture: Posture,
}

/// What a report is asked for.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// Start (inclusive), Unix milliseconds.
    pub from: Millis,
    /// End (exclusive), Unix milliseconds.
    pub to: Millis,
    /// Frameworks of the posture (all when `None`).
    pub frameworks: Option<Vec<String>>,
}

fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Builds the report of `evidence.tenant` for the range asked.
pub async fn build(store: &dyn Store, evidence: Evidence, req: &ReportRequest) -> Result<Report, ReportError> {
    if req.to <= req.from {
        return Err(ReportError::Range("`to` must be after `from`".into()));
    }
    if req.to - req.from > MAX_RANGE_DAYS * DAY_MS {
        return Err(ReportError::Range(format!("the range is longer than {MAX_RANGE_DAYS} days")));
    }
    let tenant = evidence.tenant.clone();
    let now = evidence.gathered_at;
    let redacted = evidence.config.storage_input == "redacted";

    let mut daily: BTreeMap<Millis, Day> = BTreeMap::new();
    let first_day = req.from.div_euclid(DAY_MS) * DAY_MS;
    let mut d = first_day;
    while d < req.to {
        daily.insert(d, Day { date: date(d), ..Day::default() });
        d += DAY_MS;
    }
    let (mut analyses, mut blocked, mut sanitized, mut allowed, mut threats) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut categories: BTreeMap<String, CategoryRow> = BTreeMap::new();
    let mut detectors: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples = Vec::new();
    let q = EventQuery { tenant: tenant.clone(), since: Some(req.from), until: Some(req.to), ..EventQuery::default() };
    llmsec_store::for_each_event(store, &q, None, |ev| {
        analyses += 1;
        let day = daily.entry(ev.timestamp.div_euclid(DAY_MS) * DAY_MS).or_default();
        day.analyses += 1;
        match ev.verdict.as_str() {
            "block" => {
                blocked += 1;
                day.blocked += 1;
            }
            "sanitize" => sanitized += 1,
            _ => allowed += 1,
        }
        let list = ev.threats.as_array().map(Vec::as_slice).unwrap_or_default();
        day.threats += list.len() as u64;
        threats += list.len() as u64;
        let mut cats = Vec::new();
        for t in list {
            let cat = t.get("type").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            let row = categories
                .entry(cat.clone())
                .or_insert_with(|| CategoryRow { category: cat.clone(), ..CategoryRow::default() });
            row.total += 1;
            match t.get("severity").and_then(Value::as_str) {
                Some("critical") => row.critical += 1,
                Some("high") => row.high += 1,
                Some("medium") => row.medium += 1,
                _ => row.low += 1,
            }
            let scanner = t.get("scanner").and_then(Value::as_str).unwrap_or("unknown");
            *detectors.entry(scanner.to_owned()).or_default() += 1;
            if !cats.contains(&cat) {
                cats.push(cat);
            }
        }
        if ev.verdict == "block" && samples.len() < BLOCKED_SAMPLES {
            samples.push(BlockedSample {
                id: ev.id.clone(),
                timestamp: rfc3339(ev.timestamp),
                event_type: ev.event_type.clone(),
                categories: cats,
                // Only text the store keeps redacted is shown; with
                // `full` storage it would be the raw prompt.
                redacted_input: if redacted { ev.input.as_deref().map(|s| cut(s, SAMPLE_CHARS)) } else { None },
            });
        }
    })
    .await?;
    let samples_note = match evidence.config.storage_input.as_str() {
        "redacted" => None,
        "none" => Some("storage.input = none: no text is stored".to_owned()),
        _ => Some("storage.input = full: stored text is the raw prompt and is not shown".to_owned()),
    };

    let mut rows: Vec<CategoryRow> = categories.into_values().collect();
    rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.category.cmp(&b.category)));
    let top_categories = rows.iter().take(5).map(|r| Count { name: r.category.clone(), count: r.total }).collect();
    let mut detectors: Vec<Count> = detectors.into_iter().map(|(name, count)| Count { name, count }).collect();
    detectors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));

    let an: AnomalyStats = anomaly_stats(store, &tenant, req.from, req.to, now).await?;
    let redteam = evidence.redteam.clone();
    let posture = evaluate(evidence, req.frameworks.as_deref())?;
    Ok(Report {
        version: SHAPE_VERSION,
        tenant,
        from: rfc3339(req.from),
        to: rfc3339(req.to),
        generated_at: rfc3339(now),
        summary: Summary {
            analyses,
            blocked,
            sanitized,
            allowed,
            block_rate: if analyses == 0 { 0.0 } else { blocked as f64 / analyses as f64 },
            threats,
            top_categories,
            daily: daily.into_values().collect(),
            anomalies: AnomalyTotals {
                opened: an.opened,
                acknowledged: an.acknowledged,
                resolved: an.resolved,
                active: an.active,
                mtta_ms: an.mtta_ms,
                mttr_ms: an.mttr_ms,
            },
        },
        appendix: Appendix {
            categories: rows,
            detectors,
            anomalies_by_detector: an.by_detector,
            blocked_samples: samples,
            samples_note,
            redteam,
        },
        posture,
    })
}
