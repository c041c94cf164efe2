//! End-to-end behaviour of the engine through its public API.

mod attacks;
mod compliance;
mod flags;
mod indirect;
mod intent;
mod languages;
mod sanitize;
mod suffix_persuasion;
