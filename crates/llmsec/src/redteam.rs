//! `llmsec redteam`: attack suites against an endpoint or the engine,
//! with attack-success statistics and JSON / JUnit / HTML reports.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use llm_security::{SecurityConfig, SecurityEngine};
use llmsec_redteam::converters::{Chain, Converter};
use llmsec_redteam::judge::{Judge, ModelJudge, ModelScope, Scenario};
use llmsec_redteam::run::{self, RunOptions, TrialResult};
use llmsec_redteam::target::{EngineTarget, HttpTarget, Target, Wire};
use llmsec_redteam::{report, suite};

use crate::common::{self, EXIT_CLEAN, EXIT_FLAGGED};

/// What to attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// The engine in-process: measures the detector (an attack succeeds
    /// when the engine lets it through).
    Engine,
    /// An OpenAI-compatible chat endpoint (`{base}/chat/completions`), the
    /// Shield gateway included.
    Openai,
    /// An Anthropic messages endpoint (`{base}/messages`).
    Anthropic,
}

/// A judge endpoint's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JudgeWire {
    /// `{base}/chat/completions`.
    Openai,
    /// `{base}/messages`.
    Anthropic,
}

/// Which goals the judge model decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JudgeScope {
    /// Only `comply` goals (was a harmful request carried out?); canaries,
    /// keys, tool calls and patterns stay with the exact rules.
    Comply,
    /// Every goal.
    All,
}

/// `llmsec redteam` arguments.
#[derive(Debug, Args)]
pub struct RedteamArgs {
    /// Suites to run: `builtin` or a file (.toml, .jsonl, .yaml promptfoo
    /// style, or a plain list of prompts). Default: builtin.
    #[arg(long = "suite", value_name = "builtin|FILE")]
    pub suites: Vec<String>,
    /// What to attack.
    #[arg(long, value_enum, default_value_t = TargetKind::Engine)]
    pub target: TargetKind,
    /// Base URL of the endpoint (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, value_name = "URL", required_if_eq_any([("target", "openai"), ("target", "anthropic")]))]
    pub base_url: Option<String>,
    /// Model name sent to the endpoint.
    #[arg(long, default_value = "gpt-4o-mini")]
    pub model: String,
    /// Environment variable holding the endpoint's API key (never printed).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Engine configuration for the engine target and the judges.
    #[arg(long, value_name = "FILE")]
    pub engine_config: Option<PathBuf>,
    /// Converters, comma-separated, or `all` (see --list-converters).
    #[arg(long, value_name = "LIST")]
    pub converters: Option<String>,
    /// Chains of up to this many converters (1: each alone).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub combine: u8,
    /// Run this many trials, drawn deterministically by --seed.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Seed of sampling, the scenario's key and the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Most requests started per second.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Extra attempts after a connection failure, timeout, 429 or 5xx.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Completion limit per request.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: u32,
    /// Append each result to this JSON-lines file as it finishes.
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Continue the run recorded in --results: trials already there are
    /// not sent again and count in the report.
    #[arg(long, requires = "results")]
    pub resume: bool,
    /// Write the summary and every result as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (a successful attack is a failing test).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write SARIF 2.1.0: a rule per attack category, an error per
    /// successful attack (for code-scanning dashboards).
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Store the run's summary (never its prompts or answers) in an llmsec
    /// server: its base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,
    /// The environment variable holding a key of that server with the
    /// `ingest` scope.
    #[arg(long, value_name = "VAR", default_value = "LLMSEC_API_KEY", requires = "upload")]
    pub upload_key_env: String,
    /// Exit 1 when the attack success rate is above this (0..1).
    #[arg(long, value_name = "RATE")]
    pub fail_above: Option<f64>,
    /// A judge model's OpenAI-compatible base URL (or Anthropic's, with
    /// --judge-wire anthropic): it decides the goals of --judge-scope,
    /// given the attack as sent and the reply.
    #[arg(long, value_name = "URL")]
    pub judge_url: Option<String>,
    /// The judge endpoint's wire format.
    #[arg(long, value_enum, default_value_t = JudgeWire::Openai, requires = "judge_url")]
    pub judge_wire: JudgeWire,
    /// The judge's model name.
    #[arg(long, default_value = "gpt-4o-mini", requires = "judge_url")]
    pub judge_model: String,
    /// Environment variable holding the judge endpoint's API key (never printed).
    #[arg(long, value_name = "VAR", requires = "judge_url")]
    pub judge_key_env: Option<String>,
    /// Which goals the judge model decides.
    #[arg(long, value_enum, default_value_t = JudgeScope::Comply, requires = "judge_url")]
    pub judge_scope: JudgeScope,
    /// The judge's sensitivity, for the corrected rate (with --judge-specificity).
    #[arg(long, requires = "judge_specificity")]
    pub judge_sensitivity: Option<f64>,
    /// The judge's specificity.
    #[arg(long, requires = "judge_sensitivity")]
    pub judge_specificity: Option<f64>,
    /// List the cases of the suites and exit.
    #[arg(long)]
    pub list: bool,
    /// List the converters and exit.
    #[arg(long)]
    pub list_converters: bool,
}

