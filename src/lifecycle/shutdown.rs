//! Stopping the engine from any thread under a deadline: close the gate,
//! wait for host threads to leave and non-daemon Python threads to finish,
//! then commit and finalize on the engine thread. Until the commit a timeout
//! reopens the gate and nothing is lost.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;
use pyo3::{Python, ffi};

use crate::abi::engine::PYB_SHUTDOWN_INTERRUPT;
use crate::abi::status::*;
use crate::lifecycle::state::{
    CHANGED, Commitment, LIFECYCLE, Lifecycle, Outcome, Phase, ShutdownRequest, deadline_after,
    refuse_if_forked,
};
use crate::python::interpreter::{self, Interrupts, PythonThread};
use crate::python::owned::Owned;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;
use crate::runtime::stats;
use crate::runtime::thread_slot::{Activity, ThreadSlot, all_slots};

const KNOWN_SHUTDOWN_FLAGS: u32 = PYB_SHUTDOWN_INTERRUPT;

/// How long one poll waits for the sub-interpreters' keepers to say which
/// Python threads run in their interpreters (a keeper needs its GIL, which a
/// running thread gives up within a switch interval).
const SUBINTERPRETER_ANSWER: Duration = Duration::from_millis(200);

/// Checks on the interpreters Python code made itself (PEP 734, 3.14+).
const PYTHON_MADE_INTERPRETERS: &CStr = match CStr::from_bytes_with_nul(
    concat!(include_str!("python_made_interpreters.py"), "\0").as_bytes(),
) {
    Ok(source) => source,
    Err(_) => panic!("python_made_interpreters.py holds a NUL byte"),
};

/// Calls `function` of the helper module for Python-made interpreters; None
/// (logged) when it fails, so a broken helper never blocks a shutdown. Main
/// GIL held.
fn python_made_call<'py>(py: Python<'py>, function: &CStr) -> Option<Owned<'py>> {
    let result = interpreter::source_module(
        py,
        c"_pybridge_python_interpreters",
        PYTHON_MADE_INTERPRETERS,
        c"<pybridge>",
    )
    .and_then(|module| {
        // SAFETY: GIL held; `module` is live; new references are taken over.
        unsafe {
            let function = Owned::new(
                py,
                ffi::PyObject_GetAttrString(module.as_ptr(), function.as_ptr()),
            )?;
            Owned::new(py, ffi::PyObject_CallNoArgs(function.as_ptr()))
        }
    });
    result
        .map_err(|error| {
            log::error!(
                "could not check Python-made interpreters: {}",
                error.message
            )
        })
        .ok()
}

