//! The REST routes, one module per resource.

pub mod admin;
pub mod anomalies;
pub mod campaigns;
pub mod detectors;
pub mod events;
pub mod insights;
pub mod otlp;
pub mod privacy;
pub mod quarantine;
pub mod redteam;
pub mod replay;
pub mod reports;
pub mod samples;
pub mod security;
pub mod series;
pub mod telemetry;
pub mod webhooks;
