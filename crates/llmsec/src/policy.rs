//! `llmsec policy`: Rego policies (policy as code) — run their tests and
//! evaluate them on an input.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use llm_security::{SecurityConfig, SecurityEngine};
use llmsec_policy::{DECISION_RULE, RegoPolicy, RequestContext};

use crate::common::{self, EXIT_CLEAN, EXIT_FLAGGED};

/// `llmsec policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the policies' `test_*` rules (like `opa test`).
    ///
    /// Exit status: 0 every test passed, 1 a test failed, 2 error.
    Test(TestArgs),
    /// Evaluate the decision (or another rule) on an input.
    ///
    /// Exit status: 0 the decision is allow, 1 sanitize or block, 2 error.
    Eval(EvalArgs),
    /// Write a starter policy from a code base: the models it uses and the
    /// tools it defines become the allow-lists.
    Init(InitArgs),
}

/// `llmsec policy init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The code base (Python, TypeScript/JavaScript and Rust sources).
    #[arg(long = "from", value_name = "DIR")]
    pub from: PathBuf,
    /// Write the policy here (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `llmsec policy test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// .rego files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `llmsec policy eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// .rego files or directories.
    #[arg(long = "policy", required = true, value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    /// The input document (JSON): `{"analysis": …, "request": …}`.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub input: Option<PathBuf>,
    /// Analyse this prompt with the engine and use the analysis as the
    /// input's `analysis` (with --request for the request part).
    #[arg(long, value_name = "PROMPT")]
    pub text: Option<String>,
    /// The request context (JSON: tenant, user, role, application, model,
    /// tools, route) to go with --text.
    #[arg(long, value_name = "JSON", requires = "text")]
    pub request: Option<String>,
    /// Engine configuration for --text.
    #[arg(long, value_name = "FILE")]
    pub engine_config: Option<PathBuf>,
    /// A query to evaluate instead of the decision (e.g.
    /// data.llmsec.decision.reasons); exit 0 whatever it gives.
    #[arg(long, value_name = "RULE")]
    pub query: Option<String>,
}

/// Runs `llmsec policy …`.
pub fn run(cmd: &PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Test(args) => test(args),
        PolicyCommand::Eval(args) => eval(args),
        PolicyCommand::Init(args) => init(args),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    if !args.from.is_dir() {
        anyhow::bail!("--from {}: not a directory", args.from.display());
    }
    let inventory = llmsec_policy::init::Inventory::scan(&args.from)
        .with_context(|| format!("cannot read {}", args.from.display()))?;
    let rego = inventory.to_rego(&args.from.display().to_string());
    // What is written must load: a starter that does not compile is a bug here.
    RegoPolicy::from_sources([("starter.rego".to_owned(), rego.clone())])?;
    match &args.out {
        Some(path) => {
            if path.exists() && !args.force {
                anyhow::bail!("{} exists: pass --force to replace it", path.display());
            }
            std::fs::write(path, &rego).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "llmsec: wrote {} ({} source files; {} models, {} tools, {} SDKs found)",
                path.display(),
                inventory.files,
                inventory.models.len(),
                inventory.tools.len(),
                inventory.sdks.len()
            );
        }
        None => common::ignore_broken_pipe(std::io::stdout().write_all(rego.as_bytes()))?,
    }
    Ok(ExitCode::from(EXIT_CLEAN))
}

fn test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let policy = RegoPolicy::from_paths(&args.paths)?;
    let outcomes = policy.run_tests();
    let mut out = String::new();
    let mut failed = 0;
    for o in &outcomes {
        match &o.result {
            Ok(()) => out.push_str(&format!("PASS data.{}.{}\n", o.package, o.rule)),
            Err(why) => {
                failed += 1;
                out.push_str(&format!("FAIL data.{}.{}: {}\n", o.package, o.rule, common::printable(why)));
            }
        }
    }
    out.push_str(&format!("{} tests, {} passed, {} failed\n", outcomes.len(), outcomes.len() - failed, failed));
    common::ignore_broken_pipe(std::io::stdout().write_all(out.as_bytes()))?;
    if outcomes.is_empty() {
        anyhow::bail!(
            "no test_* rules in {}",
            args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::from(if failed > 0 { EXIT_FLAGGED } else { EXIT_CLEAN }))
}

fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let policy = RegoPolicy::from_paths(&args.policies)?;
    let input: serde_json::Value = match (&args.input, &args.text) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?
        }
        (None, Some(prompt)) => {
            let config = match &args.engine_config {
                Some(p) => SecurityConfig::from_path(p)?,
                None => SecurityConfig::default(),
            };
            let engine = SecurityEngine::try_with_config(config).context("cannot build the engine")?;
            let analysis = engine.analyze_input_sync(prompt)?;
            let request: RequestContext = match &args.request {
                Some(json) => serde_json::from_str(json).context("--request")?,
                None => RequestContext::default(),
            };
            llmsec_policy::input(&analysis, &request)
        }
        (None, None) => serde_json::json!({}),
    };
    let (value, flagged) = match &args.query {
        Some(query) => (policy.query(query, &input)?, false),
        None => {
            let d = policy.decide(&input)?;
            let flagged = d.action != llmsec_policy::Action::Allow;
            (serde_json::to_value(d)?, flagged)
        }
    };
    let query = args.query.as_deref().unwrap_or(DECISION_RULE);
    let doc = serde_json::json!({"query": query, "result": value, "input": input});
    common::ignore_broken_pipe(writeln!(std::io::stdout(), "{doc:#}"))?;
    Ok(ExitCode::from(if flagged { EXIT_FLAGGED } else { EXIT_CLEAN }))
}
