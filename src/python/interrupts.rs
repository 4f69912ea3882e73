//! Interrupts for a shutdown with `PYB_SHUTDOWN_INTERRUPT`, in whichever
//! interpreter's GIL the caller holds (the main one on the engine thread, a
//! sub-interpreter's on its keeper): which threads run Python there, which of
//! them an exception cannot hurt right now, and the raise.
//!
//! Two exceptions: `SystemExit` in Python threads, which `threading` ends
//! quietly, and `ShutdownInterrupt` (a `BaseException`) in host threads, because
//! `SystemExit` reaching `PyRun_SimpleString` or `PyErr_Print` on a host
//! thread calls `Py_Exit` and finalizes from the wrong thread. Each is raised
//! once per thread, and only where it cannot leave a lock held.

use std::ffi::{CStr, c_long};

use pyo3::{Python, ffi};

use crate::python::embedded::{embedded_python, imported_module, run_apart, source_module};
use crate::python::owned::Owned;
use crate::python::thread_state_ident;
use crate::runtime::error::Result;
use crate::runtime::ids::ThreadIdent;

/// The Python side, compiled once per interpreter that needs it.
const SOURCE: &CStr = embedded_python!("interrupts.py");

/// `_pybridge_interrupts` of the interpreter whose GIL is held, made the
/// first time. GIL held.
pub(crate) fn module(py: Python<'_>) -> Result<Owned<'_>> {
    if let Some(made) = imported_module(py, MODULE) {
        return Ok(made);
    }
    let made = source_module(py, MODULE, SOURCE, c"<pybridge-interrupts>")?;
    // The type's name as hosts have always read it in pyb_last_error_python_type:
    // `_pybridge_engine.ShutdownInterrupt` in the main interpreter, where
    // `_pybridge_engine` holds it too, and a bare `ShutdownInterrupt` (a
    // `builtins` name) in sub-interpreters.
    // SAFETY: GIL held; plain attribute reads and writes, no bytecode runs.
    unsafe {
        let main = ffi::PyInterpreterState_Get() == ffi::PyInterpreterState_Main();
        let name = if main {
            c"_pybridge_engine"
        } else {
            c"builtins"
        };
        let exception = Owned::new(
            py,
            ffi::PyObject_GetAttrString(made.as_ptr(), c"ShutdownInterrupt".as_ptr()),
        )?;
        let name = Owned::new(py, ffi::PyUnicode_FromString(name.as_ptr()))?;
        if ffi::PyObject_SetAttrString(exception.as_ptr(), c"__module__".as_ptr(), name.as_ptr())
            != 0
        {
            return Err(crate::python::exception::python_error(py));
        }
    }
    Ok(made)
}

/// The name `SOURCE` is kept under in `sys.modules`.
const MODULE: &CStr = c"_pybridge_interrupts";

/// `module.name()`. GIL held.
fn call<'py>(py: Python<'py>, module: &Owned<'py>, name: &CStr) -> Result<Owned<'py>> {
    // SAFETY: GIL held; `module` is live; no arguments.
    Owned::new(py, unsafe {
        ffi::PyObject_CallMethod(module.as_ptr(), name.as_ptr(), std::ptr::null())
    })
}

/// A `threading` thread other than the main thread and host (dummy) threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PythonThread {
    pub ident: ThreadIdent,
    pub native_id: Option<i64>,
    pub name: String,
    pub daemon: bool,
}

impl PythonThread {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} Python thread '{}' (native id {})",
            if self.daemon { "daemon" } else { "non-daemon" },
            self.name,
            self.native_id
                .map_or("unknown".to_string(), |id| id.to_string())
        )
    }
}

/// The interpreter's Python-created threads that are still alive. GIL held.
pub(crate) fn python_threads(py: Python<'_>) -> Result<Vec<PythonThread>> {
    let rows = call(py, &module(py)?, c"python_threads")?;
    threads_of(py, &rows)
}

/// The rows `python_threads()` (interrupts.py) returned. GIL held.
fn threads_of(py: Python<'_>, rows: &Owned<'_>) -> Result<Vec<PythonThread>> {
    // SAFETY: GIL held; the helper returns a list of (int, int|None, str, bool) tuples.
    unsafe {
        let count = ffi::PyList_Size(rows.as_ptr());
        let mut threads = Vec::with_capacity(count.max(0) as usize);
        for index in 0..count {
            let row = ffi::PyList_GetItem(rows.as_ptr(), index);
            let field = |at: ffi::Py_ssize_t| ffi::PyTuple_GetItem(row, at);
            let native_id = field(1);
            let name = ffi::PyUnicode_AsUTF8(field(2));
            threads.push(PythonThread {
                ident: ThreadIdent(ffi::PyLong_AsUnsignedLongLong(field(0))),
                native_id: (native_id != ffi::Py_None()).then(|| ffi::PyLong_AsLongLong(native_id)),
                name: if name.is_null() {
                    "?".to_string()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                },
                daemon: ffi::PyObject_IsTrue(field(3)) == 1,
            });
        }
        if !ffi::PyErr_Occurred().is_null() {
            return Err(crate::python::exception::python_error(py));
        }
        Ok(threads)
    }
}

