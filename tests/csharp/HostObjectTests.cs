// Typed host delegates and .NET objects handed to Python (bindings/csharp/HostObjects.cs).
using System;
using System.Collections.Generic;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    sealed class Account
    {
        public string Owner;
        public long Balance;
    }

    // Not inlined, so no stack slot of the test keeps the object reachable.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static WeakReference WeakHostObject(string name)
    {
        using (PyObject capsule = PyEngine.Eval<PyObject>(name))
        {
            object target;
            Assert.True(capsule.TryGetHostObject(out target), "a host object");
            return new WeakReference(target);
        }
    }

    [Test]
    public static void TypedHostDelegatesAndHostObjects()
    {
        PyEngine.Initialize();
        PyEngine.RegisterFunction<long, long, long>("host", "add", (a, b) => a + b);
        PyEngine.RegisterFunction<string, long, string>("host", "repeat", (s, n) => string.Concat(System.Linq.Enumerable.Repeat(s, (int)n)));
        PyEngine.RegisterFunction<double>("host", "pi", () => Math.PI);
        PyEngine.RegisterFunction<string, long, Account>("host", "open_account", (owner, balance) => new Account { Owner = owner, Balance = balance });
        PyEngine.RegisterFunction<Account, long, long>("host", "deposit", (account, amount) => account.Balance += amount);
        PyEngine.RegisterFunction<Account, long, long, string>("host", "describe", (account, digits, unused) => account.Owner + ":" + account.Balance.ToString("D" + digits));
        PyEngine.RegisterFunction<long, long, long, long, long>("host", "sum4", (a, b, c, d) => a + b + c + d);
        long seen = 0;
        PyEngine.RegisterAction<long>("host", "note", n => Interlocked.Add(ref seen, n));
        PyEngine.RegisterAction<Account, string>("host", "rename", (account, owner) => account.Owner = owner);
        PyEngine.Run(
            "import host\n" +
            "total = host.add(40, 2)\n" +
            "text = host.repeat('ab', 3)\n" +
            "pi = host.pi()\n" +
            "acct = host.open_account('ada', 10)\n" +
            "after = host.deposit(acct, 5)\n" +
            "host.rename(acct, 'grace')\n" +
            "summary = host.describe(acct, 4, 0)\n" +
            "host.note(7)\n" +
            "four = host.sum4(1, 2, 3, 4)\n");
        Assert.Equal(42L, PyEngine.Eval<long>("total"), "Func<long, long, long>");
        Assert.Equal("ababab", PyEngine.Eval<string>("text"), "Func<string, long, string>");
        Assert.Equal(Math.PI, PyEngine.Eval<double>("pi"), "Func<double>");
        Assert.Equal(15L, PyEngine.Eval<long>("after"), "a host object came back as the Account");
        Assert.Equal("grace:0015", PyEngine.Eval<string>("summary"), "three arguments, one a host object");
        Assert.Equal(7L, Interlocked.Read(ref seen), "Action<long>");
        Assert.Equal(10L, PyEngine.Eval<long>("four"), "four arguments");
        Assert.Equal("HostObject", PyEngine.Eval<string>("type(acct).__name__"), "a HostObject to Python");
        using (PyObject acct = PyEngine.Eval<PyObject>("acct"))
        {
            object wrapped;
            Assert.True(acct.TryGetHostObject(out wrapped) && ((Account)wrapped).Owner == "grace", "TryGetHostObject");
            wrapped = null; // a debug build keeps locals alive to the end of the method
        }
        using (PyObject plain = PyEngine.Eval<PyObject>("[1]"))
        {
            object none;
            Assert.Equal(false, plain.TryGetHostObject(out none), "a list is no host object");
        }
        // A .NET object handed over explicitly, passed back by Python.
        var mine = new Account { Owner = "linus", Balance = 1 };
        using (PyObject handed = PyObject.FromHostObject(mine))
        using (PyObject deposit = PyEngine.Eval<PyObject>("host.deposit"))
            Assert.Equal(101L, deposit.Call<long>(handed, 100L), "FromHostObject, then a typed delegate");
        Assert.Equal(101L, mine.Balance, "the same .NET object");
        // Wrong calls raise Python's TypeError, as a Python function's do, with the message.
        var wrongCount = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("host.add(1)"), "one argument of two");
        Assert.Equal("TypeError", wrongCount.PythonTypeName, "a missing argument");
        Assert.Equal("host.add() takes 2 argument(s); 'b' is missing", wrongCount.PythonMessage, "its message");
        var tooMany = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("host.add(1, 2, 3)"), "three arguments of two");
        Assert.Equal("TypeError", tooMany.PythonTypeName, "too many arguments");
        var wrongType = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Run("host.deposit(1, 2)"), "an int for an Account");
        Assert.Equal("TypeError", wrongType.PythonTypeName, "a wrong argument type");
        Assert.True(wrongType.PythonMessage.StartsWith("argument 1: "), wrongType.PythonMessage);
        Assert.Equal("TypeError|True", TypeErrorCaughtInPython(), "caught by except TypeError");
        // Python lets go of the Account when it drops the capsule; the GC may then collect it.
        WeakReference weak = WeakHostObject("acct");
        PyEngine.Run("del acct");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.Equal(false, weak.IsAlive, "the Account is collectable once Python let go");
        PyEngine.Shutdown(Ten);
    }

    static string TypeErrorCaughtInPython()
    {
        PyEngine.Run("try:\n    host.add('a', 1)\nexcept TypeError as e:\n    caught = f'{type(e).__name__}|{isinstance(e, TypeError)}'\n");
        return PyEngine.Eval<string>("caught");
    }

    [Test]
    public static void HostFunctionsTakeKeywordArguments()
    {
        PyEngine.Initialize();
        PyEngine.RegisterFunction("host", "describe", (args, kwargs) =>
            string.Join(",", args) + "|" + (kwargs == null ? "none" :
                string.Join(",", System.Linq.Enumerable.Select(kwargs, kv => kv.Key + "=" + kv.Value))));
        PyEngine.RegisterFunction<long, long, long>("host", "power", (number, exponent) => (long)Math.Pow(number, exponent));
        PyEngine.Run("import host");
        Assert.Equal("1,two|scale=3.5,name=x", PyEngine.Eval<string>("host.describe(1, 'two', scale=3.5, name='x')"), "positional and keywords");
        Assert.Equal("7|none", PyEngine.Eval<string>("host.describe(7)"), "no keywords");
        Assert.Equal(1024L, PyEngine.Eval<long>("host.power(2, exponent=10)"), "a typed delegate, a keyword by parameter name");
        Assert.Equal(1000L, PyEngine.Eval<long>("host.power(exponent=3, number=10)"), "keywords only, any order");
        var unknown = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("host.power(2, power=3)"), "an unknown keyword");
        Assert.Equal("TypeError", unknown.PythonTypeName, "an unknown keyword is a TypeError");
        Assert.True(unknown.PythonMessage.Contains("has no parameter 'power' (it has number, exponent)"), unknown.PythonMessage);
        var twice = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("host.power(2, number=3)"), "a parameter twice");
        Assert.True(twice.PythonMessage.Contains("got 'number' twice"), twice.PythonMessage);
        var missing = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("host.power(2)"), "a parameter missing");
        Assert.True(missing.PythonMessage.Contains("'exponent' is missing"), missing.PythonMessage);
        Assert.Equal("TypeError", missing.PythonTypeName, "a missing parameter is a TypeError");
        Assert.Equal("TypeError", twice.PythonTypeName, "a parameter twice is a TypeError");
        // A positional-only function still refuses keywords, as before.
        PyEngine.RegisterFunction("host", "plain", args => args.Length);
        var refused = Assert.Throws<PythonException>("PYB_E_PYTHON", () => PyEngine.Eval("host.plain(x=1)"), "keywords to a positional function");
        Assert.Equal("TypeError", refused.PythonTypeName, "Python's own TypeError");
        PyEngine.Shutdown(Ten);
    }
}

