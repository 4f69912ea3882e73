// .NET objects handed to Python as opaque objects (pyb_host_object_*), which Python can store and
// pass back; and host functions as typed delegates (Func<long, long, long> and the like), whose
// arguments convert as Call<T> results do and whose host-object arguments come back as the .NET
// objects they wrap.
using System;
using System.Collections.Generic;
using System.Linq;
using System.IO;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using PyBridge.Interop;

namespace PyBridge
{
    public partial class PyObject
    {
        /// <summary>Hands a .NET object to Python as a <c>HostObject</c> that Python can keep and pass
        /// back, for example to a host function, which then gets the .NET object again. While
        /// Python holds it, the same .NET object gives the same Python object (<c>is</c> holds);
        /// its <c>repr</c> names the .NET type, and <c>==</c> and <c>hash()</c> follow the object's
        /// Equals and GetHashCode. The object stays alive while Python holds it; it is let go
        /// when Python drops it (at the latest at shutdown). One exception: an object a daemon
        /// Python thread can still reach at shutdown (its locals and arguments, the globals of
        /// the modules whose functions it runs) is never let go, since CPython freezes daemon
        /// threads.</summary>
        public static PyObject FromHostObject(object value)
        {
            if (value == null) throw new ArgumentNullException("value");
            long key = HostObjectModule.KeyOf(value);
            object held = PythonOperators.Call(HostObjectModule.Name, "lookup", key);
            if (held != null) return (PyObject)held;
            using (PyObject capsule = NewCapsule(value))
                return (PyObject)PythonOperators.Call(HostObjectModule.Name, "wrap", key, capsule, value.GetType().FullName);
        }

        /// <summary>A bare capsule holding <paramref name="value"/> through a GCHandle, freed when
        /// Python frees the capsule.</summary>
        static PyObject NewCapsule(object value)
        {
            GCHandle handle = GCHandle.Alloc(value);
            PyObjectHandle raw;
            int status = Native.pyb_host_object_new(GCHandle.ToIntPtr(handle), FreeHostObject, out raw);
            if (status != Native.PYB_OK)
            {
                handle.Free();
                PyStatus.Check(status);
            }
            return new PyObject(raw);
        }

        /// <summary>The .NET object this Python object wraps (made by <see cref="FromHostObject"/>),
        /// or false when it is not one.</summary>
        public bool TryGetHostObject(out object value)
        {
            if (TryGetCapsuleObject(out value)) return true;
            if (!HostObjectModule.EverUsed) return false; // no HostObject can exist: ask nothing
            object capsule = PythonOperators.Call(HostObjectModule.Name, "capsule_of", this);
            if (capsule == null) return false;
            using (var c = (PyObject)capsule)
                return c.TryGetCapsuleObject(out value);
        }

        bool TryGetCapsuleObject(out object value)
        {
            IntPtr pointer;
            int status;
            status = Native.pyb_host_object_get(Handle, out pointer);
            if (status == Native.PYB_E_WRONG_TYPE)
            {
                value = null;
                return false;
            }
            PyStatus.Check(status);
            value = GCHandle.FromIntPtr(pointer).Target;
            return true;
        }

        /// <summary>Gives up this wrapper's handle without releasing it: the caller owns the
        /// reference from now on. Only for a wrapper no other thread can have.</summary>
        internal ulong Detach()
        {
            ThrowIfDisposed();
            return Handle.Detach();
        }

        // Kept alive for the process: Python may drop a host object at any time.
        static readonly PybFreeFn FreeHostObject = pointer => GCHandle.FromIntPtr(pointer).Free();
    }

    public static partial class PyEngine
    {
        /// <summary>Registers <c>module.name</c> as a typed host function: Python's arguments convert
        /// to <typeparamref name="T1"/>.. as <see cref="PyObject.Call{T}"/> results do (host objects
        /// to the .NET objects they wrap), the result converts back (a collection as a copy, an
        /// object Python has no type for as a host object). Wrong arguments (too many, unknown,
        /// missing, of a type that does not convert) raise Python's <c>TypeError</c>, as a Python
        /// function's do; an exception of the delegate raises <c>pybridge.HostError</c>.</summary>
        public static void RegisterFunction<TResult>(string module, string name, Func<TResult> function, bool releaseGil = false)
        {
            Typed(module, name, function, 0, a => function(), releaseGil);
        }

