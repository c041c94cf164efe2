//! Anomalies (the GraphQL and REST `Anomaly`) and their lifecycle.
//!
//! Findings become anomalies through [`Anomalies::record`]: a finding for a
//! detector and entity that already has an open anomaly (ACTIVE or
//! ACKNOWLEDGED, or SUPPRESSED) updates it (occurrences, last seen, highest
//! score, sample events) instead of opening another, so a sustained problem
//! is one anomaly, not an alert per event. The anomaly's window runs from
//! its first finding until `quiet_period` passes without one; then
//! [`Anomalies::tick`] resolves it (or closes a suppressed one), and a later
//! finding opens a new anomaly.
//!
//! ```text
//! ACTIVE ──acknowledge──▶ ACKNOWLEDGED ──resolve / quiet──▶ RESOLVED
//!    │                          │
//!    └──────────suppress────────┴──▶ SUPPRESSED (absorbs findings silently)
//! ```
//!
//! Memory: open anomalies only (at most `max_open`; the oldest is closed
//! as resolved past that), each with at most `max_samples` sample event ids.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::detector::{DetectorKind, Entity, Finding, Millis, Severity, duration_str};

/// Where an anomaly stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyStatus {
    /// Open, nobody on it yet.
    Active,
    /// Someone is on it.
    Acknowledged,
    /// Over: by hand or after a quiet period.
    Resolved,
    /// Muted by hand: its findings are absorbed silently.
    Suppressed,
}

impl AnomalyStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyStatus::Active => "active",
            AnomalyStatus::Acknowledged => "acknowledged",
            AnomalyStatus::Resolved => "resolved",
            AnomalyStatus::Suppressed => "suppressed",
        }
    }

    /// Parses a name (any case).
    pub fn parse(s: &str) -> Option<AnomalyStatus> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(AnomalyStatus::Active),
            "acknowledged" => Some(AnomalyStatus::Acknowledged),
            "resolved" => Some(AnomalyStatus::Resolved),
            "suppressed" => Some(AnomalyStatus::Suppressed),
            _ => None,
        }
    }

    fn is_open(self) -> bool {
        matches!(self, AnomalyStatus::Active | AnomalyStatus::Acknowledged)
    }
}

/// The numbers behind an anomaly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyMetrics {
    /// Expected value.
    pub baseline: Option<f64>,
    /// Value seen (the most anomalous so far).
    pub observed: Option<f64>,
    /// Distance in the detector's unit.
    pub deviation: Option<f64>,
    /// The detector's threshold.
    pub threshold: Option<f64>,
}

/// Where and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyContext {
    /// First finding's window start.
    pub window_start: Millis,
    /// Last finding's window end.
    pub window_end: Millis,
    /// Ids of events that triggered findings (the first few).
    pub sample_events: Vec<String>,
    /// The application.
    pub application_id: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
}

/// An action run for an anomaly, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// Its id (also the outbox delivery or enforcement id).
    pub id: String,
    /// `shield`, `alert`, `incident`, `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `succeeded`, `failed`.
    pub status: String,
    /// Details.
    pub message: String,
    /// When.
    pub at: Millis,
}

/// One anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// A UUIDv7.
    pub id: String,
    /// When it opened.
    pub timestamp: Millis,
    /// The detector.
    pub detector_id: String,
    /// The detector's kind.
    pub detector_type: DetectorKind,
    /// How bad (the worst of its findings).
    pub severity: Severity,
    /// How anomalous, `[0, 1]` (the highest of its findings).
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
    /// Actions run for it.
    pub actions_taken: Vec<ActionTaken>,
    /// Open anomalies of the same entity from other detectors.
    pub related_anomalies: Vec<String>,
    /// The incident opened for it.
    pub incident_id: Option<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<Millis>,
    /// The note given with the acknowledgement.
    pub note: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<Millis>,
    /// The last finding's time.
    pub last_seen: Millis,
    /// Findings absorbed.
    pub occurrences: u64,
}

impl Anomaly {
    /// Time to resolution, once resolved.
    pub fn time_to_resolve(&self) -> Option<Millis> {
        self.resolved_at.map(|r| r - self.timestamp)
    }
}

