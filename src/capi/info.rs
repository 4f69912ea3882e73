//! Which pybridge and which Python this process runs.

use std::ffi::c_char;

use crate::abi::c_buffer::copy_to_c_buffer;
use crate::python::gil::GilScope;
use crate::python::info::sys_prefix;
use crate::runtime::config::chosen_python;
use crate::sys::loader;

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
/// `chosen` (the Python the last `pyb_engine_initialize` chose, and how: by
/// `pyb_config.python`, by `PYBRIDGE_PYTHON`, or by default). The packaged
/// library puts a `loader_chose` line first (the Python, how, and the core it
/// loaded) or, before any engine, `cores` (the CPython versions it supports).
/// Any thread; takes the GIL briefly when the engine runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_python_info(buf: *mut c_char, buf_len: usize) -> usize {
    let text = std::panic::catch_unwind(python_info).unwrap_or_default();
    // SAFETY: the caller promises `buf` holds `buf_len` bytes.
    unsafe { copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}

/// The text behind `pyb_python_info`.
fn python_info() -> String {
    let version = loader::running_version();
    let prefix = GilScope::acquire()
        .ok()
        .and_then(|scope| sys_prefix(scope.python()))
        .unwrap_or_else(|| "(engine not running)".to_string());
    format!(
        "version: {version}\nbuild_version: {}\nlibrary: {}\nprefix: {prefix}\nchosen: {}\n",
        env!("PYB_BUILD_PYTHON_VERSION"),
        loader::libpython_path(),
        chosen_python().unwrap_or_else(|| "(no engine started yet)".to_string()),
    )
}
