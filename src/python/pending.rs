//! Pending results: Python awaiting the host. A host function that cannot
//! answer at once returns a `PendingResult` (`pending.py`), an awaitable, and
//! completes it later from any thread; the awaiting coroutine resumes on its
//! own event loop. The host's cancel callback and user data travel in a host
//! object (`host_object.rs`) the pending result holds, freed with it.

use std::ffi::{CStr, c_void};

use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;
use crate::abi::pending::pyb_cancel_fn;
use crate::abi::status::*;
use crate::abi::value::pyb_value;
use crate::python::exception::python_error;
use crate::python::handles::insert;
use crate::python::host_object;
use crate::python::interpreter::{imported_module, source_module};
use crate::python::object::{type_name, with_object};
use crate::python::owned::Owned;
use crate::python::value::to_python;
use crate::runtime::error::{Error, Result};

const SOURCE: &CStr =
    match CStr::from_bytes_with_nul(concat!(include_str!("pending.py"), "\0").as_bytes()) {
        Ok(source) => source,
        Err(_) => panic!("pending.py holds a NUL byte"),
    };
const MODULE: &CStr = c"_pybridge_pending";

/// What the capsule owns: the host's side of one pending result.
struct Host {
    on_cancel: pyb_cancel_fn,
    user_data: *mut c_void,
    free_user_data: pyb_free_fn,
}

struct MethodDef(ffi::PyMethodDef);
// SAFETY: the definition holds static strings and a function pointer only.
unsafe impl Sync for MethodDef {}

static CANCELLED: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"cancelled".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: cancelled,
    },
    ml_flags: ffi::METH_O,
    ml_doc: c"cancelled(host): Python cancelled the awaiting task (pybridge).".as_ptr(),
});

/// A new `PendingResult`; `free_user_data(user_data)` runs once when Python
/// lets go of it (with the GIL, on that thread).
pub(crate) fn new(
    py: Python<'_>,
    on_cancel: pyb_cancel_fn,
    user_data: *mut c_void,
    free_user_data: pyb_free_fn,
) -> Result<pyb_object> {
    let module = source_module(py, MODULE, SOURCE, c"<pybridge-pending>")?;
    let payload = Box::into_raw(Box::new(Host {
        on_cancel,
        user_data,
        free_user_data,
    }));
    let capsule = host_object::capsule(py, payload.cast(), Some(free_host)).inspect_err(|_| {
        // SAFETY: no capsule owns the payload; on error the host keeps its
        // user data (nothing is freed).
        drop(unsafe { Box::from_raw(payload) });
    })?;
    // SAFETY: GIL held; live objects, owned by `Owned` values.
    let made = unsafe {
        Owned::new(
            py,
            ffi::PyCFunction_NewEx(
                &raw const CANCELLED.0 as *mut ffi::PyMethodDef,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ),
        )
        .and_then(|on_cancel| {
            Owned::new(
                py,
                ffi::PyObject_CallMethod(
                    module.as_ptr(),
                    c"PendingResult".as_ptr(),
                    c"OO".as_ptr(),
                    capsule.as_ptr(),
                    on_cancel.as_ptr(),
                ),
            )
        })
        .and_then(|pending| insert(py, pending.into_raw()))
    };
    if made.is_err() {
        // On error the host's callbacks are never called: the capsule, freed
        // below, must not call them.
        // SAFETY: the capsule owns the `Host` and frees it only when dropped.
        unsafe {
            (*payload).on_cancel = None;
            (*payload).free_user_data = None;
        }
    }
    made
}

/// The host's outcome for the pending result behind `handle`: a value, or
/// the message of a `HostError`.
pub(crate) fn complete(
    py: Python<'_>,
    handle: pyb_object,
    outcome: std::result::Result<&pyb_value, &str>,
) -> Result<()> {
    with_object(py, handle, |object| {
        let is_pending = imported_module(py, MODULE).is_some_and(|module| {
            // SAFETY: GIL held; live objects; a failed lookup is cleared.
            unsafe {
                let kind = ffi::PyObject_GetAttrString(module.as_ptr(), c"PendingResult".as_ptr());
                let Some(kind) = Owned::from_raw(py, kind) else {
                    ffi::PyErr_Clear();
                    return false;
                };
                ffi::PyObject_TypeCheck(object, kind.as_ptr().cast()) != 0
            }
        });
        if !is_pending {
            return Err(Error::new(
                PYB_E_WRONG_TYPE,
                format!(
                    "a {} is not a pending result (made by pyb_pending_new)",
                    type_name(py, object)
                ),
            ));
        }
        let (ok, value) = match outcome {
            Ok(value) => (true, to_python(py, value)?),
            Err(message) => {
                // SAFETY: GIL held; a UTF-8 string of the stated length.
                let text = unsafe {
                    ffi::PyUnicode_FromStringAndSize(
                        message.as_ptr().cast(),
                        message.len() as ffi::Py_ssize_t,
                    )
                };
                if text.is_null() {
                    return Err(python_error(py));
                }
                (false, text)
            }
        };
        // SAFETY: GIL held; `value` is a new reference the `Owned` releases.
        let answer = unsafe {
            let value = Owned::from_raw(py, value).expect("checked non-NULL");
            Owned::new(
                py,
                ffi::PyObject_CallMethod(
                    object,
                    c"_complete".as_ptr(),
                    c"OO".as_ptr(),
                    if ok { ffi::Py_True() } else { ffi::Py_False() },
                    value.as_ptr(),
                ),
            )?
        };
        // SAFETY: GIL held; `answer` is a str (pending.py's `_complete`).
        let answer = unsafe { CStr::from_ptr(ffi::PyUnicode_AsUTF8(answer.as_ptr())) };
        match answer.to_bytes() {
            b"ok" => Ok(()),
            b"cancelled" => Err(Error::new(
                PYB_E_CANCELLED,
                "Python cancelled the task awaiting this pending result before it was \
                 completed (its on_cancel was called): the outcome is dropped",
            )),
            _ => Err(Error::invalid_argument(
                "this pending result was completed already: complete each once",
            )),
        }
    })
}

/// `cancelled(capsule)`: the awaiting task was cancelled first; calls the
/// host's `on_cancel`. On the loop's thread, with the GIL.
unsafe extern "C" fn cancelled(
    _self: *mut ffi::PyObject,
    capsule: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY (this function): CPython calls it with the GIL; the host object
    // is the one `new` made (pending.py passes it back), holding a `Host`.
    unsafe {
        let py = Python::assume_attached();
        if let Some(host) = host_object::pointer_of(py, capsule) {
            let host = &*host.cast::<Host>();
            if let Some(on_cancel) = host.on_cancel {
                on_cancel(host.user_data);
            }
        }
        ffi::Py_IncRef(ffi::Py_None());
        ffi::Py_None()
    }
}

/// The host object's `free`: the host's `free_user_data`, then the `Host`.
unsafe extern "C" fn free_host(host: *mut c_void) {
    // SAFETY: the `Host` `new` boxed, freed once (host objects free once).
    let host = unsafe { Box::from_raw(host.cast::<Host>()) };
    if let Some(free) = host.free_user_data {
        // SAFETY: the host's function with the user data it gave.
        unsafe { free(host.user_data) };
    }
}
