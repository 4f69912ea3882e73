//! Host functions: native callbacks that Python code calls as `module.name(...)`.
//!
//! A call from Python lands in `trampoline`, which converts the arguments to
//! `pyb_value`s (text and bytes point into the argument objects, no copies),
//! calls the host, and turns its result or failure into a Python result or
//! exception. With `PYB_FN_RELEASE_GIL` the GIL is given away around the host
//! call (boost.python's per-function call policy). While the host code runs
//! the thread sits inside a pybridge GIL scope, so a shutdown waits for it
//! instead of finalizing the interpreter under it.
//!
//! One file over 500 lines: registration, the trampoline and the
//! release-GIL policy share the per-function record and its lifetime.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;
use crate::abi::status::*;
use crate::abi::value::{PYB_VALUE_OBJECT, pyb_str, pyb_value};
use crate::python::allow_threads;
use crate::python::exception::python_error;
use crate::python::gil::GilScope;
use crate::python::handles;
use crate::python::interpreter_gil::main_gil;
use crate::python::owned::{Owned, ptr_or_null};
use crate::python::value;
use crate::runtime::error::{Error, Result};
use crate::runtime::gil_cell::{MainGil, MainGilCell};
use crate::runtime::thread_slot::ThreadSlot;

struct Registered {
    /// `module.name`, for messages.
    qualified_name: String,
    function: HostFunction,
    user_data: *mut c_void,
    free_user_data: pyb_free_fn,
    release_gil: bool,
    keywords: bool,
    /// Cleared at the engine's end, when `user_data` is freed.
    alive: AtomicBool,
}

// SAFETY: `user_data` is the host's; pybridge only hands it back to the host's
// own functions, which the host promised may run on any thread.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

/// Per-engine state: the registrations (freed at the engine's end) and the
/// `pybridge.HostError` type. GIL-protected.
struct HostState {
    registrations: Vec<Arc<Registered>>,
    host_error: *mut ffi::PyObject,
}

// SAFETY: `host_error` is a reference owned by the state and touched only under
// the main GIL (the `MainGilCell`), as pyo3's `Py<T>` is `Send`.
unsafe impl Send for HostState {}

static HOST: MainGilCell<HostState> = MainGilCell::new(HostState {
    registrations: Vec::new(),
    host_error: std::ptr::null_mut(),
});

const CAPSULE_NAME: &std::ffi::CStr = c"pybridge.host_function";

thread_local! {
    /// The message a host function set with `pyb_set_error` during its call.
    static HOST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A host function to register, as the C API checked it.
pub(crate) struct Registration<'a> {
    /// A top-level module name.
    pub(crate) module: &'a CStr,
    pub(crate) name: &'a CStr,
    pub(crate) function: HostFunction,
    pub(crate) user_data: *mut c_void,
    pub(crate) free_user_data: pyb_free_fn,
    pub(crate) release_gil: bool,
    /// Python may pass keyword arguments (`PYB_FN_KEYWORDS`).
    pub(crate) keywords: bool,
}

/// Makes `registration.function` callable as `module.name`, creating the
/// module if it does not exist. On error nothing is registered.
pub(crate) fn register(py: Python<'_>, registration: &Registration<'_>) -> Result<()> {
    // Host functions live in the main interpreter: their table is guarded by
    // the main GIL, which a sub-interpreter with its own GIL does not hold.
    let Some(main) = main_gil(py) else {
        return Err(Error::new(
            PYB_E_UNSUPPORTED,
            "host functions can be registered in the main interpreter only, not inside a \
             sub-interpreter",
        ));
    };
    host_error_type(main)?;
    let registered = Arc::new(Registered {
        qualified_name: format!(
            "{}.{}",
            registration.module.to_string_lossy(),
            registration.name.to_string_lossy()
        ),
        function: registration.function,
        user_data: registration.user_data,
        free_user_data: registration.free_user_data,
        release_gil: registration.release_gil,
        keywords: registration.keywords,
        alive: AtomicBool::new(true),
    });
    let module = module_object(py, registration.module)?;
    install(py, module.as_ptr(), registration.name, &registered)?;
    HOST.with(main, |state| state.registrations.push(registered));
    Ok(())
}

/// Sets the message of the failure the calling thread's host function is
/// about to return (`pyb_set_error`).
pub(crate) fn set_error_message(message: String) {
    HOST_ERROR.with(|slot| *slot.borrow_mut() = Some(message));
}

/// The module named `name`: imported if it exists, else created in `sys.modules`.
fn module_object<'py>(py: Python<'py>, name: &CStr) -> Result<Owned<'py>> {
    let name = name.as_ptr();
    // SAFETY: GIL held (the token); `name` is a C string.
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

