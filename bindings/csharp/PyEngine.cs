using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>Forked: this process is a fork() child of one whose engine ran; its copy of the
    /// engine is closed for good (PYB_STATE_FORKED in pybridge.h).</summary>
    public enum PyEngineState { Uninitialized = 0, Running = 1, ShuttingDown = 2, Forked = 3 }

    public enum PyLogLevel { Off = 0, Error = 1, Warn = 2, Info = 3, Debug = 4, Trace = 5 }

    /// <summary>Settings for <see cref="PyEngine.Initialize(PyEngineOptions)"/>; null fields keep pybridge's defaults.</summary>
    public sealed class PyEngineOptions
    {
        /// <summary>The Python to run: a CPython executable (/usr/bin/python3, or a venv's bin/python,
        /// which makes sys.prefix the venv) or a libpython3.X.so path (pyb_config.python). Null: the
        /// environment variable PYBRIDGE_PYTHON, else the Python pybridge was built with if it still
        /// exists, else python3 on PATH. One process runs one libpython.</summary>
        public string Python { get; set; }
        /// <summary>Python home (prefix of the standard library); null: the chosen Python's.</summary>
        public string PythonHome { get; set; }
        /// <summary>A virtual environment's root; its site-packages is added to sys.path.</summary>
        public string VirtualEnv { get; set; }
        /// <summary>Directories put at the front of sys.path, in order.</summary>
        public string[] ModuleSearchPaths { get; set; }
        /// <summary>sys.argv, taken as given (no option is parsed out); null or empty: CPython's [''].</summary>
        public string[] Argv { get; set; }
        /// <summary>Ignore PYTHONHOME, PYTHONPATH and friends, the user site directory and the current directory.</summary>
        public bool Isolated { get; set; }
        /// <summary>Ignore SIGPIPE process-wide, as the python program does, so a write to a closed
        /// pipe raises BrokenPipeError instead of killing the process (PYB_CONFIG_IGNORE_SIGPIPE).
        /// Off by default: signals belong to the host. (.NET on Linux ignores SIGPIPE already.)</summary>
        public bool IgnoreSigpipe { get; set; }
        /// <summary>How long to wait for daemon threads of a previous interpreter; null: 10 s.</summary>
        public TimeSpan? PreviousThreadsTimeout { get; set; }

        /// <summary>True (the default): once pybridge's asyncio event loop has called into .NET
        /// (<see cref="PyEngine.RunAsync{T}"/>, <see cref="PyObject.CallAsync{T}(object[])"/>, an
        /// async host function), the binding registers an <see cref="AppDomain.ProcessExit"/>
        /// handler that shuts a still-running engine down (waiting at most 5 s) when the process
        /// exits. The loop's thread has then entered .NET, and Mono's exit waits for such a thread
        /// for ever. False: no handler; shut the engine down yourself before the process exits.</summary>
        public bool ShutdownOnProcessExit { get; set; }

        public PyEngineOptions()
        {
            ShutdownOnProcessExit = true;
        }
    }

    /// <summary>Process-wide counters since the library was loaded.</summary>
    public sealed class PyEngineStats
    {
        public long EnginesStarted { get; internal set; }
        public long InterpretersFinalized { get; internal set; }
        public long ShutdownTimeouts { get; internal set; }
        public long ThreadStatesCreated { get; internal set; }
        public long ThreadStatesDeleted { get; internal set; }
        /// <summary>Thread states CPython freed while their thread could still write into them,
        /// held back from reuse now (pyb_stats.thread_states_held).</summary>
        public long ThreadStatesHeld { get; internal set; }
    }

    /// <summary>A token from <see cref="PyEngine.BeginAllowThreads"/>; end it on the same thread.</summary>
    public struct PyThreadToken
    {
        public readonly ulong Value;
        public PyThreadToken(ulong value) { Value = value; }
    }

    /// <summary>A GIL scope from <see cref="PyEngine.Gil"/>. Scopes nest; dispose on the thread that
    /// opened it, innermost first (InvalidOperationException otherwise, and the scope stays open).
    /// A second Dispose does nothing.</summary>
    public sealed class PyGil : IDisposable
    {
        private readonly ulong token;
        private bool released;

        internal PyGil(ulong token) { this.token = token; }

        public void Dispose()
        {
            if (released) return;
            PyStatus.Check(Native.pyb_gil_release(token));
            released = true;
        }
    }

    /// <summary>An allow-threads region from <see cref="PyEngine.AllowThreads"/>: the GIL is released
    /// until Dispose takes it back (on the same thread). A second Dispose does nothing.</summary>
    public sealed class PyAllowThreads : IDisposable
    {
        private readonly PyThreadToken token;
        private bool ended;

        internal PyAllowThreads(PyThreadToken token) { this.token = token; }

        public void Dispose()
        {
            if (ended) return;
            PyEngine.EndAllowThreads(token);
            ended = true;
        }
    }

    /// <summary>A C# function callable from Python with positional arguments. Arguments arrive
    /// converted (None: null, bool, long, double, string, byte[], or a PyObject the function owns);
    /// the result may be any value <see cref="PyObject.From(object)"/> accepts.</summary>
    public delegate object PyHostFunction(object[] args);

    /// <summary>A C# function callable from Python with positional and keyword arguments:
    /// <paramref name="kwargs"/> is null when Python passed none.</summary>
    public delegate object PyHostFunctionWithKeywords(object[] args, IDictionary<string, object> kwargs);

    /// <summary>The engine: one per process. Every member may be called from any thread; the
    /// rules of bindings/c/pybridge.h apply (for example, Shutdown from a thread inside a GIL
    /// scope throws InvalidOperationException instead of waiting for itself).</summary>
    public static partial class PyEngine
    {
        /// <summary>Starts the engine with default settings (idempotent; see pyb_engine_initialize).</summary>
        public static void Initialize()
        {
            Initialize(null);
        }

        /// <summary>Starts the engine: Python runs on an engine-owned thread until Shutdown. When this
        /// returns no thread holds the GIL, so any thread may use Python at once.</summary>
        public static unsafe void Initialize(PyEngineOptions options)
        {
            HandleIds.CheckProcessIs64Bit();
            ShutdownOnProcessExit = options == null || options.ShutdownOnProcessExit;
            if (options == null)
            {
                PyStatus.Check(Native.pyb_engine_initialize(null));
                return;
            }
            PybConfig config;
            PyStatus.Check(Native.pyb_config_default(out config));
            config.StructSize = (UIntPtr)Marshal.SizeOf(typeof(PybConfig));
            List<IntPtr> allocated = new List<IntPtr>();
            try
            {
                config.Python = Alloc(options.Python, allocated);
                config.PythonHome = Alloc(options.PythonHome, allocated);
                config.VirtualEnv = Alloc(options.VirtualEnv, allocated);
                string[] paths = options.ModuleSearchPaths ?? new string[0];
                config.ModuleSearchPaths = AllocArray(paths, "ModuleSearchPaths", allocated);
                config.ModuleSearchPathsLen = (UIntPtr)paths.Length;
                string[] argv = options.Argv ?? new string[0];
                config.Argv = AllocArray(argv, "Argv", allocated);
                config.ArgvLen = (UIntPtr)argv.Length;
                if (options.Isolated) config.Flags |= Native.PYB_CONFIG_ISOLATED;
                if (options.IgnoreSigpipe) config.Flags |= Native.PYB_CONFIG_IGNORE_SIGPIPE;
                if (options.PreviousThreadsTimeout.HasValue)
                    config.PreviousThreadsTimeoutMs = Milliseconds(options.PreviousThreadsTimeout.Value);
                PyStatus.Check(Native.pyb_engine_initialize(&config));
            }
            finally
            {
                foreach (IntPtr p in allocated) Marshal.FreeHGlobal(p);
            }
        }

        // A native array of UTF-8 strings (IntPtr.Zero when empty), freed with `allocated`.
        private static IntPtr AllocArray(string[] items, string name, List<IntPtr> allocated)
        {
            if (items.Length == 0) return IntPtr.Zero;
            IntPtr array = Marshal.AllocHGlobal(IntPtr.Size * items.Length);
            allocated.Add(array);
            for (int i = 0; i < items.Length; i++)
            {
                if (items[i] == null) throw new ArgumentNullException("options", name + "[" + i + "] is null");
                Marshal.WriteIntPtr(array, i * IntPtr.Size, Alloc(items[i], allocated));
            }
            return array;
        }

        private static IntPtr Alloc(string s, List<IntPtr> allocated)
        {
            byte[] b = Utf8.Encode(s, "options");
            if (b == null) return IntPtr.Zero;
            IntPtr p = Marshal.AllocHGlobal(b.Length);
            allocated.Add(p);
            Marshal.Copy(b, 0, p, b.Length);
            return p;
        }

        /// <summary>PyEngineOptions.ShutdownOnProcessExit of the last Initialize (true before one).</summary>
        internal static volatile bool ShutdownOnProcessExit = true;

        internal static uint Milliseconds(TimeSpan t)
        {
            if (t == Timeout.InfiniteTimeSpan) return Native.PYB_TIMEOUT_INFINITE;
            if (t < TimeSpan.Zero) throw new ArgumentOutOfRangeException("timeout", "a timeout must be >= 0 or Timeout.InfiniteTimeSpan");
            double ms = Math.Ceiling(t.TotalMilliseconds);
            return ms >= Native.PYB_TIMEOUT_INFINITE ? Native.PYB_TIMEOUT_INFINITE - 1 : (uint)ms;
        }

        /// <summary>Shuts the engine down from any thread not inside a GIL scope or allow-threads
        /// region, waiting at most <paramref name="timeout"/> (Timeout.InfiniteTimeSpan: for ever).
        /// <see cref="PyTimeoutException"/> when the deadline passes: with status PYB_E_TIMEOUT the engine
        /// runs on unchanged (its message names what blocked); with PYB_E_SHUTDOWN_COMMITTED
        /// (<see cref="PyTimeoutException.Committed"/>) the shutdown passed its point of no return and
        /// carries on (call Shutdown again to wait for it). Quietly does nothing when the engine is not
        /// running, so a repeated Shutdown is harmless.
        /// <paramref name="interrupt"/> raises SystemExit in Python threads and ShutdownInterrupt in
        /// host threads running Python first (see PYB_SHUTDOWN_INTERRUPT in pybridge.h).</summary>
        public static void Shutdown(TimeSpan timeout, bool interrupt = false)
        {
            uint ms = Milliseconds(timeout);
            int status = Native.pyb_engine_shutdown(ms, interrupt ? Native.PYB_SHUTDOWN_INTERRUPT : 0);
            // Nothing runs (never started, or shut down already): there is nothing to stop.
            if (status == Native.PYB_E_NOT_INITIALIZED) return;
            PyStatus.Check(status);
        }

        /// <summary>How long <see cref="Shutdown()"/> waits: 30 s.</summary>
        public static readonly TimeSpan DefaultShutdownTimeout = TimeSpan.FromSeconds(30);

        /// <summary><see cref="Shutdown(TimeSpan, bool)"/> with <see cref="DefaultShutdownTimeout"/>,
        /// without interrupting threads. Quietly does nothing when the engine is not running.</summary>
        public static void Shutdown()
        {
            Shutdown(DefaultShutdownTimeout);
        }

        public static PyEngineState State { get { return (PyEngineState)Native.pyb_engine_state(); } }

        /// <summary>True when the calling thread holds the GIL.</summary>
        public static bool IsGilHeld { get { return Native.pyb_gil_held() != 0; } }

        /// <summary>Takes the GIL for this thread until the returned scope is disposed (nests).</summary>
        public static PyGil Gil()
        {
            ulong token;
            PyStatus.Check(Native.pyb_gil_acquire(out token));
            return new PyGil(token);
        }

        /// <summary>Releases the GIL (all nesting levels) until the returned region is disposed, so
        /// Python threads run during long C# work. On a thread without the GIL it does nothing.</summary>
        public static PyAllowThreads AllowThreads()
        {
            return new PyAllowThreads(BeginAllowThreads());
        }

        /// <summary>pythonnet-style: releases the GIL until <see cref="EndAllowThreads"/> on this thread.</summary>
        public static PyThreadToken BeginAllowThreads()
        {
            ulong token;
            PyStatus.Check(Native.pyb_begin_allow_threads(out token));
            return new PyThreadToken(token);
        }

        /// <summary>Takes the GIL back (blocks until it is free) on the thread that began the region.</summary>
        public static void EndAllowThreads(PyThreadToken token)
        {
            PyStatus.Check(Native.pyb_end_allow_threads(token.Value));
        }

        /// <summary>Runs Python statements in <paramref name="scope"/> (null: __main__).</summary>
        public static void Run(string code, PyObject scope = null, string filename = null)
        {
            byte[] c = Utf8.Encode(code, "code");
            if (c == null) throw new ArgumentNullException("code");
            byte[] f = Utf8.Encode(filename, "filename");
            PyStatus.Check(Native.pyb_run(c, f, scope == null ? PyObjectHandle.None : scope.Handle));
        }

        /// <summary>Evaluates one expression in <paramref name="scope"/> (null: __main__); the result is
        /// converted as for <see cref="PyObject.Call(object[])"/>.</summary>
        public static object Eval(string expression, PyObject scope = null, string filename = null)
        {
            byte[] c = Utf8.Encode(expression, "expression");
            if (c == null) throw new ArgumentNullException("expression");
            byte[] f = Utf8.Encode(filename, "filename");
            PybValue v;
            PyStatus.Check(Native.pyb_eval(c, f, scope == null ? PyObjectHandle.None : scope.Handle, out v));
            return Values.FromValue(ref v);
        }

        public static T Eval<T>(string expression, PyObject scope = null, string filename = null)
        {
            return Values.To<T>(Eval(expression, scope, filename));
        }

        /// <summary>Imports a module (dotted names allowed).</summary>
        public static PyObject Import(string name)
        {
            byte[] n = Utf8.Encode(name, "name");
            if (n == null) throw new ArgumentNullException("name");
            PyObjectHandle h;
            PyStatus.Check(Native.pyb_import(n, out h));
            return new PyObject(h);
        }

        /// <summary>A fresh namespace for Run/Eval.</summary>
        public static PyScope NewScope()
        {
            PyObjectHandle h;
            PyStatus.Check(Native.pyb_scope_new(out h));
            return new PyScope(h);
        }

        /// <summary>pybridge's version, e.g. "0.1.0".</summary>
        public static string Version { get { return Utf8.FromNative(Native.pyb_version()); } }

        /// <summary>"key: value" lines describing the Python in use (version, library, prefix, ...).</summary>
        public static unsafe string PythonInfo
        {
            get { return LastError.Read(Native.pyb_python_info); }
        }

        public static PyEngineStats GetStats()
        {
            PybStats s = new PybStats();
            s.StructSize = (UIntPtr)Marshal.SizeOf(typeof(PybStats));
            PyStatus.Check(Native.pyb_stats_get(ref s));
            PyEngineStats r = new PyEngineStats();
            r.EnginesStarted = (long)s.EnginesStarted;
            r.InterpretersFinalized = (long)s.InterpretersFinalized;
            r.ShutdownTimeouts = (long)s.ShutdownTimeouts;
            r.ThreadStatesCreated = (long)s.ThreadStatesCreated;
            r.ThreadStatesDeleted = (long)s.ThreadStatesDeleted;
            r.ThreadStatesHeld = (long)s.ThreadStatesHeld;
            return r;
        }

        // ---- logging ----

        private static readonly object logLock = new object();
        private static readonly PybLogCallback logTrampoline = LogTrampoline;
        private static Action<PyLogLevel, string> logCallback;

        /// <summary>Sends pybridge's log records up to <paramref name="maxLevel"/> to
        /// <paramref name="callback"/> (any thread, possibly with the GIL held: keep it short; its
        /// exceptions are swallowed). null or PyLogLevel.Off stops logging.</summary>
        public static void SetLogCallback(Action<PyLogLevel, string> callback, PyLogLevel maxLevel)
        {
            lock (logLock)
            {
                if (callback == null || maxLevel == PyLogLevel.Off)
                {
                    PyStatus.Check(Native.pyb_set_log_callback(IntPtr.Zero, IntPtr.Zero, 0));
                    logCallback = null;
                    return;
                }
                logCallback = callback;
                PyStatus.Check(Native.pyb_set_log_callback(Marshal.GetFunctionPointerForDelegate(logTrampoline), IntPtr.Zero, (int)maxLevel));
            }
        }

        private static void LogTrampoline(int level, IntPtr message, IntPtr userData)
        {
            try
            {
                Action<PyLogLevel, string> cb = logCallback;
                if (cb != null) cb((PyLogLevel)level, Utf8.FromNative(message));
            }
            catch
            {
                // Never unwind into native frames.
            }
        }

        // ---- host functions ----

        /// <summary>Makes <paramref name="function"/> callable from Python as <c>module.name(*args)</c>
        /// (the module is created if it does not exist). With <paramref name="releaseGil"/> the GIL is
        /// released while it runs, so Python threads keep running; it may still use PyObjects (each call
        /// takes the GIL). The delegate is kept alive until the engine shuts down. An exception it throws
        /// becomes pybridge.HostError("ExceptionType: message") in Python.</summary>
        public static void RegisterFunction(string module, string name, PyHostFunction function, bool releaseGil = false)
        {
            HostFunctions.Register(module, name, function, releaseGil);
        }

        /// <summary>Registers a host function that also takes keyword arguments
        /// (<c>host.fetch(url, timeout=5)</c>).</summary>
        public static void RegisterFunction(string module, string name, PyHostFunctionWithKeywords function, bool releaseGil = false)
        {
            HostFunctions.Register(module, name, function, true, releaseGil);
        }

        /// <summary>How many registered delegates pybridge keeps alive (they are let go at shutdown).</summary>
        public static int RegisteredFunctionCount { get { return HostFunctions.Count; } }
    }
}
