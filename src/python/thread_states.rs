//! Each host thread's persistent Python thread state: found or made, noted
//! when attached, and who may touch CPython while the engine closes.
//!
//! Why persistent thread states: `PyGILState_Ensure` on a thread without one
//! creates and deletes a thread state per call (about 380 ns against 60 ns),
//! loses `threading.local`, and breaks extensions that cache thread states.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::abi::status::*;
use crate::python::state_quarantine;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, EngineWord, GateState};
use crate::runtime::stats;
use crate::runtime::thread_slot::{CurrentThread, OwnerState, ThreadSlot};

/// The gate is not open: only threads the shutdown is already waiting for, or
/// threads that hold the GIL anyway, may go on (they cannot delay shutdown).
/// `inside_already` is never true on the engine thread, whose finalization is
/// real.
#[cold]
#[inline(never)]
pub(crate) fn admit_while_closing(
    owner: &OwnerState,
    word: EngineWord,
    inside_already: bool,
) -> Result<()> {
    match word.state() {
        GateState::Closed => Err(Error::not_initialized()),
        GateState::Running => Ok(()),
        // Busy all along, so a `Finalizing` seen now is the shutdown's last
        // look, undone when it finds this thread busy (`close_gate_for_good`).
        GateState::ShuttingDown | GateState::Finalizing if inside_already => Ok(()),
        GateState::ShuttingDown => {
            if thread_holds_gil(owner, word) {
                Ok(())
            } else {
                Err(Error::shutting_down())
            }
        }
        // The engine thread too: Python code run by finalization (atexit, __del__,
        // free_user_data) must not make handles that would outlive the interpreter.
        GateState::Finalizing => Err(Error::shutting_down()),
        // A fork() child: the thread that forked goes on inside its open scopes
        // and regions, and so does code that holds the GIL anyway (Python code
        // after os.fork() calling a host function); nothing else gets in.
        GateState::Forked if inside_already || thread_holds_gil(owner, word) => Ok(()),
        GateState::Forked => Err(Error::forked()),
    }
}

/// A state pybridge adopted from `PyGILState` belongs to whoever created it: a
/// host that calls `PyGILState_Release` to zero deletes it under us. Checked on
/// the adopted path only (a thread-specific-storage read).
#[inline(always)]
pub(crate) fn adopted_state_gone(owner: &OwnerState) -> bool {
    // SAFETY: callers passed the gate; a plain lookup.
    !owner.owns_tstate.get()
        && unsafe { ffi::PyGILState_GetThisThreadState() } != owner.tstate.get()
}

/// After attaching `tstate` on this thread: CPython now reports it as the
/// thread's PyGILState state; remember it if pybridge made it
/// (`OwnerState::last_attached`).
#[inline(always)]
pub(crate) fn note_attached(owner: &OwnerState, tstate: *mut ffi::PyThreadState) {
    let previous = owner.last_attached.get();
    let made = tstate == owner.tstate.get() && owner.owns_tstate.get();
    owner
        .last_attached
        .set(if made { tstate } else { std::ptr::null_mut() });
    if previous != tstate && !previous.is_null() {
        // Attaching `tstate` wrote into `previous` for the last time.
        state_quarantine::release(previous);
    }
}

/// After `PyThreadState_New` on this thread: CPython made the new state the
/// thread's PyGILState state at once if the thread had none, and then points
/// at the previous one no more; otherwise that happens at its first attach
/// (`note_attached`).
pub(crate) fn note_created(owner: &OwnerState, created: *mut ffi::PyThreadState) {
    // SAFETY: a plain read of this thread's PyGILState slot.
    if unsafe { ffi::PyGILState_GetThisThreadState() } == created {
        let previous = owner.last_attached.replace(created);
        state_quarantine::release(previous);
    }
}

/// Finds or creates this thread's thread state for the running interpreter.
#[cold]
#[inline(never)]
pub(crate) fn attach_thread_state(owner: &OwnerState, generation: u32) -> Result<()> {
    // SAFETY: the gate admitted us; these calls need no GIL.
    let existing = unsafe { ffi::PyGILState_GetThisThreadState() };
    // The state pybridge attached last is reported too, though it may belong to
    // a sub-interpreter or be freed with an ended interpreter (OwnerState::last_attached).
    if !existing.is_null() && existing != owner.last_attached.get() {
        // A Python thread, or a thread that used PyGILState itself: one OS thread
        // must not get a second state (that deadlocked on 3.11).
        owner.tstate.set(existing);
        owner.owns_tstate.set(false);
        owner.last_attached.set(std::ptr::null_mut());
    } else {
        // SAFETY: as above; PyThreadState_New needs no GIL, and on its own thread
        // the new state becomes the thread's PyGILState state (3.11-3.13; on
        // 3.14+ when it is first attached).
        let created = crate::runtime::fork::outside_a_fork(|| unsafe {
            ffi::PyThreadState_New(gate::interpreter())
        });
        if created.is_null() {
            return Err(Error::new(
                PYB_E_PYTHON,
                "CPython could not allocate a thread state for this thread (out of memory?)",
            ));
        }
        stats::THREAD_STATES_CREATED.fetch_add(1, Ordering::Relaxed);
        owner.tstate.set(created);
        owner.owns_tstate.set(true);
        note_created(owner, created);
    }
    owner.generation.set(generation);
    owner.generation_start.set(owner.next_serial());
    Ok(())
}

/// The thread state CPython would call this thread's own.
pub(crate) fn own_thread_state(owner: &OwnerState, word: EngineWord) -> *mut ffi::PyThreadState {
    let tstate = owner.tstate.get();
    if owner.generation.get() == word.generation() && !tstate.is_null() {
        tstate
    } else {
        // SAFETY: callers passed the gate; a plain lookup.
        unsafe { ffi::PyGILState_GetThisThreadState() }
    }
}

/// True when this thread holds the GIL on its own thread state. Call only from
/// inside the gate with CPython alive.
pub(crate) fn thread_holds_gil(owner: &OwnerState, word: EngineWord) -> bool {
    // SAFETY: a plain load (global on 3.11, thread-local from 3.12).
    let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    !current.is_null() && current == own_thread_state(owner, word)
}

pub(crate) fn may_touch_cpython(slot: &ThreadSlot, word: EngineWord) -> bool {
    match word.state() {
        // The callers go on to ask whether this thread holds the GIL.
        GateState::Running | GateState::ShuttingDown | GateState::Forked => true,
        GateState::Finalizing => slot.is_engine_thread(),
        GateState::Closed => false,
    }
}

/// Gives the thread a state in the main interpreter if it has none yet (no GIL taken).
pub(crate) fn ensure_main_thread_state(thread: CurrentThread) -> Result<()> {
    let owner = thread.owner();
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    let result = if word.state() != GateState::Running && !was_busy {
        admit_while_closing(owner, word, false)
    } else {
        Ok(())
    };
    let result = result.and_then(|()| {
        if owner.generation.get() != word.generation() || owner.tstate.get().is_null() {
            attach_thread_state(owner, word.generation())
        } else {
            Ok(())
        }
    });
    if !was_busy {
        gate::leave(&thread.busy);
    }
    result
}
