//! The engine's life: initialize (on an engine-owned thread), run, shut down
//! from any thread under a deadline, and start again.
//!
//! The engine thread runs `Py_InitializeFromConfig` and, at the end,
//! `Py_FinalizeEx`, so Python's main thread is never a host thread that may exit,
//! block, or be the wrong one at shutdown. Shutdown closes the gate first (new
//! GIL requests fail at once), then waits, with the deadline, for host threads
//! to leave and non-daemon Python threads to finish; only then does it commit to
//! finalizing. Until that commit a timeout reopens the gate and nothing is lost.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use pyo3::{Python, ffi};

use crate::abi::engine::{PYB_SHUTDOWN_INTERRUPT, PYB_TIMEOUT_INFINITE};
use crate::abi::status::*;
use crate::python::interpreter::{self, Interrupts, PythonThread};
use crate::runtime::config::EngineConfig;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, EngineWord, GateState};
use crate::runtime::stats;
use crate::runtime::thread_slot::{Activity, ThreadSlot, all_slots};

const KNOWN_SHUTDOWN_FLAGS: u32 = PYB_SHUTDOWN_INTERRUPT;
const ENGINE_THREAD_NAME: &str = "pybridge-python";
/// Python's main thread gets the usual 8 MiB main-thread stack, not Rust's 2 MiB.
const ENGINE_THREAD_STACK: usize = 8 << 20;

static LIFECYCLE: Mutex<Lifecycle> = Mutex::new(Lifecycle::new());
static CHANGED: Condvar = Condvar::new();

/// The engine's lifecycle. Each phase implies the gate state hosts see
/// (`Phase::gate`); `Lifecycle::transition` is the one place that moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
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
    fn gate(self) -> GateState {
        match self {
            Phase::Uninitialized | Phase::Initializing => GateState::Closed,
            Phase::Running => GateState::Running,
            Phase::ShuttingDown => GateState::ShuttingDown,
            Phase::Finalizing => GateState::Finalizing,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pending,
    Finalized,
    /// The deadline passed before the commit; the engine runs on.
    CalledOff(String),
}

/// Why a shutdown can no longer be called off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commitment {
    /// Threads were interrupted (`PYB_SHUTDOWN_INTERRUPT`).
    Interrupted,
    /// The gate closed for good: `Py_FinalizeEx` runs or is about to.
    Finalizing,
}

#[derive(Debug)]
struct ShutdownRequest {
    serial: u64,
    interrupt: bool,
    taken_by_engine: bool,
    /// Set, under the lifecycle lock, before the first irreversible step.
    committed: Option<Commitment>,
    outcome: Outcome,
    /// What the engine last found blocking it, for the timeout message.
    blocker: String,
}

struct Lifecycle {
    phase: Phase,
    generation: u32,
    guest: bool,
    engine_thread: Option<JoinHandle<()>>,
    request: Option<ShutdownRequest>,
    request_serial: u64,
    /// Native ids of daemon Python threads alive when the last interpreter was finalized.
    lingering_threads: Vec<i64>,
    /// Whether the process's first engine was isolated (see `ISOLATION_STICKS`).
    first_isolation: Option<bool>,
}

/// CPython 3.10 keeps the runtime's pre-configuration (which decides whether
/// environment variables count) from the first initialization to the end of
/// the process; a later start with the other isolation would silently get the
/// first one's. Measured with the pyenv 3.10.13 build; 3.11-3.13 reset it.
const ISOLATION_STICKS: bool = cfg!(not(Py_3_11));