        public static void RegisterFunction<T1, TResult>(string module, string name, Func<T1, TResult> function, bool releaseGil = false)
        {
            Typed(module, name, function, 1, a => function(Arg<T1>(a, 0)), releaseGil);
        }

        public static void RegisterFunction<T1, T2, TResult>(string module, string name, Func<T1, T2, TResult> function, bool releaseGil = false)
        {
            Typed(module, name, function, 2, a => function(Arg<T1>(a, 0), Arg<T2>(a, 1)), releaseGil);
        }

        public static void RegisterFunction<T1, T2, T3, TResult>(string module, string name, Func<T1, T2, T3, TResult> function, bool releaseGil = false)
        {
            Typed(module, name, function, 3, a => function(Arg<T1>(a, 0), Arg<T2>(a, 1), Arg<T3>(a, 2)), releaseGil);
        }

        public static void RegisterFunction<T1, T2, T3, T4, TResult>(string module, string name, Func<T1, T2, T3, T4, TResult> function, bool releaseGil = false)
        {
            Typed(module, name, function, 4, a => function(Arg<T1>(a, 0), Arg<T2>(a, 1), Arg<T3>(a, 2), Arg<T4>(a, 3)), releaseGil);
        }

        /// <summary>A typed host function without a result (Python gets None).</summary>
        public static void RegisterAction<T1>(string module, string name, Action<T1> action, bool releaseGil = false)
        {
            Typed(module, name, action, 1, a => { action(Arg<T1>(a, 0)); return null; }, releaseGil);
        }

        public static void RegisterAction<T1, T2>(string module, string name, Action<T1, T2> action, bool releaseGil = false)
        {
            Typed(module, name, action, 2, a => { action(Arg<T1>(a, 0), Arg<T2>(a, 1)); return null; }, releaseGil);
        }

        /// <summary>Registers <paramref name="body"/>, which takes exactly <paramref name="arity"/>
        /// arguments: positional ones first, then keywords named like the delegate's parameters
        /// (<c>(a, b) => ...</c> takes <c>f(1, b=2)</c>).</summary>
        /// <paramref name="tokenLast"/>: the delegate's last parameter is a CancellationToken that
        /// Python does not pass (an async host function's).
        static void Typed(string module, string name, Delegate function, int arity, Func<object[], object> body, bool releaseGil,
            bool tokenLast = false)
        {
            if (function == null) throw new ArgumentNullException("function");
            string qualified = module + "." + name;
            string[] parameters = Array.ConvertAll(function.Method.GetParameters(), p => p.Name);
            if (tokenLast) parameters = parameters.Take(parameters.Length - 1).ToArray();
            // A closure's Method may carry a leading closure parameter: keep the last `arity`.
            if (parameters.Length > arity) parameters = parameters.Skip(parameters.Length - arity).ToArray();
            HostFunctions.Register(module, name, (args, kwargs) =>
            {
                object[] bound = new object[arity];
                bool[] given = new bool[arity];
                if (args.Length > arity)
                    throw new HostArgumentException(qualified + "() takes " + arity + " argument(s), " + args.Length + " given");
                for (int i = 0; i < args.Length; i++) { bound[i] = args[i]; given[i] = true; }
                if (kwargs != null)
                    foreach (KeyValuePair<string, object> keyword in kwargs)
                    {
                        int at = Array.IndexOf(parameters, keyword.Key);
                        if (at < 0)
                            throw new HostArgumentException(qualified + "() has no parameter '" + keyword.Key + "' (it has " + string.Join(", ", parameters) + ")");
                        if (given[at])
                            throw new HostArgumentException(qualified + "() got '" + keyword.Key + "' twice");
                        bound[at] = keyword.Value;
                        given[at] = true;
                    }
                int missing = Array.IndexOf(given, false);
                if (missing >= 0)
                    throw new HostArgumentException(qualified + "() takes " + arity + " argument(s); '" + parameters[missing] + "' is missing");
                return AsPythonResult(body(bound));
            }, true, releaseGil);
        }

        static T Arg<T>(object[] args, int index)
        {
            object value = args[index];
            PyObject o = value as PyObject;
            object wrapped;
            if (o != null && !typeof(PyObject).IsAssignableFrom(typeof(T)) && o.TryGetHostObject(out wrapped) && wrapped is T)
            {
                o.Dispose();
                return (T)wrapped;
            }
            try { return Values.To<T>(value); }
            catch (InvalidCastException e)
            {
                throw new HostArgumentException("argument " + (index + 1) + ": " + e.Message, e);
            }
        }

