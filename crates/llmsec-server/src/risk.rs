//! Risk scores per user, session and application: a decaying sum of what
//! they did. Each analysis adds its threats (severity weight × confidence),
//! each anomaly Sentinel opens on the entity adds its severity's weight,
//! and each block or rate limit set on it adds more; the sum halves every
//! `half_life_secs`. The score shown is the sum mapped onto 0–100
//! (`100 × (1 − e^(−points/50))`): one critical finding gives about 39,
//! a few of them in an hour push past 80.
//!
//! Scores are read by `GET /api/v1/risk`, GraphQL `riskScores`, the Rego
//! policy (`input.request.risk.user` …) and, with `[risk] block_above`, by
//! the enforcement check itself: a subject at or above it is refused like a
//! blocked one. They are kept in memory on each replica (bounded by
//! `max_entities`, the weakest forgotten first) and rebuilt from the store
//! at start (see [`RiskBook::restore`]), so a restart keeps the history
//! that still weighs.

use std::collections::HashMap;
use std::sync::Mutex;

use llm_security::Threat;
use llmsec_store::Millis;
use serde::{Deserialize, Serialize};

/// The `[risk]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// How long it takes a score's points to halve (60 s to 30 days; default one hour).
    pub half_life_secs: u64,
    /// Refuse analyses and gateway calls of a user, session or application
    /// whose score is at or above this (1–100); none: scores only inform.
    pub block_above: Option<f64>,
    /// Entities kept per replica at most (default 100,000).
    pub max_entities: usize,
}

impl Default for RiskConfig {
    fn default() -> RiskConfig {
        RiskConfig { half_life_secs: 3600, block_above: None, max_entities: 100_000 }
    }
}

impl RiskConfig {
    /// Checks the section; errors name `risk.<field>`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(60..=30 * 86_400).contains(&self.half_life_secs) {
            return Err(("risk.half_life_secs".into(), "must be between 60 and 2592000".into()));
        }
        if let Some(b) = self.block_above
            && !(b.is_finite() && (1.0..=100.0).contains(&b))
        {
            return Err(("risk.block_above".into(), "must be between 1 and 100".into()));
        }
        if self.max_entities == 0 {
            return Err(("risk.max_entities".into(), "must be positive".into()));
        }
        Ok(())
    }
}

/// What a score is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    /// An end user (`user_id`).
    User,
    /// A conversation (`session_id`).
    Session,
    /// An application (`application_id`).
    Application,
}

impl RiskKind {
    /// Every kind.
    pub const ALL: [RiskKind; 3] = [RiskKind::User, RiskKind::Session, RiskKind::Application];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::User => "user",
            RiskKind::Session => "session",
            RiskKind::Application => "application",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<RiskKind> {
        RiskKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind of a Sentinel entity, when it is one that has a score.
    pub fn of_entity(kind: llm_sentinel::detector::EntityKind) -> Option<RiskKind> {
        use llm_sentinel::detector::EntityKind as E;
        match kind {
            E::User => Some(RiskKind::User),
            E::Session => Some(RiskKind::Session),
            E::Application => Some(RiskKind::Application),
            _ => None,
        }
    }

    /// The kind of an enforcement's `entity_kind`, when it has a score.
    pub fn of_enforcement(kind: &str) -> Option<RiskKind> {
        RiskKind::parse(kind)
    }
}

/// Where the points came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Threats of an analysis.
    Threats,
    /// An anomaly Sentinel opened.
    Anomaly,
    /// A block or rate limit set on the entity.
    Enforcement,
}

/// One entity's score as answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    /// What it is about.
    pub kind: RiskKind,
    /// Its id.
    pub id: String,
    /// 0–100.
    pub score: f64,
    /// The decayed sum of points behind the score.
    pub points: f64,
    /// Analyses with threats counted (not decayed).
    pub threats: u32,
    /// Anomalies counted.
    pub anomalies: u32,
    /// Enforcements counted.
    pub enforcements: u32,
    /// When it last changed (Unix ms).
    pub updated_at: Millis,
}

