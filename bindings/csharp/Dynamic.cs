// PyObject with C#'s `dynamic`: attributes, method calls with keyword arguments (C# named
// arguments), calls, indexers, operators and conversions, each one pybridge call.
//
//   dynamic json = PyEngine.Import("json");
//   string text = json.dumps(data, indent: 2);
//   dynamic np = PyEngine.Import("numpy");
//   dynamic a = np.zeros(3);  a[0] = 1.5;  double total = a.sum();
//
// Results stay Python objects until converted: a PyObject, itself dynamic (None is null), so
// m.greet("x").upper() chains; assigning or casting one to a .NET type converts it (string s =
// m.greet("x")). A plain result (bool, int, float, str, bytes) is deferred: it keeps its .NET
// value and makes its Python object only if used as one. A member that PyObject itself declares
// (Call, Dispose, ToString, GetAttr, ...) wins over a Python attribute of the same name: reach
// that one with GetAttr("name").
using System;
using System.Collections.Generic;
using System.Dynamic;
using System.Linq.Expressions;
using System.Reflection;
using System.Threading;

namespace PyBridge
{
    public partial class PyObject : DynamicObject
    {
        public override bool TryGetMember(GetMemberBinder binder, out object result)
        {
            PyObject temporary = TemporaryReceiver();
            try { result = Deferred((temporary ?? this).GetAttr(binder.Name)); }
            finally { if (temporary != null) temporary.Dispose(); }
            return true;
        }

        /// <summary>For a deferred object that has not made its Python object: one for a single
        /// operation, which the caller disposes right after it (null otherwise). So chaining on a
        /// plain result (<c>m.greet("x").upper()</c>) leaves no handle for the finalizer, whose
        /// work made chaining cost 2.6-3.5x a call (2.2-2.4x without it, measured by the
        /// Benchmark test); a plain value's Python object is immutable, so a fresh one per use
        /// is the same value.</summary>
        PyObject TemporaryReceiver()
        {
            return Volatile.Read(ref handle) == null && plain != null ? From(plain) : null;
        }

        public override bool TrySetMember(SetMemberBinder binder, object value)
        {
            SetAttr(binder.Name, value);
            return true;
        }

        public override bool TryInvokeMember(InvokeMemberBinder binder, object[] args, out object result)
        {
            IDictionary<string, object> kwargs;
            object[] positional = SplitNamed(binder.CallInfo, args, out kwargs);
            PyObject temporary = TemporaryReceiver();
            try { result = Deferred((temporary ?? this).CallMethodKw(binder.Name, positional, kwargs)); }
            finally { if (temporary != null) temporary.Dispose(); }
            return true;
        }

        public override bool TryInvoke(InvokeBinder binder, object[] args, out object result)
        {
            IDictionary<string, object> kwargs;
            object[] positional = SplitNamed(binder.CallInfo, args, out kwargs);
            result = Deferred(CallKw(positional, kwargs));
            return true;
        }

        public override bool TryGetIndex(GetIndexBinder binder, object[] indexes, out object result)
        {
            if (indexes.Length == 1)
            {
                result = Deferred(GetItem(indexes[0]));
                return true;
            }
            using (PyTuple key = NewTuple(indexes)) result = Deferred(GetItem(key));
            return true;
        }

        public override bool TrySetIndex(SetIndexBinder binder, object[] indexes, object value)
        {
            if (indexes.Length == 1)
            {
                SetItem(indexes[0], value);
                return true;
            }
            using (PyTuple key = NewTuple(indexes)) SetItem(key, value);
            return true;
        }

        /// <summary>Python's operators (see Operators.cs); == and != are Equals, a bool.</summary>
        public override bool TryBinaryOperation(BinaryOperationBinder binder, object arg, out object result)
        {
            switch (binder.Operation)
            {
                case ExpressionType.Equal: result = Equals(arg); return true;
                case ExpressionType.NotEqual: result = !Equals(arg); return true;
            }
            string name;
            if (!BinaryOperators.TryGetValue(binder.Operation, out name))
            {
                result = null;
                return false;
            }
            result = PythonOperators.Binary(name, this, arg);
            return true;
        }

        public override bool TryUnaryOperation(UnaryOperationBinder binder, out object result)
        {
            switch (binder.Operation)
            {
                case ExpressionType.IsTrue: result = ToBoolean(); return true;
                case ExpressionType.IsFalse: result = !ToBoolean(); return true;
                case ExpressionType.Not: result = !ToBoolean(); return true;
            }
            string name;
            if (!UnaryOperators.TryGetValue(binder.Operation, out name))
            {
                result = null;
                return false;
            }
            result = PythonOperators.Unary(name, this);
            return true;
        }

        /// <summary>(long)d, (string)d, (PyList)d, ... as <see cref="As{T}"/> converts; this object
        /// stays usable. Reached through <see cref="DynamicPyObject.BindConvert"/>, also for the
        /// downcasts that the C# binder would otherwise bind statically.</summary>
        public override bool TryConvert(ConvertBinder binder, out object result)
        {
            result = ConvertForBinder(this, binder.Type);
            return true;
        }

        internal static object ConvertForBinder(PyObject o, Type type)
        {
            if (type.IsInstanceOfType(o)) return o;
            return Values.ConvertObject(o, type);
        }

