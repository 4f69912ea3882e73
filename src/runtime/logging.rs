//! pybridge's own log records (the `log` crate) delivered to a host callback.
//! Nothing is printed anywhere unless the host asks for it.

use std::ffi::{CString, c_char, c_void};

use parking_lot::RwLock;

use crate::abi::logging::*;

struct Sink {
    callback: unsafe extern "C" fn(i32, *const c_char, *mut c_void),
    user_data: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

struct HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        SINK.read().is_some()
    }

    fn log(&self, record: &log::Record<'_>) {
        let sink = SINK.read();
        let Some(sink) = sink.as_ref() else {
            return;
        };
        let level = match record.level() {
            log::Level::Error => PYB_LOG_ERROR,
            log::Level::Warn => PYB_LOG_WARN,
            log::Level::Info => PYB_LOG_INFO,
            log::Level::Debug => PYB_LOG_DEBUG,
            log::Level::Trace => PYB_LOG_TRACE,
        };
        let text = format!("{}", record.args()).replace('\0', "\\0");
        let text = CString::new(text).expect("NULs were escaped");
        // SAFETY: the host registered this callback for exactly this use.
        unsafe { (sink.callback)(level, text.as_ptr(), sink.user_data as *mut c_void) };
    }

    fn flush(&self) {}
}

/// Sends records up to `filter` to `callback` (none: stop), replacing any
/// earlier callback. Any thread.
pub(crate) fn send_records_to(
    callback: pyb_log_callback,
    user_data: *mut c_void,
    filter: log::LevelFilter,
) {
    static LOGGER: HostLogger = HostLogger;
    // Fails only when another logger is installed; then that one gets the records.
    let _ = log::set_logger(&LOGGER);
    *SINK.write() = callback
        .filter(|_| filter != log::LevelFilter::Off)
        .map(|callback| Sink {
            callback,
            user_data: user_data as usize,
        });
    log::set_max_level(filter);
}
