//! `pyb_pending_*`: Python awaiting the host. A host function returns a
//! pending result at once and completes it later, from any thread.

use std::ffi::{c_char, c_void};

use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;
use crate::abi::status::pyb_status;
use crate::abi::value::pyb_value;
use crate::capi::boundary::{ffi_boundary, out_ptr, utf8_arg};
use crate::python::object::{enter, enter_for};
use crate::python::pending;
use crate::runtime::error::Error;

pub use crate::abi::pending::*;

/// Makes a pending result: an awaitable Python object (`PendingResult`) that
/// a host function returns before its result exists, and that the host
/// completes later from any thread with `pyb_pending_resolve` or
/// `pyb_pending_reject`. Writes a handle to it to `out` (caller owns; release
/// with `pyb_object_release`). To return it from a host function, return a
/// clone (`pyb_object_clone`: pybridge releases a returned handle) and keep
/// `out` to complete it.
///
/// Python code awaits it from any asyncio event loop (`await host.fetch(url)`
/// in an `async def`): the awaiting coroutine resumes on its loop's thread
/// once the host completes it, with the value, or with
/// `pybridge.HostError(message)` raised. Completed before anyone awaits it,
/// an await finishes at once.
///
/// Cancellation: when Python cancels the awaiting task before the host
/// completed it, `on_cancel(user_data)` is called (at most once, on the
/// loop's thread, with the GIL held; see `pyb_cancel_fn`) and a later
/// completion returns `PYB_E_CANCELLED`. Exactly one of the two happens: a
/// completion that returned `PYB_OK` means `on_cancel` is never called.
/// `free_user_data(user_data)` is called once when Python has let go of the
/// object (every handle released, nothing awaiting it), on that thread with
/// the GIL held; otherwise when its interpreter ends, except for one a daemon
/// Python thread can still reach then (as for `pyb_host_object_new`). Either
/// callback may be NULL. On error neither is called.
///
/// C# can build `Task`-returning host functions on this (complete it from
/// the task's continuation, cancel a `CancellationTokenSource` in
/// `on_cancel`); C++ does for functions returning `std::future<T>`.
///
/// Any thread, in the interpreter the thread works in; takes the GIL for the
/// call if needed. Errors: `PYB_E_NULL_ARGUMENT` (`out`),
/// `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`, `PYB_E_PYTHON` (its helper
/// module could not be made).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_pending_new(
    on_cancel: pyb_cancel_fn,
    user_data: *mut c_void,
    free_user_data: pyb_free_fn,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_pending_new", || {
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        *out = pending::new(gil.python(), on_cancel, user_data, free_user_data)?;
        Ok(())
    })
}

/// Completes the pending result behind `pending` with `*value` (read during
/// the call only; an OBJECT value is borrowed): the awaiting coroutine gets
/// it. The handle stays the caller's (release it after). Any thread, with or
/// without the GIL; takes it for the call if needed, and never waits for the
/// awaiting event loop (the coroutine resumes on its own thread).
///
/// Errors: `PYB_E_CANCELLED` (Python cancelled the awaiting task first;
/// `on_cancel` was called and the value is dropped), `PYB_E_INVALID_ARGUMENT`
/// (completed already, or a bad value), `PYB_E_WRONG_TYPE` (not a pending
/// result), `PYB_E_BAD_HANDLE` (released, or its engine ended),
/// `PYB_E_WRONG_INTERPRETER`, `PYB_E_NULL_ARGUMENT`, `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_pending_resolve(
    pending: pyb_object,
    value: *const pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_pending_resolve", || {
        // SAFETY: a non-NULL value is promised readable.
        let value = unsafe { value.as_ref() }.ok_or_else(|| Error::null_argument("value"))?;
        let gil = enter_for(pending)?;
        pending::complete(gil.python(), pending, Ok(value))
    })
}

/// Completes the pending result behind `pending` with a failure: the awaiting
/// coroutine gets `pybridge.HostError(message)` (`message` UTF-8, copied), as
/// from a failing host function. Otherwise as `pyb_pending_resolve`.
///
/// Errors: as `pyb_pending_resolve`; `PYB_E_INVALID_ARGUMENT` also for a
/// message that is not UTF-8.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_pending_reject(
    pending: pyb_object,
    message: *const c_char,
) -> pyb_status {
    ffi_boundary("pyb_pending_reject", || {
        let message = utf8_arg(message, "message")?;
        let gil = enter_for(pending)?;
        pending::complete(gil.python(), pending, Err(message))
    })
}
