//! Settings a host made before a core was loaded (a log callback, the
//! GIL-statistics switch): kept here by the exports and handed to the core
//! when it loads, so that the order of a host's calls does not matter.

use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::core_functions::CoreFunctions;

/// The log callback the host set before a core was loaded.
struct LogCallback {
    callback: usize,
    user_data: usize,
    max_level: i32,
}

static LOG_CALLBACK: Mutex<Option<LogCallback>> = Mutex::new(None);

/// The GIL-statistics switch a host set before a core was loaded: 0 = not
/// set, 1 = off, 2 = on.
static GIL_STATS_SWITCH: AtomicU8 = AtomicU8::new(0);

/// Keeps a log callback (its arguments already checked) for the core to come.
pub(crate) fn keep_log_callback(callback: *mut c_void, user_data: *mut c_void, max_level: i32) {
    *LOG_CALLBACK
        .lock()
        .unwrap_or_else(|poison| poison.into_inner()) = Some(LogCallback {
        callback: callback as usize,
        user_data: user_data as usize,
        max_level,
    });
}

/// Keeps the GIL-statistics switch for the core to come.
pub(crate) fn keep_gil_stats_switch(enabled: bool) {
    GIL_STATS_SWITCH.store(1 + u8::from(enabled), Ordering::Relaxed);
}

/// Hands what was kept to the core just loaded: the log callback first, then
/// the GIL-statistics switch.
pub(crate) fn hand_to(core: &CoreFunctions) {
    let pending = LOG_CALLBACK
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .take();
    if let Some(pending) = pending {
        // SAFETY: the core's function, with what the host gave.
        unsafe {
            (core.pyb_set_log_callback)(
                pending.callback as *mut c_void,
                pending.user_data as *mut c_void,
                pending.max_level,
            )
        };
    }
    match GIL_STATS_SWITCH.swap(0, Ordering::Relaxed) {
        0 => {}
        // SAFETY: the core's function.
        set => unsafe {
            (core.pyb_gil_stats_enable)(set == 2);
        },
    }
}
