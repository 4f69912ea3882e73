// GIL statistics (pyb_gil_stats_*): how long host threads waited for the GIL and held it, per
// thread and in total, and the longest hold with its thread. Off until switched on
// (PyEngine.GilStatsEnabled = true, or PYBRIDGE_GIL_STATS=1 when the engine starts).
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>One host thread's GIL figures (or all threads', in <see cref="PyGilStats.Total"/>).
    /// Durations are nanoseconds; percentiles are at most 25% above the true value.</summary>
    public sealed class PyGilThreadStats
    {
        /// <summary>pybridge's id of the thread; 0 in the total.</summary>
        public long ThreadId { get; internal set; }
        /// <summary>The kernel's thread id (gettid); 0 in the total.</summary>
        public int OsThreadId { get; internal set; }
        /// <summary>The thread's name as the OS knows it (set by Thread.Name on CoreCLR).</summary>
        public string Name { get; internal set; }
        /// <summary>Timed GIL acquisitions: each is one wait and one hold.</summary>
        public long Acquisitions { get; internal set; }
        public long WaitTotalNs { get; internal set; }
        public long WaitP50Ns { get; internal set; }
        public long WaitP90Ns { get; internal set; }
        public long WaitP99Ns { get; internal set; }
        public long WaitMaxNs { get; internal set; }
        public long HoldTotalNs { get; internal set; }
        public long HoldP50Ns { get; internal set; }
        public long HoldP90Ns { get; internal set; }
        public long HoldP99Ns { get; internal set; }
        public long HoldMaxNs { get; internal set; }
        /// <summary>The thread that held a GIL longest (<see cref="HoldMaxNs"/>); 0 if none.</summary>
        public long LongestHoldThreadId { get; internal set; }
        public int LongestHoldOsThreadId { get; internal set; }
        public string LongestHoldThreadName { get; internal set; }

        internal static unsafe PyGilThreadStats From(ref PybGilStats s)
        {
            PyGilThreadStats r = new PyGilThreadStats();
            r.ThreadId = (long)s.ThreadId;
            r.OsThreadId = s.OsThreadId;
            fixed (byte* name = s.ThreadName) r.Name = CName(name);
            r.Acquisitions = (long)s.Acquisitions;
            r.WaitTotalNs = (long)s.WaitTotalNs;
            r.WaitMaxNs = (long)s.WaitMaxNs;
            r.WaitP50Ns = (long)s.WaitP50Ns;
            r.WaitP90Ns = (long)s.WaitP90Ns;
            r.WaitP99Ns = (long)s.WaitP99Ns;
            r.HoldTotalNs = (long)s.HoldTotalNs;
            r.HoldMaxNs = (long)s.HoldMaxNs;
            r.HoldP50Ns = (long)s.HoldP50Ns;
            r.HoldP90Ns = (long)s.HoldP90Ns;
            r.HoldP99Ns = (long)s.HoldP99Ns;
            r.LongestHoldThreadId = (long)s.LongestHoldThreadId;
            r.LongestHoldOsThreadId = s.LongestHoldOsThreadId;
            fixed (byte* name = s.LongestHoldThreadName) r.LongestHoldThreadName = CName(name);
            return r;
        }

        static unsafe string CName(byte* name)
        {
            int length = 0;
            while (length < PybGilStats.NameSize && name[length] != 0) length++;
            return Encoding.UTF8.GetString(name, length);
        }
    }

    /// <summary>A reading of the GIL statistics (<see cref="PyEngine.GetGilStats"/>).</summary>
    public sealed class PyGilStats
    {
        /// <summary>All host threads together since the last reset, exited ones included.</summary>
        public PyGilThreadStats Total { get; internal set; }
        /// <summary>Each live host thread that took a GIL since the last reset, oldest first.</summary>
        public IReadOnlyList<PyGilThreadStats> Threads { get; internal set; }
        /// <summary>Whether GIL statistics were on when this was read.</summary>
        public bool Enabled { get; internal set; }

        /// <summary>A fixed-width table: one row per thread, the total, and the longest hold.</summary>
        public override string ToString()
        {
            StringBuilder table = new StringBuilder();
            table.AppendFormat("{0,-16} {1,8} {2,9} {3,10} {4,9} {5,9} {6,9} {7,10} {8,9} {9,9} {10,9}\n",
                "thread", "tid", "acquires", "wait total", "wait p50", "wait p99", "wait max",
                "hold total", "hold p50", "hold p99", "hold max");
            foreach (PyGilThreadStats thread in Threads) Row(table, thread, thread.Name);
            Row(table, Total, "total");
            table.AppendFormat("longest hold: {0} by '{1}' (tid {2})\n", Duration(Total.HoldMaxNs),
                Total.LongestHoldThreadName, Total.LongestHoldOsThreadId);
            return table.ToString();
        }

        static void Row(StringBuilder table, PyGilThreadStats s, string name)
        {
            if (name.Length > 16) name = name.Substring(0, 16);
            table.AppendFormat("{0,-16} {1,8} {2,9} {3,10} {4,9} {5,9} {6,9} {7,10} {8,9} {9,9} {10,9}\n",
                name, s.OsThreadId, s.Acquisitions, Duration(s.WaitTotalNs), Duration(s.WaitP50Ns),
                Duration(s.WaitP99Ns), Duration(s.WaitMaxNs), Duration(s.HoldTotalNs),
                Duration(s.HoldP50Ns), Duration(s.HoldP99Ns), Duration(s.HoldMaxNs));
        }

        static string Duration(long ns)
        {
            System.Globalization.CultureInfo invariant = System.Globalization.CultureInfo.InvariantCulture;
            if (ns < 10000) return ns.ToString(invariant) + " ns";
            if (ns < 10000000) return (ns / 1e3).ToString("0.0", invariant) + " us";
            if (ns < 10000000000L) return (ns / 1e6).ToString("0.0", invariant) + " ms";
            return (ns / 1e9).ToString("0.0", invariant) + " s";
        }

        internal static unsafe PyGilStats Read()
        {
            PybGilStats total = PybGilStats.Blank();
            PyStatus.Check(Native.pyb_gil_stats_total(ref total));
            List<PyGilThreadStats> threads = new List<PyGilThreadStats>();
            // Threads may start between the calls: ask again until the count fits.
            for (int capacity = 16; ; capacity *= 2)
            {
                PybGilStats[] entries = new PybGilStats[capacity];
                for (int i = 0; i < capacity; i++) entries[i] = PybGilStats.Blank();
                UIntPtr count;
                fixed (PybGilStats* first = entries)
                    PyStatus.Check(Native.pyb_gil_stats_threads(first, (UIntPtr)capacity, out count));
                if ((ulong)count > (ulong)capacity) continue;
                for (int i = 0; i < (int)count; i++) threads.Add(PyGilThreadStats.From(ref entries[i]));
                break;
            }
            PyGilStats r = new PyGilStats();
            r.Total = PyGilThreadStats.From(ref total);
            r.Threads = threads.AsReadOnly();
            r.Enabled = total.Enabled != 0;
            return r;
        }
    }

    public static partial class PyEngine
    {
        /// <summary>Switches GIL statistics on or off (any thread, any time; the counts so far are
        /// kept). Off by default: on, each GIL round trip reads the time-stamp counter three times
        /// (see the README's GIL statistics section for the measured cost).</summary>
        public static bool GilStatsEnabled
        {
            get { return ReadGilStatsSwitch(); }
            set { PyStatus.Check(Native.pyb_gil_stats_enable(value)); }
        }

        static bool ReadGilStatsSwitch()
        {
            PybGilStats total = PybGilStats.Blank();
            // Through the release package's loader, nothing is loaded before the first
            // Initialize: statistics are then off unless switched on, which the loader remembers.
            return Native.pyb_gil_stats_total(ref total) == 0 && total.Enabled != 0;
        }

        /// <summary>Reads the GIL statistics: the total and each live host thread.</summary>
        public static PyGilStats GetGilStats() { return PyGilStats.Read(); }

        /// <summary>Forgets every wait and hold recorded so far, of every thread.</summary>
        public static void ResetGilStats() { PyStatus.Check(Native.pyb_gil_stats_reset()); }
    }
}

