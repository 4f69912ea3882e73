using System;
using System.Collections;
using System.Collections.Generic;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>A reference to a Python object. Dispose it (or let the GC finalize it) to release
    /// the reference; every member may be called from any thread, with or without a GIL scope
    /// (pybridge takes the GIL for each call when the thread does not hold it).</summary>
    public partial class PyObject : IDisposable, IEnumerable
    {
        // Null while a deferred object has not needed its Python object yet (see Deferred).
        PyObjectHandle handle;
        // The .NET value of a deferred object: a plain result (bool, long, double, string,
        // byte[]) of a dynamic operation. Python's values of these types are immutable, so the
        // value stays right after the object is made.
        readonly object plain;

        /// <summary>Takes over <paramref name="raw"/>, a new reference the caller owned (the
        /// object of a pyb_value result).</summary>
        internal PyObject(ulong raw)
        {
            handle = new PyObjectHandle(raw);
        }

        internal PyObject(PyObjectHandle handle)
        {
            this.handle = handle;
        }

        PyObject(object plain)
        {
            this.plain = plain;
        }

        /// <summary>A plain result of a dynamic operation as a PyObject (null for None) that makes
        /// its Python object only when used as one: <c>string s = m.greet("x")</c> costs no
        /// second call and leaves no handle for the finalizer, while <c>m.greet("x").upper()</c>
        /// works. The object is made in the interpreter of the thread that first needs it, as a
        /// plain argument would be.</summary>
        internal static PyObject Deferred(object value)
        {
            if (value == null) return null;
            return value as PyObject ?? new PyObject(value);
        }

        /// <summary>The handle, made now for a deferred object.</summary>
        internal PyObjectHandle Handle
        {
            get
            {
                PyObjectHandle h = Volatile.Read(ref handle);
                return h ?? Materialize();
            }
        }

        PyObjectHandle Materialize()
        {
            PyObjectHandle made = Ops.FromValue(plain);
            PyObjectHandle first = Interlocked.CompareExchange(ref handle, made, null);
            if (first == null) return made;
            made.Dispose(); // another thread made it first (or disposed this object)
            return first;
        }

        /// <summary>The .NET value of a deferred object, when this is one and not disposed.</summary>
        internal bool TryGetPlain(out object value)
        {
            value = plain;
            return plain != null && !IsDisposed;
        }

        /// <summary>The SafeHandle behind this object.</summary>
        public SafeHandle SafeHandle { get { return Handle; } }

        /// <summary>The raw pyb_object handle, for C code of the application's that takes a
        /// pyb_object (a uint64_t); valid until Dispose.</summary>
        public ulong DangerousGetHandle()
        {
            ThrowIfDisposed();
            return Handle.Raw;
        }

        public bool IsDisposed
        {
            get
            {
                PyObjectHandle h = Volatile.Read(ref handle);
                return h != null && h.IsClosed;
            }
        }

        /// <summary>Releases the reference; a second call does nothing.</summary>
        public void Dispose()
        {
            PyObjectHandle h = Volatile.Read(ref handle);
            if (h == null)
            {
                // Deferred and never made: leave a closed handle, so any later use is disposed.
                var closed = new PyObjectHandle(0);
                closed.Dispose();
                h = Interlocked.CompareExchange(ref handle, closed, null);
                if (h == null) return;
            }
            h.Dispose();
        }

        internal void ThrowIfDisposed()
        {
            if (IsDisposed)
                throw new ObjectDisposedException("PyObject", "PyObject was disposed");
        }

        /// <summary><c>foreach</c> over <c>iter(x)</c> for any Python iterable (also through
        /// <c>dynamic</c>): each item a PyObject as dynamic results are (null for None), yours to
        /// dispose. The typed views enumerate converted items instead (see <see cref="Iterate"/>).</summary>
        IEnumerator IEnumerable.GetEnumerator()
        {
            foreach (object item in Iterate()) yield return Deferred(item);
        }

        // ---- construction and conversions ----

        /// <summary>A Python object from a .NET value (null, bool, integer, double, string, byte[],
        /// or a PyObject, which is cloned).</summary>
        public static unsafe PyObject From(object value)
        {
            return new PyObject(Ops.FromValue(value));
        }

        public static PyObject From(long value) { return From((object)value); }
        public static PyObject From(double value) { return From((object)value); }
        public static PyObject From(bool value) { return From((object)value); }
        public static PyObject From(string value) { return From((object)value); }
        public static PyObject From(byte[] value) { return From((object)value); }

        /// <summary>A new tuple of the given values.</summary>
        public static PyTuple NewTuple(params object[] items)
        {
            return new PyTuple(Ops.NewTuple(items ?? new object[0]));
        }

        /// <summary>A new list of the given values.</summary>
        public static PyList NewList(params object[] items)
        {
            return new PyList(Ops.NewList(items ?? new object[0]));
        }

        /// <summary>A new dict with the given entries.</summary>
        public static PyDict NewDict(IDictionary items)
        {
            if (items == null) throw new ArgumentNullException("items");
            object[] kv = new object[items.Count * 2];
            int i = 0;
            foreach (DictionaryEntry e in items)
            {
                kv[i] = e.Key;
                kv[items.Count + i] = e.Value;
                i++;
            }
            return new PyDict(Ops.NewDict(kv));
        }

        /// <summary>A second reference to the same object; dispose both.</summary>
        public PyObject Clone()
        {
            return new PyObject(CloneHandle());
        }

        /// <summary>A new handle to the same object, owned by the caller.</summary>
        internal PyObjectHandle CloneHandle()
        {
            PyObjectHandle h;
            PyStatus.Check(Native.pyb_object_clone(Handle, out h));
            return h;
        }

        /// <summary>The value of a Python int (or subclass such as bool).
        /// InvalidCastException: not an int; OverflowException: outside int64.</summary>
        public long ToInt64()
        {
            PyObjectHandle raw = Handle;
            long v;
            PyStatus.Check(Native.pyb_object_to_int64(raw, out v));
            return v;
        }

        /// <summary>The value of a Python int (or subclass) of any size. InvalidCastException: not an int.</summary>
        public BigInteger ToBigInteger()
        {
            try
            {
                return new BigInteger(ToInt64());
            }
            catch (OverflowException)
            {
                // Beyond int64: its two's-complement bytes, little-endian, as BigInteger reads them
                // (no decimal text, which CPython limits to 4300 digits).
                long bits = CallMethod<long>("bit_length");
                using (PyObject intType = Builtin("int"))
                {
                    byte[] bytes = intType.CallMethodKw<byte[]>("to_bytes", new object[] { this, bits / 8 + 1, "little" },
                        new Dictionary<string, object> { { "signed", true } });
                    return new BigInteger(bytes);
                }
            }
        }

        /// <summary>A Python int of any size.</summary>
        public static PyObject From(BigInteger value)
        {
            if (value >= long.MinValue && value <= long.MaxValue) return From((long)value);
            using (PyObject intType = Builtin("int"))
                return intType.CallMethodKw<PyObject>("from_bytes", new object[] { value.ToByteArray(), "little" },
                    new Dictionary<string, object> { { "signed", true } });
        }

        /// <summary>A builtin by name, from the builtins module (never a shadowing global).</summary>
        static PyObject Builtin(string name)
        {
            using (PyObject builtins = PyEngine.Import("builtins"))
                return builtins.GetAttr<PyObject>(name);
        }

        /// <summary>The value of a Python float or int as a double.</summary>
        public double ToDouble()
        {
            PyObjectHandle raw = Handle;
            double v;
            PyStatus.Check(Native.pyb_object_to_double(raw, out v));
            return v;
        }

        /// <summary>Python's <c>bool(x)</c>.</summary>
        public bool ToBoolean()
        {
            PyObjectHandle raw = Handle;
            bool v;
            PyStatus.Check(Native.pyb_object_to_bool(raw, out v));
            return v;
        }

        /// <summary>The text of a Python str (InvalidCastException for any other type), named as
        /// <see cref="ToInt64"/> and the other strict conversions are; <see cref="ToString"/> is
        /// Python's <c>str(x)</c> of any object.</summary>
        public unsafe string ToStringValue()
        {
            PyObjectHandle raw = Handle;
            UIntPtr len;
            PyStatus.Check(Native.pyb_object_to_string(raw, null, UIntPtr.Zero, out len));
            byte[] buf = new byte[(int)(ulong)len + 1];
            fixed (byte* p = buf)
            {
                PyStatus.Check(Native.pyb_object_to_string(raw, p, (UIntPtr)buf.Length, out len));
                return Utf8.Decode(p, (int)(ulong)len);
            }
        }

        /// <summary>The contents of a Python bytes or bytearray.</summary>
        public unsafe byte[] ToBytes()
        {
            PyObjectHandle raw = Handle;
            UIntPtr len;
            PyStatus.Check(Native.pyb_object_to_bytes(raw, null, UIntPtr.Zero, out len));
            byte[] buf = new byte[(int)(ulong)len];
            fixed (byte* p = buf)
            {
                PyStatus.Check(Native.pyb_object_to_bytes(raw, p, (UIntPtr)buf.Length, out len));
            }
            if ((int)(ulong)len != buf.Length)
                throw new PyBridgeException("bytearray changed size during the copy");
            return buf;
        }

        /// <summary>This object as <typeparamref name="T"/>: long, int, BigInteger, double, bool,
        /// string, byte[], PyObject (a new reference), or a typed view (<see cref="PyList"/>,
        /// <see cref="PyTuple"/>, <see cref="PySequence"/>, <see cref="PyDict"/>; a new reference
        /// the caller disposes). This object stays usable. InvalidCastException (naming the
        /// object's Python type for a view) when it is not one.</summary>
        public T As<T>()
        {
            return (T)Values.ConvertObject(this, typeof(T));
        }

        /// <summary>Python's <c>str(x)</c>; for a disposed object, "&lt;disposed PyObject&gt;".</summary>
        /// <summary><c>str(object)</c>; never throws (logs and debuggers call it at any time):
        /// a description of why instead when the object cannot be asked.</summary>
        public override string ToString()
        {
            if (IsDisposed) return "<disposed PyObject>";
            if (plain is string) return (string)plain;
            try
            {
                return CallMethod<string>("__str__");
            }
            catch (ObjectDisposedException)
            {
                return "<PyObject of an engine that has shut down>";
            }
            catch (PyEngineNotRunningException)
            {
                return "<PyObject: the engine is not running>";
            }
            catch (PyEngineShuttingDownException)
            {
                return "<PyObject: the engine is shutting down>";
            }
            catch (PythonException e)
            {
                return "<PyObject whose str() raised " + e.PythonTypeName + ">";
            }
            catch (Exception e)
            {
                return "<PyObject: str() failed with " + e.GetType().Name + ">";
            }
        }

        // ---- attributes, items, length, iteration ----

        public object GetAttr(string name)
        {
            byte[] n = Utf8.Encode(name, "name");
            if (n == null) throw new ArgumentNullException("name");
            PyObjectHandle raw = Handle;
            PybValue v;
            PyStatus.Check(Native.pyb_getattr(raw, n, out v));
            return Values.FromValue(ref v);
        }

        public T GetAttr<T>(string name) { return Values.To<T>(GetAttr(name)); }

        public void SetAttr(string name, object value)
        {
            byte[] n = Utf8.Encode(name, "name");
            if (n == null) throw new ArgumentNullException("name");
            Ops.SetAttr(this, n, value);
        }

        /// <summary>Python's <c>hasattr(x, name)</c>.</summary>
        public bool HasAttr(string name)
        {
            try
            {
                object v = GetAttr(name);
                IDisposable d = v as IDisposable;
                if (d != null) d.Dispose();
                return true;
            }
            catch (PythonException e)
            {
                if (e.PythonTypeName == "AttributeError") return false;
                throw;
            }
        }

        public object GetItem(object key)
        {
            PybValue v = Ops.GetItem(this, key);
            return Values.FromValue(ref v);
        }

        public T GetItem<T>(object key) { return Values.To<T>(GetItem(key)); }

        public void SetItem(object key, object value)
        {
            Ops.SetItem(this, key, value);
        }

        /// <summary><c>x[key]</c>, read and written.</summary>
        public object this[object key]
        {
            get { return GetItem(key); }
            set { SetItem(key, value); }
        }

        /// <summary>Python's <c>len(x)</c>.</summary>
        public long Length
        {
            get
            {
                {
                    PyObjectHandle raw = Handle;
                    UIntPtr n;
                    PyStatus.Check(Native.pyb_len(raw, out n));
                    return (long)(ulong)n;
                }
            }
        }

        /// <summary>Iterates <c>iter(x)</c>, converting each item like a call result.</summary>
        public IEnumerable<object> Iterate()
        {
            PyObjectHandle it;
            PyStatus.Check(Native.pyb_iter(Handle, out it));
            return IterateFrom(new PyObject(it));
        }

        private static IEnumerable<object> IterateFrom(PyObject iterator)
        {
            using (iterator)
            {
                while (true)
                {
                    PybValue v;
                    bool done;
                    PyStatus.Check(Native.pyb_iter_next(iterator.Handle, out v, out done));
                    if (done) yield break;
                    yield return Values.FromValue(ref v);
                }
            }
        }

        // ---- calls ----

        /// <summary><c>x(*args)</c>; the result converted (None: null, bool, long, double, string,
        /// byte[], or a PyObject the caller owns).</summary>
        public object Call(params object[] args)
        {
            return CallKw(args, null);
        }

        public T Call<T>(params object[] args) { return Values.To<T>(CallKw(args, null)); }

        /// <summary><c>x(*args, **kwargs)</c>.</summary>
        public object CallKw(object[] args, IDictionary<string, object> kwargs)
        {
            PybValue v = Ops.Call(this, args, kwargs);
            return Values.FromValue(ref v);
        }

        public T CallKw<T>(object[] args, IDictionary<string, object> kwargs) { return Values.To<T>(CallKw(args, kwargs)); }

        /// <summary><c>x.name(*args)</c>.</summary>
        public object CallMethod(string name, params object[] args)
        {
            return CallMethodKw(name, args, null);
        }

        public T CallMethod<T>(string name, params object[] args) { return Values.To<T>(CallMethodKw(name, args, null)); }

        /// <summary><c>x.name(*args, **kwargs)</c>.</summary>
        public object CallMethodKw(string name, object[] args, IDictionary<string, object> kwargs)
        {
            byte[] n = Utf8.Encode(name, "name");
            if (n == null) throw new ArgumentNullException("name");
            PybValue v = Ops.CallMethod(this, n, args, kwargs);
            return Values.FromValue(ref v);
        }

        public T CallMethodKw<T>(string name, object[] args, IDictionary<string, object> kwargs)
        {
            return Values.To<T>(CallMethodKw(name, args, kwargs));
        }
    }

    /// <summary>A namespace (a dict with <c>__builtins__</c>) for <see cref="PyEngine.Run"/> and
    /// <see cref="PyEngine.Eval"/>: scripts in different scopes do not see each other's globals.</summary>
    public sealed class PyScope : PyObject
    {
        internal PyScope(PyObjectHandle handle) : base(handle) { }

        /// <summary>Runs statements in this scope.</summary>
        public void Run(string code, string filename = null) { PyEngine.Run(code, this, filename); }

        /// <summary>Evaluates an expression in this scope.</summary>
        public object Eval(string expression, string filename = null) { return PyEngine.Eval(expression, this, filename); }

        public T Eval<T>(string expression, string filename = null) { return PyEngine.Eval<T>(expression, this, filename); }
    }
}
