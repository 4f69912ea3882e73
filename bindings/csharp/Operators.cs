// Python's operators on PyObject, for statically typed code and for `dynamic` on either side:
// C#'s runtime binder asks only the left operand's meta object, so `2 * arr` (arr dynamic) is
// bound to the static operators here, which it finds on the right operand's runtime type. The
// other operand is a PyObject, a long or a double: an `object` operand would make `"n=" + o`
// call Python's + instead of C#'s string concatenation (user-defined operators win over it).
//
// One rule for equality: ==, != and Equals are Python's `a == b` made a bool; GetHashCode is
// Python's hash(a) folded to 32 bits, and 0 for an unhashable object (so equal unhashable
// objects, such as two equal lists, still have equal hash codes). <, <=, >, >= and the
// arithmetic operators give Python's result as a PyObject (NumPy arrays compare item by item);
// `if (a < b)` uses Python's truth value (operator true/false).
using System;
using System.Threading;

namespace PyBridge
{
    public partial class PyObject
    {
        public static PyObject operator +(PyObject a, PyObject b) { return PythonOperators.Binary("add", a, b); }
        public static PyObject operator +(PyObject a, long b) { return PythonOperators.Binary("add", a, b); }
        public static PyObject operator +(long a, PyObject b) { return PythonOperators.Binary("add", a, b); }
        public static PyObject operator +(PyObject a, double b) { return PythonOperators.Binary("add", a, b); }
        public static PyObject operator +(double a, PyObject b) { return PythonOperators.Binary("add", a, b); }
        public static PyObject operator -(PyObject a, PyObject b) { return PythonOperators.Binary("sub", a, b); }
        public static PyObject operator -(PyObject a, long b) { return PythonOperators.Binary("sub", a, b); }
        public static PyObject operator -(long a, PyObject b) { return PythonOperators.Binary("sub", a, b); }
        public static PyObject operator -(PyObject a, double b) { return PythonOperators.Binary("sub", a, b); }
        public static PyObject operator -(double a, PyObject b) { return PythonOperators.Binary("sub", a, b); }
        public static PyObject operator *(PyObject a, PyObject b) { return PythonOperators.Binary("mul", a, b); }
        public static PyObject operator *(PyObject a, long b) { return PythonOperators.Binary("mul", a, b); }
        public static PyObject operator *(long a, PyObject b) { return PythonOperators.Binary("mul", a, b); }
        public static PyObject operator *(PyObject a, double b) { return PythonOperators.Binary("mul", a, b); }
        public static PyObject operator *(double a, PyObject b) { return PythonOperators.Binary("mul", a, b); }
        public static PyObject operator /(PyObject a, PyObject b) { return PythonOperators.Binary("truediv", a, b); }
        public static PyObject operator /(PyObject a, long b) { return PythonOperators.Binary("truediv", a, b); }
        public static PyObject operator /(long a, PyObject b) { return PythonOperators.Binary("truediv", a, b); }
        public static PyObject operator /(PyObject a, double b) { return PythonOperators.Binary("truediv", a, b); }
        public static PyObject operator /(double a, PyObject b) { return PythonOperators.Binary("truediv", a, b); }
        public static PyObject operator %(PyObject a, PyObject b) { return PythonOperators.Binary("mod", a, b); }
        public static PyObject operator %(PyObject a, long b) { return PythonOperators.Binary("mod", a, b); }
        public static PyObject operator %(long a, PyObject b) { return PythonOperators.Binary("mod", a, b); }
        public static PyObject operator %(PyObject a, double b) { return PythonOperators.Binary("mod", a, b); }
        public static PyObject operator %(double a, PyObject b) { return PythonOperators.Binary("mod", a, b); }
        public static PyObject operator &(PyObject a, PyObject b) { return PythonOperators.Binary("and_", a, b); }
        public static PyObject operator &(PyObject a, long b) { return PythonOperators.Binary("and_", a, b); }
        public static PyObject operator &(long a, PyObject b) { return PythonOperators.Binary("and_", a, b); }
        public static PyObject operator |(PyObject a, PyObject b) { return PythonOperators.Binary("or_", a, b); }
        public static PyObject operator |(PyObject a, long b) { return PythonOperators.Binary("or_", a, b); }
        public static PyObject operator |(long a, PyObject b) { return PythonOperators.Binary("or_", a, b); }
        public static PyObject operator ^(PyObject a, PyObject b) { return PythonOperators.Binary("xor", a, b); }
        public static PyObject operator ^(PyObject a, long b) { return PythonOperators.Binary("xor", a, b); }
        public static PyObject operator ^(long a, PyObject b) { return PythonOperators.Binary("xor", a, b); }
        public static PyObject operator <<(PyObject a, int b) { return PythonOperators.Binary("lshift", a, (long)b); }
        public static PyObject operator >>(PyObject a, int b) { return PythonOperators.Binary("rshift", a, (long)b); }
        public static PyObject operator <(PyObject a, PyObject b) { return PythonOperators.Binary("lt", a, b); }
        public static PyObject operator <(PyObject a, long b) { return PythonOperators.Binary("lt", a, b); }
        public static PyObject operator <(long a, PyObject b) { return PythonOperators.Binary("lt", a, b); }
        public static PyObject operator <(PyObject a, double b) { return PythonOperators.Binary("lt", a, b); }
        public static PyObject operator <(double a, PyObject b) { return PythonOperators.Binary("lt", a, b); }
        public static PyObject operator >(PyObject a, PyObject b) { return PythonOperators.Binary("gt", a, b); }
        public static PyObject operator >(PyObject a, long b) { return PythonOperators.Binary("gt", a, b); }
        public static PyObject operator >(long a, PyObject b) { return PythonOperators.Binary("gt", a, b); }
        public static PyObject operator >(PyObject a, double b) { return PythonOperators.Binary("gt", a, b); }
        public static PyObject operator >(double a, PyObject b) { return PythonOperators.Binary("gt", a, b); }
        public static PyObject operator <=(PyObject a, PyObject b) { return PythonOperators.Binary("le", a, b); }
        public static PyObject operator <=(PyObject a, long b) { return PythonOperators.Binary("le", a, b); }
        public static PyObject operator <=(long a, PyObject b) { return PythonOperators.Binary("le", a, b); }
        public static PyObject operator <=(PyObject a, double b) { return PythonOperators.Binary("le", a, b); }
        public static PyObject operator <=(double a, PyObject b) { return PythonOperators.Binary("le", a, b); }
        public static PyObject operator >=(PyObject a, PyObject b) { return PythonOperators.Binary("ge", a, b); }
        public static PyObject operator >=(PyObject a, long b) { return PythonOperators.Binary("ge", a, b); }
        public static PyObject operator >=(long a, PyObject b) { return PythonOperators.Binary("ge", a, b); }
        public static PyObject operator >=(PyObject a, double b) { return PythonOperators.Binary("ge", a, b); }
        public static PyObject operator >=(double a, PyObject b) { return PythonOperators.Binary("ge", a, b); }
        public static PyObject operator -(PyObject a) { return PythonOperators.Unary("neg", a); }
        public static PyObject operator +(PyObject a) { return PythonOperators.Unary("pos", a); }
        public static PyObject operator ~(PyObject a) { return PythonOperators.Unary("invert", a); }
        public static bool operator true(PyObject a) { return a != null && a.ToBoolean(); }
        public static bool operator false(PyObject a) { return a == null || !a.ToBoolean(); }