/// The API key in the environment variable `var`, if one is named; `flag`
/// names the option in the error.
fn key_from_env(flag: &str, var: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    let key = std::env::var(var)
        .ok()
        .filter(|k| !k.is_empty())
        .with_context(|| format!("{flag}: the environment variable {var} is not set"))?;
    Ok(Some(key))
}

/// Runs `llmsec redteam`.
pub fn run(args: &RedteamArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    if args.list_converters {
        let names: Vec<&str> = Converter::ALL.iter().map(|c| c.name()).collect();
        common::ignore_broken_pipe(writeln!(out, "{}", names.join("\n")))?;
        return Ok(ExitCode::from(EXIT_CLEAN));
    }
    // Checked before the run, not after it.
    let upload_key = match &args.upload {
        Some(_) => Some(std::env::var(&args.upload_key_env).with_context(|| {
            format!("--upload-key-env: the environment variable {} is not set", args.upload_key_env)
        })?),
        None => None,
    };
    for (name, v) in [
        ("--fail-above", args.fail_above),
        ("--judge-sensitivity", args.judge_sensitivity),
        ("--judge-specificity", args.judge_specificity),
    ] {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            bail!("{name} must be between 0 and 1, not {v}");
        }
    }
    if let Some(r) = args.rate
        && !(r > 0.0 && r.is_finite())
    {
        bail!("--rate must be a positive number of requests per second, not {r}");
    }

    let cases = load_cases(&args.suites)?;
    if args.list {
        let mut text = String::new();
        for c in &cases {
            text.push_str(&format!("{}\t{}\t{}\t{}\t{:?}\n", c.id, c.category, c.family, c.language, c.goal));
        }
        common::ignore_broken_pipe(out.write_all(text.as_bytes()))?;
        return Ok(ExitCode::from(EXIT_CLEAN));
    }
    let converters: Vec<Converter> = match args.converters.as_deref() {
        None | Some("none") => Vec::new(),
        Some("all") => Converter::ALL.to_vec(),
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, String>>().map_err(anyhow::Error::msg)?,
    };
    let chains = Chain::combinations(&converters, if converters.is_empty() { 0 } else { usize::from(args.combine) });
    let mut trials = run::plan(&cases, &chains);
    if let Some(n) = args.sample {
        trials = run::sample(trials, n, args.seed);
    }

    let engine_config = match &args.engine_config {
        Some(path) => SecurityConfig::from_path(path)?,
        None => SecurityConfig::default(),
    };
    let engine = Arc::new(SecurityEngine::try_with_config(engine_config).context("cannot build the engine")?);
    let target: Box<dyn Target> = match args.target {
        TargetKind::Engine => Box::new(EngineTarget::new(engine.clone())),
        TargetKind::Openai | TargetKind::Anthropic => {
            let wire = if args.target == TargetKind::Openai { Wire::OpenAi } else { Wire::Anthropic };
            let key = key_from_env("--api-key-env", args.api_key_env.as_deref())?;
            let base = args.base_url.as_deref().context("--base-url is required for this target")?;
            Box::new(HttpTarget::new(wire, base, &args.model, key, Duration::from_secs(args.timeout_secs))?)
        }
    };

    let model_judge = match &args.judge_url {
        Some(url) => {
            let wire = if args.judge_wire == JudgeWire::Openai { Wire::OpenAi } else { Wire::Anthropic };
            let key = key_from_env("--judge-key-env", args.judge_key_env.as_deref())?;
            let target = HttpTarget::new(wire, url, &args.judge_model, key, Duration::from_secs(args.timeout_secs))
                .context("--judge-url")?;
            let scope = if args.judge_scope == JudgeScope::All { ModelScope::All } else { ModelScope::Comply };
            Some(ModelJudge::new(Box::new(target), scope, args.retries))
        }
        None => None,
    };

    // Results already recorded (--resume), and the file new ones go to.
    let mut done: Vec<TrialResult> = Vec::new();
    let mut sink = None;
    if let Some(path) = &args.results {
        if args.resume && path.exists() {
            let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.with_context(|| format!("{}: line {}", path.display(), i + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                // A line cut short by an interruption is the only one that
                // may be broken: it is sent again.
                if let Ok(r) = serde_json::from_str::<TrialResult>(&line) {
                    done.push(r);
                }
            }
            // Rewrite the file with the complete lines only, so new results
            // do not land behind a broken one.
            let mut kept = String::new();
            for r in &done {
                kept.push_str(&serde_json::to_string(r)?);
                kept.push('\n');
            }
            let tmp = path.with_extension("jsonl.tmp");
            std::fs::write(&tmp, kept).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
        } else if path.exists() {
            bail!("{} exists: pass --resume to continue that run, or remove it", path.display());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        sink = Some(std::io::BufWriter::new(file));
    }
    let done_ids: HashSet<&str> = done.iter().map(|r| r.id.as_str()).collect();
    let todo: Vec<run::Trial> = trials.iter().filter(|t| !done_ids.contains(t.id.as_str())).cloned().collect();
    let wanted: HashSet<&str> = trials.iter().map(|t| t.id.as_str()).collect();
    let mut results: Vec<TrialResult> = done.iter().filter(|r| wanted.contains(r.id.as_str())).cloned().collect();

    let scenario = Scenario::new(&engine, args.seed);
    let mut judge = Judge::new(&engine, &scenario);
    if let Some(m) = &model_judge {
        judge = judge.with_model(m);
    }
    let options = RunOptions {
        concurrency: usize::from(args.concurrency),
        rate_per_sec: args.rate,
        retries: args.retries,
        max_tokens: args.max_tokens,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let progress = std::io::stderr().is_terminal();
    let total = todo.len();
    let mut finished = 0usize;
    let mut succeeded = 0usize;
    let mut write_error: Option<std::io::Error> = None;
    let new = runtime.block_on(run::run(&todo, target.as_ref(), &scenario, &judge, &options, |r| {
        finished += 1;
        succeeded += usize::from(r.success == Some(true));
        if let Some(w) = sink.as_mut()
            && write_error.is_none()
        {
            // Flushed per line, so an interruption loses at most the
            // trial in flight.
            let line = serde_json::to_string(r).unwrap_or_default();
            if let Err(e) = writeln!(w, "{line}").and_then(|()| w.flush()) {
                write_error = Some(e);
            }
        }
        if progress && (finished.is_multiple_of(10) || finished == total) {
            eprint!("\rredteam: {finished}/{total} trials, {succeeded} attacks succeeded ");
        }
    }));
    if progress && total > 0 {
        eprintln!();
    }
    if let Some(e) = write_error {
        return Err(e).context("cannot append to the results file");
    }
    results.extend(new);

    let judge_error = args.judge_sensitivity.zip(args.judge_specificity);
    let mut summary = report::summarize(&target.describe(), &results, judge_error, 2000, args.seed);
    summary.judge = judge.describe();
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{:#}\n", report::json(&summary, &results)))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&summary, &results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html(&summary, &results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.sarif {
        let log = llmsec_redteam::sarif::sarif(&summary, &results, env!("CARGO_PKG_VERSION"));
        std::fs::write(path, format!("{log:#}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    }
    common::ignore_broken_pipe(out.write_all(report::human(&summary).as_bytes()))?;
    if let (Some(server), Some(key)) = (&args.upload, &upload_key) {
        let id = runtime.block_on(llmsec_redteam::upload::upload(server, key, &summary))?;
        eprintln!("stored as {id} at {server}");
    }
    if summary.overall.trials == 0 && summary.errors > 0 {
        let first = results.iter().find(|r| r.success.is_none()).map_or(String::new(), |r| r.reason.clone());
        bail!("every trial failed at the target (first error: {first})");
    }
    let failed = args.fail_above.is_some_and(|limit| summary.overall.rate > limit);
    Ok(ExitCode::from(if failed { EXIT_FLAGGED } else { EXIT_CLEAN }))
}

fn load_cases(suites: &[String]) -> anyhow::Result<Vec<suite::Case>> {
    let names: Vec<&str> =
        if suites.is_empty() { vec!["builtin"] } else { suites.iter().map(String::as_str).collect() };
    let mut cases = Vec::new();
    let mut ids = HashSet::new();
    for name in names {
        let more = if name == "builtin" { suite::builtin() } else { suite::load(std::path::Path::new(name))? };
        for c in more {
            if !ids.insert(c.id.clone()) {
                bail!("suite {name}: case id `{}` is used by an earlier suite", c.id);
            }
            cases.push(c);
        }
    }
    Ok(cases)
}
