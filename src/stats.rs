//! Counters a host (and the tests) can read to see what the engine did.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::boundary::{ffi_boundary, out_ptr};
use crate::error::Error;

pub(crate) static ENGINES_STARTED: AtomicU64 = AtomicU64::new(0);
pub(crate) static INTERPRETERS_FINALIZED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SHUTDOWN_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREAD_STATES_CREATED: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREAD_STATES_DELETED: AtomicU64 = AtomicU64::new(0);

/// Process-wide counters since the library was loaded.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct pyb_stats {
    /// Set by the caller to `sizeof(pyb_stats)`; fields past it are not written.
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

/// Fills `out` (whose `struct_size` the caller sets) with the counters. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_stats_get(out: *mut pyb_stats) -> crate::status::pyb_status {
    ffi_boundary("pyb_stats_get", || {
        let out = out_ptr(out, "out")?;
        if out.struct_size < std::mem::size_of::<pyb_stats>() {
            return Err(Error::invalid_argument(format!(
                "pyb_stats.struct_size is {}; set it to sizeof(pyb_stats) = {}",
                out.struct_size,
                std::mem::size_of::<pyb_stats>()
            )));
        }
        *out = snapshot();
        Ok(())
    })
}

pub fn snapshot() -> pyb_stats {
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    pyb_stats {
        struct_size: std::mem::size_of::<pyb_stats>(),
        engines_started: read(&ENGINES_STARTED),
        interpreters_finalized: read(&INTERPRETERS_FINALIZED),
        shutdown_timeouts: read(&SHUTDOWN_TIMEOUTS),
        thread_states_created: read(&THREAD_STATES_CREATED),
        thread_states_deleted: read(&THREAD_STATES_DELETED),
    }
}
