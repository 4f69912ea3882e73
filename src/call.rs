//! Using Python from the host: run and evaluate code, import, get and set
//! attributes and items, call, take lengths, iterate, and build containers.
//!
//! Every function here works whether or not the calling thread holds the GIL:
//! without it, the call takes the GIL and gives it back (one native call for
//! "acquire, call, convert, release"); inside a `pyb_gil_acquire` scope or a
//! host function it only nests. Values passed in are borrowed; `OBJECT`
//! results are new handles the caller owns. A Python exception returns
//! `PYB_E_PYTHON` and is cleared from the interpreter; the last error holds its
//! type, message and traceback.

use std::ffi::c_char;

use pyo3::ffi;

use crate::boundary::{ffi_boundary, optional_utf8_arg, out_ptr, reserve_for_host_count, utf8_arg};
use crate::error::{Error, Result};
use crate::exception::python_error;
use crate::handles::{borrow, insert, new_reference};
use crate::object::{self, enter, enter_for, pyb_object, with_object};
use crate::owned::{Owned, ptr_or_null};
use crate::status::*;
use crate::value::{from_python, pyb_value, slice_arg, to_python};

const DEFAULT_FILENAME: &str = "<pybridge>";

/// Owned references, dropped together; small counts stay on the stack. Kept
/// as a plain `*mut PyObject` array (NULL for an empty slot), so a vectorcall
/// takes it as it is and a drop touches only the slots in use; references come
/// in as `Owned` and are released here (this is the hottest call path).
struct Refs<'py> {
    py: pyo3::Python<'py>,
    inline: [*mut ffi::PyObject; INLINE_REFS],
    heap: Vec<*mut ffi::PyObject>,
    len: usize,
}

const INLINE_REFS: usize = 10;

impl<'py> Refs<'py> {
    /// Room for up to `INLINE_REFS` references, on the stack.
    fn new(py: pyo3::Python<'py>) -> Refs<'py> {
        Refs {
            py,
            inline: [std::ptr::null_mut(); INLINE_REFS],
            heap: Vec::new(),
            len: 0,
        }
    }

    /// Makes room for `capacity` references, a count the host chose (see
    /// `reserve_for_host_count`); `name` is the argument it came from. In
    /// place: the array is too big to move around on the hottest call path.
    #[inline]
    fn reserve(&mut self, capacity: usize, name: &str) -> Result<()> {
        if capacity > INLINE_REFS {
            reserve_for_host_count(&mut self.heap, capacity, name)?;
        }
        Ok(())
    }

    /// Takes ownership of `object` (`None`: a reserved, NULL slot).
    #[inline]
    fn push(&mut self, object: Option<Owned<'py>>) {
        let object = object.map_or(std::ptr::null_mut(), Owned::into_raw);
        if self.len < INLINE_REFS && self.heap.is_empty() {
            self.inline[self.len] = object;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.inline[..self.len]);
            }
            self.heap.push(object);
        }
        self.len += 1;
    }

    /// Takes ownership of a new reference (`object` must not be NULL).
    #[inline]
    fn push_raw(&mut self, object: *mut ffi::PyObject) {
        // SAFETY: GIL held (the token); the caller gives up its reference.
        let owned = unsafe { Owned::from_raw(self.py, object) };
        debug_assert!(owned.is_some(), "push_raw takes a non-NULL reference");
        self.push(owned);
    }

    fn as_mut_ptr(&mut self) -> *mut *mut ffi::PyObject {
        if self.heap.is_empty() {
            self.inline.as_mut_ptr()
        } else {
            self.heap.as_mut_ptr()
        }
    }

    fn as_slice(&self) -> &[*mut ffi::PyObject] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    /// Converts host values to Python and takes ownership of the results.
    fn push_values(&mut self, values: &[pyb_value], name: &str) -> Result<()> {
        for (index, value) in values.iter().enumerate() {
            let object =
                to_python(value).map_err(|error| error.context(&format!("{name}[{index}]")))?;
            self.push_raw(object);
        }
        Ok(())
    }
}