impl Lifecycle {
    const fn new() -> Self {
        Lifecycle {
            phase: Phase::Uninitialized,
            generation: 0,
            guest: false,
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
    fn transition(&mut self, phase: Phase) {
        self.phase = phase;
        if gate::load().state() != GateState::Forked {
            gate::store(EngineWord::new(self.generation, phase.gate()));
        }
        CHANGED.notify_all();
    }

    fn request(&mut self, serial: u64) -> Option<&mut ShutdownRequest> {
        self.request
            .as_mut()
            .filter(|request| request.serial == serial)
    }
}

/// Checked before any lock: in a fork() child a lock may belong to a vanished thread.
fn refuse_if_forked() -> Result<()> {
    if gate::load().state() == GateState::Forked {
        return Err(Error::forked());
    }
    Ok(())
}

/// Everything hosts made through the engine dies with it: object handles first
/// (their `__del__` may still call host functions), then host functions and
/// their user data. No host thread inside.
fn release_engine_objects(py: Python<'_>) {
    crate::python::handles::on_engine_finalize(py);
    crate::python::host_function::on_engine_finalize(py);
}

/// For the fork() child handler, on the child's only thread: true when no
/// engine runs and no lifecycle step was in progress at the fork. Never waits.
fn idle_for_fork() -> bool {
    LIFECYCLE
        .try_lock()
        .is_some_and(|life| life.phase == Phase::Uninitialized)
}

pub(crate) fn initialize(config: EngineConfig) -> Result<()> {
    refuse_if_forked()?;
    crate::runtime::fork::watch_for_fork(idle_for_fork);
    crate::runtime::thread_slot::on_thread_exit(crate::python::gil::release_on_thread_exit);
    let on_engine_thread = ThreadSlot::existing().is_some_and(|thread| thread.is_engine_thread());
    let mut life = LIFECYCLE.lock();
    loop {
        if on_engine_thread && life.phase != Phase::Running {
            // Python code run by finalization (atexit, __del__) calling back in.
            return Err(Error::new(
                PYB_E_WOULD_DEADLOCK,
                "pyb_engine_initialize was called on the engine thread while the engine \
                 stops; it would wait for itself",
            ));
        }
        match life.phase {
            Phase::Running => return Ok(()),
            Phase::Uninitialized => break,
            Phase::Initializing | Phase::ShuttingDown | Phase::Finalizing => {
                CHANGED.wait(&mut life)
            }
        }
    }
    if let Some(first) = life.first_isolation.filter(|_| ISOLATION_STICKS) {
        if first != config.isolated {
            return Err(Error::invalid_argument(format!(
                "this CPython (before 3.11) keeps the first initialization's pre-configuration \
                 for the whole process: the first engine was {}, so this one cannot be {}",
                if first { "isolated" } else { "not isolated" },
                if config.isolated {
                    "isolated"
                } else {
                    "not isolated"
                },
            )));
        }
    }
    life.transition(Phase::Initializing);
    let lingering = std::mem::take(&mut life.lingering_threads);
    let previous_engine = life.engine_thread.take();
    drop(life);

    let started = start(&config, previous_engine, &lingering);

    let mut life = LIFECYCLE.lock();
    match started {
        Ok((guest, engine_thread)) => {
            life.generation = life.generation.wrapping_add(1).max(1);
            life.guest = guest;
            life.first_isolation.get_or_insert(config.isolated);
            life.engine_thread = engine_thread;
            life.transition(Phase::Running);
            stats::ENGINES_STARTED.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "pybridge engine {} running ({})",
                life.generation,
                if guest {
                    "guest in an existing interpreter"
                } else {
                    "owns its interpreter"
                }
            );
            Ok(())
        }
        Err(error) => {
            if error.status == PYB_E_TIMEOUT {
                life.lingering_threads = lingering;
            }
            life.transition(Phase::Uninitialized);
            Err(error)
        }
    }
}

fn start(
    config: &EngineConfig,
    previous_engine: Option<JoinHandle<()>>,
    lingering: &[i64],
) -> Result<(bool, Option<JoinHandle<()>>)> {
    if let Some(handle) = previous_engine {
        let _ = handle.join();
    }
    wait_for_threads_to_exit(lingering, config.previous_threads_timeout_ms)?;
    gate::prepare();
    // SAFETY: a plain query, safe before and after initialization.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        // SAFETY: the process's interpreter is alive; we only keep its pointer.
        gate::set_interpreter(unsafe { ffi::PyInterpreterState_Main() });
        return Ok((true, None));
    }
    crate::sys::loader::promote_libpython_to_global();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let engine_config = config.clone();
    let handle = std::thread::Builder::new()
        .name(ENGINE_THREAD_NAME.to_string())
        .stack_size(ENGINE_THREAD_STACK)
        .spawn(move || engine_thread_main(engine_config, ready_tx))
        .map_err(|err| {
            Error::new(
                PYB_E_INIT_FAILED,
                format!("could not start the engine thread: {err}"),
            )
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((false, Some(handle))),
        Ok(Err(error)) => {
            let _ = handle.join();
            Err(error)
        }
        Err(_) => {
            let _ = handle.join();
            Err(Error::new(
                PYB_E_INIT_FAILED,
                "the engine thread ended before Python was initialized",
            ))
        }
    }
}

/// A daemon thread that sleeps through a finalization and wakes under a new
/// interpreter runs on its freed thread state (crashed 5/15 runs on 3.12), so a
/// new interpreter waits until the old one's threads are gone.
fn wait_for_threads_to_exit(native_ids: &[i64], timeout_ms: u32) -> Result<()> {
    let deadline = deadline_after(timeout_ms);
    loop {
        let alive: Vec<i64> = native_ids
            .iter()
            .copied()
            .filter(|&id| crate::sys::thread::is_alive(id))
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::new(
                PYB_E_TIMEOUT,
                format!(
                    "daemon Python thread(s) with native id(s) {alive:?} from the previous \
                     interpreter are still alive after {timeout_ms} ms; starting a new \
                     interpreter now could let them run on freed memory. Stop daemon threads \
                     before shutdown (or shut down with PYB_SHUTDOWN_INTERRUPT), or raise \
                     pyb_config.previous_threads_timeout_ms"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn deadline_after(timeout_ms: u32) -> Option<Instant> {
    (timeout_ms != PYB_TIMEOUT_INFINITE)
        .then(|| Instant::now() + Duration::from_millis(timeout_ms as u64))
}

fn engine_thread_main(config: EngineConfig, ready: std::sync::mpsc::Sender<Result<()>>) {
    gate::set_engine_thread_tid(crate::sys::thread::os_tid());
    let main_state = match interpreter::start(&config) {
        Ok(state) => state,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    // SAFETY: main_state belongs to the interpreter just started.
    let interp = unsafe { ffi::PyThreadState_GetInterpreter(main_state) };
    gate::set_interpreter(interp);
    let _ = ready.send(Ok(()));
    loop {
        let (serial, interrupt) = {
            let mut life = LIFECYCLE.lock();
            loop {
                match life.request.as_mut() {
                    Some(request)
                        if !request.taken_by_engine && request.outcome == Outcome::Pending =>
                    {
                        request.taken_by_engine = true;
                        break (request.serial, request.interrupt);
                    }
                    _ => CHANGED.wait(&mut life),
                }
            }
        };
        if EngineShutdown::new(main_state, serial, interrupt).run() {
            break;
        }
    }
    gate::set_engine_thread_tid(0);
}

/// One shutdown attempt, run on the engine thread.
struct EngineShutdown {
    main_state: *mut ffi::PyThreadState,
    serial: u64,
    interrupt: bool,
    /// Idents of the threads already interrupted (each is interrupted once).
    interrupted: Vec<u64>,
    busy: BusyWatch,
}

impl EngineShutdown {
    fn new(main_state: *mut ffi::PyThreadState, serial: u64, interrupt: bool) -> Self {
        EngineShutdown {
            main_state,
            serial,
            interrupt,
            interrupted: Vec::new(),
            busy: BusyWatch::default(),
        }
    }

    /// True when the interpreter was finalized; false when the attempt was called off.
    fn run(mut self) -> bool {
        loop {
            if self.called_off() {
                return false;
            }
            let blocker = self.busy.blocker();
            if let Some(blocker) = &blocker {
                // Before the GIL is taken below, which may take a switch interval.
                self.report(blocker.clone());
            }
            if self.interrupt {
                // Every poll: threads skipped last time (inside a lock-taking
                // module, or while a region was open) may be interruptible now.
                self.with_gil(|this| this.interrupt_threads());
            }
            if let Some(blocker) = blocker {
                self.report_and_wait(blocker);
                continue;
            }
            // SAFETY: the engine thread's own main state.
            unsafe { ffi::PyEval_RestoreThread(self.main_state) };
            if self.called_off() {
                // SAFETY: GIL held on the main state.
                unsafe { ffi::PyEval_SaveThread() };
                return false;
            }
            // SAFETY: GIL held on this thread.
            let py = unsafe { Python::assume_attached() };
            let threads = interpreter::python_threads(py).unwrap_or_else(|error| {
                log::error!("could not list Python threads: {}", error.message);
                Vec::new()
            });
            let blocker = match threads.iter().find(|thread| !thread.daemon) {
                Some(thread) => Some(format!("{} is still running", thread.describe())),
                None => self.commit(),
            };
            if let Some(blocker) = blocker {
                // SAFETY: GIL held on the main state.
                unsafe { ffi::PyEval_SaveThread() };
                self.report_and_wait(blocker);
                continue;
            }
            self.finalize(py, &threads);
            return true;
        }
    }

    fn with_gil(&mut self, body: impl FnOnce(&mut Self)) {
        // SAFETY: the engine thread's own main state; released before returning.
        unsafe { ffi::PyEval_RestoreThread(self.main_state) };
        body(self);
        // SAFETY: GIL held on the main state.
        unsafe { ffi::PyEval_SaveThread() };
    }

    fn called_off(&self) -> bool {
        let mut life = LIFECYCLE.lock();
        life.request(self.serial)
            .is_none_or(|request| request.outcome != Outcome::Pending)
    }

    /// Interrupts the threads that run Python and may be interrupted now (see
    /// `PYB_SHUTDOWN_INTERRUPT`). The first one delivered commits the shutdown,
    /// under the lifecycle lock, so a caller at its deadline either calls the
    /// attempt off before anything was delivered or finds it committed. GIL held.
    fn interrupt_threads(&mut self) {
        // The GIL may have taken long to get: never interrupt for a called-off attempt.
        if self.called_off() {
            return;
        }
        if let Some(slot) = all_slots().into_iter().find(|slot| {
            slot.busy.load(Ordering::Acquire) && slot.activity() == Activity::AllowThreads
        }) {
            log::debug!(
                "shutdown interrupts nothing while {} is in an allow-threads region",
                slot.describe()
            );
            return;
        }
        // SAFETY: GIL held (called through with_gil).
        let py = unsafe { Python::assume_attached() };
        let python_threads: Vec<u64> = interpreter::python_threads(py)
            .unwrap_or_default()
            .iter()
            .map(|thread| thread.ident)
            .filter(|ident| !self.interrupted.contains(ident))
            .collect();
        let host_threads: Vec<u64> = all_slots()
            .iter()
            .filter(|slot| slot.busy.load(Ordering::Acquire) && !slot.is_engine_thread())
            .map(|slot| slot.pthread_id)
            .filter(|ident| !python_threads.contains(ident) && !self.interrupted.contains(ident))
            .collect();
        if python_threads.is_empty() && host_threads.is_empty() {
            return;
        }
        // From here on no bytecode runs, so no thread moves until the raise.
        let ready = Interrupts::new(py).and_then(|interrupts| {
            let targets = [python_threads.as_slice(), host_threads.as_slice()].concat();
            let safe = interrupts.interruptible(py, &targets)?;
            Ok((interrupts, safe))
        });
        let (interrupts, safe) = match ready {
            Ok(ready) => ready,
            Err(error) => {
                log::error!("shutdown could not interrupt threads: {}", error.message);
                return;
            }
        };
        let python_now: Vec<u64> = python_threads
            .into_iter()
            .filter(|i| safe.contains(i))
            .collect();
        let host_now: Vec<u64> = host_threads
            .into_iter()
            .filter(|i| safe.contains(i))
            .collect();
        if python_now.is_empty() && host_now.is_empty() {
            return;
        }
        {
            let mut life = LIFECYCLE.lock();
            let Some(request) = life
                .request(self.serial)
                .filter(|request| request.outcome == Outcome::Pending)
            else {
                return;
            };
            request.committed.get_or_insert(Commitment::Interrupted);
            interrupts.raise_in(&python_now, &host_now);
        }
        log::info!(
            "shutdown interrupted {} Python thread(s) and {} host thread(s); it cannot be called off now",
            python_now.len(),
            host_now.len()
        );
        self.interrupted.extend(python_now);
        self.interrupted.extend(host_now);
    }

    /// Closes the gate for good unless the attempt was called off or a thread
    /// slipped inside; returns what blocks otherwise. GIL held.
    fn commit(&mut self) -> Option<String> {
        let mut life = LIFECYCLE.lock();
        let Some(request) = life.request(self.serial) else {
            return Some("the shutdown was called off".to_string());
        };
        if request.outcome != Outcome::Pending {
            return Some("the shutdown was called off".to_string());
        }
        if let Some(blocker) = close_gate_for_good(&mut life, &mut self.busy) {
            return Some(blocker);
        }
        if let Some(request) = life.request(self.serial) {
            request.committed = Some(Commitment::Finalizing);
        }
        None
    }

    fn finalize(&mut self, py: Python<'_>, threads: &[PythonThread]) {
        let lingering: Vec<i64> = threads
            .iter()
            .filter_map(|thread| thread.native_id)
            .collect();
        release_engine_objects(py);
        let started = Instant::now();
        let code = interpreter::finalize();
        crate::python::handles::on_engine_finalized();
        log::info!(
            "Py_FinalizeEx returned {code} after {} ms",
            started.elapsed().as_millis()
        );
        stats::INTERPRETERS_FINALIZED.fetch_add(1, Ordering::Relaxed);
        gate::set_interpreter(std::ptr::null_mut());
        let mut life = LIFECYCLE.lock();
        life.lingering_threads = lingering;
        if let Some(request) = life.request(self.serial) {
            request.outcome = Outcome::Finalized;
        }
        life.transition(Phase::Uninitialized);
    }

    fn report(&mut self, blocker: String) {
        if let Some(request) = LIFECYCLE.lock().request(self.serial) {
            request.blocker = blocker;
        }
    }

    fn report_and_wait(&mut self, blocker: String) {
        let mut life = LIFECYCLE.lock();
        if let Some(request) = life.request(self.serial) {
            request.blocker = blocker;
        }
        // Woken early when the attempt is called off.
        CHANGED.wait_for(&mut life, Duration::from_millis(2));
    }
}

/// Watches host threads inside the gate, remembering since when each has been
/// seen there (per scope), for the messages that name what blocks a shutdown.
#[derive(Default)]
struct BusyWatch {
    /// Per slot id: (scope serial, when first seen busy in that scope).
    first_seen: HashMap<u64, (u32, Instant)>,
}

impl BusyWatch {
    /// A host thread the shutdown must wait for, described for the message.
    fn blocker(&mut self) -> Option<String> {
        let now = Instant::now();
        for slot in all_slots() {
            if !slot.busy.load(Ordering::Acquire) || slot.is_engine_thread() {
                continue;
            }
            let serial = slot.epoch.load(Ordering::Relaxed);
            let entry = self.first_seen.entry(slot.id).or_insert((serial, now));
            if entry.0 != serial {
                *entry = (serial, now);
            }
            let waited = now.duration_since(entry.1).as_millis();
            let doing = match slot.activity() {
                Activity::HoldingGil => "holds the GIL through pybridge",
                Activity::AllowThreads => {
                    "is inside an allow-threads region and will take the GIL back"
                }
                Activity::WaitingForGil => "is waiting to take the GIL",
                Activity::Idle => "is inside a pybridge call",
            };
            return Some(format!(
                "{} {doing} (for at least {waited} ms); release its GIL scope \
                 (pyb_gil_release / pyb_end_allow_threads) so the engine can stop",
                slot.describe()
            ));
        }
        None
    }
}

/// Moves the gate to `Finalizing` unless a thread slipped inside between the
/// last look and now (the barrier makes every busy flag visible); then it goes
/// back to `ShuttingDown` and the blocker is returned.
fn close_gate_for_good(life: &mut Lifecycle, busy: &mut BusyWatch) -> Option<String> {
    life.transition(Phase::Finalizing);
    gate::barrier();
    let blocker = busy.blocker();
    if blocker.is_some() {
        life.transition(Phase::ShuttingDown);
    }
    blocker
}

pub(crate) fn shutdown(timeout_ms: u32, flags: u32) -> Result<()> {
    if flags & !KNOWN_SHUTDOWN_FLAGS != 0 {
        return Err(Error::invalid_argument(format!(
            "unknown shutdown flag bits {:#x}; use 0 or PYB_SHUTDOWN_INTERRUPT",
            flags & !KNOWN_SHUTDOWN_FLAGS
        )));
    }
    refuse_if_forked()?;
    refuse_if_caller_blocks_shutdown()?;
    let deadline = deadline_after(timeout_ms);
    let mut life = LIFECYCLE.lock();
    loop {
        match life.phase {
            Phase::Uninitialized => return Err(Error::not_initialized()),
            Phase::Initializing => CHANGED.wait(&mut life),
            Phase::ShuttingDown | Phase::Finalizing => {
                return join_shutdown(life, deadline, timeout_ms);
            }
            Phase::Running => break,
        }
    }
    life.request_serial += 1;
    let serial = life.request_serial;
    life.request = Some(ShutdownRequest {
        serial,
        interrupt: flags & PYB_SHUTDOWN_INTERRUPT != 0,
        taken_by_engine: false,
        committed: None,
        outcome: Outcome::Pending,
        blocker: "the engine thread has not reported yet".to_string(),
    });
    life.transition(Phase::ShuttingDown);
    gate::barrier();
    log::info!("shutdown requested (timeout {timeout_ms} ms, flags {flags:#x})");
    if life.guest {
        return guest_shutdown(life, serial, deadline, timeout_ms);
    }
    CHANGED.notify_all();
    let outcome = wait_for_outcome(&mut life, serial, deadline);
    match outcome {
        Outcome::Finalized => {
            let engine_thread = life.engine_thread.take();
            drop(life);
            if let Some(handle) = engine_thread {
                let _ = handle.join();
            }
            log::info!("shutdown complete");
            Ok(())
        }
        Outcome::Pending if life.request(serial).is_some_and(|r| r.committed.is_some()) => {
            Err(committed_error(&mut life, serial, timeout_ms))
        }
        Outcome::Pending | Outcome::CalledOff(_) => {
            let blocker = call_off(&mut life, serial);
            Err(timeout_error(timeout_ms, &blocker))
        }
    }
}

/// A shutdown from a thread the shutdown would have to wait for can never finish.
fn refuse_if_caller_blocks_shutdown() -> Result<()> {
    let Some(slot) = ThreadSlot::existing() else {
        return Ok(());
    };
    let owner = slot.owner();
    let reason = if owner.depth.get() > 0 {
        Some("the calling thread holds the GIL through pybridge; release it first")
    } else if !owner.allow_frames.is_empty() {
        Some("the calling thread is inside an allow-threads region; end it first")
    } else if slot.is_engine_thread() {
        Some("the engine thread cannot shut itself down; call from a host thread")
    } else if crate::python::gil::holds_gil(slot) {
        Some(
            "the calling thread holds the GIL (it is a Python thread or used PyGILState); call from a thread that does not",
        )
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::new(
            PYB_E_WOULD_DEADLOCK,
            format!("shutdown would wait for its own caller: {reason}; nothing was changed"),
        )),
        None => Ok(()),
    }
}

fn wait_for_outcome(
    life: &mut MutexGuard<'_, Lifecycle>,
    serial: u64,
    deadline: Option<Instant>,
) -> Outcome {
    loop {
        let outcome = life
            .request(serial)
            .map_or(Outcome::Finalized, |request| request.outcome.clone());
        if outcome != Outcome::Pending {
            return outcome;
        }
        match deadline {
            Some(deadline) => {
                if CHANGED.wait_until(life, deadline).timed_out() {
                    return life
                        .request(serial)
                        .map_or(Outcome::Finalized, |request| request.outcome.clone());
                }
            }
            None => CHANGED.wait(life),
        }
    }
}

/// Ends a pending attempt at its deadline, before its point of no return (so
/// nothing was interrupted): reopen the gate. Returns what was blocking.
fn call_off(life: &mut MutexGuard<'_, Lifecycle>, serial: u64) -> String {
    let blocker = match life.request(serial) {
        Some(request) => {
            let blocker = request.blocker.clone();
            request.outcome = Outcome::CalledOff(blocker.clone());
            blocker
        }
        None => "unknown".to_string(),
    };
    life.transition(Phase::Running);
    stats::SHUTDOWN_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
    log::warn!("shutdown timed out and was called off: {blocker}");
    blocker
}

/// The deadline passed after the point of no return: the shutdown carries on.
fn committed_error(life: &mut MutexGuard<'_, Lifecycle>, serial: u64, timeout_ms: u32) -> Error {
    let Some(request) = life.request(serial) else {
        return Error::new(PYB_E_SHUTDOWN_COMMITTED, "the shutdown is finishing");
    };
    let what = match request.committed {
        Some(Commitment::Finalizing) => "Py_FinalizeEx is running on the engine thread (an \
             atexit handler or __del__ may be slow)"
            .to_string(),
        _ => format!(
            "it interrupted threads (PYB_SHUTDOWN_INTERRUPT), so it cannot be called off, \
             and it waits for them to leave. Blocking: {}",
            request.blocker
        ),
    };
    Error::new(
        PYB_E_SHUTDOWN_COMMITTED,
        format!(
            "shutdown did not finish within {timeout_ms} ms but carries on: {what}. The engine \
             becomes UNINITIALIZED when it ends; call pyb_engine_shutdown again to wait for it"
        ),
    )
}

fn timeout_error(timeout_ms: u32, blocker: &str) -> Error {
    Error::new(
        PYB_E_TIMEOUT,
        format!(
            "shutdown did not finish within {timeout_ms} ms and was called off; the engine \
             runs on unchanged. Blocking: {blocker}"
        ),
    )
}

/// A second shutdown while one is in progress waits for the first one's outcome.
fn join_shutdown(
    mut life: MutexGuard<'_, Lifecycle>,
    deadline: Option<Instant>,
    timeout_ms: u32,
) -> Result<()> {
    let Some(serial) = life.request.as_ref().map(|request| request.serial) else {
        return Err(Error::shutting_down());
    };
    match wait_for_outcome(&mut life, serial, deadline) {
        Outcome::Finalized => Ok(()),
        Outcome::CalledOff(blocker) => Err(Error::new(
            PYB_E_TIMEOUT,
            format!(
                "the shutdown this call joined (started by another thread) timed out; the \
                 engine runs on. Blocking: {blocker}"
            ),
        )),
        Outcome::Pending if life.request(serial).is_some_and(|r| r.committed.is_some()) => {
            Err(committed_error(&mut life, serial, timeout_ms))
        }
        Outcome::Pending => Err(Error::new(
            PYB_E_TIMEOUT,
            format!(
                "another thread's shutdown is still in progress after {timeout_ms} ms; the \
                 engine is still SHUTTING_DOWN (this call changed nothing)"
            ),
        )),
    }
}

/// A guest engine never finalizes the interpreter it found: it waits for host
/// threads to leave, then closes the gate.
fn guest_shutdown(
    mut life: MutexGuard<'_, Lifecycle>,
    serial: u64,
    deadline: Option<Instant>,
    timeout_ms: u32,
) -> Result<()> {
    let mut busy = BusyWatch::default();
    loop {
        let blocker = busy
            .blocker()
            .or_else(|| close_gate_for_good(&mut life, &mut busy));
        let Some(blocker) = blocker else {
            break;
        };
        if let Some(request) = life.request(serial) {
            request.blocker = blocker;
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            let blocker = call_off(&mut life, serial);
            return Err(timeout_error(timeout_ms, &blocker));
        }
        // Busy flags are plain per-thread stores (the hot path never notifies):
        // look again in a millisecond, or sooner if the lifecycle changes.
        CHANGED.wait_for(&mut life, Duration::from_millis(1));
    }
    // Handles and host functions die with the engine here too, but the host's
    // interpreter lives on, so take its GIL the ordinary way to drop them.
    MutexGuard::unlocked(&mut life, || {
        // SAFETY: the guest interpreter is alive; PyGILState works on any of its threads.
        let gstate = unsafe { ffi::PyGILState_Ensure() };
        // SAFETY: the Ensure above holds the GIL.
        release_engine_objects(unsafe { Python::assume_attached() });
        // SAFETY: pairs with the Ensure above.
        unsafe { ffi::PyGILState_Release(gstate) };
        crate::python::handles::on_engine_finalized();
    });
    if let Some(request) = life.request(serial) {
        request.outcome = Outcome::Finalized;
    }
    life.transition(Phase::Uninitialized);
    gate::set_interpreter(std::ptr::null_mut());
    log::info!("guest engine detached; the host's interpreter keeps running");
    Ok(())
}
