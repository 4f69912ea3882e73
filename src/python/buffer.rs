//! Zero-copy buffers both ways: a view of any object's memory for the host
//! (`pyb_buffer_get`), and host memory as a Python `memoryview`
//! (`pyb_buffer_from_host`) with a callback when Python lets go of it.
//!
//! A view holds its own export (`PyObject_GetBuffer`) in a small object of
//! ours, `pybridge.BufferView`, handed out as an ordinary object handle: the
//! export lasts while the object does, and releasing a handle already works
//! from any thread, with or without the GIL, in the right interpreter, and
//! after a shutdown. Not a `memoryview`: Python code can end any memoryview it
//! is given (`with m:`, `m.release()`), and the host's pointer would dangle.
//! Host memory is exported by another small type, `pybridge.HostMemory`. Both
//! are made once per interpreter (heap types belong to the interpreter that
//! made them) and kept in that interpreter's state dict.
//!
//! One file over 500 lines: the two exporting types share one per-interpreter
//! type cache, one release path and one format table.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use pyo3::{Python, ffi};

use crate::abi::buffer::{PYB_BUFFER_WRITABLE, pyb_buffer};
use crate::abi::handles::pyb_object;
use crate::abi::host_function::pyb_free_fn;
use crate::abi::status::*;
use crate::python::exception::python_error;
use crate::python::handles::insert;
use crate::python::object::{type_name, with_object};
use crate::python::owned::Owned;
use crate::runtime::error::{Error, Result};

/// `pybridge.BufferView`: a view's own export of an object's memory.
/// `repr(C)` with CPython's object header first.
#[repr(C)]
struct BufferView {
    header: ffi::PyObject,
    /// From `PyObject_GetBuffer`; released when the object is freed.
    export: ffi::Py_buffer,
    /// The object asked, which Python consumers of this one are sent to.
    source: *mut ffi::PyObject,
    /// `ndim` item counts then `ndim` byte steps (filled in where the
    /// exporter gave none), pointed at by the host's `pyb_buffer`.
    dims: *mut [isize],
}

/// A view of the memory of the object behind `handle`.
pub(crate) fn view(py: Python<'_>, handle: pyb_object, flags: u32) -> Result<pyb_buffer> {
    if flags & !PYB_BUFFER_WRITABLE != 0 {
        return Err(Error::invalid_argument(format!(
            "unknown pyb_buffer_get flags {flags:#x}; the only flag is PYB_BUFFER_WRITABLE"
        )));
    }
    with_object(py, handle, |object| {
        // SAFETY (this block): GIL held; `object` is alive for the call.
        if unsafe { ffi::PyObject_CheckBuffer(object) } == 0 {
            return Err(Error::new(
                PYB_E_WRONG_TYPE,
                format!(
                    "a {} does not export its memory (no buffer protocol); bytes, \
                     bytearray, array.array, memoryview and NumPy arrays do",
                    type_name(py, object)
                ),
            ));
        }
        let kind = interpreter_type(py, &BUFFER_VIEW)?;
        let holder = unsafe { ffi::PyType_GenericAlloc(kind.as_ptr().cast(), 0) };
        let holder = unsafe { Owned::from_raw(py, holder) }.ok_or_else(|| python_error(py))?;
        let this = holder.as_ptr().cast::<BufferView>();
        // SAFETY: a fresh, zeroed BufferView only this thread sees: its
        // dealloc releases whatever is stored here, on every path below.
        let export = unsafe {
            ffi::Py_IncRef(object);
            (*this).source = object;
            if ffi::PyObject_GetBuffer(object, &raw mut (*this).export, ffi::PyBUF_FULL_RO) != 0 {
                // A failed request leaves nothing to release.
                (*this).export.obj = std::ptr::null_mut();
                return Err(python_error(py));
            }
            &(*this).export
        };
        if flags & PYB_BUFFER_WRITABLE != 0 && export.readonly != 0 {
            return Err(Error::new(
                PYB_E_WRONG_TYPE,
                format!(
                    "the memory of a {} is read-only; ask without PYB_BUFFER_WRITABLE",
                    type_name(py, object)
                ),
            ));
        }
        if !export.suboffsets.is_null() {
            return Err(Error::new(
                PYB_E_UNSUPPORTED,
                format!(
                    "a {} exports indirect memory (PIL-style suboffsets), which a flat \
                     view cannot describe",
                    type_name(py, object)
                ),
            ));
        }
        let dims = dims_of(export);
        let ndim = dims.len() / 2;
        let (lowest, span) = extent(export, &dims[..ndim], &dims[ndim..]);
        let dims = Box::into_raw(dims);
        // SAFETY: ours until dealloc frees it; the host's pointers into it
        // stay valid while the holder lives.
        unsafe { (*this).dims = dims };
        let (shape, strides) = if ndim == 0 {
            (std::ptr::null(), std::ptr::null())
        } else {
            let first = dims.cast::<isize>().cast_const();
            (first, first.wrapping_add(ndim))
        };
        let view = pyb_buffer {
            struct_size: std::mem::size_of::<pyb_buffer>(),
            owner: 0,
            data: export.buf,
            len: export.len as usize,
            itemsize: export.itemsize as usize,
            readonly: export.readonly != 0,
            ndim: ndim as i32,
            format: if export.format.is_null() {
                c"B".as_ptr()
            } else {
                export.format
            },
            shape,
            strides,
            lowest,
            span,
        };
        Ok(pyb_buffer {
            owner: insert(py, holder.into_raw())?,
            ..view
        })
    })
}

