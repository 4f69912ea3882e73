//! What the engine thread does with CPython: start it from a `pyb_config`,
//! look at its threads, interrupt them, and finalize it. Everything here runs
//! on the engine thread, which is Python's main thread for its whole life
//! (`Py_FinalizeEx` must run there: on another thread it hangs on 3.11/3.12
//! and crashes on 3.13+, see docs/CPYTHON-NOTES.md).

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::{Python, ffi};

use crate::abi::status::*;
use crate::python::owned::Owned;
use crate::runtime::config::EngineConfig;
use crate::runtime::error::{Error, Result};

/// A `threading` thread other than the main thread and host (dummy) threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PythonThread {
    pub ident: u64,
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

const HELPERS: &CStr = c"
import threading

class ShutdownInterrupt(BaseException):
    'Raised in host threads running Python by a shutdown with PYB_SHUTDOWN_INTERRUPT.'

def python_threads():
    main = threading.main_thread()
    return [
        (t.ident, t.native_id, t.name, t.daemon)
        for t in threading.enumerate()
        if t is not main and not isinstance(t, threading._DummyThread) and t.is_alive()
    ]

def extend_path(virtual_env, paths):
    import os, site, sys
    if virtual_env:
        version = 'python%d.%d' % sys.version_info[:2]
        for candidate in (os.path.join(virtual_env, 'lib', version, 'site-packages'),
                          os.path.join(virtual_env, 'Lib', 'site-packages')):
            if os.path.isdir(candidate):
                site.addsitedir(candidate)
                break
        else:
            raise FileNotFoundError('no site-packages under virtual environment ' + virtual_env)
    sys.path[0:0] = list(paths)

class ReinitGuard:
    'Refuses extension modules CPython crashes re-initializing (src/python/reinit_guard.rs).'
    def __init__(self, hazards, refused, message):
        self.hazards = frozenset(hazards)
        self.refused = frozenset(refused)
        self.message = message
        self.seen = set()

    def find_spec(self, name, path=None, target=None):
        if name in self.refused:
            raise ImportError(self.message % name, name=name)
        if name in self.hazards:
            self.seen.add(name)
        return None

reinit_guard = None

def guard_reimports(hazards, refused, message):
    global reinit_guard
    import sys
    reinit_guard = ReinitGuard(hazards, refused, message)
    sys.meta_path.insert(0, reinit_guard)

# True while os.fork() (PyOS_BeforeFork to PyOS_AfterFork_*) is under way:
# src/python/fork.rs then leaves CPython's fork protocol to it.
python_forking = False

def _python_fork_started():
    global python_forking
    python_forking = True

def _python_fork_ended():
    global python_forking
    python_forking = False

def watch_python_forks():
    import os
    os.register_at_fork(before=_python_fork_started, after_in_parent=_python_fork_ended,
                        after_in_child=_python_fork_ended)

def initialized_hazards():
    import sys
    if reinit_guard is None:
        return []
    return sorted(reinit_guard.seen | (reinit_guard.hazards & set(sys.modules)))
";

/// The engine's helper module, compiled once per interpreter (it is kept in
/// `sys.modules`, so its exception class has one identity hosts can catch).
fn helpers(py: Python<'_>) -> Result<Owned<'_>> {
    source_module(py, c"_pybridge_engine", HELPERS, c"<pybridge>")
}

/// Module `name` from `sys.modules`, or made there from `source` the first
/// time (per interpreter: each has its own `sys.modules`).
pub(crate) fn source_module<'py>(
    py: Python<'py>,
    name: &CStr,
    source: &CStr,
    filename: &CStr,
) -> Result<Owned<'py>> {
    if let Some(existing) = imported_module(py, name) {
        return Ok(existing);
    }
    // SAFETY: GIL held (the `py` token says so).
    unsafe {
        let code = Owned::new(
            py,
            ffi::Py_CompileString(source.as_ptr(), filename.as_ptr(), ffi::Py_file_input),
        )?;
        Owned::new(
            py,
            ffi::PyImport_ExecCodeModuleEx(name.as_ptr(), code.as_ptr(), filename.as_ptr()),
        )
    }
}

