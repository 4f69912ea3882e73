//! What Python and native code inside the process hold that a shutdown must
//! see before its point of no return, beyond pybridge's own threads: the
//! interpreters Python code made itself (PEP 734, 3.14+: `concurrent.interpreters`,
//! `InterpreterPoolExecutor`), and open PEP 788 interpreter guards (3.15+).

use std::ffi::CStr;

use pyo3::{Python, ffi};

use crate::python::embedded::{self, embedded_python};
use crate::python::owned::Owned;

/// Checks on the interpreters Python code made itself (PEP 734, 3.14+).
const PYTHON_MADE_INTERPRETERS: &CStr = embedded_python!("python_made_interpreters.py");

/// Calls `function` of the helper module for Python-made interpreters; None
/// (logged) when it fails, so a broken helper never blocks a shutdown. Main
/// GIL held.
fn python_made_call<'py>(py: Python<'py>, function: &CStr) -> Option<Owned<'py>> {
    let result = embedded::source_module(
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
pub(crate) fn python_made_blocker(py: Python<'_>) -> Option<String> {
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
pub(crate) fn python_made_running(py: Python<'_>) -> bool {
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
pub(crate) fn open_guards_blocker() -> Option<String> {
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
pub(crate) fn open_guards() -> Option<isize> {
    type Countdown = unsafe extern "C" fn(*mut ffi::PyInterpreterState) -> isize;
    static COUNTDOWN: std::sync::OnceLock<Option<Countdown>> = std::sync::OnceLock::new();
    let countdown = (*COUNTDOWN.get_or_init(|| {
        let symbol = crate::sys::loader::libpython_symbol(c"_PyInterpreterState_GuardCountdown")?;
        // SAFETY: a function pointer; when present it has this signature (3.15.2).
        Some(unsafe { std::mem::transmute::<*mut std::ffi::c_void, Countdown>(symbol) })
    }))?;
    // SAFETY: the main interpreter is alive (before finalization); a plain read.
    Some(unsafe { countdown(ffi::PyInterpreterState_Main()) })
}

#[cfg(not(Py_3_15))]
pub(crate) fn open_guards() -> Option<isize> {
    None
}
