// Host functions Python awaits (bindings/csharp/AsyncHostFunctions.cs): awaited from pybridge's
// event loop (CallAsync), from asyncio.run in a Python thread and on the host's own thread;
// results converted as typed delegates' are; exceptions as HostError with the .NET exception
// kept; cancellation in Python (or through CallAsync's token) reaching the delegate's token; and
// the engine's end cancelling what still runs.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PyBridge;

public static partial class Tests
{
    /// <summary>Python awaiting in threads of its own, each on its own event loop (asyncio.run);
    /// <c>join(name)</c> waits for one (30 s at most) and gives its outcome's repr.</summary>
    const string AwaitersInThreads =
        "import asyncio, threading, host\n" +
        "outcomes = {}\n" +
        "threads = {}\n" +
        "def await_in_thread(name, make):\n" +
        "    async def main():\n" +
        "        try:\n" +
        "            outcomes[name] = ('ok', await make())\n" +
        "        except asyncio.CancelledError:\n" +
        "            outcomes[name] = ('cancelled', None)\n" +
        "        except Exception as error:\n" +
        "            outcomes[name] = (type(error).__qualname__, str(error))\n" +
        "    thread = threads[name] = threading.Thread(target=lambda: asyncio.run(main()), name=name)\n" +
        "    thread.start()\n" +
        "def join(name):\n" +
        "    threads[name].join(30)\n" +
        "    assert not threads[name].is_alive(), name + ' still runs after 30 s'\n" +
        "    return repr(outcomes.get(name))\n";

    /// <summary>The next call a delegate announced in <paramref name="calls"/>, within 30 s.</summary>
    static T NextCall<T>(BlockingCollection<T> calls, string what)
    {
        T call;
        if (!calls.TryTake(out call, TimeSpan.FromSeconds(30)))
            throw new AssertionException(what + ": the delegate was not called within 30 s");
        return call;
    }

    static void WaitFor(ManualResetEventSlim e, string what)
    {
        if (!e.Wait(TimeSpan.FromSeconds(30))) throw new AssertionException(what + ": not within 30 s");
    }

