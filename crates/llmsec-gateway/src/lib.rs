//! # llmsec-gateway — the Shield gateway
//!
//! An OpenAI-compatible proxy in front of model providers: point an OpenAI
//! client's base URL at `llmsec` and every call is protected. A request
//! needs a key with the `proxy` scope; Sentinel's enforcements for the
//! key's tenant, user, session, application and client address are checked
//! first (a blocked user is refused before any upstream call); every
//! message is scanned by role
//! (system and user text as prompts, tool and function results as indirect
//! content, earlier assistant turns as chat content) through the server's
//! analysis service; the route's policy (`block`, `sanitize`, `monitor`)
//! decides; the request goes to the upstream chosen by model; completions
//! are validated (streams incrementally with the engine's
//! [`OutputStream`](llm_security::OutputStream)); and each call becomes one
//! Sentinel telemetry event.
//!
//! A key can carry a model allow-list and day or month token and cost
//! budgets, checked before any upstream call; usage (the upstream's, or
//! estimated from the texts) is priced from `gateway.prices` and counted
//! in the store. Logprobs the client asked for go into the event, for
//! Sentinel's entropy detector. Each route chooses its policy, whether
//! scan errors fail closed or open, and its tool-call allow-list (tool
//! names, JSON-Schema-checked arguments).
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions` (both also
//! streamed), `POST /v1/embeddings` (input scan only), `GET /v1/models`,
//! Anthropic's `POST /v1/messages` (streamed or not, errors in
//! Anthropic's shape), and `GET /v1/quarantine/{id}`.
//!
//! With `[quarantine]` enabled, a completion whose check meets the hold
//! rule is not returned: it is held for review and the client gets
//! `held_for_review` (422) with the item's id; once a `triage` key
//! releases it, `GET /v1/quarantine/{id}` answers the original answer.
//! [`router`] builds them over the server's [`AppState`](llmsec_server::AppState);
//! `llmsec serve` mounts them when the config has a `[gateway]` section,
//! and `llmsec gateway` serves them alone. See `docs/GATEWAY.md`.
//!
//! Every call into `llmsec-server` sits in one module (`core`), with the one
//! function that turns the server's errors into OpenAI error bodies.
#![deny(missing_docs)]

mod cache;
mod core;
mod error;
mod logprobs;
mod proxy;
mod record;
mod relay;
mod sse;
mod tokens;
mod tools;
mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use llmsec_server::config::GatewayConfig;

pub use crate::error::OpenAiError;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The `[gateway]` section is refused.
    #[error(transparent)]
    Config(#[from] llmsec_server::ConfigError),
    /// An upstream's key variable is unset or empty.
    #[error("{field}: the environment variable {var} is unset or empty")]
    MissingKey {
        /// The config key naming the variable.
        field: String,
        /// The variable.
        var: String,
    },
    /// An upstream's key cannot be sent in a header.
    #[error("{field}: the value of {var} is not a valid header value")]
    BadKey {
        /// The config key naming the variable.
        field: String,
        /// The variable.
        var: String,
    },
    /// An HTTP client could not be built.
    #[error("upstream client: {0}")]
    Client(reqwest::Error),
}

/// The gateway's routes over the server's state, with upstream keys read
/// from the process environment.
pub fn router(state: llmsec_server::AppState, config: GatewayConfig) -> Result<Router, GatewayError> {
    router_with_env(state, config, &|k| std::env::var(k).ok())
}

/// [`router`] with upstream keys read through `env`.
pub fn router_with_env(
    state: llmsec_server::AppState,
    config: GatewayConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Router, GatewayError> {
    config.validate()?;
    let upstreams = upstream::Upstreams::from_config(&config, env)?;
    let tools = proxy::RouteTools::from_config(&config)?;
    let cache =
        cache::ScanCache::new(config.scan_cache_entries, std::time::Duration::from_secs(config.scan_cache_ttl_secs));
    let recorder = core::start_recorder(&state);
    // A hold outlives its call by the recorder's delay at most; one left by
    // a replica that died lapses after its longest possible call.
    let longest = config.upstreams.iter().map(|u| u.timeout_ms).max().unwrap_or(0);
    let hold_ttl_ms = i64::try_from(longest).unwrap_or(i64::MAX / 2).saturating_add(300_000);
    let gw = Arc::new(proxy::Gateway { state: state.clone(), config, upstreams, tools, cache, recorder, hold_ttl_ms });
    let routes = Router::new()
        .route("/v1/chat/completions", post(proxy::chat))
        .route("/v1/completions", post(proxy::completions))
        .route("/v1/embeddings", post(proxy::embeddings))
        .route("/v1/models", get(proxy::models))
        .route(proxy::MESSAGES_PATH, post(proxy::messages))
        .route("/v1/quarantine/{id}", get(proxy::quarantined))
        .with_state(gw);
    Ok(core::authenticated(routes, &state))
}
