//! What the engine thread does with CPython: start it from a `pyb_config`,
//! look at its threads, interrupt them, and finalize it. Everything here runs
//! on the engine thread, which is Python's main thread for its whole life
//! (`Py_FinalizeEx` must run there: on another thread it hangs on 3.11/3.12
//! and crashes on 3.13+, see CPYTHON-FACTS.md).

use std::ffi::{CStr, CString};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};
use pyo3::{PyErr, ffi};

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::status::*;

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
    'Raised in host threads running Python by pyb_engine_shutdown(PYB_SHUTDOWN_INTERRUPT).'

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
";

/// The engine's helper module, compiled once per interpreter (it is kept in
/// `sys.modules`, so its exception class has one identity hosts can catch).
fn helpers(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    match py.import("_pybridge_engine") {
        Ok(module) => Ok(module),
        Err(_) => PyModule::from_code(py, HELPERS, c"<pybridge>", c"_pybridge_engine"),
    }
}

/// Starts CPython on the calling thread and returns its main thread state with
/// the GIL released.
pub(crate) fn start(config: &EngineConfig) -> Result<*mut ffi::PyThreadState> {
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
        py_config.parse_argv = 0;
        // Python derives its prefix from the program name; the host's own
        // executable (mono, dotnet, a C++ app) would lead it to the wrong stdlib.
        let program = env!("PYB_BUILD_PYTHON_EXECUTABLE");
        let mut result = set_config_string(&mut py_config, Field::ProgramName, program);
        if let (Ok(()), Some(home)) = (&result, &config.python_home) {
            result = set_config_string(&mut py_config, Field::Home, home);
        }
        if let Err(error) = result {
            ffi::PyConfig_Clear(&mut py_config);
            return Err(error);
        }
        let status = ffi::Py_InitializeFromConfig(&py_config);
        ffi::PyConfig_Clear(&mut py_config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(Error::new(
                PYB_E_INIT_FAILED,
                format!(
                    "CPython failed to initialize: {} ({}); check python_home and PYTHONHOME",
                    c_text(status.err_msg),
                    c_text(status.func)
                ),
            ));
        }
        let py = Python::assume_attached();
        if let Err(error) = prepare(py, config) {
            let message = describe_error(py, &error);
            ffi::Py_FinalizeEx();
            return Err(Error::new(
                PYB_E_INIT_FAILED,
                format!("Python started but could not be set up: {message}"),
            ));
        }
        Ok(ffi::PyEval_SaveThread())
    }
}

fn prepare(py: Python<'_>, config: &EngineConfig) -> PyResult<()> {
    // Importing threading here makes this thread threading's main thread.
    py.import("threading")?;
    let paths = PyList::new(py, &config.module_search_paths)?;
    helpers(py)?
        .getattr("extend_path")?
        .call1((config.virtual_env.as_deref(), paths))?;
    Ok(())
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
    // SAFETY: reading a status CPython returned.
    if unsafe { ffi::PyStatus_Exception(status) } != 0 {
        return Err(Error::new(
            PYB_E_INIT_FAILED,
            format!(
                "CPython rejected the path {value:?}: {}",
                c_text(status.err_msg)
            ),
        ));
    }
    Ok(())
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

/// "Type: message", for errors raised by the engine's own Python code.
pub(crate) fn describe_error(py: Python<'_>, error: &PyErr) -> String {
    let type_name = error
        .get_type(py)
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "Exception".to_string());
    format!("{type_name}: {}", error.value(py))
}

/// The interpreter's Python-created threads that are still alive. GIL held.
pub(crate) fn python_threads(py: Python<'_>) -> PyResult<Vec<PythonThread>> {
    let rows: Vec<(u64, Option<i64>, String, bool)> =
        helpers(py)?.getattr("python_threads")?.call0()?.extract()?;
    Ok(rows
        .into_iter()
        .map(|(ident, native_id, name, daemon)| PythonThread {
            ident,
            native_id,
            name,
            daemon,
        })
        .collect())
}

/// Raises an exception asynchronously in each thread (by thread ident); it
/// fires when the thread next runs Python bytecode. Python threads get
/// `SystemExit`, which `threading` ends quietly; host threads get
/// `_pybridge_engine.ShutdownInterrupt` (a BaseException), because `SystemExit`
/// reaching `PyRun_SimpleString` or `PyErr_Print` on a host thread calls
/// `Py_Exit` and finalizes from the wrong thread. GIL held.
pub(crate) fn interrupt(py: Python<'_>, python_threads: &[u64], host_threads: &[u64]) {
    // SAFETY: static exception type objects.
    let (system_exit, fallback) = unsafe { (ffi::PyExc_SystemExit, ffi::PyExc_KeyboardInterrupt) };
    let host_exception = helpers(py)
        .and_then(|module| module.getattr("ShutdownInterrupt"))
        .map(|class| class.into_ptr())
        .unwrap_or(fallback);
    for (idents, exception) in [
        (python_threads, system_exit),
        (host_threads, host_exception),
    ] {
        for ident in idents {
            // SAFETY: GIL held; `exception` is a live type object.
            unsafe { ffi::PyThreadState_SetAsyncExc(*ident as libc::c_long, exception) };
        }
    }
}

/// Withdraws interrupts that have not fired yet (a shutdown was called off). GIL held.
pub(crate) fn withdraw_interrupt(idents: &[u64]) {
    for ident in idents {
        // SAFETY: GIL held; NULL clears a pending asynchronous exception.
        unsafe { ffi::PyThreadState_SetAsyncExc(*ident as libc::c_long, std::ptr::null_mut()) };
    }
}

/// `Py_FinalizeEx` on the engine thread, which holds the GIL on its main state.
pub(crate) fn finalize() -> i32 {
    // SAFETY: called on the thread that initialized Python, with its state current.
    unsafe { ffi::Py_FinalizeEx() }
}
