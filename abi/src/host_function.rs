//! The types of host functions and of their user data's destructor.

use std::ffi::c_void;

use crate::status::pyb_status;
use crate::value::pyb_value;

/// `pyb_register_function` flag: release the GIL while the host function runs,
/// so other Python threads run meanwhile. The function then must not touch
/// Python objects except through pybridge calls (which take the GIL themselves).
pub const PYB_FN_RELEASE_GIL: u32 = 1;

/// `pyb_register_function` flag: the function also takes keyword arguments.
/// Their values follow the positional ones in `args` (`nargs` counts both),
/// and `pyb_host_keywords`, called during the function, names them. Without
/// it, Python refuses keyword arguments (`TypeError`).
pub const PYB_FN_KEYWORDS: u32 = 2;

/// A host function: reads `nargs` arguments from `args`, writes its result to
/// `*result` (preset to None) and returns `PYB_OK`, or returns an error status
/// (after `pyb_set_error` for the message) to raise `pybridge.HostError` in
/// Python; `PYB_E_WRONG_TYPE` (arguments it cannot take: unknown, missing, of
/// the wrong type) raises Python's `TypeError` instead. STR/BYTES arguments point into the Python objects and OBJECT
/// arguments are temporary handles: both are valid until the function returns
/// (clone a handle to keep it). A STR/BYTES result must stay valid until the
/// function returns (pybridge copies it then); an OBJECT result handle passes
/// to pybridge, which releases it (returning an argument handle is fine).
///
/// A C++ exception that escapes it is caught at the boundary (one C++ frame,
/// `src/python/host_call.cpp`) and raised in Python as `pybridge.HostError`: "host
/// function module.name threw a C++ exception: <what()>" (or "... that is not a
/// std::exception"); the result it may have written is discarded. Other
/// unwinding (a Rust panic, `longjmp`) must not leave it.
#[allow(non_camel_case_types)]
pub type pyb_host_fn = Option<
    unsafe extern "C" fn(
        args: *const pyb_value,
        nargs: usize,
        result: *mut pyb_value,
        user_data: *mut c_void,
    ) -> pyb_status,
>;

/// Frees the host's `user_data`: a host function's when the engine shuts down
/// (`pyb_register_function`), host memory's when Python lets go of it
/// (`pyb_buffer_from_host`).
#[allow(non_camel_case_types)]
pub type pyb_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;