/// Creates the function object and sets it as `module.name`.
fn install(
    py: Python<'_>,
    module: *mut ffi::PyObject,
    name: &CStr,
    registration: &Arc<Registered>,
) -> Result<()> {
    // CPython keeps pointers to the method definition and its name for the life
    // of the function object, which also holds the capsule (its `self`): so
    // the capsule owns them, and they go when the last function made from
    // them does (CPython's own meth_dealloc releases `self` last for this).
    let name_copy = name.to_owned();
    let payload = Box::into_raw(Box::new(CapsulePayload {
        registration: Arc::clone(registration),
        definition: ffi::PyMethodDef {
            ml_name: name_copy.as_ptr(),
            ml_meth: if registration.keywords {
                ffi::PyMethodDefPointer {
                    PyCFunctionFastWithKeywords: trampoline_with_keywords,
                }
            } else {
                ffi::PyMethodDefPointer {
                    PyCFunctionFast: trampoline,
                }
            },
            ml_flags: if registration.keywords {
                ffi::METH_FASTCALL | ffi::METH_KEYWORDS
            } else {
                ffi::METH_FASTCALL
            },
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
        if ffi::PyObject_SetAttrString(module, name.as_ptr(), function.as_ptr()) != 0 {
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
    registration: Arc<Registered>,
    /// Pointed to by every function object made from it; `ml_name` points into `name`.
    definition: ffi::PyMethodDef,
    /// Never read: kept so the bytes `definition.ml_name` points to stay alive.
    #[allow(dead_code)]
    name: std::ffi::CString,
}

/// Method definitions alive now (one per live registration's function object).
static LIVE_DEFINITIONS: AtomicUsize = AtomicUsize::new(0);

/// How many host-function method definitions are alive: the ones whose
/// function objects Python still holds. Only tests/memory.rs reads it (through
/// `pybridge::host_function`).
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

/// The engine's `pybridge.HostError`, created (with its module) on first use.
fn host_error_type(main: MainGil<'_>) -> Result<*mut ffi::PyObject> {
    let py = main.python();
    let existing = HOST.with(main, |state| state.host_error);
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
        let module = module_object(py, c"pybridge")?;
        if ffi::PyObject_SetAttrString(module.as_ptr(), c"HostError".as_ptr(), kind.as_ptr()) != 0 {
            return Err(python_error(py));
        }
        // The engine state keeps this reference until `on_engine_finalize`.
        let kind = kind.into_raw();
        HOST.with(main, |state| state.host_error = kind);
        Ok(kind)
    }
}

/// A new `pybridge.HostError(message)` instance, for a host's error that
/// Python receives as a value (a rejected promise) rather than as a raise.
/// Only the main interpreter has the type; elsewhere the value is a `RuntimeError`.
pub(crate) fn host_error<'py>(py: Python<'py>, message: &str) -> Result<Owned<'py>> {
    let kind = match main_gil(py) {
        Some(main) => host_error_type(main)?,
        // SAFETY: a static type object of CPython's.
        None => unsafe { ffi::PyExc_RuntimeError },
    };
    let text = Owned::str(py, message)?;
    // SAFETY: GIL held; a live type and argument.
    unsafe { Owned::new(py, ffi::PyObject_CallOneArg(kind, text.as_ptr())) }
}

/// Drops every registration (calling `free_user_data`) and the `HostError`
/// type before `Py_FinalizeEx`. Engine thread.
pub(crate) fn on_engine_finalize(py: Python<'_>) {
    let main = main_gil(py).expect("the engine ends on the main interpreter's GIL");
    let (registrations, host_error) = HOST.with(main, |state| {
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
    let py = unsafe { Python::assume_attached() };
    // SAFETY: as above.
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
        call_host(py, capsule, args, nargs, std::ptr::null_mut())
    }));
    finish(py, outcome)
}

/// Python's entry into host functions registered with `PYB_FN_KEYWORDS`
/// (METH_FASTCALL | METH_KEYWORDS: keyword values follow the positional ones
/// at `args`, their names in the tuple `kwnames`, which may be NULL).
unsafe extern "C" fn trampoline_with_keywords(
    capsule: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this with the GIL held and the arguments described.
    let py = unsafe { Python::assume_attached() };
    // The vectorcall flag bit may be set in `nargsf`.
    let nargs = nargsf & !(1 << (ffi::Py_ssize_t::BITS - 1));
    // SAFETY: as above.
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
        call_host(py, capsule, args.cast_mut(), nargs, kwnames)
    }));
    finish(py, outcome)
}

/// The trampolines' end: the result, or the error raised as `HostError`.
fn finish(
    py: Python<'_>,
    outcome: std::thread::Result<Result<*mut ffi::PyObject>>,
) -> *mut ffi::PyObject {
    let (status, message) = match outcome {
        Ok(Ok(result)) => return result,
        Ok(Err(error)) => (error.status, error.into_message()),
        Err(payload) => (PYB_E_PANIC, Error::from_panic(payload).into_message()),
    };
    raise_host_error(py, status, &message);
    std::ptr::null_mut()
}