/// What keeps `Py_FinalizeEx` from ending the interpreters Python code made
/// cleanly: one running code, an `InterpreterPoolExecutor` with queued work
/// (its atexit hook waits for it). None when there is nothing, or before
/// 3.14. Reads flags only (never enters those interpreters). Main GIL held.
fn python_made_blocker(py: Python<'_>) -> Option<String> {
    let answer = python_made_call(py, c"blocker")?;
    // SAFETY: GIL held; `answer` is None or a str.
    unsafe {
        if answer.as_ptr() == ffi::Py_None() {
            return None;
        }
        let text = ffi::PyUnicode_AsUTF8(answer.as_ptr());
        if text.is_null() {
            ffi::PyErr_Clear();
            return Some("an interpreter made by Python code is busy".to_string());
        }
        Some(CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

/// True while an interpreter Python code made runs code. Main GIL held.
fn python_made_running(py: Python<'_>) -> bool {
    python_made_call(py, c"is_running")
        // SAFETY: GIL held; a bool object.
        .is_some_and(|answer| answer.as_ptr() == unsafe { ffi::Py_True() })
}

/// What an open PEP 788 interpreter guard does to a shutdown (3.15+): native
/// code holding one (`PyInterpreterGuard_*`, or inside a
/// `PyThreadState_Ensure*` scope, which holds one) keeps `Py_FinalizeEx`
/// waiting until it is closed, so it blocks here, before the point of no
/// return, like a host thread inside a GIL scope. None before 3.15, or when
/// CPython does not export the count (it is private: looked up, not linked).
fn open_guards_blocker() -> Option<String> {
    let guards = open_guards()?;
    (guards > 0).then(|| {
        format!(
            "native code holds {guards} PEP 788 interpreter guard(s) (PyInterpreterGuard, or a \
             PyThreadState_Ensure scope), which Py_FinalizeEx would wait for; close them"
        )
    })
}

/// How many guards are open on the main interpreter: CPython 3.15.2 exports
/// `_PyInterpreterState_GuardCountdown` (for its own tests), a plain read.
#[cfg(Py_3_15)]
fn open_guards() -> Option<isize> {
    type Countdown = unsafe extern "C" fn(*mut ffi::PyInterpreterState) -> isize;
    static COUNTDOWN: std::sync::OnceLock<Option<Countdown>> = std::sync::OnceLock::new();
    let countdown = (*COUNTDOWN.get_or_init(|| {
        // SAFETY: a symbol lookup; the symbol, when present, has this signature (3.15.2).
        let symbol = unsafe {
            libc::dlsym(
                libc::RTLD_DEFAULT,
                c"_PyInterpreterState_GuardCountdown".as_ptr(),
            )
        };
        // SAFETY: a non-null function pointer of the declared type.
        (!symbol.is_null())
            .then(|| unsafe { std::mem::transmute::<*mut libc::c_void, Countdown>(symbol) })
    }))?;
    // SAFETY: the main interpreter is alive (before finalization); a plain read.
    Some(unsafe { countdown(ffi::PyInterpreterState_Main()) })
}

#[cfg(not(Py_3_15))]
fn open_guards() -> Option<isize> {
    None
}

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
    main_state: *mut ffi::PyThreadState,
    serial: u64,
    interrupt: bool,
    /// Idents of the threads already interrupted (each is interrupted once).
    interrupted: Vec<u64>,
    busy: BusyWatch,
}

impl EngineShutdown {
    pub(super) fn new(main_state: *mut ffi::PyThreadState, serial: u64, interrupt: bool) -> Self {
        EngineShutdown {
            main_state,
            serial,
            interrupt,
            interrupted: Vec::new(),
            busy: BusyWatch::default(),
        }
    }

    /// True when the interpreter was finalized; false when the attempt was called off.
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
                self.with_gil(|this| this.interrupt_threads());
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
        let python_threads: Vec<u64> = interpreter::python_threads(py)
            .unwrap_or_default()
            .iter()
            .map(|thread| thread.ident)
            .filter(|ident| !self.interrupted.contains(ident))
            .collect();
        let busy: Vec<_> = all_slots()
            .into_iter()
            .filter(|slot| slot.busy.load(Ordering::Acquire) && !slot.is_engine_thread())
            .filter(|slot| !slot.internal.load(Ordering::Relaxed))
            .filter(|slot| !self.interrupted.contains(&slot.pthread_id))
            .collect();
        // Threads working in a sub-interpreter are interrupted there, by its
        // keeper, which checks where they are as above, interrupts each once,
        // and leaves the others for the next poll: asked again every time.
        let in_subinterpreters: Vec<(u64, u64)> = busy
            .iter()
            .filter(|slot| slot.current_interpreter() != 0)
            .map(|slot| (slot.current_interpreter(), slot.pthread_id))
            .collect();
        // Every poll while interpreters live: their own Python threads keep
        // them from ending, and their keepers look at those threads too.
        if !crate::runtime::interpreters::all().is_empty() {
            self.interrupt_in_subinterpreters(&in_subinterpreters);
        }
        let host_threads: Vec<u64> = busy
            .iter()
            .filter(|slot| slot.current_interpreter() == 0)
            .map(|slot| slot.pthread_id)
            .filter(|ident| !python_threads.contains(ident))
            .collect();
        if python_threads.is_empty() && host_threads.is_empty() {
            return;
        }
        // From here on no bytecode runs, so no thread moves until the raise.
        let ready = Interrupts::new(py).and_then(|interrupts| {
            let targets = [python_threads.as_slice(), host_threads.as_slice()].concat();
            let safe = interpreter::interruptible(py, &targets)?;
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
        if !self.commit_and_deliver(|| interrupts.raise_in(&python_now, &host_now)) {
            return;
        }
        log::info!(
            "shutdown interrupted {} Python thread(s) and {} host thread(s); it cannot be called off now",
            python_now.len(),
            host_now.len()
        );
        self.interrupted.extend(python_now);
        self.interrupted.extend(host_now);
    }

    /// Has the keepers interrupt host threads inside their interpreters and
    /// those interpreters' own Python threads. A keeper commits the shutdown
    /// just before its first raise (none when it finds every thread where an
    /// exception could leave a lock held, or the attempt called off). Not
    /// recorded in `interrupted`: asked again every poll for those left.
    fn interrupt_in_subinterpreters(&mut self, threads: &[(u64, u64)]) {
        let serial = self.serial;
        crate::python::subinterpreter::post_interrupts(
            threads,
            Arc::new(move || commit_interrupting(serial, || {})),
        );
    }

    /// Delivers interrupts under the lifecycle lock, committing the attempt;
    /// false when it was called off (see `commit_interrupting`).
    fn commit_and_deliver(&self, deliver: impl FnOnce()) -> bool {
        commit_interrupting(self.serial, deliver)
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
            request.blocker = Some("it is past its point of no return and finalizing".to_string());
        }
        None
    }

    fn finalize(&mut self, py: Python<'_>, threads: &[PythonThread]) {
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
        // SAFETY: GIL held on the main state; taken back right after.
        unsafe { ffi::PyEval_SaveThread() };
        // With the interrupt flag, their own Python threads are interrupted
        // (they would keep them from ending), as often as it takes.
        crate::python::subinterpreter::end_all(Duration::from_secs(10), self.interrupt);
        crate::python::subinterpreter::retire_idle_keepers();
        // SAFETY: the engine thread's own main state.
        unsafe { ffi::PyEval_RestoreThread(self.main_state) };
        self.report(
            "it is cancelling pending pyb_task_submit tasks and stopping pybridge's event loop \
             (a task that swallows its cancellation may be slow)"
                .to_string(),
        );
        release_engine_objects(py);
        self.report(
            "Py_FinalizeEx is running on the engine thread (an atexit handler or __del__ may \
             be slow)"
                .to_string(),
        );
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
            request.blocker = Some(blocker);
        }
    }

    fn report_and_wait(&mut self, blocker: String) {
        let mut life = LIFECYCLE.lock();
        if let Some(request) = life.request(self.serial) {
            request.blocker = Some(blocker);
        }
        // Woken early when the attempt is called off.
        CHANGED.wait_for(&mut life, Duration::from_millis(2));
    }
}

/// Commits attempt `serial` as interrupting and runs `deliver`, both under
/// the lifecycle lock, so a caller at its deadline either calls the attempt
/// off before anything was delivered or finds it committed; false (nothing
/// delivered) when it was called off.
fn commit_interrupting(serial: u64, deliver: impl FnOnce()) -> bool {
    let mut life = LIFECYCLE.lock();
    let Some(request) = life
        .request(serial)
        .filter(|request| request.outcome == Outcome::Pending)
    else {
        return false;
    };
    request.committed.get_or_insert(Commitment::Interrupted);
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
    life.request = Some(ShutdownRequest {
        serial,
        interrupt: flags & PYB_SHUTDOWN_INTERRUPT != 0,
        taken_by_engine: false,
        committed: None,
        outcome: Outcome::Pending,
        blocker: None,
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
            let blocker = blocker_of(request);
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
    let Some(request) = life.request(serial) else {
        return Error::new(PYB_E_SHUTDOWN_COMMITTED, "the shutdown is finishing");
    };
    let what = match request.committed {
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
    let Some(serial) = life.request.as_ref().map(|request| request.serial) else {
        return Err(Error::shutting_down());
    };
    log::debug!("a shutdown call joins the shutdown in progress (timeout {timeout_ms} ms)");
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
