// The native operations that take arrays of values (calls, attributes and items, new objects), as
// one typed helper each over one marshalling path. Each helper describes its native call as a
// struct implementing INativeCall, so Marshal<TCall> is compiled once per operation and calls it
// directly (no enum switch, no delegate, no unused outputs).
using System;
using System.Collections.Generic;
using PyBridge.Interop;

namespace PyBridge
{
    internal static unsafe class Ops
    {
        private const int StackValues = 16;

        /// <summary><c>callable(*args, **kwargs)</c>; the result as pybridge returned it.</summary>
        internal static PybValue Call(PyObject callable, object[] args, IDictionary<string, object> kwargs)
        {
            string[] names;
            object[] items = Join(args, kwargs, out names);
            var call = new CallNative { Target = callable };
            Marshal(ref call, items, names);
            return call.Result;
        }

        /// <summary><c>obj.name(*args, **kwargs)</c>.</summary>
        internal static PybValue CallMethod(PyObject obj, byte[] name, object[] args, IDictionary<string, object> kwargs)
        {
            string[] names;
            object[] items = Join(args, kwargs, out names);
            var call = new CallMethodNative { Target = obj, Name = name };
            Marshal(ref call, items, names);
            return call.Result;
        }

        /// <summary><c>obj.name = value</c>.</summary>
        internal static void SetAttr(PyObject obj, byte[] name, object value)
        {
            var call = new SetAttrNative { Target = obj, Name = name };
            Marshal(ref call, new object[] { value }, null);
        }

        /// <summary><c>obj[key]</c>.</summary>
        internal static PybValue GetItem(PyObject obj, object key)
        {
            var call = new GetItemNative { Target = obj };
            Marshal(ref call, new object[] { key }, null);
            return call.Result;
        }

        /// <summary><c>obj[key] = value</c>.</summary>
        internal static void SetItem(PyObject obj, object key, object value)
        {
            var call = new SetItemNative { Target = obj };
            Marshal(ref call, new object[] { key, value }, null);
        }

        /// <summary>A new Python object of a .NET value.</summary>
        internal static PyObjectHandle FromValue(object value)
        {
            var call = new FromValueNative();
            Marshal(ref call, new object[] { value }, null);
            return call.Made;
        }

        internal static PyObjectHandle NewTuple(object[] items)
        {
            var call = new NewTupleNative();
            Marshal(ref call, items, null);
            return call.Made;
        }

        internal static PyObjectHandle NewList(object[] items)
        {
            var call = new NewListNative();
            Marshal(ref call, items, null);
            return call.Made;
        }

        /// <summary>A new dict of <paramref name="keysThenValues"/>: the keys, then the values in the same order.</summary>
        internal static PyObjectHandle NewDict(object[] keysThenValues)
        {
            var call = new NewDictNative();
            Marshal(ref call, keysThenValues, null);
            return call.Made;
        }

        /// <summary>The positional arguments followed by the keyword arguments' values, with the
        /// keywords' names in <paramref name="names"/> (null when there are none).</summary>
        static object[] Join(object[] args, IDictionary<string, object> kwargs, out string[] names)
        {
            if (args == null) args = new object[0];
            if (kwargs == null || kwargs.Count == 0) { names = null; return args; }
            object[] all = new object[args.Length + kwargs.Count];
            Array.Copy(args, all, args.Length);
            names = new string[kwargs.Count];
            int i = 0;
            foreach (KeyValuePair<string, object> kv in kwargs)
            {
                names[i] = kv.Key;
                all[args.Length + i] = kv.Value;
                i++;
            }
            return all;
        }

        /// <summary>One native operation on marshalled values; returns its status. Outputs stay in
        /// the struct (Marshal takes it by reference).</summary>
        internal interface INativeCall
        {
            /// <summary><paramref name="values"/>: <paramref name="count"/> values, the last
            /// <paramref name="nkw"/> of them keyword arguments named by <paramref name="kwnames"/>
            /// (NUL-terminated UTF-8; null when there are none).</summary>
            int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw);
        }

        struct CallNative : INativeCall
        {
            internal PyObject Target;
            internal PybValue Result;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_call(Target.Handle, values, (UIntPtr)(count - nkw), kwnames, (UIntPtr)nkw, out Result);
            }
        }

        struct CallMethodNative : INativeCall
        {
            internal PyObject Target;
            internal byte[] Name;
            internal PybValue Result;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_call_method(Target.Handle, Name, values, (UIntPtr)(count - nkw), kwnames, (UIntPtr)nkw, out Result);
            }
        }

        struct SetAttrNative : INativeCall
        {
            internal PyObject Target;
            internal byte[] Name;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_setattr(Target.Handle, Name, values);
            }
        }

        struct GetItemNative : INativeCall
        {
            internal PyObject Target;
            internal PybValue Result;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_getitem(Target.Handle, values, out Result);
            }
        }

        struct SetItemNative : INativeCall
        {
            internal PyObject Target;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_setitem(Target.Handle, values, values + 1);
            }
        }

        struct FromValueNative : INativeCall
        {
            internal PyObjectHandle Made;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_object_from_value(values, out Made);
            }
        }

        struct NewTupleNative : INativeCall
        {
            internal PyObjectHandle Made;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_tuple_new(values, (UIntPtr)count, out Made);
            }
        }

        struct NewListNative : INativeCall
        {
            internal PyObjectHandle Made;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_list_new(values, (UIntPtr)count, out Made);
            }
        }

        struct NewDictNative : INativeCall
        {
            internal PyObjectHandle Made;

            public int Invoke(PybValue* values, int count, IntPtr* kwnames, int nkw)
            {
                return Native.pyb_dict_new(values, values + count / 2, (UIntPtr)(count / 2), out Made);
            }
        }

        /// <summary>Marshals <paramref name="items"/> (and the keyword names of a call), runs
        /// <paramref name="call"/> on them and checks its status; the values' pins and the
        /// temporary Python objects made for them are released whatever happens.</summary>
        static void Marshal<TCall>(ref TCall call, object[] items, string[] kwnames) where TCall : struct, INativeCall
        {
            PyObject[] temporaries;
            items = Values.WithPythonObjects(items, out temporaries);
            int count = items.Length;
            int nkw = kwnames == null ? 0 : kwnames.Length;
            int scratchSize = Values.ScratchSize(items, kwnames);
            byte[] scratch = scratchSize == 0 ? null : new byte[scratchSize];
            PybValue[] heapValues = count > StackValues ? new PybValue[count] : null;
            PybValue* stackValues = stackalloc PybValue[StackValues];
            IntPtr* kw = stackalloc IntPtr[nkw == 0 ? 1 : nkw];
            int added = 0;
            fixed (byte* s = scratch)
            fixed (PybValue* hv = heapValues)
            {
                PybValue* values = hv != null ? hv : stackValues;
                try
                {
                    int offset = 0;
                    Values.Fill(items, values, s, ref offset, ref added);
                    for (int i = 0; i < nkw; i++)
                    {
                        kw[i] = (IntPtr)(s + offset);
                        fixed (char* c = kwnames[i])
                            offset += Utf8.Strict.GetBytes(c, kwnames[i].Length, s + offset, int.MaxValue);
                        s[offset++] = 0;
                    }
                    PyStatus.Check(call.Invoke(values, count, nkw == 0 ? null : kw, nkw));
                }
                finally
                {
                    Values.Unpin(items, added);
                    if (temporaries != null)
                        foreach (PyObject temporary in temporaries)
                            if (temporary != null) temporary.Dispose();
                }
            }
        }
    }
}
