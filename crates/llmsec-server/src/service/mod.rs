//! The services the transports share, with no HTTP types: REST, GraphQL,
//! gRPC and OTLP are adapters over them.

pub mod analysis;
pub mod telemetry;
