/*
 * The few CPython C API declarations engine_host.c uses, for a build with no
 * Python.h: the official Windows embeddable CPython ships no headers
 * (scripts/test-windows.sh builds engine_host with HOST_NO_PYTHON_H and links
 * the distribution's python3XY.dll). Each is a function python3XY.dll exports
 * (checked on 3.12.9 and 3.13.2); Python.h's macros over them are spelled
 * out. Never used where Python.h exists.
 */
#ifndef PYTHON_DECLARATIONS_H
#define PYTHON_DECLARATIONS_H

typedef struct _object PyObject;
typedef struct _ts PyThreadState;
typedef enum { PyGILState_LOCKED, PyGILState_UNLOCKED } PyGILState_STATE;

#define Py_eval_input 258 /* Include/compile.h */

int PyRun_SimpleStringFlags(const char *command, void *flags);
PyObject *PyRun_StringFlags(const char *str, int start, PyObject *globals, PyObject *locals,
                            void *flags);
PyObject *PyImport_AddModule(const char *name);
PyObject *PyModule_GetDict(PyObject *module);
long PyLong_AsLong(PyObject *value);
PyObject *PyErr_Occurred(void);
void PyErr_Print(void);
void Py_DecRef(PyObject *object);
PyThreadState *PyThreadState_Get(void);
PyGILState_STATE PyGILState_Ensure(void);
void PyGILState_Release(PyGILState_STATE state);
int PyGILState_Check(void);

#define PyRun_SimpleString(command) PyRun_SimpleStringFlags((command), NULL)
#define PyRun_String(str, start, globals, locals) \
    PyRun_StringFlags((str), (start), (globals), (locals), NULL)
#define Py_DECREF(object) Py_DecRef(object)

#endif
