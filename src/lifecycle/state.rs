//! The engine's state machine: one lifecycle, guarded by one lock, whose
//! phase decides the gate hosts see; `Lifecycle::transition` is the one place
//! that moves it, and every waiter waits on `CHANGED`.

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, EngineWord, GateState};

pub(super) static LIFECYCLE: Mutex<Lifecycle> = Mutex::new(Lifecycle::new());

pub(super) static CHANGED: Condvar = Condvar::new();

/// The engine's lifecycle. Each phase implies the gate state hosts see
/// (`Phase::gate`); `Lifecycle::transition` is the one place that moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Uninitialized,
    Initializing,
    Running,
    /// A shutdown waits for threads to leave; it may still be called off.
    ShuttingDown,
    /// The gate is closed for good: `Py_FinalizeEx` runs or is about to (or a
    /// guest engine detaches). Also where an abandoned engine stays
    /// (`Lifecycle::abandoned`).
    Finalizing,
}

impl Phase {
    pub(super) fn gate(self) -> GateState {
        match self {
            Phase::Uninitialized | Phase::Initializing => GateState::Closed,
            Phase::Running => GateState::Running,
            Phase::ShuttingDown => GateState::ShuttingDown,
            Phase::Finalizing => GateState::Finalizing,
        }
    }
}

/// How a shutdown ended. Set once; every call waiting for that shutdown
/// holds the cell, so each reads the same outcome however late it wakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Finalized,
    /// The deadline passed before the commit; the engine runs on.
    CalledOff(String),
    /// Past the point of no return, a sub-interpreter was still alive at the
    /// deadline, so `Py_FinalizeEx` (a fatal error then) was never called:
    /// Python stays initialized for good (`Lifecycle::abandoned`).
    Abandoned(String),
}

/// Where a shutdown's outcome is published (`OnceLock::get`: `None` while it runs).
pub(super) type OutcomeCell = Arc<OnceLock<Outcome>>;

/// Why a shutdown can no longer be called off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Commitment {
    /// Threads were interrupted (`PYB_SHUTDOWN_INTERRUPT`).
    Interrupted,
    /// The gate closed for good: `Py_FinalizeEx` runs or is about to.
    Finalizing,
}

#[derive(Debug)]
pub(super) struct ShutdownRequest {
    pub(super) serial: u64,
    pub(super) interrupt: bool,
    pub(super) taken_by_engine: bool,
    /// Set, under the lifecycle lock, before the first interrupt is
    /// delivered: from then on the shutdown cannot be called off. (Its other
    /// point of no return, the gate closed for good, is `Phase::Finalizing`.)
    pub(super) interrupted: bool,
    /// The latest deadline of the calls waiting for this shutdown, the first
    /// and any that joined it (`None`: one waits without limit). Past the
    /// point of no return it is what the engine gives the sub-interpreters to
    /// end (`EngineShutdown::end_subinterpreters`).
    pub(super) deadline: Option<Instant>,
    pub(super) outcome: OutcomeCell,
    /// What the engine thread last found blocking it, for the timeout
    /// message; `None` until it first reports.
    pub(super) blocker: Option<String>,
}

pub(super) struct Lifecycle {
    pub(super) phase: Phase,
    pub(super) generation: u32,
    /// The thread that started and will finalize the interpreter; after a
    /// shutdown, that thread until the next start joins it. None for a guest
    /// engine (one in an interpreter the host started), which has none.
    pub(super) engine_thread: Option<EngineThread>,
    /// The shutdown in progress: taken out when its outcome is set
    /// (`Lifecycle::settle`), so a later shutdown starts afresh.
    pub(super) request: Option<ShutdownRequest>,
    pub(super) request_serial: u64,
    /// Native ids of daemon Python threads alive when the last interpreter was finalized.
    pub(super) lingering_threads: Vec<i64>,
    /// Whether the process's first engine was isolated (see `ISOLATION_STICKS`).
    pub(super) first_isolation: Option<bool>,
    /// Why the last engine was abandoned: set once, for the rest of the
    /// process (Python stays initialized, the gate closed; see `Outcome::Abandoned`).
    pub(super) abandoned: Option<String>,
}

/// CPython 3.10 keeps the runtime's pre-configuration (which decides whether
/// environment variables count) from the first initialization to the end of
/// the process; a later start with the other isolation would silently get the
/// first one's. Measured with the pyenv 3.10.13 build; 3.11-3.13 reset it.
pub(super) const ISOLATION_STICKS: bool = cfg!(not(Py_3_11));

impl Lifecycle {
    pub(super) const fn new() -> Self {
        Lifecycle {
            phase: Phase::Uninitialized,
            generation: 0,
            engine_thread: None,
            request: None,
            request_serial: 0,
            lingering_threads: Vec::new(),
            first_isolation: None,
            abandoned: None,
        }
    }

    /// Moves to `phase`: writes it, publishes the gate state it implies for
    /// the current generation, and wakes every waiter. A fork() child's gate
    /// stays `Forked` (see `runtime/fork.rs`): nothing moves it back.
    pub(super) fn transition(&mut self, phase: Phase) {
        self.phase = phase;
        if gate::load().state() != GateState::Forked {
            gate::store(EngineWord::new(self.generation, phase.gate()));
        }
        CHANGED.notify_all();
    }

