//! Errors: a status plus a message that says what happened and what to do,
//! kept per thread for `pyb_last_error_message` (libgit2's `git_error_last` model).

use std::cell::RefCell;
use std::ffi::c_char;

use crate::status::*;

/// A failed call: the status the host sees and the message it can read afterwards.
///
/// Boxed so that `Result<T>` stays two words: every exported function returns
/// through it on the GIL and call paths, and a 40-byte error made each of
/// those results a memory copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<ErrorDetail>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    pub status: pyb_status,
    pub message: String,
    /// Set for `PYB_E_PYTHON` errors that came from a Python exception.
    pub python: Option<Box<PythonError>>,
}

/// The parts of a Python exception, kept apart for `pyb_last_error_python_*`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PythonError {
    /// `ZeroDivisionError` for builtins, else `module.QualifiedName`.
    pub type_name: String,
    /// `str(exception)`.
    pub message: String,
    /// What Python would print for it (`traceback.format_exception`): the
    /// traceback, chained exceptions, and the final `Type: message` line.
    pub traceback: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl std::ops::Deref for Error {
    type Target = ErrorDetail;

    fn deref(&self) -> &ErrorDetail {
        &self.0
    }
}

impl std::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut ErrorDetail {
        &mut self.0
    }
}

impl Error {
    pub fn new(status: pyb_status, message: impl Into<String>) -> Self {
        Error(Box::new(ErrorDetail {
            status,
            message: message.into(),
            python: None,
        }))
    }

    /// A `PYB_E_PYTHON` error whose message is `Type: message` plus the traceback.
    pub(crate) fn python(detail: PythonError) -> Self {
        let mut message = format!("{}: {}", detail.type_name, detail.message);
        if !detail.traceback.is_empty() {
            message.push('\n');
            message.push_str(&detail.traceback);
        }
        Error(Box::new(ErrorDetail {
            status: PYB_E_PYTHON,
            message,
            python: Some(Box::new(detail)),
        }))
    }

    /// The message, taken out of the error.
    pub fn into_message(self) -> String {
        self.0.message
    }

    /// Prefixes the message with what it is about, for example `args[2]`.
    #[cold]
    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
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

    pub fn forked() -> Self {
        Error::new(
            PYB_E_FORKED,
            "this process is a fork() child of a process whose pybridge engine was running: \
             the engine thread and every other thread are gone here, so this copy of the engine \
             is closed for good (only GIL scopes the forking thread had open still work). Run \
             Python in a child with exec (subprocess, multiprocessing's spawn or forkserver), \
             or fork before pyb_engine_initialize / after pyb_engine_shutdown",
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

/// The calling thread's last error message, for Rust-side users and tests.
pub fn last_error_message() -> String {
    LAST_ERROR
        .try_with(|slot| slot.borrow().text.clone())
        .unwrap_or_default()
}

/// The Python exception behind the calling thread's last error, if it was one.
pub fn last_python_error() -> Option<PythonError> {
    LAST_ERROR
        .try_with(|slot| slot.borrow().python.as_deref().cloned())
        .ok()
        .flatten()
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
    unsafe { crate::c_buffer::copy_to_c_buffer(message.as_bytes(), buf, buf_len) }
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

/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes.
unsafe fn copy_python_part(text: Option<String>, buf: *mut c_char, buf_len: usize) -> usize {
    let text = text.unwrap_or_default();
    // SAFETY: forwarded from the caller.
    unsafe { crate::c_buffer::copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}
