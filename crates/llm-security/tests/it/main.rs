//! End-to-end behaviour of the engine through its public API.

mod attacks;
mod compliance;
mod flags;
mod indirect;
mod languages;
mod sanitize;
