// Zero-copy buffers (pyb_buffer_*): a view of a Python object's memory (bytes, bytearray,
// array.array, memoryview, NumPy arrays) for C#, and C# memory (pinned arrays) shared with
// Python as a memoryview.
//
// Why pointers and copies, not Span<T>: this binding is compiled once, by Mono's mcs, and run on
// Mono and CoreCLR. Mono's mscorlib has Span<T>, CoreCLR 3.1's mscorlib facade does not forward
// it, so an assembly that names Span<T> fails to load types on CoreCLR. A .NET SDK user builds
// the Span the usual way: new Span<double>((void*)buffer.Pointer, checked((int)buffer.Count)).
using System;
using System.Runtime.InteropServices;
using System.Text;
using PyBridge.Interop;

namespace PyBridge
{
    /// <summary>A view of a Python object's memory (<see cref="PyObject.GetBuffer"/>). The view
    /// holds an export of its own that no Python code can end, so the memory stays where it is
    /// until Dispose (the object cannot move or resize it meanwhile); read and write it through
    /// <see cref="Pointer"/> and <see cref="Strides"/> in unsafe code, or copy with
    /// CopyTo/CopyFrom. No GIL is needed for that, but do not race Python code using the same
    /// memory. Dispose from any thread; a finalizer releases a forgotten view.</summary>
    public sealed class PyBuffer : IDisposable
    {
        readonly PyObject owner;
        readonly IntPtr data;
        readonly IntPtr lowest;

        /// <summary>The first item in logical order (pyb_buffer.data, Python's Py_buffer.buf);
        /// valid until Dispose. Item [i, j, ...] starts Strides[0] * i + Strides[1] * j + ... bytes
        /// from it. With a negative stride (a reversed view, Python's m[::-1]) it is not the
        /// lowest address: the items then lie below it, within [Lowest, Lowest + Span).</summary>
        public IntPtr Pointer { get { owner.ThrowIfDisposed(); return data; } }
        /// <summary>The lowest address of any item's bytes (pyb_buffer.lowest): Pointer unless a
        /// stride is negative. Valid until Dispose.</summary>
        public IntPtr Lowest { get { owner.ThrowIfDisposed(); return lowest; } }
        /// <summary>Bytes from <see cref="Lowest"/> to the end of the item at the highest address:
        /// every item lies in [Lowest, Lowest + Span). Length for contiguous memory, more when
        /// strides skip bytes, 0 for an empty view.</summary>
        public long Span { get; private set; }
        /// <summary>Bytes the items take together (ItemSize times the product of Shape).</summary>
        public long Length { get; private set; }
        /// <summary>Bytes per item.</summary>
        public int ItemSize { get; private set; }
        /// <summary>Items in the view (Length / ItemSize).</summary>
        public long Count { get { return ItemSize == 0 ? 0 : Length / ItemSize; } }
        public bool ReadOnly { get; private set; }
        /// <summary>The item format in Python's struct syntax: "d" double, "f" float, "q"/"l" long,
        /// "i" int, "B" byte, ...</summary>
        public string Format { get; private set; }
        /// <summary>Items per dimension, outermost first (empty for a scalar).</summary>
        public long[] Shape { get; private set; }
        /// <summary>Bytes between items of each dimension (negative for a reversed view).</summary>
        public long[] Strides { get; private set; }
        /// <summary>True when the items lie one after another in C order (no gaps), so Pointer can
        /// be read as a flat array and CopyTo/CopyFrom work.</summary>
        public bool IsContiguous { get; private set; }
        /// <summary>The pybridge.BufferView object that holds the view's export, usable like any
        /// PyObject (Python reads the memory through memoryview(owner)). The export ends at Dispose
        /// once Python holds no reference to it.</summary>
        public PyObject Owner { get { return owner; } }

