//! `pyb_value`: a tagged value that crosses the C boundary without a handle
//! for the common cases (None, bool, int64, float64, UTF-8 str, bytes), and as
//! a `pyb_object` handle for everything else.
//!
//! Ownership of text and bytes:
//! - values a host passes in are read during the call only (pybridge copies);
//! - a str/bytes result points into a per-thread buffer that stays valid until
//!   the next pybridge call on the same thread that returns a `pyb_value`
//!   (copy it out, or use `pyb_object_to_string` into your own buffer);
//! - arguments given to a host function point into the Python objects
//!   themselves, valid until the host function returns.

use std::cell::RefCell;
use std::ffi::c_char;

use pyo3::ffi;

use crate::boundary::{ffi_boundary, out_ptr};
use crate::error::{Error, Result};
use crate::handles::{self, pyb_object};
use crate::object;
use crate::status::*;

/// `None`; no payload.
pub const PYB_VALUE_NONE: u32 = 0;
/// `bool`; payload `data.boolean`.
pub const PYB_VALUE_BOOL: u32 = 1;
/// `int` that fits in int64; payload `data.int64`.
pub const PYB_VALUE_INT: u32 = 2;
/// `float`; payload `data.float64`.
pub const PYB_VALUE_FLOAT: u32 = 3;
/// `str`; payload `data.str`: UTF-8 bytes and their length (embedded NULs allowed;
/// results are also NUL-terminated after `len` bytes).
pub const PYB_VALUE_STR: u32 = 4;
/// `bytes`; payload `data.str`: the bytes and their length.
pub const PYB_VALUE_BYTES: u32 = 5;
/// Any other Python object; payload `data.object`, a `pyb_object` handle.
pub const PYB_VALUE_OBJECT: u32 = 6;

/// A byte string with an explicit length: the payload of `PYB_VALUE_STR` and
/// `PYB_VALUE_BYTES`. `ptr` may be NULL only when `len` is 0. Lengths above
/// `PTRDIFF_MAX` are refused; a length longer than the memory behind `ptr`
/// cannot be detected.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct pyb_str {
    pub ptr: *const c_char,
    pub len: usize,
}

/// The payload of a `pyb_value`; which field is meaningful depends on `tag`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub union pyb_value_data {
    pub boolean: bool,
    pub int64: i64,
    pub float64: f64,
    pub str: pyb_str,
    pub object: pyb_object,
}

/// A value crossing the boundary: `tag` is one of `PYB_VALUE_*`.
///
/// A value the host passes in is only read during the call; an `OBJECT` value
/// passed in is borrowed (the host keeps its handle). An `OBJECT` value written
/// to an output is a new handle the caller owns: release it with
/// `pyb_object_release`. `STR`/`BYTES` outputs point into a per-thread buffer,
/// valid until the next pybridge call on the same thread that writes a
/// `pyb_value`. Results: `None`, exact `bool`, exact `int` within int64, exact
/// `float`, exact `str` and exact `bytes` come back as plain values; anything
/// else (subclasses, larger ints, containers) as an `OBJECT` handle.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub struct pyb_value {
    pub tag: u32,
    pub data: pyb_value_data,
}

impl std::fmt::Debug for pyb_value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: each arm reads the field its tag names.
        unsafe {
            match self.tag {
                PYB_VALUE_NONE => write!(f, "None"),
                PYB_VALUE_BOOL => write!(f, "Bool({})", self.bool_payload()),
                PYB_VALUE_INT => write!(f, "Int({})", self.data.int64),
                PYB_VALUE_FLOAT => write!(f, "Float({})", self.data.float64),
                PYB_VALUE_STR | PYB_VALUE_BYTES => write!(
                    f,
                    "{}({:?})",
                    if self.tag == PYB_VALUE_STR {
                        "Str"
                    } else {
                        "Bytes"
                    },
                    String::from_utf8_lossy(self.bytes().unwrap_or_default())
                ),
                PYB_VALUE_OBJECT => write!(f, "Object({:#x})", self.data.object),
                tag => write!(f, "BadTag({tag})"),
            }
        }
    }
}

