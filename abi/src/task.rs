//! `pyb_task`: awaiting Python coroutines from the host.

use std::ffi::c_void;

use crate::status::pyb_status;
use crate::value::pyb_value;

/// A coroutine submitted with `pyb_task_submit`, for `pyb_task_cancel`.
#[allow(non_camel_case_types)]
pub type pyb_task = u64;

/// Receives a task's outcome, exactly once, on pybridge's event-loop thread
/// with the GIL held: `PYB_OK` and the result in `*result` (a plain value, or
/// an OBJECT handle the host owns and releases; STR/BYTES valid during the
/// call only), or an error status with `*result` None: `PYB_E_PYTHON` (the
/// coroutine raised, `SystemExit` and `KeyboardInterrupt` included;
/// `pyb_last_error_*` on this thread, inside the callback, give its type,
/// message and traceback), `PYB_E_CANCELLED`, or
/// `PYB_E_SHUTTING_DOWN` (the engine shut down first; called on the engine's
/// thread instead for a task that had not started or ignored its
/// cancellation). Keep it short: the
/// event loop waits for it. It may call pybridge; it must not block on
/// another thread that needs the GIL, and no exception or unwinding may leave it.
#[allow(non_camel_case_types)]
pub type pyb_task_callback = Option<
    unsafe extern "C" fn(
        task: pyb_task,
        status: pyb_status,
        result: *const pyb_value,
        user_data: *mut c_void,
    ),
>;
