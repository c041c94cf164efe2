//! Sentinel: watches LLM telemetry for anomalies.
//!
//! Events ([`event::TelemetryEvent`], seed 002's shape) go through the
//! configured [`detector::Detector`]s; their findings become anomalies,
//! deduplicated per detector, entity and window, with the lifecycle
//! ACTIVE → ACKNOWLEDGED → RESOLVED or SUPPRESSED. Pure logic: no network,
//! no storage, time passed in (see [`detector::Clock`]).
#![deny(missing_docs)]

pub mod detector;
pub mod detectors;
pub mod event;
