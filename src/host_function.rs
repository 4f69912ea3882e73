//! Host functions: native callbacks that Python code calls as `module.name(...)`.
//!
//! A call from Python lands in `trampoline`, which converts the arguments to
//! `pyb_value`s (text and bytes point into the argument objects, no copies),
//! calls the host, and turns its result or failure into a Python result or
//! exception. With `PYB_FN_RELEASE_GIL` the GIL is given away around the host
//! call (boost.python's per-function call policy). While the host code runs
//! the thread sits inside a pybridge GIL scope, so a shutdown waits for it
//! instead of finalizing the interpreter under it.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::{Python, ffi};

use crate::boundary::{ffi_boundary, utf8_arg};
use crate::error::{Error, Result};
use crate::exception::python_error;
use crate::gil::{self, GilScope};
use crate::gil_cell::GilCell;
use crate::handles;
use crate::object::{self, pyb_object};
use crate::owned::{Owned, ptr_or_null};
use crate::status::*;
use crate::thread_slot::ThreadSlot;
use crate::value::{self, PYB_VALUE_OBJECT, pyb_value};

/// `pyb_register_function` flag: release the GIL while the host function runs,
/// so other Python threads run meanwhile. The function then must not touch
/// Python objects except through pybridge calls (which take the GIL themselves).
pub const PYB_FN_RELEASE_GIL: u32 = 1;

const KNOWN_FLAGS: u32 = PYB_FN_RELEASE_GIL;

/// A host function: reads `nargs` arguments from `args`, writes its result to
/// `*result` (preset to None) and returns `PYB_OK`, or returns an error status
/// (after `pyb_set_error` for the message) to raise `pybridge.HostError` in
/// Python. STR/BYTES arguments point into the Python objects and OBJECT
/// arguments are temporary handles: both are valid until the function returns
/// (clone a handle to keep it). A STR/BYTES result must stay valid until the
/// function returns (pybridge copies it then); an OBJECT result handle passes
/// to pybridge, which releases it (returning an argument handle is fine).
///
/// A C++ exception that escapes it is caught at the boundary (one C++ frame,
/// `src/host_call.cpp`) and raised in Python as `pybridge.HostError`: "host
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

/// Frees a host function's `user_data` when the engine shuts down.
#[allow(non_camel_case_types)]
pub type pyb_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

struct Registration {
    /// `module.name`, for messages.
    qualified_name: String,
    function: HostFunction,
    user_data: *mut c_void,
    free_user_data: pyb_free_fn,
    release_gil: bool,
    /// Cleared at the engine's end, when `user_data` is freed.
    alive: AtomicBool,
}

// SAFETY: `user_data` is the host's; pybridge only hands it back to the host's
// own functions, which the host promised may run on any thread.
unsafe impl Send for Registration {}
unsafe impl Sync for Registration {}

/// Per-engine state: the registrations (freed at the engine's end) and the
/// `pybridge.HostError` type. GIL-protected.
struct HostState {
    registrations: Vec<Arc<Registration>>,
    host_error: *mut ffi::PyObject,
}

// SAFETY: `host_error` is a reference owned by the state and touched only under
// the GIL (the `GilCell`), as pyo3's `Py<T>` is `Send`.
unsafe impl Send for HostState {}

static HOST: GilCell<HostState> = GilCell::new(HostState {
    registrations: Vec::new(),
    host_error: std::ptr::null_mut(),
});

const CAPSULE_NAME: &std::ffi::CStr = c"pybridge.host_function";

thread_local! {
    /// The message a host function set with `pyb_set_error` during its call.
    static HOST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets the message of the error the calling host function is about to return:
/// Python sees `pybridge.HostError(message)`. Call it on the thread running the
/// host function, before returning a non-OK status. The message is copied.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (not UTF-8).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_set_error(message: *const c_char) -> pyb_status {
    ffi_boundary("pyb_set_error", || {
        let message = utf8_arg(message, "message")?.to_string();
        HOST_ERROR.with(|slot| *slot.borrow_mut() = Some(message));
        Ok(())
    })
}

