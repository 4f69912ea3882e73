using System;
using System.Collections;
using System.Collections.Generic;
using System.Reflection;
using System.Numerics;
using System.Runtime.InteropServices;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>.NET values to and from pyb_value. Plain values travel by value:
    /// null = None, bool, integers (as int64), double/float, string (UTF-8), byte[];
    /// a <see cref="PyObject"/> travels as a borrowed handle.</summary>
    internal static unsafe class Values
    {
        /// <summary>Bytes of scratch space the string/bytes payloads and keyword names need.</summary>
        internal static int ScratchSize(object[] items, string[] kwnames)
        {
            int n = 0;
            if (items != null)
            {
                for (int i = 0; i < items.Length; i++)
                {
                    string s = items[i] as string;
                    if (s != null) n += Utf8.Strict.GetByteCount(s) + 1;
                    else
                    {
                        byte[] b = items[i] as byte[];
                        if (b != null) n += b.Length;
                    }
                }
            }
            if (kwnames != null)
            {
                for (int i = 0; i < kwnames.Length; i++)
                {
                    if (kwnames[i] == null) throw new ArgumentNullException("kwargs", "a keyword name is null");
                    if (kwnames[i].IndexOf('\0') >= 0) throw new ArgumentException("a keyword name contains a NUL character", "kwargs");
                    n += Utf8.Strict.GetByteCount(kwnames[i]) + 1;
                }
            }
            return n;
        }

        /// <summary>Fills <paramref name="values"/> from <paramref name="items"/>, copying payloads into
        /// <paramref name="scratch"/> at <paramref name="offset"/>. Each PyObject item gets a DangerousAddRef;
        /// <paramref name="added"/> counts the items processed so <see cref="Unpin"/> releases exactly those.</summary>
        internal static void Fill(object[] items, PybValue* values, byte* scratch, ref int offset, ref int added)
        {
            for (int i = 0; i < items.Length; i++)
            {
                ToValue(items[i], values + i, scratch, ref offset);
                added = i + 1;
            }
        }

        internal static void Unpin(object[] items, int added)
        {
            for (int i = 0; i < added; i++)
            {
                PyObject o = items[i] as PyObject;
                if (o != null) o.Handle.DangerousRelease();
            }
        }

        internal static void ToValue(object item, PybValue* v, byte* scratch, ref int offset)
        {
            v->Object = 0;
            v->Str.Len = UIntPtr.Zero;
            if (item == null) { v->Tag = Native.PYB_VALUE_NONE; return; }
            if (item is long) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (long)item; return; }
            if (item is int) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (int)item; return; }
            if (item is double) { v->Tag = Native.PYB_VALUE_FLOAT; v->Float64 = (double)item; return; }
            if (item is bool) { v->Tag = Native.PYB_VALUE_BOOL; v->Boolean = (bool)item ? (byte)1 : (byte)0; return; }
            string s = item as string;
            if (s != null)
            {
                int n;
                fixed (char* c = s) n = Utf8.Strict.GetBytes(c, s.Length, scratch + offset, int.MaxValue);
                v->Tag = Native.PYB_VALUE_STR;
                v->Str.Ptr = (IntPtr)(scratch + offset);
                v->Str.Len = (UIntPtr)n;
                scratch[offset + n] = 0;
                offset += n + 1;
                return;
            }
            byte[] b = item as byte[];
            if (b != null)
            {
                v->Tag = Native.PYB_VALUE_BYTES;
                v->Str.Ptr = (IntPtr)(scratch + offset);
                v->Str.Len = (UIntPtr)b.Length;
                if (b.Length > 0) Marshal.Copy(b, 0, (IntPtr)(scratch + offset), b.Length);
                offset += b.Length;
                return;
            }
            PyObject o = item as PyObject;
            if (o != null)
            {
                bool ok = false;
                o.Handle.DangerousAddRef(ref ok); // throws ObjectDisposedException when disposed
                v->Tag = Native.PYB_VALUE_OBJECT;
                v->Object = o.Handle.Raw;
                return;
            }
            if (item is float) { v->Tag = Native.PYB_VALUE_FLOAT; v->Float64 = (float)item; return; }
            if (item is short) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (short)item; return; }
            if (item is byte) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (byte)item; return; }
            if (item is sbyte) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (sbyte)item; return; }
            if (item is ushort) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (ushort)item; return; }
            if (item is uint) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (uint)item; return; }
            if (item is BigInteger)
            {
                // Ops.Marshal turned larger ones into PyObjects first (WithPythonObjects).
                v->Tag = Native.PYB_VALUE_INT; v->Int64 = (long)(BigInteger)item; return;
            }
            if (item is ulong)
            {
                ulong u = (ulong)item;
                if (u > long.MaxValue) throw new OverflowException("ulong " + u + " does not fit in int64; pass a PyObject instead");
                v->Tag = Native.PYB_VALUE_INT; v->Int64 = (long)u; return;
            }
            throw new ArgumentException("cannot pass a " + item.GetType().FullName +
                " to Python: use null, bool, an integer type, double, float, string, byte[], a collection" +
                " (array, list, dictionary, IEnumerable, tuple) or PyObject");
        }

        /// <summary>Returns <paramref name="items"/>, or a copy in which each value that pyb_value
        /// cannot carry is a new Python object (listed in <paramref name="temporaries"/>, which the
        /// caller disposes): a BigInteger outside int64 an int, and .NET collections copies (see
        /// <see cref="CollectionToPython"/>).</summary>
        internal static object[] WithPythonObjects(object[] items, out PyObject[] temporaries)
        {
            temporaries = null;
            object[] copy = items;
            try
            {
                for (int i = 0; i < items.Length; i++)
                {
                    PyObject made;
                    object item = items[i];
                    if (item is BigInteger)
                    {
                        BigInteger b = (BigInteger)item;
                        if (b >= long.MinValue && b <= long.MaxValue) continue;
                        made = PyObject.From(b);
                    }
                    else
                    {
                        made = CollectionToPython(item);
                        if (made == null) continue;
                    }
                    if (copy == items)
                    {
                        copy = (object[])items.Clone();
                        temporaries = new PyObject[items.Length];
                    }
                    temporaries[i] = made;
                    copy[i] = made;
                }
            }
            catch
            {
                if (temporaries != null)
                    foreach (PyObject t in temporaries)
                        if (t != null) t.Dispose();
                throw;
            }
            return copy;
        }

        /// <summary>Whether <see cref="CollectionToPython"/> copies values of this type.</summary>
        internal static bool IsCollection(object item)
        {
            // Exactly byte[]: the runtime lets an sbyte[] pass `is byte[]` too.
            if (item == null || item is string || item.GetType() == typeof(byte[]) || item is PyObject) return false;
            return item is IEnumerable || IsTuple(item.GetType());
        }

        /// <summary>A copy of a .NET collection as a new Python object, or null when
        /// <paramref name="item"/> is none: a dictionary (IDictionary) a dict, a ValueTuple or Tuple
        /// a tuple, any other IEnumerable (arrays of every element type but byte, which is bytes;
        /// List&lt;T&gt;, LINQ sequences) a list. Items convert as arguments do, nested collections
        /// too. For an array without a copy, pass <see cref="PyBuffer.Share{T}"/>'s memoryview.</summary>
        internal static PyObject CollectionToPython(object item)
        {
            if (!IsCollection(item)) return null;
            IDictionary dictionary = item as IDictionary;
            if (dictionary != null) return PyObject.NewDict(dictionary);
            if (IsTuple(item.GetType())) return PyObject.NewTuple(TupleItems(item));
            var list = new List<object>();
            foreach (object element in (IEnumerable)item) list.Add(element);
            return PyObject.NewList(list.ToArray());
        }

        static bool IsTuple(Type t)
        {
            if (!t.IsGenericType) return false;
            string name = t.GetGenericTypeDefinition().FullName;
            return name.StartsWith("System.ValueTuple`", StringComparison.Ordinal) ||
                   name.StartsWith("System.Tuple`", StringComparison.Ordinal);
        }

        /// <summary>Item1, Item2, ... and the items of Rest (tuples of eight or more).</summary>
        static object[] TupleItems(object tuple)
        {
            var items = new List<object>();
            while (true)
            {
                Type t = tuple.GetType();
                int arity = t.GetGenericArguments().Length;
                for (int i = 1; i <= Math.Min(arity, 7); i++) items.Add(Member(tuple, "Item" + i));
                if (arity < 8) return items.ToArray();
                tuple = Member(tuple, "Rest");
            }
        }

        static object Member(object tuple, string name)
        {
            FieldInfo field = tuple.GetType().GetField(name); // ValueTuple: fields
            return field != null ? field.GetValue(tuple) : tuple.GetType().GetProperty(name).GetValue(tuple, null);
        }

        /// <summary>Converts a result value; an OBJECT result becomes an owned PyObject.
        /// STR/BYTES results are copied at once (they point into a per-thread buffer).</summary>
        internal static object FromValue(ref PybValue v)
        {
            switch (v.Tag)
            {
                case Native.PYB_VALUE_NONE: return null;
                case Native.PYB_VALUE_BOOL: return v.Boolean != 0;
                case Native.PYB_VALUE_INT: return v.Int64;
                case Native.PYB_VALUE_FLOAT: return v.Float64;
                case Native.PYB_VALUE_STR: return Utf8.Decode((byte*)v.Str.Ptr, checked((int)(ulong)v.Str.Len));
                case Native.PYB_VALUE_BYTES:
                    {
                        byte[] b = new byte[checked((int)(ulong)v.Str.Len)];
                        if (b.Length > 0) Marshal.Copy(v.Str.Ptr, b, 0, b.Length);
                        return b;
                    }
                case Native.PYB_VALUE_OBJECT: return new PyObject(v.Object);
                default: throw new PyBridgeException("pybridge returned an unknown value tag " + v.Tag);
            }
        }

        /// <summary>Converts a result to T: plain values directly (int to double allowed,
        /// int64 to int checked), a PyObject through its conversion functions (then disposed),
        /// or any value to a PyObject.</summary>
        /// <summary>A Python object as <paramref name="t"/> (a PyObject type, a typed view, long,
        /// int, BigInteger, double, bool, string, byte[], or object), leaving <paramref name="o"/>
        /// usable: a PyObject result is a new reference the caller owns.</summary>
        internal static object ConvertObject(PyObject o, Type t)
        {
            object plain;
            if (o.TryGetPlain(out plain) && t != typeof(object) && t != typeof(PyObject))
            {
                // A deferred result: from its .NET value, without making the Python object.
                if (t.IsInstanceOfType(plain)) return plain;
                if (plain is long)
                {
                    long l = (long)plain;
                    if (t == typeof(int)) return checked((int)l);
                    if (t == typeof(double)) return (double)l;
                    if (t == typeof(BigInteger)) return new BigInteger(l);
                }
            }
            string viewType = TypedViews.PythonTypeOf(t);
            if (viewType != null) return TypedViews.Of(o, t, viewType);
            if (t == typeof(PyObject) || t == typeof(object)) return o.Clone();
            if (t == typeof(long)) return o.ToInt64();
            if (t == typeof(BigInteger)) return o.ToBigInteger();
            if (t == typeof(int)) return checked((int)o.ToInt64());
            if (t == typeof(double)) return o.ToDouble();
            if (t == typeof(bool)) return o.ToBoolean();
            if (t == typeof(string)) return o.ToStringValue();
            if (t == typeof(byte[])) return o.ToBytes();
            throw new InvalidCastException("cannot convert a Python object to " + t.FullName);
        }

        internal static T To<T>(object value)
        {
            if (value is T)
                return (T)value;
            Type t = typeof(T);
            if (t == typeof(object))
                return (T)value;
            if (t == typeof(PyObject))
                return (T)(object)PyObject.From(value);
            if (value == null)
            {
                if (!t.IsValueType || Nullable.GetUnderlyingType(t) != null)
                    return default(T);
                throw new InvalidCastException("Python returned None, which cannot convert to " + t.FullName);
            }
            PyObject o = value as PyObject;
            if (o != null)
            {
                using (o) return (T)ConvertObject(o, t);
            }
            if (TypedViews.PythonTypeOf(t) != null)
                throw new InvalidCastException("cannot convert " + value.GetType().FullName + " (" + value + ") to " + t.FullName);
            if (value is long)
            {
                long l = (long)value;
                if (t == typeof(int)) return (T)(object)checked((int)l);
                if (t == typeof(double)) return (T)(object)(double)l;
                if (t == typeof(BigInteger)) return (T)(object)new BigInteger(l);
            }
            throw new InvalidCastException("cannot convert " + value.GetType().FullName + " (" + value + ") to " + t.FullName);
        }
    }
}