        /// <summary>DynamicObject's own meta object asks the language binder first, and C#'s binds
        /// <c>(PyList)d</c> as a plain downcast (an InvalidCastException at run time, TryConvert
        /// never called). This one binds every conversion to <see cref="ConvertForBinder"/> and
        /// leaves every other operation to DynamicObject's.</summary>
        public override DynamicMetaObject GetMetaObject(Expression parameter)
        {
            return new DynamicPyObject(parameter, this, base.GetMetaObject(parameter));
        }

        public override IEnumerable<string> GetDynamicMemberNames()
        {
            using (PyObject builtins = PyEngine.Import("builtins"))
            using (PyObject names = builtins.CallMethod<PyObject>("dir", this))
                foreach (object name in names.Iterate())
                    yield return (string)name;
        }

        /// <summary>Positional arguments first, then C# named arguments as keywords (CallInfo puts
        /// the names of the trailing arguments last).</summary>
        static object[] SplitNamed(CallInfo info, object[] args, out IDictionary<string, object> kwargs)
        {
            int named = info.ArgumentNames.Count;
            if (named == 0)
            {
                kwargs = null;
                return args;
            }
            int positional = args.Length - named;
            kwargs = new Dictionary<string, object>(named);
            for (int i = 0; i < named; i++)
                kwargs[info.ArgumentNames[i]] = args[positional + i];
            object[] first = new object[positional];
            Array.Copy(args, first, positional);
            return first;
        }

        static readonly Dictionary<ExpressionType, string> BinaryOperators = new Dictionary<ExpressionType, string>
        {
            { ExpressionType.Add, "add" }, { ExpressionType.Subtract, "sub" },
            { ExpressionType.Multiply, "mul" }, { ExpressionType.Divide, "truediv" },
            { ExpressionType.Modulo, "mod" }, { ExpressionType.And, "and_" },
            { ExpressionType.Or, "or_" }, { ExpressionType.ExclusiveOr, "xor" },
            { ExpressionType.LeftShift, "lshift" }, { ExpressionType.RightShift, "rshift" },
            { ExpressionType.LessThan, "lt" }, { ExpressionType.LessThanOrEqual, "le" },
            { ExpressionType.GreaterThan, "gt" }, { ExpressionType.GreaterThanOrEqual, "ge" },
        };

        static readonly Dictionary<ExpressionType, string> UnaryOperators = new Dictionary<ExpressionType, string>
        {
            { ExpressionType.Negate, "neg" }, { ExpressionType.UnaryPlus, "pos" },
            { ExpressionType.OnesComplement, "invert" },
        };
    }

    /// <summary>See <see cref="PyObject.GetMetaObject"/>.</summary>
    sealed class DynamicPyObject : DynamicMetaObject
    {
        readonly DynamicMetaObject inner;

        internal DynamicPyObject(Expression expression, PyObject value, DynamicMetaObject inner)
            : base(expression, BindingRestrictions.Empty, value)
        {
            this.inner = inner;
        }

        static readonly MethodInfo Convert = typeof(PyObject).GetMethod("ConvertForBinder", BindingFlags.Static | BindingFlags.NonPublic);

        public override DynamicMetaObject BindConvert(ConvertBinder binder)
        {
            BindingRestrictions restrictions = BindingRestrictions.GetTypeRestriction(Expression, LimitType);
            Expression self = Expression.Convert(Expression, LimitType);
            if (binder.Type.IsAssignableFrom(LimitType))
                return new DynamicMetaObject(Expression.Convert(self, binder.Type), restrictions);
            Expression call = Expression.Call(Convert, Expression.Convert(self, typeof(PyObject)), Expression.Constant(binder.Type, typeof(Type)));
            return new DynamicMetaObject(Expression.Convert(call, binder.Type), restrictions);
        }

        public override DynamicMetaObject BindGetMember(GetMemberBinder binder) { return inner.BindGetMember(binder); }
        public override DynamicMetaObject BindSetMember(SetMemberBinder binder, DynamicMetaObject value) { return inner.BindSetMember(binder, value); }
        public override DynamicMetaObject BindDeleteMember(DeleteMemberBinder binder) { return inner.BindDeleteMember(binder); }
        public override DynamicMetaObject BindGetIndex(GetIndexBinder binder, DynamicMetaObject[] indexes) { return inner.BindGetIndex(binder, indexes); }
        public override DynamicMetaObject BindSetIndex(SetIndexBinder binder, DynamicMetaObject[] indexes, DynamicMetaObject value) { return inner.BindSetIndex(binder, indexes, value); }
        public override DynamicMetaObject BindDeleteIndex(DeleteIndexBinder binder, DynamicMetaObject[] indexes) { return inner.BindDeleteIndex(binder, indexes); }
        public override DynamicMetaObject BindInvokeMember(InvokeMemberBinder binder, DynamicMetaObject[] args) { return inner.BindInvokeMember(binder, args); }
        public override DynamicMetaObject BindInvoke(InvokeBinder binder, DynamicMetaObject[] args) { return inner.BindInvoke(binder, args); }
        public override DynamicMetaObject BindCreateInstance(CreateInstanceBinder binder, DynamicMetaObject[] args) { return inner.BindCreateInstance(binder, args); }
        public override DynamicMetaObject BindUnaryOperation(UnaryOperationBinder binder) { return inner.BindUnaryOperation(binder); }
        public override DynamicMetaObject BindBinaryOperation(BinaryOperationBinder binder, DynamicMetaObject arg) { return inner.BindBinaryOperation(binder, arg); }
        public override IEnumerable<string> GetDynamicMemberNames() { return inner.GetDynamicMemberNames(); }
    }
}