/// Raises `pybridge.HostError(message)` (or `RuntimeError` once the engine's
/// type is gone, or outside the main interpreter, which alone has it); `TypeError(message)` for `PYB_E_WRONG_TYPE`, the status a
/// host function gives for arguments it cannot take, as Python's own do.
fn raise_host_error(py: Python<'_>, status: pyb_status, message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).expect("NULs were replaced");
    // SAFETY: GIL held (the token).
    unsafe {
        let mut kind = main_gil(py).map_or(std::ptr::null_mut(), |main| {
            HOST.with(main, |state| state.host_error)
        });
        if status == PYB_E_WRONG_TYPE {
            kind = ffi::PyExc_TypeError;
        } else if kind.is_null() {
            kind = ffi::PyExc_RuntimeError;
        }
        ffi::PyErr_SetString(kind, text.as_ptr());
    }
}

thread_local! {
    /// The keyword names of the host function this thread runs now (for
    /// `pyb_host_keywords`); host functions nest, so each call restores the outer one's.
    static KEYWORDS: std::cell::Cell<(*const pyb_str, usize)> =
        const { std::cell::Cell::new((std::ptr::null(), 0)) };
}

/// The keyword names of the host function the calling thread runs now.
pub(crate) fn current_keywords() -> (*const pyb_str, usize) {
    match KEYWORDS.get() {
        (_, 0) => (std::ptr::null(), 0),
        names => names,
    }
}

/// Arguments as values; small counts stay on the stack.
const INLINE_ARGS: usize = 8;

unsafe fn call_host(
    py: Python<'_>,
    capsule: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> Result<*mut ffi::PyObject> {
    // SAFETY: our function objects' `self` is one of our capsules.
    let registration = unsafe {
        let payload = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr());
        &*(*(payload as *const CapsulePayload)).registration
    };
    // The scope marks this thread busy for the engine's gate until the host
    // function has returned, so a shutdown waits for it.
    let gil = GilScope::acquire()?;
    handles::drain_release_queue(py);
    if !registration.alive.load(Ordering::Acquire) {
        return Err(Error::new(
            PYB_E_SHUTTING_DOWN,
            format!(
                "host function {} was unregistered when the engine shut down",
                registration.qualified_name
            ),
        ));
    }
    // Keyword names (PYB_FN_KEYWORDS): UTF-8 views into the `kwnames` tuple,
    // which lives for the call; their values follow the positional ones.
    let mut names: Vec<pyb_str> = Vec::new();
    if !kwnames.is_null() {
        // SAFETY: GIL held; CPython passes a tuple of str.
        unsafe {
            for index in 0..ffi::PyTuple_Size(kwnames).max(0) {
                let mut len = 0;
                let text =
                    ffi::PyUnicode_AsUTF8AndSize(ffi::PyTuple_GetItem(kwnames, index), &mut len);
                if text.is_null() {
                    return Err(python_error(py));
                }
                names.push(pyb_str {
                    ptr: text,
                    len: len as usize,
                });
            }
        }
    }
    let nargs = nargs.max(0) as usize + names.len();
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
            *value = value::borrow_from_python(py, object, &mut temporaries)?;
            Ok(())
        });
    let outcome = converted.and_then(|()| {
        let outer = KEYWORDS.replace((names.as_ptr(), names.len()));
        let outcome = invoke(registration, values);
        KEYWORDS.set(outer);
        outcome
    });
    let result = match outcome {
        Ok((PYB_OK, result)) => python_result(py, &result, &temporaries),
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
fn invoke(registration: &Registered, args: &[pyb_value]) -> Result<(pyb_status, pyb_value)> {
    HOST_ERROR.with(|slot| slot.borrow_mut().take());
    let mut result = pyb_value::none();
    let call = |result: &mut pyb_value| call_guarded(registration, args, result);
    if !registration.release_gil {
        let status = call(&mut result);
        return Ok((status, result));
    }
    let slot = ThreadSlot::current();
    let token = allow_threads::begin_allow_threads(slot)?;
    let status = call(&mut result);
    if let Err(error) = allow_threads::end_allow_threads(slot, token) {
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
    /// `src/python/host_call.cpp`: calls `function`, catching any C++ exception.
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

pub(crate) type HostFunction =
    unsafe extern "C" fn(*const pyb_value, usize, *mut pyb_value, *mut c_void) -> pyb_status;

/// Calls the host function through the C++ frame that stops exceptions; a
/// thrown exception becomes a failure whose message names it.
fn call_guarded(
    registration: &Registered,
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
fn python_result(
    py: Python<'_>,
    result: &pyb_value,
    temporaries: &[pyb_object],
) -> Result<*mut ffi::PyObject> {
    let object =
        value::to_python(py, result).map_err(|error| error.context("host function result"))?;
    if result.tag == PYB_VALUE_OBJECT {
        // SAFETY: the tag says the payload is a handle.
        let handle = unsafe { result.data.object };
        if !temporaries.contains(&handle) {
            let _ = handles::release(handle);
        }
    }
    Ok(object)
}

fn host_failure(registration: &Registered, status: pyb_status) -> Error {
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