/// Commits the shutdown that asked for interrupts and runs the delivery
/// under its lock; false when it was called off, and nothing was delivered.
pub(crate) type Commit<'a> = &'a dyn Fn(&mut dyn FnMut()) -> bool;

/// Raises `SystemExit` in `python_threads` and `ShutdownInterrupt` in
/// `host_threads` (idents; 0 and those in `interrupted` skipped), only in
/// those `interruptible` finds safe now, after `commit` agreed; each raised
/// is added to `interrupted`, and fires when its thread next runs bytecode
/// here. The others are for a later call. Returns how many were raised of
/// each (Python, host). Runs no bytecode between the look and the raise.
/// GIL held.
pub(crate) fn raise_where_safe(
    py: Python<'_>,
    python_threads: &[ThreadIdent],
    host_threads: &[ThreadIdent],
    interrupted: &mut Vec<ThreadIdent>,
    commit: Commit<'_>,
) -> Result<(usize, usize)> {
    let waiting: Vec<ThreadIdent> = python_threads
        .iter()
        .chain(host_threads)
        .copied()
        .filter(|ident| *ident != ThreadIdent::NONE && !interrupted.contains(ident))
        .collect();
    if waiting.is_empty() {
        return Ok((0, 0));
    }
    // Made (which runs bytecode) before the look, not between it and the raise.
    let module = module(py)?;
    // SAFETY: GIL held; a new reference, owned.
    let host_exception = Owned::new(py, unsafe {
        ffi::PyObject_GetAttrString(module.as_ptr(), c"ShutdownInterrupt".as_ptr())
    })?;
    let safe = interruptible(py, &waiting)?;
    if safe.is_empty() {
        return Ok((0, 0));
    }
    let mut raised = (0, 0);
    let delivered = commit(&mut || {
        for &ident in &safe {
            let python = python_threads.contains(&ident);
            let exception = if python {
                // SAFETY: a static type object.
                unsafe { ffi::PyExc_SystemExit }
            } else {
                host_exception.as_ptr()
            };
            // SAFETY: GIL held; `exception` is a live type object.
            let count = unsafe { ffi::PyThreadState_SetAsyncExc(ident.0 as c_long, exception) };
            if count > 0 {
                if python {
                    raised.0 += 1;
                } else {
                    raised.1 += 1;
                }
            }
        }
    });
    if delivered {
        interrupted.extend(&safe);
    }
    Ok(raised)
}

