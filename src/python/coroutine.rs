//! Awaiting Python from the host: an asyncio event loop on a thread pybridge
//! owns, tasks submitted from any host thread, and a completion callback per
//! task, called exactly once.
//!
//! The loop runs on a daemon Python thread (`pybridge-asyncio`, code in
//! `coroutine.py`), started by the first submission of an engine life, in the
//! main interpreter: exactly one per life, however many threads submit first
//! at once (`LOOP`'s phase says who starts it). A daemon, because a shutdown
//! waits for non-daemon Python threads before its point of no return, and
//! this one never ends by itself: nothing a task does (`loop.stop()`,
//! `SystemExit`, `KeyboardInterrupt`) ends it. The engine stops it at
//! finalization (`on_engine_finalize`): every pending task is cancelled, the
//! loop runs until they have finished, the thread is joined, and a task that
//! is still not done after `STOP_TIMEOUT_SECONDS` (a coroutine that swallows
//! its cancellation) gets its callback from the engine thread. A shutdown
//! that times out before its point of no return therefore cancels nothing.
//!
//! Host threads hand their work over in Rust: `submit` and `cancel` queue it
//! under `LOOP`'s lock and wake the loop through a pipe of pybridge's own
//! (`sys::wake_pipe`: a socket pair where the selector watches only
//! sockets), which only this lock's holders write to, empty or close; the
//! loop takes the work with `take`, which empties the pipe first. So after the hand-over no host thread runs Python bytecode,
//! and an asynchronous exception (an interrupting shutdown's) cannot land
//! between a task's hand-over and its `PYB_OK`; and no host thread writes into
//! the loop's own self-pipe, which `loop.close()` closes one end at a time
//! (a write between the two was SIGPIPE, exit 141).
//!
//! `LOOP`'s lock is never held while Python code may run (an allocation may
//! run a `__del__` that submits): Python objects are made and released
//! outside it.
//!
//! One file over 500 lines: the loop's one-per-life start, the submission
//! queue and the exactly-once completion are one state machine (`LOOP`).

use std::collections::BTreeMap;
use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use parking_lot::Mutex;
use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::status::*;
use crate::abi::task::{pyb_task, pyb_task_callback};
use crate::abi::value::pyb_value;
use crate::python::embedded::{embedded_python, source_module};
use crate::python::exception::{exception_error, python_error};
use crate::python::gil;
use crate::python::object::{type_name, with_object};
use crate::python::owned::Owned;
use crate::python::value::from_python;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;
use crate::runtime::interpreters;
use crate::runtime::thread_slot::CurrentThread;
use crate::sys::wake_pipe::{self, PipeEnd};

const RUNNER: &CStr = embedded_python!("coroutine.py");

/// How long the engine's end waits for cancelled tasks to finish, and then
/// for the loop to stop under a task that did not.
const STOP_TIMEOUT_SECONDS: f64 = 5.0;

/// Task ids: the engine generation above `SERIAL_BITS` serial bits.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
const SERIAL_BITS: u32 = 40;

/// The kernel id of the thread running the loop now (0: none): a wait there
/// for a task would stop the loop that finishes it.
static LOOP_THREAD: AtomicI32 = AtomicI32::new(0);

/// Starts of the loop thread, in the process; a thread learns with `attach`
/// whether its start still counts.
static NEXT_ATTEMPT: AtomicU64 = AtomicU64::new(1);

/// A submitted task that has not had its callback yet.
#[derive(Clone, Copy)]
struct Pending {
    callback: unsafe extern "C" fn(pyb_task, pyb_status, *const pyb_value, *mut c_void),
    user_data: usize,
}

/// A strong reference kept in `LOOP` (released with the GIL, outside the lock).
struct Reference(*mut ffi::PyObject);
// SAFETY: only created, handed out and released with the main GIL held.
unsafe impl Send for Reference {}

/// Work for the loop: start a task (`Some(awaitable)`) or cancel one (`None`).
type Work = (pyb_task, Option<Reference>);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// No loop this engine life (or its start failed): a submission starts one.
    Idle,
    /// A host thread is starting the loop's thread (`attempt`); work queues up.
    Starting,
    /// The loop's thread took over (`attach`).
    Running,
    /// The engine's end asked the loop to cancel its tasks and stop.
    Stopping,
    /// ... and, as a task ignored its cancellation, to stop under it.
    Forcing,
    /// The engine ended: nothing more is accepted until the next life.
    Ended,
}