impl Drop for Refs<'_> {
    fn drop(&mut self) {
        for &object in self.as_slice() {
            // SAFETY: GIL held (the token); every non-NULL entry is ours.
            unsafe { ffi::Py_XDECREF(object) };
        }
    }
}

/// Turns a new reference (or NULL with an exception set) into a result value.
fn result_value(py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Result<pyb_value> {
    if object.is_null() {
        Err(python_error(py))
    } else {
        from_python(object)
    }
}

/// Turns a new reference (or NULL with an exception set) into a new handle.
fn result_handle(py: pyo3::Python<'_>, object: *mut ffi::PyObject) -> Result<pyb_object> {
    if object.is_null() {
        Err(python_error(py))
    } else {
        insert(object)
    }
}

/// Checks an output pointer now, before any side effect; it is written at the
/// end, after the inputs (which may point at the same memory) are read.
fn check_out<T>(out: *mut T, name: &str) -> Result<()> {
    if out.is_null() {
        Err(Error::null_argument(name))
    } else {
        Ok(())
    }
}

/// The globals of `scope` (0 for `__main__`), borrowed. GIL held.
fn scope_globals(py: pyo3::Python<'_>, scope: pyb_object) -> Result<*mut ffi::PyObject> {
    if scope == 0 {
        // SAFETY: GIL held; __main__ always exists in a running interpreter.
        unsafe {
            let main = ffi::PyImport_AddModule(c"__main__".as_ptr());
            if main.is_null() {
                return Err(python_error(py));
            }
            return Ok(ffi::PyModule_GetDict(main));
        }
    }
    let globals = borrow(scope)?;
    // SAFETY: GIL held; `globals` is live.
    if unsafe { ffi::PyDict_Check(globals) } == 0 {
        return Err(Error::new(
            PYB_E_WRONG_TYPE,
            format!(
                "scope must be a dict (from pyb_scope_new) or 0 for __main__, not a '{}'",
                object::type_name(globals)
            ),
        ));
    }
    Ok(globals)
}

/// Compiles `code` under `filename` and runs it in `scope`; returns the new reference.
fn run_code(
    code: *const c_char,
    filename: *const c_char,
    scope: pyb_object,
    mode: std::ffi::c_int,
) -> Result<(crate::gil::GilScope, *mut ffi::PyObject)> {
    let code = utf8_arg(code, "code")?;
    let filename = optional_utf8_arg(filename, "filename")?.unwrap_or(DEFAULT_FILENAME);
    let gil = enter_for(scope)?;
    let py = gil.python();
    let globals = scope_globals(py, scope)?;
    let code = std::ffi::CString::new(code).expect("came from a C string");
    let filename = std::ffi::CString::new(filename).expect("came from a C string");
    // SAFETY: GIL held; `globals` is a live dict, held for the run (a release
    // of the scope handle inside the code only queues or needs this thread).
    let result = unsafe {
        let globals = Owned::from_borrowed(py, globals);
        let compiled = Owned::new(
            py,
            ffi::Py_CompileString(code.as_ptr(), filename.as_ptr(), mode),
        )?;
        Owned::new(
            py,
            ffi::PyEval_EvalCode(compiled.as_ptr(), globals.as_ptr(), globals.as_ptr()),
        )?
        .into_raw()
    };
    Ok((gil, result))
}

/// Runs Python statements (a script) in `scope`: 0 for `__main__`, or a handle
/// from `pyb_scope_new`. `filename` (UTF-8, may be NULL for `"<pybridge>"`) is
/// what tracebacks and `__file__`-less code show. Any thread; takes the GIL for
/// the call if needed.
///
/// Errors: `PYB_E_PYTHON` (a syntax error or an exception: type, message and
/// traceback in the last error), `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT`
/// (not UTF-8), `PYB_E_BAD_HANDLE`, `PYB_E_WRONG_TYPE` (scope is not a dict).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_run(
    code: *const c_char,
    filename: *const c_char,
    scope: pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_run", || {
        let (_gil, result) = run_code(code, filename, scope, ffi::Py_file_input)?;
        // SAFETY: GIL held by `_gil`; the module-level result is None.
        unsafe { ffi::Py_DecRef(result) };
        Ok(())
    })
}

