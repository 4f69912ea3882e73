// P/Invoke declarations for bindings/c/pybridge.h, one per exported function.
// Handles the binding owns are SafeHandles (Handles.cs: a 64-bit IntPtr carries the uint64_t id);
// tokens and borrowed handles are ulong (uint64_t on every platform); sizes are UIntPtr (size_t), strings go in as NUL-terminated UTF-8
// byte arrays, and every C `bool` carries [MarshalAs(UnmanagedType.I1)].
// tests/csharp checks that this file and the header declare the same functions.
// Internal: applications use the idiomatic layer (PyEngine, PyObject, ...), whose names are
// .NET's (PyStatusCode.Timeout for PYB_E_TIMEOUT); the C names stay here.
using System;
using System.Runtime.InteropServices;
using PyBridge;

namespace PyBridge.Interop
{
    /// <summary>pyb_str: a byte string with an explicit length.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PybStr
    {
        public IntPtr Ptr;
        public UIntPtr Len;
    }

    /// <summary>pyb_value: a tag and a 16-byte union at offset 8 (24 bytes on 64-bit).</summary>
    [StructLayout(LayoutKind.Explicit)]
    internal struct PybValue
    {
        [FieldOffset(0)] public uint Tag;
        // C `bool` inside the union: one byte, 0 or 1.
        [FieldOffset(8)] public byte Boolean;
        [FieldOffset(8)] public long Int64;
        [FieldOffset(8)] public double Float64;
        [FieldOffset(8)] public PybStr Str;
        [FieldOffset(8)] public ulong Object;
    }

    /// <summary>pyb_config; <c>StructSize</c> must be <c>Marshal.SizeOf(typeof(PybConfig))</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PybConfig
    {
        public UIntPtr StructSize;
        public IntPtr PythonHome;
        public IntPtr VirtualEnv;
        public IntPtr ModuleSearchPaths;
        public UIntPtr ModuleSearchPathsLen;
        public uint Flags;
        public uint PreviousThreadsTimeoutMs;
        public IntPtr Python;
        public IntPtr Argv;
        public UIntPtr ArgvLen;
    }

    /// <summary>pyb_stats; <c>StructSize</c> must be set by the caller.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PybStats
    {
        public UIntPtr StructSize;
        public ulong EnginesStarted;
        public ulong InterpretersFinalized;
        public ulong ShutdownTimeouts;
        public ulong ThreadStatesCreated;
        public ulong ThreadStatesDeleted;
        public ulong ThreadStatesHeld;
    }

    /// <summary>pyb_interpreter_config.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PybInterpreterConfig
    {
        public UIntPtr StructSize;
        public uint Flags;
    }

