//! Compliance posture and security reports for llm-security.
//!
//! The posture evaluates one tenant's deployment against control lists of
//! GDPR, CCPA, HIPAA, SOX, PCI DSS, ISO/IEC 27001, NIST CSF and SOC 2.
//! Each control maps to one of a small set of checks ([`posture::CHECKS`]:
//! retention, storage redaction, erasure, the audit chain, key scopes, TLS,
//! encryption at rest …), and each check is decided from [`Evidence`]: a
//! plain [`Configuration`] that the server or the CLI describes, plus
//! what [`Evidence::gather`] reads from the [`llmsec_store::Store`] (keys,
//! the audit chain verified, erasures logged, events past retention,
//! webhooks, anomaly handling times). A control is met, not met, or not
//! applicable, always with the evidence in words.
//!
//! The report ([`report::build`]) adds, for a time range, an executive
//! summary (volumes, blocks, top threat categories, a daily trend,
//! anomalies with MTTA/MTTR) and a technical appendix (categories by
//! severity, scanners, anomalies per detector, the newest blocked events
//! with their stored redacted text only, red-team results). Both render as
//! JSON (serde, the shape in docs/REPORTS.md) and as one self-contained
//! HTML page ([`html`]).
//!
//! The crate knows nothing of HTTP or of the server's configuration type:
//! `llmsec-server` and the `llmsec` binary build the [`Configuration`].
//!
//! ```
//! use llmsec_report::{Configuration, Evidence, Status, posture};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("llmsec-report-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let store = llmsec_store::SqlStore::connect(&format!("sqlite://{}", dir.join("doc.db").display())).await?;
//!     let config = Configuration {
//!         listen: "127.0.0.1:8080".into(),
//!         tls: false,
//!         encryption_at_rest: false,
//!         storage_input: "redacted".into(),
//!         retention_days: 30,
//!         retention_purge_running: true,
//!         rate_limit_per_sec: 20.0,
//!         egress_allow: vec![],
//!         detectors_enabled: 0,
//!         database: "sqlite".into(),
//!     };
//!     let evidence = Evidence::gather(&store, "acme", config, None, llmsec_store::now_millis()).await?;
//!     let p = posture::evaluate(evidence, Some(&["hipaa".to_owned()]))?;
//!     let transmission = p.frameworks[0].controls.iter().find(|c| c.id == "164.312(e)(1)");
//!     assert_eq!(transmission.map(|c| c.status), Some(Status::NotMet));
//!     let page = llmsec_report::html::posture(&p);
//!     assert!(page.contains("HIPAA") && !page.contains("<script"));
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod evidence;
pub mod html;
pub mod posture;
pub mod redteam;
pub mod report;
pub mod time;

pub use evidence::{Configuration, Evidence};
pub use posture::{Posture, Status};
pub use redteam::RedTeam;
pub use report::{Report, ReportRequest};

/// What went wrong making a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] llmsec_store::StoreError),
    /// A framework name this build does not know.
    #[error("unknown framework {name:?}; known: {known}")]
    UnknownFramework {
        /// The name given.
        name: String,
        /// The names known, comma-separated.
        known: String,
    },
    /// The time range is empty, reversed or too long.
    #[error("{0}")]
    Range(String),
    /// The red-team report could not be read.
    #[error("red-team report: {0}")]
    RedTeam(String),
}