/// The names of the Python threads running in the interpreter whose GIL is
/// held, for a shutdown's message (empty: none), without leaving anything
/// behind in it: `interrupts.py` runs in a namespace of its own, dropped
/// after. GIL held.
pub(crate) fn running_python_thread_names(py: Python<'_>) -> Result<String> {
    let scope = run_apart(py, SOURCE)?;
    // SAFETY: GIL held; `python_threads` is a function of the namespace we own.
    unsafe {
        let function = ffi::PyDict_GetItemString(scope.as_ptr(), c"python_threads".as_ptr());
        let rows = Owned::new(py, ffi::PyObject_CallNoArgs(function))?;
        let threads = threads_of(py, &rows)?;
        Ok(threads
            .iter()
            .map(|thread| format!("'{}'", thread.name))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

/// Standard-library modules that take locks which finalization needs again
/// (the import system's module locks, `threading`'s start and shutdown
/// handshakes, `logging`'s handler locks, queues and futures) in the
/// `acquire(); try:` pattern. An exception raised between the two leaves the
/// lock held for good: on 3.11 every later import hung, and `Thread.start()`
/// waited for ever (see docs/CPYTHON-NOTES.md, "An asynchronous exception can
/// leave Python's own locks held").
const LOCK_TAKING_MODULES: [&str; 8] = [
    "importlib",
    "_frozen_importlib",
    "zipimport",
    "threading",
    "logging",
    "queue",
    "concurrent.futures",
    "multiprocessing",
];

fn is_lock_taking_module(name: &str) -> bool {
    LOCK_TAKING_MODULES
        .iter()
        .any(|module| has_module_prefix(name, module))
}

/// `name` is `module`, one of its submodules, or a private twin (`module_x`).
fn has_module_prefix(name: &str, module: &str) -> bool {
    name.strip_prefix(module)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('_'))
}

/// The threads (by ident) an exception may be raised in now: those whose
/// innermost Python frame is not in a lock-taking module and that are not in
/// the middle of an import (see `must_wait`). The exception
/// fires in that frame; the frames below it are paused at a call, inside
/// the `try` or `with` that guards any lock they took, so they release it
/// as the exception passes. A thread with no Python frame is safe too: its
/// next bytecode is the first of a function, before any lock is taken.
/// Runs no bytecode, and holds the
/// cyclic GC off, so no other thread can run (and move) between this look
/// and the raise, as long as the caller keeps the GIL. (Below the innermost
/// frame only importlib is looked for: every Python thread has `threading`
/// frames at the bottom of its stack.) Works in whichever
/// interpreter's GIL the caller holds (the main one, or a sub-interpreter's
/// on its keeper). GIL held.
fn interruptible(py: Python<'_>, idents: &[ThreadIdent]) -> Result<Vec<ThreadIdent>> {
    // SAFETY: GIL held throughout; every reference taken is released.
    unsafe {
        let gc_was_enabled = ffi::PyGC_Disable();
        let result = interruptible_now(py, idents);
        if gc_was_enabled != 0 {
            ffi::PyGC_Enable();
        }
        result
    }
}

/// See `interruptible`. GIL held, GC off.
///
/// Walks the current interpreter's own thread states instead of calling
/// `sys._current_frames()`: on CPython 3.12 that function also visits the
/// threads of every other interpreter, making frame objects for them with
/// this interpreter's allocator while their own GIL runs them, and the
/// process aborts in `free()` when such a thread returns (reproduced with
/// CPython alone, docs/CPYTHON-NOTES.md "An asynchronous exception can leave
/// Python's own locks held").
/// `PyThreadState_GetFrame` on a state of this interpreter allocates here,
/// where the frame lives. The list is stable while the GIL is held: CPython
/// and pybridge delete a thread state only with its interpreter's GIL.
unsafe fn interruptible_now(py: Python<'_>, idents: &[ThreadIdent]) -> Result<Vec<ThreadIdent>> {
    // SAFETY (whole body): GIL held; thread states are read while the GIL
    // keeps them alive; frames are owned by `Owned`.
    unsafe {
        if !thread_state_ident::layout_holds(py) {
            // Not the thread state layout this build knows: no state can be
            // matched to its thread, so none is interrupted.
            log::error!(
                "pybridge cannot read this CPython's thread idents; no thread is interrupted"
            );
            return Ok(Vec::new());
        }
        let interpreter = ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get());
        // An ident can have more than one state: on 3.11 a new Python thread's
        // state carries its starter's ident until it runs. A thread is safe only
        // when every state with its ident is.
        let mut unsafe_idents = Vec::new();
        let mut state = ffi::PyInterpreterState_ThreadHead(interpreter);
        while !state.is_null() {
            let ident = thread_state_ident::ident_of(py, state);
            if idents.contains(&ident) && !unsafe_idents.contains(&ident) {
                let frame = ffi::PyThreadState_GetFrame(state).cast::<ffi::PyObject>();
                if !frame.is_null() && must_wait(py, Owned::new(py, frame)?)? {
                    unsafe_idents.push(ident);
                }
            }
            state = ffi::PyThreadState_Next(state);
        }
        // A thread without a state here runs no Python in this interpreter.
        let safe = idents
            .iter()
            .copied()
            .filter(|ident| !unsafe_idents.contains(ident))
            .collect();
        Ok(safe)
    }
}

/// True when a thread whose innermost frame is `innermost` must not be
/// interrupted now: that frame runs a lock-taking module's code, or a frame
/// below it is importlib's, so an import is in progress. An exception in a
/// module's body would leave that module half made for every other thread
/// importing it at the time: they are handed the partial module (two threads
/// importing `json` in one interpreter, one interrupted in `json`'s body: the
/// other's `json.dumps` was an `AttributeError`). The import finishes first.
unsafe fn must_wait(py: Python<'_>, innermost: Owned<'_>) -> Result<bool> {
    // SAFETY (whole body): GIL held; every frame is owned while it is read.
    unsafe {
        if module_name(py, innermost.as_ptr())?.is_some_and(|name| is_lock_taking_module(&name)) {
            return Ok(true);
        }
        let mut frame = innermost;
        loop {
            let back = ffi::PyFrame_GetBack(frame.as_ptr().cast()).cast::<ffi::PyObject>();
            let Some(back) = Owned::from_raw(py, back) else {
                return Ok(false);
            };
            if module_name(py, back.as_ptr())?.is_some_and(|name| is_import_machinery(&name)) {
                return Ok(true);
            }
            frame = back;
        }
    }
}

fn is_import_machinery(name: &str) -> bool {
    has_module_prefix(name, "importlib") || has_module_prefix(name, "_frozen_importlib")
}

/// The `__name__` of the module whose code `frame` (a live frame) runs.
unsafe fn module_name(py: Python<'_>, frame: *mut ffi::PyObject) -> Result<Option<String>> {
    // SAFETY (whole body): GIL held; `frame` is a live frame the caller keeps.
    unsafe {
        let globals = Owned::new(
            py,
            ffi::PyObject_GetAttrString(frame, c"f_globals".as_ptr()),
        )?;
        let name = ffi::PyDict_GetItemString(globals.as_ptr(), c"__name__".as_ptr());
        if name.is_null() || ffi::PyUnicode_Check(name) == 0 {
            return Ok(None);
        }
        let utf8 = ffi::PyUnicode_AsUTF8(name);
        if utf8.is_null() {
            return Err(crate::python::exception::python_error(py));
        }
        Ok(Some(CStr::from_ptr(utf8).to_string_lossy().into_owned()))
    }
}
