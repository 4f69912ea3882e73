//! `pyb_value`: tagged values, and making an object from one.

use crate::abi::handles::pyb_object;
use crate::abi::status::pyb_status;
use crate::capi::boundary::{ffi_boundary, out_ptr};
use crate::python::object::enter;
use crate::python::value;
use crate::runtime::error::Error;

pub use crate::abi::value::*;

/// Makes a Python object from `value` and writes a new handle to it to `out`
/// (the caller owns it). For an `OBJECT` value this is a clone. Use it, for
/// example, to return a string a host function built in memory it frees
/// before returning. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (unknown tag,
/// invalid UTF-8 in a STR, impossible length), `PYB_E_BAD_HANDLE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_object_from_value(
    value: *const pyb_value,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_object_from_value", || {
        // SAFETY: a non-NULL value is promised readable.
        let value = unsafe { value.as_ref() }.ok_or_else(|| Error::null_argument("value"))?;
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        *out = value::new_object(gil.python(), value)?;
        Ok(())
    })
}
