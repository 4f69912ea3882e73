//! Builds and runs the C and C++ host programs, for the tests (`tests/c_programs.rs`,
//! `tests/cpp_programs.rs`, `tests/fuzz.rs`, ...) and the benchmark
//! (`benches/gil_roundtrip.rs`).
//!
//! C programs are compiled as strict C11 against the committed header and the
//! Python pybridge was built with; C++ programs as strict C++17 against
//! `bindings/cpp/pybridge.hpp`, which needs no CPython header. Both are linked to
//! the `libpybridge.so` that Cargo built next to the running test or bench
//! binary, and run under a deadline.
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The warnings every C and C++ host program is built with.
pub const STRICT: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic"];

/// The repository: this crate is its `support/`.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("support/ is inside the repository")
}

pub fn header_dir() -> PathBuf {
    repo_root().join("bindings/c")
}

pub fn cpp_header_dir() -> PathBuf {
    repo_root().join("bindings/cpp")
}

/// Compiler and linker flags for embedding the build's Python, the equivalent of
/// `python3.X-config --includes` and `--ldflags --embed`, read from its sysconfig
/// (which also works for a venv's interpreter, where no `-config` script sits beside it).
pub struct PythonFlags {
    pub cflags: Vec<String>,
    pub ldflags: Vec<String>,
    pub libdir: PathBuf,
}

/// True when the Python this build embeds is at least `major.minor`.
pub fn python_at_least(major: u32, minor: u32) -> bool {
    let executable = env!("PYB_BUILD_PYTHON_EXECUTABLE");
    let output = Command::new(executable)
        .args([
            "-c",
            &format!("import sys; print(int(sys.version_info[:2] >= ({major}, {minor})))"),
        ])
        .output()
        .unwrap_or_else(|err| panic!("could not run {executable}: {err}"));
    String::from_utf8_lossy(&output.stdout).trim() == "1"
}

pub fn python_flags() -> PythonFlags {
    let executable = env!("PYB_BUILD_PYTHON_EXECUTABLE");
    let script = "import sys, sysconfig as s\n\
                  p = s.get_paths(); v = s.get_config_var\n\
                  print(p['include']); print(p['platinclude'])\n\
                  print(v('LIBDIR') or ''); print(v('LDVERSION') or '')\n\
                  print(v('LIBS') or ''); print(v('SYSLIBS') or '')";
    let output = Command::new(executable)
        .args(["-c", script])
        .output()
        .unwrap_or_else(|err| panic!("could not run the build's Python {executable}: {err}"));
    assert!(
        output.status.success(),
        "{executable} failed to report its sysconfig: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("non-UTF-8 sysconfig output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "unexpected sysconfig output: {text}");
    let libdir = PathBuf::from(lines[2]);
    let mut cflags = vec![format!("-I{}", lines[0])];
    if lines[1] != lines[0] {
        cflags.push(format!("-I{}", lines[1]));
    }
    let mut ldflags = vec![
        format!("-L{}", libdir.display()),
        format!("-lpython{}", lines[3]),
    ];
    ldflags.extend(lines[4].split_whitespace().map(str::to_string));
    ldflags.extend(lines[5].split_whitespace().map(str::to_string));
    PythonFlags {
        cflags,
        ldflags,
        libdir,
    }
}

/// The directory holding the `libpybridge.so` built with the running binary.
///
/// `current_exe()` is `target/<profile>/deps/<name>-<hash>`. Cargo writes the
/// cdylib into that same `deps/` directory when it builds test or bench targets,
/// and copies it up to `target/<profile>/` only for `cargo build`; so `deps/`
/// (always as fresh as this binary) comes first and `target/<profile>/` is the fallback.
pub fn pybridge_lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe
        .parent()
        .expect("the binary has a directory")
        .to_path_buf();
    let profile = deps.parent().expect("deps/ has a parent").to_path_buf();
    for dir in [&deps, &profile] {
        if dir.join("libpybridge.so").is_file() {
            return dir.clone();
        }
    }
    panic!(
        "libpybridge.so is in neither {} nor {}: is `cdylib` still in [lib] crate-type?",
        deps.display(),
        profile.display()
    );
}

