//! Sub-interpreters: each is made and ended by a keeper thread of its own,
//! which pybridge owns like the engine thread, and is entered by host threads
//! through `interpreter_switch::enter_interpreter` with a persistent state per thread.
//!
//! Why a keeper thread: CPython wants an interpreter ended with its own thread
//! state current, and on 3.12 by the thread that made it; a host thread that
//! made one may have exited or be busy by then, and the engine's end must be
//! able to end them all. The keeper sleeps on a condition variable in between.
//!
//! One file over 500 lines: everything a keeper thread does (make, probe,
//! interrupt, end) is one loop over its `KeeperWork`, and the destroyers'
//! side of that conversation.

use std::ffi::CStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use pyo3::{Python, ffi};

use crate::abi::status::*;
use crate::python::allow_threads;
use crate::python::attached::Attached;
use crate::python::embedded::{embedded_python, run_apart};
use crate::python::gil::GilScope;
use crate::python::handles;
use crate::python::interpreter_switch;
use crate::python::interrupts;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, GateState};
use crate::runtime::gil_cell::InterpreterGil;
use crate::runtime::ids::{InterpreterId, ThreadIdent};
use crate::runtime::interpreters::{
    self, InterpreterRecord, InterruptCommit, KeeperTalk, KeeperWork,
};
use crate::runtime::thread_slot::{ThreadSlot, all_slots};

/// Refuses what this CPython cannot do.
pub(crate) fn refuse_unsupported(own_gil: bool) -> Result<()> {
    if own_gil && !cfg!(Py_3_12) {
        return Err(Error::new(
            PYB_E_UNSUPPORTED,
            format!(
                "sub-interpreters with their own GIL need CPython 3.12 or later; this is \
                 {}. Pass PYB_INTERPRETER_SHARED_GIL for one that shares the main GIL \
                 (it works here, on one core with the main interpreter)",
                python_version()
            ),
        ));
    }
    Ok(())
}

fn python_version() -> String {
    format!("CPython {}", crate::sys::loader::running_version())
}

/// Makes a sub-interpreter and returns its id; blocks until its keeper made it.
pub(crate) fn create(own_gil: bool) -> Result<InterpreterId> {
    refuse_unsupported(own_gil)?;
    let word = gate::load();
    match word.state() {
        GateState::Running => {}
        GateState::Closed => return Err(Error::not_initialized()),
        GateState::Forked => return Err(Error::forked()),
        _ => return Err(Error::shutting_down()),
    }
    let id = interpreters::next_id();
    let record = Arc::new(InterpreterRecord::new(id, own_gil, word.generation()));
    let (ready, made) = std::sync::mpsc::channel();
    hand_to_a_keeper(KeeperJob {
        record: record.clone(),
        ready,
    })?;
    // The keeper needs the main GIL to make the interpreter.
    allow_threads::with_gil_given_away(|| made.recv()).unwrap_or_else(|_| {
        Err(Error::new(
            PYB_E_PANIC,
            "the thread making the sub-interpreter stopped without an answer",
        ))
    })?;
    Ok(id)
}

/// What a keeper thread is given: an interpreter to make and keep.
struct KeeperJob {
    record: Arc<InterpreterRecord>,
    ready: Sender<Result<()>>,
}

/// Keeper threads whose interpreter has ended, waiting for the next one.
/// Reused rather than started afresh: each new thread gets its own glibc
/// malloc arena, and an interpreter made and freed on a new thread each time
/// grew RSS by about 240 KiB a cycle more than CPython alone (none with
/// `MALLOC_ARENA_MAX=1`, and none with reused keepers).
static IDLE_KEEPERS: Mutex<Vec<IdleKeeper>> = Mutex::new(Vec::new());
static KEEPERS_STARTED: AtomicU64 = AtomicU64::new(0);

