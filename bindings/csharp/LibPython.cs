using System;
using System.Runtime.InteropServices;

namespace PyBridge
{
    /// <summary>CoreCLR loads native libraries with dlopen(RTLD_LAZY) and no RTLD_GLOBAL, so the
    /// libpython that libpybridge links comes in as a local dependency, and CPython extension
    /// modules (math, _json, ...) then fail to import with "undefined symbol: PyFloat_Type".
    /// Before the first initialize, promote the already loaded libpython to the global namespace
    /// (RTLD_NOLOAD: never loads a second copy). Mono already loads it globally; this does nothing harm there.</summary>
    internal static class LibPython
    {
        private const int RTLD_NOW = 2;
        private const int RTLD_NOLOAD = 4;
        private const int RTLD_GLOBAL = 0x100;

        [DllImport("libdl.so.2", EntryPoint = "dlopen")]
        private static extern IntPtr dlopen(byte[] file, int mode);

        private static readonly object gate = new object();
        private static bool done;

        internal static void PromoteToGlobal()
        {
            lock (gate)
            {
                if (done) return;
                done = true;
                if (Environment.OSVersion.Platform != PlatformID.Unix) return;
                string info = PyEngine.PythonInfo;
                string path = null;
                foreach (string line in info.Split('\n'))
                    if (line.StartsWith("library: ", StringComparison.Ordinal))
                        path = line.Substring("library: ".Length).Trim();
                if (string.IsNullOrEmpty(path)) return;
                try
                {
                    // The handle is deliberately kept: libpython stays loaded for the process anyway.
                    dlopen(Utf8.Encode(path, "path"), RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
                }
                catch (DllNotFoundException) { }
                catch (EntryPointNotFoundException) { }
            }
        }
    }
}
