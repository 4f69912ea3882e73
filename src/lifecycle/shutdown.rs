//! Stopping the engine from any thread under a deadline: close the gate,
//! wait for host threads to leave and non-daemon Python threads to finish,
//! then commit and finalize on the engine thread. Until the commit a timeout
//! reopens the gate and nothing is lost.
//!
//! One file over 500 lines: one attempt's life (poll, interrupt, commit,
//! finalize) and the caller's wait for it share the lifecycle lock's
//! protocol, which reads only as a whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;
use pyo3::Python;

use crate::abi::engine::PYB_SHUTDOWN_INTERRUPT;
use crate::abi::status::*;
use crate::lifecycle::state::{
    CHANGED, Commitment, EngineThread, LIFECYCLE, Lifecycle, Outcome, OutcomeCell, Phase,
    ShutdownRequest, deadline_after, later, refuse_if_forked, wait_until,
};
use crate::python::attached::{Attached, EngineMainState, with_gil_state};
use crate::python::interpreter;
use crate::python::interrupts::{self, PythonThread};
use crate::python::python_made::{
    open_guards, open_guards_blocker, python_made_blocker, python_made_running,
};
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;
use crate::runtime::ids::{InterpreterId, ThreadIdent};
use crate::runtime::stats;
use crate::runtime::thread_slot::{Activity, ThreadSlot, all_slots};

const KNOWN_SHUTDOWN_FLAGS: u32 = PYB_SHUTDOWN_INTERRUPT;

/// How long one poll waits for the sub-interpreters' keepers to say which
/// Python threads run in their interpreters (a keeper needs its GIL, which a
/// running thread gives up within a switch interval).
const SUBINTERPRETER_ANSWER: Duration = Duration::from_millis(200);

/// The least time the engine gives the sub-interpreters to end past the point
/// of no return, whatever deadline its callers gave (they return at theirs):
/// their `atexit` functions and finalizers ran past a 200 ms floor on a busy
/// machine (the API fuzzer on 3.15.2, two suites at once), and an engine
/// abandoned for that could never start again in the process.
const SUBINTERPRETERS_END_FLOOR: Duration = Duration::from_millis(1_000);

/// Everything hosts made through the engine dies with it: pending coroutines
/// first (cancelled; their callbacks may still use handles), then pending
/// promises (their hosts told, once, through the cancel callback), then object
/// handles (their `__del__` may still call host functions), then host
/// functions and their user data. No host thread inside.
fn release_engine_objects(py: Python<'_>) {
    crate::python::coroutine::on_engine_finalize(py);
    crate::python::promise::on_engine_finalize(py);
    crate::python::handles::on_engine_finalize(py);
    crate::python::host_function::on_engine_finalize(py);
}

/// One shutdown attempt, run on the engine thread.
pub(super) struct EngineShutdown {
    main_state: EngineMainState,
    serial: u64,
    interrupt: bool,
    /// Idents of the threads already interrupted (each is interrupted once).
    interrupted: Vec<ThreadIdent>,
    busy: BusyWatch,
}

impl EngineShutdown {
    pub(super) fn new(main_state: EngineMainState, serial: u64, interrupt: bool) -> Self {
        EngineShutdown {
            main_state,
            serial,
            interrupt,
            interrupted: Vec::new(),
            busy: BusyWatch::default(),
        }
    }

