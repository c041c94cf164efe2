//! Red-team runs for LLM applications (`llmsec redteam`): attack suites
//! (a built-in one covering the OWASP Top 10 for LLM Applications 2025
//! categories that can be tested from a prompt, and the common jailbreak
//! families; or files the user brings), converters applied alone and in
//! combination, targets (an OpenAI-compatible or Anthropic endpoint, or
//! the engine in-process), deterministic judges, and attack-success
//! statistics with Wilson and bootstrap 95% intervals, written as text,
//! JSON, JUnit XML and HTML.
//!
//! ```
//! use std::sync::Arc;
//! use llm_security::SecurityEngine;
//! use llmsec_redteam::{converters::Chain, judge::{Judge, Scenario}, report, run, suite, target::EngineTarget};
//!
//! let engine = Arc::new(SecurityEngine::new());
//! let scenario = Scenario::new(&engine, 7);
//! let judge = Judge::new(&engine, &scenario);
//! let trials = run::plan(&suite::builtin(), &[Chain::default()]);
//! let target = EngineTarget::new(engine.clone());
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! let results = rt.block_on(run::run(&trials, &target, &scenario, &judge, &Default::default(), |_| {}));
//! let summary = report::summarize("engine", &results, None, 1000, 7);
//! assert_eq!(summary.overall.trials, trials.len());
//! ```

#![deny(missing_docs)]

pub mod converters;
pub mod judge;
pub mod report;
pub mod run;
pub mod sarif;
pub mod stats;
pub mod suite;
pub mod target;
pub mod upload;

/// What can go wrong before a run starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedteamError {
    /// A suite file is invalid.
    #[error("suite {0}")]
    Suite(String),
}
