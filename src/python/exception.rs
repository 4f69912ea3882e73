//! A pending Python exception as an `Error`: its type's qualified name, its
//! message and its formatted traceback, read with the raw C API (pyo3's
//! `PyErr` is fenced off, see clippy.toml). Also `Owned::new`, which turns a
//! NULL result into the exception's error.

use pyo3::{Python, ffi};

use crate::abi::status::*;
use crate::python::handles;
use crate::python::owned::Owned;
use crate::runtime::error::{Error, ExceptionObject, PythonError, Result};

impl<'py> Owned<'py> {
    /// Takes the new reference a C API call returned; NULL means it raised,
    /// and the pending exception becomes the error.
    #[inline]
    pub(crate) fn new(py: Python<'py>, object: *mut ffi::PyObject) -> Result<Owned<'py>> {
        // SAFETY: a new reference is ours to own.
        unsafe { Owned::from_raw(py, object) }.ok_or_else(|| python_error(py))
    }

    /// A new Python str from UTF-8 text.
    pub(crate) fn str(py: Python<'py>, text: &str) -> Result<Owned<'py>> {
        // SAFETY: GIL held (the token); `text` is valid UTF-8 of the given length.
        Owned::new(py, unsafe {
            ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as ffi::Py_ssize_t)
        })
    }
}

/// Takes the current Python exception off the interpreter and turns it into a
/// `PYB_E_PYTHON` error whose message is `Type: message` plus the traceback.
/// The GIL must be held. Formatting runs Python code; if that fails too, the
/// error keeps what it could read.
///
/// Raw C API only: pyo3's `PyErr` defers decrefs into a process-wide pool when
/// it does not know the GIL is held, and its interned names are cached in
/// statics; both outlive an interpreter, and a later engine then frees dead
/// objects (double free measured on 3.12.1).
#[cold]
#[inline(never)]
pub(crate) fn python_error(py: pyo3::Python<'_>) -> Error {
    let Some(exception) = fetch_exception(py) else {
        return Error::new(
            PYB_E_PYTHON,
            "a Python call failed without setting an exception",
        );
    };
    Error::python(describe_exception(py, &exception))
}

/// The `PYB_E_PYTHON` error for an exception object that was not raised here
/// (a finished asyncio task's, for one): its type, message and traceback.
pub(crate) fn exception_error(py: pyo3::Python<'_>, exception: *mut ffi::PyObject) -> Error {
    // SAFETY: GIL held; `exception` is a live exception instance.
    let fetched = unsafe {
        Fetched {
            kind: Owned::from_borrowed(py, ffi::Py_TYPE(exception).cast()),
            value: Some(Owned::from_borrowed(py, exception)),
            traceback: Owned::from_raw(py, ffi::PyException_GetTraceback(exception)),
        }
    };
    Error::python(describe_exception(py, &fetched))
}

/// A fetched exception: type, normalized value and traceback.
struct Fetched<'py> {
    kind: Owned<'py>,
    value: Option<Owned<'py>>,
    traceback: Option<Owned<'py>>,
}

/// Takes the pending exception off the thread state.
fn fetch_exception(py: pyo3::Python<'_>) -> Option<Fetched<'_>> {
    // SAFETY: GIL held (the token); each call hands us new references.
    unsafe {
        #[cfg(Py_3_12)]
        {
            let value = Owned::from_raw(py, ffi::PyErr_GetRaisedException())?;
            let kind = Owned::from_borrowed(py, ffi::Py_TYPE(value.as_ptr()).cast());
            let traceback = Owned::from_raw(py, ffi::PyException_GetTraceback(value.as_ptr()));
            Some(Fetched {
                kind,
                value: Some(value),
                traceback,
            })
        }
        #[cfg(not(Py_3_12))]
        {
            let mut kind = std::ptr::null_mut();
            let mut value = std::ptr::null_mut();
            let mut traceback = std::ptr::null_mut();
            ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
            if kind.is_null() {
                return None;
            }
            // Exceptions raised from C arrive unnormalized, without `__traceback__` (3.11).
            ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut traceback);
            if !traceback.is_null() && !value.is_null() {
                ffi::PyException_SetTraceback(value, traceback);
            }
            Some(Fetched {
                kind: Owned::from_raw(py, kind)?,
                value: Owned::from_raw(py, value),
                traceback: Owned::from_raw(py, traceback),
            })
        }
    }
}

