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

use std::ffi::{CStr, c_char};

use crate::abi::handles::pyb_object;
use crate::abi::status::pyb_status;
use crate::abi::value::pyb_value;
use crate::capi::boundary::{
    check_out, ffi_boundary, optional_utf8_c_arg, out_ptr, slice_arg, utf8_arg, utf8_c_arg,
};
use crate::capi::object::read_object;
use crate::python::call::{self, CallArguments, Sequence};
use crate::python::object::{enter, enter_for};
use crate::runtime::error::{Error, Result};

const DEFAULT_FILENAME: &CStr = c"<pybridge>";

/// Reads the one value `value` points to.
fn one_value<'a>(value: *const pyb_value, name: &str) -> Result<&'a pyb_value> {
    Ok(&slice_arg(value, 1, name)?[0])
}

/// The body of `pyb_call` and `pyb_call_method`: checks the argument arrays
/// (`args` holds `nargs` positional values then `nkwargs` keyword values named
/// by `kwnames`), calls, and writes the result.
#[inline(always)]
fn invoke(
    target: pyb_object,
    method: Option<&str>,
    args: *const pyb_value,
    nargs: usize,
    kwnames: *const *const c_char,
    nkwargs: usize,
    out: *mut pyb_value,
) -> Result<()> {
    let total = nargs.checked_add(nkwargs).ok_or_else(|| {
        Error::invalid_argument(format!("nargs {nargs} + nkwargs {nkwargs} overflows"))
    })?;
    let values = slice_arg(args, total, "args")?;
    let keywords = keyword_names(slice_arg(kwnames, nkwargs, "kwnames")?)?;
    check_out(out, "out")?;
    let gil = enter_for(target)?;
    let arguments = CallArguments {
        values,
        keywords: &keywords,
    };
    let result = call::call(gil.python(), target, method, &arguments)?;
    *out_ptr(out, "out")? = result;
    Ok(())
}

/// Reads the keyword names of a call (no allocation when there are none).
#[inline(always)]
fn keyword_names<'a>(kwnames: &[*const c_char]) -> Result<Vec<&'a str>> {
    if kwnames.is_empty() {
        return Ok(Vec::new());
    }
    kwnames
        .iter()
        .enumerate()
        .map(|(index, &name)| utf8_arg(name, &format!("kwnames[{index}]")))
        .collect()
}

/// The body of `pyb_tuple_new` and `pyb_list_new`.
fn build_sequence(
    kind: Sequence,
    items: *const pyb_value,
    count: usize,
    out: *mut pyb_object,
) -> Result<()> {
    let items = slice_arg(items, count, "items")?;
    check_out(out, "out")?;
    let gil = enter()?;
    let sequence = call::new_sequence(gil.python(), kind, items)?;
    *out_ptr(out, "out")? = sequence;
    Ok(())
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
        let code = utf8_c_arg(code, "code")?;
        let filename = optional_utf8_c_arg(filename, "filename")?.unwrap_or(DEFAULT_FILENAME);
        let gil = enter_for(scope)?;
        call::run(gil.python(), code, filename, scope)
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
        let expr = utf8_c_arg(expr, "code")?;
        let filename = optional_utf8_c_arg(filename, "filename")?.unwrap_or(DEFAULT_FILENAME);
        let gil = enter_for(scope)?;
        *out = call::eval(gil.python(), expr, filename, scope)?;
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
        *out = call::new_scope(gil.python())?;
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
        let name = utf8_c_arg(name, "name")?;
        let out = out_ptr(out, "out")?;
        let gil = enter()?;
        *out = call::import(gil.python(), name)?;
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
        let name = utf8_c_arg(name, "name")?;
        read_object(object, out, |gil| call::getattr(gil.python(), object, name))
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
        let name = utf8_c_arg(name, "name")?;
        let value = one_value(value, "value")?;
        let gil = enter_for(object)?;
        call::setattr(gil.python(), object, name, value)
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
        let key = one_value(key, "key")?;
        check_out(out, "out")?;
        let gil = enter_for(object)?;
        let value = call::getitem(gil.python(), object, key)?;
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
        let key = one_value(key, "key")?;
        let value = one_value(value, "value")?;
        let gil = enter_for(object)?;
        call::setitem(gil.python(), object, key, value)
    })
}

/// Writes `len(object)` to `out`. Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`TypeError`: no length), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_len(object: pyb_object, out: *mut usize) -> pyb_status {
    ffi_boundary("pyb_len", || {
        read_object(object, out, |gil| call::len(gil.python(), object))
    })
}

/// Writes a handle to `iter(object)` to `out`; step it with `pyb_iter_next`.
/// Any thread; takes the GIL for the call if needed.
///
/// Errors: `PYB_E_PYTHON` (`TypeError`: not iterable), `PYB_E_BAD_HANDLE`, `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_iter(object: pyb_object, out: *mut pyb_object) -> pyb_status {
    ffi_boundary("pyb_iter", || {
        read_object(object, out, |gil| call::iter(gil.python(), object))
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
        let gil = enter_for(iterator)?;
        let item = call::next(gil.python(), iterator)?;
        *done_out = item.is_none();
        *out = item.unwrap_or_else(pyb_value::none);
        Ok(())
    })
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
        build_sequence(Sequence::Tuple, items, count, out)
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
        build_sequence(Sequence::List, items, count, out)
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
        let dict = call::new_dict(gil.python(), keys, values)?;
        *out_ptr(out, "out")? = dict;
        Ok(())
    })
}
