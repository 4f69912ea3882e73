//! Builds the C host programs in `tests/c/` with strict warnings against the
//! committed header, runs them under a deadline and checks what they report.
//! Also checks that the header compiles on its own as C11 and as C++17.

use pybridge_test_support::host_programs as harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::*;

/// A host program that runs longer than this has hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// Builds `source`, runs it, and returns its outcome after checking that it
/// exited with status 0 within the deadline and printed `last_line` last.
fn build_and_run(name: &str, source: &str, last_line: &str) -> Outcome {
    let dir = work_dir(name);
    let exe = build_c_program(source, &dir, "-O1").unwrap_or_else(|gcc| panic!("{gcc}"));
    let outcome = run_with_deadline(&exe, &[], DEADLINE, true);
    outcome.assert_finished(source, last_line);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Checks that each of `lines` was printed, exactly, on a line of its own.
fn assert_printed(outcome: &Outcome, lines: &[&str]) {
    for line in lines {
        outcome.assert_printed(line);
    }
}

#[test]
fn engine_host_passes_every_check() {
    let outcome = build_and_run(
        "engine_host",
        "tests/c/engine_host.c",
        "engine_host: all checks passed",
    );
    assert_printed(
        &outcome,
        &[
            "engine_host: 4 threads x 2000 scopes: counter = 8000",
            "engine_host: out-of-order release -> PYB_E_BAD_TOKEN",
            "engine_host: release on another thread -> PYB_E_WRONG_THREAD",
            "engine_host: acquire after shutdown -> PYB_E_NOT_INITIALIZED",
        ],
    );
}

#[test]
fn demo_runs_and_shuts_down_from_another_thread() {
    let outcome = build_and_run("demo", "tests/c/demo.c", "demo: done");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let position = |wanted: &str| {
        lines
            .iter()
            .position(|line| line.starts_with(wanted))
            .unwrap_or_else(|| panic!("missing line {wanted:?}\n{}", outcome.describe()))
    };
    position("host thread 1: math.factorial(20) = 2432902008176640000");
    position("host thread 2: statistics.median([3, 1, 4, 1, 5]) = 3");
    position("host thread 3: hashlib.sha256(b'pybridge').hexdigest()[:16] = 76f4f752f8e5b90d");
    position("python thread: tick 2");
    position("python thread: tick 3");
    // The Python thread ran while the host was in its allow-threads region.
    assert!(
        position("python thread: tick 1") < position("host: C work done without the GIL"),
        "the Python thread did not run during the host's C work\n{}",
        outcome.describe()
    );
    position("shutdown from another thread: PYB_OK in ");
}

/// Uses every declaration of the header so a wrong prototype or a missing
/// include inside it fails to compile. Compiled, never run.
const HEADER_ALONE: &str = r#"#include "pybridge.h"
#include "pybridge.h" /* twice: the include guard must hold */

int header_check(void);

static void on_log(int32_t level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    (void)user_data;
}

int header_check(void) {
    struct pyb_config config;
    pyb_stats stats;
    pyb_gil gil = 0;
    pyb_thread_token region = 0;
    pyb_log_callback callback = on_log;
    char buf[64];
    int failures = 0;
    failures += pyb_config_default(&config) != PYB_OK;
    config.flags = PYB_CONFIG_ISOLATED;
    config.previous_threads_timeout_ms = PYB_TIMEOUT_INFINITE;
    failures += pyb_engine_initialize(&config) != PYB_OK;
    failures += pyb_engine_state() != PYB_STATE_RUNNING;
    failures += pyb_gil_acquire(&gil) != PYB_OK;
    failures += pyb_begin_allow_threads(&region) != PYB_OK;
    failures += pyb_end_allow_threads(region) != PYB_OK;
    failures += pyb_gil_release(gil) != PYB_OK;
    failures += pyb_gil_held();
    stats.struct_size = sizeof stats;
    failures += pyb_stats_get(&stats) != PYB_OK;
    failures += pyb_set_log_callback(callback, NULL, PYB_LOG_TRACE) != PYB_OK;
    failures += pyb_last_error_message(buf, sizeof buf) > 0;
    failures += pyb_python_info(NULL, 0) == 0;
    failures += pyb_engine_shutdown(PYB_TIMEOUT_INFINITE, PYB_SHUTDOWN_INTERRUPT) != PYB_OK;
    failures += pyb_version()[0] == '\0';
    failures += pyb_status_name(PYB_E_BAD_HANDLE)[0] == '\0';
    return failures;
}
"#;

fn compile_header_alone(compiler: &str, std: &str, file_name: &str) {
    let dir = work_dir(&format!("header-{compiler}"));
    let source = dir.join(file_name);
    std::fs::write(&source, HEADER_ALONE).unwrap();
    let mut command = Command::new(compiler);
    command
        .arg(std)
        .args(STRICT)
        .arg(format!("-I{}", header_dir().display()))
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(dir.join("header_alone.o"));
    if let Err(output) = run_compiler(command) {
        panic!("bindings/c/pybridge.h does not compile on its own as {std}:\n{output}");
    }
    assert!(Path::new(&dir.join("header_alone.o")).is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn header_compiles_alone_as_c11() {
    compile_header_alone("gcc", "-std=c11", "header_alone.c");
}

#[test]
fn header_compiles_alone_as_cpp17() {
    compile_header_alone("g++", "-std=c++17", "header_alone.cpp");
}

#[test]
fn objects_host_runs_the_object_api_scenarios_from_c() {
    let outcome = build_and_run(
        "objects_host",
        "tests/c/objects_host.c",
        "objects_host: all checks passed",
    );
    assert_printed(
        &outcome,
        &[
            "objects_host: 20 runs x 50 messages: every callback arrived",
            "objects_host: 1/0 -> PYB_E_PYTHON",
            "objects_host: made-up handle -> PYB_E_BAD_HANDLE",
            "objects_host: released handle -> PYB_E_BAD_HANDLE",
        ],
    );
}

#[test]
fn a_host_that_dlopens_pybridge_locally_can_import_extension_modules() {
    // Built without linking pybridge or libpython: the program loads pybridge
    // with dlopen(RTLD_LOCAL), as CoreCLR does.
    let dir = work_dir("dlopen_host");
    let exe = dir.join("dlopen_host");
    let mut gcc = Command::new("gcc");
    gcc.arg("-std=c11")
        .args(STRICT)
        .arg(format!("-I{}", header_dir().display()))
        .arg(repo_root().join("tests/c/dlopen_host.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-ldl");
    run_compiler(gcc).unwrap_or_else(|gcc| panic!("{gcc}"));
    let library = pybridge_lib_dir().join("libpybridge.so");
    let outcome = run_with_deadline(&exe, &[library.to_str().unwrap()], DEADLINE, true);
    outcome.assert_finished(
        "dlopen_host",
        "dlopen_host: extension modules import with RTLD_LOCAL",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `tests/c/sigpipe_host.c` with `mode` ("ignore", "default" or "promise").
fn sigpipe_host(mode: &str) -> Outcome {
    let dir = work_dir(&format!("sigpipe_host-{mode}"));
    let exe = build_c_program("tests/c/sigpipe_host.c", &dir, "-O1")
        .unwrap_or_else(|gcc| panic!("{gcc}"));
    let outcome = run_with_deadline(&exe, &[mode], DEADLINE, true);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

#[test]
fn a_write_to_a_closed_pipe_kills_the_host_unless_sigpipe_is_ignored() {
    use std::os::unix::process::ExitStatusExt;
    let ignored = sigpipe_host("ignore");
    ignored.assert_finished(
        "sigpipe_host ignore",
        "sigpipe_host: EPIPE, and BrokenPipeError in Python",
    );
    let default = sigpipe_host("default");
    assert_eq!(
        default.status.signal(),
        Some(libc::SIGPIPE),
        "without PYB_CONFIG_IGNORE_SIGPIPE the write kills the host: {}",
        default.describe()
    );
    default.assert_printed("sigpipe_host: writing to a closed pipe");
}

#[test]
fn completing_a_promise_while_its_loop_loses_its_wake_up_socket_does_not_kill_the_host() {
    sigpipe_host("promise").assert_finished(
        "sigpipe_host promise",
        "sigpipe_host: the promise's completion survived EPIPE and reached its awaiter",
    );
}

#[test]
fn pep788_host_enters_with_guards_views_and_gilstate_and_survives_a_shutdown() {
    if !python_at_least(3, 15) {
        println!(
            "skipped: {} is older than CPython 3.15, which brought PEP 788 \
             (PyInterpreterGuard, PyThreadState_Ensure)",
            env!("PYB_BUILD_PYTHON_EXECUTABLE")
        );
        return;
    }
    let outcome = build_and_run(
        "pep788_host",
        "tests/c/pep788_host.c",
        "pep788_host: all checks passed",
    );
    assert_printed(
        &outcome,
        &[
            "pep788_host: 4 own threads x 500 x 3 ways in, 4 pybridge threads x 500 x 4 nested: counter = 14000",
            "pep788_host: shutdown(300 ms, flags 0) with a guard open -> PYB_E_TIMEOUT",
            "pep788_host: shutdown(300 ms, flags 1) with a guard open -> PYB_E_TIMEOUT",
            "pep788_host: shutdown while 4 threads Ensure -> PYB_OK",
            "pep788_host: Ensure during and after the shutdown: got in, then refused (NULL), none hung",
            "pep788_host: restart, then Ensure from a fresh thread -> counter = 42",
        ],
    );
    println!("{}", outcome.stdout);
}

#[test]
fn gil_stats_name_the_longest_holder_after_it_exited() {
    let outcome = build_and_run(
        "gil_stats_host",
        "tests/c/gil_stats_host.c",
        "gil_stats_host: all checks passed",
    );
    assert_printed(
        &outcome,
        &[
            "gil_stats_host: alive: longest hold by 'holder' (tid matches, id matches)",
            "gil_stats_host: after pthread_join: longest hold by 'holder' (tid matches, id matches)",
            "gil_stats_host: after a shorter hold by another thread: longest hold by 'holder' (tid matches, id matches)",
        ],
    );
}

#[test]
fn buffer_from_host_refuses_every_format_that_is_not_one_item_with_its_reason() {
    let outcome = build_and_run(
        "buffer_formats_host",
        "tests/c/buffer_formats_host.c",
        "buffer_formats_host: all checks passed",
    );
    assert_printed(
        &outcome,
        &[
            "buffer_formats_host: 20 formats refused with their messages",
            "buffer_formats_host: 11 one-item formats shared and indexed",
        ],
    );
}

/// A program that leaves a process behind holding its output pipes (a fork()
/// child, a gdb it ran) once hung a whole fuzz sweep past every deadline: the
/// run waited for the pipes to close. Now a run ends when its program does,
/// and what the program left is killed with it.
#[test]
fn a_run_ends_with_its_program_and_kills_what_it_left_behind() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 600 & echo $!; echo started"]);
        let _ = done.send(run_command_with_deadline(
            command,
            Duration::from_secs(30),
            true,
        ));
    });
    let outcome = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the run waited for the process its program left behind");
    assert!(outcome.status.success(), "{}", outcome.stderr);
    assert!(!outcome.timed_out);
    outcome.assert_printed("started");
    let left: u32 = outcome
        .stdout
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed: gone, or a zombie until init reaps it.
    let stat = Path::new("/proc").join(left.to_string()).join("stat");
    let gone_by = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(&stat) {
            Err(_) => break,
            Ok(text)
                if text
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z') =>
            {
                break;
            }
            Ok(_) if std::time::Instant::now() > gone_by => {
                panic!("the process the program left behind (pid {left}) still runs")
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