        /// <summary>Python's <c>a == b</c> as a bool; null equals only null.</summary>
        public static bool operator ==(PyObject a, PyObject b)
        {
            if (ReferenceEquals(a, b)) return true;
            if (ReferenceEquals(a, null) || ReferenceEquals(b, null)) return false;
            return a.Equals(b);
        }

        public static bool operator !=(PyObject a, PyObject b) { return !(a == b); }

        /// <summary>Python's <c>this == other</c> as a bool (<paramref name="other"/> a PyObject or a
        /// .NET value that converts as an argument). False for null and, unless it is this very
        /// wrapper, for a disposed object. A PythonException when Python's == raises or gives a
        /// result without a truth value (a NumPy array: compare with numpy.array_equal).</summary>
        public override bool Equals(object other)
        {
            if (ReferenceEquals(this, other)) return true;
            PyObject o = other as PyObject;
            if (other == null || IsDisposed || (o != null && o.IsDisposed)) return false;
            return PythonOperators.Truth(PythonOperators.Call("operator", "eq", this, other));
        }

        /// <summary>Python's <c>hash(this)</c> folded to 32 bits; 0 for an unhashable object (a
        /// list, a dict: equal ones must hash alike) and for a disposed one.</summary>
        public override int GetHashCode()
        {
            if (IsDisposed) return 0;
            object h;
            try
            {
                h = PythonOperators.Call("builtins", "hash", this);
            }
            catch (PythonException e)
            {
                if (e.PythonTypeName == "TypeError") return 0;
                throw;
            }
            long v = (long)h;
            return (int)v ^ (int)(v >> 32);
        }
    }

