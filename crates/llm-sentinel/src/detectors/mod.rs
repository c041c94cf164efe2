//! The detectors, one module each: its config (the YAML `config:`
//! block, unknown keys refused), its state, and its tests. The `plugin`
//! detector runs an external process and passes its block through.

pub mod behavioral;
pub mod entropy;
pub mod plugin;
pub mod rule;
pub mod statistical;
pub mod threat;
