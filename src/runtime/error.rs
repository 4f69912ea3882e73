//! Errors: a status plus a message that says what happened and what to do.
//! The C API keeps the last one per thread (`capi/error.rs`).

use crate::abi::status::*;

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
    /// The names of the exception's type and its bases in method resolution
    /// order, `object` left out: `KeyError`, `LookupError`, `Exception`,
    /// `BaseException`. A host tests for a subclass with it.
    pub types: Vec<String>,
    /// The exception object itself, while the engine that raised it runs.
    pub exception: Option<ExceptionObject>,
    /// `str(exception)`.
    pub message: String,
    /// What Python would print for it (`traceback.format_exception`): the
    /// traceback, chained exceptions, and the final `Type: message` line.
    pub traceback: String,
}

pub type Result<T> = std::result::Result<T, Error>;

/// An object handle an error owns (the exception object): shared by the
/// error's copies, released (queued, never blocking) when the last one goes.
#[derive(Clone)]
pub struct ExceptionObject(std::sync::Arc<HeldHandle>);

struct HeldHandle {
    handle: u64,
    release: fn(u64),
}

impl Drop for HeldHandle {
    fn drop(&mut self) {
        (self.release)(self.handle);
    }
}

impl ExceptionObject {
    /// Owns `handle`; `release` gives it back.
    pub(crate) fn new(handle: u64, release: fn(u64)) -> Self {
        ExceptionObject(std::sync::Arc::new(HeldHandle { handle, release }))
    }

    /// The handle, still owned by the error.
    pub fn handle(&self) -> u64 {
        self.0.handle
    }
}

impl std::fmt::Debug for ExceptionObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExceptionObject({:#x})", self.0.handle)
    }
}

impl PartialEq for ExceptionObject {
    fn eq(&self, other: &Self) -> bool {
        self.0.handle == other.0.handle
    }
}

impl Eq for ExceptionObject {}

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
    /// The error a caught panic becomes: `PYB_E_PANIC`, with what it said.
    #[cold]
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let what = payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        log::error!("pybridge caught a panic: {what}");
        Error::new(
            PYB_E_PANIC,
            format!("internal error in pybridge (please report it): {what}"),
        )
    }

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