/// A representative anomaly: templates are checked against it.
pub fn sample() -> Anomaly {
    Anomaly {
        id: "0193a5b0-0000-7000-8000-000000000000".into(),
        timestamp: 1_764_000_000_000,
        detector_id: "cost-spike-detector".into(),
        detector_type: DetectorKind::Statistical,
        severity: Severity::Warning,
        score: 0.8,
        status: AnomalyStatus::Active,
        title: "cost 4.2σ above baseline for application chatbot-prod".into(),
        description: "cost 0.42 against a baseline of 0.05".into(),
        affected_entity: Entity::new(crate::detector::EntityKind::Application, "chatbot-prod"),
        metrics: AnomalyMetrics {
            baseline: Some(0.05),
            observed: Some(0.42),
            deviation: Some(4.2),
            threshold: Some(3.0),
        },
        context: AnomalyContext {
            window_start: 1_763_999_700_000,
            window_end: 1_764_000_000_000,
            sample_events: vec!["evt-1".into()],
            application_id: Some("chatbot-prod".into()),
            tenant_id: Some("acme".into()),
        },
        actions_taken: Vec::new(),
        related_anomalies: Vec::new(),
        incident_id: Some("INC-1".into()),
        acknowledged_by: Some("alice".into()),
        acknowledged_at: Some(1_764_000_100_000),
        note: Some("looking".into()),
        resolved_at: Some(1_764_000_900_000),
        last_seen: 1_764_000_000_000,
        occurrences: 1,
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new anomaly: actions run for these.
    Created,
    /// An open anomaly absorbed a finding.
    Updated,
    /// Acknowledged.
    Acknowledged,
    /// Resolved (by hand or quiet period).
    Resolved,
    /// Suppressed.
    Suppressed,
}

/// Lifecycle settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// An open anomaly with no finding for this long is resolved.
    #[serde(with = "duration_str")]
    pub quiet_period: Millis,
    /// Sample event ids kept per anomaly.
    pub max_samples: usize,
    /// Open anomalies kept at most.
    pub max_open: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig { quiet_period: 15 * 60_000, max_samples: 10, max_open: 100_000 }
    }
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// No open anomaly with that id here.
    #[error("no open anomaly {0}")]
    NotFound(String),
    /// The transition does not exist from the current status.
    #[error("anomaly {id} is {from}; cannot {action}")]
    Invalid {
        /// The anomaly.
        id: String,
        /// Its status.
        from: &'static str,
        /// What was asked.
        action: &'static str,
    },
}

/// The open anomalies and the lifecycle rules.
#[derive(Debug, Default)]
pub struct Anomalies {
    config: AnomalyConfig,
    open: HashMap<String, Anomaly>,
    by_key: HashMap<(String, Entity), String>,
    resolved_count: u64,
    resolved_total_ms: i128,
}

impl Anomalies {
    /// An empty set.
    pub fn new(config: AnomalyConfig) -> Anomalies {
        Anomalies { config, ..Default::default() }
    }

