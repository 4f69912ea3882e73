//! Log levels and the host's log callback.

use std::ffi::{c_char, c_void};

/// Log levels, most severe first; a callback receives records up to its `max_level`.
pub const PYB_LOG_OFF: i32 = 0;
pub const PYB_LOG_ERROR: i32 = 1;
pub const PYB_LOG_WARN: i32 = 2;
pub const PYB_LOG_INFO: i32 = 3;
pub const PYB_LOG_DEBUG: i32 = 4;
pub const PYB_LOG_TRACE: i32 = 5;

/// Receives one log record: its `PYB_LOG_*` level, a NUL-terminated UTF-8
/// message valid only during the call, and the host's `user_data`. Called on
/// whatever thread logs, possibly with the GIL held: keep it short and do not
/// let exceptions or longjmps escape it.
#[allow(non_camel_case_types)]
pub type pyb_log_callback =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;
