//! What pybridge's tests (`tests/`) and benchmarks (`benches/`) share: a
//! crate of its own, a dev-dependency of the core, since it belongs to none
//! of them.

pub mod host_programs;
pub mod stand_in_python;