/// Makes `fn` callable from Python as `module.name(*args)` (positional
/// arguments only). The module is imported if it exists, else created and put
/// in `sys.modules`, so `import module` works; a later registration of the
/// same name replaces the attribute. Flags: `PYB_FN_RELEASE_GIL`.
///
/// `user_data` is passed to every call. Registrations live as long as the
/// engine: at shutdown (on the engine thread, with the GIL held, after every
/// host function has returned) pybridge calls `free_user_data(user_data)` once
/// if it is not NULL; it must not call into pybridge. On error nothing is
/// registered and `user_data` stays the caller's. A failing call raises
/// `pybridge.HostError` (a `RuntimeError` subclass).
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
        let module_name = utf8_arg(module, "module")?;
        let function_name = utf8_arg(name, "name")?;
        let function = function.ok_or_else(|| Error::null_argument("fn"))?;
        if module_name.is_empty() || module_name.contains('.') || function_name.is_empty() {
            return Err(Error::invalid_argument(format!(
                "module {module_name:?} and name {function_name:?} must be non-empty, and the \
                 module a top-level name (no dots)"
            )));
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::invalid_argument(format!(
                "unknown host function flag bits {:#x}; use 0 or PYB_FN_RELEASE_GIL",
                flags & !KNOWN_FLAGS
            )));
        }
        let gil = object::enter()?;
        let py = gil.python();
        host_error_type(py)?;
        let registration = Arc::new(Registration {
            qualified_name: format!("{module_name}.{function_name}"),
            function,
            user_data,
            free_user_data,
            release_gil: flags & PYB_FN_RELEASE_GIL != 0,
            alive: AtomicBool::new(true),
        });
        // SAFETY: GIL held; `module` is a checked C string.
        unsafe {
            let module = module_object(py, module)?;
            install(py, module.as_ptr(), name, &registration)?;
        }
        HOST.with(py, |state| state.registrations.push(registration));
        Ok(())
    })
}

/// The module named `name`: imported if it exists, else created in `sys.modules`.
///
/// # Safety
/// `name` is a valid C string.
unsafe fn module_object<'py>(py: pyo3::Python<'py>, name: *const c_char) -> Result<Owned<'py>> {
    // SAFETY: GIL held (the token); `name` is a valid C string.
    unsafe {
        if let Some(module) = Owned::from_raw(py, ffi::PyImport_ImportModule(name)) {
            return Ok(module);
        }
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_ModuleNotFoundError) == 0 {
            return Err(python_error(py));
        }
        ffi::PyErr_Clear();
        let module = Owned::new(py, ffi::PyModule_New(name))?;
        if ffi::PyDict_SetItemString(ffi::PyImport_GetModuleDict(), name, module.as_ptr()) != 0 {
            return Err(python_error(py));
        }
        Ok(module)
    }
}