/// Evaluates one Python expression in `scope` (0 for `__main__`) and writes its
/// value to `out`. `filename` as for `pyb_run`. Any thread; takes the GIL for
/// the call if needed.
///
/// Errors: as `pyb_run`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_eval(
    expr: *const c_char,
    filename: *const c_char,
    scope: pyb_object,
    out: *mut pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_eval", || {
        let out = out_ptr(out, "out")?;
        let (_gil, result) = run_code(expr, filename, scope, ffi::Py_eval_input)?;
        *out = from_python(result)?;
        Ok(())
    })
}

/// Writes a handle to a fresh namespace (a dict with `__builtins__` and
/// `__name__ = "__pybridge__"`) to `out`, for `pyb_run`/`pyb_eval`: scripts in
/// different scopes cannot see each other's globals. The caller owns the
/// handle. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_scope_new(out: *mut pyb_object) -> pyb_status {
    ffi_boundary("pyb_scope_new", || {
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        let py = gil.python();
        // SAFETY: GIL held; `dict` and `name` own their references.
        unsafe {
            let dict = Owned::new(py, ffi::PyDict_New())?;
            let name = Owned::str(py, "__pybridge__")?;
            let builtins = ffi::PyEval_GetBuiltins();
            if ffi::PyDict_SetItemString(dict.as_ptr(), c"__name__".as_ptr(), name.as_ptr()) != 0
                || ffi::PyDict_SetItemString(dict.as_ptr(), c"__builtins__".as_ptr(), builtins) != 0
            {
                return Err(python_error(py));
            }
            *out = insert(dict.into_raw())?;
        }
        Ok(())
    })
}

/// Imports the module `name` (UTF-8, dotted names allowed) and writes a handle
/// to it to `out`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`ModuleNotFoundError` or an error while importing),
/// `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_import(name: *const c_char, out: *mut pyb_object) -> pyb_status {
    ffi_boundary("pyb_import", || {
        utf8_arg(name, "name")?;
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        // SAFETY: GIL held; `name` is a checked C string.
        *out = result_handle(gil.python(), unsafe { ffi::PyImport_ImportModule(name) })?;
        Ok(())
    })
}

/// Writes `object.name` to `out`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`AttributeError`, or a property raised),
/// `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_getattr(
    object: pyb_object,
    name: *const c_char,
    out: *mut pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_getattr", || {
        utf8_arg(name, "name")?;
        let out = out_ptr(out, "out")?;
        *out = with_object(object, |py, target| {
            // SAFETY: GIL held; `target` is live; `name` is a checked C string.
            result_value(py, unsafe { ffi::PyObject_GetAttrString(target, name) })
        })?;
        Ok(())
    })
}

/// Sets `object.name = value`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON`, `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`,
/// `PYB_E_INVALID_ARGUMENT` (bad value).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_setattr(
    object: pyb_object,
    name: *const c_char,
    value: *const pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_setattr", || {
        utf8_arg(name, "name")?;
        let value = slice_arg(value, 1, "value")?;
        let gil = enter_for(object)?;
        let target = new_reference(object)?;
        let mut refs = Refs::new(gil.python());
        refs.push_raw(target);
        refs.push_values(value, "value")?;
        let value = refs.as_slice()[1];
        // SAFETY: GIL held; both objects are live; `name` is a checked C string.
        if unsafe { ffi::PyObject_SetAttrString(target, name, value) } != 0 {
            return Err(python_error(gil.python()));
        }
        Ok(())
    })
}

/// Writes `object[key]` to `out`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`KeyError`, `IndexError`, `TypeError`, ...),
/// `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_getitem(
    object: pyb_object,
    key: *const pyb_value,
    out: *mut pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_getitem", || {
        let key = slice_arg(key, 1, "key")?;
        check_out(out, "out")?;
        let gil = enter_for(object)?;
        let mut refs = Refs::new(gil.python());
        refs.push_raw(new_reference(object)?);
        refs.push_values(key, "key")?;
        let [target, key] = refs.as_slice() else {
            unreachable!("two references were pushed")
        };
        // SAFETY: GIL held; both objects are live.
        let value = result_value(gil.python(), unsafe {
            ffi::PyObject_GetItem(*target, *key)
        })?;
        *out_ptr(out, "out")? = value;
        Ok(())
    })
}