    [Test]
    public static void PythonAwaitsAsyncHostFunctions()
    {
        PyEngine.Initialize();
        // Each call waits for the test to complete it.
        var adds = new BlockingCollection<TaskCompletionSource<long>>();
        PyEngine.RegisterAsyncFunction<long, long, long>("host", "add_later", async (a, b, token) =>
        {
            var gate = new TaskCompletionSource<long>();
            adds.Add(gate);
            return a + b + await gate.Task;
        });
        var texts = new BlockingCollection<TaskCompletionSource<string>>();
        PyEngine.RegisterAsyncFunction<string, string>("host", "upper_later", async text =>
        {
            var gate = new TaskCompletionSource<string>();
            texts.Add(gate);
            return text.ToUpperInvariant() + await gate.Task;
        });
        PyEngine.RegisterAsyncFunction<long, List<long>>("host", "squares", async n =>
        {
            await Task.Yield();
            return Enumerable.Range(0, (int)n).Select(i => (long)i * i).ToList();
        });
        PyEngine.RegisterAsyncFunction<Dictionary<string, long>>("host", "counts", () =>
            Task.FromResult(new Dictionary<string, long> { { "apples", 3 } }));
        var logged = new ConcurrentQueue<string>();
        PyEngine.RegisterAsyncAction<string>("host", "log_later", async line =>
        {
            await Task.Yield();
            logged.Enqueue(line);
        });
        PyEngine.Run(AwaitersInThreads +
            "async def twice(a, b):\n    return 2 * await host.add_later(a, b=b)\n" +
            "async def call(name, *args):\n    return await getattr(host, name)(*args)\n");

        // Through pybridge's own event loop: the coroutine waits in the promise until C# completes it.
        using (PyObject twice = PyEngine.Eval<PyObject>("twice"))
        using (PyObject call = PyEngine.Eval<PyObject>("call"))
        {
            Task<long> doubled = twice.CallAsync<long>(1L, 2L);
            TaskCompletionSource<long> gate = NextCall(adds, "add_later");
            Assert.Equal(false, doubled.IsCompleted, "the coroutine waits for the .NET task");
            gate.SetResult(10);
            Assert.True(doubled.Wait(TimeSpan.FromSeconds(30)), "completed within 30 s");
            Assert.Equal(26L, doubled.Result, "2 * (1 + 2 + 10), the keyword b bound by name");

            using (PyList squares = call.CallAsync<PyList>("squares", 4L).Result)
                Assert.Equal("0,1,4,9", string.Join(",", squares.ToList<long>()), "a List<long> result is a Python list");
            using (PyDict counts = call.CallAsync<PyDict>("counts").Result)
                Assert.Equal(3L, counts.ToDictionary<string, long>()["apples"], "a Dictionary result is a dict");
            Assert.Equal(null, call.CallAsync<object>("log_later", "one").Result, "an action gives None");
            string first;
            Assert.True(logged.TryDequeue(out first) && first == "one", "the action ran before the await returned");
        }

        // From asyncio.run in Python threads: each on its own loop, completed from this thread.
        PyEngine.Run("await_in_thread('upper', lambda: host.upper_later('abc'))");
        NextCall(texts, "upper_later").SetResult("!");
        Assert.Equal("('ok', 'ABC!')", PyEngine.Eval<string>("join('upper')"), "awaited in a Python thread");
        PyEngine.Run("await_in_thread('squares', lambda: host.squares(3))");
        Assert.Equal("('ok', [0, 1, 4])", PyEngine.Eval<string>("join('squares')"), "a collection in a Python thread");
        // Two coroutines on two loops await one call.
        PyEngine.Run("shared = host.add_later(20, 1)\n" +
                     "async def get_shared():\n    return await shared\n" +
                     "await_in_thread('s1', get_shared)\nawait_in_thread('s2', get_shared)\n");
        NextCall(adds, "shared add_later").SetResult(0);
        Assert.Equal("('ok', 21)", PyEngine.Eval<string>("join('s1')"), "first awaiter");
        Assert.Equal("('ok', 21)", PyEngine.Eval<string>("join('s2')"), "second awaiter");

        // Arguments bind at the call, as a typed delegate's: the token is no parameter of Python's.
        var wrong = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("host.add_later(1)"), "a missing argument");
        Assert.True(wrong.Is("TypeError"), "TypeError: " + wrong.PythonTypeName);
        Assert.Equal("host.add_later() takes 2 argument(s); 'b' is missing", wrong.PythonMessage, "its message");
        Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("host.add_later(1, token=2)"), "the token is not a keyword");
        Assert.Equal(0, adds.Count, "no delegate ran for wrong arguments");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void AsyncHostFunctionExceptionsReachPython()
    {
        PyEngine.Initialize();
        Exception thrown = null;
        PyEngine.RegisterAsyncFunction<string, long>("host", "fail_later", async (what, token) =>
        {
            await Task.Yield();
            thrown = new InvalidOperationException("no " + what);
            throw thrown;
        });
        PyEngine.RegisterAsyncFunction<long>("host", "fail_now", token =>
        {
            throw new ArgumentOutOfRangeException("n", "thrown before any task");
        });
        PyEngine.RegisterAsyncFunction<object>("host", "null_task", () => null);
        PyEngine.Run(AwaitersInThreads +
            "async def fail(what):\n    return await host.fail_later(what)\n" +
            "async def caught(make):\n" +
            "    try:\n        await make()\n    except Exception as error:\n" +
            "        return type(error).__qualname__ + ': ' + str(error)\n");

        // Through CallAsync: the PythonException's InnerException is the very .NET exception.
        using (PyObject fail = PyEngine.Eval<PyObject>("fail"))
        {
            var error = Unwrap(fail.CallAsync<long>("account"), "fail_later") as PythonException;
            Assert.True(error != null, "a PythonException");
            Assert.Equal("pybridge.HostError", error.PythonTypeName, "its Python type");
            Assert.Equal("System.InvalidOperationException: no account", error.PythonMessage, "its message");
            Assert.True(error.PythonTraceback.Contains("in fail"), "the coroutine's traceback: " + error.PythonTraceback);
            Assert.True(thrown != null && ReferenceEquals(thrown, error.InnerException), "the very exception: " + error.InnerException);
        }
        // asyncio.run on this thread: the HostError reaches C# through Run, with the same identity.
        var viaRun = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("asyncio.run(fail('disk'))"), "asyncio.run");
        Assert.Equal("System.InvalidOperationException: no disk", viaRun.PythonMessage, "its message");
        Assert.True(ReferenceEquals(thrown, viaRun.InnerException), "the very exception through Run: " + viaRun.InnerException);
        // In a Python thread, and on this thread's own asyncio.run: HostError at the await; a
        // delegate that throws instead of returning a task fails the await, not the call.
        PyEngine.Run("await_in_thread('t', lambda: host.fail_later('file'))");
        Assert.Equal("('HostError', 'System.InvalidOperationException: no file')", PyEngine.Eval<string>("join('t')"), "in a Python thread");
        PyEngine.Run("made = host.fail_now()");
        Assert.Contains("HostError: System.ArgumentOutOfRangeException: thrown before any task",
            PyEngine.Eval<string>("asyncio.run(caught(lambda: made))"), "thrown before the task");
        Assert.Equal("HostError: System.InvalidOperationException: the async host function returned a null Task",
            PyEngine.Eval<string>("asyncio.run(caught(host.null_task))"), "a null task");
        PyEngine.Shutdown(Ten);
    }

    [Test]
    public static void CancellingPythonCancelsTheAsyncHostFunctionsToken()
    {
        PyEngine.Initialize();
        var started = new BlockingCollection<ManualResetEventSlim>();
        var ended = new BlockingCollection<TaskStatus>();
        PyEngine.RegisterAsyncFunction<long>("host", "wait_forever", token =>
        {
            var cancelled = new ManualResetEventSlim();
            token.Register(cancelled.Set);
            started.Add(cancelled);
            Task<long> waiting = Task.Delay(Timeout.Infinite, token).ContinueWith(t => 0L, TaskContinuationOptions.OnlyOnRanToCompletion);
            waiting.ContinueWith(t => ended.Add(t.Status));
            return waiting;
        });
        PyEngine.Run(AwaitersInThreads +
            "async def wait():\n    return await host.wait_forever()\n" +
            "async def cancel_in_python():\n" +
            "    task = asyncio.ensure_future(host.wait_forever())\n" +
            "    await asyncio.sleep(0)  # the task runs first (call_soon is FIFO): it awaits the promise\n" +
            "    task.cancel()\n" +
            "    try:\n        await task\n    except asyncio.CancelledError:\n        return 'cancelled'\n");

        // A CancellationToken cancels the Python task, whose cancellation cancels the delegate's token.
        using (PyObject wait = PyEngine.Eval<PyObject>("wait"))
        using (var cancel = new CancellationTokenSource())
        {
            Task<long> waiting = wait.CallAsync<long>(cancel.Token);
            ManualResetEventSlim tokenCancelled = NextCall(started, "wait_forever through CallAsync");
            Assert.Equal(false, tokenCancelled.IsSet, "the token is not cancelled yet");
            cancel.Cancel();
            Assert.True(Unwrap(waiting, "cancelled") is TaskCanceledException, "the C# task is cancelled");
            WaitFor(tokenCancelled, "the delegate's token cancelled");
            Assert.Equal(TaskStatus.Canceled, NextCall(ended, "the delegate's task ended"), "the delegate's task");
        }
        // Cancelled in Python, on a loop of a Python thread.
        PyEngine.Run("await_in_thread('c', cancel_in_python)");
        WaitFor(NextCall(started, "wait_forever in a Python thread"), "the token cancelled from Python");
        Assert.Equal("('ok', 'cancelled')", PyEngine.Eval<string>("join('c')"), "the Python task was cancelled");
        Assert.Equal(TaskStatus.Canceled, NextCall(ended, "the second task ended"), "the second delegate's task");
        PyEngine.Shutdown(Ten);
    }

    /// <summary>The engine's end cancels the token of every call still running (awaited or
    /// not), fails the C# task awaiting one, does not wait for the .NET tasks, and leaves no
    /// thread behind (the runner fails a process that outlives Main by 2 s; Mono's exit waits for
    /// every thread that entered .NET). A new engine life takes async calls again.</summary>
    [Test]
    public static void EngineEndCancelsPendingAsyncHostCalls()
    {
        PyEngine.Initialize();
        var started = new BlockingCollection<ManualResetEventSlim>();
        Func<CancellationToken, Task<long>> waitForever = token =>
        {
            var cancelled = new ManualResetEventSlim();
            token.Register(cancelled.Set);
            started.Add(cancelled);
            return Task.Delay(Timeout.Infinite, token).ContinueWith(t => 0L, TaskContinuationOptions.OnlyOnRanToCompletion);
        };
        PyEngine.RegisterAsyncFunction("host", "wait_forever", waitForever);
        PyEngine.Run("import host\nasync def wait():\n    return await host.wait_forever()\n");
        ManualResetEventSlim awaited, notAwaited;
        Task<long> pending;
        using (PyObject wait = PyEngine.Eval<PyObject>("wait"))
            pending = wait.CallAsync<long>();
        awaited = NextCall(started, "awaited call");
        PyEngine.Run("kept = host.wait_forever()");
        notAwaited = NextCall(started, "call never awaited");
        Assert.Within(TimeSpan.FromSeconds(20), "shutdown", () => PyEngine.Shutdown(Ten));
        WaitFor(awaited, "the awaited call's token cancelled");
        WaitFor(notAwaited, "the unawaited call's token cancelled");
        Exception failed = Unwrap(pending, "the C# task awaiting it");
        Assert.True(failed is PyEngineShuttingDownException, "PyEngineShuttingDownException: " + failed);

        PyEngine.Initialize();
        PyEngine.RegisterAsyncFunction<long, long>("host", "inc", n => Task.Run(() => n + 1));
        PyEngine.Run("import host\nasync def inc(n):\n    return await host.inc(n)\n");
        using (PyObject inc = PyEngine.Eval<PyObject>("inc"))
            Assert.Equal(42L, inc.CallAsync<long>(41L).Result, "the next engine life");
        PyEngine.Shutdown(Ten);
    }
}
