//! End-to-end behaviour of the server: REST and GraphQL through `oneshot`,
//! WebSocket and webhooks over real sockets, on SQLite; the same core
//! checks on PostgreSQL with the `postgres` feature.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod auth;
mod campaigns;
mod commit_order;
mod common;
mod dashboard;
mod deploy;
mod egress;
mod encryption;
mod exported_metrics;
mod graphql;
mod grpc;
mod insights;
mod kafka;
mod limits;
mod notify;
mod otlp;
mod plugins;
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
mod privacy;
mod profile;
mod quarantine;
mod redact;
mod redteam;
mod reports;
mod rest;
mod risk;
#[cfg(feature = "s3")]
mod s3;
mod sentinel;
mod shield;
mod sinks;
mod tenants;
mod webhooks;