    /// <summary>Calls into Python's <c>operator</c> and <c>builtins</c> modules (and the binding's
    /// host-object module), imported once per interpreter (a PyObject works only in the
    /// interpreter that made it).</summary>
    internal static class PythonOperators
    {
        /// <summary>One imported module in one interpreter.</summary>
        sealed class Cached
        {
            internal string Name;
            internal PyObject Module;
        }

        // Copy on write: readers take the array as it is. Kept short: an entry of an interpreter
        // that ended (or of an engine that shut down) goes at its first failed use.
        static Cached[] cache = new Cached[0];
        const int MaxCached = 16;

        internal static PyObject Binary(string name, object a, object b)
        {
            return AsObject(Call("operator", name, a, b));
        }

        internal static PyObject Unary(string name, object a)
        {
            return AsObject(Call("operator", name, a));
        }

        internal static bool Truth(object value)
        {
            if (value is bool) return (bool)value;
            if (value == null) return false;
            using (PyObject o = value as PyObject ?? PyObject.From(value)) return o.ToBoolean();
        }

        /// <summary>A result as a PyObject (null for None): operators give Python objects.</summary>
        internal static PyObject AsObject(object value)
        {
            return PyObject.Deferred(value);
        }

        /// <summary><c>module.function(*args)</c> through the cached module of the calling
        /// thread's interpreter: the one whose call does not fail as made elsewhere.</summary>
        internal static object Call(string module, string function, params object[] args)
        {
            foreach (object arg in args)
            {
                PyObject o = arg as PyObject;
                if (o != null) o.ThrowIfDisposed(); // before a stale module could be blamed for it
            }
            Cached[] entries = Volatile.Read(ref cache);
            for (int i = entries.Length - 1; i >= 0; i--)
            {
                if (entries[i].Name != module) continue;
                try
                {
                    return entries[i].Module.CallMethod(function, args);
                }
                catch (PyWrongInterpreterException)
                {
                    // Another interpreter's module (or an argument from elsewhere: the fresh
                    // import below then fails the same way and says so).
                }
                catch (ObjectDisposedException)
                {
                    Forget(entries[i]); // its interpreter or engine ended
                }
            }
            var added = new Cached { Name = module, Module = module == HostObjectModule.Name ? HostObjectModule.Load() : PyEngine.Import(module) };
            Remember(added);
            return added.Module.CallMethod(function, args);
        }

        static void Remember(Cached entry)
        {
            while (true)
            {
                Cached[] old = Volatile.Read(ref cache);
                int keep = Math.Min(old.Length, MaxCached - 1);
                var updated = new Cached[keep + 1];
                Array.Copy(old, old.Length - keep, updated, 0, keep);
                updated[keep] = entry;
                if (Interlocked.CompareExchange(ref cache, updated, old) == old)
                {
                    // A call on another thread may still use one: its lease keeps the handle.
                    for (int i = 0; i < old.Length - keep; i++) old[i].Module.Dispose();
                    return;
                }
            }
        }

        static void Forget(Cached entry)
        {
            while (true)
            {
                Cached[] old = Volatile.Read(ref cache);
                int at = Array.IndexOf(old, entry);
                if (at < 0) return;
                var updated = new Cached[old.Length - 1];
                Array.Copy(old, 0, updated, 0, at);
                Array.Copy(old, at + 1, updated, at, old.Length - at - 1);
                if (Interlocked.CompareExchange(ref cache, updated, old) == old)
                {
                    entry.Module.Dispose();
                    return;
                }
            }
        }
    }
}