/// The text of a str a call returned, or `None` (its error cleared).
fn take_text(py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Option<String> {
    let object = owned_or_cleared(py, object)?;
    text_of(py, object.as_ptr())
}

/// The text of a live str (lossy), or `None` for anything else (its error
/// cleared): for messages and names, where a failure must not raise.
pub(crate) fn text_of(_py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Option<String> {
    let mut len = 0;
    // SAFETY: GIL held (the token); the UTF-8 buffer lives as long as `object`.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut len);
        if data.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

fn describe_exception(py: pyo3::Python<'_>, exception: &Fetched<'_>) -> PythonError {
    let type_name = qualified_name(py, exception.kind.as_ptr());
    let message = match &exception.value {
        None => String::new(),
        // SAFETY: GIL held; the value is live.
        Some(value) => take_text(py, unsafe { ffi::PyObject_Str(value.as_ptr()) })
            .unwrap_or_else(|| "<str() of the exception failed>".to_string()),
    };
    let traceback =
        format_exception(py, exception).unwrap_or_else(|| format!("{type_name}: {message}"));
    PythonError {
        types: type_names(py, exception.kind.as_ptr()),
        // Kept only where a handle would be filed under the right interpreter.
        exception: exception
            .value
            .as_ref()
            .filter(|_| handles::caller_is_where_recorded())
            .and_then(|value| {
                // SAFETY: GIL held; a new reference for the handle.
                let object = unsafe { Owned::from_borrowed(py, value.as_ptr()) };
                handles::insert(py, object.into_raw())
                    .ok()
                    .map(|handle| ExceptionObject::new(handle, handles::release_later))
            }),
        type_name,
        message,
        traceback,
    }
}

/// The `__name__` of a `pyb_scope_new` namespace (`call.rs`), which error
/// type names leave out.
pub(crate) const SCOPE_NAME: &str = "__pybridge__";

/// `ZeroDivisionError` for builtins, `module.QualifiedName` otherwise; a class
/// defined in a `pyb_scope_new` namespace (module `__pybridge__`, an internal
/// name) is just `QualifiedName`.
fn qualified_name(py: pyo3::Python<'_>, kind: *mut ffi::PyObject) -> String {
    let attribute = |name: &std::ffi::CStr| {
        // SAFETY: GIL held; the type is live.
        take_text(py, unsafe {
            ffi::PyObject_GetAttrString(kind, name.as_ptr())
        })
    };
    let qualname =
        attribute(c"__qualname__").unwrap_or_else(|| "<unknown exception type>".to_string());
    match attribute(c"__module__") {
        Some(module) if module != "builtins" && module != SCOPE_NAME => {
            format!("{module}.{qualname}")
        }
        _ => qualname,
    }
}

/// The qualified names of `kind.__mro__`, without `object`.
fn type_names(py: pyo3::Python<'_>, kind: *mut ffi::PyObject) -> Vec<String> {
    // SAFETY: GIL held; `__mro__` of a type is a tuple of types.
    unsafe {
        let Some(mro) =
            owned_or_cleared(py, ffi::PyObject_GetAttrString(kind, c"__mro__".as_ptr()))
        else {
            return vec![qualified_name(py, kind)];
        };
        let count = ffi::PyTuple_Size(mro.as_ptr()).max(0);
        (0..count)
            .map(|index| ffi::PyTuple_GetItem(mro.as_ptr(), index))
            .filter(|base| !base.is_null() && *base != (&raw mut ffi::PyBaseObject_Type).cast())
            .map(|base| qualified_name(py, base))
            .collect()
    }
}

/// `"".join(traceback.format_exception(type, value, tb))`, trimmed.
fn format_exception(py: pyo3::Python<'_>, exception: &Fetched<'_>) -> Option<String> {
    // SAFETY: GIL held (the token); every reference is owned by an `Owned`.
    unsafe {
        let module = owned_or_cleared(py, ffi::PyImport_ImportModule(c"traceback".as_ptr()))?;
        let none = ffi::Py_None();
        let or_none = |object: &Option<Owned<'_>>| match object {
            Some(object) => object.as_ptr(),
            None => none,
        };
        let lines = owned_or_cleared(
            py,
            ffi::PyObject_CallMethod(
                module.as_ptr(),
                c"format_exception".as_ptr(),
                c"(OOO)".as_ptr(),
                exception.kind.as_ptr(),
                or_none(&exception.value),
                or_none(&exception.traceback),
            ),
        )?;
        let empty = owned_or_cleared(py, ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0))?;
        take_text(py, ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr()))
            .map(|text| text.trim_end().to_string())
    }
}

/// Takes a new reference, or clears the error a NULL left. Error formatting
/// cannot use `Owned::new`: its error path would format again.
fn owned_or_cleared(py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Option<Owned<'_>> {
    // SAFETY: GIL held (the token); `object` is a new reference or NULL.
    let owned = unsafe { Owned::from_raw(py, object) };
    if owned.is_none() {
        // SAFETY: as above.
        unsafe { ffi::PyErr_Clear() };
    }
    owned
}