/// An export's shape then strides, `2 * ndim` items. Exporters may leave
/// either NULL (a flat buffer, C-contiguous items); CPython's memoryview fills
/// them in the same way.
fn dims_of(export: &ffi::Py_buffer) -> Box<[isize]> {
    let ndim = export.ndim.max(0) as usize;
    let mut dims = vec![0; 2 * ndim].into_boxed_slice();
    if ndim == 0 {
        return dims;
    }
    let (shape, strides) = dims.split_at_mut(ndim);
    if export.shape.is_null() {
        shape[0] = export.len / export.itemsize.max(1);
    } else {
        // SAFETY: the exporter gives `ndim` items.
        shape.copy_from_slice(unsafe { std::slice::from_raw_parts(export.shape, ndim) });
    }
    if export.strides.is_null() {
        let mut step = export.itemsize;
        for (stride, count) in strides.iter_mut().zip(shape.iter()).rev() {
            *stride = step;
            step *= *count;
        }
    } else {
        // SAFETY: the exporter gives `ndim` items.
        strides.copy_from_slice(unsafe { std::slice::from_raw_parts(export.strides, ndim) });
    }
    dims
}

/// The lowest address any item's bytes occupy, and the bytes from it to the
/// end of the highest item: with a negative stride (a reversed view) the first
/// item in logical order, `buf`, is not the lowest.
fn extent(export: &ffi::Py_buffer, shape: &[isize], strides: &[isize]) -> (*mut c_void, usize) {
    if shape.contains(&0) {
        return (export.buf, 0);
    }
    let (mut down, mut up) = (0_isize, 0_isize);
    for (&count, &stride) in shape.iter().zip(strides) {
        let reach = (count - 1) * stride;
        if reach < 0 {
            down += reach;
        } else {
            up += reach;
        }
    }
    (
        export.buf.cast::<u8>().wrapping_offset(down).cast(),
        (up - down + export.itemsize) as usize,
    )
}

/// The exporter of host memory. `repr(C)` with CPython's object header first.
#[repr(C)]
struct HostMemory {
    header: ffi::PyObject,
    data: *mut c_void,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    /// The one dimension's item count and step, pointed at by exported views.
    shape: ffi::Py_ssize_t,
    stride: ffi::Py_ssize_t,
    readonly: bool,
    format: *mut c_char,
    on_release: pyb_free_fn,
    user_data: *mut c_void,
}

