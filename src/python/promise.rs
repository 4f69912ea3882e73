//! Async host functions: a promise is a Python object (`promise.py`) that
//! coroutines await, and that the host completes later from any thread
//! (`pyb_promise_resolve`/`reject`). The registry keeps each pending promise
//! alive until its completion, with the host's cancel callback.
//!
//! The host's thread never runs Python code of an awaiter: completing calls
//! `HostPromise._complete`, which hands the outcome to each awaiting loop with
//! `call_soon_threadsafe`. The registry's lock is never held while Python code
//! or host code runs: a cancel callback may complete its promise at once.

use std::collections::BTreeMap;
use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::promise::{pyb_promise, pyb_promise_cancel_fn};
use crate::abi::status::*;
use crate::abi::value::pyb_value;
use crate::python::coroutine::MethodDef;
use crate::python::embedded::{embedded_python, source_module};
use crate::python::exception::python_error;
use crate::python::handles;
use crate::python::host_function::host_error;
use crate::python::owned::Owned;
use crate::python::value::to_python;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;

/// Promises live in the main interpreter, whose event loops await them.
fn refuse_subinterpreters() -> Result<()> {
    if crate::runtime::thread_slot::ThreadSlot::existing()
        .is_some_and(|thread| !thread.current_interpreter().is_main())
    {
        return Err(Error::new(
            PYB_E_UNSUPPORTED,
            "promises belong to the main interpreter: make and complete them outside \
             sub-interpreter scopes",
        ));
    }
    Ok(())
}

const SOURCE: &CStr = embedded_python!("promise.py");

/// `HostPromise._complete`'s states (promise.py).
const RESOLVED: i32 = 1;
const REJECTED: i32 = 2;

/// Promise ids: the engine generation above `SERIAL_BITS` serial bits, so an
/// id from an earlier engine life is told apart.
const SERIAL_BITS: u32 = 40;
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A pending promise: a strong reference to its `HostPromise` (main
/// interpreter), the host's cancel callback, and whether it was called.
struct Pending {
    object: *mut ffi::PyObject,
    on_cancel: pyb_promise_cancel_fn,
    user_data: usize,
    cancelled: bool,
}
// SAFETY: `object` is only touched with the main GIL held.
unsafe impl Send for Pending {}

static PENDING: Mutex<BTreeMap<pyb_promise, Pending>> = Mutex::new(BTreeMap::new());

/// Makes a `HostPromise`, registers it, and returns a new handle to it and its id.
pub(crate) fn new(
    py: Python<'_>,
    on_cancel: pyb_promise_cancel_fn,
    user_data: *mut c_void,
) -> Result<(pyb_object, pyb_promise)> {
    refuse_subinterpreters()?;
    let module = source_module(py, c"_pybridge_promise", SOURCE, c"<pybridge-promise>")?;
    let id = (u64::from(gate::load().generation()) << SERIAL_BITS)
        | NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    // SAFETY: GIL held; every new reference is owned by an `Owned`.
    let object = unsafe {
        let cancelled = CANCELLED.function(py)?;
        Owned::new(
            py,
            ffi::PyObject_CallMethod(
                module.as_ptr(),
                c"HostPromise".as_ptr(),
                c"KO".as_ptr(),
                id,
                cancelled.as_ptr(),
            ),
        )?
    };
    let handle = {
        // SAFETY: GIL held: one reference for the handle, one for the registry.
        unsafe { ffi::Py_IncRef(object.as_ptr()) };
        handles::insert(py, object.as_ptr())?
    };
    PENDING.lock().insert(
        id,
        Pending {
            object: object.into_raw(),
            on_cancel,
            user_data: user_data as usize,
            cancelled: false,
        },
    );
    Ok((handle, id))
}

/// Delivers `value` to every coroutine awaiting promise `id`.
pub(crate) fn resolve(py: Python<'_>, id: pyb_promise, value: &pyb_value) -> Result<()> {
    refuse_subinterpreters()?;
    check_generation(id)?;
    // Converted before the promise is taken: a bad value leaves it pending.
    // SAFETY: a new reference, owned from here.
    let value =
        unsafe { Owned::from_raw(py, to_python(py, value)?) }.ok_or_else(|| python_error(py))?;
    complete(py, id, RESOLVED, value)
}

/// Delivers `pybridge.HostError(message)` to every coroutine awaiting `id`.
pub(crate) fn reject(py: Python<'_>, id: pyb_promise, message: &str) -> Result<()> {
    refuse_subinterpreters()?;
    check_generation(id)?;
    let error = host_error(py, message)?;
    complete(py, id, REJECTED, error)
}

fn check_generation(id: pyb_promise) -> Result<()> {
    if id >> SERIAL_BITS != u64::from(gate::load().generation())
        || id & ((1 << SERIAL_BITS) - 1) == 0
    {
        return Err(Error::new(
            PYB_E_BAD_HANDLE,
            format!(
                "promise {id:#x} was not made by the running engine (from an engine that shut \
                 down, or never made)"
            ),
        ));
    }
    Ok(())
}

fn complete(py: Python<'_>, id: pyb_promise, state: i32, outcome: Owned<'_>) -> Result<()> {
    let Some(pending) = PENDING.lock().remove(&id) else {
        return Err(Error::new(
            PYB_E_BAD_HANDLE,
            format!("promise {id:#x} was completed already (or never made)"),
        ));
    };
    // SAFETY: GIL held; the registry's reference is ours now.
    let promise = unsafe { Owned::from_raw(py, pending.object) }.expect("registered non-NULL");
    if pending.cancelled {
        return Err(Error::new(
            PYB_E_CANCELLED,
            format!(
                "promise {id:#x}: nothing awaits it any more (the awaiting code was cancelled); \
                 the outcome was dropped"
            ),
        ));
    }
    // `_complete` wakes each awaiting loop with `call_soon_threadsafe`, a
    // write into that loop's self-pipe; a loop closing meanwhile closes the
    // pipe's reader first, and the write would be SIGPIPE (the host's
    // process killed where SIGPIPE keeps its default action). Here it is
    // EPIPE, which asyncio ignores.
    crate::sys::process::without_sigpipe(|| {
        // SAFETY: GIL held; live objects; the result is owned.
        unsafe {
            Owned::new(
                py,
                ffi::PyObject_CallMethod(
                    promise.as_ptr(),
                    c"_complete".as_ptr(),
                    c"iO".as_ptr(),
                    state,
                    outcome.as_ptr(),
                ),
            )
        }
    })?;
    Ok(())
}

static CANCELLED: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"cancelled".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: cancelled,
    },
    ml_flags: ffi::METH_O,
    ml_doc: c"cancelled(id): nothing awaits the promise any more; tells the host (pybridge)."
        .as_ptr(),
});

