// A small test runner: `tests.exe --list` prints the [Test] names; `tests.exe NAME` runs one test
// in this process under a deadline and prints "PASS NAME (ms)" or "FAIL NAME: why", exit code 0/1.
// scripts/test-csharp.sh runs every test in its own process: a shutdown finalizes the process's
// interpreter, so engine tests cannot share a process.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Threading;
using PyBridge;

[AttributeUsage(AttributeTargets.Method)]
public sealed class TestAttribute : Attribute { }

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
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: tests.exe --list | tests.exe TEST_NAME");
            return 2;
        }
        MethodInfo test = tests.FirstOrDefault(m => m.Name == args[0]);
        if (test == null)
        {
            Console.WriteLine("FAIL " + args[0] + ": no such test");
            return 1;
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
}