/// Creates the function object and sets it as `module.name`. GIL held.
unsafe fn install(
    py: pyo3::Python<'_>,
    module: *mut ffi::PyObject,
    name: *const c_char,
    registration: &Arc<Registration>,
) -> Result<()> {
    // CPython keeps pointers to the method definition and its name for the life
    // of the function object, which also holds the capsule (its `self`): so
    // the capsule owns them, and they go when the last function made from
    // them does (CPython's own meth_dealloc releases `self` last for this).
    // SAFETY: `name` is a checked C string.
    let name_copy = unsafe { std::ffi::CStr::from_ptr(name) }.to_owned();
    let payload = Box::into_raw(Box::new(CapsulePayload {
        registration: Arc::clone(registration),
        definition: ffi::PyMethodDef {
            ml_name: name_copy.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFast: trampoline,
            },
            ml_flags: ffi::METH_FASTCALL,
            ml_doc: c"A host function registered through pybridge.".as_ptr(),
        },
        name: name_copy,
    }));
    LIVE_DEFINITIONS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: GIL held; the capsule owns `payload` and frees it in its destructor.
    unsafe {
        let capsule = ffi::PyCapsule_New(payload.cast(), CAPSULE_NAME.as_ptr(), Some(drop_capsule));
        let Some(capsule) = Owned::from_raw(py, capsule) else {
            drop_payload(payload);
            return Err(python_error(py));
        };
        // NULL (no name) is allowed: the function then has no __module__.
        let module_name = Owned::from_raw(py, ffi::PyModule_GetNameObject(module));
        let function = Owned::new(
            py,
            ffi::PyCFunction_NewEx(
                &mut (*payload).definition,
                capsule.as_ptr(),
                ptr_or_null(&module_name),
            ),
        )?;
        if ffi::PyObject_SetAttrString(module, name, function.as_ptr()) != 0 {
            return Err(python_error(py));
        }
    }
    Ok(())
}

unsafe extern "C" fn drop_capsule(capsule: *mut ffi::PyObject) {
    // SAFETY: our capsules hold a boxed Arc; GIL held by CPython here.
    unsafe {
        let payload = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr());
        if payload.is_null() {
            ffi::PyErr_Clear();
        } else {
            drop_payload(payload.cast());
        }
    }
}

/// What a host function's capsule owns.
struct CapsulePayload {
    registration: Arc<Registration>,
    /// Pointed to by every function object made from it; `ml_name` points into `name`.
    definition: ffi::PyMethodDef,
    /// Never read: kept so the bytes `definition.ml_name` points to stay alive.
    #[allow(dead_code)]
    name: std::ffi::CString,
}

/// Method definitions alive now (one per live registration's function object).
static LIVE_DEFINITIONS: AtomicUsize = AtomicUsize::new(0);

/// How many host-function method definitions are alive, for tests: the ones
/// whose function objects Python still holds.
pub fn live_definitions() -> usize {
    LIVE_DEFINITIONS.load(Ordering::Relaxed)
}

/// # Safety
/// `payload` came from `Box::into_raw` in `install` and is dropped once.
unsafe fn drop_payload(payload: *mut CapsulePayload) {
    // SAFETY: as the contract says.
    drop(unsafe { Box::from_raw(payload) });
    LIVE_DEFINITIONS.fetch_sub(1, Ordering::Relaxed);
}

/// The engine's `pybridge.HostError`, created (with its module) on first use. GIL held.
fn host_error_type(py: pyo3::Python<'_>) -> Result<*mut ffi::PyObject> {
    let existing = HOST.with(py, |state| state.host_error);
    if !existing.is_null() {
        return Ok(existing);
    }
    // SAFETY: GIL held (the token); every reference is owned by an `Owned`.
    unsafe {
        let kind = Owned::new(
            py,
            ffi::PyErr_NewExceptionWithDoc(
                c"pybridge.HostError".as_ptr(),
                c"Raised in Python when a pybridge host function fails; the message is the host's."
                    .as_ptr(),
                ffi::PyExc_RuntimeError,
                std::ptr::null_mut(),
            ),
        )?;
        let module = module_object(py, c"pybridge".as_ptr())?;
        if ffi::PyObject_SetAttrString(module.as_ptr(), c"HostError".as_ptr(), kind.as_ptr()) != 0 {
            return Err(python_error(py));
        }
        // The engine state keeps this reference until `on_engine_finalize`.
        let kind = kind.into_raw();
        HOST.with(py, |state| state.host_error = kind);
        Ok(kind)
    }
}

