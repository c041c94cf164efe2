//! The router's state: the [`Services`] and what only the HTTP front needs
//! (failed-authentication counts per address, the metrics renderer, the
//! dashboard's sessions).
//! Handlers that need only the services extract `State<Services>`
//! ([`FromRef`]); the middleware takes the whole [`AppState`].

use std::sync::Arc;

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::ratelimit::RateLimiter;
use crate::service::{Services, ServicesInner};

/// The router's state. It derefs to the services' parts, so `state.store`
/// reads as before.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The services.
    pub services: Services,
    /// The HTTP front's own parts.
    pub http: Arc<HttpParts>,
}

/// What only the HTTP front needs.
#[derive(Debug)]
pub struct HttpParts {
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The dashboard's sign-in sessions.
    pub sessions: crate::dashboard::session::Sessions,
}

impl std::ops::Deref for AppState {
    type Target = ServicesInner;

    fn deref(&self) -> &ServicesInner {
        &self.services
    }
}

impl FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Services {
        state.services.clone()
    }
}
