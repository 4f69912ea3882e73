// A small test runner: `tests.exe --list` prints the [Test] names; `tests.exe NAME` runs one test
// in this process under a deadline and prints "PASS NAME (ms)", "SKIP NAME: why" (a
// [NotOnWindows] test on Windows) or "FAIL NAME: why", exit code 0/1.
// scripts/test-csharp.sh runs every test in its own process: a shutdown finalizes the process's
// interpreter, so engine tests cannot share a process. `tests.exe --each` does the same from
// inside the runtime (scripts/test-csharp-windows.sh: one wine start for the whole run; see
// EachInItsOwnProcess).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Text;
using System.Threading;
using PyBridge;

[AttributeUsage(AttributeTargets.Method)]
public sealed class TestAttribute : Attribute { }

/// <summary>A test that cannot work on Windows (POSIX-only: fork, signals, /proc, ...) or not yet
/// (a feature missing there): on Windows it is skipped, and the runner prints the reason.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class NotOnWindowsAttribute : Attribute
{
    public readonly string Reason;
    public NotOnWindowsAttribute(string reason) { Reason = reason; }
}

public sealed class AssertionException : Exception
{
    public AssertionException(string message) : base(message) { }
}

public static class Assert
{
    public static void True(bool condition, string what)
    {
        if (!condition) throw new AssertionException("expected true: " + what);
    }

    public static void Equal<T>(T expected, T actual, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
            throw new AssertionException(what + ": expected <" + expected + "> but got <" + actual + ">");
    }

    public static void Bytes(byte[] expected, byte[] actual, string what)
    {
        if (actual == null || !expected.SequenceEqual(actual))
            throw new AssertionException(what + ": expected [" + string.Join(",", expected) + "] but got [" +
                (actual == null ? "null" : string.Join(",", actual)) + "]");
    }

    public static void Contains(string needle, string haystack, string what)
    {
        if (haystack == null || haystack.IndexOf(needle, StringComparison.Ordinal) < 0)
            throw new AssertionException(what + ": expected to contain <" + needle + "> but was <" + haystack + ">");
    }

    /// <summary>The action must throw exactly <typeparamref name="E"/> (not a subclass), carrying
    /// the pybridge status <paramref name="status"/> when it is not null.</summary>
    public static E Throws<E>(string status, Action action, string what) where E : Exception
    {
        try
        {
            action();
        }
        catch (Exception e)
        {
            if (e.GetType() != typeof(E))
                throw new AssertionException(what + ": expected " + typeof(E).Name + " but got " + e);
            if (status != null)
                Equal(status, e.Data[PyStatus.DataKey] as string, what + ": status");
            return (E)e;
        }
        throw new AssertionException(what + ": expected " + typeof(E).Name + " but nothing was thrown");
    }

    /// <summary>Runs <paramref name="action"/> on a new thread and fails if it takes longer than
    /// <paramref name="deadline"/>; rethrows what the action threw. Returns the elapsed time.</summary>
    public static TimeSpan Within(TimeSpan deadline, string what, Action action)
    {
        Exception failure = null;
        Stopwatch sw = Stopwatch.StartNew();
        Thread t = new Thread(() =>
        {
            try { action(); } catch (Exception e) { failure = e; }
        });
        t.IsBackground = true;
        t.Start();
        if (!t.Join(deadline))
            throw new AssertionException(what + ": still running after the deadline of " + deadline.TotalMilliseconds + " ms");
        TimeSpan elapsed = sw.Elapsed;
        if (failure != null)
            throw new AssertionException(what + ": threw " + failure);
        return elapsed;
    }
}

public static class Runner
{
    static readonly TimeSpan TestDeadline = TimeSpan.FromSeconds(90);