/// `cancelled(id)`, on the loop's thread of the last awaiter cancelled.
unsafe extern "C" fn cancelled(
    _self: *mut ffi::PyObject,
    id: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY (this function): CPython calls it with the GIL and one argument.
    unsafe {
        let id = ffi::PyLong_AsUnsignedLongLong(id);
        if ffi::PyErr_Occurred().is_null() {
            tell_host(id);
        }
        ffi::PyErr_Clear();
        ffi::Py_IncRef(ffi::Py_None());
        ffi::Py_None()
    }
}

/// Calls promise `id`'s cancel callback, once, outside the registry's lock.
fn tell_host(id: pyb_promise) {
    let callback = {
        let mut pending = PENDING.lock();
        match pending.get_mut(&id) {
            Some(entry) if !entry.cancelled => {
                entry.cancelled = true;
                entry
                    .on_cancel
                    .map(|on_cancel| (on_cancel, entry.user_data))
            }
            _ => None,
        }
    };
    if let Some((on_cancel, user_data)) = callback {
        // SAFETY: the host's callback with its own user data, as `pyb_promise_new` documents.
        unsafe { on_cancel(id, user_data as *mut c_void) };
    }
}

/// The engine's end: every promise still pending is cancelled (its host
/// told) and forgotten; a later completion gets `PYB_E_NOT_INITIALIZED` or
/// `PYB_E_BAD_HANDLE`. Main GIL held, before finalization.
pub(crate) fn on_engine_finalize(py: Python<'_>) {
    let ids: Vec<pyb_promise> = PENDING.lock().keys().copied().collect();
    for id in ids {
        tell_host(id);
    }
    let pending = std::mem::take(&mut *PENDING.lock());
    for entry in pending.into_values() {
        // SAFETY: GIL held; the registry's reference.
        drop(unsafe { Owned::from_raw(py, entry.object) });
    }
}
