//! pybridge's own log records (the `log` crate) delivered to a host callback.
//! Nothing is printed anywhere unless the host asks for it.

use std::ffi::{CString, c_char, c_void};

use parking_lot::RwLock;

use crate::boundary::ffi_boundary;
use crate::error::Error;

/// Log levels, most severe first; a callback receives records up to its `max_level`.
pub const PYB_LOG_OFF: i32 = 0;
pub const PYB_LOG_ERROR: i32 = 1;
pub const PYB_LOG_WARN: i32 = 2;
pub const PYB_LOG_INFO: i32 = 3;
pub const PYB_LOG_DEBUG: i32 = 4;
pub const PYB_LOG_TRACE: i32 = 5;

/// Receives one log record: its `PYB_LOG_*` level, a NUL-terminated UTF-8
/// message valid only during the call, and the host's `user_data`. Called on
/// whatever thread logs, possibly with the GIL held: keep it short and do not
/// let exceptions or longjmps escape it.
#[allow(non_camel_case_types)]
pub type pyb_log_callback =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;

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

/// Sends pybridge's log records up to `max_level` (`PYB_LOG_*`) to `callback`
/// with `user_data`; a NULL callback or `PYB_LOG_OFF` stops logging. Replaces
/// any earlier callback. Any thread.
///
/// Records come from the Rust `log` crate: if the host process already installed
/// another `log` logger (a Rust host), records go to that one instead.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_set_log_callback(
    callback: pyb_log_callback,
    user_data: *mut c_void,
    max_level: i32,
) -> crate::status::pyb_status {
    ffi_boundary("pyb_set_log_callback", || {
        let filter = match max_level {
            PYB_LOG_OFF => log::LevelFilter::Off,
            PYB_LOG_ERROR => log::LevelFilter::Error,
            PYB_LOG_WARN => log::LevelFilter::Warn,
            PYB_LOG_INFO => log::LevelFilter::Info,
            PYB_LOG_DEBUG => log::LevelFilter::Debug,
            PYB_LOG_TRACE => log::LevelFilter::Trace,
            other => {
                return Err(Error::invalid_argument(format!(
                    "max_level {other} is not a PYB_LOG_* level (0..=5)"
                )));
            }
        };
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
        Ok(())
    })
}