/// The module `name` if it is in `sys.modules`, else None; sets no error.
/// A lookup, never an import: importing a module that is not there searches
/// the path under the import lock, which an interrupted thread may have left
/// held (docs/CPYTHON-NOTES.md, "Asynchronous exceptions are per
/// interpreter"), and pybridge's own modules are made, never found.
pub(crate) fn imported_module<'py>(py: Python<'py>, name: &CStr) -> Option<Owned<'py>> {
    // SAFETY: GIL held (the `py` token); a borrowed reference is taken over.
    unsafe {
        let module = ffi::PyDict_GetItemString(ffi::PyImport_GetModuleDict(), name.as_ptr());
        (!module.is_null()).then(|| Owned::from_borrowed(py, module))
    }
}

/// True while Python's own `os.fork()` is under way in the main interpreter
/// (its `register_at_fork` hooks say so); false where no engine helper module
/// exists. Runs no bytecode. Main GIL held.
pub(crate) fn python_is_forking(py: Python<'_>) -> Option<bool> {
    let module = imported_module(py, c"_pybridge_engine")?;
    // SAFETY: GIL held; a plain module attribute read, no bytecode runs.
    let flag = unsafe { ffi::PyObject_GetAttrString(module.as_ptr(), c"python_forking".as_ptr()) };
    // SAFETY: a new reference (or NULL), taken over.
    let Some(flag) = (unsafe { Owned::from_raw(py, flag) }) else {
        // SAFETY: GIL held; the failed lookup set an error nobody else wants.
        unsafe { ffi::PyErr_Clear() };
        return None;
    };
    // SAFETY: GIL held; `flag` is live.
    Some(flag.as_ptr() == unsafe { ffi::Py_True() })
}

/// Calls `_pybridge_engine.<name>(*args)`; steals nothing.
fn call_helper<'py>(
    py: Python<'py>,
    name: &CStr,
    args: &[*mut ffi::PyObject],
) -> Result<Owned<'py>> {
    let module = helpers(py)?;
    // SAFETY: GIL held; `args` are live references the caller keeps.
    unsafe {
        let function = Owned::new(
            py,
            ffi::PyObject_GetAttrString(module.as_ptr(), name.as_ptr()),
        )?;
        let tuple = Owned::new(py, ffi::PyTuple_New(args.len() as ffi::Py_ssize_t))?;
        for (index, arg) in args.iter().enumerate() {
            ffi::Py_INCREF(*arg);
            ffi::PyTuple_SetItem(tuple.as_ptr(), index as ffi::Py_ssize_t, *arg);
        }
        Owned::new(
            py,
            ffi::PyObject_CallObject(function.as_ptr(), tuple.as_ptr()),
        )
    }
}

