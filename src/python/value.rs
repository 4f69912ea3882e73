//! Converting between `pyb_value` (`abi/value.rs`) and Python objects.
//!
//! Ownership of text and bytes:
//! - values a host passes in are read during the call only (pybridge copies);
//! - a str/bytes result points into a per-thread buffer that stays valid until
//!   the next pybridge call on the same thread that returns a `pyb_value`
//!   (copy it out, or use `pyb_object_to_string` into your own buffer);
//! - arguments given to a host function point into the Python objects
//!   themselves, valid until the host function returns.

use std::cell::RefCell;

use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::status::*;
use crate::abi::value::*;
use crate::python::exception::python_error;
use crate::python::handles;
use crate::runtime::error::{Error, Result};

/// The largest length pybridge accepts for a str or bytes payload.
const MAX_PAYLOAD_LEN: usize = isize::MAX as usize;

/// A new reference to the Python object for `value`. OBJECT values are
/// borrowed: the handle stays the caller's.
pub(crate) fn to_python(py: Python<'_>, value: &pyb_value) -> Result<*mut ffi::PyObject> {
    // SAFETY: GIL held (the token); each arm reads the field its tag names.
    unsafe {
        let object = match value.tag {
            PYB_VALUE_NONE => {
                let none = ffi::Py_None();
                ffi::Py_INCREF(none);
                return Ok(none);
            }
            PYB_VALUE_BOOL => {
                let truth = if value.bool_payload() {
                    ffi::Py_True()
                } else {
                    ffi::Py_False()
                };
                ffi::Py_INCREF(truth);
                return Ok(truth);
            }
            PYB_VALUE_INT => ffi::PyLong_FromLongLong(value.data.int64),
            PYB_VALUE_FLOAT => ffi::PyFloat_FromDouble(value.data.float64),
            PYB_VALUE_STR => {
                let bytes = payload(value, "str")?;
                let text = std::str::from_utf8(bytes).map_err(|err| {
                    Error::invalid_argument(format!(
                        "PYB_VALUE_STR payload is not valid UTF-8 (bad byte at offset {} of {}); \
                         pass UTF-8 text, or PYB_VALUE_BYTES for binary data",
                        err.valid_up_to(),
                        bytes.len()
                    ))
                })?;
                ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as isize)
            }
            PYB_VALUE_BYTES => {
                let bytes = payload(value, "bytes")?;
                ffi::PyBytes_FromStringAndSize(bytes.as_ptr().cast(), bytes.len() as isize)
            }
            PYB_VALUE_OBJECT => return handles::new_reference(py, value.data.object),
            tag => {
                return Err(Error::invalid_argument(format!(
                    "unknown pyb_value tag {tag}; use one of PYB_VALUE_NONE (0) .. PYB_VALUE_OBJECT (6)"
                )));
            }
        };
        if object.is_null() {
            return Err(python_error(py));
        }
        Ok(object)
    }
}

/// Checks a STR/BYTES payload's pointer and length.
unsafe fn payload<'a>(value: &'a pyb_value, what: &str) -> Result<&'a [u8]> {
    // SAFETY: the caller checked the tag.
    let raw = unsafe { value.data.str };
    if raw.len > MAX_PAYLOAD_LEN {
        return Err(Error::invalid_argument(format!(
            "{what} payload length {} is larger than the largest possible object ({MAX_PAYLOAD_LEN}); \
             is the length uninitialized or negative?",
            raw.len
        )));
    }
    // SAFETY: as above.
    unsafe { value.bytes() }.ok_or_else(|| {
        Error::new(
            PYB_E_NULL_ARGUMENT,
            format!(
                "{what} payload pointer is NULL with length {}; pass a valid pointer or length 0",
                raw.len
            ),
        )
    })
}

/// What a Python object looks like as a plain value, if it is one.
enum Plain<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    Bytes(&'a [u8]),
}