    /// Turns a finding into a new anomaly or an update of the open one for
    /// its detector and entity. Returns the change, or `None` when a
    /// suppressed anomaly absorbed it.
    pub fn record(
        &mut self,
        detector_id: &str,
        kind: DetectorKind,
        f: Finding,
        now: Millis,
    ) -> Option<(Change, Anomaly)> {
        let key = (detector_id.to_owned(), f.entity.clone());
        if let Some(id) = self.by_key.get(&key)
            && let Some(a) = self.open.get_mut(id)
        {
            a.occurrences += 1;
            // `now` is the pipeline's clock: the time base `tick` compares with.
            a.last_seen = a.last_seen.max(now);
            a.context.window_end = a.context.window_end.max(f.window_end);
            if let Some(ev) = f.event_id
                && a.context.sample_events.len() < self.config.max_samples
            {
                a.context.sample_events.push(ev);
            }
            if f.score > a.score {
                a.score = f.score;
                a.metrics = AnomalyMetrics {
                    baseline: f.baseline,
                    observed: f.observed,
                    deviation: f.deviation,
                    threshold: f.threshold,
                };
                a.description = f.description;
            }
            a.severity = a.severity.max(f.severity);
            if a.status == AnomalyStatus::Suppressed {
                return None;
            }
            return Some((Change::Updated, a.clone()));
        }
        if self.open.len() >= self.config.max_open {
            self.evict_oldest(now);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let related: Vec<String> = self
            .open
            .values()
            .filter(|a| a.affected_entity == f.entity && a.detector_id != detector_id)
            .map(|a| a.id.clone())
            .collect();
        for r in &related {
            if let Some(a) = self.open.get_mut(r) {
                a.related_anomalies.push(id.clone());
            }
        }
        let a = Anomaly {
            id: id.clone(),
            timestamp: now,
            detector_id: detector_id.to_owned(),
            detector_type: kind,
            severity: f.severity,
            score: f.score,
            status: AnomalyStatus::Active,
            title: f.title,
            description: f.description,
            affected_entity: f.entity,
            metrics: AnomalyMetrics {
                baseline: f.baseline,
                observed: f.observed,
                deviation: f.deviation,
                threshold: f.threshold,
            },
            context: AnomalyContext {
                window_start: f.window_start,
                window_end: f.window_end,
                sample_events: f.event_id.into_iter().collect(),
                application_id: f.application_id,
                tenant_id: f.tenant_id,
            },
            actions_taken: Vec::new(),
            related_anomalies: related,
            incident_id: None,
            acknowledged_by: None,
            acknowledged_at: None,
            note: None,
            resolved_at: None,
            last_seen: now,
            occurrences: 1,
        };
        self.by_key.insert(key, id.clone());
        self.open.insert(id, a.clone());
        Some((Change::Created, a))
    }

    fn evict_oldest(&mut self, now: Millis) {
        if let Some(id) = self.open.values().min_by_key(|a| a.last_seen).map(|a| a.id.clone()) {
            let _ = self.close(&id, AnomalyStatus::Resolved, now);
        }
    }

    fn close(&mut self, id: &str, status: AnomalyStatus, now: Millis) -> Option<Anomaly> {
        let mut a = self.open.remove(id)?;
        self.by_key.remove(&(a.detector_id.clone(), a.affected_entity.clone()));
        if status == AnomalyStatus::Resolved && a.status != AnomalyStatus::Suppressed {
            a.status = AnomalyStatus::Resolved;
            a.resolved_at = Some(now);
            self.resolved_count += 1;
            self.resolved_total_ms += i128::from(now - a.timestamp);
        }
        Some(a)
    }

    /// Resolves open anomalies quiet for `quiet_period` (and forgets quiet
    /// suppressed ones). Returns those resolved.
    pub fn tick(&mut self, now: Millis) -> Vec<Anomaly> {
        let quiet = self.config.quiet_period;
        let due: Vec<String> =
            self.open.values().filter(|a| a.last_seen + quiet <= now).map(|a| a.id.clone()).collect();
        let mut out = Vec::new();
        for id in due {
            if let Some(a) = self.close(&id, AnomalyStatus::Resolved, now)
                && a.status == AnomalyStatus::Resolved
            {
                out.push(a);
            }
        }
        out.sort_by(|x, y| x.id.cmp(&y.id));
        out
    }

    /// ACTIVE → ACKNOWLEDGED.
    pub fn acknowledge(
        &mut self,
        id: &str,
        by: &str,
        note: Option<String>,
        now: Millis,
    ) -> Result<Anomaly, LifecycleError> {
        let a = self.open.get_mut(id).ok_or_else(|| LifecycleError::NotFound(id.to_owned()))?;
        if a.status != AnomalyStatus::Active {
            return Err(LifecycleError::Invalid { id: id.to_owned(), from: a.status.as_str(), action: "acknowledge" });
        }
        a.status = AnomalyStatus::Acknowledged;
        a.acknowledged_by = Some(by.to_owned());
        a.acknowledged_at = Some(now);
        a.note = note;
        Ok(a.clone())
    }

    /// ACTIVE or ACKNOWLEDGED → RESOLVED.
    pub fn resolve(&mut self, id: &str, now: Millis) -> Result<Anomaly, LifecycleError> {
        let a = self.open.get(id).ok_or_else(|| LifecycleError::NotFound(id.to_owned()))?;
        if !a.status.is_open() {
            return Err(LifecycleError::Invalid { id: id.to_owned(), from: a.status.as_str(), action: "resolve" });
        }
        self.close(id, AnomalyStatus::Resolved, now).ok_or_else(|| LifecycleError::NotFound(id.to_owned()))
    }

    /// ACTIVE or ACKNOWLEDGED → SUPPRESSED: later findings for its detector
    /// and entity are absorbed silently until a quiet period passes.
    pub fn suppress(&mut self, id: &str) -> Result<Anomaly, LifecycleError> {
        let a = self.open.get_mut(id).ok_or_else(|| LifecycleError::NotFound(id.to_owned()))?;
        if !a.status.is_open() {
            return Err(LifecycleError::Invalid { id: id.to_owned(), from: a.status.as_str(), action: "suppress" });
        }
        a.status = AnomalyStatus::Suppressed;
        Ok(a.clone())
    }

    /// Records an action run for an open anomaly.
    pub fn add_action(&mut self, id: &str, action: ActionTaken) -> Option<Anomaly> {
        let a = self.open.get_mut(id)?;
        a.actions_taken.push(action);
        Some(a.clone())
    }

    /// Changes an open anomaly with `f`; `None` when it is not open here.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Anomaly)) -> Option<Anomaly> {
        let a = self.open.get_mut(id)?;
        f(a);
        Some(a.clone())
    }

