//! Host functions: native callbacks that Python code calls as `module.name(...)`.

use std::ffi::{c_char, c_void};

use crate::abi::status::pyb_status;
use crate::abi::value::pyb_str;
use crate::capi::boundary::{ffi_boundary, out_ptr, utf8_arg, utf8_c_arg};
use crate::python::host_function::{self, Registration};
use crate::python::object::enter;
use crate::runtime::error::Error;

pub use crate::abi::host_function::*;
// For tests/memory.rs, which counts method definitions that no C function
// reports. Rust-only (no `no_mangle`, so not in the cdylib's symbols) and
// hidden from the docs: not part of the API.
#[doc(hidden)]
pub use crate::python::host_function::live_definitions;

const KNOWN_FLAGS: u32 = PYB_FN_RELEASE_GIL | PYB_FN_KEYWORDS;

/// Sets the message of the error the calling host function is about to return:
/// Python sees `pybridge.HostError(message)` (`TypeError(message)` when the
/// status is `PYB_E_WRONG_TYPE`). Call it on the thread running the
/// host function, before returning a non-OK status. The message is copied.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (not UTF-8).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_set_error(message: *const c_char) -> pyb_status {
    ffi_boundary("pyb_set_error", || {
        host_function::set_error_message(utf8_arg(message, "message")?.to_string());
        Ok(())
    })
}

/// Makes `fn` callable from Python as `module.name(*args)` (positional
/// arguments only). The module is imported if it exists, else created and put
/// in `sys.modules`, so `import module` works; a later registration of the
/// same name replaces the attribute. Flags: `PYB_FN_RELEASE_GIL`, `PYB_FN_KEYWORDS`.
///
/// `user_data` is passed to every call. Registrations live as long as the
/// engine: at shutdown (on the engine thread, with the GIL held, after every
/// host function has returned) pybridge calls `free_user_data(user_data)` once
/// if it is not NULL; it must not call into pybridge. On error nothing is
/// registered and `user_data` stays the caller's. A failing call raises
/// `pybridge.HostError` (a `RuntimeError` subclass), or `TypeError` when the
/// function returned `PYB_E_WRONG_TYPE`.
///
/// Any thread; takes the GIL for the call if needed. Errors:
/// `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (not UTF-8, empty or dotted
/// module name, unknown flags), `PYB_E_PYTHON` (importing `module` failed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_register_function(
    module: *const c_char,
    name: *const c_char,
    function: pyb_host_fn,
    user_data: *mut c_void,
    free_user_data: pyb_free_fn,
    flags: u32,
) -> pyb_status {
    ffi_boundary("pyb_register_function", || {
        let module = utf8_c_arg(module, "module")?;
        let name = utf8_c_arg(name, "name")?;
        let (module_name, function_name) = (module.to_string_lossy(), name.to_string_lossy());
        let function = function.ok_or_else(|| Error::null_argument("fn"))?;
        if module_name.is_empty() || module_name.contains('.') || function_name.is_empty() {
            return Err(Error::invalid_argument(format!(
                "module {module_name:?} and name {function_name:?} must be non-empty, and the \
                 module a top-level name (no dots)"
            )));
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::invalid_argument(format!(
                "unknown host function flag bits {:#x}; use 0, PYB_FN_RELEASE_GIL, PYB_FN_KEYWORDS",
                flags & !KNOWN_FLAGS
            )));
        }
        let gil = enter()?;
        host_function::register(
            gil.python(),
            &Registration {
                module,
                name,
                function,
                user_data,
                free_user_data,
                release_gil: flags & PYB_FN_RELEASE_GIL != 0,
                keywords: flags & PYB_FN_KEYWORDS != 0,
            },
        )
    })
}

/// Writes the names of the keyword arguments of the host function the calling
/// thread is running (registered with `PYB_FN_KEYWORDS`) to `*names_out` and
/// their number to `*count_out`: the last `count` of its `args` are their
/// values, in this order. The names are UTF-8, valid until the function
/// returns. Called outside such a function (or in one called without keywords),
/// it writes NULL and 0. The calling thread only; no GIL needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_host_keywords(
    names_out: *mut *const pyb_str,
    count_out: *mut usize,
) -> pyb_status {
    ffi_boundary("pyb_host_keywords", || {
        let names_out = out_ptr(names_out, "names_out")?;
        let count_out = out_ptr(count_out, "count_out")?;
        let (names, count) = host_function::current_keywords();
        *names_out = names;
        *count_out = count;
        Ok(())
    })
}
