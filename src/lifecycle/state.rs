//! The engine's state machine: one lifecycle, guarded by one lock, whose
//! phase decides the gate hosts see; `Lifecycle::transition` is the one place
//! that moves it, and every waiter waits on `CHANGED`.

use std::thread::JoinHandle;

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
    /// guest engine detaches).
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Pending,
    Finalized,
    /// The deadline passed before the commit; the engine runs on.
    CalledOff(String),
}

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
    pub(super) outcome: Outcome,
    /// What the engine thread last found blocking it, for the timeout
    /// message; `None` until it first reports.
    pub(super) blocker: Option<String>,
}

pub(super) struct Lifecycle {
    pub(super) phase: Phase,
    pub(super) generation: u32,
    /// The thread that started and will finalize the interpreter; None while
    /// no engine runs, and for a guest engine (one in an interpreter the host
    /// started), which has none.
    pub(super) engine_thread: Option<JoinHandle<()>>,
    pub(super) request: Option<ShutdownRequest>,
    pub(super) request_serial: u64,
    /// Native ids of daemon Python threads alive when the last interpreter was finalized.
    pub(super) lingering_threads: Vec<i64>,
    /// Whether the process's first engine was isolated (see `ISOLATION_STICKS`).
    pub(super) first_isolation: Option<bool>,
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

    pub(super) fn request(&mut self, serial: u64) -> Option<&mut ShutdownRequest> {
        self.request
            .as_mut()
            .filter(|request| request.serial == serial)
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
pub(super) fn idle_for_fork() -> bool {
    LIFECYCLE
        .try_lock()
        .is_some_and(|life| life.phase == Phase::Uninitialized)
}

pub(super) use crate::runtime::config::deadline_after;
