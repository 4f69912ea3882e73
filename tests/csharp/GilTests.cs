// GIL scopes, allow-threads regions and Python threads running beside C#.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void GilScopesNestAndMisuse()
    {
        PyEngine.Initialize();
        Assert.True(!PyEngine.IsGilHeld, "no GIL after Initialize");
        using (PyGil outer = PyEngine.Gil())
        {
            Assert.True(PyEngine.IsGilHeld, "GIL inside a scope");
            using (PyEngine.Gil()) Assert.True(PyEngine.IsGilHeld, "nested");
            Assert.True(PyEngine.IsGilHeld, "still held after the nested scope");
            // Misuse: release on another thread, out of order.
            Exception other = null;
            var t = new Thread(() => { try { outer.Dispose(); } catch (Exception x) { other = x; } });
            t.Start(); t.Join();
            Assert.True(other is PyWrongThreadException, "Dispose on another thread: " + other);
            Assert.Equal("PYB_E_WRONG_THREAD", other.Data[PyStatus.DataKey] as string, "status");
            PyGil inner = PyEngine.Gil();
            Assert.Throws<InvalidOperationException>("PYB_E_BAD_TOKEN", () => outer.Dispose(), "out of LIFO order");
            inner.Dispose();
            inner.Dispose(); // twice: nothing
        }
        Assert.True(!PyEngine.IsGilHeld, "released");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void AllowThreadsRegions()
    {
        PyEngine.Initialize();
        using (PyEngine.Gil())
        {
            using (PyAllowThreads region = PyEngine.AllowThreads())
            {
                Assert.True(!PyEngine.IsGilHeld, "no GIL inside AllowThreads");
                using (PyEngine.Gil()) Assert.True(PyEngine.IsGilHeld, "a GIL scope inside the region");
                region.Dispose();
                Assert.True(PyEngine.IsGilHeld, "GIL back after the region");
            }
            PyThreadToken token = PyEngine.BeginAllowThreads();
            Assert.True(!PyEngine.IsGilHeld, "no GIL after BeginAllowThreads");
            Exception other = null;
            var t = new Thread(() => { try { PyEngine.EndAllowThreads(token); } catch (Exception x) { other = x; } });
            t.Start(); t.Join();
            Assert.True(other is PyWrongThreadException, "EndAllowThreads on another thread: " + other);
            PyEngine.EndAllowThreads(token);
            Assert.True(PyEngine.IsGilHeld, "GIL back after EndAllowThreads");
            Assert.Throws<InvalidOperationException>("PYB_E_BAD_TOKEN", () => PyEngine.EndAllowThreads(token), "ended twice");
        }
        // Without the GIL, Begin/End is a no-op pair (pythonnet's pattern is always safe).
        PyThreadToken noop = PyEngine.BeginAllowThreads();
        PyEngine.EndAllowThreads(noop);
        Assert.True(!PyEngine.IsGilHeld, "still no GIL");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void PythonThreadTicksDuringCSharpWork()
    {
        PyEngine.Initialize();
        StartTicker(0.05);
        // Read the counter with getattr, not Eval: evaluating bytecode lets CPython hand the GIL to
        // a waiting thread (switch interval), a plain getattr on an instance does not.
        using (PyObject ticker = PyEngine.Eval<PyObject>("ticker"))
        {
            // No GIL held: the Python thread runs. Waited for as an event (six ticks), not counted
            // over a fixed time, which a busy machine failed (5 ticks in 600 ms).
            long a = ticker.GetAttr<long>("count");
            Assert.True(BusyUntil(() => ticker.GetAttr<long>("count") - a >= 6), "six ticks during C# work without the GIL (50 ms period) within 30 s");
            // The measurement can fail: while this thread holds the GIL, the ticker cannot run.
            using (PyEngine.Gil())
            {
                long c = ticker.GetAttr<long>("count");
                BusyFor(TimeSpan.FromMilliseconds(400));
                long d = ticker.GetAttr<long>("count");
                Assert.Equal(c, d, "ticks while C# holds the GIL for 400 ms");
                // Reading the counter inside the region takes the GIL for that call only.
                using (PyEngine.AllowThreads())
                    Assert.True(BusyUntil(() => ticker.GetAttr<long>("count") - d >= 4), "four ticks during AllowThreads within 30 s");
            }
        }
        PyEngine.Run("ticker.stop.set()");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void SecondThreadImportsAndCalls()
    {
        PyEngine.Initialize();
        string result = null;
        Assert.Within(Ten, "second thread", () =>
        {
            using (PyObject json = PyEngine.Import("json"))
                result = json.CallMethodKw<string>("dumps", new object[] { PyObject.NewList(3L, "a") }, new Dictionary<string, object> { { "separators", PyObject.NewTuple(",", ":") } });
        });
        Assert.Equal("[3,\"a\"]", result, "json.dumps from a second thread");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void EightThreadsTenThousandCallsEach()
    {
        PyEngine.Initialize();
        PyEngine.Run("calls = 0\ndef add(a, b):\n    global calls\n    calls += 1\n    return a + b\n");
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
        {
            long total = 0;
            var threads = new List<Thread>();
            Exception failure = null;
            for (int t = 0; t < 8; t++)
            {
                threads.Add(new Thread(() =>
                {
                    try
                    {
                        long sum = 0;
                        for (long i = 0; i < 10000; i++) sum += add.Call<long>(i, 1L);
                        Interlocked.Add(ref total, sum);
                    }
                    catch (Exception e) { failure = e; }
                }));
            }
            Stopwatch sw = Stopwatch.StartNew();
            Assert.Within(TimeSpan.FromSeconds(60), "8 x 10,000 calls", () =>
            {
                foreach (var t in threads) t.Start();
                foreach (var t in threads) t.Join();
            });
            Assert.True(failure == null, "no thread failed: " + failure);
            Assert.Equal(8L * 50005000L, total, "sum of add(i, 1) over 8 x 10,000 calls");
            Assert.Equal(80000L, PyEngine.Eval<long>("calls"), "calls seen by Python");
            Console.WriteLine("  8 threads x 10,000 calls: {0} ms ({1:F2} us per call)", sw.ElapsedMilliseconds, sw.Elapsed.TotalMilliseconds * 1000 / 80000);
        }
        PyEngine.Shutdown(Ten);
    }
}
