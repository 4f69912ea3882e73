// Awaiting Python coroutines from C# (pyb_task_*): a coroutine runs on pybridge's asyncio event
// loop (a thread pybridge owns) and its outcome completes a Task<T>; a CancellationToken cancels
// the Python task.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using PyBridge.Interop;

namespace PyBridge
{
    public static partial class PyEngine
    {
        /// <summary>Awaits a Python awaitable (a coroutine, such as the result of calling an
        /// <c>async def</c>; an asyncio Task or Future) on pybridge's event loop and converts its
        /// result as <see cref="PyObject.Call{T}"/> does. The task fails with the binding's exception
        /// for the coroutine's (<see cref="PythonException"/> with its type and traceback), ends
        /// Canceled when <paramref name="cancellationToken"/> cancels the Python task, and fails with
        /// <see cref="PyEngineShuttingDownException"/> when the engine shuts down first.
        /// Continuations never run on the event loop's thread.</summary>
        public static Task<T> RunAsync<T>(PyObject awaitable, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (awaitable == null) throw new ArgumentNullException("awaitable");
            if (cancellationToken.IsCancellationRequested) return Canceled<T>(cancellationToken);
            var pending = new PendingTask<T>(cancellationToken);
            GCHandle state = GCHandle.Alloc(pending);
            ulong task;
            int status;
            using (var lease = new PyObject.HandleLease(awaitable))
                status = Native.pyb_task_submit(lease.Raw, PendingTask.Callback, GCHandle.ToIntPtr(state), out task);
            if (status != Native.PYB_OK)
            {
                state.Free();
                PyStatus.Check(status);
            }
            pending.Started(task);
            return pending.Task;
        }

        /// <summary>A task already cancelled by <paramref name="cancellationToken"/> (its
        /// TaskCanceledException carries the token).</summary>
        internal static Task<T> Canceled<T>(CancellationToken cancellationToken)
        {
            var canceled = new TaskCompletionSource<T>();
            canceled.TrySetCanceled(cancellationToken);
            return canceled.Task;
        }
    }

    public partial class PyObject
    {
        /// <summary>Calls this <c>async def</c> (or other callable returning an awaitable) and
        /// awaits the result on pybridge's event loop (see <see cref="PyEngine.RunAsync{T}"/>).</summary>
        public Task<T> CallAsync<T>(params object[] args)
        {
            return CallAsync<T>(CancellationToken.None, args);
        }

        /// <summary><see cref="CallAsync{T}(object[])"/> with a token that cancels the Python task.
        /// A token cancelled already calls nothing (no coroutine is made, so none is dropped
        /// unawaited) and returns a cancelled task; a cancelled task's TaskCanceledException carries
        /// <paramref name="cancellationToken"/>.</summary>
        public Task<T> CallAsync<T>(CancellationToken cancellationToken, params object[] args)
        {
            return CallAsync<T>(args, null, cancellationToken);
        }

        /// <summary><c>await x(*args, **kwargs)</c> (see <see cref="CallAsync{T}(CancellationToken, object[])"/>).</summary>
        public Task<T> CallAsync<T>(object[] args, IDictionary<string, object> kwargs, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (cancellationToken.IsCancellationRequested) return PyEngine.Canceled<T>(cancellationToken);
            using (PyObject coroutine = CallKw<PyObject>(args, kwargs))
                return PyEngine.RunAsync<T>(coroutine, cancellationToken);
        }
    }

    /// <summary>What the native callback completes; one static delegate serves every task.</summary>
    abstract class PendingTask
    {
        // Kept alive for the process: native code may call it until the last task ends.
        internal static readonly Native.PybTaskCallback Callback = OnDone;

        internal abstract void Complete(int status, IntPtr result);
        internal abstract void Fail(Exception error);

        static PendingTask()
        {
            // The event loop's thread enters .NET through this callback, and Mono's exit then waits
            // for it for ever (it sits in Python's epoll_wait): a process that exits with the engine
            // running stops the loop first, by shutting the engine down (measured hang without it:
            // tests/csharp/AsyncTests.cs, AProcessThatAwaitedPythonExits).
            AppDomain.CurrentDomain.ProcessExit += (sender, e) =>
            {
                if (PyEngine.State != PyEngineState.Running) return;
                try { PyEngine.Shutdown(TimeSpan.FromSeconds(5)); }
                catch (Exception) { /* the process ends anyway */ }
            };
        }

        /// <summary>Registers the ProcessExit hook (this class's static constructor) for another
        /// way the loop's thread enters .NET: an async host function (AsyncHostFunctions.cs).</summary>
        internal static void EnsureProcessExitHook() { }

        static void OnDone(ulong task, int status, IntPtr result, IntPtr userData)
        {
            GCHandle state = GCHandle.FromIntPtr(userData);
            var pending = (PendingTask)state.Target;
            state.Free();
            try { pending.Complete(status, result); }
            catch (Exception e) { pending.Fail(e); }
        }
    }

    sealed class PendingTask<T> : PendingTask
    {
        // Continuations must not run here: this is the event loop's thread, holding the GIL.
        readonly TaskCompletionSource<T> source =
            new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        readonly CancellationToken token;

        internal PendingTask(CancellationToken token) { this.token = token; }

        internal Task<T> Task { get { return source.Task; } }

        internal void Started(ulong task)
        {
            if (!token.CanBeCanceled) return;
            // Cancel takes the GIL and does not wait; after the task ended it does nothing.
            CancellationTokenRegistration registration = token.Register(() => Native.pyb_task_cancel(task));
            // Disposed off this thread once the task ends (Dispose waits for a running callback).
            source.Task.ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
        }

        internal override unsafe void Complete(int status, IntPtr result)
        {
            if (status == Native.PYB_OK)
            {
                PybValue value = *(PybValue*)result;
                source.TrySetResult(Values.To<T>(Values.FromValue(ref value)));
            }
            else if (status == Native.PYB_E_CANCELLED)
            {
                // Python may cancel the task itself; the token is the cause only when it fired.
                if (token.IsCancellationRequested) source.TrySetCanceled(token);
                else source.TrySetCanceled();
            }
            else
                source.TrySetException(PyStatus.ToException(status));
        }

        internal override void Fail(Exception error) { source.TrySetException(error); }
    }
}

namespace PyBridge.Interop
{
    public static unsafe partial class Native
    {
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void PybTaskCallback(ulong task, int status, IntPtr result, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_task_submit(ulong awaitable, PybTaskCallback onDone, IntPtr userData, out ulong task);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_task_cancel(ulong task);
    }
}
