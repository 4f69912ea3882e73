//! Shared helpers for the engine tests. Each test file is its own binary and the
//! suite runs under cargo-nextest, so every test gets a fresh process (an engine
//! shutdown ends that process's interpreter).
#![allow(dead_code)]

// The object API helpers (run, eval, call, register host functions), all
// through pybridge's C API; this module's own go through GIL scopes and, inside
// them, the CPython C API directly.
mod objects;
#[allow(unused_imports)]
pub use objects::*;

use std::ffi::{CStr, CString, c_char};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pybridge::engine::*;
use pybridge::gil::*;
use pybridge::status::*;
use pyo3::ffi;

/// The status's name, so assertions print and compare names.
pub fn name(status: pyb_status) -> &'static str {
    pybridge::status::status_name(status).to_str().unwrap()
}

#[track_caller]
pub fn expect(status: pyb_status, expected: pyb_status) {
    assert_eq!(name(status), name(expected), "last error: {}", last_error());
}

#[track_caller]
pub fn ok(status: pyb_status) {
    expect(status, PYB_OK);
}

pub fn initialize() {
    assert_eq!(
        std::env::var("NEXTEST_EXECUTION_MODE").as_deref(),
        Ok("process-per-test"),
        "engine tests need a process each: run them with `cargo nextest run`"
    );
    ok(unsafe { pyb_engine_initialize(std::ptr::null()) });
}

pub fn acquire() -> pyb_gil {
    let mut token = 0;
    ok(unsafe { pyb_gil_acquire(&mut token) });
    token
}

/// Runs `f` with the GIL held through pybridge.
pub fn with_gil<T>(f: impl FnOnce() -> T) -> T {
    let token = acquire();
    let result = f();
    ok(pyb_gil_release(token));
    result
}

/// Runs Python statements in `__main__`; the GIL must be held. Panics on an exception.
pub fn run_held(code: &str) {
    let code = CString::new(code).unwrap();
    let rc = unsafe { ffi::PyRun_SimpleString(code.as_ptr()) };
    assert_eq!(rc, 0, "Python code failed: {}", code.to_string_lossy());
}

/// Runs Python statements in `__main__` under a pybridge GIL scope.
pub fn run(code: &str) {
    with_gil(|| run_held(code));
}

/// Evaluates a Python expression in `__main__` to an i64; the GIL must be held.
pub fn eval_i64_held(expr: &str) -> i64 {
    let expr = CString::new(expr).unwrap();
    unsafe {
        let main = ffi::PyImport_AddModule(c"__main__".as_ptr());
        let globals = ffi::PyModule_GetDict(main);
        let value = ffi::PyRun_String(expr.as_ptr(), ffi::Py_eval_input, globals, globals);
        if value.is_null() {
            ffi::PyErr_Print();
            panic!("evaluation failed: {}", expr.to_string_lossy());
        }
        let result = ffi::PyLong_AsLongLong(value);
        ffi::Py_DecRef(value);
        result
    }
}

pub fn eval_i64(expr: &str) -> i64 {
    with_gil(|| eval_i64_held(expr))
}

/// Runs `f` on a new thread and fails the test if it does not finish in `limit`
/// (a panic inside `f` fails the test with its own message).
#[track_caller]
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the scenario thread ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {limit:?} (hang)")
        }
    }
}

/// Waits until `ready()` holds, looking again every millisecond, and fails
/// the test if it does not within `limit`. For an event the test cannot be
/// told of directly (an engine state, a file, a counter): the limit is how
/// long it may take on a busy machine, so make it generous.
#[track_caller]
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until a shutdown is in progress (one another thread started).
#[track_caller]
pub fn wait_for_shutting_down() {
    wait_until(Duration::from_secs(30), "the shutdown", || {
        pyb_engine_state() == PYB_STATE_SHUTTING_DOWN
    });
}

/// Spawns a named thread.
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .unwrap()
}

/// The calling thread's last error message, read as a host reads it.
pub fn last_error() -> String {
    read_last(pybridge::error::pyb_last_error_message)
}

