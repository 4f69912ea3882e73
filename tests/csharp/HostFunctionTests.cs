// C# delegates as Python functions (synchronous ones; async ones: AsyncHostFunctionTests.cs).
using System;
using System.Linq;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void HostFunctionsArgumentsResultsErrors()
    {
        PyEngine.Initialize();
        int before = PyEngine.RegisteredFunctionCount;
        string seenTypes = null;
        PyEngine.RegisterFunction("cs", "describe", args =>
        {
            seenTypes = string.Join(",", args.Select(x => x == null ? "null" : x.GetType().Name));
            foreach (var x in args) { var p = x as PyObject; if (p != null) p.Dispose(); }
            return args.Length;
        });
        Assert.Equal(3L, PyEngine.Eval<long>("__import__('cs').describe(None, True, 1)"), "int result");
        Assert.Equal(5L, PyEngine.Eval<long>("__import__('cs').describe(1.5, 's', b'b', [1], 2**80)"), "5 args");
        Assert.Equal("Double,String,Byte[],PyObject,PyObject", seenTypes, "argument types");
        // Results of every kind.
        object[] results = { null, true, 7L, 2.5, "\u2603", new byte[] { 1, 2 } };
        PyEngine.RegisterFunction("cs", "pick", args => results[(long)args[0]]);
        Assert.Equal("None|True|7|2.5|'\u2603'|b'\\x01\\x02'", PyEngine.Eval<string>("'|'.join(repr(__import__('cs').pick(i)) for i in range(6))"), "results");
        // A PyObject argument kept past the call, and a PyObject result.
        PyObject kept = null;
        PyEngine.RegisterFunction("cs", "keep", args => { kept = (PyObject)args[0]; return kept; });
        Assert.Equal(true, PyEngine.Eval<bool>("(lambda l: __import__('cs').keep(l) is l)([1, 2])"), "object identity");
        Assert.Equal(2L, kept.Length, "argument kept after the call");
        kept.Dispose();
        // An exception in the delegate becomes pybridge.HostError with the .NET message.
        PyEngine.RegisterFunction("cs", "fail", args => { throw new ArgumentException("no good"); });
        var e = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("__import__('cs').fail()"), "delegate threw");
        Assert.Equal("pybridge.HostError", e.PythonTypeName, "HostError");
        Assert.Equal("System.ArgumentException: no good", e.PythonMessage, "HostError message");
        Assert.Equal("System.ArgumentException: no good|True", CatchInPython(), "caught in Python as a RuntimeError");
        // Unsupported result type: also a HostError, with the binding's message.
        PyEngine.RegisterFunction("cs", "weird", args => new object());
        var w = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("__import__('cs').weird()"), "bad result");
        Assert.Contains("cannot pass a System.Object to Python", w.PythonMessage, "bad result message");
        // Kept alive while registered: the lambdas above have no other reference.
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        Assert.Equal(3L, PyEngine.Eval<long>("__import__('cs').describe(1, 2, 3)"), "callable after GC");
        Assert.Equal(before + 5, PyEngine.RegisteredFunctionCount, "RegisteredFunctionCount");
        // Called from a Python thread.
        PyEngine.Run("import threading, cs\nout = []\nth = threading.Thread(target=lambda: out.append(cs.describe(1, 2)))\nth.start(); th.join()");
        Assert.Equal(2L, PyEngine.Eval<long>("out[0]"), "called from a Python thread");
        Assert.Throws<ArgumentException>("PYB_E_INVALID_ARGUMENT", () => PyEngine.RegisterFunction("a.b", "f", args => null), "dotted module");
        Assert.Equal(before + 5, PyEngine.RegisteredFunctionCount, "a failed registration keeps nothing");
        PyEngine.Shutdown(Ten);
        Assert.Equal(0, PyEngine.RegisteredFunctionCount, "delegates let go at shutdown");
    }

    static string CatchInPython()
    {
        PyEngine.Run("import cs\ntry:\n    cs.fail()\nexcept RuntimeError as e:\n    caught = f'{e}|{isinstance(e, RuntimeError)}'\n");
        return PyEngine.Eval<string>("caught");
    }

    [Test]
    public static void HostFunctionReleasingTheGilLetsPythonRun()
    {
        PyEngine.Initialize();
        StartTicker(0.05);
        // work(ticker, ms) -> (ticks seen during the C# work, GIL held during it); the counter is
        // read with getattr, which runs no bytecode and so never hands the GIL over.
        PyHostFunction work = args =>
        {
            using (PyObject ticker = (PyObject)args[0])
            {
                long before = ticker.GetAttr<long>("count");
                bool held = PyEngine.IsGilHeld;
                long ms = (long)args[1];
                // 0: work until the ticker has ticked 3 times (30 s at most), which it can only
                // while this runs without the GIL: the event, not a time (a busy machine, or
                // wine, made 600 ms give 5 ticks of 50 ms).
                if (ms == 0) BusyUntil(() => ticker.GetAttr<long>("count") - before >= 3);
                else BusyFor(TimeSpan.FromMilliseconds(ms));
                return PyObject.NewTuple(ticker.GetAttr<long>("count") - before, held);
            }
        };
        PyEngine.RegisterFunction("cs", "work", work, releaseGil: true);
        PyEngine.RegisterFunction("cs", "work_holding", work);
        PyEngine.Run("import cs\ndef timed(f, ms):\n    return f(ticker, ms)\n");
        using (PyObject r = PyEngine.Eval<PyObject>("timed(cs.work, 0)"))
        {
            Assert.True(r.GetItem<long>(0L) >= 3, "3 ticks during a release-GIL host function (within 30 s): " + r.GetItem<long>(0L));
            Assert.Equal(false, r.GetItem<bool>(1L), "the release-GIL function runs without the GIL");
        }
        using (PyObject r = PyEngine.Eval<PyObject>("timed(cs.work_holding, 300)"))
        {
            Assert.Equal(0L, r.GetItem<long>(0L), "ticks during a 300 ms host function that keeps the GIL");
            Assert.Equal(true, r.GetItem<bool>(1L), "the default policy keeps the GIL");
        }
        PyEngine.Run("ticker.stop.set()");
        PyEngine.Shutdown(Ten);
    }
}
