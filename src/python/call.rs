//! Using Python objects for the host: run and evaluate code, import, get and
//! set attributes and items, call, take lengths, iterate, and build
//! containers. Each function takes the GIL token of the caller's scope
//! (`capi/call.rs` opens it). Values passed in are borrowed; `OBJECT` results
//! are new handles the caller owns. A Python exception becomes a
//! `PYB_E_PYTHON` error and is cleared from the interpreter.

use std::ffi::{CStr, c_int};

use pyo3::{Python, ffi};

use crate::abi::handles::pyb_object;
use crate::abi::status::*;
use crate::abi::value::pyb_value;
use crate::python::exception::{SCOPE_NAME, python_error};
use crate::python::handles::{borrow, insert, new_reference};
use crate::python::object::{type_name, with_object};
use crate::python::owned::{Owned, ptr_or_null};
use crate::python::value::{from_python, to_python};
use crate::runtime::error::{Error, Result, reserve_for_host_count};

/// Owned references, dropped together; small counts stay on the stack. Kept
/// as a plain `*mut PyObject` array (NULL for an empty slot), so a vectorcall
/// takes it as it is and a drop touches only the slots in use; references come
/// in as `Owned` and are released here (this is the hottest call path).
struct Refs<'py> {
    py: Python<'py>,
    inline: [*mut ffi::PyObject; INLINE_REFS],
    heap: Vec<*mut ffi::PyObject>,
    len: usize,
}

const INLINE_REFS: usize = 10;

