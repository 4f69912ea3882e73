//! What the pybridge core and the packaged loader share: the C ABI's types
//! and conventions, and the one rule for choosing a Python that both must
//! apply identically. It names nothing of either (std only, and Windows'
//! registry API on Windows), so both depend on it and neither on the other.
//!
//! The C data types and constants come first, in the order a host meets them:
//! layout only, no behaviour. cbindgen writes them to the header in this
//! order (`cbindgen.toml` parses this crate as a dependency of the core).

pub mod status;

pub mod config;
pub mod engine;

pub mod handles;
pub mod interpreter;
pub mod value;

pub mod buffer;

pub mod host_function;
pub mod promise;
pub mod task;

pub mod logging;
pub mod stats;

// The conventions both sides apply: text into a host's buffer, and which
// Python a host's name means.
pub mod c_buffer;
mod installation;
pub mod python_locator;
mod windows_layout;
mod windows_registry;
