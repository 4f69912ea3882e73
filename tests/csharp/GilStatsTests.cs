// GIL statistics from C# (bindings/csharp/GilStats.cs): a thread that holds the GIL for 300 ms
// shows as the longest holder, the thread that waited for it shows the wait, counts are exact.
using System;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using PyBridge;

public static partial class Tests
{
    [DllImport("libc", EntryPoint = "gettid")]
    static extern int LinuxGetTid();

    [DllImport("kernel32", EntryPoint = "GetCurrentThreadId")]
    static extern int WindowsGetCurrentThreadId();

    /// <summary>The OS's id of this thread, as pyb_gil_thread_stats.os_thread_id gives it.</summary>
    static int GetTid()
    {
        return OnWindows ? WindowsGetCurrentThreadId() : LinuxGetTid();
    }

    [Test]
    public static void GilStatsNameTheLongestHolderAndTheWait()
    {
        if (IntPtr.Size == 8)
            Assert.Equal(192, Marshal.SizeOf(Interop("PybGilStats")), "sizeof(pyb_gil_stats)");
        PyEngine.Initialize();
        Assert.Equal(false, PyEngine.GilStatsEnabled, "off by default");
        PyEngine.GilStatsEnabled = true;
        PyEngine.ResetGilStats();
        const int HoldMs = 300;
        int holderTid = 0, waiterTid = 0;
        var holding = new ManualResetEventSlim();
        var waiting = new ManualResetEventSlim();
        var read = new ManualResetEventSlim();
        var done = new CountdownEvent(2);
        var holder = new Thread(() =>
        {
            holderTid = GetTid();
            using (PyEngine.Gil())
            {
                holding.Set();
                // The hold (the work measured) goes on from the moment the waiter is about to
                // wait, so the waiter's wait spans nearly all of it.
                waiting.Wait();
                Thread.Sleep(HoldMs);
            }
            done.Signal();
            read.Wait();
        });
        holder.Name = "cs-holder";
        var waiter = new Thread(() =>
        {
            waiterTid = GetTid();
            holding.Wait();
            waiting.Set();
            using (PyEngine.Gil()) { }
            done.Signal();
            read.Wait();
        });
        waiter.Name = "cs-waiter";
        holder.Start();
        waiter.Start();
        Assert.True(done.Wait(TimeSpan.FromSeconds(30)), "threads done within 30 s");

        PyGilStats stats = PyEngine.GetGilStats();
        read.Set();
        holder.Join();
        waiter.Join();
        Console.Write(stats.ToString().Replace("\n", "\n  ").Insert(0, "  "));
        Console.WriteLine();
        Assert.True(stats.Enabled, "Enabled");
        PyGilThreadStats held = stats.Threads.Single(t => t.OsThreadId == holderTid);
        PyGilThreadStats waited = stats.Threads.Single(t => t.OsThreadId == waiterTid);
        Assert.Equal(1L, held.Acquisitions, "holder's acquisitions");
        Assert.Equal(1L, waited.Acquisitions, "waiter's acquisitions");
        Assert.Equal(2L, stats.Total.Acquisitions, "total acquisitions");
        long holdNs = HoldMs * 1000000L;
        Assert.True(held.HoldMaxNs >= holdNs && held.HoldMaxNs < holdNs + 5000000000L, "HoldMaxNs " + held.HoldMaxNs);
        Assert.Equal(held.HoldMaxNs, held.HoldTotalNs, "one hold: total = max");
        Assert.True(waited.WaitMaxNs >= holdNs / 2, "the waiter waited " + waited.WaitMaxNs + " ns");
        // Each figure is rounded to a nanosecond on its own.
        Assert.True(Math.Abs(held.WaitTotalNs + waited.WaitTotalNs - stats.Total.WaitTotalNs) <= 1, "WaitTotalNs sums");
        foreach (PyGilThreadStats t in new[] { held, waited, stats.Total })
        {
            Assert.True(t.WaitP50Ns <= t.WaitP90Ns && t.WaitP90Ns <= t.WaitP99Ns && t.WaitP99Ns <= t.WaitMaxNs, "wait percentiles in order");
            Assert.True(t.HoldP50Ns <= t.HoldP90Ns && t.HoldP90Ns <= t.HoldP99Ns && t.HoldP99Ns <= t.HoldMaxNs, "hold percentiles in order");
        }
        Assert.Equal(held.ThreadId, stats.Total.LongestHoldThreadId, "LongestHoldThreadId");
        Assert.Equal(holderTid, stats.Total.LongestHoldOsThreadId, "LongestHoldOsThreadId");
        Assert.Equal(held.Name, stats.Total.LongestHoldThreadName, "LongestHoldThreadName");
        Assert.Equal(0L, stats.Total.ThreadId, "the total has no thread");
        Assert.True(held.Name.Length > 0 && waited.Name.Length > 0, "names: " + held.Name + ", " + waited.Name);
        Assert.True(stats.ToString().Contains("longest hold: "), "the table names the longest hold");

        PyEngine.GilStatsEnabled = false;
        Assert.Equal(false, PyEngine.GilStatsEnabled, "switched off");
        using (PyEngine.Gil()) { }
        Assert.Equal(2L, PyEngine.GetGilStats().Total.Acquisitions, "nothing counted while off");
        PyEngine.ResetGilStats();
        Assert.Equal(0L, PyEngine.GetGilStats().Total.Acquisitions, "reset");
        PyEngine.Shutdown(Ten);
    }
}
