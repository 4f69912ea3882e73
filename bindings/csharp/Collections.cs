using System;
using System.Collections;
using System.Collections.Generic;

namespace PyBridge
{
    /// <summary>A Python list or tuple seen from C#: <c>Count</c>, an indexer, <c>foreach</c>, and
    /// <see cref="ToList{T}"/>. Items convert like call results (a PyObject item is the caller's to
    /// dispose). Get one with <c>Eval&lt;PyList&gt;</c>, <c>Call&lt;PyTuple&gt;</c> and the like, or
    /// <see cref="PyObject.NewList"/> / <see cref="PyObject.NewTuple"/>.</summary>
    public abstract class PySequence : PyObject, IEnumerable<object>
    {
        internal PySequence(PyObjectHandle handle) : base(handle) { }

        /// <summary><c>len(x)</c>.</summary>
        public int Count { get { return checked((int)Length); } }

        /// <summary><c>x[index]</c> (negative indexes count from the end, as in Python).</summary>
        public object this[int index] { get { return GetItem((long)index); } }

        public T Get<T>(int index) { return GetItem<T>((long)index); }

        public IEnumerator<object> GetEnumerator() { return Iterate().GetEnumerator(); }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>Every item converted to <typeparamref name="T"/>.</summary>
        public List<T> ToList<T>()
        {
            var list = new List<T>(Count);
            foreach (object item in this) list.Add(Values.To<T>(item));
            return list;
        }
    }

    /// <summary>A Python <c>list</c>.</summary>
    public sealed class PyList : PySequence
    {
        internal PyList(PyObjectHandle handle) : base(handle) { }

        /// <summary><c>x[index]</c>, read and written.</summary>
        public new object this[int index]
        {
            get { return GetItem((long)index); }
            set { SetItem((long)index, value); }
        }

        /// <summary><c>x.append(item)</c>.</summary>
        public void Add(object item) { CallMethod("append", item); }
    }

    /// <summary>A Python <c>tuple</c>.</summary>
    public sealed class PyTuple : PySequence
    {
        internal PyTuple(PyObjectHandle handle) : base(handle) { }
    }

    /// <summary>A Python <c>dict</c> seen from C#: <c>Count</c>, the indexer, <c>foreach</c> over
    /// key/value pairs, <see cref="ContainsKey"/> and <see cref="ToDictionary{K, V}"/>.</summary>
    public sealed class PyDict : PyObject, IEnumerable<KeyValuePair<object, object>>
    {
        internal PyDict(PyObjectHandle handle) : base(handle) { }

        /// <summary><c>len(d)</c>.</summary>
        public int Count { get { return checked((int)Length); } }

        /// <summary><c>key in d</c>.</summary>
        public bool ContainsKey(object key) { return CallMethod<bool>("__contains__", key); }

        public IEnumerator<KeyValuePair<object, object>> GetEnumerator()
        {
            using (PyObject items = CallMethod<PyObject>("items"))
            {
                foreach (object pair in items.Iterate())
                {
                    using (var tuple = (PyObject)pair)
                        yield return new KeyValuePair<object, object>(tuple.GetItem(0L), tuple.GetItem(1L));
                }
            }
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>Every entry, keys converted to <typeparamref name="K"/> and values to <typeparamref name="V"/>.</summary>
        public Dictionary<K, V> ToDictionary<K, V>()
        {
            var dictionary = new Dictionary<K, V>(Count);
            foreach (KeyValuePair<object, object> entry in this)
                dictionary.Add(Values.To<K>(entry.Key), Values.To<V>(entry.Value));
            return dictionary;
        }
    }

    internal static class TypedViews
    {
        /// <summary>Whether <paramref name="t"/> is a typed view, and which Python type it needs.</summary>
        internal static string PythonTypeOf(Type t)
        {
            if (t == typeof(PyList)) return "list";
            if (t == typeof(PyTuple)) return "tuple";
            if (t == typeof(PyDict)) return "dict";
            if (t == typeof(PySequence)) return "list or tuple";
            return null;
        }

        /// <summary>A typed view of <paramref name="o"/>'s object (a new handle; <paramref name="o"/> is
        /// left to the caller). InvalidCastException when the object is not a <paramref name="pythonType"/>
        /// (subclasses are fine).</summary>
        internal static PyObject Of(PyObject o, Type wanted, string pythonType)
        {
            Type t = wanted;
            string actual = null;
            using (PyObject builtins = PyEngine.Import("builtins"))
            using (PyObject isinstance = builtins.GetAttr<PyObject>("isinstance"))
            {
                if (t == typeof(PySequence))
                {
                    using (PyObject list = builtins.GetAttr<PyObject>("list"))
                        if (isinstance.Call<bool>(o, list)) t = typeof(PyList);
                    using (PyObject tuple = builtins.GetAttr<PyObject>("tuple"))
                        if (t == typeof(PySequence) && isinstance.Call<bool>(o, tuple)) t = typeof(PyTuple);
                    if (t == typeof(PySequence)) pythonType = "list or tuple";
                }
                else
                {
                    using (PyObject type = builtins.GetAttr<PyObject>(pythonType))
                        if (!isinstance.Call<bool>(o, type)) t = null;
                }
            }
            if (t == null || t == typeof(PySequence))
            {
                using (PyObject cls = o.GetAttr<PyObject>("__class__")) actual = cls.GetAttr<string>("__name__");
                throw new InvalidCastException("the object is a '" + actual + "', not a " + pythonType + " (" + wanted.Name + ")");
            }
            PyObjectHandle raw = o.CloneHandle();
            if (t == typeof(PyList)) return new PyList(raw);
            if (t == typeof(PyTuple)) return new PyTuple(raw);
            return new PyDict(raw);
        }
    }
}
