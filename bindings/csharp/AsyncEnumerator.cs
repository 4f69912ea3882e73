// Consuming Python async generators (and any async iterator) from C#: each MoveNextAsync awaits
// the iterator's __anext__() on pybridge's event loop (PyEngine.RunAsync), so the generator's
// code runs there between items and never on the caller's thread. Written without C# 8's
// IAsyncEnumerable so mcs builds it; the shape (Current, MoveNextAsync, DisposeAsync) is the
// same, so `await foreach` users recognise it.
using System;
using System.Threading;
using System.Threading.Tasks;

namespace PyBridge
{
    /// <summary>Iterates a Python async iterator (an async generator, or an object with
    /// <c>__aiter__</c>/<c>__anext__</c>), converting each item as <see cref="PyObject.Call{T}"/>
    /// does. One <see cref="MoveNextAsync"/> at a time; any thread.</summary>
    public sealed class PyAsyncEnumerator<T> : IDisposable
    {
        PyObject iterator;
        T current;
        int moving; // 1 while a MoveNextAsync is pending
        bool finished;

        internal PyAsyncEnumerator(PyObject iterator) { this.iterator = iterator; }

        /// <summary>The item the last successful <see cref="MoveNextAsync"/> produced.</summary>
        public T Current
        {
            get
            {
                if (iterator == null) throw new ObjectDisposedException("PyAsyncEnumerator");
                return current;
            }
        }

        /// <summary>Awaits the next item: true with <see cref="Current"/> set, false once the
        /// iterator is exhausted (StopAsyncIteration). Fails with the generator's exception
        /// (<see cref="PythonException"/>), Canceled when <paramref name="cancellationToken"/>
        /// cancels the pending step (the generator sees CancelledError at its await), and
        /// <see cref="InvalidOperationException"/> when called while another step is pending.</summary>
        public Task<bool> MoveNextAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            if (iterator == null) throw new ObjectDisposedException("PyAsyncEnumerator");
            if (finished) return Task.FromResult(false);
            if (Interlocked.Exchange(ref moving, 1) == 1)
                throw new InvalidOperationException("a MoveNextAsync of this enumerator is still pending");
            Task<T> step;
            try
            {
                using (PyObject next = iterator.CallMethod<PyObject>("__anext__"))
                    step = PyEngine.RunAsync<T>(next, cancellationToken);
            }
            catch
            {
                Volatile.Write(ref moving, 0);
                throw;
            }
            return step.ContinueWith(done =>
            {
                Volatile.Write(ref moving, 0);
                if (done.IsCanceled) throw new TaskCanceledException(done);
                if (done.IsFaulted)
                {
                    Exception error = done.Exception.InnerException;
                    var python = error as PythonException;
                    if (python != null && python.Is("StopAsyncIteration"))
                    {
                        finished = true;
                        return false;
                    }
                    throw error;
                }
                current = done.Result;
                return true;
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        /// <summary>Closes the iterator (<c>aclose()</c> of an async generator, so its
        /// <c>finally</c> blocks run on the event loop) and releases it.</summary>
        public Task DisposeAsync()
        {
            PyObject it = Interlocked.Exchange(ref iterator, null);
            if (it == null) return Task.FromResult(true);
            try
            {
                if (finished || !it.HasAttr("aclose")) return Task.FromResult(true);
                using (PyObject closing = it.CallMethod<PyObject>("aclose"))
                    return PyEngine.RunAsync<PyObject>(closing).ContinueWith(done =>
                    {
                        if (done.Status == TaskStatus.RanToCompletion && done.Result != null) done.Result.Dispose();
                        if (done.IsFaulted) throw done.Exception.InnerException;
                    }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            finally
            {
                it.Dispose();
            }
        }

        /// <summary>Releases the iterator without awaiting its close: an unfinished async
        /// generator is closed by Python when it is collected.</summary>
        public void Dispose()
        {
            PyObject it = Interlocked.Exchange(ref iterator, null);
            if (it != null) it.Dispose();
        }
    }

    public partial class PyObject
    {
        /// <summary>An enumerator over this async iterable (<c>__aiter__</c>): an async
        /// generator, or any object with <c>__aiter__</c>/<c>__anext__</c>. Throws
        /// <see cref="PythonException"/> (TypeError) for an object that is not async-iterable.</summary>
        public PyAsyncEnumerator<T> GetAsyncEnumerator<T>()
        {
            using (PyObject builtins = PyEngine.Import("builtins"))
                return new PyAsyncEnumerator<T>(builtins.CallMethod<PyObject>("aiter", this));
        }
    }
}