impl<'py> Refs<'py> {
    /// Room for up to `INLINE_REFS` references, on the stack.
    fn new(py: Python<'py>) -> Refs<'py> {
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
            let object = to_python(self.py, value)
                .map_err(|error| error.context(&format!("{name}[{index}]")))?;
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
fn result_value(py: Python<'_>, object: *mut ffi::PyObject) -> Result<pyb_value> {
    if object.is_null() {
        Err(python_error(py))
    } else {
        from_python(py, object)
    }
}

/// Turns a new reference (or NULL with an exception set) into a new handle.
fn result_handle(py: Python<'_>, object: *mut ffi::PyObject) -> Result<pyb_object> {
    if object.is_null() {
        Err(python_error(py))
    } else {
        insert(py, object)
    }
}

/// The globals of `scope` (0 for `__main__`), borrowed.
fn scope_globals(py: Python<'_>, scope: pyb_object) -> Result<*mut ffi::PyObject> {
    if scope == 0 {
        // SAFETY: GIL held (the token); __main__ always exists in a running interpreter.
        unsafe {
            let main = ffi::PyImport_AddModule(c"__main__".as_ptr());
            if main.is_null() {
                return Err(python_error(py));
            }
            return Ok(ffi::PyModule_GetDict(main));
        }
    }
    let globals = borrow(py, scope)?;
    // SAFETY: GIL held; `globals` is live.
    if unsafe { ffi::PyDict_Check(globals) } == 0 {
        return Err(Error::new(
            PYB_E_WRONG_TYPE,
            format!(
                "scope must be a dict (from pyb_scope_new) or 0 for __main__, not a '{}'",
                type_name(py, globals)
            ),
        ));
    }
    Ok(globals)
}

/// Compiles `code` under `filename` and runs it in `scope` with CPython's
/// `mode` (statements or one expression); returns its result.
fn run_code<'py>(
    py: Python<'py>,
    code: &CStr,
    filename: &CStr,
    scope: pyb_object,
    mode: c_int,
) -> Result<Owned<'py>> {
    let globals = scope_globals(py, scope)?;
    // SAFETY: GIL held; `globals` is a live dict, held for the run (a release
    // of the scope handle inside the code only queues or needs this thread).
    unsafe {
        let globals = Owned::from_borrowed(py, globals);
        let compiled = Owned::new(
            py,
            ffi::Py_CompileString(code.as_ptr(), filename.as_ptr(), mode),
        )?;
        Owned::new(
            py,
            ffi::PyEval_EvalCode(compiled.as_ptr(), globals.as_ptr(), globals.as_ptr()),
        )
    }
}

/// Runs statements (a script) in `scope` (0 for `__main__`).
pub(crate) fn run(py: Python<'_>, code: &CStr, filename: &CStr, scope: pyb_object) -> Result<()> {
    run_code(py, code, filename, scope, ffi::Py_file_input).map(drop)
}

/// Evaluates one expression in `scope` (0 for `__main__`).
pub(crate) fn eval(
    py: Python<'_>,
    expr: &CStr,
    filename: &CStr,
    scope: pyb_object,
) -> Result<pyb_value> {
    let result = run_code(py, expr, filename, scope, ffi::Py_eval_input)?;
    from_python(py, result.into_raw())
}

/// A fresh namespace: a dict with `__builtins__` and `__name__ = "__pybridge__"`.
pub(crate) fn new_scope(py: Python<'_>) -> Result<pyb_object> {
    // SAFETY: GIL held; `dict` and `name` own their references.
    unsafe {
        let dict = Owned::new(py, ffi::PyDict_New())?;
        let name = Owned::str(py, SCOPE_NAME)?;
        let builtins = ffi::PyEval_GetBuiltins();
        if ffi::PyDict_SetItemString(dict.as_ptr(), c"__name__".as_ptr(), name.as_ptr()) != 0
            || ffi::PyDict_SetItemString(dict.as_ptr(), c"__builtins__".as_ptr(), builtins) != 0
        {
            return Err(python_error(py));
        }
        insert(py, dict.into_raw())
    }
}

/// `import name` (dotted names allowed).
pub(crate) fn import(py: Python<'_>, name: &CStr) -> Result<pyb_object> {
    // SAFETY: GIL held; `name` is a C string.
    result_handle(py, unsafe { ffi::PyImport_ImportModule(name.as_ptr()) })
}

/// `object.name`.
pub(crate) fn getattr(py: Python<'_>, object: pyb_object, name: &CStr) -> Result<pyb_value> {
    with_object(py, object, |target| {
        // SAFETY: GIL held; `target` is live; `name` is a C string.
        result_value(py, unsafe {
            ffi::PyObject_GetAttrString(target, name.as_ptr())
        })
    })
}

/// `object.name = value`.
pub(crate) fn setattr(
    py: Python<'_>,
    object: pyb_object,
    name: &CStr,
    value: &pyb_value,
) -> Result<()> {
    let mut refs = Refs::new(py);
    refs.push_raw(new_reference(py, object)?);
    refs.push_values(std::slice::from_ref(value), "value")?;
    let [target, value] = refs.as_slice() else {
        unreachable!("two references were pushed")
    };
    // SAFETY: GIL held; both objects are live; `name` is a C string.
    if unsafe { ffi::PyObject_SetAttrString(*target, name.as_ptr(), *value) } != 0 {
        return Err(python_error(py));
    }
    Ok(())
}

/// `object[key]`.
pub(crate) fn getitem(py: Python<'_>, object: pyb_object, key: &pyb_value) -> Result<pyb_value> {
    let mut refs = Refs::new(py);
    refs.push_raw(new_reference(py, object)?);
    refs.push_values(std::slice::from_ref(key), "key")?;
    let [target, key] = refs.as_slice() else {
        unreachable!("two references were pushed")
    };
    // SAFETY: GIL held; both objects are live.
    result_value(py, unsafe { ffi::PyObject_GetItem(*target, *key) })
}

/// `object[key] = value`.
pub(crate) fn setitem(
    py: Python<'_>,
    object: pyb_object,
    key: &pyb_value,
    value: &pyb_value,
) -> Result<()> {
    let mut refs = Refs::new(py);
    refs.push_raw(new_reference(py, object)?);
    refs.push_values(std::slice::from_ref(key), "key")?;
    refs.push_values(std::slice::from_ref(value), "value")?;
    let [target, key, value] = refs.as_slice() else {
        unreachable!("three references were pushed")
    };
    // SAFETY: GIL held; all three are live.
    if unsafe { ffi::PyObject_SetItem(*target, *key, *value) } != 0 {
        return Err(python_error(py));
    }
    Ok(())
}

/// `len(object)`.
pub(crate) fn len(py: Python<'_>, object: pyb_object) -> Result<usize> {
    with_object(py, object, |target| {
        // SAFETY: GIL held; `target` is live.
        match unsafe { ffi::PyObject_Size(target) } {
            len if len < 0 => Err(python_error(py)),
            len => Ok(len as usize),
        }
    })
}

/// `iter(object)`.
pub(crate) fn iter(py: Python<'_>, object: pyb_object) -> Result<pyb_object> {
    with_object(py, object, |target| {
        // SAFETY: GIL held; `target` is live.
        result_handle(py, unsafe { ffi::PyObject_GetIter(target) })
    })
}

/// `next(iterator)`, or `None` when it is exhausted.
pub(crate) fn next(py: Python<'_>, iterator: pyb_object) -> Result<Option<pyb_value>> {
    with_object(py, iterator, |target| {
        // SAFETY: GIL held; `target` is live.
        unsafe {
            if ffi::PyIter_Check(target) == 0 {
                return Err(Error::new(
                    PYB_E_WRONG_TYPE,
                    format!(
                        "a '{}' is not an iterator; get one with pyb_iter",
                        type_name(py, target)
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
                from_python(py, item).map(Some)
            }
        }
    })
}

/// A call's arguments: `values` holds the positional values, then one value
/// for each keyword name in `keywords`.
pub(crate) struct CallArguments<'a> {
    pub(crate) values: &'a [pyb_value],
    pub(crate) keywords: &'a [&'a str],
}

impl CallArguments<'_> {
    fn positional(&self) -> usize {
        self.values.len() - self.keywords.len()
    }
}

/// `target(*args, **kwargs)`, or `target.method(...)` when `method` is given.
pub(crate) fn call(
    py: Python<'_>,
    target: pyb_object,
    method: Option<&str>,
    arguments: &CallArguments<'_>,
) -> Result<pyb_value> {
    let nargs = arguments.positional();
    let target = new_reference(py, target)?;
    // `refs` holds [reserved, target, args...] and releases them all on drop;
    // the reserved slot lets CPython prepend `self` without copying.
    let mut refs = Refs::new(py);
    refs.reserve(arguments.values.len() + 2, "nargs")?;
    refs.push(None);
    refs.push_raw(target);
    refs.push_values(arguments.values, "args")?;
    let names = keyword_names(py, arguments.keywords)?;
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
    result_value(py, result)
}

/// The kwnames tuple of a vectorcall; `None` when there are no keywords.
fn keyword_names<'py>(py: Python<'py>, keywords: &[&str]) -> Result<Option<Owned<'py>>> {
    if keywords.is_empty() {
        return Ok(None);
    }
    // SAFETY: GIL held; the tuple is filled completely before use (an
    // unfilled slot is NULL, which its deallocation skips).
    unsafe {
        let names = Owned::new(py, ffi::PyTuple_New(keywords.len() as isize))?;
        for (index, name) in keywords.iter().enumerate() {
            ffi::PyTuple_SET_ITEM(
                names.as_ptr(),
                index as isize,
                Owned::str(py, name)?.into_raw(),
            );
        }
        Ok(Some(names))
    }
}

