//! `llmsec report`: the compliance report of a time range, or the posture
//! alone, from the same configuration and store as `llmsec serve`, as JSON
//! or one self-contained HTML page (docs/REPORTS.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use llmsec_report::{Evidence, RedTeam, ReportRequest, html};
use llmsec_store::{Millis, now_millis};

use crate::common::{EXIT_CLEAN, ignore_broken_pipe};
use crate::serve::{StoreArgs, require_database};

/// Output format of `llmsec report`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// The documented JSON shape.
    #[default]
    Json,
    /// One self-contained HTML page.
    Html,
}

/// `llmsec report processing`.
#[derive(Debug, Subcommand)]
pub enum ReportWhat {
    /// The record of processing (GDPR Art. 30 style): each stored kind's
    /// purpose, lawful basis, data, retention and recipients, and the
    /// security measures in force (encryption at rest among them).
    Processing(ProcessingArgs),
}

/// Output format of `llmsec report processing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ProcessingFormat {
    /// The JSON shape of `GET /api/v1/privacy/processing`.
    #[default]
    Json,
    /// A Markdown page.
    Markdown,
}

/// Arguments of `llmsec report processing`.
#[derive(Debug, Args)]
pub struct ProcessingArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ProcessingFormat,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The tenant described (its webhook subscriptions are recipients).
    #[arg(long, value_name = "TENANT", default_value = llmsec_server::config::DEFAULT_TENANT)]
    pub tenant: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `llmsec report processing`.
fn processing(args: &ProcessingArgs) -> anyhow::Result<ExitCode> {
    llmsec_server::service::check_tenant("--tenant", &args.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let config = args.store.load()?;
    require_database(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let record = runtime.block_on(async {
        let store = llmsec_server::open_store(&config).await.context("cannot open the database")?;
        llmsec_server::service::privacy::processing_from(&config, &store, &args.tenant)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    let text = match args.format {
        ProcessingFormat::Json => serde_json::to_string_pretty(&record)? + "\n",
        ProcessingFormat::Markdown => llmsec_server::service::privacy::markdown(&record),
    };
    match &args.out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("--out {}", p.display()))?,
        None => ignore_broken_pipe(std::io::stdout().lock().write_all(text.as_bytes()))?,
    }
    Ok(ExitCode::from(EXIT_CLEAN))
}

/// Arguments of `llmsec report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// `processing`: the record of processing instead of the report.
    #[command(subcommand)]
    pub what: Option<ReportWhat>,
    /// Start of the range (inclusive), RFC 3339: 2026-01-01T00:00:00Z.
    #[arg(long, value_name = "TIME", required_unless_present = "posture_only")]
    pub from: Option<String>,
    /// End of the range (exclusive), RFC 3339.
    #[arg(long, value_name = "TIME", required_unless_present = "posture_only")]
    pub to: Option<String>,
    /// Only the posture: no range, no summary or appendix.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub posture_only: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only these frameworks (comma-separated): gdpr, ccpa, hipaa, sox,
    /// pci_dss, iso27001, nist_csf, soc2.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub framework: Option<Vec<String>>,
    /// A red-team JSON report (`llmsec redteam --format json`) to include
    /// and to judge the security-testing controls by.
    #[arg(long, value_name = "REPORT.json")]
    pub redteam: Option<PathBuf>,
    /// The tenant reported on.
    #[arg(long, value_name = "TENANT", default_value = llmsec_server::config::DEFAULT_TENANT)]
    pub tenant: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Parses an RFC 3339 time given to `flag`.
pub(crate) fn parse_time(flag: &str, v: &str) -> anyhow::Result<Millis> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| anyhow::anyhow!("{flag}: {v:?} is not an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})"))
}

/// Runs `llmsec report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(ReportWhat::Processing(p)) = &args.what {
        return processing(p);
    }
    // Check every argument before opening anything.
    let range = match (&args.from, &args.to) {
        (Some(from), Some(to)) => {
            let (from, to) = (parse_time("--from", from)?, parse_time("--to", to)?);
            anyhow::ensure!(to > from, "--to must be after --from");
            Some((from, to))
        }
        _ => None,
    };
    let frameworks: Option<Vec<String>> =
        args.framework.as_ref().map(|l| l.iter().map(|f| f.trim().to_ascii_lowercase()).collect());
    if let Some(list) = &frameworks {
        let known = llmsec_report::posture::framework_ids();
        if let Some(bad) = list.iter().find(|f| !known.contains(&f.as_str())) {
            anyhow::bail!("--framework: unknown framework {bad:?}; known: {}", known.join(", "));
        }
    }
    let redteam = match &args.redteam {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("--redteam {}", p.display()))?;
            Some(RedTeam::from_json(&text).with_context(|| format!("--redteam {}", p.display()))?)
        }
        None => None,
    };
    llmsec_server::service::check_tenant("--tenant", &args.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let config = args.store.load()?;
    let detectors = config.sentinel.load().map_err(anyhow::Error::msg)?.detectors.iter().filter(|d| d.enabled).count();
    require_database(&config)?;
    let description = llmsec_server::service::reports::configuration(&config, detectors);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let text = runtime.block_on(async {
        let store = llmsec_server::open_store(&config).await.context("cannot open the database")?;
        let evidence = Evidence::gather(&store, &args.tenant, description, redteam, now_millis()).await?;
        let text = match range {
            None => {
                let p = llmsec_report::posture::evaluate(evidence, frameworks.as_deref())?;
                match args.format {
                    ReportFormat::Json => serde_json::to_string_pretty(&p)? + "\n",
                    ReportFormat::Html => html::posture(&p),
                }
            }
            Some((from, to)) => {
                let req = ReportRequest { from, to, frameworks };
                let r = llmsec_report::report::build(&store, evidence, &req).await?;
                match args.format {
                    ReportFormat::Json => serde_json::to_string_pretty(&r)? + "\n",
                    ReportFormat::Html => html::report(&r),
                }
            }
        };
        anyhow::Ok(text)
    })?;
    match &args.out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("--out {}", p.display()))?,
        None => ignore_broken_pipe(std::io::stdout().lock().write_all(text.as_bytes()))?,
    }
    Ok(ExitCode::from(EXIT_CLEAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_name_their_flag() {
        assert_eq!(parse_time("--from", "2026-01-01T00:00:00Z").ok(), Some(1_767_225_600_000));
        let e = parse_time("--to", "yesterday").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("--to: \"yesterday\" is not an RFC 3339 time"), "{e}");
    }
}
