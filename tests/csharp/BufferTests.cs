// Zero-copy buffers from C# (bindings/csharp/Buffers.cs): views of Python memory written in
// place, C# arrays shared with Python, and NumPy (a 100 MB float64 array filled from C#).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Reflection;
using System.Text.RegularExpressions;
using System.Linq;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static unsafe void BuffersViewPythonMemoryAndShareArrays()
    {
        PyEngine.Initialize();
        PyEngine.Run("data = bytearray(b'hello')\nimport array\nnumbers = array.array('d', [1.5, 2.5, 3.5])");
        using (PyObject data = PyEngine.Eval<PyObject>("data"))
        using (PyBuffer view = data.GetBuffer(writable: true))
        {
            Assert.Equal(5L, view.Length, "Length");
            Assert.Equal(1, view.ItemSize, "ItemSize");
            Assert.Equal("B", view.Format, "Format");
            Assert.Equal(false, view.ReadOnly, "ReadOnly");
            Assert.Equal(5L, view.Shape.Single(), "Shape");
            Assert.Equal(1L, view.Strides.Single(), "Strides");
            Assert.Equal(view.Pointer, view.Lowest, "Lowest of contiguous memory");
            Assert.Equal(5L, view.Span, "Span of contiguous memory");
            ((byte*)view.Pointer)[0] = (byte)'j';
            Assert.Equal("jello", PyEngine.Eval<string>("data.decode()"), "a write through Pointer reaches Python");
            Assert.Equal("bytearray", PyEngine.Eval<string>("type(data).__name__"), "still the same object");
            Assert.True(view.Owner.ToString().StartsWith("<pybridge.BufferView object at"), "Owner holds the export: " + view.Owner);
        }
        using (PyObject numbers = PyEngine.Eval<PyObject>("numbers"))
        using (PyBuffer view = numbers.GetBuffer())
        {
            Assert.Equal(3L, view.Count, "Count");
            Assert.True(view.IsContiguous, "IsContiguous");
            double[] copy = new double[3];
            view.CopyTo(copy);
            Assert.Equal("1.5 2.5 3.5", string.Join(" ", copy), "CopyTo");
            Assert.Throws<ArgumentException>(null, () => view.CopyTo(new double[2]), "a wrong length");
            Assert.Throws<ArgumentException>(null, () => view.CopyTo(new float[3]), "a wrong item size");
        }
        using (PyObject numbers = PyEngine.Eval<PyObject>("numbers"))
        using (PyBuffer view = numbers.GetBuffer(writable: true))
            view.CopyFrom(new double[] { 7, 8, 9 });
        Assert.Equal(24.0, PyEngine.Eval<double>("sum(numbers)"), "CopyFrom reached Python");
        // Every element type CopyTo/CopyFrom offer, through array.array.
        PyEngine.Run("f = array.array('f', [0.5]); q = array.array('q', [5]); i = array.array('i', [6]); b = bytearray(b'\\x07')");
        using (PyObject f = PyEngine.Eval<PyObject>("f")) using (PyBuffer v = f.GetBuffer(true))
        { float[] a = new float[1]; v.CopyTo(a); a[0] += 1; v.CopyFrom(a); }
        using (PyObject q = PyEngine.Eval<PyObject>("q")) using (PyBuffer v = q.GetBuffer(true))
        { long[] a = new long[1]; v.CopyTo(a); a[0] += 1; v.CopyFrom(a); }
        using (PyObject i = PyEngine.Eval<PyObject>("i")) using (PyBuffer v = i.GetBuffer(true))
        { int[] a = new int[1]; v.CopyTo(a); a[0] += 1; v.CopyFrom(a); }
        using (PyObject b = PyEngine.Eval<PyObject>("b")) using (PyBuffer v = b.GetBuffer(true))
        { byte[] a = new byte[1]; v.CopyTo(a); a[0] += 1; v.CopyFrom(a); }
        Assert.Equal("(1.5, 6, 7, 8)", PyEngine.Eval<string>("repr((f[0], q[0], i[0], b[0]))"), "each type round trip");

        // A matrix: shape and strides; not contiguous once reversed.
        using (PyObject m = PyEngine.Eval<PyObject>("memoryview(bytearray(12)).cast('B', (3, 4))[::-1]"))
        using (PyBuffer view = m.GetBuffer())
        {
            Assert.Equal("3 4", string.Join(" ", view.Shape), "Shape 2-D");
            Assert.Equal("-4 1", string.Join(" ", view.Strides), "Strides reversed");
            Assert.Equal(false, view.IsContiguous, "reversed is not contiguous");
            // Pointer is the first row, the highest one; the memory starts two rows lower.
            Assert.Equal(12L, view.Span, "Span");
            Assert.Equal((long)view.Pointer - 8, (long)view.Lowest, "Lowest");
            Assert.Throws<InvalidOperationException>(null, () => view.CopyTo(new byte[12]), "CopyTo");
        }
        using (PyObject bytes = PyEngine.Eval<PyObject>("__import__('builtins').bytes(b'frozen')"))
        {
            Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => bytes.GetBuffer(writable: true), "bytes is read-only");
            using (PyBuffer view = bytes.GetBuffer())
            {
                Assert.True(view.ReadOnly, "bytes: ReadOnly");
                Assert.Throws<InvalidOperationException>(null, () => view.CopyFrom(new byte[6]), "CopyFrom");
            }
        }
        using (PyObject number = PyEngine.Eval<PyObject>("object()"))
            Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => number.GetBuffer(), "no buffer protocol");

        // A C# array shared with Python: no copy either way, released once.
        double[] shared = { 1, 2, 3, 4 };
        int released = 0;
        using (PyObject view = PyBuffer.Share(shared, writable: true, onRelease: () => Interlocked.Increment(ref released)))
            using (PyObject main = PyEngine.Import("__main__")) main.SetAttr("shared", view);
        Assert.Equal(10.0, PyEngine.Eval<double>("sum(shared)"), "Python reads the array");
        PyEngine.Run("shared[0] = 42.0\nalias = shared[1:]");
        Assert.Equal(42.0, shared[0], "Python wrote the array");
        PyEngine.Run("del shared");
        Assert.Equal(0, released, "alias still uses it");
        PyEngine.Run("del alias");
        Assert.Equal(1, released, "released once when Python let go");
        int[] readOnly = { 5 };
        using (PyObject view = PyBuffer.Share(readOnly, writable: false))
        using (PyObject setItem = PyEngine.Eval<PyObject>("lambda v: v.__setitem__(0, 1)"))
            Assert.Throws<PythonException>("PYB_E_PYTHON", () => setItem.Call(view), "Python cannot write read-only memory");
        Assert.Throws<ArgumentException>(null, () => PyBuffer.Share(new decimal[1]), "an unsupported element type");
        // Native memory with its own callback.
        IntPtr native = System.Runtime.InteropServices.Marshal.AllocHGlobal(16);
        bool freed = false;
        using (PyObject view = PyBuffer.Share(native, 16, "q", 8, false, () => { System.Runtime.InteropServices.Marshal.FreeHGlobal(native); freed = true; }))
        using (PyObject len = PyEngine.Eval<PyObject>("len"))
            Assert.Equal(2L, len.Call<long>(view), "two 8-byte items");
        PyEngine.Run("pass"); // applies the release queued by Dispose, if any
        Assert.True(freed, "the native memory's callback ran");
        Assert.Throws<ArgumentException>("PYB_E_INVALID_ARGUMENT", () => PyBuffer.Share(IntPtr.Zero, 16, "q", 4, false, null), "itemsize mismatch");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    [NotOnWindows(NoNumPyOnWindowsHere)]
    public static unsafe void BuffersFillNumPyInPlace()
    {
        string venv = Environment.GetEnvironmentVariable("PYB_NUMPY_VENV");
        Assert.True(!string.IsNullOrEmpty(venv), "scripts/test-csharp.sh sets PYB_NUMPY_VENV");
        PyEngine.Initialize(new PyEngineOptions { VirtualEnv = venv });
        const int Items = 100 * 1024 * 1024 / 8;
        PyEngine.Run("import numpy as np\nbig = np.zeros(" + Items + ")\nsmall = np.zeros(128)");
        using (PyObject big = PyEngine.Eval<PyObject>("big"))
        using (PyObject small = PyEngine.Eval<PyObject>("small"))
        {
            using (PyBuffer view = big.GetBuffer(writable: true))
            {
                Assert.Equal((long)Items * 8, view.Length, "100 MB");
                double* p = (double*)view.Pointer;
                for (int i = 0; i < Items; i++) p[i] = i;
            }
            long expected = (long)Items * (Items - 1) / 2;
            Assert.Equal(expected, PyEngine.Eval<long>("int(big.sum())"), "NumPy sees every value written from C#");
            Assert.Equal(12345.0, PyEngine.Eval<double>("float(big[12345])"), "big[12345]");

            // The cost of a view does not depend on the size: 1 KB against 100 MB, same run.
            const int Rounds = 7, Views = 20000;
            double[] smallNs = new double[Rounds], bigNs = new double[Rounds], ratio = new double[Rounds];
            for (int r = 0; r < Rounds; r++)
            {
                smallNs[r] = TimeViews(small, Views);
                bigNs[r] = TimeViews(big, Views);
                ratio[r] = bigNs[r] / smallNs[r];
            }
            Console.WriteLine("  view + release: 1 KB {0:F0} ns, 100 MB {1:F0} ns: 100 MB costs {2:F2}x 1 KB (median of {3} rounds)",
                Median(smallNs), Median(bigNs), Median(ratio), Rounds);
        }

        // A C# array as a NumPy array: NumPy writes it, C# sees it.
        double[] host = new double[Items];
        for (int i = 0; i < host.Length; i++) host[i] = 1.5;
        {
            // Sharing does not depend on the size either: 1 KB against 100 MB, same run.
            const int Rounds = 7, Shares = 5000;
            double[] smallNs = new double[Rounds], bigNs = new double[Rounds], ratio = new double[Rounds];
            double[] kilobyte = new double[128];
            for (int r = 0; r < Rounds; r++)
            {
                smallNs[r] = TimeShares(kilobyte, Shares);
                bigNs[r] = TimeShares(host, Shares);
                ratio[r] = bigNs[r] / smallNs[r];
            }
            Console.WriteLine("  share a double[] + release: 1 KB {0:F0} ns, 100 MB {1:F0} ns: 100 MB costs {2:F2}x 1 KB (median of {3} rounds)",
                Median(smallNs), Median(bigNs), Median(ratio), Rounds);
        }
        int released = 0;
        using (PyObject view = PyBuffer.Share(host, writable: true, onRelease: () => released++))
        {
            using (PyObject main = PyEngine.Import("__main__")) main.SetAttr("host", view);
            PyEngine.Run("arr = np.frombuffer(host, dtype=np.float64)\ndel host");
        }
        PyEngine.Run("arr *= 2");
        Assert.Equal(3.0, host[0], "host[0] after NumPy's arr *= 2");
        Assert.Equal(3.0, host[Items - 1], "host[last]");
        Assert.Equal(0, released, "arr still uses the array");
        PyEngine.Run("del arr");
        Assert.Equal(1, released, "released once NumPy let go");
        PyEngine.Shutdown(Ten);
    }

    static double Median(double[] values)
    {
        double[] sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted[sorted.Length / 2];
    }

    static double TimeShares(double[] array, int count)
    {
        Stopwatch watch = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
            using (PyGil gil = PyEngine.Gil()) // so Dispose releases at once, not through the queue
            using (PyBuffer.Share(array)) { }
        return watch.Elapsed.TotalMilliseconds * 1e6 / count;
    }

    static double TimeViews(PyObject array, int count)
    {
        Stopwatch watch = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
            using (array.GetBuffer(writable: true)) { }
        return watch.Elapsed.TotalMilliseconds * 1e6 / count;
    }
}

