//! The exports that do more than forward: initialize (which loads the core),
//! and the functions whose answer before a core is loaded is not
//! `PYB_E_NOT_INITIALIZED` (the core's own answer with no engine running).

use std::ffi::{c_char, c_void};

use pybridge_abi::c_buffer::copy_to_c_buffer;
use pybridge_abi::config::pyb_config;
use pybridge_abi::engine::PYB_STATE_UNINITIALIZED;
use pybridge_abi::stats::pyb_stats;
use pybridge_abi::status::*;

use crate::core::{self, functions};
use crate::last_error::{copy_message, fail};
use crate::pending_settings;

/// The token of an allow-threads region begun before any core was loaded: a
/// region without the GIL, whose end changes nothing. Below 2^18, so no core
/// ever issues it (see the core's `runtime/token.rs`).
const NO_OP_REGION: u64 = (1 << 2) | 2;

/// The `struct_size` of the first `pyb_config`, which ended before `python`.
const OLDEST_CONFIG_SIZE: usize = std::mem::offset_of!(pyb_config, python);

#[unsafe(no_mangle)]
pub extern "C" fn pyb_status_name(status: pyb_status) -> *const c_char {
    status_name(status).as_ptr()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_config_default(out: *mut pyb_config) -> pyb_status {
    if out.is_null() {
        return fail(
            "pyb_config_default",
            PYB_E_NULL_ARGUMENT,
            "argument `out` is NULL",
        );
    }
    // SAFETY: a non-NULL output is promised writable.
    unsafe { *out = pyb_config::default() };
    PYB_OK
}

/// Loads the core on the first call (choosing the Python), then forwards.
/// The core is given the chosen Python explicitly, so that both make the
/// same choice even when the host named none.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_engine_initialize(config: *const pyb_config) -> pyb_status {
    const FUNCTION: &str = "pyb_engine_initialize";
    // SAFETY: a non-NULL config is promised readable for `struct_size` bytes.
    let given = unsafe { config.as_ref() };
    if given.is_some_and(|given| given.struct_size < OLDEST_CONFIG_SIZE) {
        // The core explains a bad struct_size; nothing to choose from.
        return match functions() {
            Some(core) => unsafe { (core.pyb_engine_initialize)(config.cast_mut().cast()) },
            None => fail(
                FUNCTION,
                PYB_E_INVALID_ARGUMENT,
                &format!(
                    "pyb_config.struct_size is {} but this pybridge needs at least \
                     {OLDEST_CONFIG_SIZE}; fill the struct with pyb_config_default",
                    given.map_or(0, |given| given.struct_size)
                ),
            ),
        };
    }
    let mut full = pyb_config::default();
    if let Some(given) = given {
        // SAFETY: the host's `struct_size` bytes; at most ours are copied.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (given as *const pyb_config).cast::<u8>(),
                (&mut full as *mut pyb_config).cast::<u8>(),
                given.struct_size.min(std::mem::size_of::<pyb_config>()),
            )
        };
        full.struct_size = std::mem::size_of::<pyb_config>();
    }
    let named = if full.python.is_null() {
        None
    } else {
        // SAFETY: a non-NULL string is promised NUL-terminated.
        match unsafe { std::ffi::CStr::from_ptr(full.python) }.to_str() {
            Ok(text) => Some(text),
            Err(_) => {
                return fail(
                    FUNCTION,
                    PYB_E_INVALID_ARGUMENT,
                    "argument `pyb_config.python` is not valid UTF-8; pass UTF-8 text",
                );
            }
        }
    };
    let core = match core::load(named) {
        Ok(core) => core,
        Err(message) => return fail(FUNCTION, PYB_E_PYTHON_UNUSABLE, &message),
    };
    if full.python.is_null() {
        full.python = core.python.as_ptr();
    }
    // SAFETY: the core's function, with a complete config of its layout.
    unsafe {
        (core.functions.pyb_engine_initialize)((&full as *const pyb_config).cast_mut().cast())
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_engine_state() -> i32 {
    match functions() {
        // SAFETY: the core's function.
        Some(core) => unsafe { (core.pyb_engine_state)() },
        None => PYB_STATE_UNINITIALIZED,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_gil_held() -> i32 {
    match functions() {
        // SAFETY: the core's function.
        Some(core) => unsafe { (core.pyb_gil_held)() },
        None => 0,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_begin_allow_threads(out: *mut u64) -> pyb_status {
    if let Some(core) = functions() {
        // SAFETY: the core's function, the host's argument.
        return unsafe { (core.pyb_begin_allow_threads)(out.cast()) };
    }
    if out.is_null() {
        return fail(
            "pyb_begin_allow_threads",
            PYB_E_NULL_ARGUMENT,
            "argument `out` is NULL",
        );
    }
    // No core, so no GIL: a region whose end changes nothing, as the core gives.
    // SAFETY: a non-NULL output is promised writable.
    unsafe { *out = NO_OP_REGION };
    PYB_OK
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_end_allow_threads(token: u64) -> pyb_status {
    if token == NO_OP_REGION {
        return PYB_OK;
    }
    match functions() {
        // SAFETY: the core's function.
        Some(core) => unsafe { (core.pyb_end_allow_threads)(token) },
        None => fail(
            "pyb_end_allow_threads",
            PYB_E_BAD_TOKEN,
            &format!("token {token:#x} was never issued: no engine has run in this process"),
        ),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_object_release(object: u64) -> pyb_status {
    match functions() {
        // SAFETY: the core's function.
        Some(core) => unsafe { (core.pyb_object_release)(object) },
        None if object == 0 => PYB_OK,
        None => fail(
            "pyb_object_release",
            PYB_E_BAD_HANDLE,
            &format!(
                "object handle {object:#x} was never issued: no engine has run in this process"
            ),
        ),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_message(buf: *mut c_char, buf_len: usize) -> usize {
    if let Some(core) = functions() {
        // SAFETY: the core's function, the host's buffer.
        let len = unsafe { (core.pyb_last_error_message)(buf.cast(), buf_len) };
        if len > 0 {
            return len;
        }
    }
    copy_message(buf, buf_len)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_type(buf: *mut c_char, buf_len: usize) -> usize {
    match functions() {
        // SAFETY: the core's function, the host's buffer.
        Some(core) => unsafe { (core.pyb_last_error_python_type)(buf.cast(), buf_len) },
        // SAFETY: the host's buffer.
        None => unsafe { copy_to_c_buffer(b"", buf, buf_len) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_message(buf: *mut c_char, buf_len: usize) -> usize {
    match functions() {
        // SAFETY: the core's function, the host's buffer.
        Some(core) => unsafe { (core.pyb_last_error_python_message)(buf.cast(), buf_len) },
        // SAFETY: the host's buffer.
        None => unsafe { copy_to_c_buffer(b"", buf, buf_len) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_traceback(
    buf: *mut c_char,
    buf_len: usize,
) -> usize {
    match functions() {
        // SAFETY: the core's function, the host's buffer.
        Some(core) => unsafe { (core.pyb_last_error_python_traceback)(buf.cast(), buf_len) },
        // SAFETY: the host's buffer.
        None => unsafe { copy_to_c_buffer(b"", buf, buf_len) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_last_error_python_types(buf: *mut c_char, buf_len: usize) -> usize {
    match functions() {
        // SAFETY: the core's function, the host's buffer.
        Some(core) => unsafe { (core.pyb_last_error_python_types)(buf.cast(), buf_len) },
        // SAFETY: the host's buffer.
        None => unsafe { copy_to_c_buffer(b"", buf, buf_len) },
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The loader's lines (which Python, chosen how, which core), then the core's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_python_info(buf: *mut c_char, buf_len: usize) -> usize {
    let text = match core::loaded() {
        Some(loaded) => {
            // SAFETY: the core's function: first the length, then the text.
            let core_text = unsafe {
                let len = (loaded.functions.pyb_python_info)(std::ptr::null_mut(), 0);
                let mut bytes = vec![0u8; len + 1];
                (loaded.functions.pyb_python_info)(bytes.as_mut_ptr().cast(), bytes.len());
                bytes.truncate(len);
                String::from_utf8_lossy(&bytes).into_owned()
            };
            format!("loader_chose: {}\n{core_text}", loaded.chosen)
        }
        None => format!(
            "loader_chose: (nothing yet: pyb_engine_initialize chooses)\ncores: {}\n",
            core::available_versions().join(", ")
        ),
    };
    // SAFETY: the host's buffer.
    unsafe { copy_to_c_buffer(text.as_bytes(), buf, buf_len) }
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_set_log_callback(
    callback: *mut c_void,
    user_data: *mut c_void,
    max_level: i32,
) -> pyb_status {
    if let Some(core) = functions() {
        // SAFETY: the core's function, the host's arguments.
        return unsafe { (core.pyb_set_log_callback)(callback, user_data, max_level) };
    }
    if !(0..=5).contains(&max_level) {
        return fail(
            "pyb_set_log_callback",
            PYB_E_INVALID_ARGUMENT,
            &format!("max_level {max_level} is not a PYB_LOG_* level (0..=5)"),
        );
    }
    pending_settings::keep_log_callback(callback, user_data, max_level);
    PYB_OK
}

#[unsafe(no_mangle)]
pub extern "C" fn pyb_gil_stats_enable(enabled: bool) -> pyb_status {
    if let Some(core) = functions() {
        // SAFETY: the core's function, the host's argument.
        return unsafe { (core.pyb_gil_stats_enable)(enabled) };
    }
    pending_settings::keep_gil_stats_switch(enabled);
    PYB_OK
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_stats_get(out: *mut pyb_stats) -> pyb_status {
    if let Some(core) = functions() {
        // SAFETY: the core's function, the host's argument.
        return unsafe { (core.pyb_stats_get)(out.cast()) };
    }
    if out.is_null() {
        return fail(
            "pyb_stats_get",
            PYB_E_NULL_ARGUMENT,
            "argument `out` is NULL",
        );
    }
    // SAFETY: the host's struct starts with `struct_size`, whatever its version.
    let size = unsafe { (*out).struct_size };
    let own_size = std::mem::size_of::<pyb_stats>();
    if size < std::mem::size_of::<usize>() {
        return fail(
            "pyb_stats_get",
            PYB_E_INVALID_ARGUMENT,
            &format!("pyb_stats.struct_size is {size}; set it to sizeof(pyb_stats) = {own_size}"),
        );
    }
    // No engine has run: every counter is 0. Only `struct_size` bytes are the host's.
    let zeros = pyb_stats {
        struct_size: size,
        ..pyb_stats::default()
    };
    // SAFETY: the host promises `struct_size` writable bytes at `out`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&zeros as *const pyb_stats).cast::<u8>(),
            out.cast::<u8>(),
            size.min(own_size),
        )
    };
    PYB_OK
}
