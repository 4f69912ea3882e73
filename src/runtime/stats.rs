//! Counters a host (and the tests) can read to see what the engine did.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::abi::stats::pyb_stats;

pub(crate) static ENGINES_STARTED: AtomicU64 = AtomicU64::new(0);
pub(crate) static INTERPRETERS_FINALIZED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SHUTDOWN_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREAD_STATES_CREATED: AtomicU64 = AtomicU64::new(0);
pub(crate) static THREAD_STATES_DELETED: AtomicU64 = AtomicU64::new(0);
/// A gauge: freed thread states held back now (`python::state_quarantine`).
pub(crate) static THREAD_STATES_HELD: AtomicU64 = AtomicU64::new(0);

/// The counters now, as a full-size `pyb_stats`.
pub fn snapshot() -> pyb_stats {
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    pyb_stats {
        struct_size: std::mem::size_of::<pyb_stats>(),
        engines_started: read(&ENGINES_STARTED),
        interpreters_finalized: read(&INTERPRETERS_FINALIZED),
        shutdown_timeouts: read(&SHUTDOWN_TIMEOUTS),
        thread_states_created: read(&THREAD_STATES_CREATED),
        thread_states_deleted: read(&THREAD_STATES_DELETED),
        thread_states_held: read(&THREAD_STATES_HELD),
    }
}
