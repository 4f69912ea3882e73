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
    unsafe { crate::boundary::copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}

/// The text behind `pyb_python_info`.
pub fn python_info() -> String {
    // SAFETY: Py_GetVersion returns a static string and is safe at any time.
    let version = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    let version = version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
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
        libpython_path(),
        env!("PYB_BUILD_PYTHON_EXECUTABLE"),
    )
}

/// Makes libpython's symbols global. A host that loads pybridge with
/// `dlopen(RTLD_LOCAL)` (CoreCLR does; so does Python's ctypes by default) gets
/// libpython only as pybridge's private dependency, and CPython's extension
/// modules (`math`, `_json`, ...) then fail to import with "undefined symbol:
/// PyFloat_Type". `RTLD_NOLOAD` re-opens the copy already mapped, never a second one.
pub(crate) fn promote_libpython_to_global() {
    let path = libpython_path();
    let Ok(path) = std::ffi::CString::new(path) else {
        return;
    };
    // SAFETY: dlopen with RTLD_NOLOAD only changes the flags of a loaded library;
    // the handle is kept on purpose (libpython stays loaded for the process).
    let handle = unsafe {
        libc::dlopen(
            path.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_GLOBAL,
        )
    };
    if handle.is_null() {
        log::warn!(
            "could not make {} global; extension modules may fail to import",
            path.to_string_lossy()
        );
    }
}

/// The file the dynamic loader actually mapped for libpython.
fn libpython_path() -> String {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads loader tables for a symbol address we link against.
    let found = unsafe { libc::dladdr(ffi::Py_GetVersion as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return "unknown".to_string();
    }
    // SAFETY: dladdr filled a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    std::fs::canonicalize(&*path)
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| path.into_owned())
}
