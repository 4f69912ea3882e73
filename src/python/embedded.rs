//! The Python code pybridge brings (the `.py` files beside the modules that
//! use them, compiled in with `embedded_python!`): made into modules kept in
//! an interpreter's `sys.modules`, or run in a namespace of their own.

use std::ffi::CStr;

use pyo3::{Python, ffi};

use crate::python::owned::Owned;
use crate::runtime::error::Result;

/// A Python source file beside the invoking Rust file, as a `&'static CStr`
/// for `Py_CompileString` and `PyRun_String`.
macro_rules! embedded_python {
    ($file:literal) => {
        match std::ffi::CStr::from_bytes_with_nul(concat!(include_str!($file), "\0").as_bytes()) {
            Ok(source) => source,
            Err(_) => panic!(concat!($file, " holds a NUL byte")),
        }
    };
}
pub(crate) use embedded_python;

/// Module `name` from `sys.modules`, or made there from `source` the first
/// time (per interpreter: each has its own `sys.modules`).
///
/// The module is made apart and put in `sys.modules` only once its body has
/// run: a body lets the GIL go (`import asyncio` takes a while), and a module
/// published first was found half made by another thread (the API fuzzer, 3.13:
/// `_pybridge_asyncio` without `Runner`). Two threads may both make it; the
/// first one published is the one every thread uses. A body that fails (an
/// interrupting shutdown's exception) publishes nothing.
pub(crate) fn source_module<'py>(
    py: Python<'py>,
    name: &CStr,
    source: &CStr,
    filename: &CStr,
) -> Result<Owned<'py>> {
    if let Some(existing) = imported_module(py, name) {
        return Ok(existing);
    }
    // SAFETY: GIL held (the `py` token says so); references owned by `Owned`.
    unsafe {
        let code = Owned::new(
            py,
            ffi::Py_CompileString(source.as_ptr(), filename.as_ptr(), ffi::Py_file_input),
        )?;
        let module = Owned::new(py, ffi::PyModule_New(name.as_ptr()))?;
        let namespace = ffi::PyModule_GetDict(module.as_ptr());
        if ffi::PyDict_SetItemString(
            namespace,
            c"__builtins__".as_ptr(),
            ffi::PyEval_GetBuiltins(),
        ) != 0
        {
            return Err(crate::python::exception::python_error(py));
        }
        Owned::new(
            py,
            ffi::PyEval_EvalCode(code.as_ptr(), namespace, namespace),
        )?;
        let key = Owned::new(py, ffi::PyUnicode_FromString(name.as_ptr()))?;
        let mut published = std::ptr::null_mut();
        if ffi::compat::PyDict_SetDefaultRef(
            ffi::PyImport_GetModuleDict(),
            key.as_ptr(),
            module.as_ptr(),
            &mut published,
        ) < 0
        {
            return Err(crate::python::exception::python_error(py));
        }
        Owned::new(py, published)
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

/// Runs `code` in a fresh namespace of the interpreter whose GIL is held,
/// returning the namespace.
pub(crate) fn run_apart<'py>(py: Python<'py>, code: &CStr) -> Result<Owned<'py>> {
    // SAFETY: GIL held (the token); the references are owned by `Owned`.
    unsafe {
        let scope = Owned::new(py, ffi::PyDict_New())?;
        ffi::PyDict_SetItemString(
            scope.as_ptr(),
            c"__builtins__".as_ptr(),
            ffi::PyEval_GetBuiltins(),
        );
        Owned::new(
            py,
            ffi::PyRun_String(
                code.as_ptr(),
                ffi::Py_file_input,
                scope.as_ptr(),
                scope.as_ptr(),
            ),
        )?;
        Ok(scope)
    }
}