/// A keeper thread waiting for its next interpreter on `jobs`.
struct IdleKeeper {
    jobs: Sender<KeeperJob>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// Ends every idle keeper thread and waits for it to exit, at the engine's
/// end. A keeper may have run host code (a buffer's release callback, a host
/// object's drop), and a runtime that attached the thread then may wait for
/// it before its process exits: Mono does, for ever. Keepers of interpreters
/// the end left behind are not idle and stay.
pub(crate) fn retire_idle_keepers() {
    let idle = std::mem::take(&mut *IDLE_KEEPERS.lock());
    for keeper in idle {
        drop(keeper.jobs);
        // Taken by the first retirer: the keeper returns as soon as its
        // channel closes.
        if let Some(thread) = keeper.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

fn hand_to_a_keeper(job: KeeperJob) -> Result<()> {
    let mut job = job;
    loop {
        let Some(idle) = IDLE_KEEPERS.lock().pop() else {
            break;
        };
        match idle.jobs.send(job) {
            Ok(()) => return Ok(()),
            // That keeper is gone: try the next.
            Err(returned) => job = returned.0,
        }
    }
    let number = KEEPERS_STARTED.fetch_add(1, Ordering::Relaxed) + 1;
    // The keeper learns its own handle before its first job ends.
    let thread = Arc::new(Mutex::new(None));
    let mut own = thread.lock();
    let keeper_thread = thread.clone();
    *own = Some(
        std::thread::Builder::new()
            .name(format!("pybridge-keeper-{number}"))
            .spawn(move || keeper_main(job, keeper_thread))
            .map_err(|error| {
                Error::new(
                    PYB_E_OUT_OF_MEMORY,
                    format!("could not start the thread that keeps a sub-interpreter: {error}"),
                )
            })?,
    );
    Ok(())
}

/// A keeper thread's life: one interpreter after another.
fn keeper_main(first: KeeperJob, thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>) {
    // An interrupting shutdown must not raise in a keeper: an exception landing
    // in its main-interpreter code (a weakref callback of importlib's module
    // locks, seen in the fuzzer) left it hung inside its scope.
    ThreadSlot::current()
        .internal
        .store(true, Ordering::Relaxed);
    let mut job = first;
    loop {
        let (next, jobs) = std::sync::mpsc::channel();
        // Idle again before the destroyer hears of the end, so that a create
        // right after it finds this keeper.
        keep(job.record, job.ready, || {
            IDLE_KEEPERS.lock().push(IdleKeeper {
                jobs: next,
                thread: thread.clone(),
            })
        });
        match jobs.recv() {
            Ok(next_job) => job = next_job,
            Err(_) => return,
        }
    }
}

/// One interpreter's life on its keeper: makes it, answers end requests, ends it.
fn keep(record: Arc<InterpreterRecord>, ready: Sender<Result<()>>, on_end: impl FnOnce()) {
    let (tstate, main_state) = match make(&record) {
        Ok(states) => {
            let _ = ready.send(Ok(()));
            states
        }
        Err(error) => {
            on_end();
            let _ = ready.send(Err(error));
            return;
        }
    };
    // The threads interrupted here so far: each is interrupted once.
    let mut interrupted = Vec::new();
    loop {
        match record.wait_for_work() {
            KeeperWork::Interrupt(threads, commit) => {
                interrupt_inside(tstate, &threads, &mut interrupted, &commit);
                continue;
            }
            KeeperWork::Probe(askers) => {
                answer_probes(tstate, askers);
                continue;
            }
            KeeperWork::End => {}
        }
        match try_to_end(&record, tstate, main_state) {
            KeeperTalk::Ended => {
                on_end();
                record.answer(KeeperTalk::Ended);
                return;
            }
            // The destroyer withdrew meanwhile: nothing to say.
            KeeperTalk::Idle => {}
            answer => record.answer(answer),
        }
    }
}

/// Makes the interpreter under the main GIL and registers it (still inside
/// the gate, so an engine shutdown either refuses this or sees the record).
/// Returns the keeper's own thread states in it and in the main interpreter, detached.
fn make(
    record: &Arc<InterpreterRecord>,
) -> Result<(*mut ffi::PyThreadState, *mut ffi::PyThreadState)> {
    let scope = GilScope::acquire()?;
    let py = scope.python();
    let main_state = ThreadSlot::current().owner().tstate.get();
    let tstate = new_interpreter(py, record.own_gil)?;
    // SAFETY: CPython made `tstate` current, holding the new interpreter's GIL.
    let interp = unsafe { ffi::PyThreadState_GetInterpreter(tstate) };
    record.interp.store(interp, Ordering::Release);
    if !record.own_gil {
        if let Err(error) = crate::python::interpreter::guard_reimports_in_shared_subinterpreter(py)
        {
            log::error!(
                "could not install the re-import guard in sub-interpreter {}: {}",
                record.id,
                error.message
            );
        }
    }
    if cfg!(all(Py_3_12, not(Py_3_14))) && record.own_gil {
        if let Err(error) = run_apart(py, OWN_GIL_GUARD) {
            log::error!(
                "could not install the own-GIL guard in sub-interpreter {}: {}",
                record.id,
                error.message
            );
        }
    }
    interpreters::register(record.clone());
    // SAFETY: give the new interpreter's GIL away and take the main one back
    // on this thread's main state, for the scope's release.
    unsafe {
        ffi::PyEval_SaveThread();
        ffi::PyEval_RestoreThread(main_state);
    }
    drop(scope);
    log::debug!(
        "made sub-interpreter {} ({} GIL)",
        record.id,
        if record.own_gil { "own" } else { "shared" }
    );
    Ok((tstate, main_state))
}

/// `Py_NewInterpreterFromConfig` (3.12+) or `Py_NewInterpreter`; on success the
/// new interpreter's state is current. CPython puts the main state back on failure.
fn new_interpreter(_py: Python<'_>, own_gil: bool) -> Result<*mut ffi::PyThreadState> {
    #[cfg(Py_3_12)]
    {
        // Own GIL: CPython's isolated defaults (own allocator, no fork or exec,
        // threads but no daemon threads, extensions must support isolation).
        // Shared: what `Py_NewInterpreter` does.
        let config = if own_gil {
            ffi::_PyInterpreterConfig_INIT
        } else {
            ffi::_PyInterpreterConfig_LEGACY_INIT
        };
        let mut tstate = std::ptr::null_mut();
        // SAFETY: main GIL held on this thread's own state.
        let status = unsafe { ffi::Py_NewInterpreterFromConfig(&mut tstate, &config) };
        // SAFETY: reads the status CPython returned.
        if unsafe { ffi::PyStatus_Exception(status) } != 0 || tstate.is_null() {
            let why = if status.err_msg.is_null() {
                "no reason given".to_string()
            } else {
                // SAFETY: a static C string from CPython.
                unsafe { CStr::from_ptr(status.err_msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(Error::new(
                PYB_E_PYTHON,
                format!("CPython could not make a sub-interpreter: {why}"),
            ));
        }
        Ok(tstate)
    }
    #[cfg(not(Py_3_12))]
    {
        let _ = own_gil;
        // SAFETY: main GIL held on this thread's own state.
        let tstate = unsafe { ffi::Py_NewInterpreter() };
        if tstate.is_null() {
            return Err(crate::python::exception::python_error(_py));
        }
        Ok(tstate)
    }
}

/// On the keeper: raises `ShutdownInterrupt` in the host threads and
/// `SystemExit` in the interpreter's Python threads, each once, and only
/// where the exception cannot leave a lock held (`interrupts::raise_where_safe`,
/// as in the main interpreter: one raised inside importlib here left this
/// interpreter's import lock held, and two host threads waited for it for
/// ever); the others are tried again on the next request.
fn interrupt_inside(
    tstate: *mut ffi::PyThreadState,
    host_threads: &[ThreadIdent],
    interrupted: &mut Vec<ThreadIdent>,
    commit: &InterruptCommit,
) {
    // SAFETY: the keeper's own state in its live interpreter, detached.
    let keeper = unsafe { Attached::restore(tstate) };
    let py = keeper.python();
    let raised = interrupts::python_threads(py).and_then(|threads| {
        let python_threads: Vec<ThreadIdent> = threads.iter().map(|thread| thread.ident).collect();
        interrupts::raise_where_safe(py, &python_threads, host_threads, interrupted, &**commit)
    });
    match raised {
        Ok((0, 0)) => {}
        Ok((python, host)) => log::info!(
            "shutdown interrupted {python} Python thread(s) and {host} host thread(s) in a sub-interpreter"
        ),
        Err(error) => log::error!(
            "shutdown could not interrupt threads in a sub-interpreter: {}",
            error.message
        ),
    }
}

/// On the keeper: answers each asker with the names of the Python threads
/// running in this interpreter (empty: none).
fn answer_probes(tstate: *mut ffi::PyThreadState, askers: Vec<Sender<Result<String>>>) {
    // SAFETY: the keeper's own state in its live interpreter, detached.
    let keeper = unsafe { Attached::restore(tstate) };
    let running = interrupts::running_python_thread_names(keeper.python());
    drop(keeper);
    for asker in askers {
        // An asker that stopped waiting is gone: nothing to tell it.
        let _ = asker.send(running.clone());
    }
}

/// What keeps the engine's shutdown from its point of no return in the
/// sub-interpreters: a Python thread running in one (daemon or not: CPython
/// cannot end an interpreter while any of its threads lives, and an
/// interpreter left alive makes `Py_FinalizeEx` a fatal error). Asks every
/// keeper and waits for the answers until `deadline`; a keeper that has not
/// answered by then blocks too. The caller holds no GIL (keepers of
/// shared-GIL interpreters need the main one) and has closed the gate, so no
/// host thread can start Python code in an interpreter after its keeper
/// found none running there.
pub(crate) fn shutdown_blocker(deadline: Instant) -> Option<String> {
    let records = interpreters::all();
    if let Some(ending) = records.iter().find(|record| record.is_ending()) {
        // Its keeper is inside `Py_EndInterpreter`, which `Py_FinalizeEx` must not overlap.
        return Some(format!(
            "sub-interpreter {} is still ending (a destroy passed its point of no return; \
             CPython is running its atexit functions and finalizers)",
            ending.id
        ));
    }
    let asked: Vec<_> = records
        .into_iter()
        .map(|record| (record.id, record.post_probe()))
        .collect();
    for (id, answered) in asked {
        let wait = deadline.saturating_duration_since(Instant::now());
        let blocker = match answered.recv_timeout(wait) {
            Ok(Ok(running)) if running.is_empty() => continue,
            Ok(Ok(running)) => format!(
                "Python thread(s) {running} still run in sub-interpreter {id} (daemon threads                  too: CPython cannot end an interpreter while any of its threads lives); let                  them finish, or shut down with PYB_SHUTDOWN_INTERRUPT"
            ),
            Ok(Err(error)) => format!(
                "could not list the Python threads of sub-interpreter {id}: {}",
                error.message
            ),
            // Gone: the interpreter ended meanwhile.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => format!(
                "the keeper of sub-interpreter {id} did not get its GIL in time to say which                  Python threads run there"
            ),
        };
        return Some(blocker);
    }
    None
}

/// Asks the keepers of every sub-interpreter to interrupt the host threads
/// working there (`(interpreter, thread)` pairs) and their own Python
/// threads (an interrupting shutdown), each calling `commit` before its first
/// raise. Does not wait: a keeper may need the GIL the caller holds.
pub(crate) fn post_interrupts(
    host_threads: &[(InterpreterId, ThreadIdent)],
    commit: InterruptCommit,
) {
    for record in interpreters::all() {
        let mine: Vec<ThreadIdent> = host_threads
            .iter()
            .filter(|(interpreter, _)| *interpreter == record.id)
            .map(|(_, ident)| *ident)
            .collect();
        // The keeper wakes for the interpreter's Python threads alone.
        let threads = if mine.is_empty() {
            vec![ThreadIdent::NONE]
        } else {
            mine
        };
        record.post_interrupt(threads, commit.clone());
    }
}

/// CPython 3.12's own-GIL interpreters crash the process when it ends (in
/// free()) once `_ssl` or `_hashlib` was used in one (`import ssl`, `import
/// hashlib`), `_asyncio` ran an event loop, or `_zoneinfo` was imported in two
/// of them. Single-phase extension modules, which CPython refuses in such an
/// interpreter with an ImportError, crash it too once refused twice: CPython
/// runs their init before refusing. All checked on 3.12.1 with CPython's own
/// `_xxsubinterpreters`, no pybridge involved. On 3.13.0, own-GIL interpreters
/// importing `_datetime` on two threads at once corrupt the heap when one ends
/// (`_PyTuple_ClearFreeList` in `Py_EndInterpreter`; reproduced with CPython's
/// own `_interpreters`, found by tests/c/fuzz_api.c); `_zoneinfo` goes with it,
/// as it needs `_datetime`'s C API. The guard refuses them
/// all before CPython touches them; the standard library falls back to its
/// pure-Python twins (`_pydatetime`, `_pydecimal`, the built-in hashes,
/// asyncio's Python tasks), without TLS.
const OWN_GIL_GUARD: &CStr = embedded_python!("own_gil_guard.py");

/// On the keeper: ends the interpreter unless a Python thread still runs in it.
fn try_to_end(
    record: &InterpreterRecord,
    tstate: *mut ffi::PyThreadState,
    main_state: *mut ffi::PyThreadState,
) -> KeeperTalk {
    // SAFETY: the keeper's own state, detached; no host thread is inside (the
    // record is closed).
    let keeper = unsafe { Attached::restore(tstate) };
    let py = keeper.python();
    match interrupts::running_python_thread_names(py) {
        Ok(running) if running.is_empty() => {}
        outcome => {
            let why = match outcome {
                Ok(running) => format!(
                    "Python thread(s) {running} still run in sub-interpreter {}; let them \
                     finish first",
                    record.id
                ),
                Err(error) => format!(
                    "could not list the Python threads of sub-interpreter {}: {}",
                    record.id, error.message
                ),
            };
            return KeeperTalk::Refused(why);
        }
    }
    if !record.commit_to_end() {
        // The destroyer gave up meanwhile: nothing changes.
        return KeeperTalk::Idle;
    }
    // SAFETY: the keeper holds this interpreter's GIL (on its own thread state).
    let gil = unsafe { InterpreterGil::assume(py, record.id) };
    handles::on_interpreter_end(gil, &record.free_handle_slots);
    // Py_EndInterpreter requires the ending state to be the only one (3.12):
    // free the states host threads left here. From 3.12 each is its thread's
    // PyGILState state if that thread attached nothing since, and the thread's
    // next attach writes into it: held until then (`state_quarantine`).
    let interp = record.interp.load(Ordering::Acquire);
    let mut freed = 0;
    loop {
        // SAFETY: the interpreter's GIL is held; the list is walked afresh each time.
        let mut other = unsafe { ffi::PyInterpreterState_ThreadHead(interp) };
        while other == tstate {
            // SAFETY: as above.
            other = unsafe { ffi::PyThreadState_Next(other) };
        }
        if other.is_null() {
            break;
        }
        // SAFETY: a state of an idle host thread (none is inside); Clear may run
        // Python code, under this interpreter's GIL on the keeper's state.
        crate::python::state_quarantine::expect_freed_elsewhere(other);
        unsafe {
            ffi::PyThreadState_Clear(other);
            ffi::PyThreadState_Delete(other);
        }
        freed += 1;
    }
    crate::runtime::stats::THREAD_STATES_DELETED.fetch_add(freed, Ordering::Relaxed);
    keeper.consumed();
    // SAFETY: the keeper's state is current and the only one; no GIL is held after.
    unsafe { ffi::Py_EndInterpreter(tstate) };
    if !cfg!(Py_3_12) {
        // Before 3.12 the shared GIL is still held, on no thread state: put the
        // keeper's main state back to give it away.
        // SAFETY: the keeper's own main state, detached since `make`.
        unsafe {
            ffi::PyThreadState_Swap(main_state);
            ffi::PyEval_SaveThread();
        }
    }
    interpreters::unregister(record.id);
    log::debug!(
        "ended sub-interpreter {} (freed {freed} host thread state(s))",
        record.id
    );
    KeeperTalk::Ended
}

/// Destroys sub-interpreter `id` (`pyb_interpreter_destroy`); a pool's
/// members end only with their pool (`pool::destroy`).
pub(crate) fn destroy(id: InterpreterId, deadline: Option<Instant>) -> Result<()> {
    let record =
        interpreters::lookup(id).ok_or_else(|| interpreter_switch::unknown_interpreter(id))?;
    let pool = record.pool.load(Ordering::Relaxed);
    if pool != 0 {
        return Err(Error::invalid_argument(format!(
            "sub-interpreter {id} belongs to pool {pool}; destroy the pool (pyb_pool_destroy) \
             instead, which ends all its interpreters"
        )));
    }
    if interpreter_switch::is_inside_interpreter(ThreadSlot::current(), id) {
        return Err(Error::new(
            PYB_E_WOULD_DEADLOCK,
            format!(
                "this thread is inside sub-interpreter {id}: release its scope \
                 (pyb_gil_release) before destroying it"
            ),
        ));
    }
    allow_threads::with_gil_given_away(|| end(&record, deadline, false))
}

/// Closes the record, waits for the threads inside to leave, and has the
/// keeper end the interpreter, all before the deadline; on a timeout the
/// interpreter is open again and unchanged.
/// With `interrupting` (an interrupting engine shutdown), the keeper is asked
/// to interrupt the interpreter's Python threads before every try.
fn end(record: &InterpreterRecord, deadline: Option<Instant>, interrupting: bool) -> Result<()> {
    let _one_destroyer = match deadline {
        Some(deadline) => record.destroying.try_lock_until(deadline),
        None => Some(record.destroying.lock()),
    }
    .ok_or_else(|| {
        Error::new(
            PYB_E_TIMEOUT,
            format!(
                "sub-interpreter {} was not destroyed: another destroy of it (or the engine's \
                 shutdown) was still under way",
                record.id
            ),
        )
    })?;
    if interpreters::lookup(record.id).is_none() {
        // The other destroyer finished it.
        return Ok(());
    }
    if !record.close(deadline) {
        return Err(Error::new(
            PYB_E_TIMEOUT,
            format!(
                "sub-interpreter {} was not destroyed: {} inside it; it is unchanged",
                record.id,
                threads_inside(record.id)
            ),
        ));
    }
    let mut last_reason = String::new();
    loop {
        if interrupting {
            // Ident 0 matches no host thread: the Python threads alone. The
            // engine's shutdown is past its point of no return here.
            record.post_interrupt(
                vec![ThreadIdent::NONE],
                Arc::new(|deliver: &mut dyn FnMut()| {
                    deliver();
                    true
                }),
            );
        }
        match record.ask_keeper_to_end(deadline) {
            KeeperTalk::Ended => return Ok(()),
            KeeperTalk::Ending => {
                return Err(still_ending(&format!("sub-interpreter {}", record.id)));
            }
            answer => {
                // A refusal, or none in time (`Idle`: another destroyer withdrew).
                let why = match answer {
                    KeeperTalk::Refused(why) => why,
                    _ => String::new(),
                };
                if !why.is_empty() {
                    last_reason = why;
                }
                let why = if last_reason.is_empty() {
                    "its keeper thread could not take the interpreter's GIL in time"
                } else {
                    &last_reason
                };
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    record.reopen();
                    return Err(Error::new(
                        PYB_E_TIMEOUT,
                        format!(
                            "sub-interpreter {} was not destroyed: {why}; it is unchanged",
                            record.id
                        ),
                    ));
                }
                // A poll: only the keeper, retaking the interpreter's GIL, can
                // see its Python threads end, and nothing tells it when they do.
                let pause = Duration::from_millis(2);
                std::thread::sleep(deadline.map_or(pause, |deadline| {
                    pause.min(deadline.saturating_duration_since(Instant::now()))
                }));
            }
        }
    }
}

/// The deadline passed after `what` reached its point of no return: its
/// keeper runs `Py_EndInterpreter`, so CPython's atexit functions and
/// finalizers decide when it ends (a shared-GIL interpreter's end also waits
/// its turn for the GIL). A destroy cannot wait past its deadline, nor undo
/// the end: the end carries on, like an engine shutdown's.
pub(crate) fn still_ending(what: &str) -> Error {
    Error::new(
        PYB_E_SHUTDOWN_COMMITTED,
        format!(
            "{what} did not end before the deadline but carries on: it is past its point of \
             no return, and CPython is still running its atexit functions and finalizers. It \
             cannot be entered; destroy it again to wait for the end"
        ),
    )
}

/// Who is inside interpreter `id`, for a timeout's message.
pub(crate) fn threads_inside(id: InterpreterId) -> String {
    let inside: Vec<String> = all_slots()
        .iter()
        .filter(|slot| slot.current_interpreter() == id)
        .map(|slot| slot.describe())
        .collect();
    if inside.is_empty() {
        "a host thread is still".to_string()
    } else {
        format!("{} still", inside.join(", "))
    }
}

/// The engine's end: every sub-interpreter ends (no host thread is inside
/// pybridge by now), all by one `deadline` (`None`: no limit). Run by the
/// engine thread without the main GIL, which keepers of shared-GIL
/// interpreters need. `Err` names the first one still alive at the deadline,
/// refusing or still ending; the caller must then not finalize (CPython
/// aborts the process when `Py_FinalizeEx` finds a sub-interpreter alive).
pub(crate) fn end_all(
    deadline: Option<Instant>,
    interrupting: bool,
) -> std::result::Result<(), String> {
    for record in interpreters::all() {
        let Err(error) = end(&record, deadline, interrupting) else {
            continue;
        };
        let why = if error.status == PYB_E_SHUTDOWN_COMMITTED {
            format!(
                "sub-interpreter {} was still ending (CPython was running its atexit \
                 functions and finalizers)",
                record.id
            )
        } else {
            error.message.clone()
        };
        return Err(format!(
            "{why}; {} sub-interpreter(s) were still alive",
            interpreters::all().len()
        ));
    }
    Ok(())
}
