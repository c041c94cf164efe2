//! `llmsec audit verify` and `llmsec webhook verify`: checks an operator
//! or a webhook receiver runs from the shell.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use llmsec_store::Store;
use llmsec_store::audit::verify_chain;

use crate::common::{EXIT_CLEAN, EXIT_FLAGGED};
use crate::serve::{StoreArgs, require_database};

/// `llmsec audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the admin audit log's hash chain; exit 1 if it is broken.
    Verify(AuditVerifyArgs),
}

/// Where the database is, as `llmsec serve` takes it.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `llmsec audit`.
pub fn audit(cmd: &AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify(args) = cmd;
    let config = args.store.load()?;
    require_database(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let store = llmsec_server::open_store(&config).await.context("cannot open the database")?;
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            let page = store.audit_log(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            entries.extend(page);
        }
        let mut out = std::io::stdout().lock();
        match verify_chain(&entries) {
            Ok(n) => {
                let head = entries.last().map_or("-", |e| e.hash.as_str());
                writeln!(out, "audit log intact: {n} entries, head {head}")?;
                Ok(ExitCode::from(EXIT_CLEAN))
            }
            Err(e) => {
                writeln!(out, "audit log BROKEN: {e}")?;
                Ok(ExitCode::from(EXIT_FLAGGED))
            }
        }
    })
}

/// `llmsec webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Check a delivery's X-Llmsec-Signature against its raw body; exit 1 if it does not verify.
    Verify(WebhookVerifyArgs),
}

/// What a receiver got.
#[derive(Debug, Args)]
pub struct WebhookVerifyArgs {
    /// The shared secret [env: LLMSEC_WEBHOOK_SECRET].
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
    /// The X-Llmsec-Signature header value (`t=…,v1=…`).
    #[arg(long, value_name = "HEADER")]
    pub signature: String,
    /// The raw body; read from stdin when omitted.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// Seconds of age or clock skew accepted.
    #[arg(long, default_value_t = 300)]
    pub tolerance: i64,
    /// The time to check against, in Unix seconds [default: now].
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<i64>,
}

/// Runs `llmsec webhook`.
pub fn webhook(cmd: &WebhookCommand) -> anyhow::Result<ExitCode> {
    let WebhookCommand::Verify(args) = cmd;
    let secret = match &args.secret {
        Some(s) => s.clone(),
        None => std::env::var("LLMSEC_WEBHOOK_SECRET").context("give --secret or set LLMSEC_WEBHOOK_SECRET")?,
    };
    let mut body = Vec::new();
    match &args.body {
        Some(p) => body = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => {
            std::io::stdin().read_to_end(&mut body).context("cannot read the body from stdin")?;
        }
    }
    let now = args.now.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let mut out = std::io::stdout().lock();
    match llm_security::webhook::verify(&secret, &args.signature, &body, now, args.tolerance) {
        Ok(()) => {
            writeln!(out, "signature valid")?;
            Ok(ExitCode::from(EXIT_CLEAN))
        }
        Err(e) => {
            writeln!(out, "signature INVALID: {e}")?;
            Ok(ExitCode::from(EXIT_FLAGGED))
        }
    }
}
