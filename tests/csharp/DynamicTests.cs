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
        Assert.True((bool)p.__eq__(Point(1L, 5L)), "__eq__");
        Assert.True(p == Point(1L, 5L), "== is Python's == (OperatorsBothWaysAndOneEqualityRule)");
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
    [NotOnWindows(NoNumPyOnWindowsHere)]
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

public static partial class Tests
{
    [Test]
    public static void OperatorsBothWaysAndOneEqualityRule()
    {
        PyEngine.Initialize();
        // Counts imports of `operator` through builtins.__import__ (which PyImport_ImportModule calls).
        PyEngine.Run(
            "import builtins, sys\n" +
            "operator_imports = 0\n" +
            "_real_import = builtins.__import__\n" +
            "def _counting_import(name, *args, **kwargs):\n" +
            "    global operator_imports\n" +
            "    if name == 'operator':\n        operator_imports += 1\n" +
            "    return _real_import(name, *args, **kwargs)\n" +
            "builtins.__import__ = _counting_import\n" +
            "class Grid:\n" +
            "    def __init__(self):\n        self.keys = []\n" +
            "    def __getitem__(self, key):\n        self.keys.append(key)\n        return len(self.keys)\n" +
            "grid = Grid()\n");
        dynamic seven = PyEngine.Eval<PyObject>("7");
        dynamic list = PyEngine.Eval<PyObject>("[1, 2]");
        // The PyObject on the right: C#'s binder finds PyObject's static operators.
        Assert.Equal(14L, (long)(2 * seven), "2 * d");
        Assert.Equal(3L, (long)(10 - seven), "10 - d keeps the order");
        Assert.Equal(17.5, (double)(2.5 * seven), "2.5 * d");
        Assert.Equal(6L, (long)(3 * list).__len__(), "3 * list repeats the list, as in Python");
        Assert.True((bool)(1 < seven), "1 < d");
        // Statically typed.
        using (PyObject a = PyEngine.Eval<PyObject>("6"))
        using (PyObject product = 7 * a)
        using (PyObject quotient = a / 4L)
        using (PyObject shifted = a << 2)
        using (PyObject negated = -a)
        {
            Assert.Equal(42L, product.ToInt64(), "7 * a");
            Assert.Equal(1.5, quotient.ToDouble(), "a / 4 is Python's true division");
            Assert.Equal(24L, shifted.ToInt64(), "a << 2");
            Assert.Equal(-6L, negated.ToInt64(), "-a");
            using (PyObject less = a < 10L) Assert.True(less ? true : false, "if (a < 10) uses Python's truth value");
        }
        // Equality: ==, != and Equals are Python's == as a bool; GetHashCode is Python's hash.
        using (PyObject t1 = PyEngine.Eval<PyObject>("(1, 'a')"))
        using (PyObject t2 = PyEngine.Eval<PyObject>("(1, 'a')"))
        using (PyObject t3 = PyEngine.Eval<PyObject>("(2, 'a')"))
        using (PyObject l1 = PyEngine.Eval<PyObject>("[1, 2]"))
        using (PyObject l2 = PyEngine.Eval<PyObject>("[1, 2]"))
        {
            Assert.True(t1 == t2 && t1.Equals(t2) && !(t1 != t2), "two wrappers of equal tuples are equal");
            Assert.True(t1 != t3 && !t1.Equals(t3), "different tuples are not");
            Assert.True(!t1.Equals(null) && t1 != null && !(null == t1), "nothing equals null");
            long pythonHash = PyEngine.Eval<long>("hash((1, 'a'))");
            Assert.Equal((int)pythonHash ^ (int)(pythonHash >> 32), t1.GetHashCode(), "GetHashCode is Python's hash");
            Assert.Equal(t1.GetHashCode(), t2.GetHashCode(), "equal objects hash alike");
            Assert.True(l1 == l2, "equal lists");
            Assert.Equal(0, l1.GetHashCode(), "an unhashable object hashes to 0");
            var set = new HashSet<PyObject> { t1, t2, t3, l1, l2 };
            Assert.Equal(3, set.Count, "a HashSet keeps one of each equal pair");
            dynamic d1 = t1;
            object same = d1 == t2;
            Assert.True(same is bool && (bool)same, "dynamic == is the same bool");
            Assert.True((bool)(d1 != t3), "dynamic !=");
            Assert.True(t1.Equals(PyEngine.Eval<PyObject>("(1, 'a')")) && seven.Equals(7L), "Equals with a .NET value");
        }
        // Deterministic temporaries: the key tuple of d[i, j] is released at once.
        dynamic grid = PyEngine.Eval<PyObject>("grid");
        Assert.Equal(1L, (long)grid[1L, 2L], "d[i, j]");
        Assert.Equal(2L, PyEngine.Eval<long>("sys.getrefcount(grid.keys[0])"), "only the list holds the key tuple (no handle left for the finalizer)");
        // `operator` is imported once per interpreter, not on every operation.
        PyEngine.Run("operator_imports = 0");
        for (int i = 0; i < 10; i++) ((PyObject)(seven + (long)i)).Dispose();
        Assert.Equal(0L, PyEngine.Eval<long>("operator_imports"), "no import per operation");
        using (var interpreter = PyInterpreter.Create(sharedGil: true))
        using (interpreter.Enter())
        {
            using (PyObject three = PyEngine.Eval<PyObject>("3"))
            using (PyObject nine = three * 3L)
                Assert.Equal(9L, nine.ToInt64(), "operators inside a sub-interpreter use its own operator module");
        }
        Assert.Equal(21L, (long)(seven * 3L), "and the main interpreter's still");
        ((PyObject)seven).Dispose();
        ((PyObject)list).Dispose();
        ((PyObject)grid).Dispose();
        PyEngine.Shutdown(Ten);
    }
}