    /// Sets the incident id of an open anomaly.
    pub fn set_incident(&mut self, id: &str, incident: &str) -> Option<Anomaly> {
        let a = self.open.get_mut(id)?;
        a.incident_id = Some(incident.to_owned());
        Some(a.clone())
    }

    /// Takes back an anomaly that was open before a restart (from the
    /// store), so new findings update it instead of opening a duplicate.
    /// Resolved anomalies are ignored.
    pub fn restore(&mut self, a: Anomaly) {
        if a.status == AnomalyStatus::Resolved || self.open.len() >= self.config.max_open {
            return;
        }
        self.by_key.insert((a.detector_id.clone(), a.affected_entity.clone()), a.id.clone());
        self.open.insert(a.id.clone(), a);
    }

    /// Drops the open anomalies about `entity` (erasure of a user); returns
    /// how many. Findings about it later open a new anomaly.
    pub fn forget(&mut self, entity: &Entity) -> usize {
        let ids: Vec<String> =
            self.open.values().filter(|a| a.affected_entity == *entity).map(|a| a.id.clone()).collect();
        for id in &ids {
            self.open.remove(id);
        }
        self.by_key.retain(|(_, e), _| e != entity);
        ids.len()
    }

    /// An open anomaly.
    pub fn get(&self, id: &str) -> Option<&Anomaly> {
        self.open.get(id)
    }

    /// Open anomalies, oldest first.
    pub fn open(&self) -> Vec<&Anomaly> {
        let mut v: Vec<&Anomaly> = self.open.values().collect();
        v.sort_by(|x, y| (x.timestamp, &x.id).cmp(&(y.timestamp, &y.id)));
        v
    }

    /// Mean time to resolution over anomalies resolved here, in milliseconds.
    pub fn mttr_ms(&self) -> Option<f64> {
        (self.resolved_count > 0).then(|| self.resolved_total_ms as f64 / self.resolved_count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::EntityKind;

    fn finding(entity: &str, score: f64, at: Millis) -> Finding {
        Finding {
            severity: Severity::Warning,
            score,
            title: "cost spike".into(),
            description: format!("score {score}"),
            entity: Entity::new(EntityKind::Application, entity),
            baseline: Some(1.0),
            observed: Some(5.0),
            deviation: Some(4.0),
            threshold: Some(3.0),
            window_start: at,
            window_end: at,
            event_id: Some(format!("ev{at}")),
            application_id: Some(entity.into()),
            tenant_id: None,
        }
    }

    fn set() -> Anomalies {
        Anomalies::new(AnomalyConfig { quiet_period: 60_000, max_samples: 3, max_open: 100 })
    }

    #[test]
    fn findings_for_one_detector_and_entity_make_one_anomaly() {
        let mut s = set();
        let (c, a) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 1000), 1000).unwrap();
        assert_eq!((c, a.status, a.occurrences), (Change::Created, AnomalyStatus::Active, 1));
        for t in [2000, 3000, 4000, 5000] {
            let (c, _) = s.record("cost", DetectorKind::Statistical, finding("app", 0.9, t), t).unwrap();
            assert_eq!(c, Change::Updated);
        }
        let a = s.get(&a.id).unwrap().clone();
        assert_eq!((a.occurrences, a.score, a.last_seen), (5, 0.9, 5000));
        assert_eq!(a.context.sample_events.len(), 3, "samples are bounded");
        // Another entity, another anomaly; another detector on the same entity is related.
        let (c2, b) = s.record("cost", DetectorKind::Statistical, finding("other", 0.6, 6000), 6000).unwrap();
        assert_eq!(c2, Change::Created);
        assert!(b.related_anomalies.is_empty());
        let (_, r) = s.record("rate", DetectorKind::Rule, finding("app", 0.6, 6000), 6000).unwrap();
        assert_eq!(r.related_anomalies, vec![a.id.clone()]);
        assert_eq!(s.get(&a.id).unwrap().related_anomalies, vec![r.id.clone()]);
    }