/// Which sequence `new_sequence` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sequence {
    Tuple,
    List,
}

/// A new tuple or list of `items`.
pub(crate) fn new_sequence(
    py: Python<'_>,
    kind: Sequence,
    items: &[pyb_value],
) -> Result<pyb_object> {
    let mut refs = Refs::new(py);
    refs.reserve(items.len(), "count")?;
    refs.push_values(items, "items")?;
    let count = items.len() as isize;
    // SAFETY: GIL held; each SET steals one reference, taken over from `refs`.
    unsafe {
        let sequence = Owned::new(
            py,
            match kind {
                Sequence::Tuple => ffi::PyTuple_New(count),
                Sequence::List => ffi::PyList_New(count),
            },
        )?;
        for (index, item) in refs.as_slice().iter().enumerate() {
            ffi::Py_IncRef(*item);
            match kind {
                Sequence::Tuple => ffi::PyTuple_SET_ITEM(sequence.as_ptr(), index as isize, *item),
                Sequence::List => ffi::PyList_SET_ITEM(sequence.as_ptr(), index as isize, *item),
            }
        }
        insert(py, sequence.into_raw())
    }
}

/// A new dict of `keys[i]: values[i]` (later duplicates win; the slices have
/// the same length).
pub(crate) fn new_dict(
    py: Python<'_>,
    keys: &[pyb_value],
    values: &[pyb_value],
) -> Result<pyb_object> {
    let count = keys.len();
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
    insert(py, dict.into_raw())
}
