//! `pyb_buffer`: a zero-copy view of an object's memory (Python's buffer protocol).

use std::ffi::{c_char, c_void};

use crate::handles::pyb_object;

/// `pyb_buffer_get` flag: the view must be writable (fails on `bytes`, a
/// read-only `memoryview`, ...). `pyb_buffer_from_host` flag: Python may write
/// to the host memory.
pub const PYB_BUFFER_WRITABLE: u32 = 1;

/// A view of an object's memory, filled by `pyb_buffer_get`. `data`, the
/// memory from `lowest` to `lowest + span`, and the `format`, `shape` and
/// `strides` arrays stay valid until the view is released
/// (`pyb_buffer_release`, or `pyb_object_release(owner)`) and Python has no
/// reference to `owner` left, or the engine shuts down. Reading and writing
/// the memory needs no GIL; the host must not race Python code that uses the
/// same memory.
///
/// Item `[i0, i1, ...]` starts at `data + i0 * strides[0] + i1 * strides[1] +
/// ...` bytes. A stride may be negative (a reversed view, such as Python's
/// `m[::-1]`): `data` is then not the lowest address, and the items are not
/// the `len` bytes from `data`; every item lies in `[lowest, lowest + span)`.
/// When `strides` are the C-contiguous steps (`strides[ndim - 1] ==
/// itemsize`, each outer one the inner one times its count), the items are
/// the `len` bytes at `data`, in order.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct pyb_buffer {
    /// Set by the caller to `sizeof(pyb_buffer)`; fields past it are not
    /// written. A struct from an older header, ending at `strides`, is
    /// filled up to there.
    pub struct_size: usize,
    /// A handle to the `pybridge.BufferView` object that holds the view's own
    /// export of the memory: the object cannot move or resize its memory while
    /// it lives, whatever Python code does (ending a `memoryview` of it, for
    /// one). Usable like any handle: pass it to Python, where `memoryview(owner)`
    /// or `numpy.asarray(owner)` reads the same memory. Releasing it ends the
    /// view once Python holds no reference to it.
    pub owner: pyb_object,
    /// The first item in logical order (item `[0, 0, ...]`; Python's
    /// `Py_buffer.buf`): the lowest address of the memory unless a stride is
    /// negative.
    pub data: *mut c_void,
    /// Bytes the items take together (`itemsize` times the product of
    /// `shape`); the memory they lie in spans `span` bytes.
    pub len: usize,
    /// Bytes per item.
    pub itemsize: usize,
    /// True when the memory must not be written.
    pub readonly: bool,
    /// Dimensions: 0 for a scalar, 1 for a flat buffer, 2 for a matrix, ...
    pub ndim: i32,
    /// The item format in `struct` module syntax (`"B"`, `"d"`, `"<i4"`, ...).
    pub format: *const c_char,
    /// `ndim` item counts, outermost first; NULL when `ndim` is 0.
    pub shape: *const isize,
    /// `ndim` byte steps between items of each dimension (negative for a
    /// reversed view); NULL when `ndim` is 0.
    pub strides: *const isize,
    /// The lowest address of any byte of any item: `data` plus the sum of the
    /// negative terms among `(shape[d] - 1) * strides[d]`. Equal to `data`
    /// when no stride is negative, and when the view is empty.
    pub lowest: *mut c_void,
    /// Bytes from `lowest` to the end of the item at the highest address:
    /// every item lies in `[lowest, lowest + span)`. `len` for contiguous
    /// memory, more when strides skip bytes, 0 for an empty view (a count of
    /// 0 in `shape`), `itemsize` when `ndim` is 0.
    pub span: usize,
}