    /// True when this engine ended (finalized, or abandoned); false when the
    /// attempt was called off.
    pub(super) fn run(mut self) -> bool {
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
                self.with_gil(|this, py| this.interrupt_threads(py));
            }
            if let Some(blocker) = blocker {
                self.report_and_wait(blocker);
                continue;
            }
            // The sub-interpreters' Python threads, before the main GIL is
            // taken (keepers of shared-GIL interpreters need it): once past
            // the point of no return every interpreter must end.
            let asked_until = Instant::now() + SUBINTERPRETER_ANSWER;
            if let Some(blocker) = crate::python::subinterpreter::shutdown_blocker(asked_until) {
                self.report_and_wait(blocker);
                continue;
            }
            // SAFETY: the engine thread's own main state, detached between polls.
            let main = unsafe { self.main_state.attach() };
            if self.called_off() {
                return false;
            }
            let py = main.python();
            let threads = interrupts::python_threads(py).unwrap_or_else(|error| {
                log::error!("could not list Python threads: {}", error.message);
                Vec::new()
            });
            // Python-made interpreters (PEP 734) are looked at last, just
            // before the point of no return: Py_FinalizeEx ends idle ones
            // (3.14.10, 3.15.2), but one running code, or an executor's
            // queued work, must block here, where a deadline still calls the
            // attempt off with nothing changed.
            let blocker = match threads.iter().find(|thread| !thread.daemon) {
                Some(thread) => Some(format!("{} is still running", thread.describe())),
                None => python_made_blocker(py)
                    .or_else(open_guards_blocker)
                    .or_else(|| self.commit()),
            };
            if let Some(blocker) = blocker {
                drop(main);
                self.report_and_wait(blocker);
                continue;
            }
            self.finalize(main, &threads);
            return true;
        }
    }

    fn with_gil(&mut self, body: impl FnOnce(&mut Self, Python<'_>)) {
        // SAFETY: the engine thread's own main state, detached between polls.
        let main = unsafe { self.main_state.attach() };
        body(self, main.python());
    }

    /// True once the attempt has an outcome, which only its caller's
    /// call-off can give it before the engine thread does.
    fn called_off(&self) -> bool {
        LIFECYCLE.lock().request(self.serial).is_none()
    }

    /// Interrupts the threads that run Python and may be interrupted now (see
    /// `PYB_SHUTDOWN_INTERRUPT`). The first one delivered commits the shutdown,
    /// under the lifecycle lock, so a caller at its deadline either calls the
    /// attempt off before anything was delivered or finds it committed. GIL held.
    fn interrupt_threads(&mut self, py: Python<'_>) {
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
        // No exception reaches code running inside an interpreter Python code
        // made (it is raised in the thread's main-interpreter state, and
        // fires only when the thread comes back): interrupting would commit
        // a shutdown that may never end. Wait instead, like for a region.
        if python_made_running(py) {
            log::debug!("shutdown interrupts nothing while a Python-made interpreter runs code");
            return;
        }
        // Nor while native code holds a PEP 788 guard: finalization would
        // wait for it, and the shutdown could not be called off any more.
        if open_guards().is_some_and(|guards| guards > 0) {
            log::debug!("shutdown interrupts nothing while a PEP 788 guard is open");
            return;
        }
        let python_threads: Vec<ThreadIdent> = interrupts::python_threads(py)
            .unwrap_or_default()
            .iter()
            .map(|thread| thread.ident)
            .filter(|ident| !self.interrupted.contains(ident))
            .collect();
        let busy: Vec<_> = all_slots()
            .into_iter()
            .filter(|slot| slot.busy.load(Ordering::Acquire) && !slot.is_engine_thread())
            .filter(|slot| !slot.internal.load(Ordering::Relaxed))
            .filter(|slot| !self.interrupted.contains(&slot.ident()))
            .collect();
        // Threads working in a sub-interpreter are interrupted there, by its
        // keeper, which checks where they are as above, interrupts each once,
        // and leaves the others for the next poll: asked again every time.
        let in_subinterpreters: Vec<(InterpreterId, ThreadIdent)> = busy
            .iter()
            .map(|slot| (slot.current_interpreter(), slot.ident()))
            .filter(|(interpreter, _)| !interpreter.is_main())
            .collect();
        // Every poll while interpreters live: their own Python threads keep
        // them from ending, and their keepers look at those threads too.
        if !crate::runtime::interpreters::all().is_empty() {
            self.interrupt_in_subinterpreters(&in_subinterpreters);
        }
        let host_threads: Vec<ThreadIdent> = busy
            .iter()
            .filter(|slot| slot.current_interpreter().is_main())
            .map(|slot| slot.ident())
            .filter(|ident| !python_threads.contains(ident))
            .collect();
        if python_threads.is_empty() && host_threads.is_empty() {
            return;
        }
        let serial = self.serial;
        let commit = |deliver: &mut dyn FnMut()| commit_interrupting(serial, deliver);
        match interrupts::raise_where_safe(
            py,
            &python_threads,
            &host_threads,
            &mut self.interrupted,
            &commit,
        ) {
            Ok((0, 0)) => {}
            Ok((python, host)) => log::info!(
                "shutdown interrupted {python} Python thread(s) and {host} host thread(s); it cannot be called off now"
            ),
            Err(error) => log::error!("shutdown could not interrupt threads: {}", error.message),
        }
    }

    /// Has the keepers interrupt host threads inside their interpreters and
    /// those interpreters' own Python threads. A keeper commits the shutdown
    /// just before its first raise (none when it finds every thread where an
    /// exception could leave a lock held, or the attempt called off). Not
    /// recorded in `interrupted`: asked again every poll for those left.
    fn interrupt_in_subinterpreters(&mut self, threads: &[(InterpreterId, ThreadIdent)]) {
        let serial = self.serial;
        crate::python::subinterpreter::post_interrupts(
            threads,
            Arc::new(move |deliver: &mut dyn FnMut()| commit_interrupting(serial, deliver)),
        );
    }

    /// Closes the gate for good unless the attempt was called off or a thread
    /// slipped inside; returns what blocks otherwise. GIL held.
    fn commit(&mut self) -> Option<String> {
        let mut life = LIFECYCLE.lock();
        if life.request(self.serial).is_none() {
            return Some("the shutdown was called off".to_string());
        }
        if let Some(blocker) = close_gate_for_good(&mut life, &mut self.busy) {
            return Some(blocker);
        }
        if let Some(request) = life.request(self.serial) {
            request.blocker = Some("it is past its point of no return and finalizing".to_string());
        }
        None
    }

    fn finalize(&mut self, mut main: Attached, threads: &[PythonThread]) {
        let lingering: Vec<i64> = threads
            .iter()
            .filter_map(|thread| thread.native_id)
            .collect();
        // Sub-interpreters end first, on their keepers, which may need the main
        // GIL (a shared-GIL one): give it away meanwhile.
        self.report(format!(
            "it is ending {} sub-interpreter(s) on their keeper threads",
            crate::runtime::interpreters::all().len()
        ));
        crate::python::pool::on_engine_end();
        let (serial, interrupt) = (self.serial, self.interrupt);
        // An abandonment is given before this thread takes the GIL back,
        // which a daemon thread in native code may hold as long as it likes.
        let abandoned = main.released(|| {
            let abandoned = end_subinterpreters(serial, interrupt);
            crate::python::subinterpreter::retire_idle_keepers();
            abandoned
        });
        if abandoned {
            // This thread leaves its main state, detached, and ends; Python
            // stays initialized and no one calls Py_FinalizeEx.
            drop(main);
            return;
        }
        self.report(
            "it is cancelling pending pyb_task_submit tasks and stopping pybridge's event loop \
             (a task that swallows its cancellation may be slow)"
                .to_string(),
        );
        release_engine_objects(main.python());
        self.report(
            "Py_FinalizeEx is running on the engine thread (an atexit handler or __del__ may \
             be slow)"
                .to_string(),
        );
        let started = Instant::now();
        let code = interpreter::finalize(main);
        crate::python::handles::on_engine_finalized();
        log::info!(
            "Py_FinalizeEx returned {code} after {} ms",
            started.elapsed().as_millis()
        );
        stats::INTERPRETERS_FINALIZED.fetch_add(1, Ordering::Relaxed);
        gate::set_interpreter(std::ptr::null_mut());
        gate::set_engine_thread_tid(0);
        let mut life = LIFECYCLE.lock();
        life.lingering_threads = lingering;
        life.settle(self.serial, Outcome::Finalized);
        life.transition(Phase::Uninitialized);
    }

    fn report(&mut self, blocker: String) {
        if let Some(request) = LIFECYCLE.lock().request(self.serial) {
            request.blocker = Some(blocker);
        }
    }

    fn report_and_wait(&mut self, blocker: String) {
        let mut life = LIFECYCLE.lock();
        if let Some(request) = life.request(self.serial) {
            request.blocker = Some(blocker);
        }
        // A poll: busy flags are plain stores the hot path never notifies, and
        // a Python thread's end shows only to a GIL retaken (here, or by a
        // keeper); woken early when the attempt is called off.
        CHANGED.wait_for(&mut life, Duration::from_millis(2));
    }
}

