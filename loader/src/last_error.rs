//! The loader's own errors: those of calls made before a core is loaded (and
//! of loading one). Once a core is loaded every call goes to it and records
//! its errors there; `pyb_last_error_*` ask the core first and fall back to
//! this store, which then holds the thread's last failure from before.

use std::cell::RefCell;
use std::ffi::c_char;

use pybridge_abi::c_buffer::copy_to_c_buffer;
use pybridge_abi::status::{PYB_E_NOT_INITIALIZED, pyb_status, status_name};

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records a failure of `function` on this thread and returns its status.
#[cold]
pub(crate) fn fail(function: &str, status: pyb_status, message: &str) -> pyb_status {
    let text = format!(
        "{function}: {}: {message}",
        status_name(status).to_string_lossy()
    );
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
    status
}

/// The status of a call that needs an engine before any was started.
#[cold]
pub(crate) fn not_loaded(function: &str) -> pyb_status {
    fail(
        function,
        PYB_E_NOT_INITIALIZED,
        "no engine has started in this process (no Python is loaded yet); call \
         pyb_engine_initialize first",
    )
}

/// Copies this thread's loader error as `pyb_last_error_message` does.
pub(crate) fn copy_message(buf: *mut c_char, buf_len: usize) -> usize {
    LAST_ERROR
        // SAFETY: the host's buffer, as it passed it.
        .try_with(|slot| unsafe { copy_to_c_buffer(slot.borrow().as_bytes(), buf, buf_len) })
        .unwrap_or(0)
}