/// Drops every registration (calling `free_user_data`) and the `HostError`
/// type before `Py_FinalizeEx`. Engine thread, GIL held.
pub(crate) fn on_engine_finalize() {
    // SAFETY: this function's contract: the engine thread holds the GIL.
    let py = unsafe { Python::assume_attached() };
    let (registrations, host_error) = HOST.with(py, |state| {
        (
            std::mem::take(&mut state.registrations),
            std::mem::replace(&mut state.host_error, std::ptr::null_mut()),
        )
    });
    for registration in registrations {
        registration.alive.store(false, Ordering::Release);
        if let Some(free) = registration.free_user_data {
            let user_data = registration.user_data;
            // SAFETY: the host's own function and data; called exactly once.
            if catch_unwind(AssertUnwindSafe(|| unsafe { free(user_data) })).is_err() {
                log::error!("free_user_data of {} panicked", registration.qualified_name);
            }
        }
    }
    // SAFETY: GIL held; our reference from PyErr_NewException.
    unsafe { ffi::Py_XDECREF(host_error) };
}

/// Python's entry into every host function (METH_FASTCALL; `capsule` is `self`).
unsafe extern "C" fn trampoline(
    capsule: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this with the GIL held and `nargs` arguments at `args`.
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
        call_host(capsule, args, nargs)
    }));
    let message = match outcome {
        Ok(Ok(result)) => return result,
        Ok(Err(error)) => error.into_message(),
        Err(payload) => crate::boundary::panic_error(payload).into_message(),
    };
    // SAFETY: the calling thread holds the GIL (it is running Python code).
    unsafe { raise_host_error(&message) };
    std::ptr::null_mut()
}

/// Raises `pybridge.HostError(message)` (or `RuntimeError` once the engine's
/// type is gone). GIL held.
unsafe fn raise_host_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).expect("NULs were replaced");
    // SAFETY: GIL held (this function's contract).
    unsafe {
        let mut kind = HOST.with(Python::assume_attached(), |state| state.host_error);
        if kind.is_null() {
            kind = ffi::PyExc_RuntimeError;
        }
        ffi::PyErr_SetString(kind, text.as_ptr());
    }
}

/// Arguments as values; small counts stay on the stack.
const INLINE_ARGS: usize = 8;

unsafe fn call_host(
    capsule: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> Result<*mut ffi::PyObject> {
    // SAFETY: our function objects' `self` is one of our capsules.
    let registration = unsafe {
        let payload = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr());
        &*(*(payload as *const CapsulePayload)).registration
    };
    // The scope marks this thread busy for the engine's gate until the host
    // function has returned, so a shutdown waits for it.
    let gil = GilScope::acquire()?;
    handles::drain_release_queue();
    if !registration.alive.load(Ordering::Acquire) {
        return Err(Error::new(
            PYB_E_SHUTTING_DOWN,
            format!(
                "host function {} was unregistered when the engine shut down",
                registration.qualified_name
            ),
        ));
    }
    let nargs = nargs.max(0) as usize;
    let objects: &[*mut ffi::PyObject] = if nargs == 0 {
        &[]
    } else {
        // SAFETY: CPython passes `nargs` argument pointers.
        unsafe { std::slice::from_raw_parts(args, nargs) }
    };
    let mut inline = [pyb_value::none(); INLINE_ARGS];
    let mut heap = Vec::new();
    let values: &mut [pyb_value] = if nargs <= INLINE_ARGS {
        &mut inline[..nargs]
    } else {
        heap.resize(nargs, pyb_value::none());
        &mut heap
    };
    let mut temporaries: Vec<pyb_object> = Vec::new();
    let converted = objects
        .iter()
        .zip(values.iter_mut())
        .try_for_each(|(&object, value)| {
            *value = value::borrow_from_python(object, &mut temporaries)?;
            Ok(())
        });
    let outcome = converted.and_then(|()| invoke(registration, values));
    let result = match outcome {
        Ok((PYB_OK, result)) => python_result(&result, &temporaries),
        Ok((status, _)) => Err(host_failure(registration, status)),
        Err(error) => Err(error),
    };
    for handle in temporaries {
        // The host may have released an argument handle itself: that is fine.
        let _ = handles::release(handle);
    }
    drop(gil);
    result
}

