// Sub-interpreters and pools of them (bindings/csharp/Interpreters.cs).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    static bool OwnGilSupported()
    {
        return PyEngine.Eval<bool>("__import__('sys').version_info[:2] >= (3, 12)");
    }

    const string Work = "def work(n):\n    total = 0\n    for i in range(n):\n        total += i * i % 7\n    return total\n";

    [Test]
    public static void InterpretersKeepTheirObjects()
    {
        PyEngine.Initialize();
        bool own = OwnGilSupported();
        if (!own)
        {
            var refused = Assert.Throws<NotSupportedException>("PYB_E_UNSUPPORTED", () => PyInterpreter.Create(), "own GIL before 3.12");
            Assert.Contains("3.12", refused.Message, "the message names what is needed");
        }
        PyObject list;
        using (PyInterpreter interp = PyInterpreter.Create(sharedGil: !own))
        {
            Assert.True(interp.Handle is PyInterpreterHandle && !interp.Handle.IsInvalid && !interp.Handle.IsClosed, "Handle");
            using (interp.Enter())
            {
                PyEngine.Run("where = 'inside'");
                Assert.Equal("inside", PyEngine.Eval<string>("where"), "its own __main__");
                list = PyEngine.Eval<PyObject>("[1, 2, 3]");
                Assert.Throws<PyWouldDeadlockException>("PYB_E_WOULD_DEADLOCK", () => interp.Destroy(Ten), "destroy from inside");
            }
            Assert.Equal(false, PyEngine.Eval<bool>("'where' in globals()"), "the main __main__ is apart");
            Assert.Throws<PyWrongInterpreterException>("PYB_E_WRONG_INTERPRETER", () => list.GetItem(0L), "an object of another interpreter");
            using (interp.Enter()) Assert.Equal(6L, PyEngine.Eval<long>("sum([1, 2, 3])"), "a plain value crosses");
            list.Dispose(); // queued, applied inside its interpreter
            interp.Destroy(Ten);
            Assert.True(interp.Handle.IsClosed, "Handle after Destroy");
        }
        // Left to the engine's end: Dispose after shutdown is quiet.
        PyInterpreter left = PyInterpreter.Create(sharedGil: !own);
        PyEngine.Shutdown(Ten);
        left.Dispose();
    }

    /// <summary>Collects what the binding writes to System.Diagnostics.Trace.</summary>
    sealed class TraceLines : TraceListener
    {
        readonly List<string> lines = new List<string>();
        public override void Write(string message) { lock (lines) lines.Add(message); }
        public override void WriteLine(string message) { lock (lines) lines.Add(message); }
        public string Text { get { lock (lines) return string.Join("\n", lines); } }
    }

    [Test]
    public static void InterpreterDisposeNeverThrowsAndWaitsTheCallersTimeout()
    {
        PyEngine.Initialize();
        var trace = new TraceLines();
        Trace.Listeners.Add(trace);
        PyInterpreter interp = PyInterpreter.Create(sharedGil: !OwnGilSupported());
        Assert.Equal(TimeSpan.FromSeconds(10), interp.DisposeTimeout, "the default DisposeTimeout");
        Assert.Throws<ArgumentOutOfRangeException>(null, () => interp.DisposeTimeout = TimeSpan.FromSeconds(-1), "a negative timeout");
        // From inside: Destroy throws; Dispose traces the failure and leaves it to the engine's end.
        using (interp.Enter())
        {
            Assert.Throws<PyWouldDeadlockException>("PYB_E_WOULD_DEADLOCK", () => interp.Destroy(Ten), "Destroy from inside");
            interp.Dispose();
        }
        Assert.True(interp.Handle.IsClosed, "the handle is closed after a failed Dispose");
        Assert.Contains("PyInterpreter.Dispose failed (PYB_E_WOULD_DEADLOCK)", trace.Text, "the failure is traced");
        interp.Dispose(); // a second Dispose does nothing
        // A thread inside: Dispose waits the caller's timeout, not 10 s, then traces PYB_E_TIMEOUT.
        PyInterpreter busy = PyInterpreter.Create(sharedGil: !OwnGilSupported());
        busy.DisposeTimeout = TimeSpan.FromMilliseconds(200);
        var inside = new ManualResetEventSlim();
        var leave = new ManualResetEventSlim();
        var occupant = new Thread(() =>
        {
            using (busy.Enter())
            using (PyEngine.AllowThreads())
            {
                inside.Set();
                leave.Wait();
            }
        });
        occupant.Start();
        Assert.True(inside.Wait(Ten), "the occupant entered");
        Stopwatch waited = Stopwatch.StartNew();
        busy.Dispose();
        waited.Stop();
        leave.Set();
        Assert.True(occupant.Join(Ten), "the occupant left");
        Assert.True(waited.Elapsed >= TimeSpan.FromMilliseconds(190) && waited.Elapsed < TimeSpan.FromSeconds(5),
            "Dispose waited DisposeTimeout (" + waited.Elapsed.TotalMilliseconds + " ms)");
        Assert.Contains("PyInterpreter.Dispose failed (PYB_E_TIMEOUT)", trace.Text, "the timeout is traced");
        // A pool's Dispose takes the same settings; after the engine's end it is quiet.
        if (OwnGilSupported())
        {
            var pool = new PyInterpreterPool(1);
            pool.DisposeTimeout = TimeSpan.FromSeconds(5);
            Assert.Equal(TimeSpan.FromSeconds(5), pool.DisposeTimeout, "the pool's DisposeTimeout");
            PyEngine.Shutdown(Ten);
            pool.Dispose();
        }
        else PyEngine.Shutdown(Ten);
        Trace.Listeners.Remove(trace);
        Assert.Equal(2, trace.Text.Split('\n').Count(l => l.Contains("Dispose failed")), "two failures traced, none after shutdown: " + trace.Text);
    }

    [Test]
    public static void InterpreterPoolLendsAndCounts()
    {
        PyEngine.Initialize();
        if (!OwnGilSupported())
        {
            Assert.Throws<NotSupportedException>("PYB_E_UNSUPPORTED", () => new PyInterpreterPool(2, Work), "a pool before 3.12");
            return;
        }
        using (PyInterpreterPool pool = new PyInterpreterPool(2, Work))
        {
            Assert.True(pool.Handle is PyPoolHandle && !pool.Handle.IsInvalid, "Handle");
            long[] results = new long[2];
            Thread[] threads = new Thread[2];
            for (int t = 0; t < 2; t++)
            {
                int index = t;
                threads[t] = new Thread(() =>
                {
                    using (PyInterpreterLease lease = pool.Borrow(Ten))
                    {
                        Assert.True(!lease.Handle.IsInvalid && !lease.Handle.IsClosed, "lease Handle");
                        results[index] = PyEngine.Eval<long>("work(100000)");
                    }
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
            Assert.Equal(results[0], results[1], "both interpreters ran work()");
            using (PyInterpreterLease a = pool.Borrow(Ten))
            {
                // Leases are entered on the borrowing thread: the second one on another thread.
                Exception failure = null;
                Thread other = new Thread(() =>
                {
                    try
                    {
                        using (pool.Borrow(Ten))
                            Assert.Throws<PyTimeoutException>("PYB_E_TIMEOUT", () => pool.Borrow(TimeSpan.FromMilliseconds(50)), "third borrow of two");
                    }
                    catch (Exception e) { failure = e; }
                });
                other.Start();
                other.Join();
                if (failure != null) throw failure;
                // From inside a lease: refused at once, nothing changed.
                Assert.Throws<PyWouldDeadlockException>("PYB_E_WOULD_DEADLOCK", () => pool.Destroy(Ten), "destroy from inside a lease");
                // From another thread while lent: times out, nothing changed.
                Thread destroyer = new Thread(() =>
                {
                    try
                    {
                        Assert.Throws<PyTimeoutException>("PYB_E_TIMEOUT", () => pool.Destroy(TimeSpan.FromMilliseconds(50)), "destroy while lent");
                    }
                    catch (Exception e) { failure = e; }
                });
                destroyer.Start();
                destroyer.Join();
                if (failure != null) throw failure;
            }
            PyPoolStats stats = pool.GetStats();
            Assert.Equal(2L, stats.Size, "Size");
            Assert.Equal(2L, stats.Free, "Free");
            Assert.Equal(4L, stats.Borrows, "Borrows");
            Assert.Equal(1L, stats.Waits, "Waits");
            Assert.Equal(1L, stats.Timeouts, "Timeouts");
            Assert.True(stats.WaitMax >= TimeSpan.FromMilliseconds(50), "WaitMax " + stats.WaitMax);
            Assert.True(stats.WaitTotal >= stats.WaitMax, "WaitTotal " + stats.WaitTotal);
            pool.Destroy(Ten);
            Assert.True(pool.Handle.IsClosed, "Handle after Destroy");
        }
        PyEngine.Shutdown(Ten);
    }
}
