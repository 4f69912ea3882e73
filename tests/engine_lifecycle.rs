//! Engine lifecycle: initialize from any thread (concurrently, idempotently),
//! configuration, restart cycles, guest mode, diagnostics.

mod common;
use common::*;

use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use pybridge::config::*;
use pybridge::engine::*;
use pybridge::error::pyb_last_error_message;
use pybridge::gil::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(60);

fn initialize_with(config: &pyb_config) -> pyb_status {
    unsafe { pyb_engine_initialize(config) }
}

fn default_config() -> pyb_config {
    let mut config = unsafe { std::mem::zeroed() };
    ok(unsafe { pyb_config_default(&mut config) });
    config
}

#[test]
fn initialize_on_a_thread_that_then_exits() {
    within(LIMIT, "init thread exits", || {
        spawn("initializer", initialize).join().unwrap();
        assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
        // The initializer is gone; Python's main thread is the engine's own.
        run("import threading\nmain_name = threading.main_thread().name");
        with_gil(|| assert_eq!(eval_i64_held("main_name == 'MainThread'"), 1));
        spawn("user", || run("z = 3")).join().unwrap();
        assert_eq!(eval_i64("z"), 3);
        ok(spawn("stopper", || shutdown(5000, 0)).join().unwrap());
    });
}

#[test]
fn concurrent_initialize_starts_one_engine_and_everyone_gets_ok() {
    within(LIMIT, "concurrent init", || {
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let barrier = barrier.clone();
                spawn(&format!("init-{i}"), move || {
                    barrier.wait();
                    let status = unsafe { pyb_engine_initialize(std::ptr::null()) };
                    // When initialize returns, this thread does not hold the GIL and may take it.
                    assert_eq!(pyb_gil_held(), 0);
                    run("import sys");
                    status
                })
            })
            .collect();
        for thread in threads {
            ok(thread.join().unwrap());
        }
        assert_eq!(stats().engines_started, 1);
        initialize();
        assert_eq!(stats().engines_started, 1, "initialize is idempotent");
    });
}

#[test]
fn twenty_cycles_each_from_different_threads() {
    within(Duration::from_secs(120), "20 cycles", || {
        for cycle in 0..20 {
            spawn(&format!("init-{cycle}"), initialize).join().unwrap();
            let user = spawn(&format!("user-{cycle}"), move || {
                run(&format!("import threading, time\nvalue = {cycle}"));
                // A daemon thread that outlives the interpreter briefly: the next
                // initialize must wait for it to be gone.
                run("threading.Thread(target=time.sleep, args=(0.02,), daemon=True).start()");
                eval_i64("value")
            });
            assert_eq!(user.join().unwrap(), cycle);
            ok(spawn(&format!("stop-{cycle}"), || shutdown(10_000, 0))
                .join()
                .unwrap());
            assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        }
        let stats = stats();
        assert_eq!(stats.engines_started, 20);
        assert_eq!(stats.interpreters_finalized, 20);
    });
}

/// CPython 3.14+ parks a thread that wants the GIL after finalization began
/// instead of ending it.
fn parks_threads_at_finalization() -> bool {
    eval_i64("__import__('sys').version_info >= (3, 14)") == 1
}

#[test]
fn reinitialize_waits_for_daemon_threads_of_the_previous_interpreter() {
    within(LIMIT, "lingering daemon", || {
        initialize();
        // The daemon thread waits, outside the GIL, until the test writes to a pipe.
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [wake_read, wake_write] = fds;
        run(&format!(
            "import os, threading\n\
             sleeper = threading.Thread(target=os.read, args=({wake_read}, 1), daemon=True)\n\
             sleeper.start()\n\
             native_id = sleeper.native_id\n"
        ));
        let native_id = eval_i64("native_id");
        ok(shutdown(5000, 0));
        // Too short a wait: refused with a message naming the thread.
        let mut config = default_config();
        config.previous_threads_timeout_ms = 0;
        expect(initialize_with(&config), PYB_E_TIMEOUT);
        assert!(
            last_error().contains(&native_id.to_string()),
            "{}",
            last_error()
        );
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        // Default wait: returns once the sleeper is gone, then runs normally.
        // SAFETY: one byte from a constant into our own pipe.
        assert_eq!(
            unsafe { libc::write(wake_write, b"x".as_ptr().cast(), 1) },
            1
        );
        let start = Instant::now();
        initialize();
        assert!(start.elapsed() < Duration::from_secs(5));
        // The sleeper woke after finalization: 3.10-3.13 end it, 3.14+ park it
        // for good (pause() in PyThread_hang_thread), which never runs Python.
        let alive = std::path::Path::new(&format!("/proc/self/task/{native_id}")).exists();
        assert_eq!(alive, parks_threads_at_finalization());
        assert_eq!(eval_i64("1 + 1"), 2);
        for fd in [wake_read, wake_write] {
            // SAFETY: our own descriptors, closed once.
            unsafe { libc::close(fd) };
        }
    });
}

