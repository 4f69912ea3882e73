using System;
using System.Collections.Generic;
using System.Text;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>A Python exception raised by code pybridge ran: the Python type name,
    /// <c>str(exception)</c> and the formatted Python traceback. <see cref="Exception.Message"/>
    /// is pybridge's message (type, text and traceback). When a host function's .NET exception
    /// raised it (a <c>pybridge.HostError</c> Python did not catch), that very exception object is
    /// the <see cref="Exception.InnerException"/>.</summary>
    public class PythonException : Exception
    {
        public string PythonTypeName { get; private set; }
        public string PythonMessage { get; private set; }
        public string PythonTraceback { get; private set; }
        /// <summary>The exception's type and all its bases, most derived first, without
        /// <c>object</c>: KeyError, LookupError, Exception, BaseException.</summary>
        public IReadOnlyList<string> PythonTypes { get; private set; }
        /// <summary>The Python exception object, to read its attributes (<c>e.Value.GetAttr("errno")</c>),
        /// or null when it was not available (the engine shut down in between). Dispose it, or let the GC.</summary>
        public PyObject Value { get; private set; }

        public PythonException(string message, string typeName, string pythonMessage, string traceback)
            : this(message, typeName, pythonMessage, traceback, new[] { typeName }, null) { }

        public PythonException(string message, string typeName, string pythonMessage, string traceback,
            IReadOnlyList<string> pythonTypes, PyObject value)
            : this(message, typeName, pythonMessage, traceback, pythonTypes, value, null) { }

        /// <summary>With the .NET exception that caused it (a host function's, which Python did
        /// not catch) as <see cref="Exception.InnerException"/>.</summary>
        public PythonException(string message, string typeName, string pythonMessage, string traceback,
            IReadOnlyList<string> pythonTypes, PyObject value, Exception innerException)
            : base(message, innerException)
        {
            PythonTypeName = typeName;
            PythonMessage = pythonMessage;
            PythonTraceback = traceback;
            PythonTypes = pythonTypes;
            Value = value;
        }

        /// <summary>True when the exception is a <paramref name="typeName"/> or a subclass of it, as
        /// Python's <c>except</c> would match: "KeyError", "LookupError", or a qualified name such
        /// as "json.decoder.JSONDecodeError" (or just "JSONDecodeError").</summary>
        public bool Is(string typeName)
        {
            if (typeName == null) throw new ArgumentNullException("typeName");
            foreach (string name in PythonTypes)
            {
                if (name == typeName) return true;
                if (typeName.IndexOf('.') < 0 && name.EndsWith("." + typeName, StringComparison.Ordinal)) return true;
            }
            return false;
        }
    }

    /// <summary>A pybridge status without a closer .NET equivalent (PYB_E_PANIC,
    /// PYB_E_INIT_FAILED, PYB_E_PYTHON_UNUSABLE or an unknown status).</summary>
    public class PyBridgeException : Exception
    {
        public PyBridgeException(string message) : base(message) { }
    }

    /// <summary>The engine is not running (PYB_E_NOT_INITIALIZED): call
    /// <see cref="PyEngine.Initialize()"/> first, or again after a shutdown.</summary>
    public class PyEngineNotRunningException : InvalidOperationException
    {
        public PyEngineNotRunningException(string message) : base(message) { }
    }

    /// <summary>A shutdown is in progress and accepts no new GIL requests
    /// (PYB_E_SHUTTING_DOWN); if it times out, the engine runs on.</summary>
    public class PyEngineShuttingDownException : InvalidOperationException
    {
        public PyEngineShuttingDownException(string message) : base(message) { }
    }

    /// <summary>The call would wait for the calling thread itself (PYB_E_WOULD_DEADLOCK): for
    /// example a shutdown asked while this thread holds the GIL, or a blocking wait for a task of
    /// <see cref="PyEngine.RunAsync{T}"/> on a thread holding the GIL, which the coroutine needs.</summary>
    public class PyWouldDeadlockException : InvalidOperationException
    {
        public PyWouldDeadlockException(string message) : base(message) { }
    }

    /// <summary>A GIL scope or allow-threads region used on a thread other than the one that
    /// opened it (PYB_E_WRONG_THREAD).</summary>
    public class PyWrongThreadException : InvalidOperationException
    {
        public PyWrongThreadException(string message) : base(message) { }
    }

    /// <summary>A <see cref="PyObject"/> used inside another interpreter than the one that made it
    /// (PYB_E_WRONG_INTERPRETER): use it in its own interpreter, or pass a plain value.</summary>
    public class PyWrongInterpreterException : InvalidOperationException
    {
        public PyWrongInterpreterException(string message) : base(message) { }
    }

    /// <summary>A deadline passed: PYB_E_TIMEOUT (nothing changed; try again) or, with
    /// <see cref="Committed"/> true, PYB_E_SHUTDOWN_COMMITTED (the shutdown passed its point of no
    /// return and finishes on its own; shut down again to wait for it).</summary>
    public class PyTimeoutException : TimeoutException
    {
        public bool Committed { get; private set; }

        public PyTimeoutException(string message, bool committed) : base(message)
        {
            Committed = committed;
        }
    }

    /// <summary>pybridge's statuses (pyb_status in pybridge.h: PYB_OK, PYB_E_*), with .NET names.
    /// Values are stable and never reused; <see cref="PyStatus.Name(PyStatusCode)"/> gives the C
    /// name ("PYB_E_TIMEOUT"), which every exception the binding makes carries in its
    /// <see cref="Exception.Data"/> under <see cref="PyStatus.DataKey"/>.</summary>
    public enum PyStatusCode
    {
        Ok = 0,
        NotInitialized = -1,
        ShuttingDown = -2,
        /// <summary>Reserved: no function returns it.</summary>
        GilNotHeld = -3,
        WrongThread = -4,
        BadToken = -5,
        WouldDeadlock = -6,
        Timeout = -7,
        NullArgument = -8,
        InvalidArgument = -9,
        Python = -10,
        InitFailed = -11,
        Panic = -12,
        BadHandle = -13,
        WrongType = -14,
        OutOfRange = -15,
        ShutdownCommitted = -16,
        OutOfMemory = -17,
        Forked = -18,
        PythonUnusable = -19,
        WrongInterpreter = -20,
        Unsupported = -21,
        Cancelled = -22,
    }

    /// <summary>Status to .NET exception, in one place. The last error is per thread
    /// and is read here, synchronously, on the thread that got the status.</summary>
    public static class PyStatus
    {
        /// <summary>Key under which every exception made here stores the status name in <see cref="Exception.Data"/>.</summary>
        public const string DataKey = "PyBridge.Status";

        /// <summary>The status constant's C name, e.g. "PYB_E_TIMEOUT" ("PYB_E_UNKNOWN" for a value
        /// pybridge does not define).</summary>
        public static string Name(PyStatusCode status) { return Name((int)status); }

        internal static string Name(int status)
        {
            return Utf8.FromNative(Native.pyb_status_name(status));
        }

        /// <summary>Throws the exception for a failing status; does nothing for <see cref="PyStatusCode.Ok"/>.</summary>
        public static void Check(PyStatusCode status) { Check((int)status); }

        internal static void Check(int status)
        {
            if (status != Native.PYB_OK)
                throw ToException(status);
        }

        /// <summary>The exception for a failing status, built from this thread's last error.
        /// PYB_E_PYTHON: <see cref="PythonException"/>; PYB_E_TIMEOUT, SHUTDOWN_COMMITTED: <see cref="PyTimeoutException"/>
        /// (a <see cref="TimeoutException"/>); PYB_E_BAD_HANDLE: <see cref="ObjectDisposedException"/>;
        /// NOT_INITIALIZED, SHUTTING_DOWN, WOULD_DEADLOCK, WRONG_THREAD: <see cref="PyEngineNotRunningException"/>,
        /// <see cref="PyEngineShuttingDownException"/>, <see cref="PyWouldDeadlockException"/>,
        /// <see cref="PyWrongThreadException"/> (each an <see cref="InvalidOperationException"/>);
        /// BAD_TOKEN, FORKED: <see cref="InvalidOperationException"/>;
        /// NULL_ARGUMENT: <see cref="ArgumentNullException"/>; INVALID_ARGUMENT: <see cref="ArgumentException"/>;
        /// WRONG_TYPE: <see cref="InvalidCastException"/>; OUT_OF_RANGE: <see cref="OverflowException"/>;
        /// OUT_OF_MEMORY: <see cref="InsufficientMemoryException"/>; WRONG_INTERPRETER:
        /// <see cref="PyWrongInterpreterException"/>; UNSUPPORTED: <see cref="NotSupportedException"/>; PYTHON_UNUSABLE (the named Python cannot be run) and
        /// others: <see cref="PyBridgeException"/>.</summary>
        public static Exception ToException(PyStatusCode status) { return ToException((int)status); }

        internal static Exception ToException(int status)
        {
            string name = Name(status);
            string detail = LastError.Message;
            // pybridge's message already starts with the function and status names.
            string message = detail.Length == 0 ? name : detail;
            Exception e;
            switch (status)
            {
                case Native.PYB_E_PYTHON:
                    {
                        string type = LastError.PythonType, text = LastError.PythonMessage;
                        e = new PythonException(message, type, text, LastError.PythonTraceback,
                            LastError.PythonTypes.Split(new[] { '\n' }, StringSplitOptions.RemoveEmptyEntries), LastError.TakeException(),
                            HostFailures.Take(type, text));
                    }
                    break;
                case Native.PYB_E_TIMEOUT:
                case Native.PYB_E_SHUTDOWN_COMMITTED:
                    e = new PyTimeoutException(message, status == Native.PYB_E_SHUTDOWN_COMMITTED);
                    break;
                case Native.PYB_E_BAD_HANDLE:
                    e = new ObjectDisposedException("PyObject", message);
                    break;
                case Native.PYB_E_NOT_INITIALIZED:
                    e = new PyEngineNotRunningException(message);
                    break;
                case Native.PYB_E_SHUTTING_DOWN:
                    e = new PyEngineShuttingDownException(message);
                    break;
                case Native.PYB_E_WOULD_DEADLOCK:
                    e = new PyWouldDeadlockException(message);
                    break;
                case Native.PYB_E_WRONG_THREAD:
                    e = new PyWrongThreadException(message);
                    break;
                case Native.PYB_E_BAD_TOKEN:
                case Native.PYB_E_FORKED:
                    e = new InvalidOperationException(message);
                    break;
                case Native.PYB_E_NULL_ARGUMENT:
                    e = new ArgumentNullException(null, message);
                    break;
                case Native.PYB_E_INVALID_ARGUMENT:
                    e = new ArgumentException(message);
                    break;
                case Native.PYB_E_WRONG_TYPE:
                    e = new InvalidCastException(message);
                    break;
                case Native.PYB_E_OUT_OF_RANGE:
                    e = new OverflowException(message);
                    break;
                case Native.PYB_E_OUT_OF_MEMORY:
                    e = new InsufficientMemoryException(message);
                    break;
                case Native.PYB_E_WRONG_INTERPRETER:
                    e = new PyWrongInterpreterException(message);
                    break;
                case Native.PYB_E_UNSUPPORTED:
                    e = new NotSupportedException(message);
                    break;
                default:
                    e = new PyBridgeException(message);
                    break;
            }
            e.Data[DataKey] = name;
            return e;
        }
    }

    /// <summary>The calling thread's last pybridge error (valid right after a failing call,
    /// on the same thread: read it before an <c>await</c>).</summary>
    public static unsafe class LastError
    {
        internal delegate UIntPtr Reader(byte* buf, UIntPtr len);

        public static string Message { get { return Read(Native.pyb_last_error_message); } }
        public static string PythonType { get { return Read(Native.pyb_last_error_python_type); } }
        public static string PythonMessage { get { return Read(Native.pyb_last_error_python_message); } }
        public static string PythonTraceback { get { return Read(Native.pyb_last_error_python_traceback); } }
        /// <summary>The last Python exception's type and bases, one per line.</summary>
        public static string PythonTypes { get { return Read(Native.pyb_last_error_python_types); } }

        /// <summary>A new PyObject for the last Python exception, or null (none, or its engine is gone).</summary>
        internal static PyObject TakeException()
        {
            PyObjectHandle handle;
            return Native.pyb_last_error_python_exception(out handle) == Native.PYB_OK && !handle.IsInvalid
                ? new PyObject(handle) : null;
        }

        internal static string Read(Reader reader)
        {
            byte* small = stackalloc byte[512];
            int len = (int)reader(small, (UIntPtr)512);
            if (len < 512)
                return Utf8.Decode(small, len);
            // Loop: the text may change between the calls only if this thread fails again, which it
            // does not here, but stay correct anyway.
            while (true)
            {
                byte[] buf = new byte[len + 1];
                fixed (byte* p = buf)
                {
                    int again = (int)reader(p, (UIntPtr)buf.Length);
                    if (again <= len)
                        return Utf8.Decode(p, again);
                    len = again;
                }
            }
        }
    }

    internal static unsafe class Utf8
    {
        internal static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8, or null for null. An embedded NUL is refused
        /// (the C side would silently cut the text there).</summary>
        internal static byte[] Encode(string s, string paramName)
        {
            if (s == null)
                return null;
            if (s.IndexOf('\0') >= 0)
                throw new ArgumentException("the string contains a NUL character", paramName);
            int n = Strict.GetByteCount(s);
            byte[] b = new byte[n + 1];
            Strict.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        internal static string Decode(byte* p, int len)
        {
            if (len == 0)
                return string.Empty;
            return Encoding.UTF8.GetString(p, len);
        }

        internal static string FromNative(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return null;
            byte* b = (byte*)p;
            int n = 0;
            while (b[n] != 0) n++;
            return Decode(b, n);
        }
    }
}
