//! `pyb_host_object_*`: host pointers handed to Python as opaque objects.

use std::ffi::c_void;

use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;
use crate::abi::status::pyb_status;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::python::host_object;
use crate::python::object::{enter, enter_for};

/// Hands a host pointer to Python as an opaque object (a capsule Python can
/// store, compare and pass back, for example to a host function) and writes a
/// handle to it to `out` (caller owns; release with `pyb_object_release`).
/// `free(pointer)` is called exactly once, when Python has let go of the
/// object, on that thread with the GIL held; otherwise when the interpreter
/// ends. One exception: an object that a daemon Python thread (one still
/// running at shutdown; threads started from host code are daemons by
/// default) can still reach then is never freed, and `free` never called:
/// CPython freezes daemon threads at finalization rather than unwinding them.
/// Such a thread reaches its local variables and arguments, and the globals
/// of each module whose functions it is running (a thread running a function
/// defined in `__main__` keeps every `__main__` global). `free` may be NULL. On
/// error it is not called. Any thread; takes the GIL if needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT` (`out`), `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_host_object_new(
    pointer: *mut c_void,
    free: pyb_free_fn,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_host_object_new", || {
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        *out = host_object::new(gil.python(), pointer, free)?;
        Ok(())
    })
}

/// Writes the host pointer inside a host object (`pyb_host_object_new`) to
/// `out`. Any thread; takes the GIL if needed.
///
/// Errors: `PYB_E_WRONG_TYPE` (not a host object), `PYB_E_BAD_HANDLE`,
/// `PYB_E_WRONG_INTERPRETER`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_host_object_get(
    object: pyb_object,
    out: *mut *mut c_void,
) -> pyb_status {
    ffi_boundary("pyb_host_object_get", || {
        let out = out_ptr(out, "out")?;
        let gil = enter_for(object)?;
        *out = host_object::pointer(gil.python(), object)?;
        Ok(())
    })
}
