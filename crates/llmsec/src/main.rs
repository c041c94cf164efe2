//! `llmsec`: the llm-security command line.
//!
//! A thin binary over the `llm_security` engine. `llmsec scan` checks one
//! text (an argument, a file or stdin) or a JSON-lines batch; `llmsec eval`
//! measures detection accuracy and latency on labelled JSON-lines datasets;
//! `llmsec serve` runs the REST/GraphQL service (`llmsec_server`), with the
//! Shield gateway (`llmsec_gateway`) when configured; `llmsec gateway` runs
//! the gateway alone;
//! `llmsec report` writes the compliance report or posture, and `llmsec
//! report processing` the record of processing;
//! `llmsec storage rekey` re-encrypts stored text after a key rotation;
//! `llmsec export s3` backfills a time range to the `[export.s3]` bucket;
//! `llmsec audit verify` checks the admin audit chain and `llmsec webhook
//! verify` a webhook delivery's signature.
//!
//! Exit codes follow grep: 0 when nothing changed the verdict, 1 when
//! threats did, 2 on any error. A closed stdout (broken pipe) ends the
//! output quietly and is not an error. See `docs/CLI.md`.

mod common;
mod crossval;
mod dataset;
mod eval;
mod evasions;
mod export;
mod input;
mod lint;
mod logs;
mod metrics;
mod ops;
mod policy;
mod redteam;
mod report;
mod scan;
mod serve;
mod spans;
mod storage;
mod train;
mod train_harmful;
mod train_ner;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Scan prompts and completions for prompt injection, jailbreaks, Unicode
/// attacks and leaks.
#[derive(Debug, Parser)]
#[command(
    name = "llmsec",
    version,
    max_term_width = 100,
    after_help = "Exit status: 0 nothing changed the verdict, 1 threats did (sanitize or block), 2 error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan one text, or a JSON-lines batch with --jsonl.
    ///
    /// Exit status: 0 the verdict is allow, 1 threats changed the verdict
    /// (sanitize or block), 2 error.
    Scan(scan::ScanArgs),
    /// Measure accuracy and latency on labelled JSON-lines datasets.
    Eval(eval::EvalArgs),
    /// Train the prompt-attack classifier and write its model file.
    Train(train::TrainArgs),
    /// Run the REST/GraphQL service (SQLite under ./data, 127.0.0.1:8080 by default).
    Serve(serve::ServeArgs),
    /// Run only the Shield gateway (the config's [gateway]) against the service's store.
    Gateway(serve::GatewayArgs),
    /// Lint prompt templates (rules, prompt schemas; human, JSON or SARIF).
    ///
    /// Exit status: 0 nothing at or above --fail-on, 1 findings, 2 error.
    Lint(lint::LintArgs),
    /// Red-team an endpoint or the engine: attack suites, converters,
    /// attack-success rates with 95% intervals, JSON/JUnit/HTML reports.
    ///
    /// Exit status: 0 done, 1 the success rate is above --fail-above, 2 error.
    Redteam(redteam::RedteamArgs),
    /// Rego policies (policy as code): run their tests, evaluate them.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Logs of LLM traffic: scan JSON-lines or OTLP-JSON logs of prompts
    /// and completions after the fact.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Compliance report of a time range (summary, appendix, posture
    /// against GDPR, CCPA, HIPAA, SOX, PCI DSS, ISO 27001, NIST CSF, SOC 2),
    /// or with --posture-only the posture alone; JSON or HTML.
    /// `llmsec report processing`: the record of processing (purposes,
    /// recipients, retention, security measures); JSON or Markdown.
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    Report(report::ReportArgs),
    /// Stored data: `llmsec storage rekey` re-encrypts stored text to the
    /// primary key of [storage.encryption] after a rotation.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Exports to object storage: `llmsec export s3 --from … --to …`
    /// backfills a range to the [export.s3] bucket.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Webhook receiver tools.
    #[command(subcommand)]
    Webhook(ops::WebhookCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Gateway(args) => serve::run_gateway(&args),
        Command::Lint(args) => lint::run(&args),
        Command::Redteam(args) => redteam::run(&args),
        Command::Policy(cmd) => policy::run(&cmd),
        Command::Logs(cmd) => logs::run(&cmd),
        Command::Report(args) => report::run(&args),
        Command::Storage(cmd) => storage::run(&cmd),
        Command::Export(cmd) => export::run(&cmd),
        Command::Audit(cmd) => ops::audit(&cmd),
        Command::Webhook(cmd) => ops::webhook(&cmd),
    };
    match result {
        Ok(code) => code,
        // Every write to stdout handles a closed pipe itself; this catches
        // one that slipped through, which is still not an error.
        Err(e) if common::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // If stderr is gone too there is nobody left to tell.
            let _ = writeln!(std::io::stderr(), "llmsec: error: {e:#}");
            ExitCode::from(common::EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn gateway_takes_a_config_file() {
        assert!(Cli::try_parse_from(["llmsec", "gateway", "--config", "server.toml"]).is_ok());
        assert!(Cli::try_parse_from(["llmsec", "gateway"]).is_err());
    }

    #[test]
    fn scan_text_and_file_conflict() {
        let r = Cli::try_parse_from(["llmsec", "scan", "hello", "--file", "x.txt"]);
        assert!(r.is_err());
    }

    #[test]
    fn system_prompt_needs_output_mode() {
        let r = Cli::try_parse_from(["llmsec", "scan", "--system-prompt", "be nice", "hi"]);
        assert!(r.is_err());
        let r = Cli::try_parse_from(["llmsec", "scan", "--output", "--system-prompt", "be nice", "hi"]);
        assert!(r.is_ok());
    }

    #[test]
    fn train_takes_the_classifier_flags_or_the_ner_subcommand() {
        assert!(Cli::try_parse_from(["llmsec", "train", "--data", "a", "--out", "m.bin"]).is_ok());
        assert!(Cli::try_parse_from(["llmsec", "train", "ner", "--data", "a", "--out", "m.bin"]).is_ok());
        assert!(Cli::try_parse_from(["llmsec", "train", "ner", "--data", "a", "--cross-source"]).is_ok());
        assert!(
            Cli::try_parse_from(["llmsec", "train", "ner", "--data", "a"]).is_err(),
            "needs --out, --check or --cross-source"
        );
        assert!(Cli::try_parse_from(["llmsec", "train", "ner", "--data", "a", "--out", "m", "--check", "m"]).is_err());
        assert!(Cli::try_parse_from(["llmsec", "train", "harmful", "--data", "a", "--out", "h.bin"]).is_ok());
        assert!(Cli::try_parse_from(["llmsec", "train", "harmful", "--data", "a", "--check", "h.bin"]).is_ok());
        assert!(Cli::try_parse_from(["llmsec", "train", "harmful", "--data", "a"]).is_err());
        assert!(
            Cli::try_parse_from(["llmsec", "train", "harmful", "--data", "a", "--check", "h", "--cross-source"])
                .is_err()
        );
    }

    #[test]
    fn export_s3_needs_a_range_and_a_config() {
        let ok = ["llmsec", "export", "s3", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z"];
        assert!(Cli::try_parse_from(ok.iter().chain(&["--config", "s.toml"])).is_ok());
        assert!(Cli::try_parse_from(ok).is_err(), "needs --config");
        assert!(Cli::try_parse_from(["llmsec", "export", "s3", "--config", "s.toml"]).is_err());
    }

    #[test]
    fn eval_needs_data() {
        assert!(Cli::try_parse_from(["llmsec", "eval"]).is_err());
        assert!(Cli::try_parse_from(["llmsec", "eval", "--data", "a", "--data", "b"]).is_ok());
    }
}