/// Starts CPython on the calling thread and returns its main thread state with
/// the GIL released.
pub(crate) fn start(config: &EngineConfig) -> Result<*mut ffi::PyThreadState> {
    check_python_home(config)?;
    // SAFETY: PyConfig is plain data initialized by CPython before use.
    unsafe {
        let mut py_config: ffi::PyConfig = std::mem::zeroed();
        if config.isolated {
            ffi::PyConfig_InitIsolatedConfig(&mut py_config);
        } else {
            ffi::PyConfig_InitPythonConfig(&mut py_config);
        }
        // Signal handlers belong to the host process.
        py_config.install_signal_handlers = 0;
        if config.ignore_sigpipe {
            // What CPython's own signal setup would do (PYB_CONFIG_IGNORE_SIGPIPE).
            crate::sys::process::ignore_sigpipe();
        }
        py_config.parse_argv = 0;
        // Python derives its prefix from the program name; the host's own
        // executable (mono, dotnet, a C++ app) would lead it to the wrong stdlib.
        let program = config
            .program_name
            .as_deref()
            .unwrap_or(env!("PYB_BUILD_PYTHON_EXECUTABLE"));
        let mut result = set_config_string(&mut py_config, Field::ProgramName, program);
        if let (Ok(()), Some(home)) = (&result, &config.python_home) {
            result = set_config_string(&mut py_config, Field::Home, home);
        }
        if result.is_ok() && !config.argv.is_empty() {
            result = set_config_argv(&mut py_config, &config.argv);
        }
        if let Err(error) = result {
            ffi::PyConfig_Clear(&mut py_config);
            return Err(error);
        }
        let status = ffi::Py_InitializeFromConfig(&py_config);
        ffi::PyConfig_Clear(&mut py_config);
        if ffi::PyStatus_Exception(status) != 0 {
            let earlier = if CPYTHON_START_FAILED.swap(true, Ordering::Relaxed) {
                " (CPython already failed to start once in this process, and keeps \
                 part of that attempt's state: a later start can fail for that alone)"
            } else {
                ""
            };
            return Err(Error::new(
                PYB_E_INIT_FAILED,
                format!(
                    "CPython failed to initialize: {} ({}); check python_home and PYTHONHOME{earlier}",
                    c_text(status.err_msg),
                    c_text(status.func)
                ),
            ));
        }
        crate::python::state_quarantine::install();
        let py = Python::assume_attached();
        if let Err(error) = prepare(py, config) {
            ffi::Py_FinalizeEx();
            crate::python::reinit_guard::note_loaded_extension_files();
            return Err(Error::new(
                PYB_E_INIT_FAILED,
                format!("Python started but could not be set up: {}", error.message),
            ));
        }
        Ok(ffi::PyEval_SaveThread())
    }
}

/// Set when `Py_InitializeFromConfig` failed in this process: CPython keeps
/// part of its runtime state, and a later start with a good configuration
/// then fails too (3.11.7 after a home without a standard library: "error
/// reading frozen getpath.py").
static CPYTHON_START_FAILED: AtomicBool = AtomicBool::new(false);

/// Refuses, before CPython sees it, a Python home (`python_home`, else
/// `PYTHONHOME` unless isolated) that holds no standard library for the
/// running CPython: CPython would fail to start from it and, having failed,
/// could not start again in this process (see `CPYTHON_START_FAILED`).
fn check_python_home(config: &EngineConfig) -> Result<()> {
    let (home, source) = match (&config.python_home, config.isolated) {
        (Some(home), _) => (home.clone(), "pyb_config.python_home"),
        (None, false) => match std::env::var("PYTHONHOME") {
            Ok(home) if !home.is_empty() => (home, "PYTHONHOME"),
            _ => return Ok(()),
        },
        (None, true) => return Ok(()),
    };
    // A home may be "prefix:exec_prefix"; the standard library is in the prefix.
    let prefix = std::path::Path::new(home.split(':').next().unwrap_or_default());
    let version = crate::sys::loader::running_version();
    let mut parts = version.split('.');
    let (major, minor) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    // CPython's own landmarks (getpath.py, 3.11-3.15): <platlibdir>/pythonX.Y/os.py
    // or os.pyc, or <platlibdir>/pythonXY.zip; platlibdir is "lib" on most
    // systems, "lib64" on Fedora, whatever a build chose elsewhere: any directory.
    let landmarks = [
        format!("python{major}.{minor}/os.py"),
        format!("python{major}.{minor}/os.pyc"),
        format!("python{major}{minor}.zip"),
    ];
    let found = std::fs::read_dir(prefix).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            landmarks
                .iter()
                .any(|landmark| entry.path().join(landmark).exists())
        })
    });
    if found {
        return Ok(());
    }
    Err(Error::new(
        PYB_E_INIT_FAILED,
        format!(
            "{source} {home:?} holds no standard library of CPython {major}.{minor} (no \
             lib/{} or lib/{} under it); Python was not started, so a later \
             pyb_engine_initialize can start it with another home",
            landmarks[0], landmarks[2]
        ),
    ))
}

