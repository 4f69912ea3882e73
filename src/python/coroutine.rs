//! Awaiting Python from the host: an asyncio event loop on a thread pybridge
//! owns, tasks submitted from any host thread, and a completion callback per
//! task, called exactly once.
//!
//! The loop runs on a daemon Python thread (`pybridge-asyncio`), started on
//! the first submission, in the main interpreter. A daemon, because a shutdown
//! waits for non-daemon Python threads before its point of no return, and this
//! one never ends by itself; instead the engine stops it at finalization
//! (`on_engine_finalize`): every pending task is cancelled, the loop runs
//! until they have finished, the thread is joined, and a task that is still
//! not done after `STOP_TIMEOUT` (a coroutine that swallows its cancellation)
//! gets its callback from the engine thread. A shutdown that times out before
//! its point of no return therefore cancels nothing.

use std::collections::HashMap;
use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::status::*;
use crate::abi::task::{pyb_task, pyb_task_callback};
use crate::abi::value::pyb_value;
use crate::python::exception::{exception_error, python_error};
use crate::python::interpreter::{imported_module, source_module};
use crate::python::object::{type_name, with_object};
use crate::python::owned::Owned;
use crate::python::value::from_python;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;

const RUNNER: &CStr = c"
import asyncio, inspect, threading

class Runner:
    def __init__(self, complete):
        self._complete = complete
        self._tasks = {}
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name='pybridge-asyncio', daemon=True)
        self._thread.start()

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def submit(self, task_id, awaitable):
        if not inspect.isawaitable(awaitable):
            return False
        self._loop.call_soon_threadsafe(self._start, task_id, awaitable)
        return True

    def _start(self, task_id, awaitable):
        if self._closing:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            self._complete(task_id, None, True)
            return
        try:
            task = asyncio.ensure_future(awaitable)
        except BaseException as error:
            failed = self._loop.create_future()
            failed.set_exception(error)
            self._complete(task_id, failed, False)
            return
        self._tasks[task_id] = task
        task.add_done_callback(lambda done: self._done(task_id, done))

    def _done(self, task_id, task):
        self._tasks.pop(task_id, None)
        self._complete(task_id, task, self._closing)

    def cancel(self, task_id):
        self._loop.call_soon_threadsafe(self._cancel, task_id)

    def _cancel(self, task_id):
        task = self._tasks.get(task_id)
        if task is not None:
            task.cancel()

    def shutdown(self, timeout):
        def stop():
            self._closing = True
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            if tasks:
                waiter = asyncio.gather(*tasks, return_exceptions=True)
                waiter.add_done_callback(lambda _: self._loop.stop())
            else:
                self._loop.stop()
        try:
            self._loop.call_soon_threadsafe(stop)
        except RuntimeError:
            pass  # the loop is closed already
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        if not finished:
            # A task swallows its cancellation: stop the loop under it.
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass
            self._thread.join(timeout)
        return finished

runner = None
";

/// How long the engine's end waits for cancelled tasks to finish, and then
/// for the loop to stop under a task that did not.
const STOP_TIMEOUT_SECONDS: f64 = 5.0;

/// A submitted task that has not had its callback yet.
#[derive(Clone, Copy)]
struct Pending {
    callback: unsafe extern "C" fn(pyb_task, pyb_status, *const pyb_value, *mut c_void),
    user_data: usize,
}

static PENDING: Mutex<Option<HashMap<pyb_task, Pending>>> = Mutex::new(None);
/// Serials of task ids (the low 40 bits); never reused in the process.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
const SERIAL_BITS: u32 = 40;

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
/// to the event loop; `callback` gets its outcome.
pub(crate) fn submit(
    py: Python<'_>,
    awaitable: pyb_object,
    callback: pyb_task_callback,
    user_data: *mut c_void,
) -> Result<pyb_task> {
    let callback = callback.ok_or_else(|| Error::null_argument("on_done"))?;
    with_object(py, awaitable, |object| {
        let runner = runner(py)?;
        let id = task_id(NEXT_SERIAL.fetch_add(1, Ordering::Relaxed));
        PENDING.lock().get_or_insert_with(HashMap::new).insert(
            id,
            Pending {
                callback,
                user_data: user_data as usize,
            },
        );
        // SAFETY: GIL held; live objects.
        let accepted = unsafe {
            let id_object = Owned::new(py, ffi::PyLong_FromUnsignedLongLong(id))?;
            Owned::new(
                py,
                ffi::PyObject_CallMethod(
                    runner.as_ptr(),
                    c"submit".as_ptr(),
                    c"OO".as_ptr(),
                    id_object.as_ptr(),
                    object,
                ),
            )
            .map(|result| ffi::PyObject_IsTrue(result.as_ptr()) == 1)
        };
        match accepted {
            Ok(true) => Ok(id),
            Ok(false) => {
                forget(id);
                Err(Error::new(
                    PYB_E_WRONG_TYPE,
                    format!(
                        "a {} is not awaitable: submit a coroutine (the result of calling \
                         an async def), an asyncio Task or a Future",
                        type_name(py, object)
                    ),
                ))
            }
            Err(error) => {
                forget(id);
                Err(error)
            }
        }
    })
}