namespace PyBridge.Interop
{
    /// <summary>pyb_gil_stats; <c>StructSize</c> must be set by the caller (<see cref="Blank"/>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct PybGilStats
    {
        public const int NameSize = Native.PYB_THREAD_NAME_SIZE;
        public UIntPtr StructSize;
        public ulong ThreadId;
        public int OsThreadId;
        public fixed byte ThreadName[NameSize];
        public ulong Acquisitions;
        public ulong WaitTotalNs;
        public ulong WaitMaxNs;
        public ulong WaitP50Ns;
        public ulong WaitP90Ns;
        public ulong WaitP99Ns;
        public ulong HoldTotalNs;
        public ulong HoldMaxNs;
        public ulong HoldP50Ns;
        public ulong HoldP90Ns;
        public ulong HoldP99Ns;
        public ulong LongestHoldThreadId;
        public int LongestHoldOsThreadId;
        public fixed byte LongestHoldThreadName[NameSize];
        /// <summary>C bool.</summary>
        public byte Enabled;

        public static PybGilStats Blank()
        {
            PybGilStats s = new PybGilStats();
            s.StructSize = (UIntPtr)sizeof(PybGilStats);
            return s;
        }
    }

    internal static unsafe partial class Native
    {
        public const int PYB_THREAD_NAME_SIZE = 32;

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_stats_enable([MarshalAs(UnmanagedType.I1)] bool enabled);

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_stats_reset();

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_stats_total(ref PybGilStats stats);

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_gil_stats_threads(PybGilStats* stats, UIntPtr capacity, out UIntPtr count);
    }
}
