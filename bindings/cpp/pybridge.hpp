// pybridge.hpp: header-only C++17 wrapper over pybridge's C ABI
// (bindings/c/pybridge.h). Users need neither Python.h nor any CPython header.
//
// Types, in wasmtime's .hh style:
//   Engine        the process's engine: initialize, shutdown from any thread,
//                 register C++ callables as Python functions.
//   Gil           scoped GIL acquisition; move-only; nests. A GilScope, like
//                 Interpreter::Scope.
//   AllowThreads  scoped release of the GIL inside a GIL scope (or inside a
//                 host function), for long native work.
//   Object        move-only owning handle to a Python object; copy with clone();
//                 may be destroyed on any thread, with or without the GIL, even
//                 after the engine shut down.
//   Value         an owned value crossing the boundary: None, bool, int64, double,
//                 str, bytes or an Object.
//   Error         the exception every failing call throws: status, its name, the
//                 message and, for Python errors, type, message and traceback.
//   Args, Kwargs  a host function's positional and keyword arguments.
//   Task          a Python awaitable run on pybridge's event loop, as a future.
//   host_object / host_object_cast
//                 C++ objects handed to Python and back, type-checked.
//   Interpreter, Pool
//                 sub-interpreters and pools of them; destroyed by their
//                 destructors within destroy_timeout() (10 s unless set).
//
// Destructors never throw. The ones that can wait say how long: Interpreter
// and Pool at most destroy_timeout(); AllowThreads, and a GIL scope that
// ends inside another interpreter's scope, until this thread gets the outer
// GIL back (as Py_END_ALLOW_THREADS does: no bound, the outer scope needs
// it); the others do not wait.
//
// Threading: every call may be made on any thread and takes the GIL itself when
// the thread does not hold it. Error details are per thread: an Error is built
// on the thread whose call failed, right after it failed.
//
// Exceptions exist only on the C++ side: a host function that throws returns
// an error status to pybridge, and Python sees pybridge.HostError with the C++
// message. Nothing unwinds through Rust or CPython frames.
//
// Include this header only: it includes every part under pybridge/, one per
// concept (each also compiles on its own, but the parts are not a stable
// interface of their own):
//   errors.hpp          Error, and the check of a C call's status
//   kinds.hpp           Kind, and conversions of a borrowed pyb_value
//   objects.hpp         Object, Value, ValueRef, kw(), call(), call_method()
//   containers.hpp      make_tuple, make_list, make_dict, list_from, dict_from, to_vector
//   run.hpp             run, eval, new_scope, import_module
//   gil.hpp             Gil (and the token logic every GIL scope shares), AllowThreads
//   host_functions.hpp  Arg, Args, Kwargs, GilPolicy, register_function
//   host_objects.hpp    host_object, make_host_object, host_object_cast
//   timeouts.hpp        chrono durations as the C API's millisecond timeouts
//   engine.hpp          Options, State, ShutdownMode, Engine, stats()
//   interpreters.hpp    Interpreter, Interpreter::Scope, Pool, Pool::Lease
//   tasks.hpp           Task, call_async, AsyncIterator
//   buffers.hpp         BufferView, share_memory
//   gil_stats.hpp       enable_gil_stats, reset_gil_stats, GilStats, gil_stats

#ifndef PYBRIDGE_HPP
#define PYBRIDGE_HPP

#include "pybridge/errors.hpp"
#include "pybridge/kinds.hpp"
#include "pybridge/objects.hpp"
#include "pybridge/containers.hpp"
#include "pybridge/run.hpp"
#include "pybridge/gil.hpp"
#include "pybridge/host_functions.hpp"
#include "pybridge/host_objects.hpp"
#include "pybridge/timeouts.hpp"
#include "pybridge/engine.hpp"
#include "pybridge/interpreters.hpp"
#include "pybridge/tasks.hpp"
#include "pybridge/buffers.hpp"
#include "pybridge/gil_stats.hpp"

#endif  // PYBRIDGE_HPP
