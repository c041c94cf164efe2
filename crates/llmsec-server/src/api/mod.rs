//! The REST routes, one module per resource.

pub mod admin;
pub mod events;
pub mod security;
pub mod webhooks;
