//! The C data types and constants, in the order a host meets them: layout
//! only, no behaviour. cbindgen writes them to the header in this order.

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
