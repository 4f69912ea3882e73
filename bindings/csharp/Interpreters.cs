// Sub-interpreters and pools of them (pyb_interpreter_*, pyb_pool_* in pybridge.h).
using System;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>A sub-interpreter: with its own GIL (CPython 3.12+, the default), Python in it runs
    /// at the same time as Python elsewhere; with a shared GIL it works on every CPython. Code run
    /// inside <see cref="Enter"/> uses its own <c>__main__</c>; a <see cref="PyObject"/> made inside
    /// belongs to it (<see cref="PyWrongInterpreterException"/> elsewhere), while plain values
    /// (null, bool, long, double, string, byte[]) cross because they are copied.
    /// Dispose destroys it, waiting at most <see cref="DisposeTimeout"/>, and never throws (see
    /// <see cref="Dispose"/>). One that is only finalized is left to the engine's shutdown, which
    /// ends every interpreter (a finalizer must not wait), so finalizing after shutdown is safe.</summary>
    public sealed class PyInterpreter : IDisposable
    {
        private readonly PyInterpreterHandle handle;

        private PyInterpreter(PyInterpreterHandle handle)
        {
            this.handle = handle;
            DisposeTimeout = DisposeStatus.DefaultTimeout;
        }

        private TimeSpan disposeTimeout;

        /// <summary>How long <see cref="Dispose"/> waits for threads inside the interpreter
        /// (default 10 s; <see cref="Timeout.InfiniteTimeSpan"/> waits for ever; a negative one is
        /// refused here, so that Dispose cannot throw for it).</summary>
        public TimeSpan DisposeTimeout
        {
            get { return disposeTimeout; }
            set { PyEngine.Milliseconds(value); disposeTimeout = value; }
        }

        /// <summary>Makes an interpreter. Own GIL before CPython 3.12 throws
        /// <see cref="NotSupportedException"/> whose message names the version.</summary>
        public static PyInterpreter Create(bool sharedGil = false)
        {
            PybInterpreterConfig config;
            PyStatus.Check(Native.pyb_interpreter_config_default(out config));
            if (sharedGil) config.Flags |= Native.PYB_INTERPRETER_SHARED_GIL;
            PyInterpreterHandle handle;
            PyStatus.Check(Native.pyb_interpreter_new(ref config, out handle));
            return new PyInterpreter(handle);
        }

        /// <summary>The pyb_interpreter handle (closed once destroyed).</summary>
        public PyInterpreterHandle Handle { get { return handle; } }

        /// <summary>A GIL scope inside this interpreter on the calling thread, until disposed (on
        /// the same thread): PyEngine.Run, Eval and every PyObject call work there meanwhile.</summary>
        public PyGil Enter()
        {
            return EnterHandle(handle);
        }

        internal static PyGil EnterHandle(PyInterpreterHandle handle)
        {
            ulong token;
            PyStatus.Check(Native.pyb_interpreter_enter(handle, out token));
            return new PyGil(token);
        }

        /// <summary>Destroys it, waiting at most <paramref name="timeout"/> for threads inside:
        /// <see cref="PyTimeoutException"/> after that (it is unchanged; or, with
        /// <c>Committed</c> true, its end began and carries on: it can no longer be entered, and
        /// <c>Destroy</c> again waits for the end); from inside it,
        /// <see cref="PyWouldDeadlockException"/>.</summary>
        public void Destroy(TimeSpan timeout)
        {
            if (handle.IsClosed) return;
            PyStatus.Check(Native.pyb_interpreter_destroy(handle, PyEngine.Milliseconds(timeout)));
            handle.Dispose();
        }

        /// <summary>Destroys it, waiting at most <see cref="DisposeTimeout"/>, and never throws: a
        /// destroy that fails (its deadline passed, or it was asked from inside the interpreter) is
        /// written to <see cref="System.Diagnostics.Trace"/> and the interpreter is left to the
        /// engine's end, which ends every interpreter; quiet when the engine already ended it.
        /// <see cref="Destroy"/> throws instead.</summary>
        public void Dispose()
        {
            if (handle.IsClosed) return;
            DisposeStatus.Log("PyInterpreter", Native.pyb_interpreter_destroy(handle, PyEngine.Milliseconds(DisposeTimeout)));
            handle.Dispose();
        }
    }

    /// <summary>A pool's counters (<see cref="PyInterpreterPool.GetStats"/>).</summary>
    public sealed class PyPoolStats
    {
        public long Size { get; internal set; }
        public long Free { get; internal set; }
        public long Borrows { get; internal set; }
        /// <summary>Borrows that found every interpreter taken and waited (timed out or not).</summary>
        public long Waits { get; internal set; }
        public long Timeouts { get; internal set; }
        public TimeSpan WaitTotal { get; internal set; }
        public TimeSpan WaitMax { get; internal set; }
    }

    /// <summary>A borrowed interpreter, entered on the borrowing thread until disposed (on that
    /// thread), which leaves it and gives it back.</summary>
    public sealed class PyInterpreterLease : IDisposable
    {
        private readonly PyPoolHandle pool;
        private readonly PyInterpreterHandle interpreter;
        private readonly PyGil scope;

        internal PyInterpreterLease(PyPoolHandle pool, PyInterpreterHandle interpreter)
        {
            this.pool = pool;
            this.interpreter = interpreter;
            try
            {
                scope = PyInterpreter.EnterHandle(interpreter);
            }
            catch
            {
                Native.pyb_pool_return(pool, interpreter);
                interpreter.Dispose();
                throw;
            }
        }

        /// <summary>The borrowed pyb_interpreter handle (closed once given back).</summary>
        public PyInterpreterHandle Handle { get { return interpreter; } }

        /// <summary>Leaves the interpreter (on the borrowing thread: elsewhere it throws
        /// <see cref="PyWrongThreadException"/>, as a GIL scope's Dispose does, and the lease
        /// stays) and gives it back. Giving it back does not throw: a pool the engine already
        /// ended is written to <see cref="System.Diagnostics.Trace"/>.</summary>
        public void Dispose()
        {
            if (interpreter.IsClosed) return;
            scope.Dispose();
            DisposeStatus.Log("PyInterpreterLease", Native.pyb_pool_return(pool, interpreter));
            interpreter.Dispose();
        }
    }

    /// <summary>A pool of interpreters with their own GIL (CPython 3.12+), each set up by the same
    /// code: threads borrow one, run in it, and give it back, so Python runs on as many cores as
    /// the pool has interpreters.</summary>
    public sealed class PyInterpreterPool : IDisposable
    {
        private readonly PyPoolHandle handle;

        public PyInterpreterPool(int count, string setupCode = null)
        {
            if (count <= 0) throw new ArgumentOutOfRangeException("count", "a pool holds at least one interpreter");
            byte[] setup = setupCode == null ? null : Utf8.Encode(setupCode, "setupCode");
            PyStatus.Check(Native.pyb_pool_new((UIntPtr)(uint)count, setup, out handle));
            DisposeTimeout = DisposeStatus.DefaultTimeout;
        }

        private TimeSpan disposeTimeout;

        /// <summary>How long <see cref="Dispose"/> waits for leases to end (default 10 s;
        /// <see cref="Timeout.InfiniteTimeSpan"/> waits for ever; a negative one is refused here,
        /// so that Dispose cannot throw for it).</summary>
        public TimeSpan DisposeTimeout
        {
            get { return disposeTimeout; }
            set { PyEngine.Milliseconds(value); disposeTimeout = value; }
        }

        /// <summary>The pyb_pool handle (closed once destroyed).</summary>
        public PyPoolHandle Handle { get { return handle; } }

        /// <summary>Borrows a free interpreter, waiting at most <paramref name="timeout"/>
        /// (<see cref="PyTimeoutException"/> after), and enters it on this thread.</summary>
        public PyInterpreterLease Borrow(TimeSpan timeout)
        {
            PyInterpreterHandle interpreter;
            PyStatus.Check(Native.pyb_pool_borrow(handle, PyEngine.Milliseconds(timeout), out interpreter));
            return new PyInterpreterLease(handle, interpreter);
        }

        public PyPoolStats GetStats()
        {
            PybPoolStats s = new PybPoolStats();
            s.StructSize = (UIntPtr)Marshal.SizeOf(typeof(PybPoolStats));
            PyStatus.Check(Native.pyb_pool_stats_get(handle, ref s));
            PyPoolStats r = new PyPoolStats();
            r.Size = (long)s.Size;
            r.Free = (long)s.Free;
            r.Borrows = (long)s.Borrows;
            r.Waits = (long)s.Waits;
            r.Timeouts = (long)s.Timeouts;
            r.WaitTotal = TimeSpan.FromTicks((long)(s.WaitNsTotal / 100));
            r.WaitMax = TimeSpan.FromTicks((long)(s.WaitNsMax / 100));
            return r;
        }

        /// <summary>Destroys the pool and its interpreters, waiting at most
        /// <paramref name="timeout"/> for leases to end (<see cref="PyTimeoutException"/>: unchanged;
        /// with <c>Committed</c> true, the interpreters' end began and carries on, and
        /// <c>Destroy</c> again waits for it).</summary>
        public void Destroy(TimeSpan timeout)
        {
            if (handle.IsClosed) return;
            PyStatus.Check(Native.pyb_pool_destroy(handle, PyEngine.Milliseconds(timeout)));
            handle.Dispose();
        }

        /// <summary>Destroys it, waiting at most <see cref="DisposeTimeout"/> for leases to end, and
        /// never throws: a destroy that fails is written to <see cref="System.Diagnostics.Trace"/>
        /// and the pool is left to the engine's end; quiet when the engine already ended it.
        /// <see cref="Destroy"/> throws instead.</summary>
        public void Dispose()
        {
            if (handle.IsClosed) return;
            DisposeStatus.Log("PyInterpreterPool", Native.pyb_pool_destroy(handle, PyEngine.Milliseconds(DisposeTimeout)));
            handle.Dispose();
        }
    }

    /// <summary>What <c>Dispose</c> of an interpreter, a pool or a lease makes of its status:
    /// Dispose runs in <c>using</c> blocks and finally clauses, where an exception would hide the
    /// one in flight, so a failure is traced, never thrown.</summary>
    internal static class DisposeStatus
    {
        internal static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

        /// <summary>Writes a failed status to <see cref="System.Diagnostics.Trace"/> (as a warning,
        /// with the last error's text), except when the engine already ended the interpreter or
        /// pool (its shutdown ends them all): Dispose after shutdown is quiet.</summary>
        internal static void Log(string what, int status)
        {
            if (status == Native.PYB_OK || status == Native.PYB_E_BAD_HANDLE || status == Native.PYB_E_NOT_INITIALIZED) return;
            string detail = LastError.Message;
            System.Diagnostics.Trace.TraceWarning("pybridge: {0}.Dispose failed ({1}), left to the engine's end: {2}",
                what, PyStatus.Name(status), detail.Length == 0 ? PyStatus.Name(status) : detail);
        }
    }
}