/// What `pyb_buffer_from_host` describes.
pub(crate) struct HostMemorySpec {
    pub data: *mut c_void,
    pub len: usize,
    pub format: CString,
    pub itemsize: usize,
    pub writable: bool,
    pub on_release: pyb_free_fn,
    pub user_data: *mut c_void,
}

/// A `memoryview` of host memory. On success `on_release` is called exactly
/// once, when Python drops the last reference to the memory; on error never.
pub(crate) fn from_host(py: Python<'_>, spec: HostMemorySpec) -> Result<pyb_object> {
    let format_size = item_size(&spec.format)?;
    if format_size != spec.itemsize {
        return Err(Error::invalid_argument(format!(
            "itemsize {} does not match format {:?}, whose items take {format_size} bytes",
            spec.itemsize, spec.format
        )));
    }
    if spec.len > isize::MAX as usize {
        return Err(Error::invalid_argument(format!(
            "len {} is over PTRDIFF_MAX ({}), the most a Python buffer can hold",
            spec.len,
            isize::MAX
        )));
    }
    if spec.len % spec.itemsize != 0 {
        return Err(Error::invalid_argument(format!(
            "len {} is not a whole number of {}-byte items",
            spec.len, spec.itemsize
        )));
    }
    if spec.data.is_null() && spec.len > 0 {
        return Err(Error::null_argument("data"));
    }
    let kind = interpreter_type(py, &HOST_MEMORY)?;
    // SAFETY: GIL held; a heap type of ours, whose instances are HostMemory.
    let exporter = unsafe { ffi::PyType_GenericAlloc(kind.as_ptr().cast(), 0) };
    let exporter = unsafe { Owned::from_raw(py, exporter) }.ok_or_else(|| python_error(py))?;
    let this = exporter.as_ptr().cast::<HostMemory>();
    // SAFETY: a fresh, zeroed HostMemory; only this thread sees it yet.
    unsafe {
        (*this).data = if spec.data.is_null() {
            // An empty export still needs a non-NULL address.
            std::ptr::NonNull::<u8>::dangling().as_ptr().cast()
        } else {
            spec.data
        };
        (*this).len = spec.len as isize;
        (*this).itemsize = spec.itemsize as isize;
        (*this).shape = (spec.len / spec.itemsize) as isize;
        (*this).stride = spec.itemsize as isize;
        (*this).readonly = !spec.writable;
        (*this).format = spec.format.into_raw();
    }
    // SAFETY: GIL held; a live exporter.
    let memoryview = unsafe { ffi::PyMemoryView_FromObject(exporter.as_ptr()) };
    let Some(memoryview) = (unsafe { Owned::from_raw(py, memoryview) }) else {
        return Err(python_error(py));
    };
    // Armed only now: every earlier failure leaves the memory with the host.
    // SAFETY: this thread holds the GIL, which guards the exporter.
    unsafe {
        (*this).on_release = spec.on_release;
        (*this).user_data = spec.user_data;
    }
    drop(exporter); // the memoryview keeps it
    insert(py, memoryview.into_raw())
}

/// The item characters `pyb_buffer_from_host` takes (`struct` module syntax).
const ITEM_CHARS: &str = "?cbBhHiIlLqQnNefdP";
/// The byte-order, size and alignment prefixes `struct` allows before them.
const ORDER_CHARS: &str = "@=<>!";

