//! The C API: the only place that exports symbols. Each module holds the
//! `extern "C"` functions of one concept, in the order a host meets them
//! (cbindgen writes the header in this order): check the arguments, enter
//! the GIL where needed, call the layer below, and turn the result into a
//! status at the panic boundary, recording the last error on failure.

pub mod status;

pub mod config;
pub mod engine;

pub mod gil;
pub mod interpreter;

pub mod object;
pub mod value;

pub mod call;

pub mod buffer;
pub mod promise;
pub mod task;

pub mod host_function;
pub mod host_object;

pub mod error;
pub mod info;
pub mod logging;
pub mod stats;

mod boundary;
mod python_choice;