/// Ends every sub-interpreter, past the point of no return, by shutdown
/// `serial`'s deadline: the latest of its callers' (`ShutdownRequest::deadline`),
/// but never less than `SUBINTERPRETERS_END_FLOOR` from now, so that a zero
/// timeout, or a deadline spent waiting for interrupted threads, still ends
/// interpreters that end in ordinary time; `None` (an infinite timeout)
/// waits as long as it takes. A call that joins with a later deadline before
/// the engine gives up buys them more time. True when it gave up (`abandon`).
fn end_subinterpreters(serial: u64, interrupt: bool) -> bool {
    let floor = Instant::now() + SUBINTERPRETERS_END_FLOOR;
    let mut given = LIFECYCLE
        .lock()
        .request(serial)
        .map_or(Some(floor), |request| request.deadline);
    loop {
        // With the interrupt flag, their own Python threads are interrupted
        // (they would keep them from ending), as often as it takes.
        let deadline = given.map(|deadline| deadline.max(floor));
        let Err(why) = crate::python::subinterpreter::end_all(deadline, interrupt) else {
            return false;
        };
        match abandon_unless_extended(serial, &why, given) {
            Ok(()) => return true,
            Err(extended) => given = extended,
        }
    }
}

/// Gives shutdown `serial` up for good with a sub-interpreter still alive,
/// unless a call joined meanwhile with a deadline later than `given` (then
/// `Err` with it). `Py_FinalizeEx` must not run then: 3.11 and 3.12 abort the
/// process ("remaining subinterpreters"), 3.13 ends them itself on this
/// thread, under the keeper that owns each. So Python stays initialized, the
/// gate stays closed, and every later shutdown and start says why. Without the GIL.
fn abandon_unless_extended(
    serial: u64,
    why: &str,
    given: Option<Instant>,
) -> std::result::Result<(), Option<Instant>> {
    let mut life = LIFECYCLE.lock();
    if let Some(request) = life.request(serial) {
        if request.deadline != given {
            return Err(request.deadline);
        }
    }
    let message = format!(
        "the shutdown passed its point of no return, but {why} at its deadline. \
         Py_FinalizeEx must not run while a sub-interpreter lives (CPython aborts the \
         process), so pybridge did not finalize: Python stays initialized, unused, until \
         the process exits, and no engine can start again in this process"
    );
    log::error!("shutdown abandoned: {message}");
    gate::set_engine_thread_tid(0);
    life.abandoned = Some(message.clone());
    life.settle(serial, Outcome::Abandoned(message));
    Ok(())
}

