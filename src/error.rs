//! Errors: a status plus a message that says what happened and what to do,
//! kept per thread for `pyb_last_error_message` (libgit2's `git_error_last` model).

use std::cell::RefCell;
use std::ffi::c_char;

use pyo3::ffi;

use crate::owned::Owned;

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

/// Takes the current Python exception off the interpreter and turns it into a
/// `PYB_E_PYTHON` error whose message is `Type: message` plus the traceback.
/// The GIL must be held. Formatting runs Python code; if that fails too, the
/// error keeps what it could read.
///
/// Raw C API only: pyo3's `PyErr` defers decrefs into a process-wide pool when
/// it does not know the GIL is held, and its interned names are cached in
/// statics; both outlive an interpreter, and a later engine then frees dead
/// objects (double free measured on 3.12.1).
#[cold]
#[inline(never)]
pub(crate) fn python_error(py: pyo3::Python<'_>) -> Error {
    let Some(exception) = fetch_exception(py) else {
        return Error::new(
            PYB_E_PYTHON,
            "a Python call failed without setting an exception",
        );
    };
    let detail = describe_exception(py, &exception);
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

/// A fetched exception: type, normalized value and traceback.
struct Fetched<'py> {
    kind: Owned<'py>,
    value: Option<Owned<'py>>,
    traceback: Option<Owned<'py>>,
}

/// Takes the pending exception off the thread state.
fn fetch_exception(py: pyo3::Python<'_>) -> Option<Fetched<'_>> {
    // SAFETY: GIL held (the token); each call hands us new references.
    unsafe {
        #[cfg(Py_3_12)]
        {
            let value = Owned::from_raw(py, ffi::PyErr_GetRaisedException())?;
            let kind = Owned::from_borrowed(py, ffi::Py_TYPE(value.as_ptr()).cast());
            let traceback = Owned::from_raw(py, ffi::PyException_GetTraceback(value.as_ptr()));
            Some(Fetched {
                kind,
                value: Some(value),
                traceback,
            })
        }
        #[cfg(not(Py_3_12))]
        {
            let mut kind = std::ptr::null_mut();
            let mut value = std::ptr::null_mut();
            let mut traceback = std::ptr::null_mut();
            ffi::PyErr_Fetch(&mut kind, &mut value, &mut traceback);
            if kind.is_null() {
                return None;
            }
            // Exceptions raised from C arrive unnormalized, without `__traceback__` (3.11).
            ffi::PyErr_NormalizeException(&mut kind, &mut value, &mut traceback);
            if !traceback.is_null() && !value.is_null() {
                ffi::PyException_SetTraceback(value, traceback);
            }
            Some(Fetched {
                kind: Owned::from_raw(py, kind)?,
                value: Owned::from_raw(py, value),
                traceback: Owned::from_raw(py, traceback),
            })
        }
    }
}

/// The text of a str a call returned, or `None` (its error cleared).
fn take_text(py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Option<String> {
    let object = owned_or_cleared(py, object)?;
    let mut len = 0;
    // SAFETY: as above; the UTF-8 buffer lives as long as `object`.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(object.as_ptr(), &mut len);
        if data.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

fn describe_exception(py: pyo3::Python<'_>, exception: &Fetched<'_>) -> PythonError {
    let attribute = |name: &std::ffi::CStr| {
        // SAFETY: GIL held; the type is live.
        take_text(py, unsafe {
            ffi::PyObject_GetAttrString(exception.kind.as_ptr(), name.as_ptr())
        })
    };
    let qualname =
        attribute(c"__qualname__").unwrap_or_else(|| "<unknown exception type>".to_string());
    let type_name = match attribute(c"__module__") {
        Some(module) if module != "builtins" => format!("{module}.{qualname}"),
        _ => qualname,
    };
    let message = match &exception.value {
        None => String::new(),
        // SAFETY: GIL held; the value is live.
        Some(value) => take_text(py, unsafe { ffi::PyObject_Str(value.as_ptr()) })
            .unwrap_or_else(|| "<str() of the exception failed>".to_string()),
    };
    let traceback =
        format_exception(py, exception).unwrap_or_else(|| format!("{type_name}: {message}"));
    PythonError {
        type_name,
        message,
        traceback,
    }
}

/// `"".join(traceback.format_exception(type, value, tb))`, trimmed.
fn format_exception(py: pyo3::Python<'_>, exception: &Fetched<'_>) -> Option<String> {
    // SAFETY: GIL held (the token); every reference is owned by an `Owned`.
    unsafe {
        let module = owned_or_cleared(py, ffi::PyImport_ImportModule(c"traceback".as_ptr()))?;
        let none = ffi::Py_None();
        let or_none = |object: &Option<Owned<'_>>| match object {
            Some(object) => object.as_ptr(),
            None => none,
        };
        let lines = owned_or_cleared(
            py,
            ffi::PyObject_CallMethod(
                module.as_ptr(),
                c"format_exception".as_ptr(),
                c"(OOO)".as_ptr(),
                exception.kind.as_ptr(),
                or_none(&exception.value),
                or_none(&exception.traceback),
            ),
        )?;
        let empty = owned_or_cleared(py, ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0))?;
        take_text(py, ffi::PyUnicode_Join(empty.as_ptr(), lines.as_ptr()))
            .map(|text| text.trim_end().to_string())
    }
}

/// Takes a new reference, or clears the error a NULL left. Error formatting
/// cannot use `Owned::new`: its error path would format again.
fn owned_or_cleared(py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Option<Owned<'_>> {
    // SAFETY: GIL held (the token); `object` is a new reference or NULL.
    let owned = unsafe { Owned::from_raw(py, object) };
    if owned.is_none() {
        // SAFETY: as above.
        unsafe { ffi::PyErr_Clear() };
    }
    owned
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
    unsafe { crate::boundary::copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}
