//! `pyb_object`: the functions that release, clone and convert object
//! handles, and the GIL entry every object call makes (`enter`, which also
//! applies queued releases). The handle table itself is `handles.rs`.

use std::ffi::c_char;

use pyo3::ffi;

use crate::boundary::{ffi_boundary, out_ptr};
use crate::error::{Error, Result};
use crate::exception::python_error;
use crate::gil::GilScope;
use crate::handles::{bad_handle, drain_release_queue, insert, new_reference, release};
use crate::status::*;

pub use crate::handles::pyb_object;

/// Takes the GIL for one object call (nesting if the thread already holds it)
/// and applies queued releases.
#[inline(always)]
pub(crate) fn enter() -> Result<GilScope> {
    let scope = GilScope::acquire()?;
    drain_release_queue();
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

/// Releases an object handle. Any thread, with or without the GIL; never
/// blocks: without the GIL the release is queued and applied the next time a
/// thread enters pybridge with the GIL (or at shutdown). `pyb_object_release(0)`
/// does nothing.
///
/// Errors: `PYB_E_BAD_HANDLE` (already released, from a shut-down engine, or
/// never issued).
#[unsafe(no_mangle)]
pub extern "C" fn pyb_object_release(object: pyb_object) -> pyb_status {
    ffi_boundary("pyb_object_release", || release(object))
}

/// Writes a second handle to the same object to `out`; both must be released.
/// Any thread; takes the GIL for the call if the thread does not hold it.
///
/// Errors: `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`, `PYB_E_NOT_INITIALIZED`,
/// `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_clone(object: pyb_object, out: *mut pyb_object) -> pyb_status {
    ffi_boundary("pyb_object_clone", || {
        let out = out_ptr(out, "out")?;
        let _gil = enter_for(object)?;
        *out = insert(new_reference(object)?)?;
        Ok(())
    })
}

/// Runs `body` on the object behind `handle` with the GIL held, keeping the
/// object alive even if Python code releases the handle meanwhile.
pub(crate) fn with_object<T>(
    handle: pyb_object,
    body: impl FnOnce(pyo3::Python<'_>, *mut ffi::PyObject) -> Result<T>,
) -> Result<T> {
    let gil = enter_for(handle)?;
    let object = new_reference(handle)?;
    let result = body(gil.python(), object);
    // SAFETY: GIL held; the reference taken above.
    unsafe { ffi::Py_DecRef(object) };
    result
}

/// The object's type name, for messages. GIL held.
pub(crate) fn type_name(object: *mut ffi::PyObject) -> String {
    // SAFETY: GIL held; tp_name is a NUL-terminated static string.
    unsafe { std::ffi::CStr::from_ptr((*ffi::Py_TYPE(object)).tp_name) }
        .to_string_lossy()
        .into_owned()
}

fn wrong_type(object: *mut ffi::PyObject, wanted: &str) -> Error {
    Error::new(
        PYB_E_WRONG_TYPE,
        format!("the object is a '{}', not {wanted}", type_name(object)),
    )
}

/// Writes the value of an `int` (or `int` subclass such as `bool`) to `out`.
/// Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_WRONG_TYPE` (not an int; floats are not truncated),
/// `PYB_E_OUT_OF_RANGE` (outside int64), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_to_int64(object: pyb_object, out: *mut i64) -> pyb_status {
    ffi_boundary("pyb_object_to_int64", || {
        let out = out_ptr(out, "out")?;
        *out = with_object(object, |_, object| {
            // SAFETY: GIL held; `object` is live.
            unsafe {
                if ffi::PyLong_Check(object) == 0 {
                    return Err(wrong_type(object, "an int"));
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
        })?;
        Ok(())
    })
}

/// Writes the value of a `float` or `int` (or subclass) as a double to `out`.
/// Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_WRONG_TYPE`, `PYB_E_OUT_OF_RANGE` (an int too large for a
/// double), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_to_double(object: pyb_object, out: *mut f64) -> pyb_status {
    ffi_boundary("pyb_object_to_double", || {
        let out = out_ptr(out, "out")?;
        *out = with_object(object, |py, object| {
            // SAFETY: GIL held; `object` is live.
            unsafe {
                if ffi::PyFloat_Check(object) == 0 && ffi::PyLong_Check(object) == 0 {
                    return Err(wrong_type(object, "a float or an int"));
                }
                let value = ffi::PyFloat_AsDouble(object);
                if value == -1.0 && !ffi::PyErr_Occurred().is_null() {
                    let mut error = python_error(py);
                    error.status = PYB_E_OUT_OF_RANGE;
                    return Err(error);
                }
                Ok(value)
            }
        })?;
        Ok(())
    })
}

/// Writes the object's truth value (Python's `bool(x)`) to `out`. Any thread;
/// takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (its `__bool__` or `__len__` raised), `PYB_E_BAD_HANDLE`,
/// `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_to_bool(object: pyb_object, out: *mut bool) -> pyb_status {
    ffi_boundary("pyb_object_to_bool", || {
        let out = out_ptr(out, "out")?;
        *out = with_object(object, |py, object| {
            // SAFETY: GIL held; `object` is live.
            match unsafe { ffi::PyObject_IsTrue(object) } {
                -1 => Err(python_error(py)),
                truth => Ok(truth != 0),
            }
        })?;
        Ok(())
    })
}