/// Commits attempt `serial` as interrupting and runs `deliver`, both under
/// the lifecycle lock, so a caller at its deadline either calls the attempt
/// off before anything was delivered or finds it committed; false (nothing
/// delivered) when it was called off.
fn commit_interrupting(serial: u64, deliver: &mut dyn FnMut()) -> bool {
    let mut life = LIFECYCLE.lock();
    let Some(request) = life.request(serial) else {
        return false;
    };
    request.interrupted = true;
    deliver();
    true
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
    let outcome = OutcomeCell::default();
    life.request = Some(ShutdownRequest {
        serial,
        interrupt: flags & PYB_SHUTDOWN_INTERRUPT != 0,
        taken_by_engine: false,
        interrupted: false,
        deadline,
        outcome: outcome.clone(),
        blocker: None,
    });
    life.transition(Phase::ShuttingDown);
    gate::barrier();
    log::info!("shutdown requested (timeout {timeout_ms} ms, flags {flags:#x})");
    if life.is_guest() {
        return guest_shutdown(life, serial, deadline, timeout_ms);
    }
    CHANGED.notify_all();
    match wait_for_outcome(&mut life, &outcome, deadline) {
        Some(Outcome::Finalized) => {
            // The engine thread's last steps after its outcome: wait for them
            // within the deadline (a next start joins the thread, bounded too,
            // and once one began the thread is its business).
            let exited = life
                .engine_thread
                .as_ref()
                .filter(|_| life.phase == Phase::Uninitialized)
                .map(|thread| thread.exit_signal());
            drop(life);
            match exited {
                Some(exited) if !exited.wait(deadline) => log::warn!(
                    "shutdown complete, but the engine thread had not exited by the deadline; \
                     the next pyb_engine_initialize waits for it"
                ),
                Some(exited) => {
                    EngineThread::join_exited(&exited);
                    log::info!("shutdown complete");
                }
                None => log::info!("shutdown complete"),
            }
            Ok(())
        }
        Some(Outcome::Abandoned(why)) => Err(abandoned_error(&why)),
        // Only this call calls its attempt off.
        Some(Outcome::CalledOff(blocker)) => Err(timeout_error(timeout_ms, &blocker)),
        None if life.commitment(serial).is_some() => {
            Err(committed_error(&mut life, serial, timeout_ms))
        }
        None => {
            let blocker = call_off(&mut life, serial);
            Err(timeout_error(timeout_ms, &blocker))
        }
    }
}