/// Points of one threat: its severity's weight times its confidence.
pub fn threat_points(t: &Threat) -> f64 {
    let weight = match t.severity {
        llm_security::Severity::Low => 1.0,
        llm_security::Severity::Medium => 4.0,
        llm_security::Severity::High => 10.0,
        llm_security::Severity::Critical => 25.0,
    };
    weight * t.confidence.clamp(0.0, 1.0)
}

/// Points of an anomaly of this severity.
pub fn anomaly_points(s: llm_sentinel::Severity) -> f64 {
    match s {
        llm_sentinel::Severity::Info => 5.0,
        llm_sentinel::Severity::Warning => 15.0,
        llm_sentinel::Severity::Critical => 40.0,
    }
}

/// Points of an enforcement with this action (`block`, `rate_limit`).
pub fn enforcement_points(action: &str) -> f64 {
    if action == "block" { 30.0 } else { 10.0 }
}

/// The points that give a score of about 63.
const SCALE: f64 = 50.0;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    points: f64,
    at: Millis,
    threats: u32,
    anomalies: u32,
    enforcements: u32,
}

type Key = (String, RiskKind, String);

/// The scores of one replica.
#[derive(Debug)]
pub struct RiskBook {
    config: RiskConfig,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl RiskBook {
    /// An empty book.
    pub fn new(config: RiskConfig) -> RiskBook {
        RiskBook { config, entries: Mutex::new(HashMap::new()) }
    }

    /// The settings.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `points` decayed from `at` to `now`.
    fn decayed(&self, points: f64, at: Millis, now: Millis) -> f64 {
        let elapsed = (now - at).max(0) as f64;
        points * 0.5f64.powf(elapsed / (self.config.half_life_secs as f64 * 1000.0))
    }

    /// Adds `points` to `tenant`'s entity at `now`.
    pub fn add(&self, tenant: &str, kind: RiskKind, id: &str, points: f64, cause: Cause, now: Millis) {
        if !(points.is_finite() && points > 0.0) || id.is_empty() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.config.max_entities && !map.contains_key(&(tenant.to_owned(), kind, id.to_owned())) {
            self.evict(&mut map, now);
        }
        let e = map.entry((tenant.to_owned(), kind, id.to_owned())).or_default();
        if now >= e.at {
            e.points = self.decayed(e.points, e.at, now) + points;
            e.at = now;
        } else {
            // Older than what is counted (a restore reads newest first):
            // decayed to the entry's time before it is added.
            e.points += self.decayed(points, now, e.at);
        }
        match cause {
            Cause::Threats => e.threats += 1,
            Cause::Anomaly => e.anomalies += 1,
            Cause::Enforcement => e.enforcements += 1,
        }
    }

    /// Makes room for one entity: forgets those whose points have decayed
    /// under a tenth of a point, then, if still full, the weakest tenth.
    fn evict(&self, map: &mut HashMap<Key, Entry>, now: Millis) {
        map.retain(|_, e| self.decayed(e.points, e.at, now) >= 0.1);
        if map.len() < self.config.max_entities {
            return;
        }
        let mut weights: Vec<(f64, Key)> =
            map.iter().map(|(k, e)| (self.decayed(e.points, e.at, now), k.clone())).collect();
        weights.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, k) in weights.into_iter().take((self.config.max_entities / 10).max(1)) {
            map.remove(&k);
        }
    }

    /// The threats of one analysis, for each of its subjects.
    pub fn threats(&self, tenant: &str, subjects: &[(RiskKind, &str)], threats: &[Threat], now: Millis) {
        let points: f64 = threats.iter().map(threat_points).sum();
        for (kind, id) in subjects {
            self.add(tenant, *kind, id, points, Cause::Threats, now);
        }
    }

    fn risk(&self, key: &Key, e: &Entry, now: Millis) -> Risk {
        let points = self.decayed(e.points, e.at, now);
        Risk {
            kind: key.1,
            id: key.2.clone(),
            score: score_of(points),
            points,
            threats: e.threats,
            anomalies: e.anomalies,
            enforcements: e.enforcements,
            updated_at: e.at,
        }
    }

