//! The calling thread's last error (libgit2's `git_error_last` model):
//! recorded by the C boundary on every failure, read by `pyb_last_error_*`.

use std::cell::RefCell;
use std::ffi::c_char;

use crate::abi::c_buffer::copy_to_c_buffer;
use crate::abi::status::status_name;
use crate::runtime::error::{Error, PythonError};

#[derive(Default)]
struct LastError {
    text: String,
    python: Option<Box<PythonError>>,
}

thread_local! {
    // Written only on failure, so successful calls never touch this slot.
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError::default());
}

/// Records `error` as the calling thread's last error. Quietly does nothing while
/// the thread's locals are being torn down.
pub(crate) fn record(function: &str, error: &Error) {
    let text = format!(
        "{function}: {}: {}",
        status_name(error.status).to_string_lossy(),
        error.message
    );
    log::debug!("{text}");
    let python = error.python.clone();
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = LastError { text, python });
}

/// The calling thread's last error message (`pyb_last_error_message` copies it out).
// Public for Rust test code written against it before the tests here moved to
// the C getters; hidden from the docs and never a C symbol (no `no_mangle`).
#[doc(hidden)]
pub fn last_error_message() -> String {
    LAST_ERROR
        .try_with(|slot| slot.borrow().text.clone())
        .unwrap_or_default()
}

/// The Python exception behind the calling thread's last error, if it was one.
// Public for the same Rust test code as `last_error_message`.
#[doc(hidden)]
pub fn last_python_error() -> Option<PythonError> {
    LAST_ERROR
        .try_with(|slot| slot.borrow().python.as_deref().cloned())
        .ok()
        .flatten()
}

/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes.
unsafe fn copy_python_part(text: Option<String>, buf: *mut c_char, buf_len: usize) -> usize {
    let text = text.unwrap_or_default();
    // SAFETY: forwarded from the caller.
    unsafe { copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}

/// Copies the calling thread's last error message into `buf` and returns its full
/// length in bytes (without the NUL).
///
/// The message belongs to the last call on this thread that failed; successful
/// calls leave it unchanged, so read it right after the failing call, on the same
/// thread (in C#, before an `await` can move you to another thread). The copy is
/// NUL-terminated and truncated to `buf_len - 1` bytes; pass `buf = NULL` and
/// `buf_len = 0` to ask for the length. Returns 0 when this thread has no error.
/// Any thread; the GIL does not matter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_message(buf: *mut c_char, buf_len: usize) -> usize {
    let message = last_error_message();
    // SAFETY: the caller promises `buf` points to `buf_len` writable bytes.
    unsafe { copy_to_c_buffer(message.as_bytes(), buf, buf_len) }
}

/// Like `pyb_last_error_message`, for the Python exception type name of the
/// calling thread's last error (`ZeroDivisionError`, `json.decoder.JSONDecodeError`,
/// `pybridge.HostError`). Returns 0 when the last error was not a Python exception.
/// Any thread; the GIL does not matter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_type(buf: *mut c_char, buf_len: usize) -> usize {
    let text = last_python_error().map(|error| error.type_name);
    // SAFETY: the caller promises `buf` points to `buf_len` writable bytes.
    unsafe { copy_python_part(text, buf, buf_len) }
}

/// Like `pyb_last_error_message`, for `str(exception)` of the calling thread's
/// last Python error. Returns 0 when the last error was not a Python exception
/// (or its message is empty). Any thread; the GIL does not matter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_message(buf: *mut c_char, buf_len: usize) -> usize {
    let text = last_python_error().map(|error| error.message);
    // SAFETY: as above.
    unsafe { copy_python_part(text, buf, buf_len) }
}

/// Like `pyb_last_error_message`, for the names of the type of the calling
/// thread's last Python exception and of all its bases, in method resolution
/// order without `object`, one per line (`KeyError\nLookupError\nException\n
/// BaseException`): a host tests "is it a LookupError?" by looking for a line.
/// Names are written as `pyb_last_error_python_type` writes them. Returns 0
/// when the last error was not a Python exception. Any thread; the GIL does not matter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_types(buf: *mut c_char, buf_len: usize) -> usize {
    let text = last_python_error().map(|error| error.types.join("\n"));
    // SAFETY: as above.
    unsafe { copy_python_part(text, buf, buf_len) }
}

/// Like `pyb_last_error_message`, for the formatted traceback of the calling
/// thread's last Python error, exactly as Python would print it (including
/// chained exceptions and the final `Type: message` line). Returns 0 when the
/// last error was not a Python exception. Any thread; the GIL does not matter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_traceback(
    buf: *mut c_char,
    buf_len: usize,
) -> usize {
    let text = last_python_error().map(|error| error.traceback);
    // SAFETY: as above.
    unsafe { copy_python_part(text, buf, buf_len) }
}