    /// <summary>pyb_pool_stats; <c>StructSize</c> must be set by the caller.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PybPoolStats
    {
        public UIntPtr StructSize;
        public ulong Size;
        public ulong Free;
        public ulong Borrows;
        public ulong Waits;
        public ulong Timeouts;
        public ulong WaitNsTotal;
        public ulong WaitNsMax;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal unsafe delegate int PybHostFn(PybValue* args, UIntPtr nargs, PybValue* result, IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void PybFreeFn(IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void PybLogCallback(int level, IntPtr message, IntPtr userData);

    /// <summary>The C API as declared in pybridge.h, internal to the binding. Threading and
    /// ownership rules are the header's; the idiomatic layer (PyEngine, PyObject) follows them.</summary>
    internal static unsafe partial class Native
    {
        // "libpybridge", not "pybridge": Windows names files case-insensitively, so a native
        // pybridge.dll beside this assembly, PyBridge.dll, would be the same file (CoreCLR then
        // fails to load the assembly, "expected to contain an assembly manifest"). Resolves to
        // libpybridge.so on Linux and libpybridge.dll on Windows (SkiaSharp's libSkiaSharp.dll
        // avoids the same clash).
        public const string Lib = "libpybridge";

        public const int PYB_OK = 0;
        public const int PYB_E_NOT_INITIALIZED = -1;
        public const int PYB_E_SHUTTING_DOWN = -2;
        /// <summary>Reserved: no function returns it.</summary>
        public const int PYB_E_GIL_NOT_HELD = -3;
        public const int PYB_E_WRONG_THREAD = -4;
        public const int PYB_E_BAD_TOKEN = -5;
        public const int PYB_E_WOULD_DEADLOCK = -6;
        public const int PYB_E_TIMEOUT = -7;
        public const int PYB_E_NULL_ARGUMENT = -8;
        public const int PYB_E_INVALID_ARGUMENT = -9;
        public const int PYB_E_PYTHON = -10;
        public const int PYB_E_INIT_FAILED = -11;
        public const int PYB_E_PANIC = -12;
        public const int PYB_E_BAD_HANDLE = -13;
        public const int PYB_E_WRONG_TYPE = -14;
        public const int PYB_E_OUT_OF_RANGE = -15;
        public const int PYB_E_SHUTDOWN_COMMITTED = -16;
        public const int PYB_E_OUT_OF_MEMORY = -17;
        public const int PYB_E_FORKED = -18;
        public const int PYB_E_PYTHON_UNUSABLE = -19;
        public const int PYB_E_WRONG_INTERPRETER = -20;
        public const int PYB_E_UNSUPPORTED = -21;
        public const int PYB_E_CANCELLED = -22;

        public const uint PYB_CONFIG_ISOLATED = 1;
        public const uint PYB_CONFIG_IGNORE_SIGPIPE = 2;
        public const int PYB_STATE_UNINITIALIZED = 0;
        public const int PYB_STATE_RUNNING = 1;
        public const int PYB_STATE_SHUTTING_DOWN = 2;
        public const int PYB_STATE_FORKED = 3;
        public const uint PYB_TIMEOUT_INFINITE = uint.MaxValue;
        public const uint PYB_SHUTDOWN_INTERRUPT = 1;
        public const uint PYB_FN_RELEASE_GIL = 1;
        public const uint PYB_FN_KEYWORDS = 2;
        public const uint PYB_INTERPRETER_SHARED_GIL = 1;

        public const int PYB_LOG_OFF = 0;
        public const int PYB_LOG_ERROR = 1;
        public const int PYB_LOG_WARN = 2;
        public const int PYB_LOG_INFO = 3;
        public const int PYB_LOG_DEBUG = 4;
        public const int PYB_LOG_TRACE = 5;

        public const uint PYB_VALUE_NONE = 0;
        public const uint PYB_VALUE_BOOL = 1;
        public const uint PYB_VALUE_INT = 2;
        public const uint PYB_VALUE_FLOAT = 3;
        public const uint PYB_VALUE_STR = 4;
        public const uint PYB_VALUE_BYTES = 5;
        public const uint PYB_VALUE_OBJECT = 6;

        // Code, names and filenames: NUL-terminated UTF-8 (see Utf8.Encode).
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_run(byte[] code, byte[] filename, PyObjectHandle scope);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_eval(byte[] expr, byte[] filename, PyObjectHandle scope, out PybValue value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_scope_new(out PyObjectHandle scope);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_import(byte[] name, out PyObjectHandle module);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_getattr(PyObjectHandle obj, byte[] name, out PybValue value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_setattr(PyObjectHandle obj, byte[] name, PybValue* value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_getitem(PyObjectHandle obj, PybValue* key, out PybValue value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_setitem(PyObjectHandle obj, PybValue* key, PybValue* value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_len(PyObjectHandle obj, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_iter(PyObjectHandle obj, out PyObjectHandle iterator);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_iter_next(PyObjectHandle iterator, out PybValue value, [MarshalAs(UnmanagedType.I1)] out bool done);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_call(PyObjectHandle callable, PybValue* args, UIntPtr nargs, IntPtr* kwnames, UIntPtr nkwargs, out PybValue value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_call_method(PyObjectHandle obj, byte[] name, PybValue* args, UIntPtr nargs, IntPtr* kwnames, UIntPtr nkwargs, out PybValue value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_tuple_new(PybValue* items, UIntPtr count, out PyObjectHandle obj);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_list_new(PybValue* items, UIntPtr count, out PyObjectHandle obj);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_dict_new(PybValue* keys, PybValue* values, UIntPtr count, out PyObjectHandle obj);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_config_default(out PybConfig config);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_engine_initialize(PybConfig* config);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_engine_shutdown(uint timeoutMs, uint flags);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_engine_state();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pyb_last_error_message(byte* buf, UIntPtr bufLen);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pyb_last_error_python_type(byte* buf, UIntPtr bufLen);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pyb_last_error_python_message(byte* buf, UIntPtr bufLen);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pyb_last_error_python_traceback(byte* buf, UIntPtr bufLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pyb_last_error_python_types(byte* buf, UIntPtr bufLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_last_error_python_exception(out PyObjectHandle exception);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_acquire(out ulong token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_release(ulong token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_held();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_begin_allow_threads(out ulong token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_end_allow_threads(ulong token);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_interpreter_config_default(out PybInterpreterConfig config);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_interpreter_new(ref PybInterpreterConfig config, out PyInterpreterHandle interp);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_interpreter_enter(PyInterpreterHandle interp, out ulong token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_interpreter_destroy(PyInterpreterHandle interp, uint timeoutMs);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_pool_new(UIntPtr count, byte[] setupCode, out PyPoolHandle pool);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_pool_borrow(PyPoolHandle pool, uint timeoutMs, out PyInterpreterHandle interp);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_pool_return(PyPoolHandle pool, PyInterpreterHandle interp);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_pool_destroy(PyPoolHandle pool, uint timeoutMs);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_pool_stats_get(PyPoolHandle pool, ref PybPoolStats stats);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_set_error(byte[] message);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_register_function(byte[] module, byte[] name, IntPtr function, IntPtr userData, IntPtr freeUserData, uint flags);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_host_keywords(out PybStr* names, out UIntPtr count);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr pyb_version();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pyb_python_info(byte* buf, UIntPtr bufLen);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_set_log_callback(IntPtr callback, IntPtr userData, int maxLevel);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_release(ulong obj);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_clone(PyObjectHandle obj, out PyObjectHandle clone);
        /// <summary>pyb_object_clone of a handle the binding does not own (a host function's argument).</summary>
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, EntryPoint = "pyb_object_clone")]
        public static extern int pyb_object_clone_borrowed(ulong obj, out PyObjectHandle clone);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_from_value(PybValue* value, out PyObjectHandle obj);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_to_int64(PyObjectHandle obj, out long value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_to_double(PyObjectHandle obj, out double value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_to_bool(PyObjectHandle obj, [MarshalAs(UnmanagedType.I1)] out bool value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_to_string(PyObjectHandle obj, byte* buf, UIntPtr bufLen, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_object_to_bytes(PyObjectHandle obj, byte* buf, UIntPtr bufLen, out UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_stats_get(ref PybStats stats);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr pyb_status_name(int status);
    }
}
