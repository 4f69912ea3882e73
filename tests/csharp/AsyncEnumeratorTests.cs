// Python async generators consumed from C# (bindings/csharp/AsyncEnumerator.cs).
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using PyBridge;

public static partial class Tests
{
    const string AsyncGenerators =
        "import asyncio\n" +
        "closed = []\n" +
        "async def count(n):\n" +
        "    try:\n" +
        "        for i in range(n):\n" +
        "            await asyncio.sleep(0)\n" +
        "            yield i * 10\n" +
        "    finally:\n" +
        "        closed.append(n)\n" +
        "async def fails_after(n):\n" +
        "    for i in range(n):\n" +
        "        yield i\n" +
        "    raise ValueError('generator failed after %d' % n)\n" +
        "started = asyncio.Event()\n" +
        "async def stuck():\n" +
        "    yield 1\n" +
        "    started.set()\n" +
        "    await asyncio.sleep(3600)\n" +
        "    yield 2\n";

    static List<T> Drain<T>(PyAsyncEnumerator<T> items)
    {
        var seen = new List<T>();
        while (items.MoveNextAsync().Result) seen.Add(items.Current);
        return seen;
    }

    [Test]
    public static void AsyncGeneratorsAreConsumedFromCSharp()
    {
        PyEngine.Initialize();
        PyEngine.Run(AsyncGenerators);
        using (PyObject count = PyEngine.Eval<PyObject>("count"))
        using (PyObject fails = PyEngine.Eval<PyObject>("fails_after"))
        using (PyObject stuck = PyEngine.Eval<PyObject>("stuck"))
        {
            // Every item, in order, then false for good.
            using (PyObject generator = count.Call<PyObject>(4L))
            using (PyAsyncEnumerator<long> items = generator.GetAsyncEnumerator<long>())
            {
                Assert.Equal("0,10,20,30", string.Join(",", Drain(items)), "the items in order");
                Assert.Equal(false, items.MoveNextAsync().Result, "exhausted stays exhausted");
                Assert.Equal(4L, PyEngine.Eval<long>("closed[-1]"), "its finally ran at the end");
            }

            // DisposeAsync after one item closes the generator: its finally runs on the loop.
            using (PyObject generator = count.Call<PyObject>(100L))
            {
                PyAsyncEnumerator<long> items = generator.GetAsyncEnumerator<long>();
                Assert.Equal(true, items.MoveNextAsync().Result, "first item");
                Assert.Equal(0L, items.Current, "first item's value");
                items.DisposeAsync().Wait();
                Assert.Equal(100L, PyEngine.Eval<long>("closed[-1]"), "aclose ran its finally");
                Assert.Throws<ObjectDisposedException>(null, () => items.MoveNextAsync(), "after DisposeAsync");
            }

            // The generator's exception fails the step, with its type and message.
            using (PyObject generator = fails.Call<PyObject>(2L))
            using (PyAsyncEnumerator<long> items = generator.GetAsyncEnumerator<long>())
            {
                Assert.Equal(true, items.MoveNextAsync().Result, "item 0");
                Assert.Equal(true, items.MoveNextAsync().Result, "item 1");
                AggregateException failed = Assert.Throws<AggregateException>(null, () => items.MoveNextAsync().Wait(), "the raise");
                var python = failed.InnerException as PythonException;
                Assert.True(python != null && python.Is("ValueError"), "a PythonException of ValueError: " + failed.InnerException);
                Assert.Contains("generator failed after 2", python.Message, "its message");
            }

            // One step at a time; a token cancels the pending step.
            using (PyObject generator = stuck.Call<PyObject>())
            using (PyAsyncEnumerator<long> items = generator.GetAsyncEnumerator<long>())
            using (var cancel = new CancellationTokenSource())
            {
                Assert.Equal(true, items.MoveNextAsync().Result, "the first item");
                Task<bool> pending = items.MoveNextAsync(cancel.Token);
                Assert.Throws<InvalidOperationException>(null, () => items.MoveNextAsync(), "a second step while one is pending");
                using (PyObject started = PyEngine.Eval<PyObject>("started"))
                    PyEngine.RunAsync<bool>(started.CallMethod<PyObject>("wait")).Wait();
                cancel.Cancel();
                AggregateException canceled = Assert.Throws<AggregateException>(null, () => pending.Wait(), "the cancelled step");
                Assert.True(canceled.InnerException is TaskCanceledException, "TaskCanceledException: " + canceled.InnerException);
            }

            // Not async-iterable: Python's TypeError.
            using (PyObject number = PyEngine.Eval<PyObject>("42"))
            {
                var refused = Assert.Throws<PythonException>(null, () => number.GetAsyncEnumerator<long>(), "an int");
                Assert.True(refused.Is("TypeError"), "TypeError: " + refused.PythonTypeName);
            }
        }
    }
}