/// Classifies `object` (borrowed). The returned slices point into the object
/// and live as long as it does.
unsafe fn plain<'a>(_py: Python<'_>, object: *mut ffi::PyObject) -> Option<Plain<'a>> {
    // SAFETY: GIL held (the token) and `object` is a live object.
    unsafe {
        let kind = ffi::Py_TYPE(object);
        if object == ffi::Py_None() {
            Some(Plain::None)
        } else if object == ffi::Py_True() || object == ffi::Py_False() {
            Some(Plain::Bool(object == ffi::Py_True()))
        } else if kind == std::ptr::addr_of_mut!(ffi::PyLong_Type) {
            let mut overflow = 0;
            let value = ffi::PyLong_AsLongLongAndOverflow(object, &mut overflow);
            (overflow == 0).then_some(Plain::Int(value))
        } else if kind == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
            Some(Plain::Float(ffi::PyFloat_AS_DOUBLE(object)))
        } else if kind == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            let mut len = 0;
            let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut len);
            if data.is_null() {
                // Lone surrogates have no UTF-8 form: hand the str over as an object.
                ffi::PyErr_Clear();
                return None;
            }
            Some(Plain::Str(std::slice::from_raw_parts(
                data.cast(),
                len as usize,
            )))
        } else if kind == std::ptr::addr_of_mut!(ffi::PyBytes_Type) {
            Some(Plain::Bytes(std::slice::from_raw_parts(
                ffi::PyBytes_AsString(object).cast(),
                ffi::PyBytes_Size(object) as usize,
            )))
        } else {
            None
        }
    }
}

thread_local! {
    /// Where str/bytes results live until the thread's next value-returning call.
    static RESULT_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Copies `bytes` (plus a NUL) into this thread's result buffer.
fn buffered(tag: u32, bytes: &[u8]) -> pyb_value {
    RESULT_BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer.push(0);
        pyb_value {
            tag,
            data: pyb_value_data {
                str: pyb_str {
                    ptr: buffer.as_ptr().cast(),
                    len: bytes.len(),
                },
            },
        }
    })
}

/// Turns a new reference into a result value, consuming the reference: plain
/// values are copied out (text into the per-thread buffer), anything else
/// becomes a new handle.
pub(crate) fn from_python(py: Python<'_>, object: *mut ffi::PyObject) -> Result<pyb_value> {
    // SAFETY: GIL held; `object` is a new reference we own.
    unsafe {
        let value = match plain(py, object) {
            Some(Plain::None) => pyb_value::none(),
            Some(Plain::Bool(value)) => pyb_value::from_bool(value),
            Some(Plain::Int(value)) => pyb_value::from_i64(value),
            Some(Plain::Float(value)) => pyb_value::from_f64(value),
            Some(Plain::Str(bytes)) => buffered(PYB_VALUE_STR, bytes),
            Some(Plain::Bytes(bytes)) => buffered(PYB_VALUE_BYTES, bytes),
            None => return handles::insert(py, object).map(pyb_value::from_object),
        };
        ffi::Py_DECREF(object);
        Ok(value)
    }
}

/// Turns a borrowed argument into a value for a host function without copying:
/// text and bytes point into `object`, which the caller keeps alive for the
/// call; anything else gets a temporary handle pushed to `temporaries`.
pub(crate) fn borrow_from_python(
    py: Python<'_>,
    object: *mut ffi::PyObject,
    temporaries: &mut Vec<pyb_object>,
) -> Result<pyb_value> {
    // SAFETY: GIL held; `object` is a live borrowed reference.
    unsafe {
        Ok(match plain(py, object) {
            Some(Plain::None) => pyb_value::none(),
            Some(Plain::Bool(value)) => pyb_value::from_bool(value),
            Some(Plain::Int(value)) => pyb_value::from_i64(value),
            Some(Plain::Float(value)) => pyb_value::from_f64(value),
            Some(Plain::Str(bytes)) => pyb_value::from_raw(PYB_VALUE_STR, bytes),
            Some(Plain::Bytes(bytes)) => pyb_value::from_raw(PYB_VALUE_BYTES, bytes),
            None => {
                ffi::Py_IncRef(object);
                let handle = handles::insert(py, object)?;
                temporaries.push(handle);
                pyb_value::from_object(handle)
            }
        })
    }
}

/// A new handle to the Python object for `value` (for an `OBJECT` value, a clone).
pub(crate) fn new_object(py: Python<'_>, value: &pyb_value) -> Result<pyb_object> {
    handles::insert(py, to_python(py, value)?)
}