impl Phase {
    /// What `take` tells the loop (`coroutine.py`: RUN, STOP, FORCE).
    fn code(self) -> i64 {
        match self {
            Phase::Idle | Phase::Starting | Phase::Running => 0,
            Phase::Stopping => 1,
            Phase::Forcing | Phase::Ended => 2,
        }
    }
}

struct Loop {
    /// The engine life this state is for; another one finds it stale.
    generation: u32,
    phase: Phase,
    /// The current start's number (see `NEXT_ATTEMPT`).
    attempt: u64,
    /// The wake-up pipe of the current start, open from the start until its
    /// thread ends (or the start fails). -1: closed.
    reader: PipeEnd,
    writer: PipeEnd,
    /// The loop's `Runner`, from its `attach` until the engine's end.
    runner: Option<Reference>,
    /// Handed over, not yet taken by the loop.
    queue: Vec<Work>,
    /// Every submitted task whose callback has not been called.
    pending: BTreeMap<pyb_task, Pending>,
}

static LOOP: Mutex<Loop> = Mutex::new(Loop::fresh(0));

impl Loop {
    /// No loop yet in engine life `generation`.
    const fn fresh(generation: u32) -> Loop {
        Loop {
            generation,
            phase: Phase::Idle,
            attempt: 0,
            reader: wake_pipe::CLOSED,
            writer: wake_pipe::CLOSED,
            runner: None,
            queue: Vec::new(),
            pending: BTreeMap::new(),
        }
    }

    /// This state, reset when it is from an earlier engine life (whose end
    /// emptied it). What a stuck thread left behind is forgotten: the
    /// references (`Reference` has no `Drop`) died with their interpreter.
    fn current(&mut self) -> &mut Loop {
        let generation = gate::load().generation();
        if self.generation != generation {
            close(&mut self.reader);
            close(&mut self.writer);
            *self = Loop::fresh(generation);
        }
        self
    }

    /// Queues `work` and wakes the loop if the queue was empty (else a wake-up
    /// is on its way already: the loop empties the queue after reading it).
    fn push(&mut self, work: Work) {
        let was_empty = self.queue.is_empty();
        self.queue.push(work);
        if was_empty {
            self.wake();
        }
    }

    /// One byte into the wake-up pipe; its reader is open while the writer
    /// is (both close under this lock), so this is never a SIGPIPE. A full
    /// pipe (EAGAIN) has a wake-up in it already.
    fn wake(&self) {
        if self.writer != wake_pipe::CLOSED {
            wake_pipe::wake(self.writer);
        }
    }
}

/// Closes an end of the wake-up pipe this state owns.
fn close(end: &mut PipeEnd) {
    wake_pipe::close(end);
}

/// Records `error` as the calling thread's last error, for callbacks that
/// report one (the C layer's store, set by it before the first submission).
static RECORD_ERROR: std::sync::OnceLock<fn(&str, &Error)> = std::sync::OnceLock::new();

pub(crate) fn set_error_recorder(record: fn(&str, &Error)) {
    RECORD_ERROR.get_or_init(|| record);
}

fn task_id(serial: u64) -> pyb_task {
    (u64::from(gate::load().generation()) << SERIAL_BITS) | serial
}

/// Submits `awaitable` (a coroutine, Task or Future of the main interpreter)
/// to the event loop; `callback` gets its outcome. Python code runs only
/// before the hand-over (the first submission starts the loop): an error
/// means the task was not handed over, `Ok` that it was.
pub(crate) fn submit(
    py: Python<'_>,
    awaitable: pyb_object,
    callback: pyb_task_callback,
    user_data: *mut c_void,
) -> Result<pyb_task> {
    let callback = callback.ok_or_else(|| Error::null_argument("on_done"))?;
    let pending = Pending {
        callback,
        user_data: user_data as usize,
    };
    with_object(py, awaitable, |object| {
        refuse_subinterpreters()?;
        if !is_awaitable(py, object) {
            return Err(Error::new(
                PYB_E_WRONG_TYPE,
                format!(
                    "a {} is not awaitable: submit a coroutine (the result of calling an \
                     async def), an asyncio Task or a Future",
                    type_name(py, object)
                ),
            ));
        }
        loop {
            if let Some(id) = hand_over(py, object, pending)? {
                return Ok(id);
            }
            start(py)?;
        }
    })
}

