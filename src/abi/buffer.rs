//! `pyb_buffer`: a zero-copy view of an object's memory (Python's buffer protocol).

use std::ffi::{c_char, c_void};

use crate::abi::handles::pyb_object;

/// `pyb_buffer_get` flag: the view must be writable (fails on `bytes`, a
/// read-only `memoryview`, ...). `pyb_buffer_from_host` flag: Python may write
/// to the host memory.
pub const PYB_BUFFER_WRITABLE: u32 = 1;

/// A view of an object's memory, filled by `pyb_buffer_get`. `data` and the
/// `format`, `shape` and `strides` arrays stay valid until the view is released
/// (`pyb_buffer_release`, or `pyb_object_release(owner)`), or the engine shuts
/// down. Reading and writing `data` needs no GIL; the host must not race Python
/// code that uses the same memory.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct pyb_buffer {
    /// Set by the caller to `sizeof(pyb_buffer)`; fields past it are not written.
    pub struct_size: usize,
    /// A handle to a `memoryview` that holds the export: the object cannot
    /// move or resize its memory while it lives. Usable like any handle (pass
    /// it to Python); releasing it ends the view.
    pub owner: pyb_object,
    /// The first byte of the memory.
    pub data: *mut c_void,
    /// Bytes in the view (`itemsize` times the product of `shape`).
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
}
