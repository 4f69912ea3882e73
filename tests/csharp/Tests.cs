// The C# binding's tests. Each runs in its own process (see Runner.cs); each starts the engine itself.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Numerics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;
using PyBridge;

// Partial: each concept may keep its tests in its own file (tests/csharp/*Tests.cs).
public static partial class Tests
{
    static string Root { get { return Environment.GetEnvironmentVariable("PYB_ROOT") ?? "."; } }

    static readonly TimeSpan Ten = TimeSpan.FromSeconds(10);

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

    // ---------------------------------------------------------------- ABI and coverage

    [Test]
    public static void NativeDeclarationsMatchHeader()
    {
        string header = File.ReadAllText(Path.Combine(Root, "bindings/c/pybridge.h"));
        var declared = new SortedSet<string>();
        foreach (Match m in Regex.Matches(header, @"^[A-Za-z_][^(/#\n]*?\b(pyb_[a-z0-9_]+)\(", RegexOptions.Multiline))
            declared.Add(m.Groups[1].Value);
        var imported = new SortedSet<string>();
        foreach (MethodInfo m in Interop("Native").GetMethods(BindingFlags.Public | BindingFlags.Static))
        {
            var attr = (DllImportAttribute)m.GetCustomAttributes(typeof(DllImportAttribute), false).FirstOrDefault();
            if (attr == null) continue;
            Assert.Equal("pybridge", attr.Value, m.Name + " library");
            imported.Add(attr.EntryPoint ?? m.Name);
        }
        Assert.True(declared.Count >= 40, "the header parse found " + declared.Count + " functions");
        Assert.Equal("", string.Join(" ", declared.Except(imported)), "header functions without a DllImport");
        Assert.Equal("", string.Join(" ", imported.Except(declared)), "DllImports not in the header");
        // Every PYB_ constant in the header has the same value in Native, and every status its
        // .NET name in PyStatusCode (PYB_E_SHUTDOWN_COMMITTED: ShutdownCommitted).
        int statuses = 0;
        foreach (Match m in Regex.Matches(header, @"^#define (PYB_[A-Z0-9_]+) (-?\d+)$", RegexOptions.Multiline))
        {
            FieldInfo f = Interop("Native").GetField(m.Groups[1].Value);
            Assert.True(f != null, "Native declares " + m.Groups[1].Value);
            Assert.Equal(m.Groups[2].Value, Convert.ToInt64(f.GetValue(null)).ToString(), m.Groups[1].Value);
            Match status = Regex.Match(m.Groups[1].Value, "^PYB_(?:E_)?([A-Z_]+)$");
            if (m.Groups[1].Value != "PYB_OK" && !m.Groups[1].Value.StartsWith("PYB_E_", StringComparison.Ordinal)) continue;
            string dotNet = string.Concat(status.Groups[1].Value.Split('_').Select(w => w.Substring(0, 1) + w.Substring(1).ToLowerInvariant()));
            Assert.Equal(dotNet, Enum.GetName(typeof(PyStatusCode), int.Parse(m.Groups[2].Value)), "PyStatusCode for " + m.Groups[1].Value);
            Assert.Equal(m.Groups[1].Value, PyStatus.Name((PyStatusCode)int.Parse(m.Groups[2].Value)), "PyStatus.Name");
            statuses++;
        }
        Assert.Equal(Enum.GetValues(typeof(PyStatusCode)).Length, statuses, "PyStatusCode members, one per status in the header");
        if (IntPtr.Size == 8)
        {
            Assert.Equal(24, Marshal.SizeOf(Interop("PybValue")), "sizeof(pyb_value)");
            Assert.Equal(72, Marshal.SizeOf(Interop("PybConfig")), "sizeof(pyb_config)");
            Assert.Equal(48, (int)Marshal.OffsetOf(Interop("PybConfig"), "Python"), "offsetof(pyb_config, python)");
            Assert.Equal(56, Marshal.SizeOf(Interop("PybStats")), "sizeof(pyb_stats)");
            Assert.Equal(16, Marshal.SizeOf(Interop("PybStr")), "sizeof(pyb_str)");
            Assert.Equal(88, Marshal.SizeOf(Interop("PybBuffer")), "sizeof(pyb_buffer)");
            Assert.Equal(72, (int)Marshal.OffsetOf(Interop("PybBuffer"), "Lowest"), "offsetof(pyb_buffer, lowest)");
        }
        object[] config = { null };
        Assert.Equal(0, (int)Interop("Native").GetMethod("pyb_config_default").Invoke(null, config), "pyb_config_default");
        Assert.Equal(10000u, (uint)Interop("PybConfig").GetField("PreviousThreadsTimeoutMs").GetValue(config[0]), "default previous_threads_timeout_ms");
        Assert.True((IntPtr)Interop("PybConfig").GetField("Python").GetValue(config[0]) == IntPtr.Zero, "default python is NULL");
    }

