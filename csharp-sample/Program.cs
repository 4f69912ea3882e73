// pybridge from C#: what a C# developer needs, step by step (scripts/sample.sh builds and runs it).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using PyBridge;

static class Program
{
    static readonly Stopwatch clock = Stopwatch.StartNew();

    static void Say(string text)
    {
        Console.WriteLine("[C#     {0,5} ms, thread {1}] {2}", clock.ElapsedMilliseconds, Thread.CurrentThread.ManagedThreadId, text);
    }

    static long Ticks()
    {
        return PyEngine.Eval<long>("ticker.count");
    }

    // Pure C# work that touches no Python: a naive prime count.
    static long CountPrimes(long limit)
    {
        long count = 0;
        for (long n = 2; n < limit; n++)
        {
            bool prime = true;
            for (long d = 2; d * d <= n; d++)
                if (n % d == 0) { prime = false; break; }
            if (prime) count++;
        }
        return count;
    }

    static void BusyFor(TimeSpan t)
    {
        Stopwatch s = Stopwatch.StartNew();
        while (s.Elapsed < t) CountPrimes(20000);
    }

    // Optional argument: the Python to run (an executable, a venv's bin/python,
    // or a libpython path); without it, PYBRIDGE_PYTHON or pybridge's default.
    static int Main(string[] commandLine)
    {
        Console.WriteLine("pybridge {0} on {1} {2}", PyEngine.Version,
            Type.GetType("Mono.Runtime") != null ? "Mono" : "CoreCLR", Environment.Version);

        Console.WriteLine();
        Console.WriteLine("== 1. Initialize on the main thread; a Python thread says hello every 100 ms");
        PyEngine.Initialize(new PyEngineOptions { Python = commandLine.Length > 0 ? commandLine[0] : null });
        Say("running CPython " + PyEngine.Eval<string>("__import__('platform').python_version()"));
        PyEngine.Run(@"
import threading, time, sys
class Ticker:
    def __init__(self):
        self.count = 0
        self.stop = threading.Event()
    def run(self):
        start = time.monotonic()
        while not self.stop.wait(0.1):
            self.count += 1
            print(f'[Python {int((time.monotonic() - start) * 1000):5} ms] hello #{self.count}', flush=True)
ticker = Ticker()
threading.Thread(target=ticker.run, name='hello', daemon=True).start()
");
        Say("engine running; the main thread holds no GIL, so the Python thread runs while C# works:");
        long before = Ticks();
        BusyFor(TimeSpan.FromMilliseconds(500));
        long after = Ticks();
        Say(string.Format("500 ms of C# work done; Python ticked {0} times meanwhile", after - before));

        Console.WriteLine();
        Console.WriteLine("== 2. A second C# thread imports a module and calls into Python");
        Thread worker = new Thread(() =>
        {
            using (PyObject json = PyEngine.Import("json"))
            {
                var data = PyObject.NewDict(new Dictionary<string, object> { { "b", 2L }, { "a", "x" } });
                var kwargs = new Dictionary<string, object> { { "sort_keys", true } };
                string text = json.CallMethodKw<string>("dumps", new object[] { data }, kwargs);
                Say("json.dumps(data, sort_keys=True) = " + text);
                data.Dispose();
            }
            // Several calls in one GIL scope: one acquire for all of them.
            using (PyEngine.Gil())
            using (PyObject math = PyEngine.Import("math"))
            {
                Say("math.factorial(20) = " + math.CallMethod<long>("factorial", 20L) +
                    ", math.hypot(3, 4) = " + math.CallMethod<double>("hypot", 3.0, 4.0));
            }
        });
        worker.Start();
        worker.Join();

        Console.WriteLine();
        Console.WriteLine("== 3. Python calls a long C# computation that releases the GIL: the ticks go on");
        PyEngine.RegisterFunction("csharp", "count_primes", args =>
        {
            Say("count_primes(" + args[0] + ") running in C#, without the GIL");
            return CountPrimes((long)args[0]);
        }, releaseGil: true);
        before = Ticks();
        Stopwatch s3 = Stopwatch.StartNew();
        long primes = PyEngine.Eval<long>("__import__('csharp').count_primes(1_500_000)");
        after = Ticks();
        Say(string.Format("Python got count_primes(1500000) = {0} after {1} ms; Python ticked {2} times meanwhile",
            primes, s3.ElapsedMilliseconds, after - before));

        Console.WriteLine();
        Console.WriteLine("== 4. A Python exception, shown with its Python traceback");
        PyEngine.Run(@"
def parse_port(text):
    return int(text)
def load_config(entries):
    return {key: parse_port(value) for key, value in entries}
");
        try
        {
            PyEngine.Eval("load_config([('http', '80'), ('https', 'four-four-three')])", null, "config.py");
        }
        catch (PythonException e)
        {
            Say("caught PythonException: " + e.PythonTypeName + ": " + e.PythonMessage);
            Console.WriteLine(e.PythonTraceback.TrimEnd());
        }
        // And an exception thrown by C# code called from Python comes back as a Python exception:
        PyEngine.RegisterFunction("csharp", "fail", args => { throw new InvalidOperationException("C# says no"); });
        PyEngine.Run("import csharp\ntry:\n    csharp.fail()\nexcept RuntimeError as e:\n    caught = f'{type(e).__name__}: {e}'");
        Say("Python caught: " + PyEngine.Eval<string>("caught"));

        Console.WriteLine();
        Console.WriteLine("== 5. pythonnet's deadlock: EndAllowThreads on the main thread, then Shutdown from another thread");
        PyThreadToken token = PyEngine.BeginAllowThreads();
        BusyFor(TimeSpan.FromMilliseconds(200));
        PyEngine.EndAllowThreads(token);
        Say("EndAllowThreads done on the main thread; " + Ticks() + " ticks so far");
        Exception failure = null;
        Stopwatch s5 = Stopwatch.StartNew();
        Thread closer = new Thread(() =>
        {
            try
            {
                Say("Shutdown(5 s) from another thread...");
                PyEngine.Shutdown(TimeSpan.FromSeconds(5));
            }
            catch (Exception e) { failure = e; }
        });
        closer.Start();
        if (!closer.Join(TimeSpan.FromSeconds(10)))
        {
            Say("FAILED: Shutdown did not return within 10 s");
            return 1;
        }
        if (failure != null)
        {
            Say("FAILED: " + failure);
            return 1;
        }
        Say(string.Format("Shutdown returned after {0} ms; engine state: {1}", s5.ElapsedMilliseconds, PyEngine.State));
        Console.WriteLine();
        Console.WriteLine("sample finished: OK");
        return 0;
    }
}
