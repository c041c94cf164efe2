//! The pipeline: events through every enabled detector, findings into
//! anomalies, anomalies out with the actions to run.

use std::sync::Arc;

use serde::Serialize;

use crate::action::ActionSpec;
use crate::anomaly::{ActionTaken, Anomalies, Anomaly, Change, LifecycleError};
use crate::config::{ConfigError, DetectorSpec, SentinelConfig};
use crate::detector::{Clock, Detector, DetectorKind, Finding, Millis};
use crate::event::TelemetryEvent;

/// What happened to an anomaly, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Created, updated, resolved, …
    pub change: Change,
    /// The anomaly after the change.
    pub anomaly: Anomaly,
    /// Actions to run (only when it was created).
    pub actions: Vec<ActionSpec>,
}

struct Slot {
    spec: DetectorSpec,
    detector: Box<dyn Detector>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.spec.id).field("detector", &self.detector).finish()
    }
}

/// A detector as listed (the GraphQL `Detector`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: DetectorKind,
    /// On or off.
    pub enabled: bool,
    /// Its config block.
    pub config: serde_json::Value,
    /// Its actions.
    pub actions: Vec<ActionSpec>,
    /// Entities it tracks now.
    pub tracked_entities: usize,
}

impl DetectorInfo {
    /// The listing of a spec whose detector tracks `tracked_entities`.
    pub fn from_spec(spec: &DetectorSpec, tracked_entities: usize) -> DetectorInfo {
        DetectorInfo {
            id: spec.id.clone(),
            name: spec.name.clone(),
            kind: spec.kind(),
            enabled: spec.enabled,
            config: spec.config.clone(),
            actions: spec.actions.clone(),
            tracked_entities,
        }
    }
}

/// Sentinel's state: detectors and open anomalies.
#[derive(Debug)]
pub struct Sentinel {
    slots: Vec<Slot>,
    anomalies: Anomalies,
    clock: Arc<dyn Clock>,
    findings: Vec<Finding>,
}

impl Sentinel {
    /// Builds every detector of the config.
    pub fn new(config: SentinelConfig, clock: Arc<dyn Clock>) -> Result<Sentinel, ConfigError> {
        let slots = config
            .detectors
            .into_iter()
            .map(|spec| spec.build().map(|detector| Slot { spec, detector }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sentinel { slots, anomalies: Anomalies::new(config.anomalies), clock, findings: Vec::new() })
    }

    /// The clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Runs one event through every enabled detector.
    pub fn process(&mut self, e: &TelemetryEvent) -> Vec<Outcome> {
        let now = self.clock.now();
        let mut out = Vec::new();
        self.run_detectors(now, &mut out, |d, findings| d.observe(e, now, findings));
        out
    }

    /// Lets every enabled detector report (`report`), and records what it
    /// found as anomalies; new ones carry their detector's actions.
    fn run_detectors(
        &mut self,
        now: Millis,
        out: &mut Vec<Outcome>,
        mut report: impl FnMut(&mut dyn Detector, &mut Vec<Finding>),
    ) {
        for slot in self.slots.iter_mut().filter(|s| s.spec.enabled) {
            report(slot.detector.as_mut(), &mut self.findings);
            for f in self.findings.drain(..) {
                if let Some((change, anomaly)) = self.anomalies.record(&slot.spec.id, slot.detector.kind(), f, now) {
                    let actions = if change == Change::Created { slot.spec.actions.clone() } else { Vec::new() };
                    out.push(Outcome { change, anomaly, actions });
                }
            }
        }
    }

    /// Closes detector windows no event closed, then resolves anomalies
    /// quiet for the configured period.
    pub fn tick(&mut self) -> Vec<Outcome> {
        let now = self.clock.now();
        let mut out = Vec::new();
        self.run_detectors(now, &mut out, |d, findings| d.tick(now, findings));
        out.extend(self.anomalies.tick(now).into_iter().map(|anomaly| Outcome {
            change: Change::Resolved,
            anomaly,
            actions: vec![],
        }));
        out
    }

    /// ACTIVE → ACKNOWLEDGED.
    pub fn acknowledge(&mut self, id: &str, by: &str, note: Option<String>) -> Result<Anomaly, LifecycleError> {
        let now = self.clock.now();
        self.anomalies.acknowledge(id, by, note, now)
    }

    /// → RESOLVED.
    pub fn resolve(&mut self, id: &str) -> Result<Anomaly, LifecycleError> {
        let now = self.clock.now();
        self.anomalies.resolve(id, now)
    }

    /// → SUPPRESSED.
    pub fn suppress(&mut self, id: &str) -> Result<Anomaly, LifecycleError> {
        self.anomalies.suppress(id)
    }

    /// Records an action run for an open anomaly.
    pub fn record_action(&mut self, id: &str, action: ActionTaken) -> Option<Anomaly> {
        self.anomalies.add_action(id, action)
    }

    /// Changes an open anomaly with `f` (a Shield's callback on one of its
    /// actions); `None` when it is not open.
    pub fn update_anomaly(&mut self, id: &str, f: impl FnOnce(&mut Anomaly)) -> Option<Anomaly> {
        self.anomalies.update(id, f)
    }

    /// Sets an open anomaly's incident id.
    pub fn set_incident(&mut self, id: &str, incident: &str) -> Option<Anomaly> {
        self.anomalies.set_incident(id, incident)
    }

    /// Takes back an anomaly that was open before a restart.
    pub fn restore(&mut self, a: Anomaly) {
        self.anomalies.restore(a);
    }

    /// Drops the open anomalies about `entity`, and every detector's state
    /// about it (erasure of a user); returns how many anomalies.
    pub fn forget(&mut self, entity: &crate::detector::Entity) -> usize {
        for slot in &mut self.slots {
            slot.detector.forget(entity);
        }
        self.anomalies.forget(entity)
    }

    /// An open anomaly.
    pub fn anomaly(&self, id: &str) -> Option<&Anomaly> {
        self.anomalies.get(id)
    }

    /// Open anomalies.
    pub fn open_anomalies(&self) -> Vec<&Anomaly> {
        self.anomalies.open()
    }

    /// Mean time to resolution (ms) of anomalies resolved by this instance.
    pub fn mttr_ms(&self) -> Option<f64> {
        self.anomalies.mttr_ms()
    }

    /// The detectors.
    pub fn detectors(&self) -> Vec<DetectorInfo> {
        self.slots.iter().map(|s| DetectorInfo::from_spec(&s.spec, s.detector.tracked())).collect()
    }

    /// Entities tracked by all detectors.
    pub fn tracked_entities(&self) -> usize {
        self.slots.iter().map(|s| s.detector.tracked()).sum()
    }

    /// Replaces a detector's spec (or adds a new one), live. The new spec is
    /// checked first; on error the old detector stays as it was. A replaced
    /// detector starts with fresh state.
    pub fn update_detector(&mut self, spec: &serde_json::Value) -> Result<DetectorInfo, ConfigError> {
        let spec = DetectorSpec::from_value(spec)?;
        let detector = spec.build()?;
        let id = spec.id.clone();
        match self.slots.iter_mut().find(|s| s.spec.id == id) {
            Some(slot) => *slot = Slot { spec, detector },
            None => self.slots.push(Slot { spec, detector }),
        }
        self.detectors()
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| ConfigError { path: id, message: "detector vanished during update".into() })
    }