public static partial class Tests
{
    sealed class LedgerException : Exception
    {
        public readonly long Account;
        public LedgerException(long account) : base("account " + account + " is closed") { Account = account; }
    }

    [Test]
    public static void HostExceptionsComeBackAsThemselves()
    {
        PyEngine.Initialize();
        var thrown = new List<Exception>();
        PyEngine.RegisterFunction<long, long>("host", "withdraw", account =>
        {
            var e = new LedgerException(account);
            thrown.Add(e);
            throw e;
        });
        PyEngine.Run("import host\ndef pay(account):\n    return host.withdraw(account) + 1\n");
        using (PyObject pay = PyEngine.Eval<PyObject>("pay"))
        {
            var e = Assert.Throws<PythonException>("PYB_E_PYTHON", () => pay.Call<long>(7L), "not caught in Python");
            Assert.True(object.ReferenceEquals(thrown[0], e.InnerException), "InnerException is the very exception object: " + e.InnerException);
            Assert.Equal(7L, ((LedgerException)e.InnerException).Account, "with its own fields");
            Assert.Equal("pybridge.HostError", e.PythonTypeName, "still a HostError in Python");
            Assert.Contains("in pay", e.PythonTraceback, "the Python traceback is kept");
            Assert.Contains("account 7 is closed", e.Message, "and the message");
        }
        // Caught in Python: the caller sees Python's own exception, with no stale inner one.
        PyEngine.Run("def careful(account):\n    try:\n        return host.withdraw(account)\n    except RuntimeError:\n        raise KeyError(account)\n");
        using (PyObject careful = PyEngine.Eval<PyObject>("careful"))
        {
            var e = Assert.Throws<PythonException>("PYB_E_PYTHON", () => careful.Call<long>(8L), "caught and replaced in Python");
            Assert.Equal("KeyError", e.PythonTypeName, "Python's exception");
            Assert.True(e.InnerException == null, "no inner exception: " + e.InnerException);
        }
        // Through an awaited coroutine, on the event loop's thread.
        PyEngine.Run("async def pay_later(account):\n    return host.withdraw(account)\n");
        using (PyObject payLater = PyEngine.Eval<PyObject>("pay_later"))
        {
            Exception awaited = Unwrap(payLater.CallAsync<long>(9L), "awaited");
            Assert.True(object.ReferenceEquals(thrown[2], awaited.InnerException), "awaited: InnerException is the exception: " + awaited);
        }
        PyEngine.Shutdown(Ten);
    }
}

