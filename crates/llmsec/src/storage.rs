//! `llmsec storage rekey`: after a key rotation, re-encrypts stored
//! prompt and completion text to the primary key of `[storage.encryption]`
//! (and encrypts text stored before encryption was turned on), in batches,
//! each its own transaction. Rows already under the primary key are
//! skipped, so an interrupted run is resumed by running it again and a
//! second run rewrites nothing. Safe to run while the server runs.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::common::{EXIT_CLEAN, ignore_broken_pipe};
use crate::serve::{StoreArgs, require_database};

/// `llmsec storage …`.
#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Re-encrypt stored text to the primary key of [storage.encryption]
    /// (resumable; rows already under it are skipped).
    Rekey(RekeyArgs),
}

/// Output format of `llmsec storage rekey`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RekeyFormat {
    /// Progress and counts in words.
    #[default]
    Human,
    /// One JSON line of counts.
    Json,
}

/// Arguments of `llmsec storage rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Rows per transaction (1-1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: RekeyFormat,
}

/// Runs `llmsec storage`.
pub fn run(cmd: &StorageCommand) -> anyhow::Result<ExitCode> {
    let StorageCommand::Rekey(args) = cmd;
    let config = args.store.load()?;
    anyhow::ensure!(
        config.storage.encryption.is_some(),
        "[storage.encryption] is not configured: there is no key to re-encrypt to"
    );
    require_database(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let human = args.format == RekeyFormat::Human;
    let (kid, done) = runtime.block_on(async {
        let store = llmsec_server::open_store(&config).await.context("cannot open the database")?;
        let kid = store.cipher().map(|c| c.primary_kid().to_owned()).unwrap_or_default();
        let done = store
            .rekey(args.batch, |p| {
                if human {
                    eprintln!(
                        "… {} events, {} telemetry events and {} held items read, {}, {} and {} re-encrypted",
                        p.events_scanned,
                        p.telemetry_scanned,
                        p.quarantine_scanned,
                        p.events_rewritten,
                        p.telemetry_rewritten,
                        p.quarantine_rewritten
                    );
                }
            })
            .await
            .context("rekey stopped (run it again to resume)")?;
        anyhow::Ok((kid, done))
    })?;
    let mut out = std::io::stdout().lock();
    let line = match args.format {
        RekeyFormat::Json => serde_json::json!({
            "key_id": kid,
            "events_scanned": done.events_scanned,
            "events_rewritten": done.events_rewritten,
            "telemetry_scanned": done.telemetry_scanned,
            "telemetry_rewritten": done.telemetry_rewritten,
            "quarantine_scanned": done.quarantine_scanned,
            "quarantine_rewritten": done.quarantine_rewritten,
        })
        .to_string(),
        RekeyFormat::Human => format!(
            "re-encrypted to key {kid}: {} of {} security events, {} of {} telemetry events, {} of {} held items",
            done.events_rewritten,
            done.events_scanned,
            done.telemetry_rewritten,
            done.telemetry_scanned,
            done.quarantine_rewritten,
            done.quarantine_scanned
        ),
    };
    ignore_broken_pipe(writeln!(out, "{line}"))?;
    Ok(ExitCode::from(EXIT_CLEAN))
}