/// `Ok` when the calling thread may block until a task's callback has run;
/// `PYB_E_WOULD_DEADLOCK` when that callback could never run meanwhile. The
/// loop finishes a task and calls its callback on its own thread with the
/// main interpreter's GIL held, so the wait would never end on the loop's
/// thread (a callback, or Python code the loop runs) or on a thread holding
/// the main GIL: a `pyb_gil_acquire` scope, a host function that runs with
/// the GIL, a sub-interpreter that shares the main GIL. A thread in an
/// own-GIL sub-interpreter holds another GIL and may wait.
pub(crate) fn check_wait(thread: CurrentThread) -> Result<()> {
    if LOOP_THREAD.load(Ordering::Relaxed) == thread.os_tid {
        return Err(Error::new(
            PYB_E_WOULD_DEADLOCK,
            "this is pybridge's event-loop thread (a task callback, or Python code the loop \
             runs), which finishes tasks: waiting here for a task would stop the loop for \
             good; wait on another thread, or chain the work into the callback",
        ));
    }
    let Some(interp) = gil::held_gil_interpreter(thread) else {
        return Ok(());
    };
    // SAFETY: a plain read of the runtime's main interpreter.
    let main = unsafe { ffi::PyInterpreterState_Main() };
    // Interpreters Python code made (not pybridge's) count as sharing the
    // main GIL: an error where a wait might have worked, not a hang.
    let own_gil = interp != main
        && interpreters::all()
            .iter()
            .any(|record| record.own_gil && record.interp.load(Ordering::Relaxed) == interp);
    if own_gil {
        return Ok(());
    }
    Err(Error::new(
        PYB_E_WOULD_DEADLOCK,
        format!(
            "{} holds the GIL that pybridge's event loop needs to finish the task, so \
             waiting for it here would never end: wait outside GIL scopes (close them, or \
             wait inside an allow-threads region: pyb_begin_allow_threads, C++ \
             pybridge::AllowThreads)",
            thread.describe()
        ),
    ))
}

fn refuse_subinterpreters() -> Result<()> {
    if crate::runtime::thread_slot::ThreadSlot::existing()
        .is_some_and(|thread| !thread.current_interpreter().is_main())
    {
        return Err(Error::new(
            PYB_E_UNSUPPORTED,
            "coroutines run on the main interpreter's event loop; submit them from outside \
             sub-interpreter scopes",
        ));
    }
    Ok(())
}

/// `inspect.isawaitable` without running Python code: a coroutine, an object
/// whose type has `__await__` (Task, Future, user classes), or a generator
/// marked by `types.coroutine`.
fn is_awaitable(py: Python<'_>, object: *mut ffi::PyObject) -> bool {
    // SAFETY: GIL held; `object` is live; the attributes read are C-level.
    unsafe {
        let kind = ffi::Py_TYPE(object);
        if ffi::PyCoro_CheckExact(object) != 0 {
            return true;
        }
        let slots = (*kind).tp_as_async;
        if !slots.is_null() && (*slots).am_await.is_some() {
            return true;
        }
        if ffi::PyGen_Check(object) == 0 {
            return false;
        }
        let flags = Owned::from_raw(py, ffi::PyObject_GetAttrString(object, c"gi_code".as_ptr()))
            .and_then(|code| {
                Owned::from_raw(
                    py,
                    ffi::PyObject_GetAttrString(code.as_ptr(), c"co_flags".as_ptr()),
                )
            })
            .map(|flags| ffi::PyLong_AsLong(flags.as_ptr()));
        ffi::PyErr_Clear();
        flags.is_some_and(|flags| flags & ffi::CO_ITERABLE_COROUTINE as std::ffi::c_long != 0)
    }
}

