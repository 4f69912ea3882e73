//! `pyb_pending_*`: results a host function hands to Python before they exist.

use std::ffi::c_void;

/// Called when Python cancels the task awaiting a pending result
/// (`pyb_pending_new`) before the host completed it: at most once, on the
/// awaiting event loop's thread, with the GIL held. Keep it short; it may
/// call pybridge, and no exception or unwinding may leave it.
#[allow(non_camel_case_types)]
pub type pyb_cancel_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;