    /// One entity's score at `now` (zero when nothing was counted).
    pub fn get(&self, tenant: &str, kind: RiskKind, id: &str, now: Millis) -> Risk {
        let key = (tenant.to_owned(), kind, id.to_owned());
        match self.lock().get(&key) {
            Some(e) => self.risk(&key, e, now),
            None => Risk {
                kind,
                id: id.to_owned(),
                score: 0.0,
                points: 0.0,
                threats: 0,
                anomalies: 0,
                enforcements: 0,
                updated_at: 0,
            },
        }
    }

    /// The score of an entity at `now`, 0–100.
    pub fn score(&self, tenant: &str, kind: RiskKind, id: &str, now: Millis) -> f64 {
        let key = (tenant.to_owned(), kind, id.to_owned());
        self.lock().get(&key).map(|e| score_of(self.decayed(e.points, e.at, now))).unwrap_or(0.0)
    }

    /// `tenant`'s riskiest entities (of `kind`, or all), highest first.
    pub fn top(&self, tenant: &str, kind: Option<RiskKind>, limit: usize, now: Millis) -> Vec<Risk> {
        let map = self.lock();
        let mut out: Vec<Risk> = map
            .iter()
            .filter(|(k, _)| k.0 == tenant && kind.is_none_or(|want| k.1 == want))
            .map(|(k, e)| self.risk(k, e, now))
            .filter(|r| r.score >= 0.05)
            .collect();
        out.sort_by(|a, b| b.points.total_cmp(&a.points).then_with(|| a.id.cmp(&b.id)));
        out.truncate(limit);
        out
    }

