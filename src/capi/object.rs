//! `pyb_object`: release, clone and convert object handles.

use std::ffi::c_char;

use crate::abi::status::*;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::capi::error::last_python_error;
use crate::python::gil::GilScope;
use crate::python::handles;
use crate::python::object::{self, enter_for};
use crate::runtime::error::{Error, Result};

pub use crate::abi::handles::pyb_object;

/// The body of an exported function that reads the object behind `object`
/// into `out`: checks `out`, enters the GIL for the object, and writes what
/// `read` returns.
#[inline(always)]
pub(crate) fn read_object<T>(
    object: pyb_object,
    out: *mut T,
    read: impl FnOnce(&GilScope) -> Result<T>,
) -> Result<()> {
    let out = out_ptr(out, "out")?;
    let gil = enter_for(object)?;
    *out = read(&gil)?;
    Ok(())
}

/// Releases an object handle. Any thread, with or without the GIL; never
/// blocks: without the GIL the release is queued and applied the next time a
/// thread enters pybridge with the GIL (or at shutdown). `pyb_object_release(0)`
/// does nothing.
///
/// Errors: `PYB_E_BAD_HANDLE` (already released, from a shut-down engine, or
/// never issued); `PYB_E_FORKED` (in a `fork()` child, where a release that
/// would be queued is refused: nothing would ever apply it, and the object
/// stays in the child's closed copy of the engine).
#[unsafe(no_mangle)]
pub extern "C" fn pyb_object_release(object: pyb_object) -> pyb_status {
    ffi_boundary("pyb_object_release", || handles::release(object))
}

/// Writes a second handle to the same object to `out`; both must be released.
/// Any thread; takes the GIL for the call if the thread does not hold it.
///
/// Errors: `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`, `PYB_E_NOT_INITIALIZED`,
/// `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_clone(object: pyb_object, out: *mut pyb_object) -> pyb_status {
    ffi_boundary("pyb_object_clone", || {
        read_object(object, out, |gil| object::clone(gil.python(), object))
    })
}

/// Writes the value of an `int` (or `int` subclass such as `bool`) to `out`.
/// Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_WRONG_TYPE` (not an int; floats are not truncated),
/// `PYB_E_OUT_OF_RANGE` (outside int64), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_to_int64(object: pyb_object, out: *mut i64) -> pyb_status {
    ffi_boundary("pyb_object_to_int64", || {
        read_object(object, out, |gil| object::to_int64(gil.python(), object))
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
        read_object(object, out, |gil| object::to_double(gil.python(), object))
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
        read_object(object, out, |gil| object::to_bool(gil.python(), object))
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
        let gil = enter_for(object)?;
        *len_out = object::with_utf8(gil.python(), object, |text| {
            // SAFETY: the host promises `buf_len` writable bytes at a non-NULL `buf`.
            unsafe { copy_out(text, buf.cast(), buf_len, true) }
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
        let gil = enter_for(object)?;
        *len_out = object::with_bytes(gil.python(), object, |bytes| {
            // SAFETY: as in `pyb_object_to_string`.
            unsafe { copy_out(bytes, buf, buf_len, false) }
        })?;
        Ok(())
    })
}

/// Copies `bytes` (and a NUL if `terminate`) into a host buffer that must fit
/// all of it; NULL asks for the length only. Returns the length.
///
/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes.
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

/// Writes a new handle to the calling thread's last Python exception object
/// to `out` (caller owns; release with `pyb_object_release`), to read its
/// attributes (`errno`, `args`, ...) or raise it again; writes 0 when the last
/// error was not a Python exception. Any thread; takes the GIL if needed. Call
/// it before anything else fails on this thread: a failure of this call
/// becomes the last error.
///
/// Errors: `PYB_E_BAD_HANDLE` (the exception's engine has shut down since),
/// `PYB_E_WRONG_INTERPRETER` (raised in another interpreter than the one the
/// thread works in now), `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_exception(out: *mut pyb_object) -> pyb_status {
    // Held for the call: the copy keeps the handle alive if this call's own
    // failure replaces the last error.
    let exception = last_python_error().and_then(|error| error.exception);
    ffi_boundary("pyb_last_error_python_exception", || {
        let out = out_ptr(out, "out")?;
        let Some(exception) = exception else {
            *out = 0;
            return Ok(());
        };
        let handle = exception.handle();
        let gil = enter_for(handle)?;
        *out = object::clone(gil.python(), handle)?;
        Ok(())
    })
}
