//! `pyb_status_name`: a status's own name, for messages and logs.

use std::ffi::c_char;

pub use crate::abi::status::*;

/// The status constant's own name as a string, for example `"PYB_E_TIMEOUT"`;
/// `"PYB_E_UNKNOWN"` for a value pybridge never returns.
///
/// Returns a static string: never free it. Any thread; the GIL does not matter.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_status_name(status: pyb_status) -> *const c_char {
    status_name(status).as_ptr()
}
