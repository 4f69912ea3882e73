//! The engine's settings, as the engine uses them: an owned copy of the
//! host's `pyb_config`, checked by the C API (`capi/config.rs`), and the
//! Python it chose.

use parking_lot::Mutex;

/// An owned, validated copy of `pyb_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EngineConfig {
    pub python_home: Option<String>,
    pub virtual_env: Option<String>,
    pub module_search_paths: Vec<String>,
    /// `sys.argv`; empty: CPython's `['']`.
    pub argv: Vec<String>,
    pub isolated: bool,
    pub ignore_sigpipe: bool,
    pub previous_threads_timeout_ms: u32,
    /// CPython's program name, from which it derives its prefixes (and a
    /// venv's); `None`: the executable of the Python pybridge was built with.
    pub program_name: Option<String>,
}

/// Which Python the last `pyb_engine_initialize` chose, and how, for
/// `pyb_python_info`.
static CHOSEN_PYTHON: Mutex<Option<String>> = Mutex::new(None);

pub(crate) fn record_chosen_python(description: String) {
    *CHOSEN_PYTHON.lock() = Some(description);
}

pub(crate) fn chosen_python() -> Option<String> {
    CHOSEN_PYTHON.lock().clone()
}

/// The moment a wait of `timeout_ms` ends; `None` for `PYB_TIMEOUT_INFINITE`.
pub(crate) fn deadline_after(timeout_ms: u32) -> Option<std::time::Instant> {
    (timeout_ms != crate::abi::engine::PYB_TIMEOUT_INFINITE)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64))
}

/// Locks `mutex`, waiting until `deadline` (`None`: no limit); `None` when
/// the deadline passed first.
pub(crate) fn lock_until<T>(
    mutex: &parking_lot::Mutex<T>,
    deadline: Option<std::time::Instant>,
) -> Option<parking_lot::MutexGuard<'_, T>> {
    match deadline {
        Some(deadline) => mutex.try_lock_until(deadline),
        None => Some(mutex.lock()),
    }
}

/// Waits on `changed` until woken or `deadline` (`None`: no limit); true when
/// the deadline passed. The caller looks at the state again either way.
pub(crate) fn wait_until<T>(
    changed: &parking_lot::Condvar,
    guard: &mut parking_lot::MutexGuard<'_, T>,
    deadline: Option<std::time::Instant>,
) -> bool {
    match deadline {
        Some(deadline) => changed.wait_until(guard, deadline).timed_out(),
        None => {
            changed.wait(guard);
            false
        }
    }
}
