//! Status codes: the one return type of every fallible C function.
//!
//! Values are part of the ABI: they are stable and never reused. Add new ones
//! at the end with the next free negative number.

/// The result of every fallible pybridge call: `PYB_OK` (0) or a negative error.
/// After an error, `pyb_last_error_message` on the same thread says what happened
/// and what to do.
#[allow(non_camel_case_types)]
pub type pyb_status = i32;

/// Success.
pub const PYB_OK: pyb_status = 0;
/// The engine is not running: call `pyb_engine_initialize` first (or again after a shutdown).
pub const PYB_E_NOT_INITIALIZED: pyb_status = -1;
/// A shutdown is in progress: no new GIL requests are accepted until it finishes or times out.
pub const PYB_E_SHUTTING_DOWN: pyb_status = -2;
/// Reserved: no function returns it (every call that needs the GIL takes it
/// itself). The value stays so that it never means anything else.
pub const PYB_E_GIL_NOT_HELD: pyb_status = -3;
/// The token or handle belongs to another thread.
pub const PYB_E_WRONG_THREAD: pyb_status = -4;
/// The token was already released, is released out of LIFO order, or comes from an earlier engine.
pub const PYB_E_BAD_TOKEN: pyb_status = -5;
/// The call would wait for the calling thread itself (for example a shutdown while holding the GIL).
pub const PYB_E_WOULD_DEADLOCK: pyb_status = -6;
/// The deadline passed; the message names what was still blocking. Nothing was changed.
pub const PYB_E_TIMEOUT: pyb_status = -7;
/// A required pointer argument was NULL.
pub const PYB_E_NULL_ARGUMENT: pyb_status = -8;
/// An argument has a value the function does not accept (unknown flag, bad UTF-8, ...).
pub const PYB_E_INVALID_ARGUMENT: pyb_status = -9;
/// Python raised an exception; the message holds its type, text and traceback.
pub const PYB_E_PYTHON: pyb_status = -10;
/// Python could not be initialized; the message holds CPython's reason.
pub const PYB_E_INIT_FAILED: pyb_status = -11;
/// A bug inside pybridge was caught at the boundary; the engine is still usable.
pub const PYB_E_PANIC: pyb_status = -12;
/// The object handle is not live: released, from a shut-down engine, or never issued.
pub const PYB_E_BAD_HANDLE: pyb_status = -13;
/// The value is not of the type the call needs (a non-str where a str was asked,
/// a list where an int was asked, a scope that is not a dict); the message names both types.
pub const PYB_E_WRONG_TYPE: pyb_status = -14;
/// The value has the right type but does not fit the target: an int outside
/// int64, a float-convertible int too large for a double, a str with no UTF-8
/// form (lone surrogates), a caller buffer too small for the result.
pub const PYB_E_OUT_OF_RANGE: pyb_status = -15;
/// The shutdown's deadline passed after it reached its point of no return
/// (finalization has begun, or `PYB_SHUTDOWN_INTERRUPT` delivered its
/// interrupts): it cannot be called off, it goes on in the background, and the
/// engine accepts no new work. The message names what it still waits for; call
/// `pyb_engine_shutdown` again to wait for the end. A message that starts
/// "shutdown abandoned:" means there is no end to wait for: a sub-interpreter
/// was still alive at the deadline, so Python was left initialized for the rest
/// of the process (finalizing it then aborts the process) and no engine can
/// start again.
pub const PYB_E_SHUTDOWN_COMMITTED: pyb_status = -16;
/// A size the caller passed asks for more memory than can be allocated;
/// nothing was changed and the engine stays usable.
pub const PYB_E_OUT_OF_MEMORY: pyb_status = -17;
/// The process is a `fork()` child of the process that started the engine:
/// pybridge cannot run here (the engine thread did not survive the fork).
pub const PYB_E_FORKED: pyb_status = -18;
/// The Python named by `pyb_config.python` or `PYBRIDGE_PYTHON` (or found by
/// default) cannot be used: the path does not exist, is not CPython, has no
/// shared libpython, is a free-threaded or debug build, or is a version this
/// pybridge has no core for (one newer than its newest core, say). The message
/// names the path, what was found and what this pybridge supports (its
/// CPython versions, GIL-enabled release builds only); nothing started.
pub const PYB_E_PYTHON_UNUSABLE: pyb_status = -19;
/// The object handle belongs to another interpreter than the one the calling
/// thread is in: use it inside the interpreter that made it, or pass a plain
/// value (`pyb_value`), which is copied.
pub const PYB_E_WRONG_INTERPRETER: pyb_status = -20;
/// This Python cannot do what was asked (an interpreter with its own GIL
/// before CPython 3.12, say); the message names the version and what works.
pub const PYB_E_UNSUPPORTED: pyb_status = -21;
/// The awaited task was cancelled (`pyb_task_cancel`, or Python code
/// cancelled it) before it finished.
pub const PYB_E_CANCELLED: pyb_status = -22;

