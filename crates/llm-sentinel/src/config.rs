//! The detector YAML (documented in docs/SENTINEL.md):
//!
//! ```yaml
//! detectors:
//!   - id: abnormal-cost-spike
//!     name: Abnormal Cost Spike Detector
//!     type: statistical
//!     enabled: true
//!     config: {metric: cost_per_minute, strategy: zscore, threshold: 4.0, window: 5m}
//!     actions:
//!       - type: alert
//!         config: {severity: warning, receivers: [ops-team]}
//! anomalies:
//!   quiet_period: 15m
//! ```
//!
//! Detector keys written beside `config:` (e.g. `model:` and `threshold:` at
//! the top of the entry, a shape the published examples use) are read as
//! config keys. Unknown
//! types and unknown keys are errors naming the detector and the key.
//!
//! An entry with a `plugin:` key (any `type:` name, e.g.
//! `custom_behavioral`) is a [`plugin`](crate::detectors::plugin) detector:
//! an external process given the config block; its runner keys
//! (`timeout_ms`, `max_restarts`, `start_timeout_ms`, `interpreter`, and
//! `env` / `env_vars`, the only environment it gets) are read beside
//! `plugin:` and not passed to the plugin.

use serde::Serialize;

use crate::action::ActionSpec;
use crate::anomaly::AnomalyConfig;
use crate::detector::{Detector, DetectorKind, Severity};
use crate::detectors::plugin::{PluginDetector, PluginSettings};
use crate::detectors::{behavioral, entropy, rule, statistical, threat};

/// A config error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where, e.g. `detectors[2] (cost-spike).config`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn cerr(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { path: path.into(), message: message.into() }
}

/// One detector entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorSpec {
    /// Unique id.
    pub id: String,
    /// A name for people.
    pub name: Option<String>,
    /// The type as written (`statistical`, `rule`, `behavioral`, `threat`/`ml`, `entropy`).
    #[serde(rename = "type")]
    pub kind_name: String,
    /// Off detectors are kept in the config but see no events.
    pub enabled: bool,
    /// Severity of its anomalies (default: critical for threat, warning otherwise).
    pub severity: Option<Severity>,
    /// The type's config block (with top-level extras merged in).
    pub config: serde_json::Value,
    /// What to do when it opens an anomaly.
    pub actions: Vec<ActionSpec>,
    /// The action entries as written (for round-tripping the config).
    #[serde(skip)]
    pub raw_actions: Vec<serde_json::Value>,
    /// Plugin detectors only: the `plugin:` program (a script or an
    /// executable) that makes this entry an external process, whatever its
    /// `type:`. `None` for the built-in types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Plugin detectors only: the runner keys written beside `plugin:`
    /// (`timeout_ms`, `max_restarts`, `start_timeout_ms`, `interpreter`,
    /// `env`, `env_vars`).
    #[serde(flatten)]
    pub plugin_settings: Option<PluginSettings>,
}

/// Everything Sentinel reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SentinelConfig {
    /// Detectors, in order.
    pub detectors: Vec<DetectorSpec>,
    /// Anomaly lifecycle.
    pub anomalies: AnomalyConfig,
}

const TOP_KEYS: &[&str] = &["id", "name", "type", "enabled", "severity", "config", "actions", "plugin"];

/// The detector types this build knows.
pub const TYPES: &[&str] = &["statistical", "rule", "behavioral", "threat", "ml", "entropy"];

impl SentinelConfig {
    /// Reads YAML.
    pub fn from_yaml(s: &str) -> Result<SentinelConfig, ConfigError> {
        let v: serde_json::Value = serde_norway::from_str(s).map_err(|e| cerr("yaml", e.to_string()))?;
        SentinelConfig::from_value(&v)
    }

