//! Helpers for the object, call and host-function tests: thin wrappers over the
//! C functions that assert on the status and return plain Rust values.
#![allow(dead_code)]

use std::ffi::{CString, c_void};

use pybridge::call::*;
use pybridge::error::{
    pyb_last_error_python_message, pyb_last_error_python_traceback, pyb_last_error_python_type,
    pyb_last_error_python_types,
};
use pybridge::host_function::*;
use pybridge::object::*;
use pybridge::status::*;
use pybridge::value::*;

use super::{c, expect, last_error, name, ok, read_last};

/// Runs statements in `scope` (0 = `__main__`); panics with the error on failure.
#[track_caller]
pub fn exec_in(scope: pyb_object, code: &str) {
    let code = c(code);
    ok(unsafe { pyb_run(code.as_ptr(), c"<test>".as_ptr(), scope) });
}

#[track_caller]
pub fn exec(code: &str) {
    exec_in(0, code);
}

/// Evaluates an expression in `scope`; the status on failure.
pub fn try_eval_in(scope: pyb_object, expr: &str) -> Result<pyb_value, pyb_status> {
    let expr = c(expr);
    let mut out = pyb_value::none();
    match unsafe { pyb_eval(expr.as_ptr(), c"<test>".as_ptr(), scope, &mut out) } {
        PYB_OK => Ok(out),
        status => Err(status),
    }
}

#[track_caller]
pub fn eval_in(scope: pyb_object, expr: &str) -> pyb_value {
    try_eval_in(scope, expr)
        .unwrap_or_else(|status| panic!("eval {expr:?}: {} {}", name(status), last_error()))
}

#[track_caller]
pub fn eval(expr: &str) -> pyb_value {
    eval_in(0, expr)
}

/// Evaluates `expr` and reads the result with `read`, which names the kind it expects.
#[track_caller]
fn eval_as<T>(expr: &str, kind: &str, read: impl Fn(&pyb_value) -> Option<T>) -> T {
    let value = eval(expr);
    read(&value).unwrap_or_else(|| panic!("{expr} gave {value:?}, not {kind}"))
}

#[track_caller]
pub fn eval_int(expr: &str) -> i64 {
    eval_as(expr, "an int", pyb_value::as_i64)
}

#[track_caller]
pub fn eval_bool(expr: &str) -> bool {
    eval_as(expr, "a bool", pyb_value::as_bool)
}

#[track_caller]
pub fn eval_text(expr: &str) -> String {
    eval_as(expr, "a str", pyb_value::to_text)
}

/// A handle to the value of `expr`, which must not come back as a plain value.
#[track_caller]
pub fn eval_object(expr: &str) -> pyb_object {
    eval_as(expr, "an object", pyb_value::as_object)
}

/// A handle to any value of `expr`, plain or not.
#[track_caller]
pub fn object_of(expr: &str) -> pyb_object {
    let value = eval(expr);
    if let Some(handle) = value.as_object() {
        return handle;
    }
    let mut handle = 0;
    ok(unsafe { pyb_object_from_value(&value, &mut handle) });
    handle
}

#[track_caller]
pub fn import(module: &str) -> pyb_object {
    let module = c(module);
    let mut handle = 0;
    ok(unsafe { pyb_import(module.as_ptr(), &mut handle) });
    handle
}

/// Calls `callable(*args)`; the status on failure.
pub fn try_call(callable: pyb_object, args: &[pyb_value]) -> Result<pyb_value, pyb_status> {
    let mut out = pyb_value::none();
    let status = unsafe {
        pyb_call(
            callable,
            args.as_ptr(),
            args.len(),
            std::ptr::null(),
            0,
            &mut out,
        )
    };
    if status == PYB_OK {
        Ok(out)
    } else {
        Err(status)
    }
}

#[track_caller]
pub fn call(callable: pyb_object, args: &[pyb_value]) -> pyb_value {
    try_call(callable, args)
        .unwrap_or_else(|status| panic!("call: {} {}", name(status), last_error()))
}

#[track_caller]
pub fn release(handle: pyb_object) {
    ok(pyb_object_release(handle));
}

/// The last Python error's type and base names, one per line.
pub fn python_types() -> String {
    read_last(pyb_last_error_python_types)
}

/// The last error's Python parts read through the C getters: (type, message, traceback).
pub fn python_parts() -> (String, String, String) {
    let read = read_last;
    (
        read(pyb_last_error_python_type),
        read(pyb_last_error_python_message),
        read(pyb_last_error_python_traceback),
    )
}

/// Asserts the status and that the last error is a Python exception of `type_name`.
#[track_caller]
pub fn expect_python(status: pyb_status, type_name: &str) {
    expect(status, PYB_E_PYTHON);
    let (kind, _, _) = python_parts();
    assert_eq!(kind, type_name, "last error: {}", last_error());
}

/// A host function made from a Rust closure; the box is freed by `free_user_data`.
pub type HostClosure = dyn Fn(&[pyb_value], &mut pyb_value) -> pyb_status + Send + Sync;

unsafe extern "C" fn closure_trampoline(
    args: *const pyb_value,
    nargs: usize,
    result: *mut pyb_value,
    user_data: *mut c_void,
) -> pyb_status {
    let closure = unsafe { &*(user_data as *const Box<HostClosure>) };
    let args = if nargs == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(args, nargs) }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        closure(args, unsafe { &mut *result })
    })) {
        Ok(status) => status,
        Err(_) => PYB_E_PANIC,
    }
}

unsafe extern "C" fn closure_free(user_data: *mut c_void) {
    FREED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    drop(unsafe { Box::from_raw(user_data as *mut Box<HostClosure>) });
}

/// How many closures `free_user_data` has freed in this process.
pub static FREED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Registers a closure as `module.name`; the status of `pyb_register_function`.
pub fn try_register(
    module: &str,
    name: &str,
    flags: u32,
    closure: impl Fn(&[pyb_value], &mut pyb_value) -> pyb_status + Send + Sync + 'static,
) -> pyb_status {
    let boxed: Box<Box<HostClosure>> = Box::new(Box::new(closure));
    let user_data = Box::into_raw(boxed) as *mut c_void;
    let (module, name) = (c(module), c(name));
    let status = unsafe {
        pyb_register_function(
            module.as_ptr(),
            name.as_ptr(),
            Some(closure_trampoline),
            user_data,
            Some(closure_free),
            flags,
        )
    };
    if status != PYB_OK {
        drop(unsafe { Box::from_raw(user_data as *mut Box<HostClosure>) });
    }
    status
}

#[track_caller]
pub fn register(
    module: &str,
    name: &str,
    flags: u32,
    closure: impl Fn(&[pyb_value], &mut pyb_value) -> pyb_status + Send + Sync + 'static,
) {
    ok(try_register(module, name, flags, closure));
}

/// Sets the host error message (for closures that fail).
pub fn set_error(message: &str) {
    let message = CString::new(message).unwrap();
    ok(unsafe { pyb_set_error(message.as_ptr()) });
}
