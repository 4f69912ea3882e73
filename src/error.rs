//! Errors: a status plus a message that says what happened and what to do,
//! kept per thread for `pyb_last_error_message` (libgit2's `git_error_last` model).

use std::cell::RefCell;
use std::ffi::c_char;

use crate::status::*;

/// A failed call: the status the host sees and the message it can read afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: pyb_status,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(status: pyb_status, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    pub fn null_argument(name: &str) -> Self {
        Error::new(
            PYB_E_NULL_ARGUMENT,
            format!("argument `{name}` is NULL; pass a valid pointer"),
        )
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(PYB_E_INVALID_ARGUMENT, message)
    }

    pub fn not_initialized() -> Self {
        Error::new(
            PYB_E_NOT_INITIALIZED,
            "the pybridge engine is not running; call pyb_engine_initialize first",
        )
    }

    pub fn shutting_down() -> Self {
        Error::new(
            PYB_E_SHUTTING_DOWN,
            "the pybridge engine is shutting down and accepts no new GIL requests; \
             wait for pyb_engine_shutdown to return (it restores the engine if it times out)",
        )
    }
}

thread_local! {
    // Written only on failure, so successful calls never touch this slot.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
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
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// The calling thread's last error message, for Rust-side users and tests.
pub fn last_error_message() -> String {
    LAST_ERROR
        .try_with(|slot| slot.borrow().clone())
        .unwrap_or_default()
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
    unsafe { crate::boundary::copy_to_c_buffer(message.as_bytes(), buf, buf_len) }
}