    public static int Main(string[] args)
    {
        MethodInfo[] tests = typeof(Tests).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
            .OrderBy(m => m.MetadataToken).ToArray();
        if (args.Length == 1 && args[0] == "--list")
        {
            foreach (MethodInfo m in tests) Console.WriteLine(m.Name);
            return 0;
        }
        if (args.Length >= 1 && args[0] == "--each")
            return EachInItsOwnProcess.Run(tests, args.Skip(1).ToArray());
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: tests.exe --list | tests.exe TEST_NAME | tests.exe --each [--runtimeconfig FILE] [--timeout SECONDS] [TEST_NAME...]");
            return 2;
        }
        MethodInfo test = tests.FirstOrDefault(m => m.Name == args[0]);
        if (test == null)
        {
            Console.WriteLine("FAIL " + args[0] + ": no such test");
            return 1;
        }
        string skip = SkipReason(test);
        if (skip != null)
        {
            Console.WriteLine("SKIP " + test.Name + ": " + skip);
            Console.WriteLine("MAIN RETURNS AT " + DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            Console.Out.Flush();
            return 0;
        }
        Exception failure = null;
        Stopwatch sw = Stopwatch.StartNew();
        Thread t = new Thread(() =>
        {
            try { test.Invoke(null, null); }
            catch (TargetInvocationException e) { failure = e.InnerException; }
            catch (Exception e) { failure = e; }
        });
        t.IsBackground = true;
        t.Start();
        if (!t.Join(TestDeadline))
        {
            Console.WriteLine("FAIL " + test.Name + ": still running after " + TestDeadline.TotalSeconds + " s");
            Console.Out.Flush();
            Environment.Exit(1);
        }
        // Leave no running engine behind: the process should exit cleanly.
        if (failure == null && PyEngine.State != PyEngineState.Uninitialized)
        {
            try { PyEngine.Shutdown(TimeSpan.FromSeconds(10)); }
            catch (Exception e) { failure = new AssertionException("final shutdown failed: " + e); }
        }
        if (failure != null)
        {
            Console.WriteLine("FAIL " + test.Name + ": " + failure);
            Console.Out.Flush();
            Environment.Exit(1);
        }
        Console.WriteLine("PASS " + test.Name + " (" + sw.ElapsedMilliseconds + " ms)");
        // scripts/test-csharp.sh fails a process that outlives this by more than 2 s: a thread
        // pybridge made must never keep a runtime from exiting.
        Console.WriteLine("MAIN RETURNS AT " + DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Console.Out.Flush();
        return 0;
    }

    /// <summary>Why this test does not run here, or null when it does.</summary>
    public static string SkipReason(MethodInfo test)
    {
        if (Environment.OSVersion.Platform != PlatformID.Win32NT) return null;
        var attribute = (NotOnWindowsAttribute)test.GetCustomAttributes(typeof(NotOnWindowsAttribute), false).FirstOrDefault();
        return attribute == null ? null : "not on Windows: " + attribute.Reason;
    }
}

/// <summary>`tests.exe --each [--runtimeconfig FILE] [--timeout SECONDS] [TEST_NAME...]`: runs
/// each test (all by default) in a child process of this same runtime, as scripts/test-csharp.sh
/// does from the shell, and judges it the same way: a child fails when it exits non-zero, prints
/// no PASS/SKIP line for its test, outlives its deadline (killed) or lives on more than 2 s after
/// its Main returned (a thread pybridge made kept it alive). Prints each child's result lines,
/// then "N passed, N skipped, N failed" and, only when nothing failed, "tests: all checks passed"
/// (what scripts/wine-run.sh looks for: under wine a crash can exit with status 0, so the status
/// alone proves nothing). Under wine this saves a wine start per test.</summary>
static class EachInItsOwnProcess
{
    const long ExitLagLimitMs = 2000;