/// Reads one of the `pyb_last_error_*` text getters, asking for the length first.
pub fn read_last(getter: unsafe extern "C" fn(*mut c_char, usize) -> usize) -> String {
    let len = unsafe { getter(std::ptr::null_mut(), 0) };
    let mut buf = vec![0u8; len + 1];
    let full = unsafe { getter(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(full, len);
    buf.truncate(len);
    String::from_utf8(buf).unwrap()
}

pub fn shutdown(timeout_ms: u32, flags: u32) -> pyb_status {
    pyb_engine_shutdown(timeout_ms, flags)
}

pub fn elapsed_ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

pub fn c(text: &str) -> CString {
    CString::new(text).unwrap()
}

pub fn cstr_to_string(ptr: *const std::ffi::c_char) -> String {
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The engine's counters, read through `pyb_stats_get` as a host reads them.
pub fn stats() -> pybridge::stats::pyb_stats {
    let mut stats = pybridge::stats::pyb_stats {
        struct_size: std::mem::size_of::<pybridge::stats::pyb_stats>(),
        ..Default::default()
    };
    ok(unsafe { pybridge::stats::pyb_stats_get(&mut stats) });
    stats
}

/// Begins an allow-threads region and returns its token.
pub fn begin_allow() -> pyb_thread_token {
    let mut token = 0;
    ok(unsafe { pyb_begin_allow_threads(&mut token) });
    token
}

unsafe extern "C" fn log_to_stderr(
    level: i32,
    message: *const std::ffi::c_char,
    _: *mut std::ffi::c_void,
) {
    eprintln!("[pybridge {level}] {}", cstr_to_string(message));
}

/// Sends pybridge's log to stderr (shown for failing tests).
pub fn log_to_test_output() {
    ok(pybridge::logging::pyb_set_log_callback(
        Some(log_to_stderr),
        std::ptr::null_mut(),
        5,
    ));
}

static SHUTDOWN_JOINS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe extern "C" fn count_joins(
    _: i32,
    message: *const std::ffi::c_char,
    _: *mut std::ffi::c_void,
) {
    if cstr_to_string(message).contains("joins the shutdown in progress") {
        SHUTDOWN_JOINS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// From now on counts the shutdown calls that joined one in progress (they
/// say so in pybridge's log, which goes to this counter instead of stderr).
pub fn count_shutdown_joins() {
    ok(pybridge::logging::pyb_set_log_callback(
        Some(count_joins),
        std::ptr::null_mut(),
        pybridge::logging::PYB_LOG_DEBUG,
    ));
}

/// How many shutdown calls joined one in progress since `count_shutdown_joins`.
pub fn shutdown_joins() -> usize {
    SHUTDOWN_JOINS.load(std::sync::atomic::Ordering::SeqCst)
}

/// A sub-interpreter that shares the main GIL: it works on every supported
/// Python (own-GIL ones need 3.12).
pub fn shared_gil_interpreter() -> pybridge::interpreter::pyb_interpreter {
    use pybridge::interpreter::*;
    let config = pyb_interpreter_config {
        struct_size: std::mem::size_of::<pyb_interpreter_config>(),
        flags: PYB_INTERPRETER_SHARED_GIL,
    };
    let mut interp = 0;
    ok(unsafe { pyb_interpreter_new(&config, &mut interp) });
    interp
}

/// A host thread importing a module whose body runs Python for a while,
/// for tests of interrupting shutdowns: no interrupt may land inside the
/// module's body (another thread importing it would be handed the half-made
/// module). The module lives in a fresh directory the code puts on `sys.path`.
pub struct SlowImport {
    dir: std::path::PathBuf,
    body_ms: u64,
}

impl SlowImport {
    /// The module `slowbody` writes a `started` file, spins until a `release`
    /// file appears, then spins `body_ms` more.
    pub fn new(tag: &str, body_ms: u64) -> SlowImport {
        let dir =
            std::env::temp_dir().join(format!("pyb-slow-import-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("slowbody.py"),
            format!(
                "import os, time\n\
                 _here = os.path.dirname(__file__)\n\
                 open(os.path.join(_here, 'started'), 'w').close()\n\
                 while not os.path.exists(os.path.join(_here, 'release')):\n    pass\n\
                 _end = time.monotonic() + {body_ms} / 1000\n\
                 while time.monotonic() < _end:\n    pass\n\
                 DONE = True\n"
            ),
        )
        .unwrap();
        SlowImport { dir, body_ms }
    }

    /// What the host thread runs: the import, then a loop an interrupt ends.
    fn code(&self) -> CString {
        c(&format!(
            "import sys, time\nsys.path.insert(0, {:?})\nimport slowbody\nassert slowbody.DONE\n\
             while True:\n    time.sleep(0.001)\n",
            self.dir.display().to_string()
        ))
    }

    /// Runs the import on an "importer" thread through `run` (which returns
    /// `pyb_run`'s status and the last error); once the module's body has
    /// begun, stops the engine with `PYB_SHUTDOWN_INTERRUPT` from a "stopper"
    /// thread and, once that shutdown is in progress, lets the body run its
    /// last `body_ms`. Checks that the interrupt landed after the import, in
    /// the loop (never in `slowbody.py`), and that the shutdown waited for the
    /// rest of the body.
    pub fn interrupt_during_the_import(
        self,
        run: impl FnOnce(CString) -> (pyb_status, String) + Send + 'static,
    ) {
        let code = self.code();
        let importer = spawn("importer", move || run(code));
        wait_until(Duration::from_secs(30), "the import's beginning", || {
            self.dir.join("started").exists()
        });
        let stopper = spawn("stopper", || {
            let status = shutdown(10_000, PYB_SHUTDOWN_INTERRUPT);
            (status, Instant::now())
        });
        wait_for_shutting_down();
        let released = Instant::now();
        std::fs::write(self.dir.join("release"), "").unwrap();
        let (status, stopped) = stopper.join().unwrap();
        ok(status);
        let (status, message) = importer.join().unwrap();
        assert_eq!(name(status), "PYB_E_PYTHON", "{message}");
        assert!(message.contains("ShutdownInterrupt"), "{message}");
        assert!(
            !message.contains("slowbody.py"),
            "the interrupt landed inside the module's body: {message}"
        );
        // The body ran `body_ms` after its release, and was waited for.
        let waited = stopped.duration_since(released).as_millis();
        assert!(
            (u128::from(self.body_ms)..10_000).contains(&waited),
            "stopped {waited} ms after the body's release (it runs {} ms more)",
            self.body_ms
        );
    }
}

impl Drop for SlowImport {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `pyb_buffer` for `pyb_buffer_get` to fill: its size set, the rest empty.
pub fn blank_buffer() -> pybridge::buffer::pyb_buffer {
    pybridge::buffer::pyb_buffer {
        struct_size: std::mem::size_of::<pybridge::buffer::pyb_buffer>(),
        owner: 0,
        data: std::ptr::null_mut(),
        len: 0,
        itemsize: 0,
        readonly: false,
        ndim: 0,
        format: std::ptr::null(),
        shape: std::ptr::null(),
        strides: std::ptr::null(),
        lowest: std::ptr::null_mut(),
        span: 0,
    }
}
