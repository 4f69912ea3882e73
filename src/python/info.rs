//! What the running interpreter says about itself.

use std::ffi::CStr;

use pyo3::{Python, ffi};

/// `sys.prefix`, if the interpreter has one that is text.
pub(crate) fn sys_prefix(_py: Python<'_>) -> Option<String> {
    // SAFETY: GIL held (the token); sys.prefix is a borrowed str (raw C API:
    // pyo3's error and name caches outlive an interpreter).
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
}
