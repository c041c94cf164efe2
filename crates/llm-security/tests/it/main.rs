//! End-to-end behaviour of the engine through its public API.

mod attacks;
mod compliance;
mod flags;
mod harmful_output;
mod indirect;
mod intel;
mod intent;
mod languages;
mod model_docs;
mod model_refusals;
mod model_threat;
mod model_wiring;
mod sanitize;
mod suffix_persuasion;