/// Rust-side constructors and readers, used by the engine and the tests. The
/// borrowed forms point into `text`/`bytes`: keep them alive.
impl pyb_value {
    pub const fn none() -> Self {
        pyb_value {
            tag: PYB_VALUE_NONE,
            data: pyb_value_data { int64: 0 },
        }
    }

    pub const fn from_bool(value: bool) -> Self {
        let mut data = pyb_value_data { int64: 0 };
        data.boolean = value;
        pyb_value {
            tag: PYB_VALUE_BOOL,
            data,
        }
    }

    pub const fn from_i64(value: i64) -> Self {
        pyb_value {
            tag: PYB_VALUE_INT,
            data: pyb_value_data { int64: value },
        }
    }

    pub const fn from_f64(value: f64) -> Self {
        pyb_value {
            tag: PYB_VALUE_FLOAT,
            data: pyb_value_data { float64: value },
        }
    }

    pub fn from_text(text: &str) -> Self {
        Self::from_raw(PYB_VALUE_STR, text.as_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::from_raw(PYB_VALUE_BYTES, bytes)
    }

    /// A STR or BYTES value over arbitrary bytes (for tests of bad input).
    pub fn from_raw(tag: u32, bytes: &[u8]) -> Self {
        pyb_value {
            tag,
            data: pyb_value_data {
                str: pyb_str {
                    ptr: bytes.as_ptr().cast(),
                    len: bytes.len(),
                },
            },
        }
    }

    pub const fn from_object(handle: pyb_object) -> Self {
        pyb_value {
            tag: PYB_VALUE_OBJECT,
            data: pyb_value_data { object: handle },
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        // SAFETY: the tag says the payload is a bool.
        (self.tag == PYB_VALUE_BOOL).then(|| unsafe { self.bool_payload() })
    }

    pub fn as_i64(&self) -> Option<i64> {
        // SAFETY: the tag says the payload is an int64.
        (self.tag == PYB_VALUE_INT).then_some(unsafe { self.data.int64 })
    }

    pub fn as_f64(&self) -> Option<f64> {
        // SAFETY: the tag says the payload is a double.
        (self.tag == PYB_VALUE_FLOAT).then_some(unsafe { self.data.float64 })
    }

    pub fn as_object(&self) -> Option<pyb_object> {
        // SAFETY: the tag says the payload is a handle.
        (self.tag == PYB_VALUE_OBJECT).then_some(unsafe { self.data.object })
    }

    /// The text of a STR value as an owned string (lossy), for tests.
    pub fn to_text(&self) -> Option<String> {
        if self.tag != PYB_VALUE_STR {
            return None;
        }
        // SAFETY: the tag says the payload is a byte string the caller keeps alive.
        unsafe { self.bytes() }.map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    /// The payload of a STR or BYTES value as owned bytes, for tests.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        if self.tag != PYB_VALUE_STR && self.tag != PYB_VALUE_BYTES {
            return None;
        }
        // SAFETY: as in `to_text`.
        unsafe { self.bytes() }.map(<[u8]>::to_vec)
    }

    /// Reads a host-written bool without assuming the byte is 0 or 1.
    unsafe fn bool_payload(&self) -> bool {
        // SAFETY: a bool field is one byte at the start of the union.
        unsafe { *(std::ptr::addr_of!(self.data) as *const u8) != 0 }
    }

    /// The bytes of a STR/BYTES payload; `None` when the pointer is NULL with a length.
    unsafe fn bytes(&self) -> Option<&[u8]> {
        // SAFETY: the caller checked the tag.
        let payload = unsafe { self.data.str };
        if payload.len == 0 {
            return Some(&[]);
        }
        if payload.ptr.is_null() {
            return None;
        }
        // SAFETY: the host promises `len` readable bytes at `ptr`.
        Some(unsafe { std::slice::from_raw_parts(payload.ptr.cast(), payload.len) })
    }
}

/// The largest length pybridge accepts for a str or bytes payload.
const MAX_PAYLOAD_LEN: usize = isize::MAX as usize;

/// A new reference to the Python object for `value`. The GIL must be held.
/// OBJECT values are borrowed: the handle stays the caller's.
pub(crate) fn to_python(value: &pyb_value) -> Result<*mut ffi::PyObject> {
    // SAFETY: the GIL is held; each arm reads the field its tag names.
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
            PYB_VALUE_OBJECT => return handles::new_reference(value.data.object),
            tag => {
                return Err(Error::invalid_argument(format!(
                    "unknown pyb_value tag {tag}; use one of PYB_VALUE_NONE (0) .. PYB_VALUE_OBJECT (6)"
                )));
            }
        };
        if object.is_null() {
            return Err(crate::exception::python_error(
                pyo3::Python::assume_attached(),
            ));
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
/// and live as long as it does. The GIL must be held.
unsafe fn plain<'a>(object: *mut ffi::PyObject) -> Option<Plain<'a>> {
    // SAFETY: the GIL is held and `object` is a live object.
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
/// becomes a new handle. The GIL must be held.
pub(crate) fn from_python(object: *mut ffi::PyObject) -> Result<pyb_value> {
    // SAFETY: GIL held; `object` is a new reference we own.
    unsafe {
        let value = match plain(object) {
            Some(Plain::None) => pyb_value::none(),
            Some(Plain::Bool(value)) => pyb_value::from_bool(value),
            Some(Plain::Int(value)) => pyb_value::from_i64(value),
            Some(Plain::Float(value)) => pyb_value::from_f64(value),
            Some(Plain::Str(bytes)) => buffered(PYB_VALUE_STR, bytes),
            Some(Plain::Bytes(bytes)) => buffered(PYB_VALUE_BYTES, bytes),
            None => return handles::insert(object).map(pyb_value::from_object),
        };
        ffi::Py_DECREF(object);
        Ok(value)
    }
}

/// Turns a borrowed argument into a value for a host function without copying:
/// text and bytes point into `object`, which the caller keeps alive for the
/// call; anything else gets a temporary handle pushed to `temporaries`.
pub(crate) fn borrow_from_python(
    object: *mut ffi::PyObject,
    temporaries: &mut Vec<pyb_object>,
) -> Result<pyb_value> {
    // SAFETY: GIL held; `object` is a live borrowed reference.
    unsafe {
        Ok(match plain(object) {
            Some(Plain::None) => pyb_value::none(),
            Some(Plain::Bool(value)) => pyb_value::from_bool(value),
            Some(Plain::Int(value)) => pyb_value::from_i64(value),
            Some(Plain::Float(value)) => pyb_value::from_f64(value),
            Some(Plain::Str(bytes)) => pyb_value::from_raw(PYB_VALUE_STR, bytes),
            Some(Plain::Bytes(bytes)) => pyb_value::from_raw(PYB_VALUE_BYTES, bytes),
            None => {
                ffi::Py_IncRef(object);
                let handle = handles::insert(object)?;
                temporaries.push(handle);
                pyb_value::from_object(handle)
            }
        })
    }
}

/// Reads a host array of `len` items of `T`; NULL is fine when `len` is 0.
pub(crate) fn slice_arg<'a, T>(items: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if items.is_null() {
        return Err(Error::null_argument(name));
    }
    if len > MAX_PAYLOAD_LEN / std::mem::size_of::<T>().max(1) {
        return Err(Error::invalid_argument(format!(
            "`{name}` length {len} is impossibly large; is it uninitialized or negative?"
        )));
    }
    // SAFETY: the host promises `len` readable items at `items`.
    Ok(unsafe { std::slice::from_raw_parts(items, len) })
}

/// Makes a Python object from `value` and writes a new handle to it to `out`
/// (the caller owns it). For an `OBJECT` value this is a clone. Use it, for
/// example, to return a string a host function built in memory it frees
/// before returning. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (unknown tag,
/// invalid UTF-8 in a STR, impossible length), `PYB_E_BAD_HANDLE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_from_value(
    value: *const pyb_value,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_object_from_value", || {
        // SAFETY: a non-NULL value is promised readable.
        let value = unsafe { value.as_ref() }.ok_or_else(|| Error::null_argument("value"))?;
        let out = out_ptr(out, "out")?;
        let _gil = object::enter()?;
        *out = handles::insert(to_python(value)?)?;
        Ok(())
    })
}
