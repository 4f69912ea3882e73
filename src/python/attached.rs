//! A thread state of one of pybridge's own threads (the engine thread's main
//! state, a keeper's state in its sub-interpreter) attached for a stretch of
//! code. `lifecycle/` and the keepers use it instead of raw
//! `PyEval_RestoreThread`/`PyEval_SaveThread` pairs: every early return gives
//! the GIL back, and the GIL token (`Python<'_>`) comes from the guard.

use std::marker::PhantomData;

use pyo3::{Python, ffi};

/// The engine thread's main thread state in the interpreter it started,
/// detached between the engine's uses of it. Only the engine thread attaches it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineMainState(*mut ffi::PyThreadState);

impl EngineMainState {
    /// # Safety
    /// `tstate` is the calling (engine) thread's main state, detached.
    pub(crate) unsafe fn new(tstate: *mut ffi::PyThreadState) -> EngineMainState {
        EngineMainState(tstate)
    }

    /// The interpreter it belongs to (the main interpreter), for the gate.
    pub(crate) fn interpreter(self) -> *mut ffi::PyInterpreterState {
        // SAFETY: a live state of a running interpreter; a plain read.
        unsafe { ffi::PyThreadState_GetInterpreter(self.0) }
    }

    /// Attaches it on the engine thread, waiting for the main GIL.
    ///
    /// # Safety
    /// Called on the engine thread, with nothing attached, before finalization.
    pub(crate) unsafe fn attach(self) -> Attached {
        // SAFETY: the caller's promise.
        unsafe { Attached::restore(self.0) }
    }
}

/// The GIL held on a thread state of the calling thread; given back on drop.
pub(crate) struct Attached {
    /// `!Send`: the GIL belongs to the thread that took it.
    _thread_bound: PhantomData<*mut ffi::PyThreadState>,
}

impl Attached {
    /// Attaches `tstate`, waiting for its interpreter's GIL.
    ///
    /// # Safety
    /// `tstate` is the calling thread's own state, of an interpreter that
    /// lives while the guard does, and no state is attached on this thread.
    pub(crate) unsafe fn restore(tstate: *mut ffi::PyThreadState) -> Attached {
        // SAFETY: the caller's promise.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        Attached {
            _thread_bound: PhantomData,
        }
    }

    /// The GIL token for code that needs the GIL while the guard lives.
    pub(crate) fn python(&self) -> Python<'_> {
        // SAFETY: this guard holds the GIL on the calling thread.
        unsafe { Python::assume_attached() }
    }

    /// Gives the GIL away while `body` runs (it may wait for threads that
    /// need it), then takes it back on the same state.
    pub(crate) fn released<T>(&mut self, body: impl FnOnce() -> T) -> T {
        // SAFETY: this guard holds the GIL; the saved state is restored below.
        let tstate = unsafe { ffi::PyEval_SaveThread() };
        let result = body();
        // SAFETY: the state saved above, still this thread's own.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        result
    }

    /// Ends the guard without giving the GIL back: what comes next consumes
    /// the attached state itself (`Py_FinalizeEx`, `Py_EndInterpreter`).
    pub(crate) fn consumed(self) {
        std::mem::forget(self);
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: this guard holds the GIL on the calling thread.
        unsafe { ffi::PyEval_SaveThread() };
    }
}

/// Runs `body` under the GIL of an interpreter pybridge did not start (a
/// guest engine's host interpreter), taken the `PyGILState` way.
///
/// # Safety
/// The interpreter `PyGILState` works with is alive on this thread.
pub(crate) unsafe fn with_gil_state<T>(body: impl FnOnce(Python<'_>) -> T) -> T {
    // SAFETY: the caller's promise.
    let gstate = unsafe { ffi::PyGILState_Ensure() };
    // SAFETY: the Ensure above holds the GIL.
    let result = body(unsafe { Python::assume_attached() });
    // SAFETY: pairs with the Ensure above.
    unsafe { ffi::PyGILState_Release(gstate) };
    result
}