/// What every call waiting for an abandoned shutdown, and every later one, returns.
fn abandoned_error(why: &str) -> Error {
    Error::new(
        PYB_E_SHUTDOWN_COMMITTED,
        format!("shutdown abandoned: {why}"),
    )
}

/// A shutdown from a thread the shutdown would have to wait for can never finish.
fn refuse_if_caller_blocks_shutdown() -> Result<()> {
    let Some(slot) = ThreadSlot::existing() else {
        return Ok(());
    };
    let owner = slot.owner();
    let reason = if owner.frames.depth() > 0 {
        Some("the calling thread holds the GIL through pybridge; release it first")
    } else if owner.frames.in_allow_threads_region() {
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

/// Waits for a shutdown's outcome until `deadline`; `None` while it is still
/// in progress then. Set under the lifecycle lock, so none is missed.
fn wait_for_outcome(
    life: &mut MutexGuard<'_, Lifecycle>,
    outcome: &OutcomeCell,
    deadline: Option<Instant>,
) -> Option<Outcome> {
    loop {
        if let Some(outcome) = outcome.get() {
            return Some(outcome.clone());
        }
        if wait_until(&CHANGED, life, deadline) {
            return outcome.get().cloned();
        }
    }
}

/// Ends a pending attempt at its deadline, before its point of no return (so
/// nothing was interrupted): reopen the gate. Returns what was blocking.
fn call_off(life: &mut MutexGuard<'_, Lifecycle>, serial: u64) -> String {
    let blocker = life
        .request(serial)
        .map_or_else(|| "unknown".to_string(), |request| blocker_of(request));
    life.settle(serial, Outcome::CalledOff(blocker.clone()));
    life.transition(Phase::Running);
    stats::SHUTDOWN_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
    log::warn!("shutdown timed out and was called off: {blocker}");
    blocker
}

/// What blocks `request`, as the engine thread last reported it. Before its
/// first report (a deadline shorter than the engine thread's wake-up on a busy
/// machine) the caller looks at the host threads itself, so the message still
/// names a thread inside pybridge.
fn blocker_of(request: &ShutdownRequest) -> String {
    request
        .blocker
        .clone()
        .or_else(|| BusyWatch::default().blocker())
        .unwrap_or_else(|| "the engine thread has not reported yet".to_string())
}

/// The deadline passed after the point of no return: the shutdown carries on.
fn committed_error(life: &mut MutexGuard<'_, Lifecycle>, serial: u64, timeout_ms: u32) -> Error {
    let commitment = life.commitment(serial);
    let Some(request) = life.request(serial) else {
        return Error::new(PYB_E_SHUTDOWN_COMMITTED, "the shutdown is finishing");
    };
    let what = match commitment {
        // `finalize` reports each stage as it starts.
        Some(Commitment::Finalizing) => blocker_of(request),
        _ => format!(
            "it interrupted threads (PYB_SHUTDOWN_INTERRUPT), so it cannot be called off, \
             and it waits for them to leave. Blocking: {}",
            blocker_of(request)
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
    let Some(request) = life.request.as_mut() else {
        return Err(match &life.abandoned {
            Some(why) => abandoned_error(why),
            None => Error::shutting_down(),
        });
    };
    // Past the point of no return the engine gives the sub-interpreters until
    // the last waiting call's deadline.
    request.deadline = later(request.deadline, deadline);
    let (serial, outcome) = (request.serial, request.outcome.clone());
    log::debug!("a shutdown call joins the shutdown in progress (timeout {timeout_ms} ms)");
    match wait_for_outcome(&mut life, &outcome, deadline) {
        Some(Outcome::Finalized) => Ok(()),
        Some(Outcome::Abandoned(why)) => Err(abandoned_error(&why)),
        Some(Outcome::CalledOff(blocker)) => Err(Error::new(
            PYB_E_TIMEOUT,
            format!(
                "the shutdown this call joined (started by another thread) timed out; the \
                 engine runs on. Blocking: {blocker}"
            ),
        )),
        None if life.commitment(serial).is_some() => {
            Err(committed_error(&mut life, serial, timeout_ms))
        }
        None => Err(Error::new(
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
            request.blocker = Some(blocker);
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
        unsafe { with_gil_state(release_engine_objects) };
        crate::python::handles::on_engine_finalized();
    });
    life.settle(serial, Outcome::Finalized);
    life.transition(Phase::Uninitialized);
    gate::set_interpreter(std::ptr::null_mut());
    log::info!("guest engine detached; the host's interpreter keeps running");
    Ok(())
}
