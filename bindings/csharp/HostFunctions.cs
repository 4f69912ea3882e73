using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>One static native entry point for every registered delegate; user_data is the
    /// registration's id in <see cref="registry"/>, which keeps the delegate alive until pybridge
    /// calls the free function at shutdown.</summary>
    internal static unsafe class HostFunctions
    {
        /// <summary>A registered delegate; <c>Keywords</c> when Python may pass keyword arguments.</summary>
        private sealed class Entry
        {
            internal PyHostFunctionWithKeywords Function;
            internal bool Keywords;
            /// <summary>The binding's own (HostObjectModule), not counted in Count.</summary>
            internal bool Internal;
        }

        private static readonly ConcurrentDictionary<long, Entry> registry = new ConcurrentDictionary<long, Entry>();
        private static long nextId;
        private static readonly PybHostFn trampoline = Trampoline;
        private static readonly PybFreeFn free = Free;
        private static readonly IntPtr trampolinePtr = Marshal.GetFunctionPointerForDelegate(trampoline);
        private static readonly IntPtr freePtr = Marshal.GetFunctionPointerForDelegate(free);

        internal static int Count
        {
            get
            {
                int n = 0;
                foreach (KeyValuePair<long, Entry> e in registry) if (!e.Value.Internal) n++;
                return n;
            }
        }

        /// <summary>A host function of the binding itself (not counted in <see cref="Count"/>).</summary>
        internal static void RegisterInternal(string module, string name, PyHostFunction function)
        {
            Register(module, name, (args, kwargs) => function(args), false, false, true);
        }

        internal static void Register(string module, string name, PyHostFunction function, bool releaseGil)
        {
            if (function == null) throw new ArgumentNullException("function");
            Register(module, name, (args, kwargs) => function(args), false, releaseGil);
        }

        internal static void Register(string module, string name, PyHostFunctionWithKeywords function, bool keywords, bool releaseGil,
            bool isInternal = false)
        {
            if (function == null) throw new ArgumentNullException("function");
            byte[] m = Utf8.Encode(module, "module");
            byte[] n = Utf8.Encode(name, "name");
            if (m == null) throw new ArgumentNullException("module");
            if (n == null) throw new ArgumentNullException("name");
            long id = Interlocked.Increment(ref nextId);
            registry[id] = new Entry { Function = function, Keywords = keywords, Internal = isInternal };
            int status = Native.pyb_register_function(m, n, trampolinePtr, (IntPtr)id, freePtr,
                (releaseGil ? Native.PYB_FN_RELEASE_GIL : 0) | (keywords ? Native.PYB_FN_KEYWORDS : 0));
            if (status != Native.PYB_OK)
            {
                Exception e = PyStatus.ToException(status); // reads the last error before anything else runs
                Entry ignored;
                registry.TryRemove(id, out ignored);
                throw e;
            }
        }

        private static void Free(IntPtr userData)
        {
            Entry ignored;
            registry.TryRemove((long)userData, out ignored);
        }

        private static int Trampoline(PybValue* args, UIntPtr nargs, PybValue* result, IntPtr userData)
        {
            try
            {
                Entry function;
                if (!registry.TryGetValue((long)userData, out function))
                    return Fail("pybridge C# binding: no delegate registered under id " + (long)userData);
                int n = (int)(ulong)nargs;
                object[] a = new object[n];
                for (int i = 0; i < n; i++)
                {
                    if (args[i].Tag == Native.PYB_VALUE_OBJECT)
                    {
                        // Argument handles die when the call returns: give the delegate its own.
                        PyObjectHandle clone;
                        PyStatus.Check(Native.pyb_object_clone_borrowed(args[i].Object, out clone));
                        a[i] = new PyObject(clone);
                    }
                    else
                    {
                        a[i] = Values.FromValue(ref args[i]);
                    }
                }
                Dictionary<string, object> kwargs = null;
                if (function.Keywords)
                {
                    PybStr* names;
                    UIntPtr count;
                    PyStatus.Check(Native.pyb_host_keywords(out names, out count));
                    int k = (int)(ulong)count;
                    if (k > 0)
                    {
                        kwargs = new Dictionary<string, object>(k);
                        for (int i = 0; i < k; i++)
                            kwargs[Utf8.Decode((byte*)names[i].Ptr, checked((int)(ulong)names[i].Len))] = a[n - k + i];
                        Array.Resize(ref a, n - k);
                    }
                }
                object r = function.Function(a, kwargs);
                WriteResult(r, result);
                return Native.PYB_OK;
            }
            catch (HostArgumentException e)
            {
                Fail(e.Message); // raised as Python's TypeError, with the message alone
                return Native.PYB_E_WRONG_TYPE;
            }
            catch (Exception e)
            {
                return Fail(e.GetType().FullName + ": " + e.Message, e);
            }
        }

        private static void WriteResult(object r, PybValue* result)
        {
            int offset = 0;
            if (r == null || r is long || r is int || r is double || r is bool || r is float
                || r is short || r is byte || r is sbyte || r is ushort || r is uint || r is ulong)
            {
                Values.ToValue(r, result, null, ref offset);
                return;
            }
            // Strings, bytes and objects go back as a handle pybridge takes over.
            PyObject o = r as PyObject;
            HandedOver handedOver = r as HandedOver;
            ulong h;
            if (handedOver != null)
            {
                h = handedOver.Object.Detach();
            }
            else if (o != null)
            {
                h = o.CloneHandle().Detach();
            }
            else
            {
                h = Ops.FromValue(r).Detach();
            }
            result->Tag = Native.PYB_VALUE_OBJECT;
            result->Object = h;
        }

        private static int Fail(string message, Exception cause = null)
        {
            message = message.Replace('\0', ' ');
            HostFailures.Record(message, cause);
            try
            {
                Native.pyb_set_error(Utf8.Encode(message, "message"));
            }
            catch
            {
                // Encoding cannot fail after the NUL replacement; stay safe regardless.
            }
            return Native.PYB_E_PYTHON;
        }
    }

    /// <summary>The .NET exception behind the HostError a host function's failure raised, for the
    /// PythonException its caller gets (InnerException). Python raises that HostError on the
    /// thread that ran the host function, and it reaches the C# caller on that thread unless
    /// Python catches it (an awaited coroutine completes on the event loop's thread, which also
    /// ran the host function): so the last failure of this thread, matched by its message.
    /// An async host function's rejection is raised on the awaiting coroutine's loop, which no
    /// .NET code runs on when the task fails: those exceptions wait in a small process-wide list,
    /// matched by their message, oldest first (a rejection Python caught leaves the list when
    /// <see cref="RejectionsKept"/> newer ones have come).</summary>
    internal static class HostFailures
    {
        [ThreadStatic] static string lastMessage;
        [ThreadStatic] static Exception lastException;

        internal const int RejectionsKept = 64;
        static readonly LinkedList<KeyValuePair<string, Exception>> rejections = new LinkedList<KeyValuePair<string, Exception>>();

        internal static void Record(string message, Exception exception)
        {
            lastMessage = exception == null ? null : message;
            lastException = exception;
        }

        internal static void RecordRejection(string message, Exception exception)
        {
            lock (rejections)
            {
                rejections.AddLast(new KeyValuePair<string, Exception>(message, exception));
                if (rejections.Count > RejectionsKept) rejections.RemoveFirst();
            }
        }

        /// <summary>The .NET exception of a HostError with this message raised on this thread (or
        /// rejected by an async host function), or null; taken once.</summary>
        internal static Exception Take(string pythonType, string pythonMessage)
        {
            if (pythonType != "pybridge.HostError") return null;
            Exception e = lastException;
            if (e != null && pythonMessage == lastMessage)
            {
                lastException = null;
                lastMessage = null;
                return e;
            }
            lock (rejections)
            {
                for (var node = rejections.First; node != null; node = node.Next)
                {
                    if (node.Value.Key != pythonMessage) continue;
                    rejections.Remove(node);
                    return node.Value.Value;
                }
            }
            return null;
        }
    }
}
