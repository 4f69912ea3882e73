// Typed calls (bindings/csharp/TypedCalls.cs): the allocation-free path and the general path it
// falls back to must give the same results and the same exceptions.
using System;
using System.Numerics;
using System.Runtime.InteropServices;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void TypedCallsMatchTheGeneralPath()
    {
        PyEngine.Initialize();
        PyEngine.Run(
            "def add(a, b):\n    return a + b\n" +
            "def neg(a):\n    return -a\n" +
            "def pick(flag, a, b):\n    return a if flag else b\n" +
            "def fail(a):\n    raise KeyError(a)\n");
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
        using (PyObject neg = PyEngine.Eval<PyObject>("neg"))
        using (PyObject pick = PyEngine.Eval<PyObject>("pick"))
        using (PyObject fail = PyEngine.Eval<PyObject>("fail"))
        {
            // The allocation-free types.
            Assert.Equal(42L, add.Call<long, long, long>(41L, 1L), "long + long");
            Assert.Equal(42L, add.Call<int, long, long>(41, 1L), "int + long");
            Assert.Equal(2.5, add.Call<double, double, double>(2.0, 0.5), "double + double");
            Assert.Equal(-7L, neg.Call<long, long>(7L), "one argument");
            Assert.Equal(true, neg.Call<bool, long>(true) == -1L, "bool argument arrives as True");
            Assert.Equal(3.0, pick.Call<bool, double, double, double>(false, 1.0, 3.0), "three arguments");
            Assert.Equal(false, pick.Call<bool, bool, bool, bool>(true, false, true), "bool result");
            // A result of another type converts as Call<T>(params object[]) converts it.
            Assert.Equal(3.0, add.Call<long, long, double>(1L, 2L), "an int result read as double");
            Assert.Equal(add.Call<string>("a", "b"), add.Call<string, string, string>("a", "b"), "str arguments take the general path");
            Assert.Equal(BigInteger.Pow(2, 64), add.Call<BigInteger, long, BigInteger>(BigInteger.Pow(2, 64) - 1, 1L), "BigInteger in and out");
            using (PyObject sum = add.Call<long, long, PyObject>(2L, 3L))
                Assert.Equal(5L, sum.ToInt64(), "a PyObject result");
            // The same exceptions as the general path.
            Assert.Throws<OverflowException>("PYB_E_OUT_OF_RANGE", () => add.Call<long, long, long>(long.MaxValue, 1L),
                "a result past Int64 on the typed path");
            Assert.Throws<OverflowException>("PYB_E_OUT_OF_RANGE", () => add.Call<long>(long.MaxValue, 1L),
                "and on the general path");
            Assert.Throws<InvalidCastException>(null, () => add.Call<double, double, long>(0.5, 1.0),
                "a float result read as long on the typed path");
            Assert.Throws<InvalidCastException>(null, () => add.Call<long>(0.5, 1.0), "and on the general path");
            PythonException e = Assert.Throws<PythonException>("PYB_E_PYTHON", () => fail.Call<long, long>(5L), "a Python exception");
            Assert.Equal("KeyError", e.PythonTypeName, "its type");
            // A delegate over the typed path.
            Func<long, long, long> addf = add.AsFunc<long, long, long>();
            Func<long, long> negf = neg.AsFunc<long, long>();
            Func<bool, long, long, long> pickf = pick.AsFunc<bool, long, long, long>();
            Assert.Equal(10L, addf(4L, 6L) + negf(-1L) - pickf(true, 1L, 2L), "AsFunc delegates");
        }
        PyObject disposed = PyEngine.Eval<PyObject>("add");
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(null, () => disposed.Call<long, long, long>(1L, 2L), "a disposed callable");
        PyObject kept = PyEngine.Eval<PyObject>("add");
        PyEngine.Shutdown(Ten);
        // Handles die with the engine's shutdown.
        Exception general = Assert.Throws<ObjectDisposedException>("PYB_E_BAD_HANDLE",
            () => kept.Call<long>(1L, 2L), "after shutdown, the general path");
        Exception typed = Assert.Throws<ObjectDisposedException>("PYB_E_BAD_HANDLE",
            () => kept.Call<long, long, long>(1L, 2L), "after shutdown, the typed path");
        Assert.Equal(general.Message, typed.Message, "the same message");
        kept.Dispose();
    }
}