/// Queues `object` for the loop and records the task as pending; runs no
/// Python code. `None`: no loop yet (start one, then come back).
fn hand_over(
    _py: Python<'_>,
    object: *mut ffi::PyObject,
    pending: Pending,
) -> Result<Option<pyb_task>> {
    let mut state = LOOP.lock();
    let state = state.current();
    match state.phase {
        Phase::Idle => Ok(None),
        Phase::Starting | Phase::Running => {
            let id = task_id(NEXT_SERIAL.fetch_add(1, Ordering::Relaxed));
            // SAFETY: GIL held (`_py`); an increment runs no code.
            unsafe { ffi::Py_IncRef(object) };
            state.pending.insert(id, pending);
            state.push((id, Some(Reference(object))));
            Ok(Some(id))
        }
        Phase::Stopping | Phase::Forcing | Phase::Ended => Err(loop_ended()),
    }
}

fn loop_ended() -> Error {
    Error::new(
        PYB_E_SHUTTING_DOWN,
        "the engine is shutting down: its event loop takes no more tasks",
    )
}

/// Starts the loop's thread unless another thread did (or does). Runs Python
/// code (the helper module, `threading`); on an error no loop was started by
/// this call, and a thread it started before the error ends unused.
fn start(py: Python<'_>) -> Result<()> {
    let started = {
        let mut state = LOOP.lock();
        let state = state.current();
        if state.phase != Phase::Idle {
            return Ok(());
        }
        wake_pipe::open().map(|(reader, writer)| {
            state.reader = reader;
            state.writer = writer;
            state.attempt = NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed);
            state.phase = Phase::Starting;
            (state.attempt, state.reader)
        })
    };
    let (attempt, reader) = match started {
        Ok(started) => started,
        Err(error) => return Err(pipe_failed(py, &error)),
    };
    let started = start_runner(py, attempt, reader);
    if started.is_err() {
        let mut state = LOOP.lock();
        let state = state.current();
        if state.attempt == attempt && state.phase == Phase::Starting {
            // Its thread, if it runs, finds its attempt stale and ends.
            state.phase = Phase::Idle;
            close(&mut state.reader);
            close(&mut state.writer);
        }
    }
    started
}

/// The `OSError` (as `PYB_E_PYTHON`, which a failed start gives) for a pipe
/// that could not be made. Made outside `LOOP`'s lock: it may run Python code.
fn pipe_failed(py: Python<'_>, error: &std::io::Error) -> Error {
    let message = std::ffi::CString::new(format!("pybridge's event loop: pipe(): {error}"))
        .unwrap_or_default();
    // SAFETY: GIL held; a static exception type and a C string.
    unsafe { ffi::PyErr_SetString(ffi::PyExc_OSError, message.as_ptr()) };
    python_error(py)
}

fn start_runner(py: Python<'_>, attempt: u64, reader: PipeEnd) -> Result<()> {
    let module = source_module(py, c"_pybridge_asyncio", RUNNER, c"<pybridge-asyncio>")?;
    // SAFETY: GIL held; live objects; the tuple steals the functions.
    unsafe {
        let hooks = Owned::new(py, ffi::PyTuple_New(HOOKS.len() as ffi::Py_ssize_t))?;
        for (index, hook) in HOOKS.iter().enumerate() {
            let function = hook.function(py)?.into_raw();
            ffi::PyTuple_SetItem(hooks.as_ptr(), index as ffi::Py_ssize_t, function);
        }
        Owned::new(
            py,
            ffi::PyObject_CallMethod(
                module.as_ptr(),
                c"Runner".as_ptr(),
                c"OLK".as_ptr(),
                hooks.as_ptr(),
                reader,
                attempt,
            ),
        )?;
    }
    Ok(())
}

/// Asks the event loop to cancel task `id`. A task that already finished is
/// left alone (its callback was called or is being called), and so is one the
/// engine's end is cancelling. Runs no Python code.
pub(crate) fn cancel(id: pyb_task) -> Result<()> {
    let serial = id & ((1 << SERIAL_BITS) - 1);
    if id >> SERIAL_BITS != u64::from(gate::load().generation())
        || serial == 0
        || serial >= NEXT_SERIAL.load(Ordering::Relaxed)
    {
        return Err(Error::new(
            PYB_E_BAD_HANDLE,
            format!(
                "task {id:#x} was not submitted to the running engine (from an engine that \
                 shut down, or never issued)"
            ),
        ));
    }
    let mut state = LOOP.lock();
    let state = state.current();
    if state.pending.contains_key(&id) && matches!(state.phase, Phase::Starting | Phase::Running) {
        state.push((id, None));
    }
    Ok(())
}