    /// Removes a detector, live, with its state; false when there is none.
    pub fn remove_detector(&mut self, id: &str) -> bool {
        let before = self.slots.len();
        self.slots.retain(|s| s.spec.id != id);
        self.slots.len() != before
    }

    /// Runs a detector's spec on `events` with fresh state, changing nothing:
    /// what it would find.
    pub fn test_detector(&self, id: &str, events: &[TelemetryEvent]) -> Result<Vec<Finding>, ConfigError> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.spec.id == id)
            .ok_or_else(|| ConfigError { path: id.to_owned(), message: "no such detector".into() })?;
        slot.spec.dry_run(events)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::detector::{Entity, EntityKind, ManualClock};
    use crate::event::tests::event;

    #[test]
    fn forgetting_a_user_drops_every_detectors_state_about_them() {
        let yaml = r#"
detectors:
  - id: cost
    type: statistical
    config: {metric: cost, group_by: user}
  - id: burst
    type: rule
    config: {expression: "count(1h) > 1000", group_by: user}
  - id: switching
    type: behavioral
    config: {kind: model_switching, window_size: 10}
  - id: per-app
    type: statistical
    config: {metric: cost}
"#;
        let config = SentinelConfig::from_yaml(yaml).unwrap();
        let mut s = Sentinel::new(config, Arc::new(ManualClock::new(0))).unwrap();
        for (i, user) in ["alice", "bob", "alice"].iter().enumerate() {
            let mut e = event(&format!("e{i}"), 1_000 + i as i64);
            e.metadata.user_id = Some((*user).to_owned());
            s.process(&e);
        }
        let tracked = |s: &Sentinel| s.detectors().into_iter().map(|d| (d.id, d.tracked_entities)).collect::<Vec<_>>();
        let two = |n: usize| {
            vec![
                ("cost".to_owned(), n),
                ("burst".to_owned(), n),
                ("switching".to_owned(), n),
                ("per-app".to_owned(), 1),
            ]
        };
        assert_eq!(tracked(&s), two(2));
        s.forget(&Entity { kind: EntityKind::User, id: "alice".into() });
        // The application-grouped detector keeps its entity: it is not alice's.
        assert_eq!(tracked(&s), two(1));
        s.forget(&Entity { kind: EntityKind::User, id: "nobody".into() });
        assert_eq!(tracked(&s), two(1));
    }
}
