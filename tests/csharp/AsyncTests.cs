// Awaiting Python from C# (bindings/csharp/Async.cs): results, exceptions, cancellation through a
// CancellationToken, 1,000 concurrent asyncio.sleep(0.1), and shutdown with pending tasks.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using PyBridge;

public static partial class Tests
{
    const string AsyncSetup =
        "import asyncio, threading\n" +
        "forever_started = threading.Event()\n" +
        "async def add(a, b):\n    await asyncio.sleep(0.01)\n    return a + b\n" +
        "async def fail(key):\n    await asyncio.sleep(0)\n    raise KeyError(key)\n" +
        "async def nap(i):\n    await asyncio.sleep(0.1)\n    return i\n" +
        "async def forever():\n    forever_started.set()\n    await asyncio.sleep(3600)\n";

    /// <summary>Waits until a forever() task runs on the event loop (Event.wait gives the GIL
    /// away), then makes ready for the next one.</summary>
    static void WaitForForeverToStart()
    {
        PyEngine.Run("assert forever_started.wait(30), 'forever() did not start within 30 s'\n" +
                     "forever_started.clear()\n");
    }

    static Exception Unwrap(Task task, string what)
    {
        try { task.Wait(TimeSpan.FromSeconds(30)); }
        catch (AggregateException e) { return e.InnerException; }
        throw new AssertionException(what + ": the task did not fail");
    }

    [Test]
    public static void AwaitingPythonCoroutines()
    {
        PyEngine.Initialize();
        PyEngine.Run(AsyncSetup);
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
        using (PyObject fail = PyEngine.Eval<PyObject>("fail"))
        using (PyObject nap = PyEngine.Eval<PyObject>("nap"))
        using (PyObject forever = PyEngine.Eval<PyObject>("forever"))
        {
            Assert.Equal(5L, add.CallAsync<long>(2L, 3L).Result, "an async def's result");
            Assert.Equal("ab", add.CallAsync<string>("a", "b").Result, "converted as Call<T> converts");
            using (PyObject coroutine = add.Call<PyObject>(40L, 2L))
                Assert.Equal(42L, PyEngine.RunAsync<long>(coroutine).Result, "RunAsync of a coroutine object");

            var error = Unwrap(fail.CallAsync<long>("missing"), "fail()") as PythonException;
            Assert.True(error != null, "a PythonException");
            Assert.Equal("KeyError", error.PythonTypeName, "its Python type");
            Assert.True(error.PythonTraceback.Contains("in fail"), "its traceback: " + error.PythonTraceback);

            // Continuations run off the event loop's thread, without its GIL.
            bool heldInContinuation = true;
            add.CallAsync<long>(1L, 1L).ContinueWith(t => heldInContinuation = PyEngine.IsGilHeld).Wait();
            Assert.Equal(false, heldInContinuation, "a continuation holds no GIL");

            // 1,000 concurrent sleeps of 0.1 s.
            nap.CallAsync<long>(-1L).Wait(); // the loop's thread starts on first use
            Stopwatch watch = Stopwatch.StartNew();
            Task<long>[] naps = Enumerable.Range(0, 1000).Select(i => nap.CallAsync<long>((long)i)).ToArray();
            Assert.True(Task.WaitAll(naps, TimeSpan.FromSeconds(10)), "1,000 naps within 10 s");
            watch.Stop();
            Assert.Equal(499500L, naps.Sum(t => t.Result), "every result");
            Console.WriteLine("  1,000 concurrent asyncio.sleep(0.1) awaited from C# in {0:F0} ms", watch.Elapsed.TotalMilliseconds);
            // Concurrent: 100 s one after another; the bound leaves room for a busy machine.
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), "well under 5 s: " + watch.Elapsed);

            // A CancellationToken cancels the Python task.
            using (var cancel = new CancellationTokenSource())
            {
                Task<long> waiting = forever.CallAsync<long>(cancel.Token);
                WaitForForeverToStart();
                Assert.Equal(false, waiting.IsCompleted, "still waiting");
                cancel.Cancel();
                Assert.True(Unwrap(waiting, "cancelled") is TaskCanceledException, "TaskCanceledException");
                Assert.True(waiting.IsCanceled, "IsCanceled");
                Task<long> never = forever.CallAsync<long>(cancel.Token);
                Assert.True(never.IsCanceled, "an already cancelled token submits nothing");
            }
            using (PyObject number = PyEngine.Eval<PyObject>("object()"))
                Assert.Throws<InvalidCastException>("PYB_E_WRONG_TYPE", () => PyEngine.RunAsync<long>(number), "not awaitable");

            // Shutdown fails what is still pending, with a clear exception, and does not hang.
            Task<long> pending = forever.CallAsync<long>();
            WaitForForeverToStart();
            TimeSpan took = Assert.Within(TimeSpan.FromSeconds(20), "shutdown", () => PyEngine.Shutdown(Ten));
            Exception ended = Unwrap(pending, "pending at shutdown");
            Assert.True(ended is PyEngineShuttingDownException, "PyEngineShuttingDownException: " + ended);
            Console.WriteLine("  shutdown with a pending coroutine took {0:F0} ms", took.TotalMilliseconds);
        }
    }
}