/// A static definition of a function pybridge gives Python (`promise.rs` too).
pub(crate) struct MethodDef(pub(crate) ffi::PyMethodDef);
// SAFETY: read-only after construction; CPython only reads it.
unsafe impl Sync for MethodDef {}

impl MethodDef {
    /// A new builtin function object for this definition.
    pub(crate) fn function<'py>(&'static self, py: Python<'py>) -> Result<Owned<'py>> {
        // SAFETY: GIL held; a static definition outlives every function made from it.
        Owned::new(py, unsafe {
            ffi::PyCFunction_NewEx(
                &raw const self.0 as *mut ffi::PyMethodDef,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })
    }
}

/// The functions the loop calls, in `Runner`'s order: complete, attach,
/// take, detach.
static HOOKS: [MethodDef; 4] = [
    MethodDef(ffi::PyMethodDef {
        ml_name: c"complete".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: complete,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"Delivers a finished task to its host callback (pybridge).".as_ptr(),
    }),
    MethodDef(ffi::PyMethodDef {
        ml_name: c"attach".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: attach,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"attach(runner, attempt): True if this start of the loop counts (pybridge)."
            .as_ptr(),
    }),
    MethodDef(ffi::PyMethodDef {
        ml_name: c"take".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: take },
        ml_flags: ffi::METH_O,
        ml_doc: c"take(attempt): ([(task_id, awaitable or None to cancel)], phase) (pybridge)."
            .as_ptr(),
    }),
    MethodDef(ffi::PyMethodDef {
        ml_name: c"detach".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: detach,
        },
        ml_flags: ffi::METH_O,
        ml_doc: c"detach(attempt): the loop's thread ends; closes its wake-up pipe (pybridge)."
            .as_ptr(),
    }),
];

/// `attach(runner, attempt)` on the loop's thread as it begins: true when
/// `attempt` is the current start (the loop now runs), false when that start
/// was given up (the thread ends at once).
unsafe extern "C" fn attach(
    _self: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY (this function): CPython calls it with the GIL and `nargs` arguments.
    unsafe {
        if nargs != 2 {
            ffi::PyErr_SetString(ffi::PyExc_TypeError, c"attach takes 2 arguments".as_ptr());
            return std::ptr::null_mut();
        }
        let attempt = ffi::PyLong_AsUnsignedLongLong(*args.add(1));
        if !ffi::PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        let attached = {
            let mut state = LOOP.lock();
            let state = state.current();
            let attached = state.attempt == attempt && state.phase == Phase::Starting;
            if attached {
                LOOP_THREAD.store(crate::sys::thread::os_tid(), Ordering::Relaxed);
                state.phase = Phase::Running;
                ffi::Py_IncRef(*args);
                state.runner = Some(Reference(*args));
            }
            attached
        };
        ffi::PyBool_FromLong(attached.into())
    }
}

/// `take(attempt)`: the queued work and the phase's code for the loop.
unsafe extern "C" fn take(
    _self: *mut ffi::PyObject,
    attempt: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY (this function): CPython calls it with the GIL.
    unsafe {
        let py = Python::assume_attached();
        let attempt = ffi::PyLong_AsUnsignedLongLong(attempt);
        if !ffi::PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        let (work, phase) = {
            let mut state = LOOP.lock();
            let state = state.current();
            if state.attempt != attempt {
                (Vec::new(), 3) // STALE: a thread of a start given up
            } else {
                // Emptied under the lock that `push` wakes under: a push after
                // this finds the queue empty and wakes the loop again.
                if state.reader != wake_pipe::CLOSED {
                    wake_pipe::drain(state.reader);
                }
                (std::mem::take(&mut state.queue), state.phase.code())
            }
        };
        match work_list(py, work) {
            Ok(list) => ffi::Py_BuildValue(c"(NL)".as_ptr(), list.into_raw(), phase),
            Err(_) => std::ptr::null_mut(),
        }
    }
}

