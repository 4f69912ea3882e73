//! `pyb_set_log_callback`: where pybridge's log records go.

use std::ffi::c_void;

use crate::abi::status::pyb_status;
use crate::capi::boundary::ffi_boundary;
use crate::runtime::error::Error;
use crate::runtime::logging::send_records_to;

pub use crate::abi::logging::*;

/// Sends pybridge's log records up to `max_level` (`PYB_LOG_*`) to `callback`
/// with `user_data`; a NULL callback or `PYB_LOG_OFF` stops logging. Replaces
/// any earlier callback. Any thread.
///
/// Records come from the Rust `log` crate: if the host process already installed
/// another `log` logger (a Rust host), records go to that one instead.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_set_log_callback(
    callback: pyb_log_callback,
    user_data: *mut c_void,
    max_level: i32,
) -> pyb_status {
    ffi_boundary("pyb_set_log_callback", || {
        let filter = match max_level {
            PYB_LOG_OFF => log::LevelFilter::Off,
            PYB_LOG_ERROR => log::LevelFilter::Error,
            PYB_LOG_WARN => log::LevelFilter::Warn,
            PYB_LOG_INFO => log::LevelFilter::Info,
            PYB_LOG_DEBUG => log::LevelFilter::Debug,
            PYB_LOG_TRACE => log::LevelFilter::Trace,
            other => {
                return Err(Error::invalid_argument(format!(
                    "max_level {other} is not a PYB_LOG_* level (0..=5)"
                )));
            }
        };
        send_records_to(callback, user_data, filter);
        Ok(())
    })
}
