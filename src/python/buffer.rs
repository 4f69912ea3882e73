//! Zero-copy buffers both ways: a view of any object's memory for the host
//! (`pyb_buffer_get`), and host memory as a Python `memoryview`
//! (`pyb_buffer_from_host`) with a callback when Python lets go of it.
//!
//! A view is held by a `memoryview` of the object, handed out as an ordinary
//! object handle: the export lasts while the handle does, and releasing a
//! handle already works from any thread, with or without the GIL, in the right
//! interpreter, and after a shutdown. Host memory is exported by a small type,
//! `pybridge.HostMemory`, made once per interpreter (heap types belong to the
//! interpreter that made them) and kept in that interpreter's state dict.

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

unsafe extern "C" {
    /// `memoryview_buffer.c`: `PyMemoryView_GET_BUFFER`.
    fn pybridge_memoryview_buffer(memoryview: *mut ffi::PyObject) -> *mut ffi::Py_buffer;
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
        let memoryview = unsafe { Owned::from_raw(py, ffi::PyMemoryView_FromObject(object)) }
            .ok_or_else(|| python_error(py))?;
        // SAFETY: a live memoryview; its buffer lives as long as it does.
        let buffer = unsafe { &*pybridge_memoryview_buffer(memoryview.as_ptr()) };
        if flags & PYB_BUFFER_WRITABLE != 0 && buffer.readonly != 0 {
            return Err(Error::new(
                PYB_E_WRONG_TYPE,
                format!(
                    "the memory of a {} is read-only; ask without PYB_BUFFER_WRITABLE",
                    type_name(py, object)
                ),
            ));
        }
        if !buffer.suboffsets.is_null() {
            return Err(Error::new(
                PYB_E_UNSUPPORTED,
                format!(
                    "a {} exports indirect memory (PIL-style suboffsets), which a flat \
                     view cannot describe",
                    type_name(py, object)
                ),
            ));
        }
        let view = pyb_buffer {
            struct_size: std::mem::size_of::<pyb_buffer>(),
            owner: 0,
            data: buffer.buf,
            len: buffer.len as usize,
            itemsize: buffer.itemsize as usize,
            readonly: buffer.readonly != 0,
            ndim: buffer.ndim,
            format: if buffer.format.is_null() {
                c"B".as_ptr()
            } else {
                buffer.format
            },
            shape: buffer.shape,
            strides: buffer.strides,
        };
        Ok(pyb_buffer {
            owner: insert(py, memoryview.into_raw())?,
            ..view
        })
    })
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
    // SAFETY: GIL held; a NUL-terminated format.
    let format_size = unsafe { ffi::PyBuffer_SizeFromFormat(spec.format.as_ptr()) };
    if format_size < 0 {
        // SAFETY: GIL held; the failed call set an exception we do not report.
        unsafe { ffi::PyErr_Clear() };
        return Err(Error::invalid_argument(format!(
            "format {:?} is not a struct-module format of one item",
            spec.format
        )));
    }
    if format_size as usize != spec.itemsize || spec.itemsize == 0 {
        return Err(Error::invalid_argument(format!(
            "itemsize {} does not match format {:?}, whose items take {format_size} bytes",
            spec.itemsize, spec.format
        )));
    }
    if spec.len % spec.itemsize != 0 || spec.len > isize::MAX as usize {
        return Err(Error::invalid_argument(format!(
            "len {} is not a whole number of {}-byte items",
            spec.len, spec.itemsize
        )));
    }
    if spec.data.is_null() && spec.len > 0 {
        return Err(Error::null_argument("data"));
    }
    let kind = host_memory_type(py)?;
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

const TYPE_KEY: &CStr = c"pybridge.HostMemory";

/// This interpreter's `pybridge.HostMemory` type, made on first use.
fn host_memory_type(py: Python<'_>) -> Result<Owned<'_>> {
    // SAFETY (this function): GIL held by this thread in this interpreter.
    let dict = unsafe { ffi::PyInterpreterState_GetDict(ffi::PyInterpreterState_Get()) };
    if dict.is_null() {
        return Err(Error::new(
            PYB_E_PYTHON_UNUSABLE,
            "CPython gave no per-interpreter state dict".to_string(),
        ));
    }
    let found = unsafe { ffi::PyDict_GetItemString(dict, TYPE_KEY.as_ptr()) };
    if !found.is_null() {
        return Ok(unsafe { Owned::from_borrowed(py, found) });
    }
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: host_memory_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_bf_getbuffer,
            pfunc: host_memory_getbuffer as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: c"Host memory shared with Python by pybridge (pyb_buffer_from_host).".as_ptr()
                as *mut c_void,
        },
        ffi::PyType_Slot::default(),
    ];
    let mut spec = ffi::PyType_Spec {
        name: TYPE_KEY.as_ptr(),
        basicsize: std::mem::size_of::<HostMemory>() as c_int,
        itemsize: 0,
        flags: ffi::Py_TPFLAGS_DEFAULT as _,
        slots: slots.as_mut_ptr(),
    };
    let made = unsafe { Owned::from_raw(py, ffi::PyType_FromSpec(&mut spec)) }
        .ok_or_else(|| python_error(py))?;
    if unsafe { ffi::PyDict_SetItemString(dict, TYPE_KEY.as_ptr(), made.as_ptr()) } != 0 {
        return Err(python_error(py));
    }
    Ok(made)
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
        let kind = ffi::Py_TYPE(exporter);
        let free: ffi::freefunc = std::mem::transmute(ffi::PyType_GetSlot(kind, ffi::Py_tp_free));
        free(exporter.cast());
        // Instances of heap types own a reference to their type.
        ffi::Py_DECREF(kind.cast());
    }
}
