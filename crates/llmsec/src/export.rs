//! `llmsec export s3`: a one-shot backfill of a time range to the bucket of
//! the config's `[export.s3]`, through the same exporter `llmsec serve`
//! runs periodically (docs/INTEGRATIONS.md, "S3 exports").

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use llmsec_server::config::ExportWhat;
use llmsec_server::export::{DescribeConfig, ExportPlan, Exporter};
use llmsec_store::{Store, now_millis};

use crate::common::{EXIT_CLEAN, ignore_broken_pipe};
use crate::report::parse_time;
use crate::serve::{ServeArgs, load_config, require_database};

/// `llmsec export …`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Export a time range of events, anomalies and reports to the bucket
    /// of [export.s3], now (a backfill); the periodic positions stay as they are.
    S3(S3Args),
}

/// Arguments of `llmsec export s3`.
#[derive(Debug, Args)]
pub struct S3Args {
    /// Start of the range (inclusive), RFC 3339: 2026-01-01T00:00:00Z.
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the range (exclusive), RFC 3339.
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Only these (comma-separated): events, anomalies, reports [default: the config's `what`].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub what: Option<Vec<String>>,
    /// Server configuration file with an [export.s3] section.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Directory of the SQLite database [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Runs `llmsec export`.
pub fn run(cmd: &ExportCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExportCommand::S3(args) => s3(args),
    }
}

fn parse_what(list: &[String]) -> anyhow::Result<Vec<ExportWhat>> {
    let mut out: Vec<ExportWhat> = Vec::new();
    for w in list {
        let w = match w.trim() {
            "events" => ExportWhat::Events,
            "anomalies" => ExportWhat::Anomalies,
            "reports" => ExportWhat::Reports,
            other => anyhow::bail!("--what: unknown {other:?}; known: events, anomalies, reports"),
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    Ok(out)
}

fn s3(args: &S3Args) -> anyhow::Result<ExitCode> {
    // Check every argument before opening anything.
    let (from, to) = (parse_time("--from", &args.from)?, parse_time("--to", &args.to)?);
    anyhow::ensure!(to > from, "--to must be after --from");
    let what = args.what.as_deref().map(parse_what).transpose()?;
    let serve = ServeArgs {
        config: Some(args.config.clone()),
        listen: None,
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        dev: false,
    };
    let config = load_config(&serve)?;
    let Some(section) = config.export.s3.clone() else {
        anyhow::bail!("--config {}: has no [export.s3] section", args.config.display());
    };
    let mut plan = ExportPlan::from_config(&section);
    if let Some(w) = what {
        plan.what = w;
    }
    let sink = llmsec_server::export::s3_sink(&section, &|k| std::env::var(k).ok())
        .map_err(|(field, message)| anyhow::anyhow!("export.s3.{field}: {message}"))?;
    let detectors = config.sentinel.load().map_err(anyhow::Error::msg)?.detectors.iter().filter(|d| d.enabled).count();
    require_database(&config)?;
    let description = llmsec_server::service::reports::configuration(&config, detectors);
    let describe: DescribeConfig = Arc::new(move |_| description.clone());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let written = runtime.block_on(async {
        let store: Arc<dyn Store> =
            Arc::new(llmsec_server::open_store(&config).await.context("cannot open the database")?);
        let exporter = Exporter::new(store, sink, plan, describe);
        anyhow::Ok(exporter.export_range(from, to, now_millis()).await?)
    })?;
    let line = serde_json::json!({"objects": written.objects, "rows": written.rows, "keys": written.keys});
    ignore_broken_pipe(writeln!(std::io::stdout().lock(), "{line}"))?;
    Ok(ExitCode::from(EXIT_CLEAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_names_its_flag() {
        let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            parse_what(&list("events,reports,events")).ok(),
            Some(vec![ExportWhat::Events, ExportWhat::Reports])
        );
        let e = parse_what(&list("events,logs")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("--what: unknown \"logs\""), "{e}");
    }
}