public static partial class Tests
{
    /// <summary>Every doc comment of the binding that names an exception with its status
    /// ("PyBridgeException (PYB_E_WRONG_TYPE)") names the one PyStatus.ToException makes for
    /// that status (or a base of it): GetBuffer's promised PyBridgeException, and threw
    /// InvalidCastException.</summary>
    [Test]
    public static void DocCommentsNameTheExceptionsThrown()
    {
        var wrong = new List<string>();
        int checkedCount = 0;
        foreach (string file in Directory.GetFiles(Path.Combine(Root, "bindings/csharp"), "*.cs").OrderBy(f => f, StringComparer.Ordinal))
        {
            // Doc comment lines joined, so a name and its status may sit on two lines.
            string docs = string.Join(" ", File.ReadAllLines(file).Select(l => l.Trim())
                .Where(l => l.StartsWith("///", StringComparison.Ordinal)).Select(l => l.Substring(3)));
            foreach (Match m in Regex.Matches(docs, @"(\w+Exception)\s*\(\s*(PYB_E_[A-Z_]+)"))
            {
                FieldInfo constant = Interop("Native").GetField(m.Groups[2].Value);
                if (constant == null) { wrong.Add(Path.GetFileName(file) + ": unknown " + m.Groups[2].Value); continue; }
                Exception made = PyStatus.ToException((PyStatusCode)(int)constant.GetValue(null));
                checkedCount++;
                bool matches = false;
                for (Type t = made.GetType(); t != null; t = t.BaseType)
                    if (t.Name == m.Groups[1].Value) matches = true;
                if (!matches)
                    wrong.Add(Path.GetFileName(file) + ": '" + m.Value + ")' but " + m.Groups[2].Value + " is " + made.GetType().Name);
            }
        }
        Assert.Equal("", string.Join("; ", wrong), "doc comments that name the wrong exception");
        Assert.True(checkedCount > 0, "some doc comment names an exception with its status");
    }
}

