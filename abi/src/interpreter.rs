//! Sub-interpreters and pools of them: handles, settings and counters.

/// A sub-interpreter made by `pyb_interpreter_new` or lent by `pyb_pool_borrow`;
/// 0 is "none" (`PYB_E_BAD_HANDLE`; the main interpreter is entered with
/// `pyb_gil_acquire`). Unique for the life of the process: a destroyed
/// interpreter's handle never names another one, also after a re-initialize.
///
/// In a `fork()` child of a process whose engine ran, every interpreter and
/// pool function returns `PYB_E_FORKED` at once (the threads that keep the
/// interpreters are gone), except a nested `pyb_interpreter_enter` of the
/// interpreter whose scope the forking thread has open, which nests like
/// `pyb_gil_acquire`.
#[allow(non_camel_case_types)]
pub type pyb_interpreter = u64;

/// A pool of sub-interpreters made by `pyb_pool_new`; 0 is "none"
/// (`PYB_E_BAD_HANDLE`). Unique for the life of the process.
#[allow(non_camel_case_types)]
pub type pyb_pool = u64;

/// Share the main interpreter's GIL instead of getting one of its own. Such an
/// interpreter runs on one core with the main one, but works on every
/// supported CPython (3.10 and 3.11 have no other kind) and may import
/// extension modules that lack per-interpreter support.
pub const PYB_INTERPRETER_SHARED_GIL: u32 = 1;

/// Settings for `pyb_interpreter_new`; fill it with `pyb_interpreter_config_default`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct pyb_interpreter_config {
    /// `sizeof(pyb_interpreter_config)` as the host was compiled.
    pub struct_size: usize,
    /// `PYB_INTERPRETER_*` flags; 0 (the default) is an interpreter with its
    /// own GIL (CPython 3.12 and later).
    pub flags: u32,
}

impl Default for pyb_interpreter_config {
    fn default() -> Self {
        pyb_interpreter_config {
            struct_size: std::mem::size_of::<pyb_interpreter_config>(),
            flags: 0,
        }
    }
}

/// A pool's counters, filled by `pyb_pool_stats`. Times are in nanoseconds.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, Default)]
pub struct pyb_pool_stats {
    /// `sizeof(pyb_pool_stats)` as the host was compiled; set it before the call.
    pub struct_size: usize,
    /// Interpreters in the pool: the `count` it was made with (a failed
    /// `pyb_pool_destroy` changes nothing).
    pub size: u64,
    /// Interpreters not borrowed right now.
    pub free: u64,
    /// Successful borrows.
    pub borrows: u64,
    /// Borrows that found no free interpreter and had to wait (including those that timed out).
    pub waits: u64,
    /// Borrows that gave up at their deadline (`PYB_E_TIMEOUT`).
    pub timeouts: u64,
    /// Total time borrowers spent waiting.
    pub wait_ns_total: u64,
    /// The longest single wait.
    pub wait_ns_max: u64,
}
