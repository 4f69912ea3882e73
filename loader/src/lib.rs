//! The packaged `libpybridge.so`: one library for whichever CPython the host
//! has. It exports the C API of `bindings/c/pybridge.h` and, on the first
//! `pyb_engine_initialize`, chooses the Python (`pyb_config.python`, else
//! `PYBRIDGE_PYTHON`, else the Python the package was built with if it still
//! exists, else `python3` on `PATH`), loads its libpython with `RTLD_GLOBAL`,
//! then loads the pybridge core built for that CPython minor version
//! (`libpybridge-core-cp3XX.so`, beside this file), whose `NEEDED` libpython
//! is then the one already loaded. Every call after that goes straight to the
//! core through one indirect call.
//!
//! A process keeps the first libpython it loads: CPython cannot be unloaded,
//! and two of them in one process would share symbol names.

// The exports' one contract (non-NULL pointers are valid) is the C convention
// the header states once, as in the core.
#![allow(clippy::missing_safety_doc)]

// The C data types, compiled from the core's own sources (their Rust-side
// helpers are the core's public API, shaped for it).
#[allow(dead_code, clippy::wrong_self_convention)]
#[path = "../../src/abi/mod.rs"]
mod abi;
// Text into host buffers, as the core copies it.
#[path = "../../src/capi/c_buffer.rs"]
mod c_buffer;
// The same rules for finding a Python as the core's.
#[allow(dead_code)]
#[path = "../../src/sys/python_locator.rs"]
mod python_locator;

mod core;
mod exports;
mod last_error;

// The forwarding functions, generated from the header by build.rs.
include!(concat!(env!("OUT_DIR"), "/forward.rs"));
