//! The C boundary: no panic crosses it, every error is recorded for
//! `pyb_last_error_message`, and pointer arguments are checked before use.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::abi::status::*;
use crate::capi::error::record;
use crate::runtime::error::{Error, Result};

/// Runs the body of an exported function: `Ok` becomes `PYB_OK`, an `Error`
/// becomes its status (and the thread's last error), a panic becomes `PYB_E_PANIC`.
#[inline(always)]
pub(crate) fn ffi_boundary(function: &str, body: impl FnOnce() -> Result<()>) -> pyb_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PYB_OK,
        Ok(Err(failure)) => fail(function, failure),
        Err(payload) => fail(function, Error::from_panic(payload)),
    }
}

#[cold]
#[inline(never)]
fn fail(function: &str, failure: Error) -> pyb_status {
    record(function, &failure);
    failure.status
}

/// Checks an output pointer: the value is written only when the call succeeds.
#[inline(always)]
pub(crate) fn out_ptr<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T> {
    // SAFETY: non-NULL output pointers are promised valid and exclusive by the caller.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::null_argument(name))
}

/// Checks an output pointer now, before any side effect, for a function that
/// writes it only at the end, after the inputs (which may point at the same
/// memory) are read.
pub(crate) fn check_out<T>(out: *mut T, name: &str) -> Result<()> {
    if out.is_null() {
        Err(Error::null_argument(name))
    } else {
        Ok(())
    }
}

/// Reads a NUL-terminated UTF-8 argument, kept as a C string.
pub(crate) fn utf8_c_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a CStr> {
    if ptr.is_null() {
        return Err(Error::null_argument(name));
    }
    // SAFETY: non-NULL string arguments are promised NUL-terminated by the caller.
    let text = unsafe { CStr::from_ptr(ptr) };
    std::str::from_utf8(text.to_bytes()).map_err(|err| {
        Error::invalid_argument(format!(
            "argument `{name}` is not valid UTF-8 (bad byte at offset {}); pass UTF-8 text",
            err.valid_up_to()
        ))
    })?;
    Ok(text)
}

/// Reads a NUL-terminated UTF-8 argument.
pub(crate) fn utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    let text = utf8_c_arg(ptr, name)?;
    // SAFETY: `utf8_c_arg` checked that the bytes are UTF-8.
    Ok(unsafe { std::str::from_utf8_unchecked(text.to_bytes()) })
}

/// Like `utf8_arg`, but NULL means "not given".
pub(crate) fn optional_utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        utf8_arg(ptr, name).map(Some)
    }
}

/// Like `utf8_c_arg`, but NULL means "not given".
pub(crate) fn optional_utf8_c_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a CStr>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        utf8_c_arg(ptr, name).map(Some)
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
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Error::invalid_argument(format!(
            "`{name}` length {len} is impossibly large; is it uninitialized or negative?"
        )));
    }
    // SAFETY: the host promises `len` readable items at `items`.
    Ok(unsafe { std::slice::from_raw_parts(items, len) })
}

/// A struct a host may have built against an older, shorter version: it
/// starts with `struct_size`, and only that many bytes are ours to write.
pub(crate) trait Versioned: Copy {
    fn set_size(&mut self, size: usize);
}

/// The `struct_size` the caller set at `out`, checked to cover the field itself.
///
/// # Safety
/// `out` is non-NULL and points at a struct that starts with a `size_t`.
pub(crate) unsafe fn caller_size<T>(out: *const T, name: &str) -> Result<usize> {
    // SAFETY: per the contract; read as a `usize` whatever the struct's version.
    let size = unsafe { *out.cast::<usize>() };
    if size < std::mem::size_of::<usize>() {
        return Err(Error::invalid_argument(format!(
            "{name}.struct_size is {size}; set it to sizeof({name}) = {}",
            std::mem::size_of::<T>()
        )));
    }
    Ok(size)
}

/// Writes the first `size` bytes of `value` (with `struct_size = size`) to `out`.
///
/// # Safety
/// `out` has `size` writable bytes.
pub(crate) unsafe fn write_versioned<T: Versioned>(out: *mut u8, size: usize, mut value: T) {
    value.set_size(size);
    // SAFETY: the caller promises `size` writable bytes at `out`; no more than
    // our own struct's are copied.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&value as *const T).cast::<u8>(),
            out,
            size.min(std::mem::size_of::<T>()),
        )
    };
}
