// The engine: its lifecycle, options, versions and statistics, the Python it runs, its log.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void LifecycleVersionInfoStats()
    {
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state before");
        PyEngineStats before = PyEngine.GetStats();
        PyEngine.Initialize();
        PyEngine.Initialize(); // idempotent
        Assert.Equal(PyEngineState.Running, PyEngine.State, "state after Initialize");
        Assert.True(Regex.IsMatch(PyEngine.Version, @"^\d+\.\d+\.\d+"), "Version " + PyEngine.Version);
        Assert.Contains("version: 3.", PyEngine.PythonInfo, "PythonInfo");
        Assert.Equal(3L, PyEngine.Eval<long>("1 + 2"), "Eval");
        PyEngine.Shutdown(Ten);
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state after Shutdown");
        PyEngineStats after = PyEngine.GetStats();
        Assert.Equal(before.EnginesStarted + 1, after.EnginesStarted, "EnginesStarted");
        Assert.Equal(before.InterpretersFinalized + 1, after.InterpretersFinalized, "InterpretersFinalized");
        Assert.Equal(before.ShutdownTimeouts, after.ShutdownTimeouts, "ShutdownTimeouts");
        Assert.True(after.ThreadStatesCreated >= 1, "ThreadStatesCreated " + after.ThreadStatesCreated);
        Assert.True(after.ThreadStatesDeleted >= 0, "ThreadStatesDeleted");
        // An engine's end holds no thread state back (only a sub-interpreter's end does).
        Assert.Equal(before.ThreadStatesHeld, after.ThreadStatesHeld, "ThreadStatesHeld");
        // A second engine in the same process, from another thread.
        Assert.Within(Ten, "re-initialize", () => { PyEngine.Initialize(); Assert.Equal(7L, PyEngine.Eval<long>("7"), "second engine"); });
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void InitializeWithOptions()
    {
        string dir = Path.Combine(Path.GetTempPath(), "pyb-cs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "cs_mod.py"), "VALUE = 'from cs_mod'\n");
            var options = new PyEngineOptions();
            options.ModuleSearchPaths = new[] { dir };
            options.Isolated = true;
            // .NET runtimes ignore SIGPIPE already; the flag must be accepted and leave it ignored.
            options.IgnoreSigpipe = true;
            options.PreviousThreadsTimeout = TimeSpan.FromSeconds(3);
            options.PythonHome = null;
            options.VirtualEnv = null;
            options.Argv = new[] { "host-app", "-c", "été" };
            PyEngine.Initialize(options);
            Assert.Equal("['host-app', '-c', 'été']", PyEngine.Eval<string>("repr(__import__('sys').argv)"), "sys.argv as given");
            using (PyObject m = PyEngine.Import("cs_mod"))
                Assert.Equal("from cs_mod", m.GetAttr<string>("VALUE"), "module from ModuleSearchPaths");
            Assert.Equal(dir, PyEngine.Eval<string>("__import__('sys').path[0]"), "sys.path[0]");
            Assert.Equal(1L, PyEngine.Eval<long>("__import__('sys').flags.isolated"), "isolated");
            // Windows has no SIGPIPE: there the flag is accepted and does nothing.
            if (!OnWindows)
                Assert.Equal(1L, PyEngine.Eval<long>(
                    "int(__import__('signal').getsignal(13) == __import__('signal').SIG_IGN)"), "SIGPIPE ignored");
        }
        finally { Directory.Delete(dir, true); }
        PyEngine.Shutdown(Ten);
        var bad = new PyEngineOptions();
        bad.PythonHome = "/nonexistent/python/home";
        Exception e = null;
        try { PyEngine.Initialize(bad); } catch (Exception x) { e = x; }
        Assert.True(e is PyBridgeException || e is ArgumentException, "bad PythonHome throws, got " + e);
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state after a failed initialize");
    }

    [Test]
    public static void PythonOptionNamesThePythonOrSaysWhyNot()
    {
        // The Python this binding's library was built with, named explicitly.
        PyEngine.Initialize();
        string python = PyEngine.Eval<string>("__import__('sys').executable");
        PyEngine.Shutdown(Ten);
        var options = new PyEngineOptions();
        options.Python = python;
        PyEngine.Initialize(options);
        Assert.True(PyEngine.PythonInfo.Contains(python + " (chosen by pyb_config.python;"),
            "PythonInfo names the chosen Python: " + PyEngine.PythonInfo);
        PyEngine.Shutdown(Ten);
        options.Python = "/nonexistent/bin/python3";
        PyBridgeException e = Assert.Throws<PyBridgeException>("PYB_E_PYTHON_UNUSABLE",
            () => PyEngine.Initialize(options), "a Python that does not exist");
        Assert.True(e.Message.Contains("/nonexistent/bin/python3") && e.Message.Contains("does not exist"),
            "the message names the path and the problem: " + e.Message);
        Assert.Equal(PyEngineState.Uninitialized, PyEngine.State, "state after the refusal");
    }

    [Test]
    public static void LogCallbackReceivesRecords()
    {
        var records = new List<string>();
        PyEngine.SetLogCallback((level, message) => { lock (records) records.Add(level + " " + message); }, PyLogLevel.Info);
        PyEngine.Initialize();
        PyEngine.Shutdown(Ten);
        PyEngine.SetLogCallback(null, PyLogLevel.Off);
        lock (records)
        {
            Assert.True(records.Any(r => r.StartsWith("Info ") && r.Contains("shutdown complete")), "log records: " + string.Join(" | ", records));
            Assert.True(records.All(r => !r.StartsWith("Debug ") && !r.StartsWith("Trace ")), "no record above Info");
        }
        int n = records.Count;
        PyEngine.Initialize();
        PyEngine.Shutdown(Ten);
        Assert.Equal(n, records.Count, "no records after SetLogCallback(null)");
    }
}