/// Copies the UTF-8 text of a `str` (or subclass) into `buf` with a NUL after
/// it, and writes its length in bytes (without the NUL; embedded NULs are kept)
/// to `len_out`. Pass `buf = NULL` to ask only for the length; otherwise
/// `buf_len` must be at least that length + 1. Any thread; takes the GIL for
/// the call if needed.
///
/// Errors: `PYB_E_WRONG_TYPE` (not a str), `PYB_E_OUT_OF_RANGE` (`buf_len` too
/// small: nothing is written, the message gives the size needed; or the str
/// has lone surrogates, which have no UTF-8 form), `PYB_E_BAD_HANDLE`,
/// `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_to_string(
    object: pyb_object,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> pyb_status {
    ffi_boundary("pyb_object_to_string", || {
        let len_out = out_ptr(len_out, "len_out")?;
        *len_out = with_object(object, |py, object| {
            // SAFETY: GIL held; `object` is live.
            unsafe {
                if ffi::PyUnicode_Check(object) == 0 {
                    return Err(wrong_type(object, "a str"));
                }
                let mut len = 0;
                let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut len);
                if data.is_null() {
                    let mut error = python_error(py);
                    error.status = PYB_E_OUT_OF_RANGE;
                    return Err(error.context("the str has no UTF-8 form"));
                }
                let text = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
                copy_out(text, buf.cast(), buf_len, true)
            }
        })?;
        Ok(())
    })
}

/// Copies the contents of a `bytes` or `bytearray` (or subclass) into `buf` and
/// writes its length to `len_out`. Pass `buf = NULL` to ask only for the
/// length; otherwise `buf_len` must be at least that length. Any thread; takes
/// the GIL for the call if needed.
///
/// Errors: `PYB_E_WRONG_TYPE` (not bytes or bytearray), `PYB_E_OUT_OF_RANGE`
/// (`buf_len` too small; nothing is written), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_to_bytes(
    object: pyb_object,
    buf: *mut u8,
    buf_len: usize,
    len_out: *mut usize,
) -> pyb_status {
    ffi_boundary("pyb_object_to_bytes", || {
        let len_out = out_ptr(len_out, "len_out")?;
        *len_out = with_object(object, |_, object| {
            // SAFETY: GIL held; `object` is live; the buffers stay put while we hold the GIL.
            unsafe {
                let (data, len) = if ffi::PyBytes_Check(object) != 0 {
                    (ffi::PyBytes_AsString(object), ffi::PyBytes_Size(object))
                } else if ffi::PyByteArray_Check(object) != 0 {
                    (
                        ffi::PyByteArray_AsString(object),
                        ffi::PyByteArray_Size(object),
                    )
                } else {
                    return Err(wrong_type(object, "bytes or a bytearray"));
                };
                let bytes = if len == 0 {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(data.cast::<u8>(), len as usize)
                };
                copy_out(bytes, buf, buf_len, false)
            }
        })?;
        Ok(())
    })
}

/// Copies `bytes` (and a NUL if `terminate`) into a host buffer that must fit
/// all of it; NULL asks for the length only. Returns the length.
unsafe fn copy_out(bytes: &[u8], buf: *mut u8, buf_len: usize, terminate: bool) -> Result<usize> {
    if buf.is_null() {
        return Ok(bytes.len());
    }
    let needed = bytes.len() + terminate as usize;
    if buf_len < needed {
        return Err(Error::new(
            PYB_E_OUT_OF_RANGE,
            format!(
                "the buffer holds {buf_len} bytes but {needed} are needed; pass buf = NULL \
                 to ask for the length first"
            ),
        ));
    }
    // SAFETY: the host promises `buf_len >= needed` writable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        if terminate {
            *buf.add(bytes.len()) = 0;
        }
    }
    Ok(bytes.len())
}
