// One SafeHandle per kind of pybridge handle that the binding owns: objects, interpreters, pools,
// tasks and promises. (A buffer's export is held by its owner object, a PyObjectHandle; GIL
// tokens are not SafeHandles, since only the thread that took one may give it back, never a
// finalizer.) The DllImports take and return these types, so the marshaller holds a reference on
// the handle for the length of each call (a Dispose on another thread cannot free it mid-call),
// as wasmtime-dotnet's P/Invoke layer does.
//
// pybridge's handles are uint64_t ids, not pointers. A SafeHandle keeps its value in an IntPtr,
// which on a 64-bit process is 64 bits wide: the id is stored bit for bit and the marshaller
// passes it where the C function takes a uint64_t (the same register or stack slot). A 32-bit
// process could not carry the ids, so the binding refuses to start there (PyEngine.Initialize).
using System;
using System.Runtime.InteropServices;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>The conversions between a pybridge id (uint64_t) and a SafeHandle's IntPtr.</summary>
    internal static class HandleIds
    {
        internal static IntPtr ToIntPtr(ulong id) { return new IntPtr(unchecked((long)id)); }

        internal static ulong ToId(IntPtr handle) { return unchecked((ulong)handle.ToInt64()); }

        /// <summary>Throws unless this process is 64-bit (see the top of Handles.cs).</summary>
        internal static void CheckProcessIs64Bit()
        {
            if (IntPtr.Size != 8)
                throw new PlatformNotSupportedException("pybridge's C# binding needs a 64-bit process: " +
                    "its handles are 64-bit ids, which a 32-bit SafeHandle cannot carry");
        }
    }

    /// <summary>Owns one pyb_object handle. ReleaseHandle calls pyb_object_release, which any
    /// thread may call without the GIL and which never blocks, so the finalizer thread may run
    /// it at any time, also after the engine shut down (the release then reports a stale handle,
    /// which is ignored: the object is already gone).</summary>
    public sealed class PyObjectHandle : SafeHandle
    {
        /// <summary>An invalid handle (what the marshaller makes for a function's output before
        /// the call writes it).</summary>
        public PyObjectHandle() : base(IntPtr.Zero, true) { }

        internal PyObjectHandle(ulong raw) : base(IntPtr.Zero, true)
        {
            SetHandle(HandleIds.ToIntPtr(raw));
        }

        /// <summary>Handle 0, for the optional object arguments (pyb_run's scope): never closed.</summary>
        internal static readonly PyObjectHandle None = new PyObjectHandle();

        /// <summary>The pyb_object id; the caller keeps the handle alive (a reference, or a lease).</summary>
        internal ulong Raw { get { return HandleIds.ToId(handle); } }

        /// <summary>Gives up the reference without releasing it: the caller owns the id from now
        /// on. Only for a handle no other thread can have.</summary>
        internal ulong Detach()
        {
            ulong raw = Raw;
            SetHandleAsInvalid();
            return raw;
        }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle()
        {
            Native.pyb_object_release(Raw);
            return true;
        }
    }

    /// <summary>A pyb_interpreter handle (<see cref="PyInterpreter.Handle"/>,
    /// <see cref="PyInterpreterLease.Handle"/>). Releasing it destroys nothing: destroying an
    /// interpreter may wait for threads inside it, which a finalizer must not, so
    /// <see cref="PyInterpreter.Dispose()"/> destroys it explicitly and one that is only finalized
    /// is left to the engine's end, which ends every interpreter.</summary>
    public sealed class PyInterpreterHandle : SafeHandle
    {
        /// <summary>An invalid handle (what the marshaller makes for a function's output).</summary>
        public PyInterpreterHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle() { return true; }
    }

    /// <summary>A pyb_pool handle (<see cref="PyInterpreterPool.Handle"/>). As for an interpreter,
    /// releasing it destroys nothing: <see cref="PyInterpreterPool.Dispose()"/> destroys the pool, and
    /// one that is only finalized is left to the engine's end.</summary>
    public sealed class PyPoolHandle : SafeHandle
    {
        /// <summary>An invalid handle (what the marshaller makes for a function's output).</summary>
        public PyPoolHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle() { return true; }
    }

    /// <summary>A pyb_task handle (<see cref="PyEngine.RunAsync{T}"/>): a task id needs no
    /// release (pybridge forgets it when the task ends), so this only types it. Never disposed, so
    /// a cancellation that arrives after the task ended still passes it (pyb_task_cancel then
    /// does nothing).</summary>
    internal sealed class PyTaskHandle : SafeHandle
    {
        public PyTaskHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle() { return true; }
    }

    /// <summary>A pyb_promise handle (an async host function's pending result): only types the id,
    /// which resolve or reject consumes; one never settled ends with the engine.</summary>
    internal sealed class PyPromiseHandle : SafeHandle
    {
        public PyPromiseHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle() { return true; }
    }
}
