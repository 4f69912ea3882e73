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

use crate::runtime::gate::{self, EngineWord, GateState};

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
/// and a `try_lock` that never waits; then CPython's own after-fork step when
/// the parent took its before-fork one.
extern "C" fn in_child() {
    let word = gate::load();
    let engine_idle = ENGINE_IDLE.get().is_some_and(|idle| idle());
    if word.state() == GateState::Closed && engine_idle {
        gate::forget_membarrier();
    } else {
        gate::store(EngineWord::new(word.generation(), GateState::Forked));
    }
    if let Some(steps) = STEPS.get() {
        (steps.in_child)();
    }
}