        internal unsafe PyBuffer(ref PybBuffer view)
        {
            owner = new PyObject(view.Owner);
            data = view.Data;
            lowest = view.Lowest;
            Span = (long)view.Span;
            Length = (long)view.Len;
            ItemSize = (int)view.ItemSize;
            ReadOnly = view.ReadOnly != 0;
            Format = Marshal.PtrToStringAnsi(view.Format);
            Shape = new long[view.NDim];
            Strides = new long[view.NDim];
            long expected = ItemSize;
            bool contiguous = true;
            for (int d = view.NDim - 1; d >= 0; d--)
            {
                Shape[d] = (long)((IntPtr*)view.Shape)[d];
                Strides[d] = (long)((IntPtr*)view.Strides)[d];
                if (Shape[d] > 1 && Strides[d] != expected) contiguous = false;
                expected *= Shape[d];
            }
            IsContiguous = contiguous;
        }

        /// <summary>Ends the view; a second call does nothing.</summary>
        public void Dispose() { owner.Dispose(); }

        /// <summary>Copies every item into <paramref name="destination"/>, which has exactly
        /// <see cref="Count"/> items of <see cref="ItemSize"/> bytes (double, float, long, ulong,
        /// int, uint, short, ushort, char, byte, sbyte or bool).</summary>
        public void CopyTo<T>(T[] destination) where T : struct
        {
            if (destination == null) throw new ArgumentNullException("destination");
            CheckWhole(destination.LongLength);
            CopyTo(0, destination, 0, destination.Length);
        }

        /// <summary>Copies <paramref name="count"/> items from item <paramref name="sourceIndex"/> of
        /// the buffer to <paramref name="destination"/> from <paramref name="destinationIndex"/>.</summary>
        public void CopyTo<T>(long sourceIndex, T[] destination, int destinationIndex, int count) where T : struct
        {
            if (destination == null) throw new ArgumentNullException("destination");
            Copy(destination, destinationIndex, sourceIndex, count, false);
        }

        /// <summary>Copies <paramref name="source"/>, which has exactly <see cref="Count"/> items of
        /// <see cref="ItemSize"/> bytes, into the buffer (writable only).</summary>
        public void CopyFrom<T>(T[] source) where T : struct
        {
            if (source == null) throw new ArgumentNullException("source");
            if (ReadOnly) throw new InvalidOperationException("the buffer is read-only");
            CheckWhole(source.LongLength);
            CopyFrom(source, 0, 0, source.Length);
        }

        /// <summary>Copies <paramref name="count"/> items of <paramref name="source"/> from
        /// <paramref name="sourceIndex"/> into the buffer from item <paramref name="destinationIndex"/>.</summary>
        public void CopyFrom<T>(T[] source, int sourceIndex, long destinationIndex, int count) where T : struct
        {
            if (source == null) throw new ArgumentNullException("source");
            if (ReadOnly) throw new InvalidOperationException("the buffer is read-only");
            Copy(source, sourceIndex, destinationIndex, count, true);
        }

        void CheckWhole(long length)
        {
            if (length != Count)
                throw new ArgumentException("the buffer holds " + Count + " items, the array " + length);
        }

