//! Host objects: a host pointer handed to Python as an opaque object, which
//! Python can store and pass back (to host functions, say), with the host's
//! `free` called when Python lets go of it. A `PyCapsule` under our own name,
//! so no other capsule is mistaken for one.

use std::ffi::{CStr, c_void};

use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;
use crate::abi::status::*;
use crate::python::exception::python_error;
use crate::python::handles::insert;
use crate::python::object::{type_name, with_object};
use crate::python::owned::Owned;
use crate::runtime::error::{Error, Result};

const CAPSULE_NAME: &CStr = c"pybridge.host_object";

/// What the capsule owns.
struct HostObject {
    pointer: *mut c_void,
    free: pyb_free_fn,
}

/// A new opaque object holding `pointer`; `free(pointer)` runs once when
/// Python drops the last reference (with the GIL, on that thread).
pub(crate) fn new(py: Python<'_>, pointer: *mut c_void, free: pyb_free_fn) -> Result<pyb_object> {
    let payload = Box::into_raw(Box::new(HostObject { pointer, free }));
    // SAFETY: GIL held; the capsule owns `payload` and frees it in `destroy`.
    let capsule = unsafe {
        Owned::from_raw(
            py,
            ffi::PyCapsule_New(payload.cast(), CAPSULE_NAME.as_ptr(), Some(destroy)),
        )
    };
    let Some(capsule) = capsule else {
        // SAFETY: the capsule was not made, so nothing else owns the payload;
        // the host keeps its pointer (no `free` on failure).
        drop(unsafe { Box::from_raw(payload) });
        return Err(python_error(py));
    };
    insert(py, capsule.into_raw())
}

/// The pointer inside a host object.
pub(crate) fn pointer(py: Python<'_>, handle: pyb_object) -> Result<*mut c_void> {
    with_object(py, handle, |object| {
        // SAFETY: GIL held; `object` is alive for the call.
        unsafe {
            if ffi::PyCapsule_IsValid(object, CAPSULE_NAME.as_ptr()) == 0 {
                return Err(Error::new(
                    PYB_E_WRONG_TYPE,
                    format!(
                        "a {} is not a host object (made by pyb_host_object_new)",
                        type_name(py, object)
                    ),
                ));
            }
            let payload = ffi::PyCapsule_GetPointer(object, CAPSULE_NAME.as_ptr());
            Ok((*payload.cast::<HostObject>()).pointer)
        }
    })
}

unsafe extern "C" fn destroy(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython calls this with the GIL for our capsules only.
    unsafe {
        let payload = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr());
        if payload.is_null() {
            ffi::PyErr_Clear();
            return;
        }
        let host = Box::from_raw(payload.cast::<HostObject>());
        if let Some(free) = host.free {
            free(host.pointer);
        }
    }
}
