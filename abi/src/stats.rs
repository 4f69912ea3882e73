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
    /// Thread states CPython freed while their thread could still write into
    /// them, held back from reuse now (CPython 3.12+, engines that initialized
    /// Python). A sub-interpreter's end frees the states other threads left
    /// there, and each such thread's next attach writes into its last one: the
    /// block is kept until that thread attached another or exited. Threads that
    /// never come back keep theirs.
    pub thread_states_held: u64,
}

/// Bytes in the thread-name fields of `pyb_gil_stats`, NUL included.
pub const PYB_THREAD_NAME_SIZE: usize = 32;

/// GIL waits and holds of host threads (`pyb_gil_stats_total`,
/// `pyb_gil_stats_threads`), counted while GIL statistics are on
/// (`pyb_gil_stats_enable`). Durations are nanoseconds. Percentiles come from
/// buckets four to a power of two, so each is at most 25% above the true value
/// (and never above the maximum).
///
/// A wait is the time a host thread spent blocked to take a GIL through
/// pybridge; a hold, from then until it gave it back (the end of its outermost
/// scope, the start of an allow-threads region, or a switch to another
/// interpreter). Python's own threads are not timed: their holds show up as
/// host threads' waits.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct pyb_gil_stats {
    /// Set by the caller to `sizeof(pyb_gil_stats)`; fields past it are not written.
    pub struct_size: usize,
    /// pybridge's id of the host thread (unique in the process); 0 in the total.
    pub thread_id: u64,
    /// The thread's operating-system id (Linux `gettid`); 0 in the total.
    pub os_thread_id: i32,
    /// The thread's name as the host set it (the OS thread name:
    /// `pthread_setname_np`, .NET `Thread.Name` on CoreCLR; Linux keeps 15
    /// bytes), NUL-terminated; empty in the total.
    pub thread_name: [std::ffi::c_char; PYB_THREAD_NAME_SIZE],
    /// Timed GIL acquisitions: one per wait, and one hold each.
    pub acquisitions: u64,
    pub wait_total_ns: u64,
    pub wait_max_ns: u64,
    pub wait_p50_ns: u64,
    pub wait_p90_ns: u64,
    pub wait_p99_ns: u64,
    pub hold_total_ns: u64,
    pub hold_max_ns: u64,
    pub hold_p50_ns: u64,
    pub hold_p90_ns: u64,
    pub hold_p99_ns: u64,
    /// Which thread held a GIL longest (`hold_max_ns`), by `thread_id`; in a
    /// thread's own entry, that thread. 0 when nothing was recorded. In the
    /// total, a thread that has exited keeps its id, OS id and name (the name
    /// the OS gave it when it exited; a live thread's is its name now).
    pub longest_hold_thread_id: u64,
    pub longest_hold_os_thread_id: i32,
    pub longest_hold_thread_name: [std::ffi::c_char; PYB_THREAD_NAME_SIZE],
    /// Whether GIL statistics are on now.
    pub enabled: bool,
}