        /// <summary>Copies between <paramref name="array"/> (from item <paramref name="arrayIndex"/>)
        /// and the buffer (from item <paramref name="bufferIndex"/>), in the direction asked.</summary>
        unsafe void Copy(Array array, int arrayIndex, long bufferIndex, int count, bool intoBuffer)
        {
            int size = ElementSize(array.GetType().GetElementType());
            if (!IsContiguous)
                throw new InvalidOperationException("the buffer is not contiguous; read it through Pointer and Strides");
            if (size != ItemSize)
                throw new ArgumentException("the buffer holds " + ItemSize + "-byte items (format '" + Format +
                    "'), the array " + size + "-byte ones");
            if (count < 0 || arrayIndex < 0 || bufferIndex < 0)
                throw new ArgumentOutOfRangeException(count < 0 ? "count" : arrayIndex < 0 ? "arrayIndex" : "bufferIndex", "negative");
            if ((long)arrayIndex + count > array.LongLength)
                throw new ArgumentException("the array has " + array.LongLength + " items, not " + arrayIndex + " + " + count);
            if (bufferIndex + count > Count)
                throw new ArgumentException("the buffer has " + Count + " items, not " + bufferIndex + " + " + count);
            if (count == 0) return;
            long bytes = (long)count * size;
            GCHandle pin = GCHandle.Alloc(array, GCHandleType.Pinned);
            try
            {
                byte* arrayAt = (byte*)pin.AddrOfPinnedObject() + (long)arrayIndex * size;
                byte* bufferAt = (byte*)Pointer + bufferIndex * size;
                if (intoBuffer) Buffer.MemoryCopy(arrayAt, bufferAt, bytes, bytes);
                else Buffer.MemoryCopy(bufferAt, arrayAt, bytes, bytes);
            }
            finally
            {
                pin.Free();
            }
        }

        /// <summary>Bytes per array element (bool and char as arrays store them, not as
        /// Marshal.SizeOf says) and the struct format of each supported type.</summary>
        static int ElementSize(Type t)
        {
            if (t == typeof(double) || t == typeof(long) || t == typeof(ulong)) return 8;
            if (t == typeof(float) || t == typeof(int) || t == typeof(uint)) return 4;
            if (t == typeof(short) || t == typeof(ushort) || t == typeof(char)) return 2;
            if (t == typeof(byte) || t == typeof(sbyte) || t == typeof(bool)) return 1;
            throw new ArgumentException("buffers copy arrays of double, float, long, ulong, int, uint, short, ushort, char, byte, sbyte or bool, not " + t.Name);
        }

        /// <summary>Shares a C# array with Python without a copy: returns a memoryview of it (NumPy:
        /// numpy.frombuffer(view, dtype) or numpy.asarray(view)). The array stays pinned until Python
        /// lets go of the last reference to it (every memoryview and array made from it); then
        /// <paramref name="onRelease"/> runs (on that thread, with the GIL held; keep it short),
        /// at the latest at shutdown. Memory a daemon Python thread can still reach at shutdown
        /// (its locals and arguments, the globals of the modules whose functions it runs) is never
        /// released: CPython freezes daemon threads, so the array stays pinned and onRelease never
        /// runs. Supported items: double, float, long, ulong, int, uint, short, ushort, byte, sbyte,
        /// bool (as Python's struct formats d f q Q i I h H B b ?).</summary>
        public static PyObject Share<T>(T[] array, bool writable = true, Action onRelease = null) where T : struct
        {
            if (array == null) throw new ArgumentNullException("array");
            string format = FormatOf(typeof(T));
            int size = ElementSize(typeof(T));
            GCHandle pin = GCHandle.Alloc(array, GCHandleType.Pinned);
            return ShareMemory(pin.AddrOfPinnedObject(), (long)array.Length * size, format, size, writable,
                new Release(pin, onRelease));
        }

        /// <summary>Shares native memory with Python without a copy (see <see cref="Share{T}"/>).
        /// <paramref name="format"/> is one item in struct syntax: an optional byte order (@, =,
        /// &lt;, &gt;, !) and one of ?cbBhHiIlLqQnNefdP, without a repeat count ("4B" is refused).
        /// The memory must stay valid until <paramref name="onRelease"/> runs, which may be never
        /// (see Share).</summary>
        public static PyObject Share(IntPtr data, long length, string format, int itemSize, bool writable, Action onRelease)
        {
            return ShareMemory(data, length, format, itemSize, writable, new Release(default(GCHandle), onRelease));
        }

