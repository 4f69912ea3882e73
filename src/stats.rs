//! Counters a host (and the tests) can read to see what the engine did.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::boundary::ffi_boundary;
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

/// Fills `out` (whose `struct_size` the caller sets) with the counters. Any thread.
///
/// A host built against an older, shorter `pyb_stats` gets the fields it
/// knows: only the first `struct_size` bytes are written. A `struct_size` too
/// small to hold itself is `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_stats_get(out: *mut pyb_stats) -> crate::status::pyb_status {
    ffi_boundary("pyb_stats_get", || {
        // A raw pointer, not `out_ptr`'s reference: the host's struct may be
        // shorter than ours.
        if out.is_null() {
            return Err(Error::null_argument("out"));
        }
        // SAFETY: the caller's struct starts with `struct_size`, whatever its version.
        let size = unsafe { (*out).struct_size };
        let own_size = std::mem::size_of::<pyb_stats>();
        if size < std::mem::size_of::<usize>() {
            return Err(Error::invalid_argument(format!(
                "pyb_stats.struct_size is {size}; set it to sizeof(pyb_stats) = {own_size}"
            )));
        }
        let snapshot = pyb_stats {
            struct_size: size,
            ..snapshot()
        };
        // SAFETY: the caller promises `struct_size` writable bytes at `out`;
        // no more than our own struct's are copied.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&snapshot as *const pyb_stats).cast::<u8>(),
                out.cast::<u8>(),
                size.min(own_size),
            )
        };
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
