// What the C# tests share: the test class (partial: each feature keeps its tests in its own
// tests/csharp/*Tests.cs, as the Rust tests are split), paths and waiting helpers. Each test runs in
// its own process (see Runner.cs); each starts the engine itself.
using System;
using System.Diagnostics;
using System.Reflection;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    static string Root { get { return Environment.GetEnvironmentVariable("PYB_ROOT") ?? "."; } }

    static readonly TimeSpan Ten = TimeSpan.FromSeconds(10);

    static bool OnWindows { get { return Environment.OSVersion.Platform == PlatformID.Win32NT; } }

    /// <summary>Why the NumPy tests skip on Windows: an environment limit, not pybridge's.</summary>
    const string NoNumPyOnWindowsHere = "no NumPy for the Windows CPython here: the embeddable " +
        "distribution's python3XY._pth turns site and venvs off, so PyEngineOptions.VirtualEnv cannot add " +
        "a NumPy (scripts/test-csharp.sh's PYB_NUMPY_VENV is a Linux venv)";

    /// <summary>An internal type of the binding's P/Invoke layer (PyBridge.Interop), for the tests
    /// that check it against the C header: the layer is not public API.</summary>
    static Type Interop(string name)
    {
        return typeof(PyEngine).Assembly.GetType("PyBridge.Interop." + name, true);
    }

    static void BusyFor(TimeSpan t)
    {
        Stopwatch s = Stopwatch.StartNew();
        long x = 0;
        while (s.Elapsed < t) for (int i = 0; i < 10000; i++) x += i % 7;
        GC.KeepAlive(x);
    }

    /// <summary>Busy C# work until <paramref name="done"/> (checked every 10 ms of work), at most 30 s.</summary>
    static bool BusyUntil(Func<bool> done)
    {
        Stopwatch s = Stopwatch.StartNew();
        while (s.Elapsed < TimeSpan.FromSeconds(30))
        {
            BusyFor(TimeSpan.FromMilliseconds(10));
            if (done()) return true;
        }
        return false;
    }

    // A daemon Python thread that increments ticker.count every `period` seconds.
    static void StartTicker(double period)
    {
        PyEngine.Run(@"
import threading
class _Ticker:
    def __init__(self, period):
        self.count = 0
        self.period = period
        self.stop = threading.Event()
    def run(self):
        while not self.stop.wait(self.period):
            self.count += 1
ticker = _Ticker(" + period.ToString(System.Globalization.CultureInfo.InvariantCulture) + @")
threading.Thread(target=ticker.run, daemon=True).start()
");
    }

    static long Ticks() { return PyEngine.Eval<long>("ticker.count"); }
}
