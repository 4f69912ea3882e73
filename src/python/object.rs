//! Object handles seen from Python: the GIL entry every object call makes
//! (`enter`, which also applies queued releases), keeping a handle's object
//! alive for a call, and the conversions of `pyb_object_to_*`. The handle
//! table itself is `handles.rs`.

use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::status::*;
use crate::python::exception::python_error;
use crate::python::gil::GilScope;
use crate::python::handles::{bad_handle, drain_release_queue, insert, new_reference};
use crate::runtime::error::{Error, Result};

/// Takes the GIL for one object call (nesting if the thread already holds it)
/// and applies queued releases.
#[inline(always)]
pub(crate) fn enter() -> Result<GilScope> {
    let scope = GilScope::acquire()?;
    drain_release_queue(scope.python());
    Ok(scope)
}

/// `enter` for a call about `handle`: with no engine running, a handle can only
/// be stale, so that is what the caller hears.
#[inline(always)]
pub(crate) fn enter_for(handle: pyb_object) -> Result<GilScope> {
    enter().map_err(|error| {
        if error.status == PYB_E_NOT_INITIALIZED && handle != 0 {
            bad_handle(handle)
        } else {
            error
        }
    })
}

/// Runs `body` on the object behind `handle`, keeping the object alive even if
/// Python code releases the handle meanwhile.
pub(crate) fn with_object<T>(
    py: Python<'_>,
    handle: pyb_object,
    body: impl FnOnce(*mut ffi::PyObject) -> Result<T>,
) -> Result<T> {
    let object = new_reference(py, handle)?;
    let result = body(object);
    // SAFETY: GIL held (the token); the reference taken above.
    unsafe { ffi::Py_DecRef(object) };
    result
}

/// A second handle to the object behind `handle`.
pub(crate) fn clone(py: Python<'_>, handle: pyb_object) -> Result<pyb_object> {
    insert(py, new_reference(py, handle)?)
}

/// The object's type name, for messages.
pub(crate) fn type_name(_py: Python<'_>, object: *mut ffi::PyObject) -> String {
    // SAFETY: GIL held (the token); tp_name is a NUL-terminated static string.
    unsafe { std::ffi::CStr::from_ptr((*ffi::Py_TYPE(object)).tp_name) }
        .to_string_lossy()
        .into_owned()
}

fn wrong_type(py: Python<'_>, object: *mut ffi::PyObject, wanted: &str) -> Error {
    Error::new(
        PYB_E_WRONG_TYPE,
        format!("the object is a '{}', not {wanted}", type_name(py, object)),
    )
}

/// The value of an `int` (or subclass such as `bool`) that fits in int64.
pub(crate) fn to_int64(py: Python<'_>, handle: pyb_object) -> Result<i64> {
    with_object(py, handle, |object| {
        // SAFETY: GIL held; `object` is live.
        unsafe {
            if ffi::PyLong_Check(object) == 0 {
                return Err(wrong_type(py, object, "an int"));
            }
            let mut overflow = 0;
            let value = ffi::PyLong_AsLongLongAndOverflow(object, &mut overflow);
            if overflow != 0 {
                return Err(Error::new(
                    PYB_E_OUT_OF_RANGE,
                    "the int does not fit in int64 (it is outside -2**63 .. 2**63-1); \
                     convert it in Python (str(n)) or keep it as an object",
                ));
            }
            Ok(value)
        }
    })
}

/// The value of a `float` or `int` (or subclass) as a double.
pub(crate) fn to_double(py: Python<'_>, handle: pyb_object) -> Result<f64> {
    with_object(py, handle, |object| {
        // SAFETY: GIL held; `object` is live.
        unsafe {
            if ffi::PyFloat_Check(object) == 0 && ffi::PyLong_Check(object) == 0 {
                return Err(wrong_type(py, object, "a float or an int"));
            }
            let value = ffi::PyFloat_AsDouble(object);
            if value == -1.0 && !ffi::PyErr_Occurred().is_null() {
                let mut error = python_error(py);
                error.status = PYB_E_OUT_OF_RANGE;
                return Err(error);
            }
            Ok(value)
        }
    })
}

/// The object's truth value (`bool(x)`).
pub(crate) fn to_bool(py: Python<'_>, handle: pyb_object) -> Result<bool> {
    with_object(py, handle, |object| {
        // SAFETY: GIL held; `object` is live.
        match unsafe { ffi::PyObject_IsTrue(object) } {
            -1 => Err(python_error(py)),
            truth => Ok(truth != 0),
        }
    })
}

/// Runs `read` on the UTF-8 text of a `str` (or subclass), which lives as
/// long as the object.
pub(crate) fn with_utf8<T>(
    py: Python<'_>,
    handle: pyb_object,
    read: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    with_object(py, handle, |object| {
        // SAFETY: GIL held; `object` is live, and so is its UTF-8 form.
        unsafe {
            if ffi::PyUnicode_Check(object) == 0 {
                return Err(wrong_type(py, object, "a str"));
            }
            let mut len = 0;
            let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut len);
            if data.is_null() {
                let mut error = python_error(py);
                error.status = PYB_E_OUT_OF_RANGE;
                return Err(error.context("the str has no UTF-8 form"));
            }
            read(std::slice::from_raw_parts(data.cast::<u8>(), len as usize))
        }
    })
}

/// Runs `read` on the contents of a `bytes` or `bytearray` (or subclass).
pub(crate) fn with_bytes<T>(
    py: Python<'_>,
    handle: pyb_object,
    read: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    with_object(py, handle, |object| {
        // SAFETY: GIL held; `object` is live; its buffer stays put while the
        // GIL is held and no Python code runs.
        unsafe {
            let (data, len) = if ffi::PyBytes_Check(object) != 0 {
                (ffi::PyBytes_AsString(object), ffi::PyBytes_Size(object))
            } else if ffi::PyByteArray_Check(object) != 0 {
                (
                    ffi::PyByteArray_AsString(object),
                    ffi::PyByteArray_Size(object),
                )
            } else {
                return Err(wrong_type(py, object, "bytes or a bytearray"));
            };
            let bytes = if len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len as usize)
            };
            read(bytes)
        }
    })
}
