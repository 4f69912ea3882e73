//! `pyb_config`: what the host tells the engine before Python starts.

use std::ffi::c_char;

/// Ignore `PYTHONHOME`, `PYTHONPATH` and the other environment variables, the
/// user site directory and the current directory (CPython's isolated configuration).
pub const PYB_CONFIG_ISOLATED: u32 = 1;

/// Ignore SIGPIPE, as the `python` program does, so that writing to a closed
/// pipe or socket raises `BrokenPipeError` instead of killing the host. Off by
/// default: pybridge starts Python with its signal handlers off, because the
/// process's signals belong to the host, and with the default disposition
/// such a write ends the whole process (exit status 141). The setting is
/// process-wide and stays after shutdown.
pub const PYB_CONFIG_IGNORE_SIGPIPE: u32 = 2;

/// Settings for `pyb_engine_initialize`. Fill it with `pyb_config_default`, then
/// change what you need; strings are UTF-8 and are copied during the call.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct pyb_config {
    /// `sizeof(pyb_config)` as the host was compiled: lets later versions add fields.
    pub struct_size: usize,
    /// Python home (prefix of the standard library), or NULL for the default:
    /// `PYTHONHOME` if set (and not isolated), else the chosen Python's (see `python`).
    /// A home (this or `PYTHONHOME`) that holds no standard library of the running
    /// CPython (`lib/python3.X/os.py` or `lib/python3X.zip`, `lib` being `lib64`
    /// on some systems) is refused with `PYB_E_INIT_FAILED` before Python starts,
    /// so a later call can still start it.
    pub python_home: *const c_char,
    /// A virtual environment's root directory, or NULL: its site-packages is added to `sys.path`.
    pub virtual_env: *const c_char,
    /// Extra directories put at the front of `sys.path`, in order; may be NULL when the length is 0.
    pub module_search_paths: *const *const c_char,
    pub module_search_paths_len: usize,
    /// `PYB_CONFIG_*` flags.
    pub flags: u32,
    /// How long `pyb_engine_initialize` waits for daemon threads of a previous
    /// interpreter (in this process) to exit before it starts a new one, in ms.
    /// A daemon thread that wakes up under a new interpreter would run on freed
    /// memory. From CPython 3.14 such a thread, once it wakes, is parked by
    /// CPython for good and never runs Python again: parked threads are not
    /// waited for, only those still asleep or in native code. The same bound
    /// covers, before that, waiting for a shutdown still under way and for
    /// the previous engine thread to exit (the two together).
    /// `PYB_TIMEOUT_INFINITE` waits for ever; default 10000.
    pub previous_threads_timeout_ms: u32,
    /// The Python to run, UTF-8, or NULL: a CPython executable (`/usr/bin/python3`,
    /// or a venv's `bin/python`, which makes `sys.prefix` the venv) or a
    /// `libpython3.X.so` path. NULL: the environment variable `PYBRIDGE_PYTHON`,
    /// else the Python pybridge was built with if it still exists, else
    /// `python3` on `PATH`. One process runs one libpython: a later engine must
    /// name the same Python (or none). Added after `previous_threads_timeout_ms`;
    /// a host built before it (a smaller `struct_size`) gets the default.
    pub python: *const c_char,
    /// `sys.argv`, in order, UTF-8, taken as given (no option is parsed out);
    /// may be NULL when the length is 0, which gives CPython's `['']`. The
    /// program name CPython derives its prefixes from is the chosen Python's
    /// (see `python`), whatever `argv[0]` says. Added after `python`.
    pub argv: *const *const c_char,
    pub argv_len: usize,
}

// SAFETY: the pointers are only read during `pyb_engine_initialize`.
unsafe impl Send for pyb_config {}

const DEFAULT_PREVIOUS_THREADS_TIMEOUT_MS: u32 = 10_000;

impl Default for pyb_config {
    fn default() -> Self {
        pyb_config {
            struct_size: std::mem::size_of::<pyb_config>(),
            python_home: std::ptr::null(),
            virtual_env: std::ptr::null(),
            module_search_paths: std::ptr::null(),
            module_search_paths_len: 0,
            flags: 0,
            previous_threads_timeout_ms: DEFAULT_PREVIOUS_THREADS_TIMEOUT_MS,
            python: std::ptr::null(),
            argv: std::ptr::null(),
            argv_len: 0,
        }
    }
}
