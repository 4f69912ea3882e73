/*
 * The Py_buffer inside a memoryview object.
 *
 * CPython's accessor, PyMemoryView_GET_BUFFER, is a macro over the object's
 * layout (Include/memoryobject.h, 3.10 to 3.13), so it is expanded here,
 * compiled against the build's own headers, rather than by guessing the
 * layout in Rust. src/python/buffer.rs hands this buffer's fields to hosts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

__attribute__((visibility("hidden"))) Py_buffer *pybridge_memoryview_buffer(PyObject *memoryview) {
    return PyMemoryView_GET_BUFFER(memoryview);
}