    public static int Run(MethodInfo[] tests, string[] args)
    {
        string runtimeConfig = null;
        int timeoutSeconds = 120;
        var names = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runtimeconfig" && i + 1 < args.Length) runtimeConfig = args[++i];
            else if (args[i] == "--timeout" && i + 1 < args.Length) timeoutSeconds = int.Parse(args[++i]);
            else names.Add(args[i]);
        }
        if (names.Count == 0) names.AddRange(tests.Select(m => m.Name));
        // The child runs on this process's runtime: `dotnet exec --runtimeconfig FILE tests.exe`
        // for CoreCLR (the host is dotnet), `mono tests.exe` for Mono.
        string host = Process.GetCurrentProcess().MainModule.FileName;
        string assembly = typeof(Runner).Assembly.Location;
        string prefix = runtimeConfig != null
            ? "exec --runtimeconfig " + Quote(runtimeConfig) + " " + Quote(assembly)
            : Quote(assembly);
        int passed = 0, skipped = 0, failed = 0;
        var failures = new List<string>();
        Stopwatch all = Stopwatch.StartNew();
        foreach (string name in names)
        {
            string verdict = RunOne(host, prefix + " " + Quote(name), name, timeoutSeconds);
            if (verdict == "PASS") passed++;
            else if (verdict == "SKIP") skipped++;
            else { failed++; failures.Add(name); }
        }
        if (failures.Count > 0) Console.WriteLine("failed: " + string.Join(" ", failures));
        Console.WriteLine("{0} passed, {1} skipped, {2} failed ({3:F1} s)", passed, skipped, failed, all.Elapsed.TotalSeconds);
        if (failed == 0) Console.WriteLine("tests: all checks passed");
        Console.Out.Flush();
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Runs one test's child and prints what it said; returns PASS, SKIP or FAIL.</summary>
    static string RunOne(string host, string arguments, string name, int timeoutSeconds)
    {
        var start = new ProcessStartInfo(host, arguments);
        start.UseShellExecute = false;
        start.RedirectStandardInput = true;  // a pipe: CPython under wine refuses some handles
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var output = new StringBuilder();
        var outputDone = new CountdownEvent(2);
        DataReceivedEventHandler collect = (sender, e) =>
        {
            if (e.Data == null) { outputDone.Signal(); return; }
            lock (output) output.Append(e.Data.TrimEnd('\r')).Append('\n');
        };
        Stopwatch sw = Stopwatch.StartNew();
        using (Process child = Process.Start(start))
        {
            child.OutputDataReceived += collect;
            child.ErrorDataReceived += collect;
            child.BeginOutputReadLine();
            child.BeginErrorReadLine();
            child.StandardInput.Close();
            bool exited = child.WaitForExit(timeoutSeconds * 1000);
            long exitedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            if (!exited)
            {
                try { child.Kill(); } catch (Exception) { }
                child.WaitForExit(10000);
            }
            // The pipes end with the child (or with what it left running: wait no longer than 10 s).
            outputDone.Wait(TimeSpan.FromSeconds(10));
            string log;
            lock (output) log = output.ToString();
            string[] lines = log.Split('\n');
            string result = lines.FirstOrDefault(l => l.StartsWith("PASS " + name + " ") || l.StartsWith("SKIP " + name + ":"));
            string why = null;
            if (!exited) why = "killed by the deadline after " + timeoutSeconds + " s";
            else if (child.ExitCode != 0) why = "exit status " + child.ExitCode;
            else if (result == null) why = "no PASS or SKIP line (a crash under wine can exit with 0)";
            else
            {
                string returned = lines.LastOrDefault(l => l.StartsWith("MAIN RETURNS AT "));
                long lag = returned == null ? 0 : exitedAt - long.Parse(returned.Substring("MAIN RETURNS AT ".Length));
                // No line: the test ended the process itself (Environment.Exit), as
                // scripts/test-csharp.sh allows; its exit status and PASS line judge it.
                if (returned != null && lag > ExitLagLimitMs)
                    why = "the process exited " + lag + " ms after Main returned (limit " + ExitLagLimitMs + " ms): a thread kept it alive";
            }
            if (why == null)
            {
                Console.WriteLine(result + " [process " + sw.ElapsedMilliseconds + " ms]");
                foreach (string l in lines.Where(l => l.StartsWith("  "))) Console.WriteLine(l);
                return result.StartsWith("SKIP ") ? "SKIP" : "PASS";
            }
            Console.WriteLine("FAIL " + name + " (" + why + "):");
            foreach (string l in lines) if (l.Length > 0) Console.WriteLine("    " + l);
            return "FAIL";
        }
    }

    static string Quote(string argument)
    {
        return "\"" + argument + "\"";
    }
}
