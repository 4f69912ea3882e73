//! The C boundary: no panic crosses it, every error is recorded for
//! `pyb_last_error_message`, and pointer arguments are checked before use.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{self, Error, Result};
use crate::status::*;

/// Runs the body of an exported function: `Ok` becomes `PYB_OK`, an `Error`
/// becomes its status (and the thread's last error), a panic becomes `PYB_E_PANIC`.
#[inline(always)]
pub(crate) fn ffi_boundary(function: &str, body: impl FnOnce() -> Result<()>) -> pyb_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PYB_OK,
        Ok(Err(failure)) => fail(function, failure),
        Err(payload) => fail(function, panic_error(payload)),
    }
}

#[cold]
#[inline(never)]
fn fail(function: &str, failure: Error) -> pyb_status {
    error::record(function, &failure);
    failure.status
}

#[cold]
pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    log::error!("pybridge caught a panic at the C boundary: {what}");
    Error::new(
        PYB_E_PANIC,
        format!("internal error in pybridge (please report it): {what}"),
    )
}

/// Checks an output pointer: the value is written only when the call succeeds.
#[inline(always)]
pub(crate) fn out_ptr<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T> {
    // SAFETY: non-NULL output pointers are promised valid and exclusive by the caller.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::null_argument(name))
}

/// Reads a NUL-terminated UTF-8 argument.
pub(crate) fn utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::null_argument(name));
    }
    // SAFETY: non-NULL string arguments are promised NUL-terminated by the caller.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|err| {
        Error::invalid_argument(format!(
            "argument `{name}` is not valid UTF-8 (bad byte at offset {}); pass UTF-8 text",
            err.valid_up_to()
        ))
    })
}

/// Like `utf8_arg`, but NULL means "not given".
pub(crate) fn optional_utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        utf8_arg(ptr, name).map(Some)
    }
}

/// Makes room for `count` more items in `vec`, where `count` comes from the
/// host: a count no allocator can satisfy (a 2^40 length with a short array)
/// is `PYB_E_OUT_OF_MEMORY`, not the process-ending abort of `Vec::with_capacity`.
/// Call it before reading the host's array, so a wrong count is caught first.
pub(crate) fn reserve_for_host_count<T>(vec: &mut Vec<T>, count: usize, name: &str) -> Result<()> {
    vec.try_reserve_exact(count).map_err(|_| {
        Error::new(
            PYB_E_OUT_OF_MEMORY,
            format!(
                "`{name}` asks for {count} items ({} bytes), which cannot be allocated; \
                 is the count right? Nothing was changed",
                count.saturating_mul(std::mem::size_of::<T>())
            ),
        )
    })
}
