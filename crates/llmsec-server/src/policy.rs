//! Rego policies in force (`[policy]`): loaded at start-up, reloaded when
//! their files change (a change that does not compile is logged and the
//! policy in force stays), and asked for a decision on every analysis.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use llm_security::Analysis;
use llmsec_policy::{Decision, RegoPolicy, RequestContext};
use tokio::sync::watch;

use crate::config::RegoPolicyConfig;

/// What identifies a version of the policy files: each file's path,
/// length and modification time.
type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The policy in force and how to reload it.
#[derive(Debug)]
pub struct PolicyHandle {
    paths: Vec<PathBuf>,
    current: RwLock<Arc<RegoPolicy>>,
    stamp: Mutex<Stamp>,
}

impl PolicyHandle {
    /// Loads the policy; an error names the file.
    pub fn load(config: &RegoPolicyConfig) -> Result<PolicyHandle, llmsec_policy::PolicyError> {
        let stamp = stamp(&config.rego);
        let policy = RegoPolicy::from_paths(&config.rego)?;
        Ok(PolicyHandle {
            paths: config.rego.clone(),
            current: RwLock::new(Arc::new(policy)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<RegoPolicy> {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads when a file changed; true when a new policy is in force.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.paths);
        {
            let mut last = match self.stamp.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if *last == now {
                return false;
            }
            *last = now;
        }
        match RegoPolicy::from_paths(&self.paths) {
            Ok(p) => {
                match self.current.write() {
                    Ok(mut g) => *g = Arc::new(p),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(p),
                }
                tracing::info!("policy: reloaded");
                true
            }
            Err(e) => {
                tracing::error!("policy: the changed files do not load, keeping the policy in force: {e}");
                false
            }
        }
    }

    /// The decision for an analysis. A policy that fails to evaluate
    /// blocks (fail closed) with the reason, and the error is logged.
    pub fn decide(&self, analysis: &Analysis, request: &RequestContext) -> Decision {
        let input = llmsec_policy::input(analysis, request);
        match self.current().decide(&input) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("policy: {e}");
                Decision {
                    action: llmsec_policy::Action::Block,
                    reasons: vec!["the policy could not be evaluated".to_owned()],
                    obligations: Default::default(),
                }
            }
        }
    }
}

/// Each policy file's path, length and modification time; a path that
/// cannot be read leaves the stamp empty, so it changes when it can again.
fn stamp(paths: &[PathBuf]) -> Stamp {
    llmsec_policy::rego_files(paths)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, len, modified)
        })
        .collect()
}

/// Checks the files every `every` until `stop`.
pub async fn watch_files(handle: Arc<PolicyHandle>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let h = handle.clone();
                let _ = tokio::task::spawn_blocking(move || h.reload_if_changed()).await;
            }
            _ = stop.changed() => return,
        }
    }
}