    /// Reads the parsed document.
    pub fn from_value(v: &serde_json::Value) -> Result<SentinelConfig, ConfigError> {
        let obj = v.as_object().ok_or_else(|| cerr("$", "expected a mapping with `detectors:`"))?;
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "detectors" | "anomalies")) {
            // An empty or odd key (YAML's `? ` makes one) still gets a path.
            let path = if k.is_empty() { "$".to_owned() } else { k.clone() };
            return Err(cerr(path, format!("unknown key {k:?} (expected detectors, anomalies)")));
        }
        let anomalies = match obj.get("anomalies") {
            Some(a) => serde_json::from_value(a.clone()).map_err(|e| cerr("anomalies", e.to_string()))?,
            None => AnomalyConfig::default(),
        };
        let list = match obj.get("detectors") {
            Some(serde_json::Value::Array(l)) => l.as_slice(),
            Some(serde_json::Value::Null) | None => &[],
            Some(_) => return Err(cerr("detectors", "expected a list")),
        };
        let mut detectors: Vec<DetectorSpec> = Vec::with_capacity(list.len());
        for (i, d) in list.iter().enumerate() {
            let spec = DetectorSpec::from_value(d)
                .map_err(|e| ConfigError { path: format!("detectors[{i}]{}", e.path), ..e })?;
            if detectors.iter().any(|x| x.id == spec.id) {
                return Err(cerr(format!("detectors[{i}].id"), format!("duplicate id {:?}", spec.id)));
            }
            detectors.push(spec);
        }
        Ok(SentinelConfig { detectors, anomalies })
    }
}

