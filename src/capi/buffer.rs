//! `pyb_buffer_*`: zero-copy views of objects' memory, and host memory shared
//! with Python.

use std::ffi::{CString, c_char, c_void};

use crate::abi::status::pyb_status;
use crate::capi::boundary::{
    Versioned, caller_size, ffi_boundary, optional_utf8_c_arg, out_ptr, write_versioned,
};
use crate::python::buffer::{self, HostMemorySpec};
use crate::python::handles;
use crate::python::object::{enter, enter_for};
use crate::runtime::error::Error;

pub use crate::abi::buffer::*;
use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;

impl Versioned for pyb_buffer {
    fn set_size(&mut self, size: usize) {
        self.struct_size = size;
    }
}

/// Fills `out` (whose `struct_size` the caller sets) with a view of the memory
/// of the object behind `object`, which supports Python's buffer protocol
/// (`bytes`, `bytearray`, `array.array`, `memoryview`, NumPy arrays, ...).
/// Flags: `PYB_BUFFER_WRITABLE` to require writable memory. The view holds an
/// export of its own, which no Python code can end: the object cannot move or
/// resize its memory (a `bytearray` raises `BufferError` on a resize) until
/// `pyb_buffer_release` (or `pyb_object_release(out->owner)`) and until Python
/// drops every reference to `out->owner` it was given. Any thread; takes the
/// GIL for the call if needed. The memory itself is read and written without
/// the GIL; see `pyb_buffer` for where the items are (`data`, `strides`,
/// `lowest`, `span`).
///
/// Errors: `PYB_E_WRONG_TYPE` (no buffer protocol, or read-only memory with
/// `PYB_BUFFER_WRITABLE`), `PYB_E_UNSUPPORTED` (indirect memory, PIL-style),
/// `PYB_E_PYTHON` (the exporter refused), `PYB_E_INVALID_ARGUMENT` (unknown
/// flags, a `struct_size` shorter than a `pyb_buffer` up to `strides`),
/// `PYB_E_BAD_HANDLE`, `PYB_E_WRONG_INTERPRETER`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_buffer_get(
    object: pyb_object,
    flags: u32,
    out: *mut pyb_buffer,
) -> pyb_status {
    ffi_boundary("pyb_buffer_get", || {
        if out.is_null() {
            return Err(Error::null_argument("out"));
        }
        // SAFETY: non-NULL; the caller's struct starts with `struct_size`.
        let size = unsafe { caller_size(out, "pyb_buffer") }?;
        // An older host's struct ends at `strides`; the view is useless
        // without any field up to there.
        let smallest = std::mem::offset_of!(pyb_buffer, lowest);
        if size < smallest {
            return Err(Error::invalid_argument(format!(
                "pyb_buffer.struct_size is {size}; set it to sizeof(pyb_buffer) = {}",
                std::mem::size_of::<pyb_buffer>()
            )));
        }
        let gil = enter_for(object)?;
        let view = buffer::view(gil.python(), object, flags)?;
        // SAFETY: the caller promises `struct_size` writable bytes at `out`.
        unsafe { write_versioned(out.cast(), size, view) };
        Ok(())
    })
}

/// Ends a view from `pyb_buffer_get`: releases `view->owner` and clears the
/// struct (`owner` 0, `data` NULL), so a second call does nothing. Any thread,
/// with or without the GIL; never blocks (without the GIL the release is
/// queued, as for `pyb_object_release`). `view` may be NULL.
///
/// Errors: `PYB_E_BAD_HANDLE` (the view's engine shut down: its memory was
/// already let go); `PYB_E_FORKED` (in a `fork()` child, as for
/// `pyb_object_release`; the struct is cleared all the same).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_buffer_release(view: *mut pyb_buffer) -> pyb_status {
    ffi_boundary("pyb_buffer_release", || {
        if view.is_null() {
            return Ok(());
        }
        // SAFETY: non-NULL; a view the caller got from pyb_buffer_get.
        let view = unsafe { &mut *view };
        let owner = std::mem::replace(&mut view.owner, 0);
        view.data = std::ptr::null_mut();
        handles::release(owner)
    })
}

/// Shares `len` bytes of host memory at `data` with Python, without a copy:
/// writes a handle to a one-dimensional `memoryview` of it to `out` (NumPy:
/// `numpy.frombuffer(view, dtype)` or `numpy.asarray(view)`). `format` is one
/// item in `struct` syntax: an optional byte order (`@`, `=`, `<`, `>` or `!`)
/// and one of `?cbBhHiIlLqQnNefdP` (`n`, `N` and `P` only without an order or
/// with `@`), with no repeat count; NULL means `"B"`, bytes. Multi-item
/// formats (`"dd"`, `"4B"`, `"2d"`, even `"1d"`), padding (`"x"`), strings
/// (`"s"`, `"p"`), unknown characters (`"Zd"`) and spaces are refused, and
/// the message says which of these the format is. Python's `memoryview`
/// indexes only native formats (no byte order, or `@`; `e` from CPython
/// 3.12): read the others through NumPy or `struct` (the view's `format`
/// says what they hold). `itemsize` is the item's size, and `len` must be a whole number of
/// items, at most `PTRDIFF_MAX`. Flags: `PYB_BUFFER_WRITABLE` lets Python
/// write to the memory. Any thread, in the interpreter the thread works in;
/// takes the GIL for the call if needed.
///
/// The memory must stay valid until `on_release(user_data)` is called: exactly
/// once, when Python has dropped the last reference to it (every memoryview
/// and array made from it), on whichever thread dropped it, with that
/// interpreter's GIL held; otherwise while the interpreter is finalized
/// (engine shutdown, or `pyb_interpreter_destroy`). One exception: memory
/// that a daemon Python thread (one still running at shutdown; threads started
/// from host code are daemons by default) can still reach then is never
/// released: CPython freezes daemon threads at finalization rather than
/// unwinding them. Such a thread reaches its local variables and arguments,
/// and the globals of each module whose functions it is running (a thread
/// running a function defined in `__main__` keeps every `__main__` global).
/// `on_release` is then never called, and the memory must stay valid for the
/// rest of the process. `on_release` may be NULL when the
/// memory outlives the engine. On error it is not called and nothing was
/// shared.
///
/// Errors: `PYB_E_INVALID_ARGUMENT` (a format that is not one item as above,
/// an `itemsize` that does not match it, `len` not a multiple of it or over
/// `PTRDIFF_MAX`, unknown flags), `PYB_E_NULL_ARGUMENT` (`data` NULL with
/// `len` > 0, `out`), `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pyb_buffer_from_host(
    data: *mut c_void,
    len: usize,
    format: *const c_char,
    itemsize: usize,
    flags: u32,
    on_release: pyb_free_fn,
    user_data: *mut c_void,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_buffer_from_host", || {
        let out = out_ptr(out, "out")?;
        if flags & !PYB_BUFFER_WRITABLE != 0 {
            return Err(Error::invalid_argument(format!(
                "unknown pyb_buffer_from_host flags {flags:#x}; the only flag is \
                 PYB_BUFFER_WRITABLE"
            )));
        }
        let format: CString = optional_utf8_c_arg(format, "format")?
            .map_or_else(|| c"B".to_owned(), |format| format.to_owned());
        let gil = enter()?;
        *out = buffer::from_host(
            gil.python(),
            HostMemorySpec {
                data,
                len,
                format,
                itemsize,
                writable: flags & PYB_BUFFER_WRITABLE != 0,
                on_release,
                user_data,
            },
        )?;
        Ok(())
    })
}