/// Cargo's tmp directory for tests and benches (`CARGO_TARGET_TMPDIR`,
/// `target/tmp`), found from the running binary the way `pybridge_lib_dir`
/// finds the library: Cargo gives that variable to test and bench targets
/// only, not to a library such as this one.
pub fn target_tmp_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the binary is in target/<profile>/deps/");
    target.join("tmp")
}

/// A fresh directory for one test's build products under Cargo's target tmp dir.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = target_tmp_dir()
        .join("c_programs")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
    dir
}

/// Runs a compiler; on failure returns its command line and full output.
pub fn run_compiler(mut command: Command) -> Result<(), String> {
    let line = format!("{command:?}");
    let output = command
        .output()
        .map_err(|err| format!("could not start {line}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{line}\nfailed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Compiles and links one C host program (`source`, relative to the repository
/// root) into `dir`, against the header, libpybridge and the build's libpython,
/// with rpaths to both libraries. Returns the executable, or gcc's output.
pub fn build_c_program(source: &str, dir: &Path, optimize: &str) -> Result<PathBuf, String> {
    build_c_program_against(source, dir, optimize, &pybridge_lib_dir())
}

/// `build_c_program` against the libpybridge.so in `lib_dir` (an unpacked
/// release package's `lib/`, say).
pub fn build_c_program_against(
    source: &str,
    dir: &Path,
    optimize: &str,
    lib_dir: &Path,
) -> Result<PathBuf, String> {
    let python = python_flags();
    let source = repo_root().join(source);
    let exe = dir.join(source.file_stem().expect("a file name"));
    let mut gcc = Command::new("gcc");
    gcc.arg("-std=c11")
        .args(STRICT)
        .args([optimize, "-g", "-pthread"])
        .arg(format!("-I{}", header_dir().display()))
        .args(&python.cflags)
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lpybridge")
        .args(&python.ldflags)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", python.libdir.display()));
    run_compiler(gcc)?;
    Ok(exe)
}

/// Compiles and links one C++ host program (`source`, relative to the
/// repository root) into `dir` as strict C++17 with `extra` flags (sanitizers,
/// say), against `bindings/cpp/pybridge.hpp` and libpybridge only: the C++
/// wrapper needs no CPython header or library. The rpath to the build's
/// libpython is the one libpybridge carries; it is repeated here so the
/// linker finds libpython when it checks libpybridge's dependencies.
pub fn build_cpp_program(
    source: &str,
    dir: &Path,
    optimize: &str,
    extra: &[&str],
    exe_name: &str,
) -> Result<PathBuf, String> {
    let python = python_flags();
    let lib_dir = pybridge_lib_dir();
    let source = repo_root().join(source);
    let exe = dir.join(exe_name);
    let mut gxx = Command::new("g++");
    gxx.arg("-std=c++17")
        .args(STRICT)
        .args([optimize, "-g", "-pthread"])
        .args(extra)
        .arg(format!("-I{}", cpp_header_dir().display()))
        .arg(format!("-I{}", header_dir().display()))
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lpybridge")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", python.libdir.display()));
    run_compiler(gxx)?;
    Ok(exe)
}

/// What a finished (or killed) program did.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Outcome {
    /// The last non-empty line of stdout.
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("")
    }

    /// Asserts that the program finished within its deadline, exited with
    /// status 0 and printed `last_line` last; `what` names it in failures.
    pub fn assert_finished(&self, what: &str, last_line: &str) {
        assert!(
            !self.timed_out,
            "{what} did not finish in time and was killed\n{}",
            self.describe()
        );
        assert!(self.status.success(), "{what} failed\n{}", self.describe());
        assert_eq!(
            self.last_line(),
            last_line,
            "{what} did not end with the expected line\n{}",
            self.describe()
        );
    }

    /// Asserts that stdout holds `line` exactly, on a line of its own.
    pub fn assert_printed(&self, line: &str) {
        assert!(
            self.stdout.lines().any(|printed| printed == line),
            "missing line {line:?}\n{}",
            self.describe()
        );
    }

    pub fn describe(&self) -> String {
        format!(
            "exit: {}{} after {:.1} s\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status,
            if self.timed_out {
                " (KILLED at the deadline)"
            } else {
                ""
            },
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

/// Runs `exe` with `args`; kills it when it passes `deadline`. With `capture`
/// false the program writes straight to this process's stdout and stderr.
pub fn run_with_deadline(exe: &Path, args: &[&str], deadline: Duration, capture: bool) -> Outcome {
    run_with_deadline_env(exe, args, deadline, capture, &[])
}

/// Like `run_with_deadline`, with extra environment variables for the program.
pub fn run_with_deadline_env(
    exe: &Path,
    args: &[&str],
    deadline: Duration,
    capture: bool,
    env: &[(&str, String)],
) -> Outcome {
    let mut command = Command::new(exe);
    command
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value)));
    run_command_with_deadline(command, deadline, capture)
}