        /// <summary>What Python can take as it is; any other .NET object goes as a host object.</summary>
        internal static object AsPythonResult(object result)
        {
            if (result == null || result is PyObject || result is HandedOver || result is string || result is byte[] ||
                result is BigInteger || result.GetType().IsPrimitive || Values.IsCollection(result))
                return result; // a collection is copied (a list, dict or tuple), as an argument is
            return new HandedOver(PyObject.FromHostObject(result));
        }
    }

    /// <summary>The Python side of host objects (host_objects.py, embedded in the assembly), set up
    /// once per interpreter as the module <c>_pybridge_dotnet</c>, with the host functions it
    /// calls for Equals and GetHashCode.</summary>
    internal static class HostObjectModule
    {
        internal const string Name = "_pybridge_dotnet";
        const string HostModule = "_pybridge_dotnet_host";

        /// <summary>A key per .NET object (by reference), stable while the object lives.</summary>
        sealed class Key
        {
            internal long Value;
        }

        static readonly ConditionalWeakTable<object, Key> keys = new ConditionalWeakTable<object, Key>();
        static long lastKey;
        static volatile bool everUsed;

        /// <summary>Whether a HostObject was ever made in this process.</summary>
        internal static bool EverUsed { get { return everUsed; } }

        internal static long KeyOf(object value)
        {
            everUsed = true;
            return keys.GetValue(value, _ => new Key { Value = Interlocked.Increment(ref lastKey) }).Value;
        }

        static string source;

        static string Source
        {
            get
            {
                if (source == null)
                    using (Stream stream = typeof(HostObjectModule).Assembly.GetManifestResourceStream("PyBridge.host_objects.py"))
                    using (var reader = new StreamReader(stream, new UTF8Encoding(false)))
                        source = reader.ReadToEnd();
                return source;
            }
        }

        /// <summary>The module in the calling thread's interpreter, set up on first use there.</summary>
        internal static PyObject Load()
        {
            using (PyObject sys = PyEngine.Import("sys"))
            using (PyObject modules = sys.GetAttr<PyObject>("modules"))
            {
                object existing = modules.CallMethod("get", Name);
                if (existing != null) return (PyObject)existing;
            }
            try
            {
                HostFunctions.RegisterInternal(HostModule, "equals", args => Unwrap(args[0]).Equals(Unwrap(args[1])));
                HostFunctions.RegisterInternal(HostModule, "hash_of", args => (long)Unwrap(args[0]).GetHashCode());
            }
            catch (NotSupportedException)
            {
                // A sub-interpreter (host functions are the main interpreter's): host_objects.py
                // then compares by identity.
            }
            using (PyScope scope = PyEngine.NewScope())
            {
                scope.SetItem("source", Source);
                scope.SetItem("name", Name);
                scope.Run("import sys, types\n" +
                          "module = types.ModuleType(name)\n" +
                          "exec(compile(source, 'host_objects.py', 'exec'), module.__dict__)\n" +
                          "module = sys.modules.setdefault(name, module)\n");
                return scope.GetItem<PyObject>("module");
            }
        }

        /// <summary>The .NET object of a capsule argument (the host function's to dispose).</summary>
        static object Unwrap(object argument)
        {
            using (var capsule = (PyObject)argument)
            {
                object value;
                if (!capsule.TryGetHostObject(out value))
                    throw new HostArgumentException("not a .NET host object");
                return value;
            }
        }
    }

    /// <summary>Arguments a typed host function cannot take: Python gets a TypeError (the
    /// trampoline returns PYB_E_WRONG_TYPE) with this message.</summary>
    internal sealed class HostArgumentException : ArgumentException
    {
        internal HostArgumentException(string message, Exception inner = null) : base(message, inner) { }
    }

    /// <summary>A result whose wrapper the binding made for it alone: the host function's
    /// trampoline hands its reference to pybridge as it is (no clone, and no wrapper left for
    /// the GC to finalize).</summary>
    internal sealed class HandedOver
    {
        internal readonly PyObject Object;

        internal HandedOver(PyObject obj)
        {
            Object = obj;
        }
    }
}

namespace PyBridge.Interop
{
    internal static unsafe partial class Native
    {
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_host_object_new(IntPtr pointer, PybFreeFn free, out PyObjectHandle obj);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_host_object_get(PyObjectHandle obj, out IntPtr pointer);
    }
}
