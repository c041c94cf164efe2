//! Running a plan of trials against a target: concurrency, pacing,
//! retries with backoff, deterministic sampling, and results that can be
//! appended to a file as they come so an interrupted run resumes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::converters::Chain;
use crate::judge::{Judge, Scenario};
use crate::stats::SplitMix64;
use crate::suite::Case;
use crate::target::{Reply, Request, Target, TargetError};

/// One case under one converter chain.
#[derive(Debug, Clone)]
pub struct Trial {
    /// `case-id/chain` (`case-id/none` without converters).
    pub id: String,
    /// The case.
    pub case: Arc<Case>,
    /// The converters applied to its attack text.
    pub chain: Chain,
}

/// Every case under every chain, in suite order.
pub fn plan(cases: &[Case], chains: &[Chain]) -> Vec<Trial> {
    let mut out = Vec::with_capacity(cases.len() * chains.len());
    for case in cases {
        let case = Arc::new(case.clone());
        for chain in chains {
            out.push(Trial { id: format!("{}/{}", case.id, chain.name()), case: case.clone(), chain: chain.clone() });
        }
    }
    out
}

/// `n` trials drawn without replacement by a generator seeded with
/// `seed` (the same seed gives the same sample), kept in plan order.
pub fn sample(trials: Vec<Trial>, n: usize, seed: u64) -> Vec<Trial> {
    if n >= trials.len() {
        return trials;
    }
    let mut idx: Vec<usize> = (0..trials.len()).collect();
    let mut rng = SplitMix64::new(seed);
    for i in 0..n {
        let j = i + rng.below(idx.len() - i);
        idx.swap(i, j);
    }
    let mut keep = idx[..n].to_vec();
    keep.sort_unstable();
    let mut slots: Vec<Option<Trial>> = trials.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The outcome of one trial, as written to the results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// The trial's id.
    pub id: String,
    /// The case's id.
    pub case_id: String,
    /// The case's category.
    pub category: String,
    /// The case's family.
    pub family: String,
    /// The case's language.
    pub language: String,
    /// The converter chain (`none`, `base64`, `roleplay+base64` …).
    pub converters: String,
    /// Whether the attack succeeded; absent when the target failed.
    pub success: Option<bool>,
    /// Why, in a few words, or the error.
    pub reason: String,
    /// The start of the reply.
    pub reply: String,
    /// Milliseconds the target took (the last attempt).
    pub latency_ms: f64,
    /// Attempts made.
    pub attempts: u32,
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Trials in flight at once.
    pub concurrency: usize,
    /// Most requests started per second (none: no pacing).
    pub rate_per_sec: Option<f64>,
    /// Extra attempts after a retryable failure.
    pub retries: u32,
    /// Completion limit per request.
    pub max_tokens: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { concurrency: 4, rate_per_sec: None, retries: 2, max_tokens: 512 }
    }
}

/// Spaces request starts `1/rate` seconds apart.
pub(crate) struct Pacer {
    next: tokio::sync::Mutex<Instant>,
    gap: Duration,
}

impl Pacer {
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.gap;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Runs the trials and calls `on_result` as each finishes (in completion
/// order); returns the results in plan order.
pub async fn run(
    trials: &[Trial],
    target: &dyn Target,
    scenario: &Scenario,
    judge: &Judge<'_>,
    options: &RunOptions,
    mut on_result: impl FnMut(&TrialResult),
) -> Vec<TrialResult> {
    let pacer = options
        .rate_per_sec
        .filter(|r| *r > 0.0)
        .map(|r| Pacer { next: tokio::sync::Mutex::new(Instant::now()), gap: Duration::from_secs_f64(1.0 / r) });
    let pacer = pacer.as_ref();
    let mut results: Vec<Option<TrialResult>> = vec![None; trials.len()];
    let mut stream = futures_util::stream::iter(trials.iter().enumerate())
        .map(|(i, trial)| async move { (i, one(trial, target, scenario, judge, options, pacer).await) })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((i, result)) = stream.next().await {
        on_result(&result);
        results[i] = Some(result);
    }
    results.into_iter().flatten().collect()
}

async fn one(
    trial: &Trial,
    target: &dyn Target,
    scenario: &Scenario,
    judge: &Judge<'_>,
    options: &RunOptions,
    pacer: Option<&Pacer>,
) -> TrialResult {
    let case = &trial.case;
    let (user, document) = match &case.document {
        Some(doc) => (case.prompt.clone(), Some(trial.chain.apply(doc))),
        None => (trial.chain.apply(&case.prompt), None),
    };
    let request = Request {
        system: scenario.system.clone(),
        user,
        document,
        tools: scenario.tools.clone(),
        max_tokens: options.max_tokens,
    };
    let (outcome, attempts) = send_with_retries(target, &request, options.retries, pacer).await;
    let base = |success: Option<bool>, reason: String, reply: String, took: Duration| TrialResult {
        id: trial.id.clone(),
        case_id: case.id.clone(),
        category: case.category.clone(),
        family: case.family.clone(),
        language: case.language.clone(),
        converters: trial.chain.name(),
        success,
        reason,
        reply,
        latency_ms: took.as_secs_f64() * 1000.0,
        attempts,
    };
    match outcome {
        Ok((reply, took)) => {
            let verdict = judge.judge_reply(case, &request.user_with_document(), &reply).await;
            let mut excerpt: String = reply.text.chars().take(300).collect();
            if !reply.tool_calls.is_empty() {
                excerpt.push_str(&format!(" [tool calls: {}]", reply.tool_calls.join(", ")));
            }
            base(Some(verdict.success), verdict.reason, excerpt, took)
        }
        Err((e, took)) => base(None, e.message, String::new(), took),
    }
}

/// Sends `request`, trying again after a retryable failure (its
/// `Retry-After`, else a doubling backoff from 200 ms) up to `retries`
/// more times; paced when a pacer is given. Returns the outcome with the
/// time of the last attempt, and the number of attempts.
#[allow(clippy::type_complexity)]
pub(crate) async fn send_with_retries(
    target: &dyn Target,
    request: &Request,
    retries: u32,
    pacer: Option<&Pacer>,
) -> (Result<(Reply, Duration), (TargetError, Duration)>, u32) {
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(200);
    loop {
        attempts += 1;
        if let Some(p) = pacer {
            p.wait().await;
        }
        let started = Instant::now();
        match target.send(request).await {
            Ok(reply) => return (Ok((reply, started.elapsed())), attempts),
            Err(e) if e.retryable && attempts <= retries => {
                tokio::time::sleep(e.retry_after.unwrap_or(backoff).min(Duration::from_secs(30))).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return (Err((e, started.elapsed())), attempts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converters::Converter;
    use crate::suite::builtin;

    #[test]
    fn plans_cross_cases_with_chains_and_samples_are_deterministic() {
        let cases = builtin();
        let chains = Chain::combinations(&[Converter::Base64, Converter::Roleplay], 1);
        let trials = plan(&cases, &chains);
        assert_eq!(trials.len(), cases.len() * 3);
        assert_eq!(trials[1].id, format!("{}/base64", cases[0].id));
        let a: Vec<String> = sample(trials.clone(), 20, 9).into_iter().map(|t| t.id).collect();
        let b: Vec<String> = sample(trials.clone(), 20, 9).into_iter().map(|t| t.id).collect();
        let c: Vec<String> = sample(trials, 20, 10).into_iter().map(|t| t.id).collect();
        assert_eq!(a.len(), 20);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