/// The size of the one item `format` describes: an optional `ORDER_CHARS`
/// prefix and one `ITEM_CHARS` character, with no repeat count. Anything else
/// describes several items (`"4B"`, `"dd"`), padding (`"x"`) or a string
/// (`"s"`, `"p"`), none of which is one item of a flat array; the refusal
/// says which.
fn item_size(format: &CStr) -> Result<usize> {
    let text = format.to_string_lossy();
    let refuse = |why: String| {
        Error::invalid_argument(format!(
            "format {format:?} is not a struct-module format of one item ({why}): give an \
             optional byte order ({ORDER_CHARS}) and one of {ITEM_CHARS}, without a repeat count"
        ))
    };
    let (order, item) = match text.strip_prefix(|c| ORDER_CHARS.contains(c)) {
        Some(rest) => (text.chars().next(), rest),
        None => (None, &*text),
    };
    let mut chars = item.chars();
    let Some(first) = chars.next() else {
        return Err(refuse(match order {
            Some(order) => format!("'{order}' is a byte order with no item after it"),
            None => "it is empty".to_string(),
        }));
    };
    // The first character that is not an item names the mistake; a format
    // of item characters alone has too many of them.
    if let Some(wrong) = item.chars().find(|c| !ITEM_CHARS.contains(*c)) {
        return Err(refuse(match wrong {
            '0'..='9' => {
                let count: String = item.chars().take_while(char::is_ascii_digit).collect();
                if count.is_empty() {
                    format!("'{wrong}' is a repeat count, which only comes before an item")
                } else {
                    format!("{count} is a repeat count")
                }
            }
            'x' => "'x' is padding, not an item".to_string(),
            's' | 'p' => format!("'{wrong}' is a string, not an item"),
            _ if ORDER_CHARS.contains(wrong) => {
                format!("'{wrong}' is a byte order, which only comes first")
            }
            _ => format!("'{wrong}' is not a struct item character"),
        }));
    }
    if chars.next().is_some() {
        return Err(refuse(format!(
            "it describes {} items",
            item.chars().count()
        )));
    }
    // Sized here, not by `PyBuffer_SizeFromFormat`: that runs `struct`'s
    // Python code, where an interrupting shutdown's pending exception fired
    // and the refusal then blamed the format (found by tests/c/fuzz_api.c).
    let native = matches!(order, None | Some('@'));
    item_size_of(first as u8, native).ok_or_else(|| {
        refuse(format!(
            "'{first}' has a native size only, so no byte order but '@'"
        ))
    })
}

/// The size `struct` gives one item: native sizes (`@` or no prefix) are the
/// C types'; standard sizes (`= < > !`) are fixed, and have no `n`, `N`, `P`.
fn item_size_of(item: u8, native: bool) -> Option<usize> {
    use std::mem::size_of;
    Some(match (item, native) {
        (b'?' | b'c' | b'b' | b'B', _) => 1,
        (b'h' | b'H' | b'e', _) => 2,
        (b'i' | b'I' | b'f', _) => 4,
        (b'q' | b'Q' | b'd', _) => 8,
        (b'l' | b'L', true) => size_of::<std::ffi::c_long>(),
        (b'l' | b'L', false) => 4,
        (b'n' | b'N', true) => size_of::<usize>(),
        (b'P', true) => size_of::<*const u8>(),
        _ => return None,
    })
}

/// One of our Python types, made per interpreter: its name is also its key
/// in the interpreter's state dict.
struct TypeDef {
    name: &'static CStr,
    doc: &'static CStr,
    basicsize: usize,
    dealloc: unsafe extern "C" fn(*mut ffi::PyObject),
    getbuffer: unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::Py_buffer, c_int) -> c_int,
    /// `tp_traverse` and `tp_clear`, for a type whose instances hold Python
    /// objects (and so may sit in reference cycles).
    gc: Option<(ffi::traverseproc, ffi::inquiry)>,
}

static BUFFER_VIEW: TypeDef = TypeDef {
    name: c"pybridge.BufferView",
    doc: c"The export behind a host's pyb_buffer view (pyb_buffer_get). memoryview(it) reads \
           the same memory; the export ends when the host releases the view and Python's last \
           reference is gone.",
    basicsize: std::mem::size_of::<BufferView>(),
    dealloc: buffer_view_dealloc,
    getbuffer: buffer_view_getbuffer,
    gc: Some((buffer_view_traverse, buffer_view_clear)),
};

