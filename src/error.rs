//! Errors: a status plus a message that says what happened and what to do,
//! kept per thread for `pyb_last_error_message` (libgit2's `git_error_last` model).

use std::cell::RefCell;
use std::ffi::c_char;

use pyo3::ffi;

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
pub(crate) fn python_error(_py: pyo3::Python<'_>) -> Error {
    // SAFETY: the caller holds the GIL.
    let Some(exception) = (unsafe { fetch_exception() }) else {
        return Error::new(
            PYB_E_PYTHON,
            "a Python call failed without setting an exception",
        );
    };
    // SAFETY: as above; `exception` owns its references.
    let detail = unsafe { describe_exception(&exception) };
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

/// A fetched exception: type, normalized value and traceback (may be NULL), owned.
struct Fetched {
    kind: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    traceback: *mut ffi::PyObject,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: the GIL is held while a `Fetched` lives; these are our references.
        unsafe {
            ffi::Py_XDECREF(self.kind);
            ffi::Py_XDECREF(self.value);
            ffi::Py_XDECREF(self.traceback);
        }
    }
}

/// Takes the pending exception off the thread state. GIL held.
unsafe fn fetch_exception() -> Option<Fetched> {
    // SAFETY: the caller holds the GIL.
    unsafe {
        #[cfg(Py_3_12)]
        {
            let value = ffi::PyErr_GetRaisedException();
            if value.is_null() {
                return None;
            }
            let kind = ffi::Py_TYPE(value).cast::<ffi::PyObject>();
            ffi::Py_IncRef(kind);
            let traceback = ffi::PyException_GetTraceback(value);
            Some(Fetched {
                kind,
                value,
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
                kind,
                value,
                traceback,
            })
        }
    }
}

/// The text of a new reference to a str (consumed), or `None` (error cleared). GIL held.
unsafe fn take_text(object: *mut ffi::PyObject) -> Option<String> {
    // SAFETY: the caller holds the GIL; `object` is ours or NULL.
    unsafe {
        if object.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let mut len = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(object, &mut len);
        let text = if data.is_null() {
            ffi::PyErr_Clear();
            None
        } else {
            let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
            Some(String::from_utf8_lossy(bytes).into_owned())
        };
        ffi::Py_DecRef(object);
        text
    }
}

unsafe fn describe_exception(exception: &Fetched) -> PythonError {
    // SAFETY: the caller holds the GIL; every new reference is consumed.
    unsafe {
        let attribute = |name: &std::ffi::CStr| {
            take_text(ffi::PyObject_GetAttrString(exception.kind, name.as_ptr()))
        };
        let qualname =
            attribute(c"__qualname__").unwrap_or_else(|| "<unknown exception type>".to_string());
        let type_name = match attribute(c"__module__") {
            Some(module) if module != "builtins" => format!("{module}.{qualname}"),
            _ => qualname,
        };
        let message = if exception.value.is_null() {
            String::new()
        } else {
            take_text(ffi::PyObject_Str(exception.value))
                .unwrap_or_else(|| "<str() of the exception failed>".to_string())
        };
        let traceback =
            format_exception(exception).unwrap_or_else(|| format!("{type_name}: {message}"));
        PythonError {
            type_name,
            message,
            traceback,
        }
    }
}

/// `"".join(traceback.format_exception(type, value, tb))`, trimmed. GIL held.
unsafe fn format_exception(exception: &Fetched) -> Option<String> {
    // SAFETY: the caller holds the GIL; every new reference is released.
    unsafe {
        let module = ffi::PyImport_ImportModule(c"traceback".as_ptr());
        if module.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let none = ffi::Py_None();
        let or_none = |object: *mut ffi::PyObject| if object.is_null() { none } else { object };
        let lines = ffi::PyObject_CallMethod(
            module,
            c"format_exception".as_ptr(),
            c"(OOO)".as_ptr(),
            exception.kind,
            or_none(exception.value),
            or_none(exception.traceback),
        );
        ffi::Py_DecRef(module);
        if lines.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let empty = ffi::PyUnicode_FromStringAndSize(std::ptr::null(), 0);
        let joined = if empty.is_null() {
            std::ptr::null_mut()
        } else {
            ffi::PyUnicode_Join(empty, lines)
        };
        ffi::Py_XDECREF(empty);
        ffi::Py_DecRef(lines);
        take_text(joined).map(|text| text.trim_end().to_string())
    }
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
