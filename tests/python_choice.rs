//! Choosing the Python through the library itself (the core, linked to the
//! build's libpython): `pyb_config.python`, `PYBRIDGE_PYTHON`, a venv's
//! executable, a host built before the field existed, and the Pythons this
//! library cannot run. The packaged loader, which picks the core per version,
//! is tested from the package in `tests/package.rs`.

mod common;
use common::*;
use pybridge_test_support::stand_in_python;
use stand_in_python::{fake_installation, fake_libpython};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pybridge::config::*;
use pybridge::engine::*;
use pybridge::info::pyb_python_info;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(120);

/// The Python this library was built against (what scripts/env.sh picks).
fn build_python() -> PathBuf {
    let output = Command::new(env!("PYB_BUILD_PYTHON_EXECUTABLE"))
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn python_info() -> String {
    let len = unsafe { pyb_python_info(std::ptr::null_mut(), 0) };
    let mut buf = vec![0u8; len + 1];
    unsafe { pyb_python_info(buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(len);
    String::from_utf8(buf).unwrap()
}

fn initialize_naming(python: &Path) -> pyb_status {
    let python = c(python.to_str().unwrap());
    let mut config = unsafe { std::mem::zeroed() };
    ok(unsafe { pyb_config_default(&mut config) });
    config.python = python.as_ptr();
    unsafe { pyb_engine_initialize(&config) }
}

#[test]
fn the_build_python_named_by_the_config_runs_and_python_info_says_so() {
    within(LIMIT, "named by config", || {
        let python = build_python();
        ok(initialize_naming(&python));
        run("import sys\nfrom_exe = sys.executable");
        let info = python_info();
        let chosen = info
            .lines()
            .find(|line| line.starts_with("chosen: "))
            .unwrap();
        assert!(
            chosen.contains(&format!(
                "{} (chosen by pyb_config.python; CPython",
                python.display()
            )),
            "{info}"
        );
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn the_environment_variable_names_the_python_when_the_config_does_not() {
    within(LIMIT, "named by PYBRIDGE_PYTHON", || {
        let python = build_python();
        // SAFETY: this test's process has no other thread reading the environment yet.
        unsafe { std::env::set_var("PYBRIDGE_PYTHON", &python) };
        initialize();
        let info = python_info();
        assert!(
            info.contains("(chosen by PYBRIDGE_PYTHON; CPython"),
            "{info}"
        );
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn a_host_built_before_the_python_field_gets_the_default() {
    within(LIMIT, "old struct", || {
        let mut config = unsafe { std::mem::zeroed::<pyb_config>() };
        ok(unsafe { pyb_config_default(&mut config) });
        // What an older host passes: its struct ends before `python`, and the
        // bytes after it are not the host's (garbage here).
        config.struct_size = std::mem::offset_of!(pyb_config, python);
        config.python = std::ptr::dangling();
        ok(unsafe { pyb_engine_initialize(&config) });
        assert!(python_info().contains("(default: the Python pybridge was built with)"));
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn a_venv_executable_makes_sys_prefix_the_venv() {
    within(LIMIT, "venv", || {
        let dir = std::env::temp_dir().join(format!("pybridge-core-venv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new(build_python())
            .args(["-m", "venv", "--without-pip"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
        ok(initialize_naming(&dir.join("bin/python")));
        run("import sys, os\nin_venv = os.path.realpath(sys.prefix)\nbase = sys.base_prefix");
        let want = std::fs::canonicalize(&dir).unwrap();
        with_gil(|| {
            assert_eq!(
                eval_i64_held(&format!("in_venv == {:?}", want.to_str().unwrap())),
                1
            );
            assert_eq!(eval_i64_held("sys.prefix != sys.base_prefix"), 1);
        });
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn pythons_this_library_cannot_run_are_refused_and_nothing_starts() {
    within(LIMIT, "refused", || {
        let refused = |python: &Path, texts: &[&str]| {
            expect(initialize_naming(python), PYB_E_PYTHON_UNUSABLE);
            let message = last_error();
            for text in texts {
                assert!(message.contains(text), "no {text:?} in: {message}");
            }
            assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        };
        refused(
            Path::new("/nonexistent/python3"),
            &["/nonexistent/python3", "does not exist"],
        );
        refused(Path::new("/bin/true"), &["/bin/true", "is not a Python"]);
        // Another libpython than the one this library is linked to: a pyenv
        // one on the host, a Debian one in the sid chroot (3.14 and 3.15).
        let root = std::env::var("PYENV_ROOT")
            .unwrap_or_else(|_| format!("{}/.pyenv", std::env::var("HOME").unwrap()));
        let build_minor = env!("PYB_BUILD_PYTHON_VERSION")
            .split('.')
            .nth(1)
            .unwrap()
            .to_string();
        let other = ["3.10.13", "3.12.1", "3.13.0", "3.11.7"]
            .iter()
            .filter(|version| version.split('.').nth(1) != Some(build_minor.as_str()))
            .map(|version| PathBuf::from(format!("{root}/versions/{version}/bin/python3")))
            .chain(
                (10..=15)
                    .filter(|minor| minor.to_string() != build_minor)
                    .map(|minor| PathBuf::from(format!("/usr/bin/python3.{minor}"))),
            )
            .find(|python| python.is_file())
            .expect("another CPython (pyenv's, or /usr/bin/python3.X)");
        refused(&other, &["one process can load one libpython"]);
        // The engine still starts with its own Python afterwards.
        initialize();
        assert_eq!(eval_i64("6 * 7"), 42);
        ok(shutdown(10_000, 0));
    });
}

/// Free-threaded and debug CPythons cannot be installed here: stand-ins
/// answer the probe as their builds would (sysconfig's `Py_GIL_DISABLED` and
/// `Py_DEBUG`, `sys.abiflags`), each with a libpython file present, and each
/// is refused by what it is, saying what this library runs.
#[test]
fn free_threaded_and_debug_builds_are_refused_naming_what_this_library_runs() {
    within(LIMIT, "build kinds", || {
        let dir = std::env::temp_dir().join(format!("pybridge-core-builds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let supports = format!(
            "this pybridge supports CPython {} (the libpython it is linked to), GIL-enabled \
             release builds only",
            env!("PYB_BUILD_PYTHON_VERSION")
        );
        let refused = |python: &Path, texts: &[&str]| {
            expect(initialize_naming(python), PYB_E_PYTHON_UNUSABLE);
            let message = last_error();
            for text in [python.to_str().unwrap(), supports.as_str()]
                .iter()
                .chain(texts)
            {
                assert!(message.contains(text), "no {text:?} in: {message}");
            }
            assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        };
        let free_threaded = fake_installation(
            &dir.join("ft"),
            "python3.14t",
            "3.14.10",
            "libpython3.14t.so.1.0",
            &[("gil_disabled", "1"), ("py_debug", "0"), ("abiflags", "t")],
        );
        refused(
            &free_threaded,
            &[
                "is a free-threaded build of CPython 3.14.10",
                "its sysconfig says Py_GIL_DISABLED=1",
                "python3.X rather than python3.Xt",
            ],
        );
        let debug = fake_installation(
            &dir.join("debug"),
            "python3.15d",
            "3.15.2",
            "libpython3.15d.so.1.0",
            &[("gil_disabled", "0"), ("py_debug", "1"), ("abiflags", "d")],
        );
        refused(
            &debug,
            &[
                "is a debug build of CPython 3.15.2",
                "its sysconfig says Py_DEBUG=1",
                "python3.X rather than python3.Xd",
            ],
        );
        // A debug build that only its ABI flags give away (a sysconfig that
        // leaves Py_DEBUG out).
        let by_flags = fake_installation(
            &dir.join("flags"),
            "python3.14",
            "3.14.10",
            "libpython3.14d.so.1.0",
            &[("abiflags", "d")],
        );
        refused(
            &by_flags,
            &[
                "is a debug build of CPython 3.14.10",
                "its sys.abiflags is \"d\"",
            ],
        );
        let both = fake_installation(
            &dir.join("both"),
            "python3.14td",
            "3.14.10",
            "libpython3.14td.so.1.0",
            &[("gil_disabled", "1"), ("py_debug", "1"), ("abiflags", "td")],
        );
        refused(
            &both,
            &[
                "is a free-threaded debug build of CPython 3.14.10",
                "Py_GIL_DISABLED=1, Py_DEBUG=1",
            ],
        );
        // Named by their libraries.
        refused(
            &fake_libpython(&dir, "libpython3.14t.so.1.0"),
            &[
                "is a free-threaded build of CPython 3.14",
                "its library is named libpython3.14t.so.1.0",
            ],
        );
        refused(
            &fake_libpython(&dir, "libpython3.15d.so"),
            &[
                "is a debug build of CPython 3.15",
                "its library is named libpython3.15d.so",
            ],
        );
        // The engine still starts with its own Python afterwards.
        initialize();
        assert_eq!(eval_i64("6 * 7"), 42);
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(&dir);
    });
}
