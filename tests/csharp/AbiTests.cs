// The C# binding against the C header (its internal P/Invoke layer, statuses, struct layouts) and
// the coverage of its public API by these tests.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using PyBridge;

public static partial class Tests
{
    [Test]
    public static void NativeDeclarationsMatchHeader()
    {
        string header = File.ReadAllText(Path.Combine(Root, "bindings/c/pybridge.h"));
        var declared = new SortedSet<string>();
        foreach (Match m in Regex.Matches(header, @"^[A-Za-z_][^(/#\n]*?\b(pyb_[a-z0-9_]+)\(", RegexOptions.Multiline))
            declared.Add(m.Groups[1].Value);
        var imported = new SortedSet<string>();
        foreach (MethodInfo m in Interop("Native").GetMethods(BindingFlags.Public | BindingFlags.Static))
        {
            var attr = (DllImportAttribute)m.GetCustomAttributes(typeof(DllImportAttribute), false).FirstOrDefault();
            if (attr == null) continue;
            Assert.Equal("libpybridge", attr.Value, m.Name + " library");
            imported.Add(attr.EntryPoint ?? m.Name);
        }
        Assert.True(declared.Count >= 40, "the header parse found " + declared.Count + " functions");
        Assert.Equal("", string.Join(" ", declared.Except(imported)), "header functions without a DllImport");
        Assert.Equal("", string.Join(" ", imported.Except(declared)), "DllImports not in the header");
        // Every PYB_ constant in the header has the same value in Native, and every status its
        // .NET name in PyStatusCode (PYB_E_SHUTDOWN_COMMITTED: ShutdownCommitted).
        int statuses = 0;
        foreach (Match m in Regex.Matches(header, @"^#define (PYB_[A-Z0-9_]+) (-?\d+)$", RegexOptions.Multiline))
        {
            FieldInfo f = Interop("Native").GetField(m.Groups[1].Value);
            Assert.True(f != null, "Native declares " + m.Groups[1].Value);
            Assert.Equal(m.Groups[2].Value, Convert.ToInt64(f.GetValue(null)).ToString(), m.Groups[1].Value);
            Match status = Regex.Match(m.Groups[1].Value, "^PYB_(?:E_)?([A-Z_]+)$");
            if (m.Groups[1].Value != "PYB_OK" && !m.Groups[1].Value.StartsWith("PYB_E_", StringComparison.Ordinal)) continue;
            string dotNet = string.Concat(status.Groups[1].Value.Split('_').Select(w => w.Substring(0, 1) + w.Substring(1).ToLowerInvariant()));
            Assert.Equal(dotNet, Enum.GetName(typeof(PyStatusCode), int.Parse(m.Groups[2].Value)), "PyStatusCode for " + m.Groups[1].Value);
            Assert.Equal(m.Groups[1].Value, PyStatus.Name((PyStatusCode)int.Parse(m.Groups[2].Value)), "PyStatus.Name");
            statuses++;
        }
        Assert.Equal(Enum.GetValues(typeof(PyStatusCode)).Length, statuses, "PyStatusCode members, one per status in the header");
        if (IntPtr.Size == 8)
        {
            Assert.Equal(24, Marshal.SizeOf(Interop("PybValue")), "sizeof(pyb_value)");
            Assert.Equal(72, Marshal.SizeOf(Interop("PybConfig")), "sizeof(pyb_config)");
            Assert.Equal(48, (int)Marshal.OffsetOf(Interop("PybConfig"), "Python"), "offsetof(pyb_config, python)");
            Assert.Equal(56, Marshal.SizeOf(Interop("PybStats")), "sizeof(pyb_stats)");
            Assert.Equal(16, Marshal.SizeOf(Interop("PybStr")), "sizeof(pyb_str)");
            Assert.Equal(88, Marshal.SizeOf(Interop("PybBuffer")), "sizeof(pyb_buffer)");
            Assert.Equal(72, (int)Marshal.OffsetOf(Interop("PybBuffer"), "Lowest"), "offsetof(pyb_buffer, lowest)");
        }
        object[] config = { null };
        Assert.Equal(0, (int)Interop("Native").GetMethod("pyb_config_default").Invoke(null, config), "pyb_config_default");
        Assert.Equal(10000u, (uint)Interop("PybConfig").GetField("PreviousThreadsTimeoutMs").GetValue(config[0]), "default previous_threads_timeout_ms");
        Assert.True((IntPtr)Interop("PybConfig").GetField("Python").GetValue(config[0]) == IntPtr.Zero, "default python is NULL");
    }

    [Test]
    public static void EveryPublicMemberIsTested()
    {
        string source = string.Concat(Directory.GetFiles(Path.Combine(Root, "tests/csharp"), "*.cs")
            .OrderBy(f => f, StringComparer.Ordinal).Select(File.ReadAllText));
        var missing = new List<string>();
        foreach (Type t in typeof(PyEngine).Assembly.GetExportedTypes())
        {
            if (t.Namespace != "PyBridge" || typeof(Delegate).IsAssignableFrom(t)) continue;
            // A generic type is named in C# without its arity: PyAsyncEnumerator<long>, not PyAsyncEnumerator`1.
            string typeName = t.IsGenericType ? t.Name.Substring(0, t.Name.IndexOf('`')) : t.Name;
            if (source.IndexOf(typeName, StringComparison.Ordinal) < 0) missing.Add(typeName);
            foreach (MemberInfo m in t.GetMembers(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            {
                var method = m as MethodBase;
                if (method != null && (method.IsSpecialName || method.IsConstructor)) continue;
                // Overrides of DynamicObject's Try* are called by the C# runtime binder: the
                // dynamic tests (DynamicTests.cs) exercise them through `dynamic`.
                var info = m as MethodInfo;
                if (info != null && info.GetBaseDefinition().DeclaringType == typeof(System.Dynamic.DynamicObject)) continue;
                if (t.IsEnum) continue;
                string needle = m.Name == "Item" ? "[\"" : "." + m.Name; // the indexer: d["key"]
                if (source.IndexOf(needle, StringComparison.Ordinal) < 0)
                    missing.Add(typeName + "." + m.Name);
            }
        }
        Assert.Equal("", string.Join(", ", missing.Distinct()), "public members never named in tests/csharp/*.cs");
    }
}