    [Test]
    public static void EveryPublicMemberIsTested()
    {
        string source = string.Concat(Directory.GetFiles(Path.Combine(Root, "tests/csharp"), "*.cs")
            .OrderBy(f => f, StringComparer.Ordinal).Select(File.ReadAllText));
        var missing = new List<string>();
        foreach (Type t in typeof(PyEngine).Assembly.GetExportedTypes())
        {
            if (t.Namespace != "PyBridge" || typeof(Delegate).IsAssignableFrom(t)) continue;
            // A generic type is named in C# without its arity: PyAsyncEnumerator<long>, not PyAsyncEnumerator`1.
            string typeName = t.IsGenericType ? t.Name.Substring(0, t.Name.IndexOf('`')) : t.Name;
            if (source.IndexOf(typeName, StringComparison.Ordinal) < 0) missing.Add(typeName);
            foreach (MemberInfo m in t.GetMembers(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            {
                var method = m as MethodBase;
                if (method != null && (method.IsSpecialName || method.IsConstructor)) continue;
                // Overrides of DynamicObject's Try* are called by the C# runtime binder: the
                // dynamic tests (DynamicTests.cs) exercise them through `dynamic`.
                var info = m as MethodInfo;
                if (info != null && info.GetBaseDefinition().DeclaringType == typeof(System.Dynamic.DynamicObject)) continue;
                if (t.IsEnum) continue;
                string needle = m.Name == "Item" ? "[\"" : "." + m.Name; // the indexer: d["key"]
                if (source.IndexOf(needle, StringComparison.Ordinal) < 0)
                    missing.Add(typeName + "." + m.Name);
            }
        }
        Assert.Equal("", string.Join(", ", missing.Distinct()), "public members never named in tests/csharp/*.cs");
    }

    // ---------------------------------------------------------------- engine

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
    public static void TypedCollectionViews()
    {
        PyEngine.Initialize();
        using (PyList list = PyEngine.Eval<PyList>("[1, 2, 3]"))
        {
            Assert.Equal(3, list.Count, "Count");
            Assert.Equal(2L, list[1], "indexer");
            Assert.Equal(3L, list[-1], "a negative index counts from the end");
            list[1] = 20L;
            list.Add(4L);
            Assert.Equal("1,20,3,4", string.Join(",", list.ToList<long>()), "ToList<long>");
            long sum = 0;
            foreach (object item in list) sum += (long)item;
            Assert.Equal(28L, sum, "foreach");
            using (IEnumerator<object> e = list.GetEnumerator())
                Assert.True(e.MoveNext() && (long)e.Current == 1L, "GetEnumerator");
            Assert.Equal(20L, list.Get<long>(1), "Get<T>");
        }
        using (PyTuple tuple = PyObject.NewTuple(1L, "two"))
        {
            Assert.Equal(2, tuple.Count, "tuple Count");
            Assert.Equal("two", tuple[1], "tuple indexer");
            PySequence sequence = tuple;
            Assert.Equal(1L, sequence[0], "a PySequence");
        }
        using (PyDict dict = PyEngine.Eval<PyDict>("{'a': 1, 'b': 2}"))
        {
            Assert.Equal(2, dict.Count, "dict Count");
            Assert.True(dict.ContainsKey("a") && !dict.ContainsKey("z"), "ContainsKey");
            Dictionary<string, long> copy = dict.ToDictionary<string, long>();
            Assert.Equal(2L, copy["b"], "ToDictionary<string, long>");
            var keys = new List<string>();
            foreach (KeyValuePair<object, object> entry in dict) keys.Add((string)entry.Key + "=" + entry.Value);
            Assert.Equal("a=1,b=2", string.Join(",", keys), "foreach over a dict, in insertion order");
            dict["c"] = 3L;
            Assert.Equal(3, dict.Count, "the indexer writes");
        }
        using (PyList made = PyObject.NewList(1L, 2L))
            Assert.Equal(2, made.Count, "NewList is a PyList");
        using (PyDict made = PyObject.NewDict(new Dictionary<string, long> { { "k", 1L } }))
            Assert.Equal(1L, made["k"], "NewDict is a PyDict");
        Assert.Throws<InvalidCastException>(null, () => PyEngine.Eval<PyList>("(1, 2)"), "a tuple is not a list");
        Assert.Throws<InvalidCastException>(null, () => PyEngine.Eval<PyDict>("'text'"), "a str is not a dict");
        PyEngine.Run("class Ordered(dict):\n    pass");
        using (PyDict sub = PyEngine.Eval<PyDict>("Ordered(x=1)"))
            Assert.Equal(1, sub.Count, "a dict subclass is a PyDict");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void BigIntegersCrossBothWays()
    {
        PyEngine.Initialize();
        BigInteger two64 = BigInteger.Pow(2, 64);
        Assert.Equal(two64, PyEngine.Eval<BigInteger>("2**64"), "Eval<BigInteger> of 2**64");
        Assert.Equal(-two64 - 1, PyEngine.Eval<BigInteger>("-(2**64) - 1"), "a negative one");
        Assert.Equal(-two64, PyEngine.Eval<BigInteger>("-(2**64)"), "a negative power of two");
        Assert.Equal(new BigInteger(42), PyEngine.Eval<BigInteger>("42"), "small ints too");
        Assert.Throws<OverflowException>("PYB_E_OUT_OF_RANGE", () => PyEngine.Eval<long>("2**64"),
            "Eval<long> of 2**64: always an OverflowException, never a PyObject to cast");
        // Beyond the 4,300 digits CPython 3.11+ allows in int <-> str.
        BigInteger huge = BigInteger.Pow(3, 10000);
        using (PyObject inc = PyEngine.Eval<PyObject>("lambda x: x + 1"))
            Assert.Equal(huge + 1, inc.Call<BigInteger>(huge), "a BigInteger argument and result of 4,772 digits");
        using (PyObject p = PyObject.From(two64))
        {
            Assert.Equal("18446744073709551616", p.ToString(), "From(BigInteger)");
            Assert.Equal(two64, p.ToBigInteger(), "ToBigInteger");
        }
        using (PyObject text = PyEngine.Eval<PyObject>("object()"))
            Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => text.ToBigInteger(), "not an int");
        PyEngine.Shutdown(Ten);
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

    // ---------------------------------------------------------------- values and objects

    [Test]
    public static void Conversions()
    {
        PyEngine.Initialize();
        Assert.Equal(null, PyEngine.Eval("None"), "None");
        Assert.Equal((object)true, PyEngine.Eval("True"), "bool");
        Assert.Equal((object)(-5L), PyEngine.Eval("-5"), "int");
        Assert.Equal((object)2.5, PyEngine.Eval("2.5"), "float");
        Assert.Equal((object)"h\u00e9llo \u2603 \U0001D11E", PyEngine.Eval("'h\\xe9llo \\u2603 \\U0001D11E'"), "str");
        Assert.Equal("a\0b", PyEngine.Eval<string>("'a\\0b'"), "str with NUL");
        Assert.Bytes(new byte[] { 0, 1, 255 }, PyEngine.Eval<byte[]>("b'\\x00\\x01\\xff'"), "bytes");
        Assert.Equal(long.MaxValue, PyEngine.Eval<long>("2**63 - 1"), "int64 max");
        Assert.Equal(3.0, PyEngine.Eval<double>("3"), "int as double");
        Assert.Equal(42, PyEngine.Eval<int>("42"), "int as int");
        Assert.Throws<OverflowException>(null, () => PyEngine.Eval<int>("2**40"), "int64 to int");
        Assert.Throws<InvalidCastException>(null, () => PyEngine.Eval<long>("None"), "None as long");
        Assert.Equal(null, PyEngine.Eval<long?>("None"), "None as long?");
        using (PyObject big = (PyObject)PyEngine.Eval("2**70"))
        {
            Assert.Throws<OverflowException>("PYB_E_OUT_OF_RANGE", () => big.ToInt64(), "2**70 ToInt64");
            Assert.Equal(Math.Pow(2, 70), big.ToDouble(), "2**70 ToDouble");
            Assert.Equal("1180591620717411303424", big.ToString(), "ToString is str()");
        }
        using (PyObject o = PyObject.From(123L)) Assert.Equal(123L, o.ToInt64(), "From(long)");
        using (PyObject o = PyObject.From(0.25)) Assert.Equal(0.25, o.ToDouble(), "From(double)");
        using (PyObject o = PyObject.From(true)) Assert.Equal(true, o.ToBoolean(), "From(bool)");
        using (PyObject o = PyObject.From("\u2603")) Assert.Equal("\u2603", o.ToStringValue(), "From(string)");
        using (PyObject o = PyObject.From(new byte[] { 9, 8 })) Assert.Bytes(new byte[] { 9, 8 }, o.ToBytes(), "From(byte[])");
        using (PyObject o = PyObject.From((object)7))
        {
            Assert.Equal(7L, o.As<long>(), "As<long>");
            Assert.Equal(7, o.As<int>(), "As<int>");
            Assert.Equal(7.0, o.As<double>(), "As<double>");
            Assert.Equal(true, o.As<bool>(), "As<bool>");
            Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => o.As<string>(), "int As<string>");
            Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => o.As<byte[]>(), "int As<byte[]>");
            using (PyObject c = o.As<PyObject>()) Assert.Equal(7L, c.ToInt64(), "As<PyObject>");
        }
        using (PyObject s = PyObject.From("x"))
            Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => s.ToInt64(), "str ToInt64");
        using (PyObject e = PyObject.From(""))
            Assert.Equal(false, e.ToBoolean(), "bool('')");
        Assert.Throws<ArgumentException>(null, () => PyObject.From(new object()), "From(object)");
        Assert.Throws<OverflowException>(null, () => PyObject.From((object)ulong.MaxValue), "From(ulong.MaxValue)");
        Assert.Throws<ArgumentException>(null, () => PyEngine.Run("x = 1\0"), "code with NUL");
        using (PyObject l = PyEngine.Eval<PyObject>("[1, 'two', 3.0, None, b'4']"))
        {
            Assert.Equal(5L, l.Length, "Length");
            var items = l.Iterate().ToList();
            Assert.Equal("1|two|3|null|System.Byte[]", string.Join("|", items.Select(i => i == null ? "null" : i.ToString())), "Iterate");
        }
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void CallsPositionalAndKeyword()
    {
        PyEngine.Initialize();
        PyEngine.Run("def f(a, b=2, *rest, c=3, **kw):\n    return f'{a!r}-{b!r}-{rest!r}-{c!r}-{sorted(kw.items())!r}'\n" +
                     "class K:\n    def m(self, x, y=0):\n        return x * 10 + y\nk = K()\n");
        using (PyObject f = PyEngine.Eval<PyObject>("f"))
        using (PyObject k = PyEngine.Eval<PyObject>("k"))
        {
            Assert.Equal((object)"1-2-()-3-[]", f.Call(1L), "Call");
            Assert.Equal("'x'-True-(None, 1.5, b'z')-3-[]", f.Call<string>("x", true, null, 1.5, new byte[] { 122 }), "Call<T>");
            var kw = new Dictionary<string, object> { { "c", "C" }, { "\u00e9t\u00e9", 1L } };
            Assert.Equal((object)"5-6-()-'C'-[('\u00e9t\u00e9', 1)]", f.CallKw(new object[] { 5L, 6 }, kw), "CallKw");
            Assert.Equal("5-2-()-3-[]", f.CallKw<string>(new object[] { 5L }, null), "CallKw<T> without kwargs");
            Assert.Equal((object)42L, k.CallMethod("m", 4L, 2L), "CallMethod");
            Assert.Equal(40L, k.CallMethod<long>("m", 4L), "CallMethod<T>");
            Assert.Equal((object)13L, k.CallMethodKw("m", new object[] { 1L }, new Dictionary<string, object> { { "y", 3L } }), "CallMethodKw");
            Assert.Equal(13L, k.CallMethodKw<long>("m", new object[] { 1L }, new Dictionary<string, object> { { "y", 3L } }), "CallMethodKw<T>");
            // Many arguments (beyond the stack buffer) and a PyObject argument.
            object[] many = Enumerable.Range(0, 40).Select(i => (object)(long)i).ToArray();
            using (PyObject sum = PyEngine.Eval<PyObject>("lambda *a: sum(a)"))
                Assert.Equal(780L, sum.Call<long>(many), "40 arguments");
            using (PyObject list = PyObject.NewList(1L, 2L))
            using (PyObject len = PyEngine.Eval<PyObject>("len"))
                Assert.Equal(2L, len.Call<long>(list), "PyObject argument");
            Assert.Throws<PythonException>("PYB_E_PYTHON", () => f.Call(), "missing argument");
            Assert.Throws<PythonException>("PYB_E_PYTHON", () => k.CallMethod("nope"), "no such method");
        }
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void AttributesItemsContainers()
    {
        PyEngine.Initialize();
        using (PyObject ns = PyEngine.Eval<PyObject>("__import__('types').SimpleNamespace()"))
        {
            ns.SetAttr("x", 5L);
            Assert.Equal((object)5L, ns.GetAttr("x"), "GetAttr");
            Assert.Equal(5L, ns.GetAttr<long>("x"), "GetAttr<T>");
            Assert.True(ns.HasAttr("x"), "HasAttr x");
            Assert.True(!ns.HasAttr("y"), "HasAttr y");
            Assert.Throws<PythonException>("PYB_E_PYTHON", () => ns.GetAttr("y"), "missing attribute");
        }
        using (PyObject d = PyObject.NewDict(new Dictionary<object, object> { { "a", 1L }, { 2L, "b" } }))
        {
            Assert.Equal((object)1L, d.GetItem("a"), "GetItem");
            Assert.Equal("b", d.GetItem<string>(2L), "GetItem<T>");
            d.SetItem("c", 3.5);
            d["e"] = true;
            Assert.Equal((object)3.5, d["c"], "indexer");
            Assert.Equal(4L, d.Length, "dict Length");
            var ex = Assert.Throws<PythonException>("PYB_E_PYTHON", () => d.GetItem("zz"), "missing key");
            Assert.Equal("KeyError", ex.PythonTypeName, "KeyError");
        }
        using (PyObject t = PyObject.NewTuple(1L, "x", null))
        {
            Assert.Equal("(1, 'x', None)", t.CallMethod<string>("__repr__"), "NewTuple");
            using (PyObject c = t.Clone())
            {
                Assert.True(c.DangerousGetHandle() != t.DangerousGetHandle(), "Clone is a second handle");
                Assert.Equal(3L, c.Length, "clone Length");
                Assert.True(c.SafeHandle is PyObjectHandle && !c.SafeHandle.IsInvalid, "SafeHandle is a PyObjectHandle");
            }
        }
        using (PyObject l = PyObject.NewList()) Assert.Equal("[]", l.ToString(), "empty NewList");
        using (PyObject nothing = PyObject.NewTuple()) Assert.Equal(0L, nothing.Length, "empty NewTuple");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void Scopes()
    {
        PyEngine.Initialize();
        using (PyScope a = PyEngine.NewScope())
        using (PyScope b = PyEngine.NewScope())
        {
            a.Run("x = 1");
            b.Run("x = 2", "b.py");
            Assert.Equal((object)1L, a.Eval("x"), "scope a");
            Assert.Equal(2L, b.Eval<long>("x"), "scope b");
            PyEngine.Run("y = x * 100", a);
            Assert.Equal(100L, PyEngine.Eval<long>("y", a), "Run/Eval with a scope");
            Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("x"), "__main__ does not see scope globals");
            var e = Assert.Throws<PythonException>("PYB_E_PYTHON", () => b.Run("def g():\n    raise KeyError('k')\ng()", "script.py"), "raise in scope");
            Assert.Contains("File \"script.py\", line 2, in g", e.PythonTraceback, "filename in traceback");
        }
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void PythonExceptionsAndStatusMapping()
    {
        PyEngine.Initialize();
        PyEngine.Run("class AppError(Exception):\n    pass\ndef boom():\n    raise AppError('bad thing')\n", null, "app.py");
        var e = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("boom()"), "AppError");
        Assert.Equal("__main__.AppError", e.PythonTypeName.Replace("builtins.", ""), "PythonTypeName");
        Assert.Equal("bad thing", e.PythonMessage, "PythonMessage");
        Assert.Contains("line 4, in boom", e.PythonTraceback, "PythonTraceback");
        Assert.True(e.PythonTraceback.TrimEnd().EndsWith("AppError: bad thing"), "traceback ends with the exception: " + e.PythonTraceback);
        Assert.Contains("bad thing", e.Message, "Message is pybridge's message");
        // The last error is per thread and still readable right after the failure.
        Assert.Equal("bad thing", LastError.PythonMessage, "LastError.PythonMessage");
        Assert.Equal(e.PythonTypeName, LastError.PythonType, "LastError.PythonType");
        Assert.Contains("AppError", LastError.PythonTraceback, "LastError.PythonTraceback");
        Assert.Contains("bad thing", LastError.Message, "LastError.Message");
        Assert.Equal("__main__.AppError\nException\nBaseException", LastError.PythonTypes, "LastError.PythonTypes");
        Assert.Equal("__main__.AppError Exception BaseException", string.Join(" ", e.PythonTypes), "PythonTypes");
        Assert.True(e.Is("Exception") && e.Is("AppError") && e.Is("__main__.AppError") && !e.Is("KeyError"), "Is");
        Assert.Equal("bad thing", e.Value.GetAttr<PyObject>("args").GetItem<string>(0L), "the exception object");
        // A class defined in a scope: its name, not the scope's internal module name.
        using (PyScope scope = PyEngine.NewScope())
        {
            scope.Run("class ScopeError(LookupError):\n    def __init__(self, code):\n        super().__init__(code)\n        self.code = code\n");
            var scoped = Assert.Throws<PythonException>("PYB_E_PYTHON", () => scope.Run("raise ScopeError(7)"), "ScopeError");
            Assert.Equal("ScopeError", scoped.PythonTypeName, "no __pybridge__. prefix");
            Assert.True(scoped.Is("LookupError") && scoped.Is("Exception") && !scoped.Is("KeyError"), "a subclass test");
            Assert.Equal(7L, scoped.Value.GetAttr<long>("code"), "an attribute of the exception object");
        }
        var syntax = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("def ("), "syntax error");
        Assert.Equal("SyntaxError", syntax.PythonTypeName, "SyntaxError");
        var missing = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Import("no_such_module_xyz"), "import");
        Assert.Equal("ModuleNotFoundError", missing.PythonTypeName, "ModuleNotFoundError");
        // One place maps statuses to exceptions.
        var expected = new Dictionary<PyStatusCode, Type> {
            { PyStatusCode.NotInitialized, typeof(PyEngineNotRunningException) },
            { PyStatusCode.ShuttingDown, typeof(PyEngineShuttingDownException) },
            { PyStatusCode.WrongThread, typeof(PyWrongThreadException) },
            { PyStatusCode.BadToken, typeof(InvalidOperationException) },
            { PyStatusCode.WouldDeadlock, typeof(PyWouldDeadlockException) },
            { PyStatusCode.Timeout, typeof(PyTimeoutException) },
            { PyStatusCode.NullArgument, typeof(ArgumentNullException) },
            { PyStatusCode.InvalidArgument, typeof(ArgumentException) },
            { PyStatusCode.Python, typeof(PythonException) },
            { PyStatusCode.InitFailed, typeof(PyBridgeException) },
            { PyStatusCode.Panic, typeof(PyBridgeException) },
            { PyStatusCode.BadHandle, typeof(ObjectDisposedException) },
            { PyStatusCode.WrongType, typeof(InvalidCastException) },
            { PyStatusCode.OutOfRange, typeof(OverflowException) },
            { PyStatusCode.ShutdownCommitted, typeof(PyTimeoutException) },
            { PyStatusCode.OutOfMemory, typeof(InsufficientMemoryException) },
            { PyStatusCode.Forked, typeof(InvalidOperationException) },
            { PyStatusCode.PythonUnusable, typeof(PyBridgeException) },
            { (PyStatusCode)(-99), typeof(PyBridgeException) } };
        foreach (var kv in expected)
        {
            Exception x = PyStatus.ToException(kv.Key);
            Assert.Equal(kv.Value, x.GetType(), "exception for " + PyStatus.Name(kv.Key));
            Assert.Equal(PyStatus.Name(kv.Key), x.Data[PyStatus.DataKey] as string, "status in Data");
        }
        Assert.True(((PyTimeoutException)PyStatus.ToException(PyStatusCode.ShutdownCommitted)).Committed,
            "PYB_E_SHUTDOWN_COMMITTED is a committed timeout");
        Assert.Equal(TimeSpan.FromSeconds(30), PyEngine.DefaultShutdownTimeout, "DefaultShutdownTimeout");
        Assert.Equal("PYB_E_TIMEOUT", PyStatus.Name(PyStatusCode.Timeout), "PyStatus.Name");
        Assert.Equal("PYB_E_UNKNOWN", PyStatus.Name((PyStatusCode)(-99)), "unknown status name");
        PyStatus.Check(PyStatusCode.Ok);
        Assert.Throws<ArgumentException>("PYB_E_INVALID_ARGUMENT", () => PyStatus.Check(PyStatusCode.InvalidArgument), "Check throws");
        PyEngine.Shutdown(Ten);
    }

    // ---------------------------------------------------------------- GIL and threads

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

    // ---------------------------------------------------------------- host functions

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
                BusyFor(TimeSpan.FromMilliseconds((long)args[1]));
                return PyObject.NewTuple(ticker.GetAttr<long>("count") - before, held);
            }
        };
        PyEngine.RegisterFunction("cs", "work", work, releaseGil: true);
        PyEngine.RegisterFunction("cs", "work_holding", work);
        PyEngine.Run("import cs\ndef timed(f, ms):\n    return f(ticker, ms)\n");
        using (PyObject r = PyEngine.Eval<PyObject>("timed(cs.work, 600)"))
        {
            Assert.True(r.GetItem<long>(0L) >= 6, "ticks during a 600 ms release-GIL host function: " + r.GetItem<long>(0L));
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

    // ---------------------------------------------------------------- shutdown and misuse

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

    // ---------------------------------------------------------------- sub-interpreters

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

    // ---------------------------------------------------------------- figures (never fail on them)

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