    /// The first subject at or above `block_above`, with its score.
    pub fn over_limit<'a>(
        &self,
        tenant: &str,
        subjects: &[(RiskKind, &'a str)],
        now: Millis,
    ) -> Option<(RiskKind, &'a str, f64)> {
        let limit = self.config.block_above?;
        subjects.iter().map(|(k, id)| (*k, *id, self.score(tenant, *k, id, now))).find(|(_, _, s)| *s >= limit)
    }

    /// Rebuilds the book from the store: the threats of the events of the
    /// last eight half-lives (at most `max_events` a tenant, newest first), the anomalies still
    /// open and the enforcements in force, each at its own time.
    pub async fn restore(
        &self,
        store: &dyn llmsec_store::Store,
        now: Millis,
        max_events: usize,
    ) -> llmsec_store::Result<()> {
        let since = now - 8 * self.config.half_life_secs as i64 * 1000;
        for tenant in store.tenants_between(llmsec_store::ExportSource::Events, since, now + 1).await? {
            let query = llmsec_store::EventQuery { tenant, since: Some(since), ..llmsec_store::EventQuery::default() };
            llmsec_store::for_each_event(store, &query, Some(max_events), |ev| {
                if let Ok(threats) = serde_json::from_value::<Vec<Threat>>(ev.threats.clone())
                    && !threats.is_empty()
                {
                    let mut subjects = Vec::new();
                    subjects.extend(ev.user_id.as_deref().map(|u| (RiskKind::User, u)));
                    subjects.extend(ev.session_id.as_deref().map(|s| (RiskKind::Session, s)));
                    self.threats(&ev.tenant, &subjects, &threats, ev.timestamp);
                }
            })
            .await?;
        }
        for row in store.open_anomalies(100_000).await? {
            if let Ok(a) = serde_json::from_str::<llm_sentinel::Anomaly>(&row.body)
                && let Some(kind) = RiskKind::of_entity(a.affected_entity.kind)
            {
                self.add(
                    &row.tenant,
                    kind,
                    &a.affected_entity.id,
                    anomaly_points(a.severity),
                    Cause::Anomaly,
                    a.timestamp,
                );
            }
        }
        for e in store.enforcements_in_force(now).await? {
            if let Some(kind) = RiskKind::of_enforcement(&e.entity_kind) {
                self.add(
                    &e.tenant,
                    kind,
                    &e.entity_id,
                    enforcement_points(&e.action),
                    Cause::Enforcement,
                    e.created_at,
                );
            }
        }
        Ok(())
    }
}

/// A decayed sum of points on 0–100.
fn score_of(points: f64) -> f64 {
    let s = 100.0 * (1.0 - (-points / SCALE).exp());
    (s * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(block_above: Option<f64>) -> RiskBook {
        RiskBook::new(RiskConfig { half_life_secs: 3600, block_above, max_entities: 4 })
    }

    #[test]
    fn points_decay_by_half_each_half_life_and_scores_rise_with_them() {
        let b = book(None);
        b.add("t", RiskKind::User, "u1", 40.0, Cause::Anomaly, 0);
        let at_once = b.get("t", RiskKind::User, "u1", 0);
        assert_eq!((at_once.points, at_once.anomalies), (40.0, 1));
        assert!((at_once.score - 55.1).abs() < 0.1, "{}", at_once.score);
        let later = b.get("t", RiskKind::User, "u1", 3_600_000);
        assert!((later.points - 20.0).abs() < 1e-9);
        assert!(later.score < at_once.score);
        b.add("t", RiskKind::User, "u1", 40.0, Cause::Enforcement, 3_600_000);
        assert!((b.get("t", RiskKind::User, "u1", 3_600_000).points - 60.0).abs() < 1e-9);
        assert_eq!(b.get("t", RiskKind::User, "nobody", 0).score, 0.0);
        assert_eq!(b.get("other", RiskKind::User, "u1", 0).score, 0.0, "scores stay in their tenant");
        // Added out of order (newest first), the sum is the same.
        let c = book(None);
        c.add("t", RiskKind::User, "u", 10.0, Cause::Threats, 7_200_000);
        c.add("t", RiskKind::User, "u", 40.0, Cause::Threats, 0);
        let d = book(None);
        d.add("t", RiskKind::User, "u", 40.0, Cause::Threats, 0);
        d.add("t", RiskKind::User, "u", 10.0, Cause::Threats, 7_200_000);
        let (x, y) =
            (c.get("t", RiskKind::User, "u", 7_200_000).points, d.get("t", RiskKind::User, "u", 7_200_000).points);
        assert!((x - 20.0).abs() < 1e-9 && (y - 20.0).abs() < 1e-9, "{x} {y}");
    }

    #[test]
    fn the_riskiest_come_first_and_the_book_stays_bounded() {
        let b = book(None);
        for (i, p) in [5.0, 50.0, 20.0, 1.0, 80.0, 0.5].iter().enumerate() {
            b.add("t", RiskKind::Session, &format!("s{i}"), *p, Cause::Threats, 0);
        }
        assert!(b.lock().len() <= 4, "max_entities");
        let top = b.top("t", Some(RiskKind::Session), 3, 0);
        let ids: Vec<&str> = top.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["s4", "s1", "s2"]);
        assert!(b.top("t", Some(RiskKind::User), 10, 0).is_empty());
    }

    #[test]
    fn a_subject_at_the_limit_is_named() {
        let b = book(Some(60.0));
        b.add("t", RiskKind::User, "u1", 30.0, Cause::Threats, 0);
        assert_eq!(b.over_limit("t", &[(RiskKind::User, "u1")], 0), None);
        b.add("t", RiskKind::User, "u1", 30.0, Cause::Threats, 0);
        let (kind, id, score) = b.over_limit("t", &[(RiskKind::Session, "s"), (RiskKind::User, "u1")], 0).unwrap();
        assert_eq!((kind, id), (RiskKind::User, "u1"));
        assert!(score >= 60.0);
        assert_eq!(book(None).over_limit("t", &[(RiskKind::User, "u1")], 0), None, "no limit: never");
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = RiskConfig { block_above: Some(0.0), ..RiskConfig::default() };
        assert_eq!(bad.validate().unwrap_err().0, "risk.block_above");
        let bad = RiskConfig { half_life_secs: 1, ..RiskConfig::default() };
        assert_eq!(bad.validate().unwrap_err().0, "risk.half_life_secs");
        assert!(RiskConfig::default().validate().is_ok());
    }
}