fn prepare(py: Python<'_>, config: &EngineConfig) -> Result<()> {
    // First, so that no import below can reach a module that would crash.
    guard_reimports(py)?;
    call_helper(py, c"watch_python_forks", &[])?;
    // Importing threading here makes this thread threading's main thread.
    // SAFETY: GIL held.
    Owned::new(py, unsafe {
        ffi::PyImport_ImportModule(c"threading".as_ptr())
    })?;
    // Error formatting (src/python/exception.rs) needs traceback. Imported now, no
    // interrupt can ever land inside that import; importing it lazily, on the
    // first error, raced with interrupting shutdowns (see docs/CPYTHON-NOTES.md).
    // SAFETY: GIL held.
    Owned::new(py, unsafe {
        ffi::PyImport_ImportModule(c"traceback".as_ptr())
    })?;
    let paths: Vec<&str> = config
        .module_search_paths
        .iter()
        .map(String::as_str)
        .collect();
    let paths = string_list(py, &paths)?;
    let virtual_env = match &config.virtual_env {
        Some(path) => Owned::str(py, path)?,
        // SAFETY: GIL held; None is always live.
        None => unsafe { Owned::from_borrowed(py, ffi::Py_None()) },
    };
    call_helper(py, c"extend_path", &[virtual_env.as_ptr(), paths.as_ptr()])?;
    Ok(())
}

/// Installs the import hook of src/python/reinit_guard.rs in the new interpreter.
fn guard_reimports(py: Python<'_>) -> Result<()> {
    install_reimport_guard(
        py,
        &crate::python::reinit_guard::refused(),
        &crate::python::reinit_guard::refusal_message(),
    )
}

/// Installs the import hook of src/python/reinit_guard.rs in a new
/// sub-interpreter that shares the main GIL (and allocator), refusing every
/// hazard: each import there initializes the module once more in this process
/// (3.11: `zoneinfo` in five such interpreters aborted with "deallocating
/// None"; 3.12: `datetime`, `decimal`, `asyncio`, `hashlib`, `ctypes`,
/// `zoneinfo` crashed after a restart, as in the main interpreter), and a
/// shared-GIL interpreter cannot learn what the others initialized meanwhile.
/// The standard library's pure-Python twins take over. The sub-interpreter's
/// GIL is held.
pub(crate) fn guard_reimports_in_shared_subinterpreter(py: Python<'_>) -> Result<()> {
    let refused = crate::python::reinit_guard::shared_subinterpreter_refusals();
    if refused.is_empty() {
        return Ok(());
    }
    install_reimport_guard(
        py,
        &refused,
        &crate::python::reinit_guard::shared_subinterpreter_refusal_message(),
    )
}

fn install_reimport_guard(py: Python<'_>, refused: &[&str], message: &str) -> Result<()> {
    let hazards = string_list(py, crate::python::reinit_guard::hazards())?;
    let refused = string_list(py, refused)?;
    let message = Owned::str(py, message)?;
    call_helper(
        py,
        c"guard_reimports",
        &[hazards.as_ptr(), refused.as_ptr(), message.as_ptr()],
    )?;
    Ok(())
}

fn string_list<'py>(py: Python<'py>, items: &[&str]) -> Result<Owned<'py>> {
    // SAFETY: GIL held.
    let list = Owned::new(py, unsafe { ffi::PyList_New(0) })?;
    for item in items {
        let item = Owned::str(py, item)?;
        // SAFETY: GIL held; both are live.
        if unsafe { ffi::PyList_Append(list.as_ptr(), item.as_ptr()) } != 0 {
            return Err(crate::python::exception::python_error(py));
        }
    }
    Ok(list)
}

