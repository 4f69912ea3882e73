// Values and objects: conversions both ways, PyObject members, handles, scopes, typed views of
// collections, integers of any size.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge;

public static partial class Tests
{
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
}