static HOST_MEMORY: TypeDef = TypeDef {
    name: c"pybridge.HostMemory",
    doc: c"Host memory shared with Python by pybridge (pyb_buffer_from_host).",
    basicsize: std::mem::size_of::<HostMemory>(),
    dealloc: host_memory_dealloc,
    getbuffer: host_memory_getbuffer,
    gc: None,
};

/// This interpreter's copy of `def`, made on first use.
fn interpreter_type<'py>(py: Python<'py>, def: &TypeDef) -> Result<Owned<'py>> {
    // SAFETY (this function): GIL held by this thread in this interpreter.
    let dict = unsafe { ffi::PyInterpreterState_GetDict(ffi::PyInterpreterState_Get()) };
    if dict.is_null() {
        return Err(Error::new(
            PYB_E_PYTHON_UNUSABLE,
            "CPython gave no per-interpreter state dict".to_string(),
        ));
    }
    let found = unsafe { ffi::PyDict_GetItemString(dict, def.name.as_ptr()) };
    if !found.is_null() {
        return Ok(unsafe { Owned::from_borrowed(py, found) });
    }
    let slot = |slot, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
    let mut slots = vec![
        slot(ffi::Py_tp_dealloc, def.dealloc as *mut c_void),
        slot(ffi::Py_bf_getbuffer, def.getbuffer as *mut c_void),
        slot(ffi::Py_tp_doc, def.doc.as_ptr() as *mut c_void),
    ];
    let mut flags = ffi::Py_TPFLAGS_DEFAULT;
    if let Some((traverse, clear)) = def.gc {
        slots.push(slot(ffi::Py_tp_traverse, traverse as *mut c_void));
        slots.push(slot(ffi::Py_tp_clear, clear as *mut c_void));
        flags |= ffi::Py_TPFLAGS_HAVE_GC;
    }
    slots.push(ffi::PyType_Slot::default());
    let mut spec = ffi::PyType_Spec {
        name: def.name.as_ptr(),
        basicsize: def.basicsize as c_int,
        itemsize: 0,
        flags: flags as _,
        slots: slots.as_mut_ptr(),
    };
    let made = unsafe { Owned::from_raw(py, ffi::PyType_FromSpec(&mut spec)) }
        .ok_or_else(|| python_error(py))?;
    if unsafe { ffi::PyDict_SetItemString(dict, def.name.as_ptr(), made.as_ptr()) } != 0 {
        return Err(python_error(py));
    }
    Ok(made)
}

/// Frees an instance of one of our types.
///
/// # Safety
/// `object` is an instance of a heap type of ours, with no references left,
/// whose own fields are already let go.
unsafe fn free_instance(_py: Python<'_>, object: *mut ffi::PyObject) {
    // SAFETY: per the contract.
    unsafe {
        let kind = ffi::Py_TYPE(object);
        let free: ffi::freefunc = std::mem::transmute(ffi::PyType_GetSlot(kind, ffi::Py_tp_free));
        free(object.cast());
        // Instances of heap types own a reference to their type.
        ffi::Py_DECREF(kind.cast());
    }
}

/// `bf_getbuffer` of `pybridge.BufferView`: Python consumers (`memoryview(owner)`,
/// NumPy) get their own export from the object the view was asked of, whose
/// memory cannot move while the view's export lives.
unsafe extern "C" fn buffer_view_getbuffer(
    holder: *mut ffi::PyObject,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython calls it with the GIL and a live holder of our type,
    // whose `source` is set before any Python code can see it.
    unsafe { ffi::PyObject_GetBuffer((*holder.cast::<BufferView>()).source, view, flags) }
}

/// `tp_traverse` of `pybridge.BufferView`: the objects it holds references to.
unsafe extern "C" fn buffer_view_traverse(
    holder: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY (this function): CPython calls it with the GIL and a live holder.
    unsafe {
        let this = holder.cast::<BufferView>();
        for object in [(*this).source, (*this).export.obj] {
            if !object.is_null() {
                let stop = visit(object, arg);
                if stop != 0 {
                    return stop;
                }
            }
        }
    }
    0
}

