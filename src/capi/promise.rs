//! `pyb_promise_*`: async host functions, whose results Python awaits.

use std::ffi::{CStr, c_char, c_void};

use crate::abi::handles::pyb_object;
use crate::abi::status::pyb_status;
use crate::abi::value::pyb_value;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::python::object::enter;
use crate::python::promise;
use crate::runtime::error::Error;

pub use crate::abi::promise::*;

/// Makes a promise: writes to `out_awaitable` a new handle to a Python object
/// that Python code awaits (`await host.fetch(url)`), and to `out` the id
/// with which the host completes it later, from any thread. An async host
/// function returns the awaitable as its result (`PYB_VALUE_OBJECT`) and
/// starts its work; when the work ends, it calls `pyb_promise_resolve` or
/// `pyb_promise_reject` exactly once.
///
/// Any number of coroutines, on any running asyncio event loop of the main
/// interpreter, may await it; each gets the result (or exception) on its own
/// loop's thread. Awaiting it after its completion returns at once. When the
/// last coroutine awaiting it is cancelled before the host completed it,
/// `on_cancel(promise, user_data)` (may be NULL) is called; also at the
/// engine's end for a promise never completed. `user_data` is the host's:
/// pybridge never frees it, and stops using it once the host's completion
/// call has returned.
///
/// Main interpreter only, as pybridge's event loop is (`PYB_E_UNSUPPORTED`
/// inside a sub-interpreter scope). Any thread; takes the GIL if needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT` (`out_awaitable` or `out`);
/// `PYB_E_UNSUPPORTED`; `PYB_E_NOT_INITIALIZED`; `PYB_E_SHUTTING_DOWN`;
/// `PYB_E_PYTHON` (the promise's Python class could not be made).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_promise_new(
    on_cancel: pyb_promise_cancel_fn,
    user_data: *mut c_void,
    out_awaitable: *mut pyb_object,
    out: *mut pyb_promise,
) -> pyb_status {
    ffi_boundary("pyb_promise_new", || {
        let out_awaitable = out_ptr(out_awaitable, "out_awaitable")?;
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        let (awaitable, id) = promise::new(gil.python(), on_cancel, user_data)?;
        *out_awaitable = awaitable;
        *out = id;
        Ok(())
    })
}

/// Completes `promise` with `*value` (a plain value, or an OBJECT handle,
/// which stays the caller's): every coroutine awaiting it gets the value, on
/// its own event loop. Any thread outside sub-interpreter scopes; takes the
/// GIL if needed.
///
/// Errors: `PYB_E_CANCELLED` (nothing awaited it any more: `on_cancel` was
/// called; the value is dropped, and the promise is done); `PYB_E_BAD_HANDLE`
/// (completed already, from an engine that shut down, or never made; also a
/// bad OBJECT handle in `value`, which leaves the promise pending);
/// `PYB_E_NULL_ARGUMENT`; `PYB_E_INVALID_ARGUMENT` (a malformed value; the
/// promise stays pending); `PYB_E_UNSUPPORTED` (inside a sub-interpreter
/// scope); `PYB_E_NOT_INITIALIZED`; `PYB_E_SHUTTING_DOWN`; `PYB_E_PYTHON`
/// (an interrupting shutdown's exception arrived while the outcome was
/// handed to the awaiting loops: the promise is done, and its awaiters are
/// being cancelled by that shutdown).
///
/// Waking an awaiting loop writes into its self-pipe; a loop that is closing
/// may have closed the reading end, so the write runs with SIGPIPE blocked on
/// this thread and a SIGPIPE it raised is discarded: never a signal that
/// kills a host keeping SIGPIPE's default action.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_promise_resolve(
    promise: pyb_promise,
    value: *const pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_promise_resolve", || {
        // SAFETY: the caller passes a readable value or NULL.
        let value = unsafe { value.as_ref() }.ok_or_else(|| Error::null_argument("value"))?;
        let gil = enter()?;
        promise::resolve(gil.python(), promise, value)
    })
}

/// Completes `promise` with an error: every coroutine awaiting it gets
/// `pybridge.HostError(message)` (`message` UTF-8; NULL: "the host rejected
/// the promise"). Any thread outside sub-interpreter scopes; takes the GIL if
/// needed.
///
/// Errors: as `pyb_promise_resolve`; `PYB_E_INVALID_ARGUMENT` for a message
/// that is not UTF-8 (the promise stays pending).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_promise_reject(
    promise: pyb_promise,
    message: *const c_char,
) -> pyb_status {
    ffi_boundary("pyb_promise_reject", || {
        let message = if message.is_null() {
            "the host rejected the promise"
        } else {
            // SAFETY: the caller passes a NUL-terminated string.
            unsafe { CStr::from_ptr(message) }
                .to_str()
                .map_err(|_| Error::invalid_argument("the rejection message is not valid UTF-8"))?
        };
        let gil = enter()?;
        promise::reject(gil.python(), promise, message)
    })
}