public static partial class Tests
{
    [Test]
    public static void BuffersCopyRangesOfEveryElementType()
    {
        PyEngine.Initialize();
        PyEngine.Run("import array\nnumbers = array.array('d', range(10))\n");
        using (PyObject numbers = PyEngine.Eval<PyObject>("numbers"))
        using (PyBuffer view = numbers.GetBuffer(writable: true))
        {
            var part = new double[5];
            view.CopyTo(2, part, 1, 3);
            Assert.Equal("0,2,3,4,0", string.Join(",", part), "CopyTo(sourceIndex, array, index, count)");
            view.CopyFrom(new double[] { -1, -5, -6, -1 }, 1, 5, 2);
            Assert.Equal("[0.0, 1.0, 2.0, 3.0, 4.0, -5.0, -6.0, 7.0, 8.0, 9.0]", PyEngine.Eval<string>("repr(numbers.tolist())"),
                "CopyFrom(array, index, destinationIndex, count)");
            view.CopyTo(10, part, 5, 0);
            Assert.Throws<ArgumentException>(null, () => view.CopyTo(8, part, 0, 3), "past the buffer's end");
            Assert.Throws<ArgumentException>(null, () => view.CopyTo(0, part, 3, 3), "past the array's end");
            Assert.Throws<ArgumentOutOfRangeException>(null, () => view.CopyTo(0, part, 0, -1), "a negative count");
            Assert.Throws<ArgumentOutOfRangeException>(null, () => view.CopyFrom(part, 0, -1L, 1), "a negative index");
        }
        // Every element type: unsigned ones, bool and char too.
        PyEngine.Run(
            "views = {\n" +
            "  'Q': array.array('Q', [2**64 - 1]), 'I': array.array('I', [2**32 - 1]), 'H': array.array('H', [65535]),\n" +
            "  'b': array.array('b', [-128]), 'B': array.array('B', [255]), 'h': array.array('h', [-2]),\n" +
            "  'q': array.array('q', [-3]), 'i': array.array('i', [-4]), 'f': array.array('f', [0.25]),\n" +
            "  '?': memoryview(bytearray(b'\\x01')).cast('?'), 'c': array.array('H', [0x263A]),\n" +
            "}\n");
        Func<string, PyBuffer> open = code =>
        {
            using (PyObject o = PyEngine.Eval<PyObject>("views['" + code + "']")) return o.GetBuffer(writable: true); // the view holds its own export
        };
        using (PyBuffer v = open("Q")) { var a = new ulong[1]; v.CopyTo(a); Assert.Equal(ulong.MaxValue, a[0], "ulong"); a[0] = 1; v.CopyFrom(a); }
        using (PyBuffer v = open("I")) { var a = new uint[1]; v.CopyTo(a); Assert.Equal(uint.MaxValue, a[0], "uint"); a[0] = 2; v.CopyFrom(a); }
        using (PyBuffer v = open("H")) { var a = new ushort[1]; v.CopyTo(a); Assert.Equal(ushort.MaxValue, a[0], "ushort"); a[0] = 3; v.CopyFrom(a); }
        using (PyBuffer v = open("b")) { var a = new sbyte[1]; v.CopyTo(a); Assert.Equal(sbyte.MinValue, a[0], "sbyte"); a[0] = 4; v.CopyFrom(a); }
        using (PyBuffer v = open("B")) { var a = new byte[1]; v.CopyTo(a); Assert.Equal(byte.MaxValue, a[0], "byte"); a[0] = 5; v.CopyFrom(a); }
        using (PyBuffer v = open("h")) { var a = new short[1]; v.CopyTo(a); Assert.Equal((short)-2, a[0], "short"); a[0] = 6; v.CopyFrom(a); }
        using (PyBuffer v = open("q")) { var a = new long[1]; v.CopyTo(a); Assert.Equal(-3L, a[0], "long"); a[0] = 7; v.CopyFrom(a); }
        using (PyBuffer v = open("i")) { var a = new int[1]; v.CopyTo(a); Assert.Equal(-4, a[0], "int"); a[0] = 8; v.CopyFrom(a); }
        using (PyBuffer v = open("f")) { var a = new float[1]; v.CopyTo(a); Assert.Equal(0.25f, a[0], "float"); a[0] = 9; v.CopyFrom(a); }
        using (PyBuffer v = open("?")) { var a = new bool[1]; v.CopyTo(a); Assert.Equal(true, a[0], "bool"); a[0] = false; v.CopyFrom(a); }
        using (PyBuffer v = open("c")) { var a = new char[1]; v.CopyTo(a); Assert.Equal('\u263A', a[0], "char"); a[0] = 'A'; v.CopyFrom(a); }
        Assert.Equal("[1, 2, 3, 4, 5, 6, 7, 8, 9.0, False, 65]",
            PyEngine.Eval<string>("repr([views[k][0] for k in 'QIHbBhqif?c'])"), "every type written back");
        Assert.Throws<ArgumentException>(null, () => { using (PyBuffer v = open("Q")) v.CopyTo(new decimal[1]); }, "decimal is no element type");
        // Shared without a copy: unsigned types and bool too.
        using (PyObject show = PyEngine.Eval<PyObject>("lambda m: f'{m.format} {m.tolist()}'"))
        {
            using (PyObject m = PyBuffer.Share(new ulong[] { ulong.MaxValue })) Assert.Equal("Q [18446744073709551615]", show.Call<string>(m), "ulong[]");
            using (PyObject m = PyBuffer.Share(new uint[] { 7 })) Assert.Equal("I [7]", show.Call<string>(m), "uint[]");
            using (PyObject m = PyBuffer.Share(new ushort[] { 8 })) Assert.Equal("H [8]", show.Call<string>(m), "ushort[]");
            using (PyObject m = PyBuffer.Share(new sbyte[] { -9 })) Assert.Equal("b [-9]", show.Call<string>(m), "sbyte[]");
            using (PyObject m = PyBuffer.Share(new bool[] { true, false })) Assert.Equal("? [True, False]", show.Call<string>(m), "bool[]");
        }
        PyEngine.Shutdown(Ten);
    }
}