#[test]
fn config_adds_search_paths_and_a_virtual_environment() {
    within(LIMIT, "config paths", || {
        let dir = std::env::temp_dir().join(format!("pybridge-config-{}", std::process::id()));
        let extra = dir.join("extra");
        let site = dir.join("venv/lib/python3.11/site-packages");
        let version = env!("PYB_BUILD_PYTHON_VERSION");
        let short: Vec<&str> = version.split('.').take(2).collect();
        let site = if short == ["3", "11"] {
            site
        } else {
            dir.join(format!(
                "venv/lib/python{}.{}/site-packages",
                short[0], short[1]
            ))
        };
        std::fs::create_dir_all(&extra).unwrap();
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(extra.join("extra_mod.py"), "ANSWER = 41\n").unwrap();
        std::fs::write(site.join("venv_mod.py"), "ANSWER = 1\n").unwrap();
        let extra_c = c(extra.to_str().unwrap());
        let venv_c = c(dir.join("venv").to_str().unwrap());
        let paths = [extra_c.as_ptr()];
        let mut config = default_config();
        config.module_search_paths = paths.as_ptr();
        config.module_search_paths_len = 1;
        config.virtual_env = venv_c.as_ptr();
        ok(initialize_with(&config));
        run("import extra_mod, venv_mod, sys\ntotal = extra_mod.ANSWER + venv_mod.ANSWER");
        assert_eq!(eval_i64("total"), 42);
        let first = format!("sys.path[0] == {:?}", extra.to_str().unwrap());
        assert_eq!(eval_i64(&first), 1, "extra paths go first");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn pythonpath_is_honoured_unless_isolated() {
    within(LIMIT, "isolated", || {
        let dir = std::env::temp_dir().join(format!("pybridge-pp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("from_env.py"), "X = 7\n").unwrap();
        // SAFETY: this test's process is its own (nextest) and sets it before any thread reads it.
        unsafe { std::env::set_var("PYTHONPATH", &dir) };
        initialize();
        run("import from_env");
        assert_eq!(eval_i64("from_env.X"), 7);
        ok(shutdown(5000, 0));
        // CPython 3.10 keeps the first start's pre-configuration for the whole
        // process, so there a second start with other isolation is refused.
        let mut config = default_config();
        config.flags = PYB_CONFIG_ISOLATED;
        if env!("PYB_BUILD_PYTHON_VERSION").starts_with("3.10.") {
            expect(initialize_with(&config), PYB_E_INVALID_ARGUMENT);
            assert!(
                last_error().contains("pre-configuration"),
                "{}",
                last_error()
            );
            return;
        }
        ok(initialize_with(&config));
        run("import importlib.util\nfound = importlib.util.find_spec('from_env') is not None");
        assert_eq!(eval_i64("found"), 0, "isolated mode ignores PYTHONPATH");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn bad_configurations_are_refused_and_nothing_starts() {
    within(LIMIT, "bad config", || {
        let mut config = default_config();
        config.struct_size = 8;
        expect(initialize_with(&config), PYB_E_INVALID_ARGUMENT);
        assert!(last_error().contains("struct_size"), "{}", last_error());

        let mut config = default_config();
        config.flags = 0x100;
        expect(initialize_with(&config), PYB_E_INVALID_ARGUMENT);

        let mut config = default_config();
        config.module_search_paths_len = 2;
        expect(initialize_with(&config), PYB_E_NULL_ARGUMENT);

        let bad_utf8: &[u8] = b"/tmp/\xff\xfe\0";
        let mut config = default_config();
        config.virtual_env = bad_utf8.as_ptr().cast::<c_char>();
        expect(initialize_with(&config), PYB_E_INVALID_ARGUMENT);
        assert!(last_error().contains("UTF-8"), "{}", last_error());

        let missing = c("/nonexistent/pybridge-venv");
        let mut config = default_config();
        config.virtual_env = missing.as_ptr();
        expect(initialize_with(&config), PYB_E_INIT_FAILED);
        assert!(
            last_error().contains("FileNotFoundError"),
            "{}",
            last_error()
        );

        expect(
            unsafe { pyb_config_default(std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        assert_eq!(stats().engines_started, 0);
        // After every refusal, a good configuration starts normally.
        initialize();
        assert_eq!(eval_i64("2 * 21"), 42);
    });
}

#[test]
fn the_running_python_is_the_one_pybridge_was_built_against() {
    within(LIMIT, "python info", || {
        initialize();
        let mut buf = vec![0 as c_char; 4096];
        let len = unsafe { pybridge::info::pyb_python_info(buf.as_mut_ptr(), buf.len()) };
        let text = cstr_to_string(buf.as_ptr());
        assert_eq!(text.len(), len);
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{key}: ")))
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .to_string()
        };
        assert_eq!(field("version"), env!("PYB_BUILD_PYTHON_VERSION"));
        assert_eq!(field("build_version"), env!("PYB_BUILD_PYTHON_VERSION"));
        let libdir = std::fs::canonicalize(env!("PYB_BUILD_PYTHON_LIBDIR")).unwrap();
        assert!(
            field("library").starts_with(libdir.to_str().unwrap()),
            "loaded {} instead of the build's libpython in {}",
            field("library"),
            libdir.display()
        );
        let prefix = std::fs::canonicalize(field("prefix")).unwrap();
        assert!(
            libdir.starts_with(&prefix),
            "prefix {} vs {}",
            prefix.display(),
            libdir.display()
        );
        assert_eq!(
            cstr_to_string(pybridge::info::pyb_version()),
            env!("CARGO_PKG_VERSION")
        );
    });
}

#[test]
fn status_names_and_last_error_messages() {
    let names = [
        (PYB_OK, "PYB_OK"),
        (PYB_E_NOT_INITIALIZED, "PYB_E_NOT_INITIALIZED"),
        (PYB_E_SHUTTING_DOWN, "PYB_E_SHUTTING_DOWN"),
        (PYB_E_GIL_NOT_HELD, "PYB_E_GIL_NOT_HELD"),
        (PYB_E_WRONG_THREAD, "PYB_E_WRONG_THREAD"),
        (PYB_E_BAD_TOKEN, "PYB_E_BAD_TOKEN"),
        (PYB_E_WOULD_DEADLOCK, "PYB_E_WOULD_DEADLOCK"),
        (PYB_E_TIMEOUT, "PYB_E_TIMEOUT"),
        (PYB_E_NULL_ARGUMENT, "PYB_E_NULL_ARGUMENT"),
        (PYB_E_INVALID_ARGUMENT, "PYB_E_INVALID_ARGUMENT"),
        (PYB_E_PYTHON, "PYB_E_PYTHON"),
        (PYB_E_INIT_FAILED, "PYB_E_INIT_FAILED"),
        (PYB_E_PANIC, "PYB_E_PANIC"),
        (PYB_E_BAD_HANDLE, "PYB_E_BAD_HANDLE"),
        (-9999, "PYB_E_UNKNOWN"),
    ];
    for (status, expected) in names {
        assert_eq!(cstr_to_string(pyb_status_name(status)), expected);
    }
    // Before any failure the message is empty.
    assert_eq!(
        unsafe { pyb_last_error_message(std::ptr::null_mut(), 0) },
        0
    );
    expect(unsafe { pyb_gil_acquire(&mut 0) }, PYB_E_NOT_INITIALIZED);
    let full = unsafe { pyb_last_error_message(std::ptr::null_mut(), 0) };
    let mut small = [0x55 as c_char; 16];
    assert_eq!(
        unsafe { pyb_last_error_message(small.as_mut_ptr(), small.len()) },
        full
    );
    let truncated = cstr_to_string(small.as_ptr());
    assert_eq!(truncated.len(), 15);
    assert_eq!(truncated, "pyb_gil_acquire");
    let whole = last_error();
    assert_eq!(whole.len(), full);
    assert!(whole.contains("PYB_E_NOT_INITIALIZED") && whole.contains("pyb_engine_initialize"));
    // Messages are per thread.
    let other = spawn("other", || unsafe {
        pyb_last_error_message(std::ptr::null_mut(), 0)
    });
    assert_eq!(other.join().unwrap(), 0);
}

static LOG_RECORDS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_records(
    level: i32,
    message: *const c_char,
    user_data: *mut std::ffi::c_void,
) {
    assert!((1..=5).contains(&level));
    assert!(!cstr_to_string(message).is_empty());
    assert_eq!(user_data as usize, 0xfeed);
    LOG_RECORDS.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn log_records_reach_the_host_callback() {
    within(LIMIT, "log callback", || {
        use pybridge::logging::*;
        ok(pyb_set_log_callback(
            Some(count_records),
            0xfeed as *mut _,
            PYB_LOG_INFO,
        ));
        initialize();
        let after_start = LOG_RECORDS.load(Ordering::Relaxed);
        assert!(after_start >= 1, "the engine start is logged at INFO");
        expect(
            pyb_set_log_callback(Some(count_records), std::ptr::null_mut(), 9),
            PYB_E_INVALID_ARGUMENT,
        );
        ok(pyb_set_log_callback(
            None,
            std::ptr::null_mut(),
            PYB_LOG_OFF,
        ));
        ok(shutdown(5000, 0));
        assert_eq!(
            LOG_RECORDS.load(Ordering::Relaxed),
            after_start,
            "silent once removed"
        );
    });
}

#[test]
fn a_guest_engine_adopts_an_existing_interpreter_and_never_finalizes_it() {
    // Cargo leaves the cdylib built for tests next to this binary in deps/.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let library = [deps, deps.parent().unwrap()]
        .iter()
        .map(|dir| dir.join("libpybridge.so"))
        .find(|path| path.exists())
        .expect("libpybridge.so next to the test binary");
    let script = format!(
        r#"
import ctypes, sys, threading
lib = ctypes.CDLL({library:?})
assert lib.pyb_engine_initialize(None) == 0
assert lib.pyb_engine_state() == 1
# ctypes.CDLL releases the GIL around each call: pybridge takes it on this
# thread's own state and gives it back within the call (pyb_python_info reads
# sys.prefix under a GIL scope).
def info():
    buf = ctypes.create_string_buffer(4096)
    lib.pyb_python_info(buf, 4096)
    return buf.value.decode()
assert ("prefix: " + sys.prefix) in info(), info()
results = []
w = threading.Thread(target=lambda: results.append(info())); w.start(); w.join()
assert ("prefix: " + sys.prefix) in results[0], results
token = ctypes.c_uint64()
# Through PyDLL the GIL stays held: pybridge sees it and nests.
plib = ctypes.PyDLL({library:?})
assert plib.pyb_gil_held() == 1
assert plib.pyb_gil_acquire(ctypes.byref(token)) == 0
assert plib.pyb_gil_release(token) == 0
handle = ctypes.c_uint64()
assert lib.pyb_import(b"math", ctypes.byref(handle)) == 0
assert lib.pyb_engine_shutdown(5000, 0) == 0
assert lib.pyb_engine_state() == 0
# Handles die with the guest engine too, even though Python lives on.
assert lib.pyb_engine_initialize(None) == 0
assert lib.pyb_object_release(handle) == -13, "PYB_E_BAD_HANDLE"
assert lib.pyb_engine_shutdown(5000, 0) == 0
print("guest ok, python alive:", sum(range(10)))
"#
    );
    let output = std::process::Command::new(env!("PYB_BUILD_PYTHON_EXECUTABLE"))
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("guest ok, python alive: 45"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

static STACK_WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn keep_stack_warnings(
    level: i32,
    message: *const c_char,
    _: *mut std::ffi::c_void,
) {
    let message = cstr_to_string(message);
    if level == pybridge::logging::PYB_LOG_WARN && message.contains("KiB stack") {
        STACK_WARNINGS.lock().unwrap().push(message);
    }
}

/// Enters pybridge once on a new thread with a stack of `kib` KiB.
fn enter_on_thread_with_stack(name: &str, kib: usize) {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(kib << 10)
        .spawn(|| {
            let token = acquire();
            ok(pyb_gil_release(token));
            let token = acquire();
            ok(pyb_gil_release(token));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_thread_with_too_small_a_stack_is_named_in_one_warning() {
    within(LIMIT, "stack warning", || {
        use pybridge::logging::*;
        ok(pyb_set_log_callback(
            Some(keep_stack_warnings),
            std::ptr::null_mut(),
            PYB_LOG_WARN,
        ));
        initialize();
        enter_on_thread_with_stack("small-stack", 256);
        enter_on_thread_with_stack("large-stack", 16 << 10);
        let warnings: Vec<String> = STACK_WARNINGS
            .lock()
            .unwrap()
            .iter()
            .filter(|message| message.contains("-stack'"))
            .cloned()
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        let minor = eval_i64("__import__('sys').version_info[1]");
        let minimum = if minor >= 13 { 4096 } else { 1024 };
        assert!(
            warnings[0].contains("host thread 'small-stack'")
                && warnings[0].contains("has a 256 KiB stack")
                && warnings[0].contains(&format!("at least {minimum} KiB")),
            "{}",
            warnings[0]
        );
        ok(shutdown(5000, 0));
    });
}

/// The per-cycle checks of the two tests below: which extension modules the
/// guard refuses (src/python/reinit_guard.rs), given those an earlier engine in this
/// process initialized (`EARLIER`), and that the standard library still works
/// through their pure-Python versions.
const REINIT_CHECKS: &str = r#"
import sys
minor = sys.version_info[:2]
# Measured to crash a re-initialized interpreter (docs/CPYTHON-NOTES.md).
HAZARDS = {
    (3, 11): {'_zoneinfo'},
    (3, 12): {'_asyncio', '_ctypes', '_datetime', '_decimal', '_hashlib', '_ssl', '_zoneinfo'},
}
ALL = sorted(HAZARDS[(3, 12)])

def refused(name):
    try:
        __import__(name)
    except ImportError as error:
        assert 'pybridge refuses to import ' + name + ': CPython ' in str(error), str(error)
        return True
    return False

EARLIER = set(ALL) if EARLIER == 'ALL' else EARLIER
found = {name: refused(name) for name in ALL}
expected = {name: name in EARLIER and name in HAZARDS.get(minor, ()) for name in ALL}
assert found == expected, (found, expected)
import asyncio, datetime, decimal, hashlib, zoneinfo
assert datetime.date(2024, 2, 28) + datetime.timedelta(days=2) == datetime.date(2024, 3, 1)
assert decimal.Decimal('1.1') + decimal.Decimal('2.2') == decimal.Decimal('3.3')
assert hashlib.sha256(b'pybridge').hexdigest() == '76f4f752f8e5b90d9d55ad41375c12482f5f5953946a69890e0bc7cfa393ca53'
async def answer():
    return 42
assert asyncio.run(answer()) == 42
# 3.12 has datetime's pure-Python version in its own module; older versions inline it.
assert ('_pydatetime' in sys.modules) == ('_datetime' in EARLIER and minor == (3, 12))
"#;

fn reinit_checks(earlier: &str) -> String {
    format!("EARLIER = {earlier}\n{REINIT_CHECKS}")
}

#[test]
fn extension_modules_cpython_cannot_initialize_twice_are_refused_after_a_restart() {
    // Without the guard: a double free in _datetime's init on 3.12 in the second
    // cycle, and "deallocating None" from _zoneinfo on 3.11 in the fourth.
    within(
        LIMIT,
        "5 cycles importing datetime, decimal, asyncio",
        || {
            for cycle in 0..5 {
                initialize();
                let earlier = if cycle == 0 { "set()" } else { "'ALL'" };
                spawn("user", move || run(&reinit_checks(earlier)))
                    .join()
                    .unwrap();
                ok(shutdown(10_000, 0));
            }
        },
    );
}

#[test]
fn a_module_first_initialized_by_atexit_code_is_refused_too() {
    // The guard's import hook never sees an import made while Py_FinalizeEx
    // runs atexit handlers; the loaded extension file gives it away.
    within(LIMIT, "atexit import", || {
        initialize();
        run("import atexit\natexit.register(lambda: __import__('_decimal'))");
        ok(shutdown(10_000, 0));
        initialize();
        run(&reinit_checks("{'_decimal'}"));
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn a_host_with_a_shorter_stats_struct_gets_the_fields_it_knows() {
    use pybridge::stats::*;
    within(LIMIT, "stats prefix", || {
        initialize();
        ok(shutdown(10_000, 0));
        // A host built when pyb_stats ended after engines_started.
        let untouched = u64::MAX;
        let mut out = pyb_stats {
            struct_size: 16,
            engines_started: untouched,
            interpreters_finalized: untouched,
            shutdown_timeouts: untouched,
            thread_states_created: untouched,
            thread_states_deleted: untouched,
            thread_states_held: untouched,
        };
        ok(unsafe { pyb_stats_get(&mut out) });
        assert_eq!(out.struct_size, 16);
        assert_eq!(out.engines_started, 1);
        assert_eq!(out.interpreters_finalized, untouched);
        assert_eq!(out.thread_states_deleted, untouched);
        out.struct_size = 4;
        expect(unsafe { pyb_stats_get(&mut out) }, PYB_E_INVALID_ARGUMENT);
        assert!(
            last_error().contains("set it to sizeof(pyb_stats) = 56"),
            "{}",
            last_error()
        );
        out.struct_size = std::mem::size_of::<pyb_stats>();
        ok(unsafe { pyb_stats_get(&mut out) });
        assert_eq!(out.interpreters_finalized, 1);
    });
}

/// Daemon threads asleep in `time.sleep` at a shutdown (with or without
/// PYB_SHUTDOWN_INTERRUPT, which fires only when a thread next runs bytecode)
/// wake after finalization began: 3.10-3.13 end them, 3.14+ park them for good.
/// The next start waits for exactly that, never for its whole timeout (3.14
/// and 3.15 timed out before parked threads were recognised).
#[test]
fn a_restart_waits_for_sleeping_daemons_to_end_or_park() {
    within(LIMIT, "restart after sleeping daemons", || {
        for flags in [0, PYB_SHUTDOWN_INTERRUPT] {
            initialize();
            run("import threading, time\n\
                 started = threading.Barrier(4)\n\
                 def nap():\n\
                 \x20   started.wait()\n\
                 \x20   time.sleep(1.5)\n\
                 sleepers = [threading.Thread(target=nap, daemon=True) for _ in range(3)]\n\
                 for t in sleepers: t.start()\n\
                 started.wait()\n\
                 native_ids = [t.native_id for t in sleepers]\n");
            let ids: Vec<i64> = (0..3)
                .map(|i| eval_i64(&format!("native_ids[{i}]")))
                .collect();
            ok(shutdown(10_000, flags));
            let mut config = default_config();
            config.previous_threads_timeout_ms = 30_000;
            let start = Instant::now();
            ok(initialize_with(&config));
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "flags {flags}: the restart waited {:?}",
                start.elapsed()
            );
            let parked = parks_threads_at_finalization();
            for id in &ids {
                let alive = std::path::Path::new(&format!("/proc/self/task/{id}")).exists();
                assert_eq!(alive, parked, "flags {flags}: sleeper {id}");
            }
            assert_eq!(eval_i64("sum(range(10))"), 45);
            ok(shutdown(10_000, 0));
        }
    });
}

/// A host thread that had a thread state under the previous engine gets a new
/// one under the next: CPython 3.14+ still reports the freed one as the
/// thread's PyGILState state, and attaching it hung for ever on 3.15.
#[test]
fn a_thread_with_a_state_in_the_previous_engine_runs_in_the_next() {
    within(LIMIT, "a host thread across a restart", || {
        initialize();
        let (to_worker, commands) = mpsc::channel::<()>();
        let (done, results) = mpsc::channel::<i64>();
        let worker = std::thread::spawn(move || {
            for () in commands {
                run("import threading\n\
                     try: mine\n\
                     except NameError: mine = threading.local()\n\
                     mine.n = getattr(mine, 'n', 0) + 1\n");
                done.send(eval_i64("mine.n")).unwrap();
            }
        });
        to_worker.send(()).unwrap();
        assert_eq!(results.recv().unwrap(), 1);
        to_worker.send(()).unwrap();
        assert_eq!(
            results.recv().unwrap(),
            2,
            "threading.local kept between scopes"
        );
        // An engine's end holds no state back (state_quarantine's notes): none
        // is freed while a thread's PyGILState slot can still be written to.
        let held = stats().thread_states_held;
        for _ in 0..3 {
            ok(shutdown(10_000, 0));
            initialize();
            to_worker.send(()).unwrap();
            assert_eq!(
                results.recv().unwrap(),
                1,
                "a fresh interpreter, a fresh state"
            );
            assert_eq!(stats().thread_states_held, held, "nothing held");
        }
        drop(to_worker);
        worker.join().unwrap();
    });
}

/// The engine thread's last words ("the engine thread exits", logged after
/// its shutdown's outcome) reach a host log callback that holds them until
/// the test lets go: the thread is past Python's finalization but has not
/// exited.
static LAST_WORDS: std::sync::Mutex<(bool, bool)> = std::sync::Mutex::new((false, false));
static LAST_WORDS_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

unsafe extern "C" fn hold_last_words(_: i32, message: *const c_char, _: *mut std::ffi::c_void) {
    if cstr_to_string(message).contains("the engine thread exits") {
        let mut words = LAST_WORDS.lock().unwrap();
        words.0 = true;
        LAST_WORDS_CHANGED.notify_all();
        while !words.1 {
            words = LAST_WORDS_CHANGED.wait(words).unwrap();
        }
    }
}

/// Issue 21: a restart joins the previous engine thread within a bound. A
/// thread held after its outcome (here in a host log callback) makes the
/// shutdown return `PYB_OK` at its deadline (Python is finalized) and the
/// next start `PYB_E_TIMEOUT` after `previous_threads_timeout_ms`, with
/// nothing started; once the thread has gone, a start succeeds.
#[test]
fn a_restart_waits_for_the_previous_engine_thread_within_its_bound() {
    within(LIMIT, "an engine thread slow to exit", || {
        /// The caller's wake-up past a deadline on a busy machine.
        const SLACK_MS: u128 = 1_000;
        initialize();
        ok(pybridge::logging::pyb_set_log_callback(
            Some(hold_last_words),
            std::ptr::null_mut(),
            pybridge::logging::PYB_LOG_DEBUG,
        ));
        const DEADLINE_MS: u32 = 300;
        let started = Instant::now();
        ok(shutdown(DEADLINE_MS, 0));
        let waited = elapsed_ms(started);
        assert!(
            waited < u128::from(DEADLINE_MS) + SLACK_MS,
            "waited {waited} ms"
        );
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        let mut words = LAST_WORDS.lock().unwrap();
        while !words.0 {
            words = LAST_WORDS_CHANGED.wait(words).unwrap();
        }
        drop(words);
        let mut config = default_config();
        config.previous_threads_timeout_ms = 100;
        let asked = Instant::now();
        expect(initialize_with(&config), PYB_E_TIMEOUT);
        let refused_after = elapsed_ms(asked);
        assert!(
            (100..100 + SLACK_MS).contains(&refused_after),
            "{refused_after} ms"
        );
        assert!(
            last_error().contains("previous engine's thread"),
            "{}",
            last_error()
        );
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        assert_eq!(stats().engines_started, 1);
        // Let go: the thread exits, and the next start joins it.
        LAST_WORDS.lock().unwrap().1 = true;
        LAST_WORDS_CHANGED.notify_all();
        ok(initialize_with(&default_config()));
        assert_eq!(eval_i64("6 * 7"), 42);
        assert_eq!(stats().engines_started, 2);
        ok(shutdown(10_000, 0));
        assert_eq!(stats().interpreters_finalized, 2);
    });
}