/// Calls the host function, without the GIL if it asked for that. Returns its
/// status and result with the GIL held again.
fn invoke(registration: &Registration, args: &[pyb_value]) -> Result<(pyb_status, pyb_value)> {
    HOST_ERROR.with(|slot| slot.borrow_mut().take());
    let mut result = pyb_value::none();
    let call = |result: &mut pyb_value| call_guarded(registration, args, result);
    if !registration.release_gil {
        let status = call(&mut result);
        return Ok((status, result));
    }
    let slot = ThreadSlot::current();
    let token = gil::begin_allow_threads(slot)?;
    let status = call(&mut result);
    if let Err(error) = gil::end_allow_threads(slot, token) {
        // Only possible when the host left a GIL scope open inside the function;
        // that scope holds the GIL, so raising the error is still safe.
        log::error!(
            "host function {} returned with unbalanced GIL scopes: {}",
            registration.qualified_name,
            error.message
        );
        return Err(error.context(&format!(
            "host function {} left a GIL scope open",
            registration.qualified_name
        )));
    }
    Ok((status, result))
}

unsafe extern "C" {
    /// `src/host_call.cpp`: calls `function`, catching any C++ exception.
    fn pyb_call_host_guarded(
        function: HostFunction,
        args: *const pyb_value,
        nargs: usize,
        result: *mut pyb_value,
        user_data: *mut c_void,
        thrown: *mut c_int,
        what: *mut c_char,
        what_len: usize,
    ) -> pyb_status;
}

type HostFunction =
    unsafe extern "C" fn(*const pyb_value, usize, *mut pyb_value, *mut c_void) -> pyb_status;

/// Calls the host function through the C++ frame that stops exceptions; a
/// thrown exception becomes a failure whose message names it.
fn call_guarded(
    registration: &Registration,
    args: &[pyb_value],
    result: &mut pyb_value,
) -> pyb_status {
    let mut thrown: c_int = 0;
    let mut what = [0 as c_char; 512];
    // SAFETY: the host's function with the arguments it asked for; the buffer
    // and flag outlive the call.
    let status = unsafe {
        pyb_call_host_guarded(
            registration.function,
            args.as_ptr(),
            args.len(),
            result,
            registration.user_data,
            &mut thrown,
            what.as_mut_ptr(),
            what.len(),
        )
    };
    if thrown == 0 {
        return status;
    }
    // SAFETY: the guard NUL-terminated the buffer.
    let what = unsafe { std::ffi::CStr::from_ptr(what.as_ptr()) }.to_string_lossy();
    let message = if thrown == 1 {
        format!(
            "host function {} threw a C++ exception: {what}",
            registration.qualified_name
        )
    } else {
        format!(
            "host function {} threw a C++ exception that is not a std::exception",
            registration.qualified_name
        )
    };
    *result = pyb_value::none();
    HOST_ERROR.with(|slot| *slot.borrow_mut() = Some(message));
    PYB_E_PYTHON
}

/// Turns the host's result into a new reference. An OBJECT result handle is
/// consumed (unless it is one of the argument handles, released anyway).
fn python_result(result: &pyb_value, temporaries: &[pyb_object]) -> Result<*mut ffi::PyObject> {
    let object = value::to_python(result).map_err(|error| error.context("host function result"))?;
    if result.tag == PYB_VALUE_OBJECT {
        // SAFETY: the tag says the payload is a handle.
        let handle = unsafe { result.data.object };
        if !temporaries.contains(&handle) {
            let _ = handles::release(handle);
        }
    }
    Ok(object)
}

fn host_failure(registration: &Registration, status: pyb_status) -> Error {
    let message = HOST_ERROR
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_else(|| {
            format!(
                "host function {} failed with {} (it set no message with pyb_set_error)",
                registration.qualified_name,
                status_name(status).to_string_lossy()
            )
        });
    Error::new(status, message)
}
