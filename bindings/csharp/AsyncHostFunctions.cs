// Host functions Python awaits (pyb_promise_*): a Task-returning delegate registered as a host
// function gives Python an awaitable promise; the task's continuation completes the promise
// from a thread-pool thread, and cancelling the last Python coroutine awaiting it (or the
// engine's end) cancels the CancellationToken the delegate was given.
using System;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using PyBridge.Interop;

namespace PyBridge
{
    public static partial class PyEngine
    {
        /// <summary>Registers <c>module.name</c> as a host function Python awaits:
        /// <c>await host.fetch(url)</c>. Arguments bind and convert as for
        /// <see cref="RegisterFunction{T1, TResult}(string, string, Func{T1, TResult}, bool)"/>
        /// (wrong ones raise <c>TypeError</c> at the call, keywords are named as the delegate's
        /// parameters but the token). The delegate runs on the calling Python thread with the GIL
        /// held up to its first <c>await</c> (start long synchronous work with <c>Task.Run</c>);
        /// Python gets an awaitable at once, which completes on the awaiting coroutine's own event
        /// loop when the task ends: its result converted as a typed delegate's is, or
        /// <c>pybridge.HostError("System.XxxException: message")</c> for its exception (also one
        /// thrown before the task was returned; a cancelled task gives
        /// <c>System.Threading.Tasks.TaskCanceledException</c>). When the last Python coroutine
        /// awaiting it is cancelled, and at the engine's end for a call still running, the
        /// token is cancelled (from a thread-pool thread); the task's outcome is then dropped.
        /// Main interpreter only, as pybridge's event loop is.</summary>
        public static void RegisterAsyncFunction<TResult>(string module, string name, Func<CancellationToken, Task<TResult>> function)
        {
            Typed(module, name, function, 0, a => AsyncHostCalls.Start(function), false, true);
        }

        /// <summary><see cref="RegisterAsyncFunction{TResult}(string, string, Func{CancellationToken, Task{TResult}})"/>
        /// for a delegate without a token (Python's cancellation then only drops the outcome).</summary>
        public static void RegisterAsyncFunction<TResult>(string module, string name, Func<Task<TResult>> function)
        {
            Typed(module, name, function, 0, a => AsyncHostCalls.Start(token => function()), false);
        }

        public static void RegisterAsyncFunction<T1, TResult>(string module, string name, Func<T1, CancellationToken, Task<TResult>> function)
        {
            Typed(module, name, function, 1, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                return AsyncHostCalls.Start(token => function(a1, token));
            }, false, true);
        }