public static partial class Tests
{
    /// <summary>A process that awaited Python exits with the engine running, as applications do:
    /// Mono then waited for ever for the event loop's thread (which entered .NET to complete a
    /// task) until the binding shut the engine down on ProcessExit. The runner's deadline fails a
    /// hang; the test reports its own PASS because it ends the process itself.</summary>
    [Test]
    public static void AProcessThatAwaitedPythonExitsWithoutShutdown()
    {
        PyEngine.Initialize();
        PyEngine.Run(AsyncSetup);
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
            Assert.Equal(3L, add.CallAsync<long>(1L, 2L).Result, "awaited");
        Console.WriteLine("PASS AProcessThatAwaitedPythonExitsWithoutShutdown (then Environment.Exit with the engine running)");
        Console.Out.Flush();
        Environment.Exit(0);
    }
}

public static partial class Tests
{
    /// <summary>A cancelled token calls nothing (no coroutine made and dropped, so Python prints no
    /// "never awaited" warning); a cancelled task carries the caller's token; keywords reach the
    /// async def.</summary>
    [Test]
    public static void CallAsyncHonoursTheTokenAndTakesKeywords()
    {
        PyEngine.Initialize();
        PyEngine.Run(AsyncSetup +
            "import gc, warnings\n" +
            "calls = 0\n" +
            "caught = []\n" +
            "warnings.simplefilter('always')\n" +
            "warnings.showwarning = lambda message, *rest, **kw: caught.append(str(message))\n" +
            "async def scaled(a, *, by=1):\n    await asyncio.sleep(0)\n    return a * by\n" +
            "def counted(*args, **kwargs):\n    global calls\n    calls += 1\n    return scaled(*args, **kwargs)\n");
        using (PyObject counted = PyEngine.Eval<PyObject>("counted"))
        using (PyObject forever = PyEngine.Eval<PyObject>("forever"))
        using (var cancel = new CancellationTokenSource())
        {
            cancel.Cancel();
            Task<long> never = counted.CallAsync<long>(cancel.Token, 2L);
            Assert.True(never.IsCanceled, "an already cancelled token: the task is cancelled");
            var early = Unwrap(never, "already cancelled") as TaskCanceledException;
            Assert.True(early != null && early.CancellationToken == cancel.Token, "it carries the caller's token: " + early);
            Task<long> neverKw = counted.CallAsync<long>(new object[] { 2L }, new Dictionary<string, object> { { "by", 3L } }, cancel.Token);
            Assert.True(neverKw.IsCanceled, "the keyword overload too");
            PyEngine.Run("gc.collect()");
            Assert.Equal(0L, PyEngine.Eval<long>("calls"), "the function was never called");
            Assert.Equal(0L, PyEngine.Eval<long>("len(caught)"), "no coroutine was dropped unawaited");

            Assert.Equal(21L, counted.CallAsync<long>(new object[] { 7L }, new Dictionary<string, object> { { "by", 3L } }).Result,
                "keyword arguments reach the async def");
            Assert.Equal(1L, PyEngine.Eval<long>("calls"), "one call");

            using (var later = new CancellationTokenSource())
            {
                Task<long> waiting = forever.CallAsync<long>(later.Token);
                WaitForForeverToStart();
                later.Cancel();
                var cancelled = Unwrap(waiting, "cancelled while running") as TaskCanceledException;
                Assert.True(cancelled != null && cancelled.CancellationToken == later.Token, "a later cancellation carries the token: " + cancelled);
            }
        }
        PyEngine.Shutdown(Ten);
    }
}

