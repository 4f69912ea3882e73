//! `pyb_task_*`: awaiting Python coroutines from the host.

use std::ffi::c_void;

use crate::abi::handles::pyb_object;
use crate::abi::status::pyb_status;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::python::coroutine;
use crate::python::object::{enter, enter_for};

pub use crate::abi::task::*;

/// Submits `awaitable` (a coroutine, such as the result of calling an `async
/// def` with `pyb_call`; or an asyncio Task or Future) to pybridge's asyncio
/// event loop, which runs on a thread pybridge owns (started on the first
/// submission), and writes the task's id to `out`. `on_done(task, status,
/// result, user_data)` is called exactly once with the outcome (see
/// `pyb_task_callback`), possibly before this function returns. Any thread
/// outside sub-interpreter scopes; takes the GIL for the call if needed.
///
/// At shutdown, pending tasks are cancelled after the point of no return and
/// their callbacks get `PYB_E_SHUTTING_DOWN`; a shutdown that times out before
/// it cancels nothing.
///
/// Errors (then `on_done` is never called): `PYB_E_WRONG_TYPE` (not
/// awaitable), `PYB_E_UNSUPPORTED` (inside a sub-interpreter: the loop runs in
/// the main one), `PYB_E_NULL_ARGUMENT`, `PYB_E_BAD_HANDLE`,
/// `PYB_E_WRONG_INTERPRETER`, `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_task_submit(
    awaitable: pyb_object,
    on_done: pyb_task_callback,
    user_data: *mut c_void,
    out: *mut pyb_task,
) -> pyb_status {
    ffi_boundary("pyb_task_submit", || {
        let out = out_ptr(out, "out")?;
        coroutine::set_error_recorder(crate::capi::error::record);
        let gil = enter_for(awaitable)?;
        *out = coroutine::submit(gil.python(), awaitable, on_done, user_data)?;
        Ok(())
    })
}

/// Cancels a submitted task: its coroutine gets `CancelledError` at its next
/// `await`, and unless it swallows it, its callback gets `PYB_E_CANCELLED`.
/// A task that already finished is left alone (`PYB_OK`). Any thread outside
/// sub-interpreter scopes; takes the GIL for the call if needed; does not wait.
///
/// Errors: `PYB_E_BAD_HANDLE` (not a task of the running engine),
/// `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_task_cancel(task: pyb_task) -> pyb_status {
    ffi_boundary("pyb_task_cancel", || {
        // The GIL only for the gate's verdict (no engine, or one shutting down).
        let _gil = enter()?;
        coroutine::cancel(task)
    })
}
