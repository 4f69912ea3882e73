// Sub-interpreters and pools of them (pyb_interpreter_*, pyb_pool_* in pybridge.h).
using System;
using System.Runtime.InteropServices;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>A sub-interpreter: with its own GIL (CPython 3.12+, the default), Python in it runs
    /// at the same time as Python elsewhere; with a shared GIL it works on every CPython. Code run
    /// inside <see cref="Enter"/> uses its own <c>__main__</c>; a <see cref="PyObject"/> made inside
    /// belongs to it (<see cref="PyWrongInterpreterException"/> elsewhere), while plain values
    /// (null, bool, long, double, string, byte[]) cross because they are copied.
    /// Dispose destroys it. One that is only finalized is left to the engine's shutdown, which
    /// ends every interpreter (a finalizer must not wait), so finalizing after shutdown is safe.</summary>
    public sealed class PyInterpreter : IDisposable
    {
        private readonly PyInterpreterHandle handle;

        private PyInterpreter(PyInterpreterHandle handle) { this.handle = handle; }

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

        /// <summary>Destroys it (waiting at most 10 s); quiet when the engine already ended it.</summary>
        public void Dispose()
        {
            if (handle.IsClosed) return;
            int status = Native.pyb_interpreter_destroy(handle, 10000);
            handle.Dispose();
            DisposeStatus.Check(status);
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

        public void Dispose()
        {
            if (interpreter.IsClosed) return;
            scope.Dispose();
            int status = Native.pyb_pool_return(pool, interpreter);
            interpreter.Dispose();
            PyStatus.Check(status);
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

        /// <summary>Destroys it (waiting at most 10 s); quiet when the engine already ended it.</summary>
        public void Dispose()
        {
            if (handle.IsClosed) return;
            int status = Native.pyb_pool_destroy(handle, 10000);
            handle.Dispose();
            DisposeStatus.Check(status);
        }
    }

    /// <summary>What <c>Dispose</c> of an interpreter or a pool makes of its destroy's status.</summary>
    internal static class DisposeStatus
    {
        /// <summary>Throws for a failed destroy, but not when the engine already ended the
        /// interpreter or pool (its shutdown ends them all), so Dispose after shutdown is quiet.</summary>
        internal static void Check(int status)
        {
            if (status != Native.PYB_OK && status != Native.PYB_E_BAD_HANDLE && status != Native.PYB_E_NOT_INITIALIZED)
                throw PyStatus.ToException(status);
        }
    }
}
