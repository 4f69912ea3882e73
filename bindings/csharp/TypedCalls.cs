using System;
using PyBridge.Interop;

namespace PyBridge
{
    // Typed calls: the arguments go straight into a stackalloc'd pyb_value array and the result
    // comes straight out of the pyb_value, so a call with long/int/double/bool arguments and a
    // long/double/bool result allocates nothing and boxes nothing (the params object[] overloads
    // allocate the array and box every argument and the result). Other types take the general
    // path, with the same conversions and exceptions as Call<T>(params object[]).
    public partial class PyObject
    {
        /// <summary><c>x(a)</c> without allocation for long/int/double/bool arguments and a
        /// long/double/bool result; other types convert as <see cref="Call{T}(object[])"/> does.</summary>
        public unsafe TR Call<T1, TR>(T1 a)
        {
            PybValue* args = stackalloc PybValue[1];
            if (!TypedValues.TryPut(a, args))
                return Values.To<TR>(CallKw(new object[] { a }, null));
            return TypedValues.CallWith<TR>(this, args, 1);
        }

        /// <summary><c>x(a, b)</c>; see <see cref="Call{T1, TR}(T1)"/>.</summary>
        public unsafe TR Call<T1, T2, TR>(T1 a, T2 b)
        {
            PybValue* args = stackalloc PybValue[2];
            if (!TypedValues.TryPut(a, args) || !TypedValues.TryPut(b, args + 1))
                return Values.To<TR>(CallKw(new object[] { a, b }, null));
            return TypedValues.CallWith<TR>(this, args, 2);
        }

        /// <summary><c>x(a, b, c)</c>; see <see cref="Call{T1, TR}(T1)"/>.</summary>
        public unsafe TR Call<T1, T2, T3, TR>(T1 a, T2 b, T3 c)
        {
            PybValue* args = stackalloc PybValue[3];
            if (!TypedValues.TryPut(a, args) || !TypedValues.TryPut(b, args + 1) || !TypedValues.TryPut(c, args + 2))
                return Values.To<TR>(CallKw(new object[] { a, b, c }, null));
            return TypedValues.CallWith<TR>(this, args, 3);
        }

        /// <summary>A delegate that calls this callable through <see cref="Call{T1, TR}(T1)"/>:
        /// <c>var inc = f.AsFunc&lt;long, long&gt;(); inc(41)</c>. It uses this object, so keep
        /// the object undisposed while the delegate is in use.</summary>
        public Func<T1, TR> AsFunc<T1, TR>() { return a => Call<T1, TR>(a); }

        /// <summary>See <see cref="AsFunc{T1, TR}"/>.</summary>
        public Func<T1, T2, TR> AsFunc<T1, T2, TR>() { return (a, b) => Call<T1, T2, TR>(a, b); }

        /// <summary>See <see cref="AsFunc{T1, TR}"/>.</summary>
        public Func<T1, T2, T3, TR> AsFunc<T1, T2, T3, TR>() { return (a, b, c) => Call<T1, T2, T3, TR>(a, b, c); }
    }

    /// <summary>Generic values to and from pyb_value without boxing. <c>typeof(T) == typeof(long)</c>
    /// is a constant in each value-type instantiation, so the JIT keeps one branch, and in it
    /// <c>(long)(object)x</c> (or <c>(T)(object)v</c>) is a box and unbox of the same type, which
    /// the JITs remove: measured on Mono 6.8, CoreCLR 3.1 and .NET 8, 1.5 million typed calls ran no
    /// gen0 collection, as fast as with <c>__makeref</c>/<c>__refvalue</c>, which this used before
    /// (Benchmark checks the allocation where the runtime counts it).</summary>
    internal static unsafe class TypedValues
    {
        /// <summary>Writes <paramref name="item"/> to <paramref name="v"/> when it is a long, int,
        /// double or bool; false for any other type (the caller takes the general path).</summary>
        internal static bool TryPut<T>(T item, PybValue* v)
        {
            v->Object = 0;
            v->Str.Len = UIntPtr.Zero;
            if (typeof(T) == typeof(long)) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (long)(object)item; return true; }
            if (typeof(T) == typeof(int)) { v->Tag = Native.PYB_VALUE_INT; v->Int64 = (int)(object)item; return true; }
            if (typeof(T) == typeof(double)) { v->Tag = Native.PYB_VALUE_FLOAT; v->Float64 = (double)(object)item; return true; }
            if (typeof(T) == typeof(bool)) { v->Tag = Native.PYB_VALUE_BOOL; v->Boolean = (bool)(object)item ? (byte)1 : (byte)0; return true; }
            return false;
        }

        /// <summary>Calls <paramref name="callable"/> with <paramref name="count"/> positional values
        /// and converts the result.</summary>
        internal static TR CallWith<TR>(PyObject callable, PybValue* args, int count)
        {
            PybValue result;
            PyStatus.Check(Native.pyb_call(callable.Handle, args, (UIntPtr)count, null, UIntPtr.Zero, out result));
            return Take<TR>(ref result);
        }

        /// <summary>The result as TR: directly when its tag is TR's own (INT for long, FLOAT for
        /// double, BOOL for bool); otherwise as <see cref="Values.To{T}"/> converts it (which also
        /// takes ownership of an object result).</summary>
        internal static TR Take<TR>(ref PybValue v)
        {
            if (typeof(TR) == typeof(long) && v.Tag == Native.PYB_VALUE_INT) return (TR)(object)v.Int64;
            if (typeof(TR) == typeof(double) && v.Tag == Native.PYB_VALUE_FLOAT) return (TR)(object)v.Float64;
            if (typeof(TR) == typeof(bool) && v.Tag == Native.PYB_VALUE_BOOL) return (TR)(object)(v.Boolean != 0);
            return Values.To<TR>(Values.FromValue(ref v));
        }
    }
}
