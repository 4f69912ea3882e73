//! `pyb_value`: a tagged value that crosses the C boundary without a handle
//! for the common cases (None, bool, int64, float64, UTF-8 str, bytes), and as
//! a `pyb_object` handle for everything else. Who owns what a value points to
//! is told at `pyb_value` below and in `python/value.rs`.

use std::ffi::c_char;

use crate::handles::pyb_object;

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
    ///
    /// # Safety
    /// The value's tag must be `PYB_VALUE_BOOL`.
    pub unsafe fn bool_payload(&self) -> bool {
        // SAFETY: a bool field is one byte at the start of the union.
        unsafe { *(std::ptr::addr_of!(self.data) as *const u8) != 0 }
    }

    /// The bytes of a STR/BYTES payload; `None` when the pointer is NULL with a length.
    ///
    /// # Safety
    /// The value's tag must be `PYB_VALUE_STR` or `PYB_VALUE_BYTES`, and its
    /// pointer must give `len` readable bytes that outlive the borrow.
    pub unsafe fn bytes(&self) -> Option<&[u8]> {
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