/// Sets `object[key] = value`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON`, `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_setitem(
    object: pyb_object,
    key: *const pyb_value,
    value: *const pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_setitem", || {
        let key = slice_arg(key, 1, "key")?;
        let value = slice_arg(value, 1, "value")?;
        let gil = enter_for(object)?;
        let mut refs = Refs::new(gil.python());
        refs.push_raw(new_reference(object)?);
        refs.push_values(key, "key")?;
        refs.push_values(value, "value")?;
        let [target, key, value] = refs.as_slice() else {
            unreachable!("three references were pushed")
        };
        // SAFETY: GIL held; all three are live.
        if unsafe { ffi::PyObject_SetItem(*target, *key, *value) } != 0 {
            return Err(python_error(gil.python()));
        }
        Ok(())
    })
}

/// Writes `len(object)` to `out`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`TypeError`: no length), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_len(object: pyb_object, out: *mut usize) -> pyb_status {
    ffi_boundary("pyb_len", || {
        let out = out_ptr(out, "out")?;
        *out = with_object(object, |py, target| {
            // SAFETY: GIL held; `target` is live.
            match unsafe { ffi::PyObject_Size(target) } {
                len if len < 0 => Err(python_error(py)),
                len => Ok(len as usize),
            }
        })?;
        Ok(())
    })
}

/// Writes a handle to `iter(object)` to `out`; step it with `pyb_iter_next`.
/// Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`TypeError`: not iterable), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_iter(object: pyb_object, out: *mut pyb_object) -> pyb_status {
    ffi_boundary("pyb_iter", || {
        let out = out_ptr(out, "out")?;
        *out = with_object(object, |py, target| {
            // SAFETY: GIL held; `target` is live.
            result_handle(py, unsafe { ffi::PyObject_GetIter(target) })
        })?;
        Ok(())
    })
}

/// Advances an iterator: writes the next item to `out` and `false` to
/// `done_out`, or, when the iterator is exhausted, `None` to `out` and `true`
/// to `done_out`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (the iterator raised), `PYB_E_WRONG_TYPE` (not an
/// iterator: call `pyb_iter` first), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_iter_next(
    iterator: pyb_object,
    out: *mut pyb_value,
    done_out: *mut bool,
) -> pyb_status {
    ffi_boundary("pyb_iter_next", || {
        let out = out_ptr(out, "out")?;
        let done_out = out_ptr(done_out, "done_out")?;
        let item = with_object(iterator, |py, target| {
            // SAFETY: GIL held; `target` is live.
            unsafe {
                if ffi::PyIter_Check(target) == 0 {
                    return Err(Error::new(
                        PYB_E_WRONG_TYPE,
                        format!(
                            "a '{}' is not an iterator; get one with pyb_iter",
                            object::type_name(target)
                        ),
                    ));
                }
                let item = ffi::PyIter_Next(target);
                if item.is_null() && !ffi::PyErr_Occurred().is_null() {
                    return Err(python_error(py));
                }
                if item.is_null() {
                    Ok(None)
                } else {
                    from_python(item).map(Some)
                }
            }
        })?;
        *done_out = item.is_none();
        *out = item.unwrap_or_else(pyb_value::none);
        Ok(())
    })
}

/// Builds the call arguments: a reserved slot (for PY_VECTORCALL_ARGUMENTS_OFFSET),
/// optionally `self`, then the converted values; and the kwnames tuple.
fn call_arguments<'py>(
    py: pyo3::Python<'py>,
    refs: &mut Refs<'py>,
    receiver: *mut ffi::PyObject,
    args: &[pyb_value],
    kwnames: &[*const c_char],
) -> Result<Option<Owned<'py>>> {
    // Filled in place: the reference array is too big to move around by value
    // on the hottest call path.
    refs.push(None);
    refs.push_raw(receiver);
    refs.push_values(args, "args")?;
    if kwnames.is_empty() {
        return Ok(None);
    }
    // SAFETY: GIL held; the tuple is filled completely before use (an
    // unfilled slot is NULL, which its deallocation skips).
    unsafe {
        let names = Owned::new(py, ffi::PyTuple_New(kwnames.len() as isize))?;
        for (index, &name) in kwnames.iter().enumerate() {
            let text = utf8_arg(name, &format!("kwnames[{index}]"))?;
            ffi::PyTuple_SET_ITEM(
                names.as_ptr(),
                index as isize,
                Owned::str(py, text)?.into_raw(),
            );
        }
        Ok(Some(names))
    }
}

