//! Which pybridge and which Python this process runs.

use std::ffi::{CStr, c_char};

use pyo3::ffi;

use crate::gil::GilScope;

/// pybridge's version, e.g. `"0.1.0"`. Static string; any thread.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Writes a description of the Python in use to `buf` (as for
/// `pyb_last_error_message`: NUL-terminated, truncated to fit) and returns its
/// full length. Lines of `key: value`: `version` (the running libpython's),
/// `build_version` (the one pybridge was built against), `library` (the path of
/// the loaded libpython), `prefix` (`sys.prefix`, when the engine runs),
/// `executable`. Any thread; takes the GIL briefly when the engine runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_python_info(buf: *mut c_char, buf_len: usize) -> usize {
    let text = std::panic::catch_unwind(python_info).unwrap_or_default();
    // SAFETY: the caller promises `buf` holds `buf_len` bytes.
    unsafe { crate::c_buffer::copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}

/// The text behind `pyb_python_info`.
pub fn python_info() -> String {
    let version = crate::loader::running_version();
    let prefix = GilScope::acquire()
        .ok()
        .and_then(|_scope| {
            // SAFETY: the scope holds the GIL; sys.prefix is a borrowed str (raw C
            // API: pyo3's error and name caches outlive an interpreter).
            unsafe {
                let prefix = ffi::PySys_GetObject(c"prefix".as_ptr());
                let utf8 = if prefix.is_null() {
                    std::ptr::null()
                } else {
                    ffi::PyUnicode_AsUTF8(prefix)
                };
                if utf8.is_null() {
                    ffi::PyErr_Clear();
                    return None;
                }
                Some(CStr::from_ptr(utf8).to_string_lossy().into_owned())
            }
        })
        .unwrap_or_else(|| "(engine not running)".to_string());
    format!(
        "version: {version}\nbuild_version: {}\nlibrary: {}\nprefix: {prefix}\nexecutable: {}\n",
        env!("PYB_BUILD_PYTHON_VERSION"),
        crate::loader::libpython_path(),
        env!("PYB_BUILD_PYTHON_EXECUTABLE"),
    )
}
