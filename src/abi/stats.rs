//! `pyb_stats`: the counters a host can read.

/// Process-wide counters since the library was loaded.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct pyb_stats {
    /// Set by the caller to `sizeof(pyb_stats)`; fields past it are not written,
    /// so hosts built against an older, shorter struct keep working.
    pub struct_size: usize,
    /// Successful `pyb_engine_initialize` calls that started (or adopted) an interpreter.
    pub engines_started: u64,
    /// `Py_FinalizeEx` calls made by the engine thread.
    pub interpreters_finalized: u64,
    /// Shutdowns that hit their deadline and left the engine running.
    pub shutdown_timeouts: u64,
    /// Persistent thread states pybridge created for host threads.
    pub thread_states_created: u64,
    /// Thread states pybridge deleted when their thread exited.
    pub thread_states_deleted: u64,
}