fn forget(id: pyb_task) -> Option<Pending> {
    PENDING
        .lock()
        .as_mut()
        .and_then(|pending| pending.remove(&id))
}

/// Asks the event loop to cancel task `id`. A task that already finished is
/// left alone (its callback was called or is being called).
pub(crate) fn cancel(py: Python<'_>, id: pyb_task) -> Result<()> {
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
    if !PENDING
        .lock()
        .as_ref()
        .is_some_and(|pending| pending.contains_key(&id))
    {
        return Ok(());
    }
    let runner = runner(py)?;
    // SAFETY: GIL held; live objects.
    unsafe {
        let id_object = Owned::new(py, ffi::PyLong_FromUnsignedLongLong(id))?;
        Owned::new(
            py,
            ffi::PyObject_CallMethod(
                runner.as_ptr(),
                c"cancel".as_ptr(),
                c"O".as_ptr(),
                id_object.as_ptr(),
            ),
        )?;
    }
    Ok(())
}

/// The helper module, compiled once per engine (kept in `sys.modules`).
fn module(py: Python<'_>) -> Result<Owned<'_>> {
    source_module(py, c"_pybridge_asyncio", RUNNER, c"<pybridge-asyncio>")
}

/// The running `Runner`, started on first use. Main interpreter only.
fn runner(py: Python<'_>) -> Result<Owned<'_>> {
    if crate::runtime::thread_slot::ThreadSlot::existing()
        .is_some_and(|thread| thread.current_interpreter() != 0)
    {
        return Err(Error::new(
            PYB_E_UNSUPPORTED,
            "coroutines run on the main interpreter's event loop; submit them from outside \
             sub-interpreter scopes",
        ));
    }
    let module = module(py)?;
    // SAFETY: GIL held; live objects.
    unsafe {
        let current = Owned::new(
            py,
            ffi::PyObject_GetAttrString(module.as_ptr(), c"runner".as_ptr()),
        )?;
        if current.as_ptr() != ffi::Py_None() {
            return Ok(current);
        }
        let complete = Owned::new(
            py,
            ffi::PyCFunction_NewEx(
                &raw const COMPLETE.0 as *mut ffi::PyMethodDef,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ),
        )?;
        let made = Owned::new(
            py,
            ffi::PyObject_CallMethod(
                module.as_ptr(),
                c"Runner".as_ptr(),
                c"O".as_ptr(),
                complete.as_ptr(),
            ),
        )?;
        if ffi::PyObject_SetAttrString(module.as_ptr(), c"runner".as_ptr(), made.as_ptr()) != 0 {
            return Err(python_error(py));
        }
        Ok(made)
    }
}

struct MethodDef(ffi::PyMethodDef);
// SAFETY: read-only after construction; CPython only reads it.
unsafe impl Sync for MethodDef {}

static COMPLETE: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"_complete".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFast: complete,
    },
    ml_flags: ffi::METH_FASTCALL,
    ml_doc: c"Delivers a finished task to its host callback (pybridge).".as_ptr(),
});

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

/// The engine's end: cancels every pending task, lets the loop finish them,
/// stops its thread, and calls back whatever did not finish. Engine thread,
/// GIL held, no host thread inside.
pub(crate) fn on_engine_finalize(py: Python<'_>) {
    // SAFETY: GIL held; live objects.
    unsafe {
        // Looked up, not imported (see `imported_module`): an import here
        // waited for ever for an import lock an interrupted thread left held.
        match imported_module(py, c"_pybridge_asyncio") {
            None => {} // never used
            Some(module) => {
                let runner = ffi::PyObject_GetAttrString(module.as_ptr(), c"runner".as_ptr());
                if let Some(runner) = Owned::from_raw(py, runner) {
                    if runner.as_ptr() != ffi::Py_None() {
                        let stopped = ffi::PyObject_CallMethod(
                            runner.as_ptr(),
                            c"shutdown".as_ptr(),
                            c"d".as_ptr(),
                            STOP_TIMEOUT_SECONDS,
                        );
                        match Owned::from_raw(py, stopped) {
                            Some(stopped) if ffi::PyObject_IsTrue(stopped.as_ptr()) == 1 => {}
                            _ => log::warn!(
                                "a task of pybridge's asyncio loop ignored its cancellation for \
                                 {STOP_TIMEOUT_SECONDS} s; the loop was stopped under it and the \
                                 task is reported as shut down"
                            ),
                        }
                    }
                }
                ffi::PyErr_Clear();
                ffi::PyObject_SetAttrString(module.as_ptr(), c"runner".as_ptr(), ffi::Py_None());
                ffi::PyErr_Clear();
            }
        }
    }
    let left: Vec<(pyb_task, Pending)> = PENDING
        .lock()
        .as_mut()
        .map(|pending| pending.drain().collect())
        .unwrap_or_default();
    for (id, pending) in left {
        call_back(id, pending, Err(shut_down()));
    }
}
