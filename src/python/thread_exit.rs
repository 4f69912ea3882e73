//! What a host thread's exit frees: its interpreter switches unwound, its
//! main-interpreter state, then its states in sub-interpreters, each under its
//! own GIL, when and only when the engine lets it touch CPython.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::python::interpreter_switch::restore_previous_interpreter;
use crate::python::state_quarantine;
use crate::runtime::frames::{Frame, ScopeEntry, ScopeFrame};
use crate::runtime::gate::{self, GateState};
use crate::runtime::interpreters;
use crate::runtime::stats;
use crate::runtime::thread_slot::{Activity, CurrentThread};
use crate::runtime::token::TokenKind;

/// Frees the exiting thread's own thread states, if the engine still runs:
/// unwinds interpreter switches, then the main state (which lets go of the
/// main GIL), then the states in sub-interpreters, each under its own GIL.
pub(crate) fn release_on_thread_exit(thread: CurrentThread) {
    leave_interpreter_frames_on_exit(thread);
    release_main_state_on_exit(thread);
    release_subinterpreter_states_on_exit(thread);
    // Nothing on this thread attaches a state any more.
    let owner = thread.owner();
    state_quarantine::release(owner.last_attached.replace(std::ptr::null_mut()));
}

/// A thread that exits inside an interpreter scope (a host bug) first gives
/// that interpreter's GIL back, deleting its state there, and unwinds to the
/// interpreter it came from, innermost switch first. The scopes go with the
/// first switch (none of them holds a GIL any more); regions stay, so the main
/// state's release below still sees the thread inside one.
fn leave_interpreter_frames_on_exit(thread: CurrentThread) {
    let owner = thread.owner();
    while let Some((index, switch)) = owner.frames.innermost_switch() {
        let tstate = owner.tstate.get();
        // SAFETY: a plain load of the current thread state.
        if unsafe { ffi::compat::PyThreadState_GetUnchecked() } == tstate {
            // SAFETY: this thread holds the sub-interpreter's GIL on its own
            // state. Clear may run Python code that calls back into pybridge
            // on this thread: it sees the scopes still open, and the frames
            // hold no borrow across it.
            unsafe {
                ffi::PyThreadState_Clear(tstate);
                ffi::PyThreadState_DeleteCurrent();
            }
            stats::THREAD_STATES_DELETED.fetch_add(1, Ordering::Relaxed);
            owner
                .subinterpreter_states
                .retain(|state| state.tstate != tstate);
        }
        owner.frames.drop_switch_and_scopes(index);
        restore_previous_interpreter(thread, &switch);
    }
}

/// Frees the exiting thread's main-interpreter state (after any interpreter
/// frames were unwound), taking the GIL for it unless the thread holds it.
fn release_main_state_on_exit(thread: CurrentThread) {
    let owner = thread.owner();
    let tstate = owner.tstate.get();
    if tstate.is_null() || !owner.owns_tstate.get() {
        return;
    }
    let depth = owner.frames.depth();
    let inside = depth > 0 || owner.frames.in_allow_threads_region();
    if inside {
        log::warn!(
            "{} exits with {} GIL scope(s) and {} allow-threads region(s) open; closing them",
            thread.describe(),
            depth,
            owner
                .frames
                .to_vec()
                .iter()
                .filter(|frame| matches!(frame, Frame::AllowThreads(_)))
                .count()
        );
    }
    let holding = depth > 0 && !owner.frames.borrowed();
    let word = gate::enter(&thread.busy);
    let ours = owner.generation.get() == word.generation();
    // A thread inside has been busy all along, so a `Finalizing` it sees is
    // only the shutdown's last look, which it undoes when it finds this thread
    // busy (`close_gate_for_good`): the interpreter lives on until this thread
    // leaves. Not admitting it there made it exit with the GIL held, and the
    // shutdown then waited for that GIL for ever (fuzzer under TSan).
    // A keeper thread exits only when the engine's end retires it, before
    // Py_FinalizeEx and without the main GIL held: it frees its own state,
    // which 3.14+ would otherwise leak (finalization no longer frees the
    // states of other threads, which a parked daemon thread may still use).
    let retired_keeper = thread.internal.load(Ordering::Relaxed);
    let admitted = ours
        && (word.state() == GateState::Running
            || ((inside || retired_keeper)
                && matches!(
                    word.state(),
                    GateState::ShuttingDown | GateState::Finalizing
                )));
    if admitted {
        // SAFETY: admitted by the gate; the state is this thread's own. Clear may
        // run Python code that calls back into pybridge on this thread: it sees
        // an open scope (one that borrowed the GIL, if none was open: its
        // token is never handed out), and the frames hold no borrow across it.
        unsafe {
            if !holding {
                ffi::PyEval_RestoreThread(tstate);
            }
            if depth == 0 {
                owner.frames.push(Frame::Scope(ScopeFrame {
                    token: owner.issue(thread.id, TokenKind::Gil),
                    depth: 1,
                    entry: ScopeEntry::Borrowed,
                }));
            }
            ffi::PyThreadState_Clear(tstate);
            ffi::PyThreadState_DeleteCurrent();
        }
        stats::THREAD_STATES_DELETED.fetch_add(1, Ordering::Relaxed);
    } else if ours && word.state() != GateState::Closed {
        // Left in the interpreter's list: Py_FinalizeEx frees it. Deleting it from
        // another thread is not safe: on 3.12+ that unbinds the *deleting* thread's
        // PyGILState state (unbind_gilstate_tstate clears the caller's TSS slot).
        log::debug!(
            "{} exited during a shutdown; its thread state is left for finalization",
            thread.describe()
        );
    }
    owner.tstate.set(std::ptr::null_mut());
    owner.frames.clear();
    thread.set_activity(Activity::Idle);
    gate::leave(&thread.busy);
}

/// A thread's exit frees its states in sub-interpreters that still run (each
/// under that interpreter's GIL); states in interpreters being destroyed are
/// freed by their destroyer. Runs after the main state is gone, so the thread
/// holds no GIL: attaching a sub state while the main one is attached is a
/// deadlock on a shared GIL (3.11) and a fatal error on 3.12/3.13.
fn release_subinterpreter_states_on_exit(thread: CurrentThread) {
    let owner = thread.owner();
    // SAFETY: a plain load of the current thread state.
    let attached = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    if !attached.is_null() {
        // Still attached somewhere (the engine was shutting down and the main
        // state was left for finalization): leave the sub states to their
        // interpreters' ends rather than attach a second state.
        log::debug!(
            "{} exits attached to a thread state; its sub-interpreter states are left to their interpreters' ends",
            thread.describe()
        );
        owner.subinterpreter_states.clear();
        return;
    }
    for state in owner.subinterpreter_states.to_vec() {
        let Ok(record) = interpreters::enter(state.interpreter) else {
            continue;
        };
        // SAFETY: the entry keeps the interpreter alive; the state is this
        // thread's own and not current (it holds no GIL here).
        unsafe {
            ffi::PyEval_RestoreThread(state.tstate);
            ffi::PyThreadState_Clear(state.tstate);
            ffi::PyThreadState_DeleteCurrent();
        }
        stats::THREAD_STATES_DELETED.fetch_add(1, Ordering::Relaxed);
        record.leave();
    }
    owner.subinterpreter_states.clear();
}