/// The work as a list of `(task_id, awaitable or None)`; takes over the
/// references. A task whose entry could not be made is called back with the
/// error (its work is dropped).
fn work_list(py: Python<'_>, work: Vec<Work>) -> Result<Owned<'_>> {
    // SAFETY: GIL held; the references in `work` are owned and given to the list.
    unsafe {
        let list = Owned::new(py, ffi::PyList_New(0))?;
        for (id, awaitable) in work {
            let awaitable = awaitable.and_then(|reference| Owned::from_raw(py, reference.0));
            let entry = ffi::Py_BuildValue(
                c"(KO)".as_ptr(),
                id,
                awaitable.as_ref().map_or(ffi::Py_None(), Owned::as_ptr),
            );
            let appended = Owned::new(py, entry).and_then(|entry| {
                match ffi::PyList_Append(list.as_ptr(), entry.as_ptr()) {
                    0 => Ok(()),
                    _ => Err(python_error(py)),
                }
            });
            if let Err(error) = appended {
                if awaitable.is_some() {
                    fail(id, error);
                }
            }
        }
        Ok(list)
    }
}

/// Calls task `id` back with `error`, unless it was called back already.
fn fail(id: pyb_task, error: Error) {
    if let Some(pending) = forget(id) {
        call_back(id, pending, Err(error));
    }
}

/// `detach(attempt)`, the loop's thread's last act: closes the wake-up pipe.
unsafe extern "C" fn detach(
    _self: *mut ffi::PyObject,
    attempt: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY (this function): CPython calls it with the GIL.
    unsafe {
        let attempt = ffi::PyLong_AsUnsignedLongLong(attempt);
        if !ffi::PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        let unasked = {
            let mut state = LOOP.lock();
            let state = state.current();
            let mut unasked = None;
            if state.attempt == attempt {
                LOOP_THREAD.store(0, Ordering::Relaxed);
                close(&mut state.reader);
                close(&mut state.writer);
                if matches!(state.phase, Phase::Starting | Phase::Running) {
                    // Ended without being asked (exceptions raised into the
                    // thread): the next submission starts another loop; what
                    // this one left pending is called back at the engine's end.
                    state.phase = Phase::Idle;
                    unasked = state.runner.take();
                }
            }
            unasked
        };
        if let Some(runner) = unasked {
            log::warn!(
                "pybridge's asyncio loop ended unasked; the next submission starts a new one"
            );
            ffi::Py_DecRef(runner.0);
        }
        ffi::Py_IncRef(ffi::Py_None());
        ffi::Py_None()
    }
}

fn forget(id: pyb_task) -> Option<Pending> {
    LOOP.lock().current().pending.remove(&id)
}

/// `_complete(task_id, task_or_None, closing)`, called by the runner on the
/// loop thread with the GIL.
unsafe extern "C" fn complete(
    _self: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY (this function): CPython calls it with the GIL and `nargs` arguments.
    unsafe {
        let py = Python::assume_attached();
        if nargs != 3 {
            ffi::PyErr_SetString(
                ffi::PyExc_TypeError,
                c"_complete takes 3 arguments".as_ptr(),
            );
            return std::ptr::null_mut();
        }
        let id = ffi::PyLong_AsUnsignedLongLong(*args);
        if ffi::PyErr_Occurred().is_null() {
            let task = *args.add(1);
            let closing = ffi::PyObject_IsTrue(*args.add(2)) == 1;
            deliver(py, id, task, closing);
        }
        ffi::PyErr_Clear();
        ffi::Py_IncRef(ffi::Py_None());
        ffi::Py_None()
    }
}

/// Reads the outcome of `task` (None: never started) and calls its callback.
fn deliver(py: Python<'_>, id: pyb_task, task: *mut ffi::PyObject, closing: bool) {
    let Some(pending) = forget(id) else {
        return; // already delivered by the engine's end
    };
    let outcome = outcome(py, task, closing);
    call_back(id, pending, outcome);
}

fn outcome(py: Python<'_>, task: *mut ffi::PyObject, closing: bool) -> Result<pyb_value> {
    // SAFETY: GIL held; `task` is None or a finished asyncio future.
    unsafe {
        if task == ffi::Py_None() {
            return Err(shut_down());
        }
        let cancelled = Owned::new(
            py,
            ffi::PyObject_CallMethod(task, c"cancelled".as_ptr(), std::ptr::null()),
        )?;
        if ffi::PyObject_IsTrue(cancelled.as_ptr()) == 1 {
            return Err(if closing {
                shut_down()
            } else {
                Error::new(PYB_E_CANCELLED, "the task was cancelled before it finished")
            });
        }
        let exception = Owned::new(
            py,
            ffi::PyObject_CallMethod(task, c"exception".as_ptr(), std::ptr::null()),
        )?;
        if exception.as_ptr() != ffi::Py_None() {
            return Err(exception_error(py, exception.as_ptr()));
        }
        let result = ffi::PyObject_CallMethod(task, c"result".as_ptr(), std::ptr::null());
        if result.is_null() {
            return Err(python_error(py));
        }
        from_python(py, result)
    }
}

fn shut_down() -> Error {
    Error::new(
        PYB_E_SHUTTING_DOWN,
        "the engine shut down before the task finished; it was cancelled",
    )
}

fn call_back(id: pyb_task, pending: Pending, outcome: Result<pyb_value>) {
    let (status, value) = match outcome {
        Ok(value) => (PYB_OK, value),
        Err(error) => {
            if let Some(record) = RECORD_ERROR.get() {
                record("pyb_task", &error);
            }
            (error.status, pyb_value::none())
        }
    };
    // SAFETY: the host's callback with the arguments its type documents.
    unsafe { (pending.callback)(id, status, &value, pending.user_data as *mut c_void) };
}

/// The engine's end: refuses new work, calls back what the loop had not
/// taken yet, has the loop cancel its tasks and finish them, joins its
/// thread, and calls back whatever did not finish. Engine thread, GIL held,
/// no host thread inside (callbacks and Python threads may still submit: they
/// get `PYB_E_SHUTTING_DOWN`).
pub(crate) fn on_engine_finalize(py: Python<'_>) {
    let (runner, untaken) = {
        let mut state = LOOP.lock();
        let state = state.current();
        state.phase = Phase::Stopping;
        state.wake();
        (state.runner.take(), std::mem::take(&mut state.queue))
    };
    for (id, awaitable) in untaken {
        if let Some(awaitable) = awaitable {
            // SAFETY: GIL held; the queue's reference is released here.
            unsafe {
                if ffi::PyCoro_CheckExact(awaitable.0) != 0 {
                    // Never started: closed, so Python does not warn it was never awaited.
                    let closed =
                        ffi::PyObject_CallMethod(awaitable.0, c"close".as_ptr(), std::ptr::null());
                    drop(Owned::from_raw(py, closed));
                    ffi::PyErr_Clear();
                }
                ffi::Py_DecRef(awaitable.0);
            }
            fail(id, shut_down());
        }
    }
    let mut thread_gone = runner.is_none(); // no thread attached: none ever will
    if let Some(runner) = runner {
        // SAFETY: GIL held; `runner` is the reference `attach` kept.
        let runner = unsafe { Owned::from_raw(py, runner.0) }.expect("a kept runner");
        thread_gone = join(py, &runner);
        if !thread_gone {
            {
                let mut state = LOOP.lock();
                let state = state.current();
                state.phase = Phase::Forcing;
                state.wake();
            }
            thread_gone = join(py, &runner);
            let stopped = thread_gone;
            log::warn!(
                "a task of pybridge's asyncio loop ignored its cancellation for \
                 {STOP_TIMEOUT_SECONDS} s; the loop was stopped under it{} and the task is \
                 reported as shut down",
                if stopped {
                    ""
                } else {
                    " (its thread is still busy)"
                }
            );
        }
    }
    let left = {
        let mut state = LOOP.lock();
        let state = state.current();
        state.phase = Phase::Ended;
        // Nothing writes any more; a thread that did not end keeps its reader.
        close(&mut state.writer);
        if thread_gone {
            close(&mut state.reader);
        }
        std::mem::take(&mut state.pending)
    };
    for (id, pending) in left {
        call_back(id, pending, Err(shut_down()));
    }
}

/// `runner.join(STOP_TIMEOUT_SECONDS)`: true when the loop's thread ended.
fn join(py: Python<'_>, runner: &Owned<'_>) -> bool {
    // SAFETY: GIL held; live objects.
    unsafe {
        let ended = ffi::PyObject_CallMethod(
            runner.as_ptr(),
            c"join".as_ptr(),
            c"d".as_ptr(),
            STOP_TIMEOUT_SECONDS,
        );
        let ended = Owned::from_raw(py, ended)
            .is_some_and(|ended| ffi::PyObject_IsTrue(ended.as_ptr()) == 1);
        ffi::PyErr_Clear();
        ended
    }
}