/// Kills what is left of the process group `leader` made. The leader has been
/// waited for: while a member lives, Linux does not hand its id out again;
/// once none does, the id could be reused only after the pids wrap around,
/// not in the instant between the wait and this call.
fn kill_process_group(leader: u32) {
    // `kill -KILL -- -<pgid>`: no libc binding needed for one call.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs `command` (stdin closed) in a process group of its own; kills it when
/// it passes `deadline`. Whatever it started (a fork() child, a gdb it ran)
/// is killed with it once it has ended: such a process holds the output pipes
/// open, and waiting for their end hung a whole sweep past every deadline.
pub fn run_command_with_deadline(
    mut command: Command,
    deadline: Duration,
    capture: bool,
) -> Outcome {
    let piped = || {
        if capture {
            Stdio::piped()
        } else {
            Stdio::inherit()
        }
    };
    // The programs find their libraries by rpath. Cargo's test runners set
    // LD_LIBRARY_PATH with target/<profile>/ before deps/, and a stale
    // libpybridge.so there (left by an earlier `cargo build`) would win over
    // the rpath and be the library under test.
    let mut child: Child = command
        .env_remove("LD_LIBRARY_PATH")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(piped())
        .stderr(piped())
        .spawn()
        .unwrap_or_else(|err| panic!("could not start {command:?}: {err}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    kill_process_group(child.id());
    let elapsed = started.elapsed();
    let join = |handle: Option<JoinHandle<String>>| {
        handle
            .map(|handle| handle.join().unwrap_or_default())
            .unwrap_or_default()
    };
    Outcome {
        status,
        stdout: join(out),
        stderr: join(err),
        elapsed,
        timed_out,
    }
}

/// Runs the seeded fuzzer `source` (a C program taking `<seed> <interrupt>`,
/// ending with "<name>: ok") over `seeds` seeds from 1 (`PYB_FUZZ_SEEDS` and
/// `PYB_FUZZ_FIRST_SEED` override: the other CPythons' runs each sweep a
/// window of their own, scripts/lib.sh `pyb_fuzz_window`), `parallel`
/// processes at a time, each under `seed_deadline`,
/// and fails naming every failing seed with the command that replays it.
/// The programs inherit this process's environment (`PYB_FUZZ_SKIP`, say).
pub fn fuzz_sweep(
    source: &str,
    interrupt: u32,
    seeds: u64,
    seed_deadline: Duration,
    parallel: usize,
) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    let from_env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(default)
    };
    let seeds = from_env("PYB_FUZZ_SEEDS", seeds);
    let first = from_env("PYB_FUZZ_FIRST_SEED", 1);
    let last = first + seeds - 1;
    let name = Path::new(source)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .expect("a file name");
    let skip = std::env::var("PYB_FUZZ_SKIP")
        .map(|skip| format!("PYB_FUZZ_SKIP={skip} "))
        .unwrap_or_default();
    let dir = work_dir(&format!("{name}-{interrupt}"));
    let exe = build_c_program(source, &dir, "-O1").unwrap_or_else(|gcc| panic!("{gcc}"));
    let next = AtomicU64::new(first);
    let passed = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed > last {
                        break;
                    }
                    let (seed_text, interrupt_text) = (seed.to_string(), interrupt.to_string());
                    let outcome = run_with_deadline(
                        &exe,
                        &[&seed_text, &interrupt_text],
                        seed_deadline,
                        true,
                    );
                    if outcome.status.success() && outcome.stdout.contains(&format!("{name}: ok")) {
                        passed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.lock().unwrap().push(format!(
                            "seed {seed} (replay: {skip}{name} {seed} {interrupt}): {}",
                            outcome.describe()
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "{name} sweep, interrupt {interrupt}, seeds {first}..={last}: {} passed, {} failed",
        passed.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed.load(Ordering::Relaxed), seeds);
    let _ = std::fs::remove_dir_all(&dir);
}