        static unsafe PyObject ShareMemory(IntPtr data, long length, string format, int itemSize, bool writable, Release release)
        {
            GCHandle state = GCHandle.Alloc(release);
            PyObjectHandle handle;
            byte[] f = Encoding.ASCII.GetBytes(format + "\0");
            int status;
            fixed (byte* fp = f)
                status = Native.pyb_buffer_from_host(data, (UIntPtr)length, fp, (UIntPtr)itemSize,
                    writable ? Native.PYB_BUFFER_WRITABLE : 0u, ReleaseThunk, GCHandle.ToIntPtr(state), out handle);
            if (status != 0)
            {
                state.Free();
                release.Unpin();
                PyStatus.Check(status);
            }
            return new PyObject(handle);
        }

        static string FormatOf(Type t)
        {
            if (t == typeof(double)) return "d";
            if (t == typeof(float)) return "f";
            if (t == typeof(long)) return "q";
            if (t == typeof(ulong)) return "Q";
            if (t == typeof(int)) return "i";
            if (t == typeof(uint)) return "I";
            if (t == typeof(short)) return "h";
            if (t == typeof(ushort)) return "H";
            if (t == typeof(byte)) return "B";
            if (t == typeof(sbyte)) return "b";
            if (t == typeof(bool)) return "?";
            throw new ArgumentException("Share supports double, float, long, ulong, int, uint, short, ushort, byte, sbyte and bool arrays, not " + t.Name);
        }

        /// <summary>What a share holds until Python lets go.</summary>
        sealed class Release
        {
            GCHandle pin;
            readonly Action onRelease;

            internal Release(GCHandle pin, Action onRelease) { this.pin = pin; this.onRelease = onRelease; }

            internal void Unpin() { if (pin.IsAllocated) pin.Free(); }

            internal void Run()
            {
                Unpin();
                if (onRelease != null) onRelease();
            }
        }

        // One delegate for every share, kept alive for the process: native code may call it at
        // any time until the last shared memory is released.
        static readonly PybFreeFn ReleaseThunk = OnRelease;

        static void OnRelease(IntPtr userData)
        {
            GCHandle state = GCHandle.FromIntPtr(userData);
            Release release = (Release)state.Target;
            state.Free();
            try { release.Run(); }
            catch (Exception e)
            {
                // Nothing to report to: Python is freeing the memory. Say so rather than crash.
                Console.Error.WriteLine("pybridge: a PyBuffer.Share release callback threw: " + e);
            }
        }
    }

    public partial class PyObject
    {
        /// <summary>A view of this object's memory (buffer protocol), without a copy.
        /// <paramref name="writable"/> requires writable memory. Throws InvalidCastException
        /// (PYB_E_WRONG_TYPE) for an object without one, or for read-only memory when
        /// <paramref name="writable"/> is true.</summary>
        public PyBuffer GetBuffer(bool writable = false)
        {
            PybBuffer view = new PybBuffer();
            view.StructSize = (UIntPtr)Marshal.SizeOf(typeof(PybBuffer));
            PyStatus.Check(Native.pyb_buffer_get(Handle, writable ? Native.PYB_BUFFER_WRITABLE : 0u, ref view));
            return new PyBuffer(ref view);
        }
    }
}

namespace PyBridge.Interop
{
    /// <summary>pyb_buffer.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct PybBuffer
    {
        public UIntPtr StructSize;
        public ulong Owner;
        public IntPtr Data;
        public UIntPtr Len;
        public UIntPtr ItemSize;
        /// <summary>C bool.</summary>
        public byte ReadOnly;
        public int NDim;
        public IntPtr Format;
        public IntPtr Shape;
        public IntPtr Strides;
        public IntPtr Lowest;
        public UIntPtr Span;
    }

    internal static unsafe partial class Native
    {
        public const uint PYB_BUFFER_WRITABLE = 1;

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_buffer_get(PyObjectHandle obj, uint flags, ref PybBuffer view);

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_buffer_from_host(IntPtr data, UIntPtr len, byte* format, UIntPtr itemsize,
            uint flags, PybFreeFn onRelease, IntPtr userData, out PyObjectHandle obj);

        [DllImport(Native.Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int pyb_buffer_release(ref PybBuffer view);
    }
}