        public static void RegisterAsyncFunction<T1, TResult>(string module, string name, Func<T1, Task<TResult>> function)
        {
            Typed(module, name, function, 1, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                return AsyncHostCalls.Start(token => function(a1));
            }, false);
        }

        public static void RegisterAsyncFunction<T1, T2, TResult>(string module, string name, Func<T1, T2, CancellationToken, Task<TResult>> function)
        {
            Typed(module, name, function, 2, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                return AsyncHostCalls.Start(token => function(a1, a2, token));
            }, false, true);
        }

        public static void RegisterAsyncFunction<T1, T2, TResult>(string module, string name, Func<T1, T2, Task<TResult>> function)
        {
            Typed(module, name, function, 2, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                return AsyncHostCalls.Start(token => function(a1, a2));
            }, false);
        }

        public static void RegisterAsyncFunction<T1, T2, T3, TResult>(string module, string name, Func<T1, T2, T3, CancellationToken, Task<TResult>> function)
        {
            Typed(module, name, function, 3, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                T3 a3 = Arg<T3>(a, 2);
                return AsyncHostCalls.Start(token => function(a1, a2, a3, token));
            }, false, true);
        }

        public static void RegisterAsyncFunction<T1, T2, T3, TResult>(string module, string name, Func<T1, T2, T3, Task<TResult>> function)
        {
            Typed(module, name, function, 3, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                T3 a3 = Arg<T3>(a, 2);
                return AsyncHostCalls.Start(token => function(a1, a2, a3));
            }, false);
        }

        public static void RegisterAsyncFunction<T1, T2, T3, T4, TResult>(string module, string name, Func<T1, T2, T3, T4, CancellationToken, Task<TResult>> function)
        {
            Typed(module, name, function, 4, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                T3 a3 = Arg<T3>(a, 2);
                T4 a4 = Arg<T4>(a, 3);
                return AsyncHostCalls.Start(token => function(a1, a2, a3, a4, token));
            }, false, true);
        }

        public static void RegisterAsyncFunction<T1, T2, T3, T4, TResult>(string module, string name, Func<T1, T2, T3, T4, Task<TResult>> function)
        {
            Typed(module, name, function, 4, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                T3 a3 = Arg<T3>(a, 2);
                T4 a4 = Arg<T4>(a, 3);
                return AsyncHostCalls.Start(token => function(a1, a2, a3, a4));
            }, false);
        }

        /// <summary>An async host function without a result: Python's <c>await</c> gives None when
        /// the task ends (see <see cref="RegisterAsyncFunction{TResult}(string, string, Func{CancellationToken, Task{TResult}})"/>).</summary>
        public static void RegisterAsyncAction(string module, string name, Func<CancellationToken, Task> action)
        {
            Typed(module, name, action, 0, a => AsyncHostCalls.Start(action), false, true);
        }

        public static void RegisterAsyncAction(string module, string name, Func<Task> action)
        {
            Typed(module, name, action, 0, a => AsyncHostCalls.Start(token => action()), false);
        }

        public static void RegisterAsyncAction<T1>(string module, string name, Func<T1, CancellationToken, Task> action)
        {
            Typed(module, name, action, 1, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                return AsyncHostCalls.Start(token => action(a1, token));
            }, false, true);
        }

        public static void RegisterAsyncAction<T1>(string module, string name, Func<T1, Task> action)
        {
            Typed(module, name, action, 1, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                return AsyncHostCalls.Start(token => action(a1));
            }, false);
        }

        public static void RegisterAsyncAction<T1, T2>(string module, string name, Func<T1, T2, CancellationToken, Task> action)
        {
            Typed(module, name, action, 2, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                return AsyncHostCalls.Start(token => action(a1, a2, token));
            }, false, true);
        }

        public static void RegisterAsyncAction<T1, T2>(string module, string name, Func<T1, T2, Task> action)
        {
            Typed(module, name, action, 2, a =>
            {
                T1 a1 = Arg<T1>(a, 0);
                T2 a2 = Arg<T2>(a, 1);
                return AsyncHostCalls.Start(token => action(a1, a2));
            }, false);
        }
    }

    /// <summary>The promises of async host calls still running: each call's id (pybridge's
    /// user_data) to the source of the token its delegate got.</summary>
    internal static unsafe class AsyncHostCalls
    {
        static readonly ConcurrentDictionary<long, CancellationTokenSource> running =
            new ConcurrentDictionary<long, CancellationTokenSource>();
        static long lastId;
        // Kept alive for the process: pybridge may call it until the last promise ends.
        static readonly Native.PybPromiseCancelFn OnCancelCallback = OnCancel;

        /// <summary>Makes a promise, starts <paramref name="start"/> with its token, and returns the
        /// awaitable for the host function's result; the task's outcome completes the promise.</summary>
        internal static object Start<TResult>(Func<CancellationToken, Task<TResult>> start)
        {
            return Start(token => (Task)start(token), task => ((Task<TResult>)task).Result);
        }

        internal static object Start(Func<CancellationToken, Task> start)
        {
            return Start(start, task => null);
        }

        static object Start(Func<CancellationToken, Task> start, Func<Task, object> resultOf)
        {
            // The loop's thread may enter .NET here (a coroutine on pybridge's loop calls the
            // host function); Mono's exit would wait for it if the engine still ran.
            PendingTask.EnsureProcessExitHook();
            long id = Interlocked.Increment(ref lastId);
            var cancel = new CancellationTokenSource();
            running[id] = cancel;
            PyObjectHandle awaitable;
            PyPromiseHandle promise;
            int status = Native.pyb_promise_new(OnCancelCallback, (IntPtr)id, out awaitable, out promise);
            if (status != Native.PYB_OK)
            {
                Exception e = PyStatus.ToException(status); // reads the last error first
                CancellationTokenSource ignored;
                running.TryRemove(id, out ignored);
                throw e;
            }
            var result = new HandedOver(new PyObject(awaitable));
            Task task;
            try
            {
                task = start(cancel.Token);
                if (task == null) throw new InvalidOperationException("the async host function returned a null Task");
            }
            catch (Exception e)
            {
                // As an async def's: the exception is the await's, not the call's.
                var failed = new TaskCompletionSource<object>();
                failed.SetException(e);
                task = failed.Task;
            }
            // Off this thread (it holds the GIL) and off the task's completing thread.
            task.ContinueWith(t => Complete(id, promise, t, resultOf), CancellationToken.None,
                TaskContinuationOptions.None, TaskScheduler.Default);
            return result;
        }

        /// <summary>pybridge's on_cancel: called with the GIL held on the awaiting loop's thread or
        /// at the engine's end; the token's callbacks and the continuations they run must not run
        /// here, so the cancellation is a thread-pool work item.</summary>
        static void OnCancel(ulong promise, IntPtr userData)
        {
            try
            {
                CancellationTokenSource cancel;
                if (running.TryGetValue((long)userData, out cancel))
                    ThreadPool.QueueUserWorkItem(state =>
                    {
                        try { ((CancellationTokenSource)state).Cancel(); }
                        catch (Exception) { /* a token callback's exception is the delegate's business */ }
                    }, cancel);
            }
            catch (Exception)
            {
                // Never unwind into native frames.
            }
        }

        static void Complete(long id, PyPromiseHandle promise, Task task, Func<Task, object> resultOf)
        {
            // The source is not disposed: it holds nothing the GC cannot free, and a queued
            // OnCancel may still cancel it.
            CancellationTokenSource ignored;
            running.TryRemove(id, out ignored);
            try
            {
                Exception failure = null;
                if (task.Status == TaskStatus.RanToCompletion)
                {
                    try
                    {
                        if (Resolve(promise, PyEngine.AsPythonResult(resultOf(task)))) return;
                    }
                    catch (Exception e)
                    {
                        failure = e; // a result Python cannot take
                    }
                }
                else if (task.IsCanceled)
                {
                    failure = new TaskCanceledException(task);
                }
                else
                {
                    AggregateException all = task.Exception;
                    failure = all.InnerExceptions.Count == 1 ? all.InnerException : all;
                }
                if (failure != null) Reject(promise, failure);
            }
            catch (Exception)
            {
                // The engine ended meanwhile (its end cancelled the promise): nothing awaits it.
            }
        }

        /// <summary>Resolves with <paramref name="value"/>; false when pybridge refused the value
        /// itself (the promise is still pending: reject it).</summary>
        static bool Resolve(PyPromiseHandle promise, object value)
        {
            int status;
            HandedOver handedOver = value as HandedOver;
            if (handedOver != null || !IsPlain(value))
            {
                // Collections, host objects and Python objects go as a handle that stays ours.
                using (PyEngine.Gil())
                using (PyObject o = handedOver != null ? handedOver.Object : PyObject.From(value))
                {
                    // A pyb_value carries the id: hold the handle for the call, as the marshaller would.
                    PyObjectHandle handle = o.Handle;
                    bool added = false;
                    try
                    {
                        handle.DangerousAddRef(ref added);
                        PybValue v = new PybValue { Tag = Native.PYB_VALUE_OBJECT, Object = handle.Raw };
                        status = Native.pyb_promise_resolve(promise, &v);
                    }
                    finally
                    {
                        if (added) handle.DangerousRelease();
                    }
                }
            }
            else
            {
                PybValue v;
                int noPayload = 0;
                Values.ToValue(value, &v, null, ref noPayload);
                status = Native.pyb_promise_resolve(promise, &v);
            }
            return status != Native.PYB_E_INVALID_ARGUMENT;
        }

        /// <summary>A value pyb_value carries without a payload (strings and bytes go as objects, as
        /// their UTF-8 or bytes would otherwise need a buffer here).</summary>
        static bool IsPlain(object value)
        {
            return value == null || value is long || value is int || value is double || value is bool;
        }

        static void Reject(PyPromiseHandle promise, Exception failure)
        {
            string message = (failure.GetType().FullName + ": " + failure.Message).Replace('\0', ' ');
            HostFailures.RecordRejection(message, failure);
            Native.pyb_promise_reject(promise, Utf8.Encode(message, "message"));
        }
    }
}

namespace PyBridge.Interop
{
    internal static unsafe partial class Native
    {
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void PybPromiseCancelFn(ulong promise, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_promise_new(PybPromiseCancelFn onCancel, IntPtr userData, out PyObjectHandle awaitable, out PyPromiseHandle promise);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_promise_resolve(PyPromiseHandle promise, PybValue* value);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_promise_reject(PyPromiseHandle promise, byte[] message);
    }
}