public static partial class Tests
{
    [Test]
    public static void DynamicResultsChainAndIterate()
    {
        PyEngine.Initialize();
        PyEngine.Run(
            "import types\n" +
            "m = types.SimpleNamespace(greet=lambda name: 'hello ' + name, count=lambda: 41, nothing=lambda: None)\n" +
            "def numbers():\n    yield 1\n    yield 'two'\n    yield None\n");
        dynamic m = PyEngine.Eval<PyObject>("m");
        // A str result stays a Python object: its methods chain.
        Assert.Equal("HELLO X", (string)m.greet("x").upper(), "m.greet(\"x\").upper()");
        string s = m.greet("x");
        Assert.Equal("hello x", s, "and converts when assigned to a string");
        Assert.Equal(6L, (long)m.count().bit_length(), "an int result chains too");
        // A deferred result used as a receiver several times (each use gets a temporary Python
        // object), an attribute of it, then as an argument and as a Python object of its own.
        dynamic kept = m.greet("x");
        Assert.Equal("HELLO X", (string)kept.upper(), "first use");
        Assert.Equal("Hello X", (string)kept.title(), "second use");
        Assert.Equal(0L, (long)m.count().imag, "an attribute of a deferred int");
        Assert.Equal("hello xhello x", (string)(kept + kept), "as operands");
        Assert.Equal("hello x", ((PyObject)kept).GetAttr<PyObject>("lower").Call<string>(), "as a Python object");
        Assert.Equal("HELLO X", (string)kept.upper(), "a receiver again once its object exists");
        long n = m.count();
        double d = m.count();
        int i = m.count();
        Assert.Equal(41L + 41 + 41, n + (long)d + i, "and converts to long, double, int");
        object none = m.nothing();
        Assert.True(none == null, "None is null");
        object greeting = m.greet("y");
        Assert.True(greeting is PyObject, "a dynamic result is a PyObject, not a .NET string");
        Assert.Equal("hello y", greeting.ToString(), "str() of it");
        // foreach over any Python iterable, dynamic or not.
        dynamic generator = PyEngine.Eval<PyObject>("numbers()");
        var seen = new List<string>();
        foreach (dynamic item in generator) seen.Add(item == null ? "None" : (string)item.__repr__());
        Assert.Equal("1,'two',None", string.Join(",", seen), "foreach over a dynamic generator");
        using (PyObject range = PyEngine.Eval<PyObject>("range(3)"))
        {
            long sum = 0;
            foreach (PyObject item in range) using (item) sum += item.ToInt64();
            Assert.Equal(3L, sum, "foreach over a statically typed PyObject");
            Assert.Equal(3, ((System.Collections.IEnumerable)range).Cast<object>().Count(), "LINQ over IEnumerable");
        }
        dynamic text = PyEngine.Eval<PyObject>("'abc'");
        var letters = new List<string>();
        foreach (dynamic c in text) letters.Add(((string)c.upper()));
        Assert.Equal("A,B,C", string.Join(",", letters), "a str iterates its characters, each chaining");
        // A deferred result disposed: conversions and calls say so.
        PyObject done = (PyObject)m.greet("z");
        done.Dispose();
        Assert.True(done.IsDisposed, "disposed");
        Assert.Throws<ObjectDisposedException>(null, () => done.As<string>(), "a disposed deferred result converts no more");
        ((PyObject)m).Dispose();
        ((PyObject)generator).Dispose();
        ((PyObject)text).Dispose();
        PyEngine.Shutdown(Ten);
    }
}
