// Shutdown and misuse: deadlines, interrupts, calls during and after a shutdown, wrong threads.
using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void EndAllowThreadsThenShutdownFromAnotherThread()
    {
        PyEngine.Initialize();
        StartTicker(0.1);
        PyThreadToken token = PyEngine.BeginAllowThreads();
        BusyFor(TimeSpan.FromMilliseconds(100));
        PyEngine.EndAllowThreads(token);
        TimeSpan took = Assert.Within(TimeSpan.FromSeconds(5), "Shutdown from another thread", () => PyEngine.Shutdown(TimeSpan.FromSeconds(3)));
        Assert.True(took < TimeSpan.FromSeconds(3), "returned within its timeout: " + took.TotalMilliseconds + " ms");
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state");
        Console.WriteLine("  shutdown from another thread took {0:F1} ms", took.TotalMilliseconds);
    }

    [Test]
    public static void ShutdownTimesOutWhileAnotherThreadHoldsTheGil()
    {
        PyEngine.Initialize();
        long timeoutsBefore = PyEngine.GetStats().ShutdownTimeouts;
        var holding = new ManualResetEventSlim();
        var release = new ManualResetEventSlim();
        var holder = new Thread(() => { using (PyEngine.Gil()) { holding.Set(); release.Wait(); } });
        holder.Start();
        Assert.True(holding.Wait(Ten), "holder took the GIL");
        Stopwatch sw = Stopwatch.StartNew();
        var e = Assert.Throws<PyTimeoutException>("PYB_E_TIMEOUT", () => PyEngine.Shutdown(TimeSpan.FromMilliseconds(300)), "shutdown while another thread holds the GIL");
        Assert.True(!e.Committed, "a timeout before the point of no return is not committed");
        long ms = sw.ElapsedMilliseconds;
        Assert.True(ms >= 290 && ms < 1300, "timed out after its 300 ms deadline: " + ms + " ms");
        Assert.True(e.Message.Length > 20, "message names what blocked: " + e.Message);
        Assert.Equal(PyEngineState.Running, PyEngine.State, "engine runs on after a timeout");
        Assert.Equal(timeoutsBefore + 1, PyEngine.GetStats().ShutdownTimeouts, "ShutdownTimeouts");
        release.Set();
        holder.Join();
        Assert.Within(Ten, "second shutdown", () => PyEngine.Shutdown(TimeSpan.FromSeconds(5)));
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state");
    }

    [Test]
    public static void ShutdownInsideAGilScopeWouldDeadlock()
    {
        PyEngine.Initialize();
        using (PyEngine.Gil())
            Assert.Throws<PyWouldDeadlockException>("PYB_E_WOULD_DEADLOCK", () => PyEngine.Shutdown(Ten), "shutdown holding the GIL");
        Assert.Throws<ArgumentOutOfRangeException>(null, () => PyEngine.Shutdown(TimeSpan.FromMilliseconds(-5)), "negative timeout");
        PyEngine.Shutdown(Timeout.InfiniteTimeSpan);
    }

    [Test]
    public static void ShutdownInterruptStopsANonDaemonPythonThread()
    {
        PyEngine.Initialize();
        PyEngine.Run("import threading, time\ndef spin():\n    while True:\n        time.sleep(0.01)\nthreading.Thread(target=spin, daemon=False).start()\n");
        Assert.Throws<PyTimeoutException>("PYB_E_TIMEOUT", () => PyEngine.Shutdown(TimeSpan.FromMilliseconds(200)), "a non-daemon thread blocks shutdown");
        Assert.Within(Ten, "interrupting shutdown", () => PyEngine.Shutdown(TimeSpan.FromSeconds(5), interrupt: true));
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state");
    }

    [Test]
    public static void UseAfterShutdown()
    {
        Assert.Throws<PyEngineNotRunningException>("PYB_E_NOT_INITIALIZED", () => PyEngine.Run("1"), "Run before Initialize");
        PyEngine.Shutdown(); // nothing runs: quiet
        PyEngine.Initialize();
        PyObject survivor = PyEngine.Eval<PyObject>("[1, 2, 3]");
        PyScope scope = PyEngine.NewScope();
        PyEngine.Shutdown(Ten);
        Assert.Throws<PyEngineNotRunningException>("PYB_E_NOT_INITIALIZED", () => PyEngine.Run("1"), "Run");
        Assert.Throws<PyEngineNotRunningException>("PYB_E_NOT_INITIALIZED", () => PyEngine.Eval("1"), "Eval");
        Assert.Throws<PyEngineNotRunningException>("PYB_E_NOT_INITIALIZED", () => PyEngine.Import("os"), "Import");
        Assert.Throws<PyEngineNotRunningException>("PYB_E_NOT_INITIALIZED", () => PyEngine.Gil(), "Gil");
        Assert.True(new PyEngineNotRunningException("x") is InvalidOperationException, "still an InvalidOperationException");
        PyEngine.Shutdown(Ten); // shutting down twice is quiet
        PyEngine.Shutdown();
        Assert.Equal("<PyObject of an engine that has shut down>", survivor.ToString(), "ToString after shutdown never throws");
        Assert.Throws<ObjectDisposedException>("PYB_E_BAD_HANDLE", () => survivor.ToInt64(), "object from a shut-down engine");
        Assert.Throws<ObjectDisposedException>("PYB_E_BAD_HANDLE", () => scope.Run("x = 1"), "scope from a shut-down engine");
        survivor.Dispose(); // releasing a stale handle is quiet
        scope.Dispose();
        // A new engine does not accept the old handles either.
        PyEngine.Initialize();
        PyObject old = PyEngine.Eval<PyObject>("object()");
        PyEngine.Shutdown(Ten);
        PyEngine.Initialize();
        Assert.Throws<ObjectDisposedException>("PYB_E_BAD_HANDLE", () => old.Call(), "handle from an earlier engine");
        old.Dispose();
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void DisposeTwiceAndUseAfterDispose()
    {
        PyEngine.Initialize();
        PyObject o = PyEngine.Eval<PyObject>("[1]");
        Assert.True(!o.IsDisposed, "not disposed yet");
        o.Dispose();
        o.Dispose();
        Assert.True(o.IsDisposed, "IsDisposed");
        Assert.Equal("<disposed PyObject>", o.ToString(), "ToString after Dispose");
        Assert.Throws<ObjectDisposedException>(null, () => o.ToInt64(), "use after Dispose");
        Assert.Throws<ObjectDisposedException>(null, () => o.DangerousGetHandle(), "DangerousGetHandle after Dispose");
        using (PyObject len = PyEngine.Eval<PyObject>("len"))
            Assert.Throws<ObjectDisposedException>(null, () => len.Call(o), "a disposed argument");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void ReleaseOnAnotherThreadWithoutTheGil()
    {
        PyEngine.Initialize();
        PyEngine.Run("import weakref\nclass T: pass\nrefs = []\ndef make():\n    t = T()\n    refs.append(weakref.ref(t))\n    return t\n");
        var objects = Enumerable.Range(0, 100).Select(i => PyEngine.Eval<PyObject>("make()")).ToList();
        Assert.Equal(100L, PyEngine.Eval<long>("sum(r() is not None for r in refs)"), "alive before");
        Assert.Within(Ten, "dispose on another thread", () =>
        {
            Assert.True(!PyEngine.IsGilHeld, "the other thread has no GIL");
            foreach (var o in objects) o.Dispose();
        });
        Assert.Equal(0L, PyEngine.Eval<long>("sum(r() is not None for r in refs)"), "released after the queue drained");
        PyEngine.Shutdown(Ten);
    }

    static WeakReference MakeGarbage(int n)
    {
        var list = Enumerable.Range(0, n).Select(i => PyEngine.Eval<PyObject>("make()")).ToList();
        return new WeakReference(list[0]);
    }

    [Test]
    public static void FinalizerReleasesHandlesWhileRunningAndAfterShutdown()
    {
        PyEngine.Initialize();
        PyEngine.Run("import weakref\nclass T: pass\nrefs = []\ndef make():\n    t = T()\n    refs.append(weakref.ref(t))\n    return t\n");
        WeakReference w = MakeGarbage(200);
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        Assert.True(!w.IsAlive, "the PyObjects were collected");
        Assert.Equal(0L, PyEngine.Eval<long>("sum(r() is not None for r in refs)"), "finalized handles released the objects");
        // Now garbage that is finalized only after the engine is gone.
        WeakReference late = MakeGarbage(200);
        PyEngine.Shutdown(Ten);
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        Assert.True(!late.IsAlive, "collected after shutdown");
        // And after a restart the stale releases changed nothing in the new engine.
        PyEngine.Initialize();
        Assert.Equal(6L, PyEngine.Eval<long>("len([1, 2, 3]) * 2"), "new engine works");
        PyEngine.Shutdown(Ten);
    }
}
