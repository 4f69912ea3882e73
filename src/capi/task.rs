//! `pyb_task_*`: awaiting Python coroutines from the host.

use std::ffi::c_void;

use crate::abi::handles::pyb_object;
use crate::abi::status::pyb_status;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::python::coroutine;
use crate::python::object::{enter, enter_for};
use crate::runtime::thread_slot::ThreadSlot;

pub use crate::abi::task::*;

/// Submits `awaitable` (a coroutine, such as the result of calling an `async
/// def` with `pyb_call`; or an asyncio Task or Future) to pybridge's asyncio
/// event loop and writes the task's id to `out`. The loop runs on one daemon
/// Python thread, `pybridge-asyncio`, which the first submission of an engine
/// life starts (one loop per engine life, however many threads submit first
/// at once) and the engine's end stops; nothing a task does ends it early
/// (`loop.stop()` is undone, `SystemExit` and `KeyboardInterrupt` fail that
/// task only). Any thread outside sub-interpreter scopes; takes the GIL for
/// the call if needed.
///
/// `PYB_OK`: the task was handed over, and `on_done(task, status, result,
/// user_data)` will be called exactly once with its outcome (see
/// `pyb_task_callback`), possibly before this function returns. An error: the
/// task was not handed over and `on_done` is never called, so the caller
/// still owns `user_data`. An interrupting shutdown (`PYB_SHUTDOWN_INTERRUPT`)
/// never splits the two: after the hand-over no Python code runs here.
///
/// At shutdown, pending tasks are cancelled after the point of no return and
/// their callbacks get `PYB_E_SHUTTING_DOWN`; a shutdown that times out before
/// it cancels nothing.
///
/// Errors: `PYB_E_WRONG_TYPE` (not awaitable); `PYB_E_UNSUPPORTED` (inside a
/// sub-interpreter scope: the loop runs in the main interpreter);
/// `PYB_E_NULL_ARGUMENT` (`on_done` or `out`); `PYB_E_BAD_HANDLE`;
/// `PYB_E_WRONG_INTERPRETER`; `PYB_E_NOT_INITIALIZED`; `PYB_E_SHUTTING_DOWN`
/// (the engine is shutting down, also from a callback or Python thread during
/// its end, when the loop takes no more tasks); `PYB_E_PYTHON` (only when this
/// call starts the loop: its module or thread could not be made, or an
/// interrupting shutdown's exception arrived meanwhile; the next submission
/// tries again).
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
/// A task that already finished (its callback was called or is being called),
/// or that the engine's end is cancelling already, is left alone (`PYB_OK`).
/// Runs no Python code and does not wait for the loop. Any thread, inside a
/// sub-interpreter scope too; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_BAD_HANDLE` (not a task of the running engine: from an
/// engine that shut down, or never issued); `PYB_E_NOT_INITIALIZED`;
/// `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_task_cancel(task: pyb_task) -> pyb_status {
    ffi_boundary("pyb_task_cancel", || {
        // The GIL only for the gate's verdict (no engine, or one shutting down).
        let _gil = enter()?;
        coroutine::cancel(task)
    })
}

/// Says whether the calling thread may block until a task's callback has run
/// (a host's `Task.Wait()`, C++ `Task::get()`): `PYB_OK`, or
/// `PYB_E_WOULD_DEADLOCK` when that wait could never end, with a message that
/// says why and what to do. Blocking nothing itself, it lets a binding refuse
/// a wait at once instead of hanging.
///
/// The event loop finishes a task, and calls its callback, on its own thread
/// with the main interpreter's GIL held. So a wait would never end on a thread
/// that holds that GIL (inside a `pyb_gil_acquire` scope and not in an
/// allow-threads region, in a host function that runs with the GIL, in a
/// sub-interpreter that shares the main GIL or one that Python code made), or
/// on the loop's own thread (a task callback, even inside an allow-threads
/// region). A thread in an own-GIL sub-interpreter holds another GIL and may
/// wait. `PYB_OK` when no engine runs (through the release package's loader,
/// `PYB_E_NOT_INITIALIZED` until the first `pyb_engine_initialize` has loaded
/// a core). Any thread, GIL held or not; never blocks.
///
/// Errors: `PYB_E_WOULD_DEADLOCK`.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_task_check_wait() -> pyb_status {
    ffi_boundary("pyb_task_check_wait", || {
        coroutine::check_wait(ThreadSlot::current())
    })
}
