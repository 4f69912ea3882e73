// Figures (they never fail on a ratio alone): the C# call paths against C's pyb_call in the same
// run, interpreter pools, the dynamic paths.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void InterpreterPoolBenchmark()
    {
        PyEngine.Initialize();
        if (!OwnGilSupported())
        {
            Console.WriteLine("  interpreters: CPython " + PyEngine.Eval<string>("__import__('platform').python_version()") + " has no own-GIL interpreters");
            return;
        }
        PyEngine.Run(Work);
        using (PyObject work = PyEngine.Eval<PyObject>("work"))
        using (PyInterpreterPool pool = new PyInterpreterPool(2, Work))
        {
            const int Calls = 8;
            const int Rounds = 7;
            Action onMain = () => work.Call<long>(200000L);
            Action onPool = () =>
            {
                using (pool.Borrow(Ten)) PyEngine.Eval<long>("work(200000)");
            };
            // A warm-up round, not counted: the runtime's JIT compiles these paths on a
            // background thread, which on 2 cores takes a core from the pool's round only.
            Throughput(onMain, 2);
            Throughput(onPool, 2);
            var ratios = new List<double>();
            for (int round = 0; round < Rounds; round++)
            {
                double main = Throughput(onMain, Calls);
                double pooled = Throughput(onPool, Calls);
                ratios.Add(pooled / main);
                Console.WriteLine("  round {0}: 2 C# threads, work(200000): main interpreter {1:F1}/s | pool of 2 own-GIL interpreters {2:F1}/s = {3:F2}x",
                    round, main, pooled, pooled / main);
            }
            ratios.Sort();
            Console.WriteLine("  2-thread speedup of the pool over the main interpreter, median of {0} rounds: {1:F2}x", Rounds, ratios[ratios.Count / 2]);
        }
        PyEngine.Shutdown(Ten);
    }

    /// <summary>Calls per second of <paramref name="call"/> from 2 threads, each making <paramref name="calls"/>.</summary>
    static double Throughput(Action call, int calls)
    {
        Stopwatch sw = Stopwatch.StartNew();
        Thread[] threads = new Thread[2];
        for (int t = 0; t < 2; t++)
        {
            threads[t] = new Thread(() => { for (int i = 0; i < calls; i++) call(); });
            threads[t].Start();
        }
        foreach (Thread t in threads) t.Join();
        return 2 * calls / sw.Elapsed.TotalSeconds;
    }

    /// <summary>The operator path (<c>a + b</c>, <c>a * 2</c> on dynamic PyObjects) and the chaining
    /// path (<c>m.greet("x").upper()</c>) against the plain dynamic call path (<c>m.add(a, b)</c>,
    /// <c>m.greet("x")</c>), in many short interleaved rounds. The ratio is of each path's fastest
    /// round: another process's work only ever adds time, so the fastest round of each is the
    /// least disturbed (single rounds moved 0.5x-20x on a busy 2-core machine, medians 1-7x).
    /// Issue 22's target is 2x.</summary>
    static void DynamicPathsBenchmark()
    {
        PyEngine.Run("def greet(name):\n    return 'hello ' + name\n" +
                     "import types\nm = types.SimpleNamespace(greet=greet, add=add)\n");
        const int N = 5000;
        const int Rounds = 30;
        string[] paths = { "m.add(a, b)", "a + b", "a * 2", "m.greet(\"x\")", "m.greet(\"x\").upper()", "m.greet(\"x\"); s.upper()" };
        var fastest = new double[paths.Length];
        for (int p = 0; p < paths.Length; p++) fastest[p] = double.MaxValue;
        using (PyObject mObject = PyEngine.Eval<PyObject>("m"))
        using (PyObject aObject = PyEngine.Eval<PyObject>("12345"))
        using (PyObject bObject = PyEngine.Eval<PyObject>("678"))
        using (PyObject sObject = PyEngine.Eval<PyObject>("'hello x'"))
        {
            dynamic m = mObject, a = aObject, b = bObject, text = sObject;
            long sum = 0;
            long length = 0;
            Action[] bodies =
            {
                () => { for (int i = 0; i < N; i++) sum += (long)m.add(a, b); },
                () => { for (int i = 0; i < N; i++) sum += (long)(a + b); },
                () => { for (int i = 0; i < N; i++) sum += (long)(a * 2L); },
                () => { for (int i = 0; i < N; i++) length += ((string)m.greet("x")).Length; },
                () => { for (int i = 0; i < N; i++) length += ((string)m.greet("x").upper()).Length; },
                // The same two calls, the second on a str held as a Python object already.
                () => { for (int i = 0; i < N; i++) length += ((string)m.greet("x")).Length - 7 + ((string)text.upper()).Length; },
            };
            foreach (Action body in bodies) body(); // the binder's call sites and the JIT, untimed
            for (int round = 0; round < Rounds; round++)
                for (int p = 0; p < paths.Length; p++)
                {
                    Stopwatch sw = Stopwatch.StartNew();
                    bodies[p]();
                    fastest[p] = Math.Min(fastest[p], sw.Elapsed.TotalMilliseconds * 1e6 / N);
                }
            long calls = (long)N * (Rounds + 1);
            Assert.Equal(((12345L + 678) * 2 + 12345L * 2) * calls, sum, "the sums");
            Assert.Equal("HELLO X".Length * 3 * calls, length, "the lengths");
        }
        Console.WriteLine("  fastest of {0} rounds of {1}: {2}", Rounds, N,
            string.Join(" | ", paths.Select((path, p) => path + " " + fastest[p].ToString("F0") + " ns")));
        var ratios = new[]
        {
            Tuple.Create("a + b / m.add(a, b)", fastest[1] / fastest[0]),
            Tuple.Create("a * 2 / m.add(a, b)", fastest[2] / fastest[0]),
            Tuple.Create("m.greet(\"x\").upper() / m.greet(\"x\")", fastest[4] / fastest[3]),
            Tuple.Create("m.greet(\"x\").upper() / (m.greet(\"x\"); s.upper())", fastest[4] / fastest[5]),
        };
        foreach (var ratio in ratios)
        {
            Console.WriteLine("  {0} = {1:F2}x (target 2x: {2})", ratio.Item1, ratio.Item2, ratio.Item2 <= 2.0 ? "met" : "missed");
        }
        // An operator is one Python call, as the dynamic call is (0.9-1.0x measured): importing
        // `operator` again per call, as before issue 22, would double it.
        Assert.True(ratios[0].Item2 < 2.0 && ratios[1].Item2 < 2.0, "operators within 2x of the dynamic call: " + ratios[0].Item2 + ", " + ratios[1].Item2);
        // Chaining makes the intermediate str's Python object (a plain result is deferred as its
        // .NET value) and calls again: three native calls where the call has one (2.3-3.0x
        // measured). 5x catches another call or transition per step.
        Assert.True(ratios[2].Item2 < 5.0, "chaining within 5x of the dynamic call (" + ratios[2].Item2 + ")");
        // What chaining adds to the same two calls: making the intermediate's Python object.
        Assert.True(ratios[3].Item2 < 2.0, "chaining within 2x of the same two dynamic calls (" + ratios[3].Item2 + ")");
    }

    [DllImport("pybcsbench")]
    static extern double pybcsbench_call_add(ulong add, long calls);

    /// <summary>add(i, 1) from C# four ways against C's own pyb_call of the same function in the
    /// same run (tests/csharp/native_bench.c), rounds interleaved; reports each as a ratio to C.</summary>
    [Test]
    public static void Benchmark()
    {
        PyEngine.Initialize();
        PyEngine.Run("def add(a, b):\n    return a + b\n");
        const int N = 200000;
        const int Rounds = 5;
        var ratios = new System.Collections.Generic.Dictionary<string, List<double>>();
        Action<string, double> record = (what, ratio) =>
        {
            if (!ratios.ContainsKey(what)) ratios[what] = new List<double>();
            ratios[what].Add(ratio);
        };
        double fastestC = double.MaxValue, fastestTyped = double.MaxValue;
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
        {
            Func<long, long, long> addf = add.AsFunc<long, long, long>();
            for (int round = 0; round < Rounds; round++)
            {
                double c = pybcsbench_call_add(add.DangerousGetHandle(), N);
                Assert.True(c > 0, "the C baseline ran (it returns a negative status on failure): " + c);
                Stopwatch sw = Stopwatch.StartNew();
                for (int i = 0; i < N; i++) using (PyEngine.Gil()) { }
                double gil = sw.Elapsed.TotalMilliseconds * 1e6 / N;
                long s = 0;
                sw.Restart();
                for (long i = 0; i < N; i++) s += add.Call<long>(i, 1L);
                double general = sw.Elapsed.TotalMilliseconds * 1e6 / N;
                sw.Restart();
                for (long i = 0; i < N; i++) s += add.Call<long, long, long>(i, 1L);
                double typed = sw.Elapsed.TotalMilliseconds * 1e6 / N;
                sw.Restart();
                for (long i = 0; i < N; i++) s += addf(i, 1L);
                double func = sw.Elapsed.TotalMilliseconds * 1e6 / N;
                sw.Restart();
                using (PyEngine.Gil()) for (long i = 0; i < N; i++) s += add.Call<long, long, long>(i, 1L);
                double typedHeld = sw.Elapsed.TotalMilliseconds * 1e6 / N;
                Console.WriteLine("  round {0}: C pyb_call {1:F1} ns | Gil scope {2:F1} ns | Call<long>(i, 1L) {3:F1} ns ({4:F2}x C) | " +
                    "Call<long, long, long>(i, 1L) {5:F1} ns ({6:F2}x C) | AsFunc {7:F1} ns ({8:F2}x C) | typed inside one Gil scope {9:F1} ns",
                    round, c, gil, general, general / c, typed, typed / c, func, func / c, typedHeld);
                fastestC = Math.Min(fastestC, c);
                fastestTyped = Math.Min(fastestTyped, typed);
                record("Call<long>(params object[])", general / c);
                record("Call<long, long, long>", typed / c);
                record("AsFunc<long, long, long>", func / c);
                Assert.Equal((long)N * (N + 1) * 2, s, "the sums");
            }
        }
        foreach (var kv in ratios)
        {
            kv.Value.Sort();
            Console.WriteLine("  median over {0} rounds: {1} costs {2:F2}x C's pyb_call", Rounds, kv.Key, kv.Value[Rounds / 2]);
        }
        // Issue 22's target is 1.5x on CoreCLR and .NET 8. A busy 2-core machine moved single
        // rounds from 0.4x to 10x and medians to 2.5x, so the ratio asserted is of the fastest
        // rounds (another process only ever adds time), with a bound that no plausible noise
        // reaches and a lost optimization would (Call<long>(params), which boxes, is 2-5x).
        double typedFastest = fastestTyped / fastestC;
        Console.WriteLine("  fastest rounds: C pyb_call {0:F1} ns, Call<long, long, long> {1:F1} ns = {2:F2}x C (target 1.5x on CoreCLR and .NET 8: {3})",
            fastestC, fastestTyped, typedFastest, typedFastest <= 1.5 ? "met" : "missed");
        Assert.True(typedFastest < 3.0, "Call<long, long, long> within 3x of C's pyb_call (fastest rounds: " + typedFastest + ")");
        DynamicPathsBenchmark();
        // No per-call allocation on the typed path: measured with the GC's own counter where the
        // runtime has one (CoreCLR 3.x: GC.GetAllocatedBytesForCurrentThread).
        var counter = typeof(GC).GetMethod("GetAllocatedBytesForCurrentThread");
        if (counter != null)
        {
            using (PyObject add = PyEngine.Eval<PyObject>("add"))
            {
                add.Call<long, long, long>(0L, 1L);
                long before = (long)counter.Invoke(null, null);
                long s = 0;
                for (long i = 0; i < N; i++) s += add.Call<long, long, long>(i, 1L);
                long typedBytes = (long)counter.Invoke(null, null) - before;
                before = (long)counter.Invoke(null, null);
                for (long i = 0; i < N; i++) s += add.Call<long>(i, 1L);
                long generalBytes = (long)counter.Invoke(null, null) - before;
                double typedPerCall = (double)typedBytes / N, generalPerCall = (double)generalBytes / N;
                Console.WriteLine("  allocated per call: Call<long, long, long> {0:F3} bytes, Call<long>(params object[]) {1:F1} bytes",
                    typedPerCall, generalPerCall);
                // Per call, not in total: an allocation per call is at least one object (24 bytes on
                // 64-bit), while the runtime's own background work while the loop runs (.NET 8's
                // tiered compilation: 2,288 bytes measured, 0.01 byte a call) is no allocation of
                // the typed path. The general path, which boxes, shows the bound can fail.
                Assert.True(typedPerCall < 1.0, "the typed path allocates nothing per call (" + typedPerCall + " bytes a call, " + typedBytes + " bytes for " + N + " calls)");
                Assert.True(generalPerCall >= 24.0, "the general path allocates per call (" + generalPerCall + " bytes a call): the counter counts");
                GC.KeepAlive(s);
            }
        }
        PyEngine.Shutdown(Ten);
    }
}
