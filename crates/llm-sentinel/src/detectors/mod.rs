//! The detectors, one file each: its config (the seed's YAML `config:`
//! block, unknown keys refused), its state, and its tests.

pub mod behavioral;
pub mod entropy;
pub mod rule;
pub mod statistical;
pub mod threat;
