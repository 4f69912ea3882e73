//! Nested GIL scopes on a thread's own state (`pyb_gil_acquire`/`release`):
//! the outermost passes the gate and attaches the state, inner ones count,
//! and a scope opened after code inside gave the GIL away takes it back.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::python::thread_states::{
    admit_while_closing, adopted_state_gone, attach_thread_state, note_attached,
};
use crate::python::token_diagnostics::misplaced_token;
use crate::runtime::error::{Error, Result};
use crate::runtime::frames::{Frame, ScopeEntry, ScopeFrame};
use crate::runtime::gate::{self, GateState};
use crate::runtime::gil_stats;
use crate::runtime::thread_slot::{Activity, CurrentThread};
use crate::runtime::token::{MAX_DEPTH, TokenKind, TokenValue};

/// Issues the token of a new GIL scope and pushes it as the innermost frame.
#[inline(always)]
fn open_scope(thread: CurrentThread, depth: u32, entry: ScopeEntry) -> TokenValue {
    let owner = thread.owner();
    let token = owner.issue(thread.id, TokenKind::Gil);
    owner.frames.push(Frame::Scope(ScopeFrame {
        token,
        depth,
        entry,
    }));
    token
}

#[inline(always)]
pub(crate) fn acquire(thread: CurrentThread) -> Result<TokenValue> {
    let owner = thread.owner();
    let depth = owner.frames.depth();
    if depth > 0 {
        if depth >= MAX_DEPTH {
            return Err(Error::invalid_argument(format!(
                "GIL scopes nest at most {MAX_DEPTH} deep on one thread; release some first"
            )));
        }
        // An open scope normally means the GIL is held, but code inside it may
        // have given the GIL away (a ctypes call, Py_BEGIN_ALLOW_THREADS) and
        // called back into pybridge: then this scope must take it back.
        // SAFETY: a plain load (global on 3.11, thread-local from 3.12).
        if unsafe { ffi::compat::PyThreadState_GetUnchecked() } != owner.tstate.get() {
            return retake_nested(thread, depth + 1);
        }
        return Ok(open_scope(thread, depth + 1, ScopeEntry::Nested));
    }
    acquire_outermost(thread)
}

#[cold]
#[inline(never)]
fn retake_nested(thread: CurrentThread, depth: u32) -> Result<TokenValue> {
    let owner = thread.owner();
    thread.set_activity(Activity::WaitingForGil);
    let wait = gil_stats::wait_begins();
    // SAFETY: this thread's own state, saved by whoever released the GIL under
    // the open scope; the thread is busy, so the interpreter is alive.
    unsafe { ffi::PyEval_RestoreThread(owner.tstate.get()) };
    note_attached(owner, owner.tstate.get());
    gil_stats::gil_taken(thread, wait);
    thread.set_activity(Activity::HoldingGil);
    Ok(open_scope(thread, depth, ScopeEntry::Retook))
}

#[inline]
fn acquire_outermost(thread: CurrentThread) -> Result<TokenValue> {
    let owner = thread.owner();
    let inside_already = owner.frames.in_allow_threads_region();
    let word = gate::enter(&thread.busy);
    if word.state() != GateState::Running {
        let inside_already = inside_already && !thread.is_engine_thread();
        if let Err(error) = admit_while_closing(owner, word, inside_already) {
            if !inside_already {
                gate::leave(&thread.busy);
            }
            return Err(error);
        }
    }
    if owner.generation.get() != word.generation()
        || owner.tstate.get().is_null()
        || adopted_state_gone(owner)
    {
        if let Err(error) = attach_thread_state(owner, word.generation()) {
            if !inside_already {
                gate::leave(&thread.busy);
            }
            return Err(error);
        }
    }
    // SAFETY: the gate admitted us, so the interpreter is alive; reading the
    // current thread state is a plain load.
    let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    // A thread that already holds the GIL on its own thread state would deadlock
    // on itself if it restored that state again (checked on 3.11-3.13).
    let tstate = owner.tstate.get();
    let borrowed = current == tstate;
    if !borrowed {
        thread.set_activity(Activity::WaitingForGil);
        let wait = gil_stats::wait_begins();
        // SAFETY: `tstate` is this thread's own, of the running interpreter.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        note_attached(owner, tstate);
        gil_stats::gil_taken(thread, wait);
    }
    thread.set_activity(Activity::HoldingGil);
    let epoch = thread.epoch.load(Ordering::Relaxed).wrapping_add(1);
    thread.epoch.store(epoch, Ordering::Relaxed);
    let entry = if borrowed {
        ScopeEntry::Borrowed
    } else {
        ScopeEntry::Took
    };
    Ok(open_scope(thread, 1, entry))
}

/// Which scope `release_scope` closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    Nested,
    /// The thread's outermost: it may be the scope that entered an interpreter.
    Outermost,
}

/// Closes the innermost scope `value` and gives the GIL back if it was the
/// outermost; switching back out of an entered interpreter is the caller's
/// (`gil::release`).
#[inline(always)]
pub(crate) fn release_scope(thread: CurrentThread, value: TokenValue) -> Result<Closed> {
    let owner = thread.owner();
    // Only the innermost scope of the current nesting (no-op regions aside) closes.
    let Some(entry) = owner.frames.close_scope(value) else {
        return Err(misplaced_token(value, Some(thread)));
    };
    match entry {
        ScopeEntry::Nested => Ok(Closed::Nested),
        ScopeEntry::Retook => {
            gil_stats::gil_given_away(thread);
            // Hand the GIL back to whoever gave it away under the enclosing scope.
            // SAFETY: this thread holds the GIL on `owner.tstate`.
            unsafe { ffi::PyEval_SaveThread() };
            Ok(Closed::Nested)
        }
        ScopeEntry::Took | ScopeEntry::Borrowed => {
            release_outermost(thread, entry == ScopeEntry::Borrowed);
            Ok(Closed::Outermost)
        }
    }
}

/// After the outermost scope of the current nesting closed: gives the GIL away
/// unless the scope borrowed it, and leaves the gate unless a region will take
/// a GIL back.
#[inline(always)]
fn release_outermost(thread: CurrentThread, borrowed: bool) {
    let owner = thread.owner();
    if !borrowed {
        thread.set_activity(Activity::Idle);
        gil_stats::gil_given_away(thread);
        // SAFETY: this thread holds the GIL on `owner.tstate`.
        unsafe { ffi::PyEval_SaveThread() };
    } else {
        // The thread keeps the GIL, but no longer through pybridge: a hold
        // timed inside this scope (after an allow-threads region) ends here.
        owner.gil_hold_start.set(0);
    }
    if owner.frames.in_allow_threads_region() {
        thread.set_activity(Activity::AllowThreads);
    } else {
        thread.set_activity(Activity::Idle);
        gate::leave(&thread.busy);
    }
}