/// Checks a call's argument arrays: `args` holds `nargs` positional values then
/// `nkwargs` keyword values named by `kwnames`.
fn call_inputs<'a>(
    args: *const pyb_value,
    nargs: usize,
    kwnames: *const *const c_char,
    nkwargs: usize,
) -> Result<(&'a [pyb_value], &'a [*const c_char])> {
    let total = nargs.checked_add(nkwargs).ok_or_else(|| {
        Error::invalid_argument(format!("nargs {nargs} + nkwargs {nkwargs} overflows"))
    })?;
    Ok((
        slice_arg(args, total, "args")?,
        slice_arg(kwnames, nkwargs, "kwnames")?,
    ))
}

/// Calls `callable(*args, **kwargs)` and writes the result to `out`. `args`
/// holds `nargs` positional values followed by `nkwargs` keyword values whose
/// names (UTF-8) are in `kwnames`; both arrays may be NULL when empty. Any
/// thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (the call raised), `PYB_E_BAD_HANDLE`,
/// `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (a bad value; the message
/// names `args[i]`), `PYB_E_OUT_OF_MEMORY` (`nargs` too large to allocate for).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_call(
    callable: pyb_object,
    args: *const pyb_value,
    nargs: usize,
    kwnames: *const *const c_char,
    nkwargs: usize,
    out: *mut pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_call", || {
        invoke(callable, None, args, nargs, kwnames, nkwargs, out)
    })
}

/// Calls `object.name(*args, **kwargs)` and writes the result to `out`;
/// arguments as for `pyb_call`. Any thread; takes the GIL for the call if needed.
///
/// Errors: as `pyb_call`, plus `PYB_E_PYTHON` with `AttributeError` when there
/// is no such method.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_call_method(
    object: pyb_object,
    name: *const c_char,
    args: *const pyb_value,
    nargs: usize,
    kwnames: *const *const c_char,
    nkwargs: usize,
    out: *mut pyb_value,
) -> pyb_status {
    ffi_boundary("pyb_call_method", || {
        let method = utf8_arg(name, "name")?;
        invoke(object, Some(method), args, nargs, kwnames, nkwargs, out)
    })
}

/// `target(*args, **kwargs)`, or `target.method(...)` when `method` is given:
/// the body of `pyb_call` and `pyb_call_method`.
fn invoke(
    target: pyb_object,
    method: Option<&str>,
    args: *const pyb_value,
    nargs: usize,
    kwnames: *const *const c_char,
    nkwargs: usize,
    out: *mut pyb_value,
) -> Result<()> {
    let (args, kwnames) = call_inputs(args, nargs, kwnames, nkwargs)?;
    check_out(out, "out")?;
    let gil = enter_for(target)?;
    let py = gil.python();
    let target = new_reference(target)?;
    // `refs` holds [reserved, target, args...] and releases them all on drop;
    // the reserved slot lets CPython prepend `self` without copying.
    let mut refs = Refs::new(py);
    refs.reserve(args.len() + 2, "nargs")?;
    let names = call_arguments(py, &mut refs, target, args, kwnames)?;
    let names = ptr_or_null(&names);
    // SAFETY: GIL held; `refs` is laid out as described above.
    let result = unsafe {
        match method {
            None => ffi::PyObject_Vectorcall(
                target,
                refs.as_mut_ptr().add(2),
                nargs | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                names,
            ),
            Some(method) => ffi::PyObject_VectorcallMethod(
                Owned::str(py, method)?.as_ptr(),
                refs.as_mut_ptr().add(1),
                (nargs + 1) | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                names,
            ),
        }
    };
    drop(refs);
    *out_ptr(out, "out")? = result_value(py, result)?;
    Ok(())
}