/// Hands the hazards this interpreter initialized to src/python/reinit_guard.rs.
/// Best effort: a failure here is caught again after finalization, from the
/// loaded extension files.
fn note_initialized_hazards(py: Python<'_>) {
    let Ok(names) = call_helper(py, c"initialized_hazards", &[]) else {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
        return;
    };
    // SAFETY: GIL held; `names` is a list made by the helper.
    let count = unsafe { ffi::PyList_Size(names.as_ptr()) };
    let found: Vec<String> = (0..count.max(0))
        .filter_map(|index| {
            // SAFETY: GIL held; `index` is inside the list.
            let item = unsafe { ffi::PyList_GetItem(names.as_ptr(), index) };
            crate::python::exception::text_of(py, item)
        })
        .collect();
    crate::python::reinit_guard::note_initialized(found.iter().map(String::as_str));
}

enum Field {
    ProgramName,
    Home,
}

unsafe fn set_config_string(config: &mut ffi::PyConfig, field: Field, value: &str) -> Result<()> {
    let text = CString::new(value)
        .map_err(|_| Error::invalid_argument(format!("path {value:?} contains a NUL byte")))?;
    let target = match field {
        Field::ProgramName => &mut config.program_name,
        Field::Home => &mut config.home,
    };
    let target: *mut *mut libc::wchar_t = target;
    // SAFETY: `target` is a field of the initialized config.
    let status = unsafe { ffi::PyConfig_SetBytesString(config, target.cast(), text.as_ptr()) };
    config_status(status, || format!("CPython rejected the path {value:?}"))
}

/// `PYB_E_INIT_FAILED` saying `what` failed, if `status` is an error.
fn config_status(status: ffi::PyStatus, what: impl FnOnce() -> String) -> Result<()> {
    // SAFETY: reading a status CPython returned.
    if unsafe { ffi::PyStatus_Exception(status) } != 0 {
        return Err(Error::new(
            PYB_E_INIT_FAILED,
            format!("{}: {}", what(), c_text(status.err_msg)),
        ));
    }
    Ok(())
}

/// Sets `sys.argv` from UTF-8 text, exactly: handed over as wide strings,
/// not as bytes CPython would decode with the locale (under the C locale
/// 'été' arrived as lone surrogates).
unsafe fn set_config_argv(config: &mut ffi::PyConfig, argv: &[String]) -> Result<()> {
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err(Error::invalid_argument("pyb_config.argv holds a NUL byte"));
    }
    let wide: Vec<Vec<libc::wchar_t>> = argv
        .iter()
        .map(|arg| {
            arg.chars()
                .map(|c| c as libc::wchar_t)
                .chain(std::iter::once(0))
                .collect()
        })
        .collect();
    let mut pointers: Vec<*mut libc::wchar_t> =
        wide.iter().map(|arg| arg.as_ptr().cast_mut()).collect();
    // SAFETY: `pointers` holds `len` NUL-terminated wide strings that outlive
    // the call; CPython copies them. (wchar_t is UTF-32 on Linux, one per char.)
    let status = unsafe {
        ffi::PyConfig_SetArgv(
            config,
            pointers.len() as ffi::Py_ssize_t,
            pointers.as_mut_ptr().cast(),
        )
    };
    config_status(status, || {
        "CPython could not take pyb_config.argv".to_string()
    })
}