impl DetectorSpec {
    /// Reads one detector entry, checking it builds. Error paths are
    /// relative (`.config`, `.actions[1]`) and start with the id.
    pub fn from_value(v: &serde_json::Value) -> Result<DetectorSpec, ConfigError> {
        let obj = v.as_object().ok_or_else(|| cerr("", "expected a mapping"))?;
        let id = obj.get("id").and_then(|v| v.as_str()).ok_or_else(|| cerr(".id", "required"))?.to_owned();
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(cerr(".id", "must be 1-128 characters of A-Z a-z 0-9 - _ ."));
        }
        let at = |p: &str| format!(" ({id}){p}");
        let kind_name =
            obj.get("type").and_then(|v| v.as_str()).ok_or_else(|| cerr(at(".type"), "required"))?.to_owned();
        // Plugin detectors: `plugin:` makes any type name an external process
        // (detectors::plugin); its runner keys are settings, not config keys.
        let plugin = match obj.get("plugin") {
            None => None,
            Some(v) => Some(
                v.as_str().filter(|p| !p.is_empty()).ok_or_else(|| cerr(at(".plugin"), "expected a path"))?.to_owned(),
            ),
        };
        let plugin_settings = match plugin {
            None => None,
            Some(_) => Some(PluginSettings::from_entry(obj).map_err(|(k, e)| cerr(at(&format!(".{k}")), e))?),
        };
        let is_top_key = |k: &str| TOP_KEYS.contains(&k) || (plugin.is_some() && PluginSettings::KEYS.contains(&k));
        if plugin.is_none() && !TYPES.contains(&kind_name.as_str()) {
            let why = format!("unknown detector type {kind_name:?} (expected one of {})", TYPES.join(", "));
            return Err(cerr(at(".type"), why));
        }
        let enabled = match obj.get("enabled") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| cerr(at(".enabled"), "expected true or false"))?,
        };
        let name = match obj.get("name") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_str().ok_or_else(|| cerr(at(".name"), "expected a string"))?.to_owned()),
        };
        let severity = match obj.get("severity") {
            None => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| cerr(at(".severity"), e.to_string()))?),
        };
        let mut config = match obj.get("config") {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(m)) => m.clone(),
            Some(_) => return Err(cerr(at(".config"), "expected a mapping")),
        };
        for (k, v) in obj.iter().filter(|(k, _)| !is_top_key(k)) {
            if config.insert(k.clone(), v.clone()).is_some() {
                return Err(cerr(at(&format!(".{k}")), "given both here and under config"));
            }
        }
        let raw_actions = match obj.get("actions") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(_) => return Err(cerr(at(".actions"), "expected a list")),
        };
        let actions = raw_actions
            .iter()
            .enumerate()
            .map(|(i, a)| ActionSpec::from_value(a).map_err(|e| cerr(at(&format!(".actions[{i}]")), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = DetectorSpec {
            id,
            name,
            kind_name,
            enabled,
            severity,
            config: serde_json::Value::Object(config),
            actions,
            raw_actions,
            plugin,
            plugin_settings,
        };
        spec.build().map(|_| spec)
    }

    /// The entry as the detectors file would hold it: every field, the
    /// actions as written, and `plugin:` with its runner keys for a plugin
    /// detector. [`from_value`](Self::from_value) reads it back into this spec.
    pub fn to_entry(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.clone().into());
        if let Some(n) = &self.name {
            m.insert("name".into(), n.clone().into());
        }
        m.insert("type".into(), self.kind_name.clone().into());
        m.insert("enabled".into(), self.enabled.into());
        if let Some(s) = self.severity {
            m.insert("severity".into(), s.as_str().into());
        }
        m.insert("config".into(), self.config.clone());
        m.insert("actions".into(), serde_json::Value::Array(self.raw_actions.clone()));
        if let Some(p) = &self.plugin {
            m.insert("plugin".into(), p.clone().into());
            if let Some(serde_json::Value::Object(keys)) =
                self.plugin_settings.as_ref().and_then(|s| serde_json::to_value(s).ok())
            {
                m.extend(keys);
            }
        }
        serde_json::Value::Object(m)
    }

    /// The detector kind.
    pub fn kind(&self) -> DetectorKind {
        if self.plugin.is_some() {
            return DetectorKind::Plugin;
        }
        match self.kind_name.as_str() {
            "statistical" => DetectorKind::Statistical,
            "rule" => DetectorKind::Rule,
            "behavioral" => DetectorKind::Behavioral,
            "entropy" => DetectorKind::Entropy,
            _ => DetectorKind::Threat,
        }
    }

    /// The severity of its anomalies.
    pub fn severity(&self) -> Severity {
        self.severity.unwrap_or(if self.kind() == DetectorKind::Threat {
            Severity::Critical
        } else {
            Severity::Warning
        })
    }

    /// Runs a fresh detector from this spec over `events` (each at its own
    /// time, then one tick past the last), changing nothing: what it would find.
    pub fn dry_run(
        &self,
        events: &[crate::event::TelemetryEvent],
    ) -> Result<Vec<crate::detector::Finding>, ConfigError> {
        let mut d = self.build()?;
        let mut out = Vec::new();
        let mut last = 0;
        for e in events {
            last = last.max(e.millis());
            d.observe(e, e.millis(), &mut out);
        }
        d.tick(last + 1, &mut out);
        Ok(out)
    }

    /// Builds a fresh detector (no state).
    pub fn build(&self) -> Result<Box<dyn Detector>, ConfigError> {
        let at = format!(" ({}).config", self.id);
        let parse = |e: serde_json::Error| cerr(at.clone(), e.to_string());
        let bad = |e: String| cerr(at.clone(), e);
        let (id, sev, c) = (self.id.as_str(), self.severity(), self.config.clone());
        Ok(match self.kind() {
            DetectorKind::Statistical => Box::new(
                statistical::StatisticalDetector::new(id, sev, serde_json::from_value(c).map_err(parse)?)
                    .map_err(bad)?,
            ),
            DetectorKind::Rule => {
                Box::new(rule::RuleDetector::new(id, sev, serde_json::from_value(c).map_err(parse)?).map_err(bad)?)
            }
            DetectorKind::Behavioral => Box::new(
                behavioral::BehavioralDetector::new(id, sev, serde_json::from_value(c).map_err(parse)?).map_err(bad)?,
            ),
            DetectorKind::Entropy => Box::new(
                entropy::EntropyDetector::new(id, sev, serde_json::from_value(c).map_err(parse)?).map_err(bad)?,
            ),
            DetectorKind::Threat => {
                Box::new(threat::ThreatDetector::new(id, sev, serde_json::from_value(c).map_err(parse)?).map_err(bad)?)
            }
            // Starts the process (and checks the program exists); errors point at `.plugin`.
            DetectorKind::Plugin => {
                let program = self.plugin.as_deref().unwrap_or_default();
                let settings = self.plugin_settings.clone().unwrap_or_default();
                Box::new(
                    PluginDetector::new(id, sev, program, c, settings)
                        .map_err(|e| cerr(format!(" ({}).plugin", self.id), e))?,
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two detectors with shield and alert actions: an ML prompt-injection
    /// detector (`type: ml`) blocking the request's entity, and a cost-spike
    /// detector rate-limiting the application.
    pub(crate) const EXAMPLE_SHIELD: &str = r#"
detectors:
  - id: prompt-injection-ml
    name: Prompt Injection Detector (ML)
    type: ml
    enabled: true
    config:
      model: prompt-injection-v2
      threshold: 0.85
      features: ["prompt_text", "embedding"]
    actions:
      - type: shield
        config:
          endpoint: shield.example.com:9090
          action: block
          target: request
          duration: 1h
          reason: "Prompt injection attack detected"
          parameters:
            block_type: immediate
            notify_user: true
      - type: alert
        config:
          severity: critical
          receivers: ["security-team", "pagerduty-security"]
  - id: abnormal-cost-spike
    name: Abnormal Cost Spike Detector
    type: statistical
    enabled: true
    config:
      metric: cost_per_minute
      strategy: zscore
      threshold: 4.0
      window: 5m
    actions:
      - type: shield
        config:
          endpoint: shield.example.com:9090
          action: rate_limit
          target: application
          duration: 10m
          parameters:
            limit: 100
            window: 1m
      - type: alert
        config:
          severity: warning
          receivers: ["ops-team"]
"#;

    /// One detector whose config keys sit beside `config` instead of in it,
    /// with all four action types.
    const EXAMPLE_SCENARIO_1: &str = r#"
detectors:
  - id: prompt-injection-ml
    type: ml
    model: prompt-injection-v2
    threshold: 0.85
    actions:
      - type: shield
        config:
          action: block
          duration: 1h
      - type: incident
        config:
          auto_create: true
          severity: P1
      - type: alert
        config:
          receivers: [security-team, pagerduty-security]
          severity: critical
      - type: webhook
        config:
          url: https://dashboard.example.com/api/events
"#;

    #[test]
    fn example_configs_load() {
        let c = SentinelConfig::from_yaml(EXAMPLE_SHIELD).unwrap();
        assert_eq!(c.detectors.len(), 2);
        assert_eq!(c.detectors[0].kind(), DetectorKind::Threat);
        assert_eq!(c.detectors[0].severity(), Severity::Critical);
        assert_eq!(c.detectors[1].actions.len(), 2);
        let c = SentinelConfig::from_yaml(EXAMPLE_SCENARIO_1).unwrap();
        assert_eq!(c.detectors[0].config["threshold"], 0.85);
        assert_eq!(c.detectors[0].actions.len(), 4);
    }

    #[test]
    fn entries_read_back_into_the_same_spec() {
        let program = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plugins/model_switching.py");
        let plugin = format!(
            "detectors:\n  - id: custom\n    type: custom_behavioral\n    severity: critical\n    plugin: {program}\n    \
             timeout_ms: 300\n    interpreter: python3\n    config: {{threshold: 0.5}}\n"
        );
        for yaml in [EXAMPLE_SHIELD, EXAMPLE_SCENARIO_1, plugin.as_str()] {
            for spec in SentinelConfig::from_yaml(yaml).unwrap().detectors {
                let entry = spec.to_entry();
                assert_eq!(DetectorSpec::from_value(&entry).unwrap(), spec, "{entry}");
            }
        }
        let spec = SentinelConfig::from_yaml(&plugin).unwrap().detectors.remove(0);
        let entry = spec.to_entry();
        assert_eq!(
            (&entry["plugin"], &entry["timeout_ms"], &entry["interpreter"], &entry["severity"]),
            (&program.into(), &300.into(), &"python3".into(), &"critical".into())
        );
    }

    #[test]
    fn errors_name_the_detector_and_key() {
        for (yaml, needle) in [
            ("detectors:\n  - id: a\n    type: magic\n", "detectors[0] (a).type: unknown detector type \"magic\""),
            (
                "detectors:\n  - id: a\n    type: statistical\n    config: {metrik: cost}\n",
                "detectors[0] (a).config: unknown field `metrik`",
            ),
            ("detectors:\n  - id: a\n    type: ml\n    treshold: 0.5\n", "unknown field `treshold`"),
            ("detectors:\n  - id: a\n    type: ml\n  - id: a\n    type: ml\n", "detectors[1].id: duplicate id"),
            ("detectors:\n  - type: ml\n", "detectors[0].id: required"),
            ("detectors:\n  - id: a\n    type: ml\n    actions:\n      - type: page\n", "detectors[0] (a).actions[0]"),
            (
                "detectors:\n  - id: a\n    type: custom_behavioral\n    plugin: /nonexistent/x.py\n",
                "detectors[0] (a).plugin: plugin program \"/nonexistent/x.py\" not found",
            ),
            ("detectors:\n  - id: a\n    type: magic\n    plugin: 3\n", "detectors[0] (a).plugin: expected a path"),
            ("detectors:\n  - id: a\n    type: ml\n    timeout_ms: 100\n", "unknown field `timeout_ms`"),
            ("detectorz: []\n", "detectorz: unknown key"),
            // Found by the detector_config fuzz target: YAML's `?` makes an empty key.
            ("?", "$: unknown key"),
            (
                "detectors:\n  - id: a\n    type: ml\n    threshold: 0.5\n    config: {threshold: 0.6}\n",
                "both here and under config",
            ),
        ] {
            let e = SentinelConfig::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(needle), "{yaml}\n→ {e}");
        }
    }

    /// A custom `type:` with a `plugin:` path and the alert shorthand, run with
    /// the example plugin (needs python3).
    #[test]
    fn plugin_specs_build_a_plugin_detector() {
        let program = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plugins/model_switching.py");
        let published = "detectors:\n  - id: custom-model-switching\n    type: custom_behavioral\n    enabled: true\n    \
                    plugin: /etc/sentinel/plugins/custom_detector.py\n    config:\n      threshold: 0.5\n      \
                    window_size: 100\n    actions:\n      - alert: unusual-behavior\n        severity: warning\n";
        let c =
            SentinelConfig::from_yaml(&published.replace("/etc/sentinel/plugins/custom_detector.py", program)).unwrap();
        assert_eq!((c.detectors[0].kind(), c.detectors[0].actions.len()), (DetectorKind::Plugin, 1));
        assert_eq!(c.detectors[0].plugin_settings, Some(PluginSettings::default()));
        let yaml = format!(
            "detectors:\n  - id: custom-model-switching\n    type: custom_behavioral\n    enabled: true\n    \
             plugin: {program}\n    timeout_ms: 300\n    max_restarts: 2\n    window_size: 100\n    \
             config:\n      threshold: 0.5\n"
        );
        let c = SentinelConfig::from_yaml(&yaml).unwrap();
        let spec = &c.detectors[0];
        assert_eq!(spec.kind(), DetectorKind::Plugin);
        assert_eq!(spec.severity(), Severity::Warning);
        assert_eq!(spec.plugin.as_deref(), Some(program));
        // Runner keys are settings; other keys beside `config:` are merged into it.
        assert_eq!(spec.config, serde_json::json!({"threshold": 0.5, "window_size": 100}));
        let settings = spec.plugin_settings.clone().unwrap();
        assert_eq!((settings.timeout_ms, settings.max_restarts, settings.interpreter), (300, 2, None));
        let d = spec.build().unwrap();
        assert_eq!(d.kind(), DetectorKind::Plugin);
        let v = serde_json::to_value(spec).unwrap();
        assert_eq!(
            (&v["plugin"], &v["timeout_ms"], &v["type"]),
            (&program.into(), &300.into(), &"custom_behavioral".into())
        );
        // The plugin validates its config; its message is the error.
        let e = SentinelConfig::from_yaml(&yaml.replace("threshold: 0.5", "threshold: 1.5")).unwrap_err().to_string();
        assert!(
            e.contains("detectors[0] (custom-model-switching).plugin:") && e.contains("threshold must be in [0, 1]"),
            "{e}"
        );
        let e = SentinelConfig::from_yaml(&yaml.replace("max_restarts: 2", "max_restarts: -1")).unwrap_err();
        assert_eq!(e.path, "detectors[0] (custom-model-switching).max_restarts");
    }
}