    /// A running engine in an interpreter the host started, which it never
    /// finalizes: the one kind without an engine thread.
    pub(super) fn is_guest(&self) -> bool {
        self.engine_thread.is_none()
    }

    /// Why shutdown `serial` can no longer be called off, if it cannot.
    pub(super) fn commitment(&mut self, serial: u64) -> Option<Commitment> {
        let finalizing = self.phase == Phase::Finalizing;
        let request = self.request(serial)?;
        if finalizing {
            Some(Commitment::Finalizing)
        } else if request.interrupted {
            Some(Commitment::Interrupted)
        } else {
            None
        }
    }

    /// Shutdown `serial` while it is in progress; `None` once it ended.
    pub(super) fn request(&mut self, serial: u64) -> Option<&mut ShutdownRequest> {
        self.request
            .as_mut()
            .filter(|request| request.serial == serial)
    }

    /// Ends shutdown `serial` with `outcome`: publishes it to every call
    /// waiting for it (they hold the cell), takes the request out and wakes
    /// them. Does nothing when that shutdown already ended.
    pub(super) fn settle(&mut self, serial: u64, outcome: Outcome) {
        if self.request(serial).is_none() {
            return;
        }
        if let Some(request) = self.request.take() {
            let _ = request.outcome.set(outcome);
        }
        CHANGED.notify_all();
    }
}

/// The later of two deadlines, `None` (no limit) being the latest.
pub(super) fn later(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    Some(a?.max(b?))
}

/// The engine thread, with the signal it gives as the last thing it does.
pub(super) struct EngineThread {
    handle: JoinHandle<()>,
    exited: Arc<ExitSignal>,
}

/// Set when the engine thread's body has returned, or unwound.
#[derive(Default)]
pub(super) struct ExitSignal {
    exited: Mutex<bool>,
    changed: Condvar,
}

impl ExitSignal {
    /// Waits until the thread has given the signal or `deadline` passes;
    /// true when it has.
    pub(super) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut exited = self.exited.lock();
        while !*exited {
            if wait_until(&self.changed, &mut exited, deadline) {
                return *exited;
            }
        }
        true
    }
}

/// Gives the signal when dropped: at the end of the thread's body, and on unwinding.
struct GiveExitSignal(Arc<ExitSignal>);

impl Drop for GiveExitSignal {
    fn drop(&mut self) {
        *self.0.exited.lock() = true;
        self.0.changed.notify_all();
    }
}

impl EngineThread {
    pub(super) fn spawn(
        builder: std::thread::Builder,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<EngineThread> {
        let exited = Arc::new(ExitSignal::default());
        let signal = GiveExitSignal(exited.clone());
        let handle = builder.spawn(move || {
            let _signal = signal;
            body();
        })?;
        Ok(EngineThread { handle, exited })
    }

    pub(super) fn exit_signal(&self) -> Arc<ExitSignal> {
        self.exited.clone()
    }

    /// Joins the recorded engine thread if it is the one whose `exited` signal
    /// the caller saw: a finished thread left unjoined until the next start
    /// (or for ever, when none comes) is a leaked thread to ThreadSanitizer.
    /// Bounded as `join_until` says, and outside the lifecycle lock; nothing
    /// when a start took the thread meanwhile.
    pub(super) fn join_exited(exited: &Arc<ExitSignal>) {
        let thread = {
            let mut life = LIFECYCLE.lock();
            let ours = life
                .engine_thread
                .as_ref()
                .is_some_and(|thread| Arc::ptr_eq(&thread.exited, exited));
            if ours && life.phase == Phase::Uninitialized {
                life.engine_thread.take()
            } else {
                None
            }
        };
        if let Some(thread) = thread {
            let _ = thread.join_until(None);
        }
    }

    /// Joins the thread once it has given its exit signal, waiting for that
    /// until `deadline`; hands the thread back when the deadline passes first.
    pub(super) fn join_until(self, deadline: Option<Instant>) -> std::result::Result<(), Self> {
        if !self.exited.wait(deadline) {
            return Err(self);
        }
        // Past its signal the thread runs only its thread-local destructors,
        // pybridge's among them: its thread slot's exit, which frees only
        // thread states the slot made (the engine thread's own main state is
        // not one: Py_FinalizeEx consumed it, or an abandoned engine keeps
        // it) and takes only pybridge's short internal locks. So this join ends.
        let _ = self.handle.join();
        Ok(())
    }
}

/// Checked before any lock: in a fork() child a lock may belong to a vanished thread.
pub(super) fn refuse_if_forked() -> Result<()> {
    if gate::load().state() == GateState::Forked {
        return Err(Error::forked());
    }
    Ok(())
}

/// For the fork() child handler, on the child's only thread: true when no
/// engine runs and no lifecycle step was in progress at the fork. Never waits.
/// An idle child also forgets the previous engine's thread, which exists only
/// in the parent: the child's next start would join it, and joining a thread
/// of another process waits for ever or panics in std.
pub(super) fn idle_for_fork() -> bool {
    let Some(mut life) = LIFECYCLE.try_lock() else {
        return false;
    };
    if life.phase != Phase::Uninitialized {
        return false;
    }
    std::mem::forget(life.engine_thread.take());
    true
}

pub(super) use crate::runtime::config::{deadline_after, wait_until};
