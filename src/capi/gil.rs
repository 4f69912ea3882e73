//! GIL scopes and allow-threads regions for host threads.
//!
//! Why persistent thread states: `PyGILState_Ensure` on a thread without one
//! creates and deletes a thread state per call (about 380 ns against 60 ns),
//! loses `threading.local`, and breaks extensions that cache thread states.

use crate::abi::status::pyb_status;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::python::allow_threads::{begin_allow_threads, end_allow_threads};
use crate::python::gil::{holds_gil, release};
use crate::python::gil_scopes::acquire;
use crate::python::token_diagnostics::misplaced_token;
use crate::runtime::thread_slot::ThreadSlot;
use crate::runtime::token::TokenValue;

pub use crate::abi::handles::{pyb_gil, pyb_thread_token};

/// Takes the GIL for the calling thread and writes a token for the scope to `out`.
///
/// Any thread may call it. The first call on a thread creates that thread's
/// Python thread state, which is kept and reused until the thread exits (so
/// `threading.local` survives between scopes, and `PyGILState_Ensure` inside a
/// scope nests). Scopes nest: an acquire on a thread that already holds the GIL
/// through pybridge only counts; if code inside the open scope gave the GIL
/// away (a ctypes call, `Py_BEGIN_ALLOW_THREADS`), the inner scope takes it
/// back and its release gives it away again. While the scope is open the
/// thread may call the CPython C API directly. Release with `pyb_gil_release` on the same thread, in
/// LIFO order. Blocks while another thread holds the GIL.
///
/// Errors: `PYB_E_NOT_INITIALIZED`; `PYB_E_SHUTTING_DOWN` once a shutdown has
/// begun (threads already inside may still nest); `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_gil_acquire(out: *mut pyb_gil) -> pyb_status {
    ffi_boundary("pyb_gil_acquire", || {
        let out = out_ptr(out, "out")?;
        *out = acquire(ThreadSlot::current())?.0;
        Ok(())
    })
}

/// Closes the GIL scope `token` opened by `pyb_gil_acquire` on this thread.
/// Closing the outermost scope gives the GIL away (unless the thread already
/// held it before that scope, as a Python thread calling into the host does).
///
/// Errors: `PYB_E_WRONG_THREAD` (the token belongs to another thread);
/// `PYB_E_BAD_TOKEN` (already released, out of LIFO order, an allow-threads
/// token, or from an earlier engine). Nothing changes on error.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_gil_release(token: pyb_gil) -> pyb_status {
    ffi_boundary("pyb_gil_release", || {
        let token = TokenValue(token);
        let slot = ThreadSlot::existing().ok_or_else(|| misplaced_token(token, None))?;
        release(slot, token)
    })
}

/// 1 when the calling thread holds the GIL (through pybridge or any other way), else 0.
/// Any thread; never blocks.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_gil_held() -> i32 {
    std::panic::catch_unwind(|| holds_gil(ThreadSlot::current())).unwrap_or(false) as i32
}

/// Releases the GIL held by the calling thread (all nesting levels) until the
/// matching `pyb_end_allow_threads` on the same thread takes it back: wrap long
/// native work in it so Python threads keep running. Inside the region the
/// thread must not touch Python objects, but may open a new GIL scope.
///
/// On a thread that does not hold the GIL this succeeds with a token whose end
/// does nothing, so `begin ... end` is always safe to write. A pending region
/// keeps shutdown waiting (the thread will take the GIL back).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_begin_allow_threads(out: *mut pyb_thread_token) -> pyb_status {
    ffi_boundary("pyb_begin_allow_threads", || {
        let out = out_ptr(out, "out")?;
        *out = begin_allow_threads(ThreadSlot::current())?.0;
        Ok(())
    })
}

/// Ends the allow-threads region `token` on the thread that began it, taking
/// the GIL back (blocks until it is free) and restoring the nesting it had. A
/// region begun without the GIL (a no-op region) ends without touching the
/// GIL, but its token is checked all the same.
///
/// Errors: `PYB_E_WRONG_THREAD`; `PYB_E_BAD_TOKEN` (ended twice, out of order, a
/// GIL scope opened inside the region is still open, a GIL token, or a value
/// pybridge never issued). Nothing changes on error.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_end_allow_threads(token: pyb_thread_token) -> pyb_status {
    ffi_boundary("pyb_end_allow_threads", || {
        let token = TokenValue(token);
        let slot = ThreadSlot::existing().ok_or_else(|| misplaced_token(token, None))?;
        end_allow_threads(slot, token)
    })
}
