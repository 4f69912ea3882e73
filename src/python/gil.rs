//! GIL scopes for pybridge's own code and the host's questions about the GIL:
//! `GilScope`, `release` (which switches back out of an entered interpreter),
//! and whether the calling thread holds a GIL and whose.
//!
//! The parts, bottom up: `thread_states` (each host thread's persistent
//! thread state and who is admitted while the engine closes), `gil_scopes`
//! (nested scopes on it), `allow_threads` (regions that give the GIL away),
//! `interpreter_switch` (scopes in sub-interpreters), `thread_exit` (what a
//! thread's exit frees), `token_diagnostics` (why a token does not fit).

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::python::gil_scopes::{Closed, acquire, release_scope};
use crate::python::interpreter_switch::leave_entered_interpreter;
use crate::python::thread_states::{may_touch_cpython, own_thread_state, thread_holds_gil};
use crate::runtime::error::Result;
use crate::runtime::gate;
use crate::runtime::thread_slot::{CurrentThread, ThreadSlot};
use crate::runtime::token::TokenValue;

/// An open GIL scope for pybridge's own code; released on drop.
pub(crate) struct GilScope {
    thread: CurrentThread,
    token: TokenValue,
}

impl GilScope {
    pub(crate) fn acquire() -> Result<GilScope> {
        let thread = ThreadSlot::current();
        let token = acquire(thread)?;
        Ok(GilScope { thread, token })
    }

    /// Takes over the scope `token` the calling thread just opened (by
    /// `acquire` or `enter_interpreter`), to be released on drop.
    pub(crate) fn adopt(token: TokenValue) -> GilScope {
        GilScope {
            thread: ThreadSlot::current(),
            token,
        }
    }

    /// pyo3's view of the held GIL, for code that uses pyo3's safe API.
    pub(crate) fn python(&self) -> pyo3::Python<'_> {
        // SAFETY: this scope holds the GIL on the calling thread.
        unsafe { pyo3::Python::assume_attached() }
    }
}

impl Drop for GilScope {
    fn drop(&mut self) {
        if let Err(error) = release(self.thread, self.token) {
            log::error!(
                "pybridge could not close its own GIL scope: {}",
                error.message
            );
        }
    }
}

/// Closes the GIL scope `value` (`pyb_gil_release`, `pyb_interpreter_leave`):
/// the innermost one, and when it is the scope that entered an interpreter,
/// switches back to where the thread came from.
#[inline(always)]
pub(crate) fn release(thread: CurrentThread, value: TokenValue) -> Result<()> {
    match release_scope(thread, value)? {
        Closed::Nested => Ok(()),
        Closed::Outermost => leave_entered_interpreter(thread),
    }
}

/// True when the calling thread holds the GIL, through pybridge or otherwise.
pub(crate) fn holds_gil(thread: CurrentThread) -> bool {
    let owner = thread.owner();
    if owner.frames.depth() > 0 {
        // Busy already, so CPython is alive; the GIL may have been given away inside the scope.
        // SAFETY: a plain load.
        return unsafe { ffi::compat::PyThreadState_GetUnchecked() } == owner.tstate.get();
    }
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    let held = may_touch_cpython(&thread, word) && thread_holds_gil(owner, word);
    if !was_busy {
        gate::leave(&thread.busy);
    }
    held
}

/// The interpreter whose GIL the calling thread holds right now (through
/// pybridge or otherwise), or None when it holds none.
pub(crate) fn held_gil_interpreter(thread: CurrentThread) -> Option<*mut ffi::PyInterpreterState> {
    let owner = thread.owner();
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    let held = if may_touch_cpython(&thread, word) {
        // SAFETY: a plain load (global on 3.10/3.11, thread-local from 3.12).
        let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
        // From 3.12 the current state is this thread's own; before, it is
        // the GIL holder's, which may be another thread (never dereferenced
        // then: it could be freed meanwhile), so it must be one of ours.
        let ours = cfg!(Py_3_12)
            || current == own_thread_state(owner, word)
            || owner
                .subinterpreter_states
                .find(|state| state.tstate == current)
                .is_some();
        // SAFETY: this thread's own state, attached: it holds that state's GIL.
        (!current.is_null() && ours).then(|| unsafe { ffi::PyThreadState_GetInterpreter(current) })
    } else {
        None
    };
    if !was_busy {
        gate::leave(&thread.busy);
    }
    held
}

/// True when a pybridge scope is open on the calling thread and the GIL is
/// really its own right now (a ctypes call inside the scope, for one, runs
/// without it). Never enters the gate.
#[inline(always)]
pub(crate) fn scope_holds_gil(thread: CurrentThread) -> bool {
    let owner = thread.owner();
    // SAFETY: a plain load of the current thread state.
    owner.frames.depth() > 0
        && unsafe { ffi::compat::PyThreadState_GetUnchecked() } == owner.tstate.get()
}
