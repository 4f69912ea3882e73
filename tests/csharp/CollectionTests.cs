// .NET collections into Python (bindings/csharp/Values.cs, CollectionToPython): copies as list,
// dict and tuple, as call arguments and as typed-delegate results; zero-copy through PyBuffer.Share.
using System;
using System.Collections.Generic;
using System.Linq;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void DotNetCollectionsBecomePythonOnes()
    {
        PyEngine.Initialize();
        PyEngine.Run("def show(*args, **kwargs):\n    return repr(args) + (repr(kwargs) if kwargs else '')\n");
        using (PyObject show = PyEngine.Eval<PyObject>("show"))
        {
            Assert.Equal("([1.5, 2.0],)", show.Call<string>(new double[] { 1.5, 2 }), "double[]");
            Assert.Equal("([1, -2], [3, 4], [5], [True, False], [0.5])",
                show.Call<string>(new int[] { 1, -2 }, new uint[] { 3, 4 }, new ulong[] { 5 }, new bool[] { true, false }, new float[] { 0.5f }),
                "int[], uint[], ulong[], bool[], float[]");
            Assert.Equal("([1, 2], [-1], [7], [8])", show.Call<string>(new short[] { 1, 2 }, new sbyte[] { -1 }, new ushort[] { 7 }, new long[] { 8 }),
                "short[], sbyte[], ushort[], long[]");
            Assert.Equal("(b'\\x01',)", show.Call<string>(new byte[] { 1 }), "byte[] stays bytes");
            Assert.Equal("(['a', 'b'],)", show.Call<string>(new List<string> { "a", "b" }), "List<string>");
            Assert.Equal("({'a': 1, 'b': [2, 3]},)",
                show.Call<string>(new Dictionary<string, object> { { "a", 1L }, { "b", new List<long> { 2, 3 } } }), "Dictionary, nested list");
            Assert.Equal("([0, 2, 4],)", show.Call<string>(Enumerable.Range(0, 3).Select(i => i * 2)), "a LINQ IEnumerable<int>");
            Assert.Equal("((1, 'a', 2.5),)", show.Call<string>(ValueTuple.Create(1L, "a", 2.5)), "ValueTuple");
            Assert.Equal("((1, 2, 3, 4, 5, 6, 7, 8, 9),)",
                show.Call<string>(new ValueTuple<int, int, int, int, int, int, int, ValueTuple<int, int>>(1, 2, 3, 4, 5, 6, 7, ValueTuple.Create(8, 9))), "a ValueTuple of nine (Rest)");
            Assert.Equal("((True, None),)", show.Call<string>(Tuple.Create(true, (object)null)), "Tuple");
            Assert.Equal("({(1, 2): 'pair'},)", show.Call<string>(new Dictionary<(long, long), string> { { (1L, 2L), "pair" } }), "tuple keys");
            Assert.Equal("(){'xs': [1, 2]}", show.CallKw<string>(new object[0], new Dictionary<string, object> { { "xs", new[] { 1L, 2L } } }), "as a keyword argument");
            Assert.Equal("([[1, 2], [3]],)", show.Call<string>(new List<long[]> { new[] { 1L, 2L }, new[] { 3L } }), "nested");
            using (PyObject fromList = PyObject.From(new List<double> { 1, 2 }))
                Assert.Equal("[1.0, 2.0]", fromList.ToString(), "PyObject.From(List<double>)");
            Assert.Throws<ArgumentException>(null, () => show.Call<string>(new object[] { new[] { 'c' } }), "char[] has no Python equivalent");
        }
        // Zero-copy on request: Python writes into the C# array.
        var data = new double[] { 1, 2, 3 };
        PyEngine.Run("def double_in_place(view):\n    for i in range(len(view)):\n        view[i] *= 2\n");
        using (PyObject doubleInPlace = PyEngine.Eval<PyObject>("double_in_place"))
        using (PyObject shared = PyBuffer.Share(data))
            doubleInPlace.Call(shared);
        Assert.Equal("2,4,6", string.Join(",", data), "PyBuffer.Share passes the array itself");
        // Typed delegates return collections as Python collections, not host objects.
        PyEngine.RegisterFunction<long, List<long>>("host", "range_list", n => Enumerable.Range(0, (int)n).Select(i => (long)i).ToList());
        PyEngine.RegisterFunction<Dictionary<string, double[]>>("host", "table", () => new Dictionary<string, double[]> { { "x", new[] { 0.5 } } });
        PyEngine.RegisterFunction<long, (long, string)>("host", "pair", n => (n, "n"));
        PyEngine.Run("import host");
        Assert.Equal("[0, 1, 2] list", PyEngine.Eval<string>("f'{host.range_list(3)} {type(host.range_list(1)).__name__}'"), "List<long> result");
        Assert.Equal("{'x': [0.5]}", PyEngine.Eval<string>("repr(host.table())"), "Dictionary<string, double[]> result");
        Assert.Equal("(4, 'n')", PyEngine.Eval<string>("repr(host.pair(4))"), "ValueTuple result");
        PyEngine.Shutdown(Ten);
    }
}