fn c_text(text: *const std::ffi::c_char) -> String {
    if text.is_null() {
        return "no detail".to_string();
    }
    // SAFETY: CPython's static NUL-terminated strings.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// The interpreter's Python-created threads that are still alive. GIL held.
pub(crate) fn python_threads(py: Python<'_>) -> Result<Vec<PythonThread>> {
    let rows = call_helper(py, c"python_threads", &[])?;
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
                ident: ffi::PyLong_AsUnsignedLongLong(field(0)),
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

/// Whether a thread of an ended interpreter is parked by CPython for good:
/// from 3.14, a thread that wants the GIL after finalization began is hung in
/// `PyThread_hang_thread`, a loop around `pause()`, instead of being ended,
/// so it can never run Python again and a restart need not wait for it. A
/// thread that has not got there yet (asleep in `time.sleep`, or in native
/// code without the GIL) is not parked: daemon threads waking around raw
/// restarts crashed 4 of 40 loops on 3.14 and 3.15, so those are still
/// waited for. Before 3.14 such threads are ended, never parked.
///
/// Recognised as: blocked in `pause()` called from libpython (the function
/// is not exported, so its exact address is unknown). The only other caller
/// there is `signal.pause()`, and a daemon thread in it at finalization
/// parks as soon as it wakes: its thread state is marked as shutting down
/// and kept alive for it.
pub(crate) fn is_parked_by_finalization(native_id: i64) -> bool {
    #[cfg(Py_3_14)]
    {
        let Some(libpython) = crate::sys::loader::libpython_base() else {
            return false;
        };
        crate::sys::thread::is_paused_below(native_id, |address| {
            address > libpython
                && address - libpython < (256 << 20)
                && crate::sys::loader::object_base_of(address) == Some(libpython)
        })
    }
    #[cfg(not(Py_3_14))]
    {
        let _ = native_id;
        false
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

/// The asynchronous exceptions a shutdown raises: `SystemExit` in Python
/// threads, which `threading` ends quietly, and
/// `_pybridge_engine.ShutdownInterrupt` (a BaseException) in host threads,
/// because `SystemExit` reaching `PyRun_SimpleString` or `PyErr_Print` on a
/// host thread calls `Py_Exit` and finalizes from the wrong thread.
pub(crate) struct Interrupts<'py> {
    host_exception: Owned<'py>,
}

impl<'py> Interrupts<'py> {
    /// GIL held.
    pub(crate) fn new(py: Python<'py>) -> Result<Interrupts<'py>> {
        let module = helpers(py)?;
        // SAFETY: GIL held.
        let host_exception = Owned::new(py, unsafe {
            ffi::PyObject_GetAttrString(module.as_ptr(), c"ShutdownInterrupt".as_ptr())
        })?;
        Ok(Interrupts { host_exception })
    }

    /// Raises the exceptions; each fires when its thread next runs Python
    /// bytecode. Runs no Python code. GIL held.
    pub(crate) fn raise_in(&self, python_threads: &[u64], host_threads: &[u64]) {
        // SAFETY: static exception type object.
        let system_exit = unsafe { ffi::PyExc_SystemExit };
        for (idents, exception) in [
            (python_threads, system_exit),
            (host_threads, self.host_exception.as_ptr()),
        ] {
            for ident in idents {
                // SAFETY: GIL held; `exception` is a live type object.
                unsafe { ffi::PyThreadState_SetAsyncExc(*ident as libc::c_long, exception) };
            }
        }
    }
}

unsafe extern "C" {
    /// `thread_state_ident.c`: the ident of the thread a state was made on.
    fn pybridge_thread_state_ident(state: *mut ffi::PyThreadState) -> libc::c_ulong;
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
pub(crate) fn interruptible(py: Python<'_>, idents: &[u64]) -> Result<Vec<u64>> {
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
unsafe fn interruptible_now(py: Python<'_>, idents: &[u64]) -> Result<Vec<u64>> {
    // SAFETY (whole body): GIL held; thread states are read while the GIL
    // keeps them alive; frames are owned by `Owned`.
    unsafe {
        let interpreter = ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get());
        // An ident can have more than one state: on 3.11 a new Python thread's
        // state carries its starter's ident until it runs. A thread is safe only
        // when every state with its ident is.
        let mut unsafe_idents = Vec::new();
        let mut state = ffi::PyInterpreterState_ThreadHead(interpreter);
        while !state.is_null() {
            let ident = pybridge_thread_state_ident(state) as u64;
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

/// `Py_FinalizeEx` on the engine thread, which holds the GIL on its main state.
pub(crate) fn finalize() -> i32 {
    // SAFETY: called on the thread that initialized Python, with its state
    // current, so the GIL is held.
    let py = unsafe { Python::assume_attached() };
    note_initialized_hazards(py);
    // SAFETY: as above.
    let code = unsafe { ffi::Py_FinalizeEx() };
    crate::python::reinit_guard::note_loaded_extension_files();
    code
}