public static partial class Tests
{
    sealed class Money
    {
        public readonly long Cents;
        public Money(long cents) { Cents = cents; }
        public override bool Equals(object other) { var m = other as Money; return m != null && m.Cents == Cents; }
        public override int GetHashCode() { return (int)Cents * 7; }
    }

    [Test]
    public static void HostObjectsKeepIdentityReprAndEquality()
    {
        PyEngine.Initialize();
        var account = new Account { Owner = "ada", Balance = 1 };
        PyEngine.RegisterFunction<Account>("host", "the_account", () => account);
        PyEngine.RegisterFunction<long, Money>("host", "money", cents => new Money(cents));
        PyEngine.Run("import host\nfirst = host.the_account()\nsecond = host.the_account()\n");
        Assert.True(PyEngine.Eval<bool>("first is second"), "the same .NET object twice is the same Python object");
        using (PyObject handed = PyObject.FromHostObject(account))
        using (PyObject isSame = PyEngine.Eval<PyObject>("lambda x: x is first"))
            Assert.True(isSame.Call<bool>(handed), "FromHostObject gives that object too");
        string repr = PyEngine.Eval<string>("repr(first)");
        Assert.Contains("<.NET Tests+Account object at 0x", repr, "repr names the .NET type");
        // Equality and hashing follow Equals and GetHashCode.
        PyEngine.Run("a, b, c = host.money(5), host.money(5), host.money(6)\n");
        Assert.True(PyEngine.Eval<bool>("a is not b and a == b and a != c"), "== follows Equals");
        Assert.Equal(35L, PyEngine.Eval<long>("hash(a)"), "hash() is GetHashCode");
        Assert.Equal(2L, PyEngine.Eval<long>("len({a, b, c})"), "a set keeps one of the equal pair");
        Assert.True(PyEngine.Eval<bool>("first != a and not (first == 1)"), "different objects and other types are not equal");
        // Python still passes them back as the .NET objects.
        PyEngine.RegisterFunction<Money, long>("host", "cents", m => m.Cents);
        Assert.Equal(6L, PyEngine.Eval<long>("host.cents(c)"), "a HostObject argument arrives as its .NET object");
        // Dropped by Python, the object may go; its next handing over makes a new HostObject.
        PyEngine.Run("first_id = id(first)\ndel first, second\n");
        Assert.Equal("<.NET Tests+Account", PyEngine.Eval<string>("repr(host.the_account())").Substring(0, 19), "handed over again");
        // Each interpreter has its own HostObject type and table.
        using (var interpreter = PyInterpreter.Create(sharedGil: true))
        using (interpreter.Enter())
        {
            // Host functions are the main interpreter's: here == is identity.
            using (PyObject x = PyObject.FromHostObject(account))
            using (PyObject y = PyObject.FromHostObject(account))
            using (PyObject m1 = PyObject.FromHostObject(new Money(5)))
            using (PyObject m2 = PyObject.FromHostObject(new Money(5)))
            using (PyObject check = PyEngine.Eval<PyObject>("lambda x, y, m1, m2: x is y and type(x).__name__ == 'HostObject' and m1 != m2 and m1 == m1"))
                Assert.True(check.Call<bool>(x, y, m1, m2), "inside a sub-interpreter: one HostObject per object, == by identity");
        }
        PyEngine.Shutdown(Ten);
    }
}
