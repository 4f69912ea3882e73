// PyObject with C#'s dynamic (bindings/csharp/Dynamic.cs): attributes, calls with named arguments
// as keywords, indexers, operators, conversions, and NumPy through dynamic.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void DynamicObjectsReadLikePython()
    {
        PyEngine.Initialize();
        PyEngine.Run(
            "class Point:\n" +
            "    def __init__(self, x, y):\n        self.x, self.y = x, y\n" +
            "    def scaled(self, by=1, *, offset=0):\n        return Point(self.x * by + offset, self.y * by + offset)\n" +
            "    def __add__(self, other):\n        return Point(self.x + other.x, self.y + other.y)\n" +
            "    def __neg__(self):\n        return Point(-self.x, -self.y)\n" +
            "    def __eq__(self, other):\n        return (self.x, self.y) == (other.x, other.y)\n" +
            "    def __repr__(self):\n        return f'Point({self.x}, {self.y})'\n");
        dynamic json = PyEngine.Import("json");
        string text = json.dumps(PyObject.NewDict(new Dictionary<string, object> { { "a", 1L } }), indent: 2);
        Assert.Equal("{\n  \"a\": 1\n}", text, "json.dumps(x, indent: 2)");
        dynamic Point = PyEngine.Eval<PyObject>("Point");
        dynamic p = Point(1L, 2L);
        Assert.Equal(1L, (long)p.x, "attribute");
        p.y = 5L;
        Assert.Equal(5L, (long)p.y, "attribute set");
        dynamic q = p.scaled(2L, offset: 1L);
        Assert.Equal("Point(3, 11)", (string)q.__repr__(), "a method with a keyword-only argument");
        Assert.Equal("Point(4, 16)", (string)(p + q).__repr__(), "operator +");
        Assert.Equal("Point(-1, -5)", (string)(-p).__repr__(), "unary -");
        // C#'s == on two objects is reference equality, which the runtime binder applies before
        // asking the object: compare values with Python's __eq__ (or Equals on plain results).
        Assert.True((bool)p.__eq__(Point(1L, 5L)), "__eq__");
        dynamic low = PyEngine.Eval<PyObject>("(1, 2)"), high = PyEngine.Eval<PyObject>("(1, 3)");
        Assert.True((bool)(low < high) && !(bool)(low >= high), "operators < and >= through Python's comparison");
        dynamic numbers = PyObject.NewList(1L, 2L, 3L);
        numbers[0] = 10L;
        Assert.Equal(10L, (long)numbers[0], "indexer");
        Assert.Equal(15L, (long)(numbers[0] + numbers[2] + 2L), "plain values come back as .NET values");
        dynamic table = PyEngine.Eval<PyObject>("{(1, 2): 'pair'}");
        Assert.Equal("pair", (string)table[1L, 2L], "d[i, j] is d[(i, j)]");
        dynamic big = PyEngine.Eval<PyObject>("2 ** 70");
        Assert.Equal(BigInteger.Pow(2, 70), (BigInteger)big, "conversion to BigInteger");
        Assert.Equal(1L, (long)(big % 3L), "operator % on a Python int");
        Assert.True((bool)(big > 1L), "operator >");
        PyList list = (PyList)numbers;
        Assert.Equal(3, list.Count, "conversion to a typed view");
        Assert.Equal(false, ((PyObject)numbers).IsDisposed, "a conversion leaves the object usable");
        dynamic len = PyEngine.Eval<PyObject>("len");
        Assert.Equal(3L, (long)len(numbers), "calling a dynamic callable");
        Assert.True(((PyObject)p).GetDynamicMemberNames().Contains("scaled"), "dir() for debuggers");
        Assert.Throws<PythonException>("PYB_E_PYTHON", () => { object missing = p.no_such_attribute; GC.KeepAlive(missing); }, "AttributeError");
        Assert.Throws<PythonException>("PYB_E_PYTHON", () => p.scaled(bogus: 1L), "an unknown keyword is Python's TypeError");
        ((PyObject)p).Dispose();
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void DynamicNumPy()
    {
        string venv = Environment.GetEnvironmentVariable("PYB_NUMPY_VENV");
        Assert.True(!string.IsNullOrEmpty(venv), "scripts/test-csharp.sh sets PYB_NUMPY_VENV");
        PyEngine.Initialize(new PyEngineOptions { VirtualEnv = venv });
        dynamic np = PyEngine.Import("numpy");
        dynamic a = np.zeros(3);
        a[0] = 1.5;
        a[2] = 2.5;
        Assert.Equal(4.0, (double)a.sum(), "np.zeros(3), assigned, summed");
        dynamic m = np.arange(6).reshape(2, 3);
        Assert.Equal(5L, (long)m[1L, 2L].item(), "m[1, 2] of arange(6).reshape(2, 3)");
        Assert.Equal("[0, 2, 4, 6, 8, 10]", (string)(m * 2L).ravel().tolist().__repr__(), "operators on arrays");
        Assert.Equal("[0. 0. 0. 0.]", (string)np.zeros(shape: 4L).__str__(), "a keyword argument to NumPy");
        PyEngine.Shutdown(Ten);
    }
}

public static partial class Tests
{
    [Test]
    public static void DynamicDowncastsAndTypedViews()
    {
        PyEngine.Initialize();
        dynamic list = PyEngine.Eval<PyObject>("[1, 2, 3]");
        dynamic dict = PyEngine.Eval<PyObject>("{'a': 1}");
        dynamic tuple = PyEngine.Eval<PyObject>("(1, 2)");
        // An explicit cast to a subclass, which the C# binder would bind statically.
        using (PyList l = (PyList)list) Assert.Equal(3, l.Count, "(PyList)d");
        using (PyDict d = (PyDict)dict) Assert.Equal(1L, d["a"], "(PyDict)d");
        using (PyTuple t = (PyTuple)tuple) Assert.Equal(2, t.Count, "(PyTuple)d");
        using (PySequence s = (PySequence)list) Assert.Equal(3, s.Count, "(PySequence)d");
        PyObject same = (PyObject)list;
        Assert.True(object.ReferenceEquals(same, (object)list), "(PyObject)d is d itself");
        var wrong = Assert.Throws<InvalidCastException>(null, () => { PyList bad = (PyList)dict; bad.Dispose(); }, "a dict is no list");
        Assert.Contains("'dict', not a list", wrong.Message, "the message names both types");
        Assert.Equal(false, ((PyObject)list).IsDisposed, "a conversion leaves the object usable");
        // A statically typed object's typed view.
        using (PyObject o = PyEngine.Eval<PyObject>("{'k': [1, 2]}"))
        {
            using (PyDict view = o.As<PyDict>()) Assert.Equal(1, view.Count, "As<PyDict>");
            Assert.Equal(false, o.IsDisposed, "As<T> leaves the object usable");
            var notList = Assert.Throws<InvalidCastException>(null, () => o.As<PyList>().Dispose(), "As<PyList> of a dict");
            Assert.Contains("'dict', not a list (PyList)", notList.Message, "As<T> names both types");
            using (PyObject big = PyEngine.Eval<PyObject>("2 ** 70"))
                Assert.Equal(BigInteger.Pow(2, 70), big.As<BigInteger>(), "As<BigInteger>");
        }
        ((PyObject)list).Dispose();
        ((PyObject)dict).Dispose();
        ((PyObject)tuple).Dispose();
        PyEngine.Shutdown(Ten);
    }
}
