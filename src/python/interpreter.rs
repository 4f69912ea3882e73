//! What the engine thread does with CPython: start it from a `pyb_config`,
//! look at its threads, interrupt them, and finalize it. Everything here runs
//! on the engine thread, which is Python's main thread for its whole life
//! (`Py_FinalizeEx` must run there: on another thread it hangs on 3.11/3.12
//! and crashes on 3.13+, see docs/CPYTHON-NOTES.md).

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::{Python, ffi};

use crate::abi::status::*;
use crate::python::attached::{Attached, EngineMainState};
use crate::python::embedded::{embedded_python, imported_module, source_module};
use crate::python::owned::Owned;
use crate::runtime::config::EngineConfig;
use crate::runtime::error::{Error, Result};
use crate::runtime::ids::ThreadIdent;
use crate::sys::wide_text::{WideChar, to_wide_nul};

const HELPERS: &CStr = embedded_python!("engine.py");

/// The engine's helper module, compiled once per interpreter (it is kept in
/// `sys.modules`, so its exception class has one identity hosts can catch).
fn helpers(py: Python<'_>) -> Result<Owned<'_>> {
    crate::python::interrupts::module(py)?;
    source_module(py, c"_pybridge_engine", HELPERS, c"<pybridge>")
}

/// True while Python's own `os.fork()` is under way on the calling thread,
/// `thread` (its `register_at_fork` hooks say so); `None` where no engine
/// helper module exists. Runs no bytecode. Main GIL held.
pub(crate) fn python_is_forking(py: Python<'_>, thread: ThreadIdent) -> Option<bool> {
    let module = imported_module(py, c"_pybridge_engine")?;
    let lookup = || -> Result<bool> {
        // SAFETY: GIL held; plain attribute reads and a set lookup of an
        // int, no bytecode runs; references owned.
        unsafe {
            let forking = Owned::new(
                py,
                ffi::PyObject_GetAttrString(module.as_ptr(), c"python_forking".as_ptr()),
            )?;
            let ident = Owned::new(py, ffi::PyLong_FromUnsignedLongLong(thread.0))?;
            match ffi::PySet_Contains(forking.as_ptr(), ident.as_ptr()) {
                -1 => Err(crate::python::exception::python_error(py)),
                found => Ok(found == 1),
            }
        }
    };
    lookup().ok()
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
pub(crate) fn start(config: &EngineConfig) -> Result<EngineMainState> {
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
        Ok(EngineMainState::new(ffi::PyEval_SaveThread()))
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
    let version = crate::sys::loader::running_version();
    let mut parts = version.split('.');
    let (major, minor) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let Err(looked_for) = crate::sys::python_home::find_standard_library(&home, major, minor)
    else {
        return Ok(());
    };
    Err(Error::new(
        PYB_E_INIT_FAILED,
        format!(
            "{source} {home:?} holds no standard library of CPython {major}.{minor} (no \
             {looked_for} under it); Python was not started, so a later \
             pyb_engine_initialize can start it with another home"
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
    let target: *mut *mut WideChar = target;
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
    let wide: Vec<Vec<WideChar>> = argv.iter().map(|arg| to_wide_nul(arg)).collect();
    let mut pointers: Vec<*mut WideChar> = wide.iter().map(|arg| arg.as_ptr().cast_mut()).collect();
    // SAFETY: `pointers` holds `len` NUL-terminated wide strings that outlive
    // the call; CPython copies them.
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

/// The main interpreter of a CPython the host started itself, if there is
/// one (pybridge then runs as a guest in it).
pub(crate) fn started_by_host() -> Option<*mut ffi::PyInterpreterState> {
    // SAFETY: a plain query, safe before and after initialization; the
    // process's interpreter is alive when it says so, and only its pointer is kept.
    unsafe { (ffi::Py_IsInitialized() != 0).then(|| ffi::PyInterpreterState_Main()) }
}

/// `Py_FinalizeEx` on the engine thread, which holds the GIL on its main
/// state (`main`, which finalization consumes).
pub(crate) fn finalize(main: Attached) -> i32 {
    note_initialized_hazards(main.python());
    main.consumed();
    // SAFETY: on the thread that initialized Python, its main state attached.
    let code = unsafe { ffi::Py_FinalizeEx() };
    crate::python::reinit_guard::note_loaded_extension_files();
    code
}