public static partial class Tests
{
    /// <summary>A blocking wait for a pybridge task on a thread that holds the GIL (inside
    /// PyEngine.Gil(), or in a host function, whose Python thread holds it: also the event loop's
    /// own thread) fails the task at once with PyWouldDeadlockException: the coroutine needs the
    /// GIL to finish, so the wait hung for ever. Waits that the BCL does not route through the
    /// task's scheduler (a timeout, a token) are not covered; without the GIL, waits work.</summary>
    [Test]
    public static void WaitingForAPythonTaskWhileHoldingTheGilFailsAtOnce()
    {
        PyEngine.Initialize();
        PyEngine.Run(AsyncSetup);
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
        using (PyObject forever = PyEngine.Eval<PyObject>("forever"))
        {
            Func<Exception, string, PyWouldDeadlockException> deadlock = (e, what) =>
            {
                var inner = (e is AggregateException ? e.InnerException : e) as PyWouldDeadlockException;
                Assert.True(inner != null, what + ": PyWouldDeadlockException, got " + e);
                Assert.Equal("PYB_E_WOULD_DEADLOCK", inner.Data[PyStatus.DataKey] as string, what + ": status");
                return inner;
            };
            Task<long> waited = forever.CallAsync<long>();
            Task<long> resulted = forever.CallAsync<long>();
            Task<long> gotten = forever.CallAsync<long>();
            Task<long> all = forever.CallAsync<long>();
            Assert.Within(TimeSpan.FromSeconds(20), "waits inside a GIL scope", () =>
            {
                using (PyEngine.Gil())
                {
                    deadlock(Assert.Throws<AggregateException>(null, () => waited.Wait(), "Wait()"), "Wait()");
                    deadlock(Assert.Throws<AggregateException>(null, () => GC.KeepAlive(resulted.Result), "Result"), "Result");
                    Assert.Contains("holds the GIL", deadlock(Assert.Throws<PyWouldDeadlockException>("PYB_E_WOULD_DEADLOCK",
                        () => gotten.GetAwaiter().GetResult(), "GetAwaiter().GetResult()"), "GetResult").Message, "its message");
                    deadlock(Assert.Throws<AggregateException>(null, () => Task.WaitAll(all), "Task.WaitAll"), "Task.WaitAll");
                }
            });
            Assert.True(waited.IsFaulted && resulted.IsFaulted && gotten.IsFaulted && all.IsFaulted, "the waited tasks failed");

            // A completed task is no deadlock; nor is a wait that gives the GIL away first.
            Task<long> done = add.CallAsync<long>(1L, 2L);
            Assert.Equal(3L, done.Result, "waited without the GIL");
            Assert.Within(TimeSpan.FromSeconds(20), "waits that cannot deadlock", () =>
            {
                using (PyEngine.Gil())
                {
                    Assert.Equal(3L, done.Result, "a completed task inside a GIL scope");
                    using (PyEngine.AllowThreads())
                        Assert.Equal(5L, add.CallAsync<long>(2L, 3L).Result, "inside AllowThreads");
                }
            });

            // A host function waiting for a task: from a Python thread, and from a coroutine on the
            // event loop, which would wait for itself.
            PyEngine.RegisterFunction<long>("host", "sync_add", () => add.CallAsync<long>(20L, 22L).Result);
            PyEngine.Run("import host\nasync def calls_sync_add():\n    return host.sync_add()\n");
            Assert.Within(TimeSpan.FromSeconds(20), "waits in host functions", () =>
            {
                var fromThread = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval<long>("host.sync_add()"), "from a Python thread");
                deadlock(fromThread.InnerException, "host function on a Python thread");
                using (PyObject callsSyncAdd = PyEngine.Eval<PyObject>("calls_sync_add"))
                {
                    var fromLoop = Unwrap(callsSyncAdd.CallAsync<long>(), "host function on the loop") as PythonException;
                    Assert.True(fromLoop != null, "a PythonException from the loop");
                    deadlock(fromLoop.InnerException, "host function on the event loop's thread");
                }
            });

            // Python's own cancellation of the coroutine still ends the task Canceled.
            PyEngine.Run("async def cancels_itself():\n    asyncio.current_task().cancel()\n    await asyncio.sleep(0)\n");
            using (PyObject cancelsItself = PyEngine.Eval<PyObject>("cancels_itself"))
            {
                Task<long> cancelled = cancelsItself.CallAsync<long>();
                Assert.True(Unwrap(cancelled, "cancelled in Python") is TaskCanceledException, "TaskCanceledException");
                Assert.Equal(TaskStatus.Canceled, cancelled.Status, "its status");
            }

            // Not covered: a timed wait is not routed through the task's scheduler, so it waits
            // out its timeout (the coroutine cannot progress meanwhile).
            Task<long> timed = add.CallAsync<long>(1L, 1L);
            using (PyEngine.Gil())
                Assert.Equal(false, timed.Wait(TimeSpan.FromMilliseconds(200)), "Wait(timeout) inside a GIL scope times out");
            Assert.Equal(2L, timed.Result, "and the task completes once the GIL is free");
        }
        PyEngine.Shutdown(Ten);
    }
}

public static partial class Tests
{
    /// <summary>PyEngineOptions.ShutdownOnProcessExit (true by default) decides whether awaiting
    /// Python registers the ProcessExit handler (AProcessThatAwaitedPythonExitsWithoutShutdown shows
    /// what it is for); with it false, the application shuts the engine down itself.</summary>
    [Test]
    public static void TheProcessExitHookFollowsTheOption()
    {
        Assert.Equal(true, new PyEngineOptions().ShutdownOnProcessExit, "on by default");
        PyEngine.Initialize(new PyEngineOptions { ShutdownOnProcessExit = false });
        PyEngine.Run(AsyncSetup);
        using (PyObject add = PyEngine.Eval<PyObject>("add"))
            Assert.Equal(3L, add.CallAsync<long>(1L, 2L).Result, "awaited");
        FieldInfo hooked = typeof(PyEngine).Assembly.GetType("PyBridge.PendingTask", true)
            .GetField("processExitHooked", BindingFlags.NonPublic | BindingFlags.Static);
        Assert.Equal(0, (int)hooked.GetValue(null), "no ProcessExit handler after awaiting Python");
        PyEngine.Shutdown(Ten);
    }
}
