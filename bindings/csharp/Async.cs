// Awaiting Python coroutines from C# (pyb_task_*): a coroutine runs on pybridge's asyncio event
// loop (a thread pybridge owns) and its outcome completes a Task<T>; a CancellationToken cancels
// the Python task. The Task<T> is a delegate task parked on PendingTaskScheduler until the
// outcome arrives, so that a blocking wait on it reaches the scheduler (TryExecuteTaskInline),
// which fails a wait that would deadlock (pyb_task_check_wait): one on a thread holding the GIL
// the coroutine needs to finish, or on the event loop's own thread.
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
        /// Continuations never run on the event loop's thread. A blocking wait for the task
        /// (<c>Wait()</c>, <c>Result</c>, <c>GetAwaiter().GetResult()</c>, <c>Task.WaitAll</c>
        /// without a timeout or token) on a thread that holds the GIL, which the coroutine needs,
        /// fails the task at once with <see cref="PyWouldDeadlockException"/> instead of hanging
        /// (the coroutine runs on; its outcome is dropped).</summary>
        public static Task<T> RunAsync<T>(PyObject awaitable, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (awaitable == null) throw new ArgumentNullException("awaitable");
            if (cancellationToken.IsCancellationRequested) return Canceled<T>(cancellationToken);
            PendingTask.EnsureProcessExitHook();
            var pending = new PendingTask<T>(cancellationToken);
            GCHandle state = GCHandle.Alloc(pending);
            PyTaskHandle task;
            int status = Native.pyb_task_submit(awaitable.Handle, PendingTask.Callback, GCHandle.ToIntPtr(state), out task);
            if (status != Native.PYB_OK)
            {
                state.Free();
                Exception e = PyStatus.ToException(status); // reads the last error first
                pending.Fail(e); // ends the parked task, which nobody sees
                throw e;
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

        /// <summary>Whether the outcome arrived (the parked task may run).</summary>
        internal abstract bool HasOutcome { get; }

        /// <summary>Fails the task with PyWouldDeadlockException unless its outcome arrived.</summary>
        internal abstract void FailWouldDeadlock();

        // 1 once the ProcessExit handler is registered (once per process).
        static int processExitHooked;

        /// <summary>Registers, once, the ProcessExit handler that shuts a running engine down (5 s)
        /// when the process exits, unless <see cref="PyEngineOptions.ShutdownOnProcessExit"/> was
        /// false. Called where pybridge's event loop thread may enter .NET: a task's callback
        /// (RunAsync) and an async host function (AsyncHostFunctions.cs). Why: that thread then
        /// belongs to the runtime, and Mono's exit waits for it for ever (it sits in Python's
        /// epoll_wait), so a process that exits with the engine running must stop the loop first
        /// (measured hang without it: tests/csharp/AsyncTests.cs,
        /// AProcessThatAwaitedPythonExitsWithoutShutdown).</summary>
        internal static void EnsureProcessExitHook()
        {
            if (!PyEngine.ShutdownOnProcessExit) return;
            if (Interlocked.Exchange(ref processExitHooked, 1) != 0) return;
            AppDomain.CurrentDomain.ProcessExit += (sender, e) =>
            {
                if (PyEngine.State != PyEngineState.Running) return;
                try { PyEngine.Shutdown(TimeSpan.FromSeconds(5)); }
                catch (Exception) { /* the process ends anyway */ }
            };
        }

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
        /// <summary>A task's outcome: a value, an exception, or cancellation.</summary>
        sealed class Outcome
        {
            internal T Value;
            internal Exception Error;
            internal bool Canceled;
        }

        readonly Task<T> task;
        readonly CancellationToken token;
        // The task's own token when the caller's cannot cancel, so that Python's own cancellation
        // of the coroutine can end the task Canceled (a delegate task ends Canceled only through
        // the token it was made with).
        readonly CancellationTokenSource own;
        Outcome outcome;

        internal PendingTask(CancellationToken token)
        {
            this.token = token;
            if (!token.CanBeCanceled) own = new CancellationTokenSource();
            // HideScheduler: code the task's continuations run inline sees the default scheduler
            // as TaskScheduler.Current, never this one.
            task = new Task<T>(state => ((PendingTask<T>)state).Result(), this, token.CanBeCanceled ? token : own.Token,
                TaskCreationOptions.HideScheduler | TaskCreationOptions.DenyChildAttach);
            task.Start(PendingTaskScheduler.Instance); // parked until the outcome arrives
        }

        internal Task<T> Task { get { return task; } }

        internal override bool HasOutcome { get { return Volatile.Read(ref outcome) != null; } }

        internal void Started(PyTaskHandle pythonTask)
        {
            if (!token.CanBeCanceled) return;
            // Cancel takes the GIL and does not wait; after the task ended it does nothing.
            CancellationTokenRegistration registration = token.Register(() => Native.pyb_task_cancel(pythonTask));
            // Disposed off this thread once the task ends (Dispose waits for a running callback).
            task.ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
        }

        internal override unsafe void Complete(int status, IntPtr result)
        {
            var done = new Outcome();
            if (status == Native.PYB_OK)
            {
                PybValue value = *(PybValue*)result;
                done.Value = Values.To<T>(Values.FromValue(ref value));
            }
            else if (status == Native.PYB_E_CANCELLED)
                done.Canceled = true;
            else
                done.Error = PyStatus.ToException(status);
            Deliver(done);
        }

        internal override void Fail(Exception error) { Deliver(new Outcome { Error = error }); }

        internal override void FailWouldDeadlock()
        {
            var e = new PyWouldDeadlockException("waiting for a pybridge task on a thread that holds the GIL would " +
                "deadlock: its coroutine needs the GIL to finish; await the task instead, or wait outside GIL scopes " +
                "(PyEngine.AllowThreads) and host functions");
            e.Data[PyStatus.DataKey] = PyStatus.Name(Native.PYB_E_WOULD_DEADLOCK);
            Interlocked.CompareExchange(ref outcome, new Outcome { Error = e }, null);
        }

        /// <summary>Sets the outcome (the first one counts) and runs the task on the thread pool,
        /// never here: this may be the event loop's thread, holding the GIL.</summary>
        void Deliver(Outcome done)
        {
            if (Interlocked.CompareExchange(ref outcome, done, null) != null) return;
            // Python may cancel the task itself; the caller's token is the cause only when it fired.
            if (done.Canceled && own != null) own.Cancel();
            PendingTaskScheduler.Instance.RunLater(task);
        }

        /// <summary>The task's body: runs once the outcome is in (or a wait that would deadlock set it).</summary>
        T Result()
        {
            Outcome done = Volatile.Read(ref outcome);
            if (done.Error != null) throw done.Error;
            // Canceled, with a caller's token that did not fire: Python cancelled the coroutine
            // itself, which a task made with that token can only report as a fault.
            if (done.Canceled) throw new TaskCanceledException(task);
            return done.Value;
        }
    }

    /// <summary>Where pybridge's tasks wait for their outcome. A blocking wait on a task that has
    /// not run asks <see cref="TryExecuteTaskInline"/> first (the BCL does for Wait(), Result and
    /// GetAwaiter().GetResult(), without a timeout or token): there a wait on a thread holding
    /// the GIL fails the task instead of hanging. Other tasks (none is expected, since the
    /// parked ones hide this scheduler) run on the thread pool.</summary>
    sealed class PendingTaskScheduler : TaskScheduler
    {
        internal static readonly PendingTaskScheduler Instance = new PendingTaskScheduler();

        protected override void QueueTask(Task task)
        {
            var pending = task.AsyncState as PendingTask;
            if (pending != null && !pending.HasOutcome) return; // parked: its delivery runs it
            RunLater(task);
        }

        internal void RunLater(Task task)
        {
            ThreadPool.QueueUserWorkItem(state => TryExecuteTask((Task)state), task);
        }

        protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued)
        {
            var pending = task.AsyncState as PendingTask;
            if (pending != null && !pending.HasOutcome)
            {
                // Unless this thread holds the GIL the loop needs (or is the loop's own thread,
                // or the engine cannot say), the loop can finish the coroutine: wait as usual.
                if (Native.pyb_task_check_wait() != Native.PYB_E_WOULD_DEADLOCK) return false;
                pending.FailWouldDeadlock();
            }
            return TryExecuteTask(task);
        }

        protected override IEnumerable<Task> GetScheduledTasks() { return new Task[0]; }
    }
}

namespace PyBridge.Interop
{
    internal static unsafe partial class Native
    {
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void PybTaskCallback(ulong task, int status, IntPtr result, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_task_submit(PyObjectHandle awaitable, PybTaskCallback onDone, IntPtr userData, out PyTaskHandle task);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_task_cancel(PyTaskHandle task);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_task_check_wait();
    }
}