/// `tp_clear` of `pybridge.BufferView`: CPython breaks a reference cycle the
/// holder is in (an exporter that keeps a reference to its own view's owner,
/// say). Only unreachable holders are cleared, and a handle makes one
/// reachable, so no host view is live.
unsafe extern "C" fn buffer_view_clear(holder: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython calls it with the GIL and a live holder.
    unsafe { end_export(holder.cast()) };
    0
}

/// Releases what a holder holds, each once.
///
/// # Safety
/// GIL held; a live holder whose fields are NULL or set by `view`.
unsafe fn end_export(this: *mut BufferView) {
    // SAFETY (this function): per the contract; each field is cleared before
    // anything that may run Python code (a release, a decref) sees the holder.
    unsafe {
        if !(*this).export.obj.is_null() {
            let mut export = std::mem::replace(&mut (*this).export, ffi::Py_buffer::new());
            ffi::PyBuffer_Release(&mut export);
        }
        let dims = std::mem::replace(
            &mut (*this).dims,
            std::ptr::slice_from_raw_parts_mut(std::ptr::null_mut(), 0),
        );
        if !dims.is_null() {
            drop(Box::from_raw(dims));
        }
        let source = std::mem::replace(&mut (*this).source, std::ptr::null_mut());
        if !source.is_null() {
            ffi::Py_DecRef(source);
        }
    }
}

/// `tp_dealloc` of `pybridge.BufferView`: the view's export ends.
unsafe extern "C" fn buffer_view_dealloc(holder: *mut ffi::PyObject) {
    // SAFETY: CPython calls it with the GIL when the last reference is gone.
    unsafe {
        ffi::PyObject_GC_UnTrack(holder.cast());
        end_export(holder.cast());
        free_instance(Python::assume_attached(), holder);
    }
}

/// `bf_getbuffer`: one flat dimension over the host's memory.
unsafe extern "C" fn host_memory_getbuffer(
    exporter: *mut ffi::PyObject,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY (this function): CPython calls it with the GIL, a live exporter of
    // our type and a view to fill.
    unsafe {
        let this = exporter.cast::<HostMemory>();
        if flags & ffi::PyBUF_WRITABLE != 0 && (*this).readonly {
            ffi::PyErr_SetString(
                ffi::PyExc_BufferError,
                c"this host memory is read-only (shared without PYB_BUFFER_WRITABLE)".as_ptr(),
            );
            (*view).obj = std::ptr::null_mut();
            return -1;
        }
        (*view).buf = (*this).data;
        ffi::Py_INCREF(exporter);
        (*view).obj = exporter;
        (*view).len = (*this).len;
        (*view).itemsize = (*this).itemsize;
        (*view).readonly = c_int::from((*this).readonly);
        (*view).ndim = 1;
        (*view).format = if flags & ffi::PyBUF_FORMAT != 0 {
            (*this).format
        } else {
            std::ptr::null_mut()
        };
        (*view).shape = if flags & ffi::PyBUF_ND != 0 {
            &raw mut (*this).shape
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            &raw mut (*this).stride
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
    }
    0
}

/// `tp_dealloc`: Python let go of the memory; tell the host.
unsafe extern "C" fn host_memory_dealloc(exporter: *mut ffi::PyObject) {
    // SAFETY (this function): CPython calls it with the GIL when the last
    // reference (every memoryview and consumer included) is gone.
    unsafe {
        let this = exporter.cast::<HostMemory>();
        if let Some(on_release) = (*this).on_release.take() {
            on_release((*this).user_data);
        }
        if !(*this).format.is_null() {
            drop(CString::from_raw((*this).format));
        }
        free_instance(Python::assume_attached(), exporter);
    }
}
