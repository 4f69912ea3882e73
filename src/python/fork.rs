//! CPython's own fork protocol around a host's raw `fork()` from a thread
//! that holds the main GIL through pybridge.
//!
//! The child keeps that thread's open scopes (see `runtime::fork`), but every
//! other thread is gone, and with them any lock they held at the fork: a
//! thread waiting for the GIL holds the GIL's internal mutex for a moment, and
//! a child that then released its scope hung in `drop_gil` for ever (found by
//! tests/c/fuzz_api.c, about 1 fork in 20 under load). Python's `os.fork()`
//! avoids this with `PyOS_BeforeFork` in the parent and `PyOS_AfterFork_Child`
//! in the child, which re-create those locks; pybridge does the same for a raw
//! `fork()`, unless `os.fork()` is the caller (it does it itself: doing it
//! twice would take CPython's runtime lock twice), and unless sub-interpreters
//! are alive (see `before_fork`): then a child that runs Python may still hang
//! when it lets the GIL go, a limit the README states.

use std::cell::Cell;

use pyo3::{Python, ffi};

use crate::python::gil;
use crate::runtime::thread_slot::ThreadSlot;

thread_local! {
    /// Set between this thread's `PyOS_BeforeFork` and the `PyOS_AfterFork_*`
    /// that ends it (in the parent and, copied, in the child). Per thread:
    /// glibc runs the fork handlers of threads that fork at once side by side,
    /// and a process-wide flag let a thread forking without a scope end
    /// another's protocol: `PyOS_AfterFork_Parent` without the import lock
    /// (a fatal error), that lock never released (the next fork from a scope
    /// hung), and a child without `PyOS_AfterFork_Child` (hung in `drop_gil`).
    /// Found by tests/c/fuzz_api.c on 3.10 (seeds 42, 311 and 395 with
    /// interrupts); pinned by tests/fork.rs. `const` and without a destructor,
    /// so reading it in a fork handler allocates nothing.
    static BEFORE_FORK_CALLED: Cell<bool> = const { Cell::new(false) };
}

/// `pthread_atfork`'s prepare step, in the parent on the forking thread.
pub(crate) fn before_fork() {
    let Some(thread) = ThreadSlot::existing() else {
        return;
    };
    // Only a scope in the main interpreter whose GIL this thread really holds:
    // CPython's fork protocol is the main interpreter's.
    if !thread.current_interpreter().is_main() || !gil::scope_holds_gil(thread) {
        return;
    }
    // SAFETY: the check above: this thread holds the main GIL now.
    let py = unsafe { Python::assume_attached() };
    // os.fork() on this thread runs the protocol itself.
    if crate::python::interpreter::python_is_forking(py, thread.ident()) != Some(false) {
        return;
    }
    // No thread is in the middle of making a state from here to the fork's
    // end: those that are finish without the GIL, which this thread holds.
    // Released by the after-fork steps, in the parent and in the child.
    if !crate::runtime::fork::try_hold_off_state_making() {
        // Another thread's fork holds it, in its protocol, which may need the
        // GIL back before it ends: `PyOS_BeforeFork` runs Python's
        // `register_at_fork` hooks and waits for the import lock, and either
        // lets the GIL go. Waiting here with the GIL held hung both forks.
        // SAFETY: this thread holds the main GIL on its own state (checked
        // above), and takes it back on the same state.
        unsafe {
            let own = ffi::PyEval_SaveThread();
            crate::runtime::fork::hold_off_state_making();
            ffi::PyEval_RestoreThread(own);
        }
    }
    // With sub-interpreters alive, `PyOS_AfterFork_Child` deletes them in the
    // child and can wait there for ever on a lock of theirs that a thread
    // working in one held at the fork (seen on 3.11; os.fork() has the same
    // limit). Their number cannot grow from here to the fork: making one
    // needs the main GIL, which this thread holds again.
    if !crate::runtime::interpreters::all().is_empty() {
        // SAFETY: the hold-off just taken, on this thread.
        unsafe { crate::runtime::fork::resume_state_making() };
        return;
    }
    // SAFETY: main GIL held on this thread's own state, as os.fork() has it.
    unsafe { ffi::PyOS_BeforeFork() };
    BEFORE_FORK_CALLED.set(true);
}

/// `pthread_atfork`'s parent step.
pub(crate) fn after_fork_in_parent() {
    if BEFORE_FORK_CALLED.replace(false) {
        // SAFETY: pairs the `PyOS_BeforeFork` and the hold-off above, on the
        // same thread.
        unsafe {
            ffi::PyOS_AfterFork_Parent();
            crate::runtime::fork::resume_state_making();
        }
    }
}

/// `pthread_atfork`'s child step, on the child's only thread (the forking one).
pub(crate) fn after_fork_in_child() {
    if BEFORE_FORK_CALLED.replace(false) {
        // SAFETY: pairs the parent's `PyOS_BeforeFork`; this thread holds the
        // main GIL on the state it held it on before the fork, and the
        // hold-off `before_fork` took (the child's copy; no other thread exists).
        unsafe {
            ffi::PyOS_AfterFork_Child();
            crate::runtime::fork::resume_state_making();
        }
    }
}
