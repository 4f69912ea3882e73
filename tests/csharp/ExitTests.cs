// A process that used pybridge exits promptly once Main returns, on every runtime, after every
// kind of host callback: the runner (Runner.cs) prints when Main returns and
// scripts/test-csharp.sh fails a test whose process outlives that by more than 2 s. These tests
// make host callbacks run on threads pybridge made (an interpreter's keeper, a pool's keepers,
// the coroutine loop), which a runtime attaches when they call into it.
using System;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    static readonly TimeSpan ExitTen = TimeSpan.FromSeconds(10);

    /// A shared array and a host object held by a sub-interpreter's Python: its end releases them
    /// on the interpreter's keeper thread, which calls the release callbacks in .NET.
    [Test]
    public static void ExitAfterASubInterpretersEndReleasedHostMemoryAndObjects()
    {
        PyEngine.Initialize();
        int released = 0;
        bool own = OwnGilSupported();
        foreach (bool shared in own ? new[] { true, false } : new[] { true })
        {
            using (PyInterpreter interp = PyInterpreter.Create(sharedGil: shared))
            {
                using (interp.Enter())
                using (PyObject main = PyEngine.Import("__main__"))
                using (PyObject view = PyBuffer.Share(new double[4], true, () => Interlocked.Increment(ref released)))
                using (PyObject host = PyObject.FromHostObject(new object()))
                {
                    main.SetAttr("v", view);
                    main.SetAttr("h", host);
                }
                interp.Destroy(ExitTen);
            }
        }
        PyEngine.Shutdown(ExitTen);
        Assert.Equal(own ? 2 : 1, Volatile.Read(ref released), "every release callback ran");
    }

    /// The same through a pool's members, which end together on their keepers.
    [Test]
    public static void ExitAfterAPoolsEndReleasedHostMemory()
    {
        PyEngine.Initialize();
        if (!OwnGilSupported())
        {
            Assert.Throws<NotSupportedException>("PYB_E_UNSUPPORTED", () => new PyInterpreterPool(2), "pools before 3.12");
            return;
        }
        int released = 0;
        using (PyInterpreterPool pool = new PyInterpreterPool(2))
        {
            using (PyInterpreterLease lease = pool.Borrow(ExitTen))
            using (PyObject main = PyEngine.Import("__main__"))
            using (PyObject view = PyBuffer.Share(new long[8], true, () => Interlocked.Increment(ref released)))
            {
                main.SetAttr("v", view);
            }
            pool.Destroy(ExitTen);
        }
        PyEngine.Shutdown(ExitTen);
        Assert.Equal(1, Volatile.Read(ref released), "the release callback ran once");
    }
}