    #[test]
    fn forgetting_an_entity_drops_its_open_anomalies_only() {
        let mut s = set();
        let (_, a) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 0), 0).unwrap();
        let (_, b) = s.record("cost", DetectorKind::Statistical, finding("other", 0.6, 0), 0).unwrap();
        assert_eq!(s.forget(&Entity::new(EntityKind::Application, "app")), 1);
        assert!(s.get(&a.id).is_none());
        assert!(s.get(&b.id).is_some());
        // A later finding about it opens a new anomaly, not an update of the old.
        let (c, n) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 1000), 1000).unwrap();
        assert_eq!(c, Change::Created);
        assert_ne!(n.id, a.id);
    }

    #[test]
    fn lifecycle_and_mttr() {
        let mut s = set();
        let (_, a) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 0), 0).unwrap();
        let acked = s.acknowledge(&a.id, "alice", Some("looking".into()), 10_000).unwrap();
        assert_eq!((acked.status, acked.acknowledged_by.as_deref()), (AnomalyStatus::Acknowledged, Some("alice")));
        assert!(matches!(s.acknowledge(&a.id, "bob", None, 11_000), Err(LifecycleError::Invalid { .. })));
        // Quiet for the period: resolved, MTTR reported.
        assert!(s.tick(59_999).is_empty());
        let resolved = s.tick(60_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!((resolved[0].status, resolved[0].resolved_at), (AnomalyStatus::Resolved, Some(60_000)));
        assert_eq!(s.mttr_ms(), Some(60_000.0));
        assert!(matches!(s.resolve(&a.id, 70_000), Err(LifecycleError::NotFound(_))));
        // A later finding opens a new anomaly.
        let (c, b) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 80_000), 80_000).unwrap();
        assert_eq!(c, Change::Created);
        assert_ne!(a.id, b.id);
        let r = s.resolve(&b.id, 90_000).unwrap();
        assert_eq!(r.time_to_resolve(), Some(10_000));
        assert_eq!(s.mttr_ms(), Some(35_000.0));
    }

    #[test]
    fn suppressed_anomalies_absorb_findings_silently() {
        let mut s = set();
        let (_, a) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 0), 0).unwrap();
        assert_eq!(s.suppress(&a.id).unwrap().status, AnomalyStatus::Suppressed);
        assert!(s.record("cost", DetectorKind::Statistical, finding("app", 0.9, 1000), 1000).is_none());
        assert!(matches!(s.acknowledge(&a.id, "x", None, 1), Err(LifecycleError::Invalid { .. })));
        // Quiet: forgotten, not counted as resolved.
        assert!(s.tick(61_000).is_empty());
        assert_eq!(s.mttr_ms(), None);
        assert!(s.open().is_empty());
    }

    #[test]
    fn restored_anomalies_absorb_new_findings() {
        let mut s = set();
        let (_, a) = s.record("cost", DetectorKind::Statistical, finding("app", 0.6, 0), 0).unwrap();
        let mut fresh = set();
        fresh.restore(a.clone());
        let (c, b) = fresh.record("cost", DetectorKind::Statistical, finding("app", 0.7, 10), 10).unwrap();
        assert_eq!((c, b.id), (Change::Updated, a.id));
    }

    #[test]
    fn open_anomalies_are_bounded() {
        let mut s = Anomalies::new(AnomalyConfig { quiet_period: 60_000, max_samples: 1, max_open: 2 });
        for (i, e) in ["a", "b", "c"].iter().enumerate() {
            s.record("d", DetectorKind::Rule, finding(e, 0.6, i as i64), i as i64);
        }
        assert_eq!(s.open().len(), 2);
        assert!(s.open().iter().all(|a| a.affected_entity.id != "a"), "the oldest was closed");
    }
}
