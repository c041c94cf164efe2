//! End-to-end tests of the gateway over real sockets: reqwest → the server
//! with the gateway mounted → the mock upstream.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod anthropic;
mod campaigns;
mod chat;
mod common;
mod keys;
mod logprobs;
mod mock;
mod otel;
mod quarantine;
mod scan_errors;
mod streaming;
mod tools;
mod usage;
