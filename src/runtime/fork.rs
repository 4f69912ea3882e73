//! `fork()` in a process that runs the engine.
//!
//! A child has one thread: the one that forked. The engine thread, every other
//! host thread and every Python thread are gone, so the interpreter cannot be
//! shut down (finalization runs on the engine thread) and a GIL held by another
//! thread at the fork is never released. The child's copy of the engine is
//! therefore closed for good: every call that would start or enter it returns
//! `PYB_E_FORKED` at once, before taking any lock (a lock held by a vanished
//! thread would hang it). Only the forking thread's scopes that were already
//! open go on working, which is what Python's own `os.fork()` and
//! multiprocessing's fork start method need: the child runs Python on that
//! thread, inside the host's scope, and leaves with `os._exit`.
//!
//! A process forked while no engine runs (never started, or cleanly shut down,
//! with no lifecycle step in progress) is an ordinary process: it may start its
//! own engine.

use std::sync::OnceLock;

use parking_lot::RwLock;

use crate::runtime::gate::{self, EngineWord, GateState};

/// Shared by a host thread making a thread state without the GIL, exclusive
/// from the forking thread's `PyOS_BeforeFork` to the fork's end
/// (`python::fork`). Making a state takes CPython's runtime lock (HEAD_LOCK)
/// without the GIL, and on 3.10/3.11 neither `PyOS_BeforeFork` takes that
/// lock nor does `PyOS_AfterFork_Child` re-create it before taking it again: a
/// fork in the middle of one hung the child for ever in
/// `_PyThreadState_DeleteExcept` (tests/c/fuzz_api.c, seed 97 with
/// interrupts, 3.11.7, 1 seed in about 300 on a loaded machine). 3.12+ take the
/// lock in `PyOS_BeforeFork`.
static STATES_BEING_MADE: RwLock<()> = RwLock::new(());

/// Runs `make`, which makes a thread state without the GIL, where no fork
/// that runs CPython's fork protocol can happen meanwhile.
pub(crate) fn outside_a_fork<R>(make: impl FnOnce() -> R) -> R {
    let _shared = STATES_BEING_MADE.read();
    make()
}

/// Waits until no thread is making a state and no other fork holds them off,
/// and keeps new ones from starting until `resume_state_making`. The forking
/// thread's prepare step; a thread making one needs no GIL, so it finishes
/// while the forking thread waits.
pub(crate) fn hold_off_state_making() {
    std::mem::forget(STATES_BEING_MADE.write());
}

/// `hold_off_state_making` where that needs no wait; false (and nothing held)
/// otherwise.
pub(crate) fn try_hold_off_state_making() -> bool {
    STATES_BEING_MADE
        .try_write()
        .map(std::mem::forget)
        .is_some()
}

/// # Safety
/// The calling thread called `hold_off_state_making` (in the parent, or the
/// child's copy of that thread) and has not resumed since.
pub(crate) unsafe fn resume_state_making() {
    // SAFETY: the exclusive hold `hold_off_state_making` took and forgot.
    unsafe { STATES_BEING_MADE.force_unlock_write(parking_lot::lock_api::GuardNoSend::new()) };
}

/// Asks the engine whether nothing runs and no lifecycle step is in progress.
/// Must not wait: it runs in the child, where a lock may belong to a thread
/// that is gone.
static ENGINE_IDLE: OnceLock<fn() -> bool> = OnceLock::new();

/// What CPython needs around a fork (`python::fork`): before it on the
/// forking thread, then in the parent, then in the child.
#[derive(Clone, Copy)]
pub(crate) struct ForkSteps {
    pub before: fn(),
    pub in_parent: fn(),
    pub in_child: fn(),
}

static STEPS: OnceLock<ForkSteps> = OnceLock::new();

/// Registers the fork handlers once per process, before the first engine
/// starts; `engine_idle` answers for the engine (see `ENGINE_IDLE`).
pub(crate) fn watch_for_fork(engine_idle: fn() -> bool, steps: ForkSteps) {
    ENGINE_IDLE.get_or_init(|| {
        STEPS.get_or_init(|| steps);
        if let Err(error) = crate::sys::process::on_fork(before, in_parent, in_child) {
            log::warn!("pthread_atfork failed ({error}); a fork() child would not be fenced off");
        }
        engine_idle
    });
}

extern "C" fn before() {
    if let Some(steps) = STEPS.get() {
        (steps.before)();
    }
}

extern "C" fn in_parent() {
    if let Some(steps) = STEPS.get() {
        (steps.in_parent)();
    }
}

/// Runs in the child, on its only thread, right after `fork()`: only atomics,
/// and `try_lock`s that never wait; then CPython's own after-fork step when
/// the parent took its before-fork one.
extern "C" fn in_child() {
    let word = gate::load();
    // An ordinary process only where no thread that is gone held a lock the
    // child's own engine would need (a thread registering or exiting at the
    // fork); otherwise fenced off like a child of a running engine.
    let engine_idle = ENGINE_IDLE.get().is_some_and(|idle| idle())
        && crate::runtime::thread_slot::bookkeeping_unlocked();
    if word.state() == GateState::Closed && engine_idle {
        gate::forget_membarrier();
    } else {
        gate::store(EngineWord::new(word.generation(), GateState::Forked));
    }
    if let Some(steps) = STEPS.get() {
        (steps.in_child)();
    }
}