/// Every status with its name, in ABI order.
const NAMES: &[(pyb_status, &std::ffi::CStr)] = &[
    (PYB_OK, c"PYB_OK"),
    (PYB_E_NOT_INITIALIZED, c"PYB_E_NOT_INITIALIZED"),
    (PYB_E_SHUTTING_DOWN, c"PYB_E_SHUTTING_DOWN"),
    (PYB_E_GIL_NOT_HELD, c"PYB_E_GIL_NOT_HELD"),
    (PYB_E_WRONG_THREAD, c"PYB_E_WRONG_THREAD"),
    (PYB_E_BAD_TOKEN, c"PYB_E_BAD_TOKEN"),
    (PYB_E_WOULD_DEADLOCK, c"PYB_E_WOULD_DEADLOCK"),
    (PYB_E_TIMEOUT, c"PYB_E_TIMEOUT"),
    (PYB_E_NULL_ARGUMENT, c"PYB_E_NULL_ARGUMENT"),
    (PYB_E_INVALID_ARGUMENT, c"PYB_E_INVALID_ARGUMENT"),
    (PYB_E_PYTHON, c"PYB_E_PYTHON"),
    (PYB_E_INIT_FAILED, c"PYB_E_INIT_FAILED"),
    (PYB_E_PANIC, c"PYB_E_PANIC"),
    (PYB_E_BAD_HANDLE, c"PYB_E_BAD_HANDLE"),
    (PYB_E_WRONG_TYPE, c"PYB_E_WRONG_TYPE"),
    (PYB_E_OUT_OF_RANGE, c"PYB_E_OUT_OF_RANGE"),
    (PYB_E_SHUTDOWN_COMMITTED, c"PYB_E_SHUTDOWN_COMMITTED"),
    (PYB_E_OUT_OF_MEMORY, c"PYB_E_OUT_OF_MEMORY"),
    (PYB_E_FORKED, c"PYB_E_FORKED"),
    (PYB_E_PYTHON_UNUSABLE, c"PYB_E_PYTHON_UNUSABLE"),
    (PYB_E_WRONG_INTERPRETER, c"PYB_E_WRONG_INTERPRETER"),
    (PYB_E_UNSUPPORTED, c"PYB_E_UNSUPPORTED"),
    (PYB_E_CANCELLED, c"PYB_E_CANCELLED"),
];

/// Rust-side view of `pyb_status_name`.
pub fn status_name(status: pyb_status) -> &'static std::ffi::CStr {
    NAMES
        .iter()
        .find(|(value, _)| *value == status)
        .map_or(c"PYB_E_UNKNOWN", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_distinct_and_dense() {
        for (index, (value, name)) in NAMES.iter().enumerate() {
            assert_eq!(*value, -(index as i32), "{name:?} out of order");
        }
    }
}