/// Builds a sequence from `count` values with `build` (a tuple or list constructor).
fn build_sequence(
    items: *const pyb_value,
    count: usize,
    out: *mut pyb_object,
    new: unsafe extern "C" fn(ffi::Py_ssize_t) -> *mut ffi::PyObject,
    set: unsafe fn(*mut ffi::PyObject, ffi::Py_ssize_t, *mut ffi::PyObject),
) -> Result<()> {
    let items = slice_arg(items, count, "items")?;
    check_out(out, "out")?;
    let gil = enter()?;
    let py = gil.python();
    let mut refs = Refs::new(py);
    refs.reserve(count, "count")?;
    refs.push_values(items, "items")?;
    // SAFETY: GIL held; each SET steals one reference, taken over from `refs`.
    let handle = unsafe {
        let sequence = Owned::new(py, new(count as isize))?;
        for (index, item) in refs.as_slice().iter().enumerate() {
            ffi::Py_IncRef(*item);
            set(sequence.as_ptr(), index as isize, *item);
        }
        insert(sequence.into_raw())?
    };
    drop(refs);
    *out_ptr(out, "out")? = handle;
    Ok(())
}

/// Builds a tuple from `count` values and writes a handle to it to `out`.
/// `items` may be NULL when `count` is 0. Any thread; takes the GIL if needed.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (names `items[i]`), `PYB_E_BAD_HANDLE`,
/// `PYB_E_OUT_OF_MEMORY` (`count` too large to allocate for).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_tuple_new(
    items: *const pyb_value,
    count: usize,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_tuple_new", || {
        build_sequence(
            items,
            count,
            out,
            ffi::PyTuple_New,
            |tuple, index, item| unsafe { ffi::PyTuple_SET_ITEM(tuple, index, item) },
        )
    })
}

/// Builds a list from `count` values and writes a handle to it to `out`.
/// `items` may be NULL when `count` is 0. Any thread; takes the GIL if needed.
///
/// Errors: as `pyb_tuple_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_list_new(
    items: *const pyb_value,
    count: usize,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_list_new", || {
        build_sequence(
            items,
            count,
            out,
            ffi::PyList_New,
            |list, index, item| unsafe { ffi::PyList_SET_ITEM(list, index, item) },
        )
    })
}

/// Builds a dict from `count` key/value pairs (`keys[i]: values[i]`; later
/// duplicates win) and writes a handle to it to `out`. The arrays may be NULL
/// when `count` is 0. Any thread; takes the GIL if needed.
///
/// Errors: `PYB_E_PYTHON` (an unhashable key), `PYB_E_NULL_ARGUMENT`,
/// `PYB_E_INVALID_ARGUMENT`, `PYB_E_BAD_HANDLE`, `PYB_E_OUT_OF_MEMORY` (`count`
/// too large to allocate for).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_dict_new(
    keys: *const pyb_value,
    values: *const pyb_value,
    count: usize,
    out: *mut pyb_object,
) -> pyb_status {
    ffi_boundary("pyb_dict_new", || {
        let keys = slice_arg(keys, count, "keys")?;
        let values = slice_arg(values, count, "values")?;
        check_out(out, "out")?;
        let gil = enter()?;
        let py = gil.python();
        let mut refs = Refs::new(py);
        refs.reserve(2 * count, "count")?;
        // SAFETY: GIL held.
        let dict = Owned::new(py, unsafe { ffi::PyDict_New() })?;
        refs.push_values(keys, "keys")?;
        refs.push_values(values, "values")?;
        let all = refs.as_slice();
        for index in 0..count {
            let (key, value) = (all[index], all[count + index]);
            // SAFETY: GIL held; all live.
            if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key, value) } != 0 {
                return Err(python_error(py).context(&format!("keys[{index}]")));
            }
        }
        let handle = insert(dict.into_raw())?;
        drop(refs);
        *out_ptr(out, "out")? = handle;
        Ok(())
    })
}
