//! The release package, used the way a user uses it: each test unpacks
//! `dist/pybridge-<version>-linux-x86_64.tar.gz` (written by
//! `scripts/package.sh`, which this runs first if the tarball is missing) into
//! its own temporary folder and uses only that: hosts are built with
//! `pkg-config --cflags --libs pybridge` or CMake's `find_package(pybridge)`,
//! and run with no `LD_LIBRARY_PATH`, no `CARGO_TARGET_DIR` and nothing from
//! `target/`.
//!
//! The C scenario (`tests/c/package_host.c`) runs against each CPython of the
//! image (pyenv's 3.10 to 3.13, Debian's `/usr/bin/python3`, and a venv with a
//! package pip-installed into it), naming the Python both ways: by
//! `pyb_config.python` (with `PYBRIDGE_PYTHON` set to another Python, which
//! the config must win over) and by `PYBRIDGE_PYTHON` alone.
//!
//! The tests named `sid_*` use Debian sid's CPython 3.14 and 3.15, which
//! exist only inside the sid chroot (`scripts/sid-chroot.sh`): they are
//! ignored elsewhere and run there by `scripts/test-package-sid.sh`, which
//! builds the package on the host first (its cp314 and cp315 cores are built
//! inside the chroot by `scripts/package.sh`).

use pybridge_test_support::host_programs as harness;
use pybridge_test_support::stand_in_python;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::*;
use stand_in_python::{fake_installation, fake_libpython, stand_in};

/// One scenario run (two engines, 4 host threads) takes a few seconds.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// Building the package builds four cores and the loader.
const PACKAGE_DEADLINE: Duration = Duration::from_secs(3600);

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn package_name() -> String {
    format!("pybridge-{}-linux-x86_64", version())
}

/// The tarball; built by scripts/package.sh when missing.
fn tarball() -> PathBuf {
    let tarball = repo_root()
        .join("dist")
        .join(format!("{}.tar.gz", package_name()));
    if !tarball.is_file() && std::env::var_os("PYB_IN_SID_CHROOT").is_some() {
        panic!(
            "{} is missing: inside the sid chroot the package cannot be built (scripts/package.sh \
             runs on the host and enters the chroot itself); run scripts/test-package-sid.sh on \
             the host",
            tarball.display()
        );
    }
    {
        // One build for all the tests that ask at once (nextest runs them in
        // parallel). Always through the lock: scripts/package.sh writes the
        // tarball in place, so a test that saw the file without the lock could
        // unpack it half written ("gzip: unexpected end of file").
        let dist = repo_root().join("dist");
        std::fs::create_dir_all(&dist).unwrap();
        let mut command = Command::new("flock");
        command
            .arg(dist.join(".package.lock"))
            .args(["sh", "-c", "[ -f \"$1\" ] || bash \"$2\"", "sh"])
            .arg(&tarball)
            .arg(repo_root().join("scripts/package.sh"));
        let outcome = run_command_with_deadline(command, PACKAGE_DEADLINE, true);
        assert!(
            outcome.status.success() && !outcome.timed_out,
            "scripts/package.sh failed\n{}",
            outcome.describe()
        );
    }
    assert!(tarball.is_file(), "{} is missing", tarball.display());
    tarball
}

/// A fresh temporary folder outside the build tree.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("pybridge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Unpacks the package into `dir`; returns its folder.
fn unpack(dir: &Path) -> PathBuf {
    let mut tar = Command::new("tar");
    tar.arg("-xzf").arg(tarball()).arg("-C").arg(dir);
    run_compiler(tar).unwrap_or_else(|error| panic!("{error}"));
    let root = dir.join(package_name());
    assert!(
        root.is_dir(),
        "the tarball did not unpack to {}",
        root.display()
    );
    root
}

/// A command that sees nothing of the build: no LD_LIBRARY_PATH (cargo sets
/// one into target/), no CARGO_TARGET_DIR, no PYBRIDGE_PYTHON of its own.
fn clean_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("PYBRIDGE_PYTHON");
    command
}

fn pkg_config(package: &Path, flag: &str) -> Vec<String> {
    let output = Command::new("pkg-config")
        .args([flag, "pybridge"])
        .env("PKG_CONFIG_PATH", package.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config runs");
    assert!(
        output.status.success(),
        "pkg-config {flag} pybridge failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Builds tests/c/package_host.c with the package's pkg-config flags.
fn build_host(package: &Path, dir: &Path) -> PathBuf {
    build_c_host(package, dir, "tests/c/package_host.c")
}

/// Builds the C host `source` (relative to the repository) with the
/// package's pkg-config flags into `dir`.
fn build_c_host(package: &Path, dir: &Path, source: &str) -> PathBuf {
    let source = repo_root().join(source);
    let exe = dir.join(source.file_stem().unwrap());
    let mut gcc = Command::new("gcc");
    gcc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-pthread"])
        .args(pkg_config(package, "--cflags"))
        .arg(format!("-I{}", repo_root().join("tests/c").display()))
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .args(pkg_config(package, "--libs"))
        // Where the unpacked package is; a user would install it or set this.
        .arg(format!("-Wl,-rpath,{}", package.join("lib").display()));
    run_compiler(gcc).unwrap_or_else(|error| panic!("{error}"));
    exe
}

/// The image's pyenv CPython `version`, if installed.
fn pyenv_python(version: &str) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".pyenv"));
    let python = root.join("versions").join(version).join("bin/python3");
    assert!(python.is_file(), "{} is not installed", python.display());
    python
}

fn run_host(exe: &Path, args: &[&str], env: &[(&str, &Path)]) -> Outcome {
    let mut command = clean_command(exe);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    run_command_with_deadline(command, RUN_DEADLINE, true)
}

/// Runs the scenario with the Python named both ways (by the config, with
/// PYBRIDGE_PYTHON naming a pyenv Python that must lose).
fn run_scenario(python: &Path, version: &str, venv: Option<(&Path, &str)>) {
    let other = if version.starts_with("3.13") {
        pyenv_python("3.10.13")
    } else {
        pyenv_python("3.13.0")
    };
    run_scenario_against(python, version, venv, &other);
}

/// The scenario, with `other` in PYBRIDGE_PYTHON while the config names `python`.
fn run_scenario_against(python: &Path, version: &str, venv: Option<(&Path, &str)>, other: &Path) {
    let dir = TempDir::new(&format!("run-{version}"));
    let package = unpack(&dir.0);
    let exe = build_host(&package, &dir.0);
    let python_text = python.display().to_string();
    let mut args = vec!["run", "config", python_text.as_str(), version];
    let venv_text = venv.map(|(path, _)| path.display().to_string());
    if let (Some(path), Some((_, module))) = (&venv_text, venv) {
        args.extend([path.as_str(), module]);
    }
    // By the config, with PYBRIDGE_PYTHON naming a Python that must lose.
    let by_config = run_host(&exe, &args, &[("PYBRIDGE_PYTHON", other)]);
    let done = format!("package_host: CPython {version} via config: 4 host threads x 200 rounds,");
    assert!(
        by_config.status.success() && by_config.last_line().starts_with(&done),
        "by pyb_config.python\n{}",
        by_config.describe()
    );
    // By the environment variable.
    args[1] = "env";
    let by_env = run_host(&exe, &args, &[("PYBRIDGE_PYTHON", python)]);
    let done = format!("package_host: CPython {version} via env: 4 host threads x 200 rounds,");
    assert!(
        by_env.status.success() && by_env.last_line().starts_with(&done),
        "by PYBRIDGE_PYTHON\n{}",
        by_env.describe()
    );
}

#[test]
fn runs_on_cpython_3_10() {
    run_scenario(&pyenv_python("3.10.13"), "3.10.13", None);
}

#[test]
fn runs_on_cpython_3_11() {
    run_scenario(&pyenv_python("3.11.7"), "3.11.7", None);
}

#[test]
fn runs_on_cpython_3_12() {
    run_scenario(&pyenv_python("3.12.1"), "3.12.1", None);
}

#[test]
fn runs_on_cpython_3_13() {
    run_scenario(&pyenv_python("3.13.0"), "3.13.0", None);
}

#[test]
fn runs_on_debians_own_python3() {
    let python = Path::new("/usr/bin/python3");
    let version = Command::new(python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("/usr/bin/python3 runs");
    let version = String::from_utf8(version.stdout).unwrap();
    run_scenario(python, version.trim(), None);
}

#[test]
fn runs_when_named_by_its_libpython() {
    // Debian's multiarch library (its executable is in /usr/bin) and pyenv's.
    let debian = Path::new("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0");
    let version = Command::new("/usr/bin/python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("/usr/bin/python3 runs");
    run_scenario(
        debian,
        String::from_utf8(version.stdout).unwrap().trim(),
        None,
    );
    let pyenv = pyenv_python("3.10.13");
    let library = pyenv.parent().unwrap().join("../lib/libpython3.10.so.1.0");
    run_scenario(&library, "3.10.13", None);
}

/// A log callback and the GIL-statistics switch set before the first
/// initialize, while the loader has no core and keeps them, reach the core it
/// then loads (loader/src/pending_settings.rs).
#[test]
fn settings_made_before_the_core_loads_reach_it() {
    let dir = TempDir::new("settings-before-load");
    let package = unpack(&dir.0);
    let exe = build_c_host(
        &package,
        &dir.0,
        "tests/package_hosts/settings_before_load.c",
    );
    let python = pyenv_python("3.11.7").display().to_string();
    let outcome = run_host(&exe, &[python.as_str()], &[]);
    outcome.assert_finished("settings_before_load", "settings_before_load: done");
    for line in [
        "settings_before_load: log level 9 before load -> PYB_E_INVALID_ARGUMENT",
        "settings_before_load: running records: 1",
        "settings_before_load: gil stats enabled: yes, acquisitions: counted",
    ] {
        assert!(
            outcome.stdout.lines().any(|printed| printed == line),
            "missing {line:?}\n{}",
            outcome.describe()
        );
    }
}

/// Writes a minimal wheel of `module` (a pure-Python package with a MARKER).
fn write_wheel(python: &Path, dir: &Path, module: &str) -> PathBuf {
    let wheel = dir.join(format!("{module}-1.0-py3-none-any.whl"));
    let script = format!(
        "import zipfile\n\
         z = zipfile.ZipFile({wheel:?}, 'w')\n\
         z.writestr('{module}/__init__.py', 'MARKER = \"installed into the venv\"\\n')\n\
         info = '{module}-1.0.dist-info/'\n\
         z.writestr(info + 'METADATA', 'Metadata-Version: 2.1\\nName: {module}\\nVersion: 1.0\\n')\n\
         z.writestr(info + 'WHEEL', 'Wheel-Version: 1.0\\nGenerator: pybridge-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
         z.writestr(info + 'RECORD', '{module}/__init__.py,,\\n' + info + 'METADATA,,\\n' + info + 'WHEEL,,\\n' + info + 'RECORD,,\\n')\n\
         z.close()\n",
        wheel = wheel.display().to_string()
    );
    let status = Command::new(python).args(["-c", &script]).status().unwrap();
    assert!(status.success(), "could not write {}", wheel.display());
    wheel
}

#[test]
fn runs_in_a_venv_and_imports_what_pip_installed_there() {
    run_venv_scenario(&pyenv_python("3.12.1"), "3.12.1", None);
}

/// The scenario in a venv of `base` with a wheel pip-installed into it.
fn run_venv_scenario(base: &Path, version: &str, other: Option<&Path>) {
    let dir = TempDir::new("venv");
    let venv = dir.0.join("venv");
    let status = Command::new(base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(status.success(), "python -m venv failed");
    let module = "pybridge_probe_pkg";
    let wheel = write_wheel(base, &dir.0, module);
    let venv_python = venv.join("bin/python");
    let pip = Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
        ])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "pip install failed: {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    match other {
        Some(other) => run_scenario_against(&venv_python, version, Some((&venv, module)), other),
        None => run_scenario(&venv_python, version, Some((&venv, module))),
    }
}

/// Expects initialize to fail with `status` and a message holding `texts`,
/// with the Python named both ways.
fn expect_refused(package: &Path, exe: &Path, python: &Path, status: &str, texts: &[&str]) {
    let python_text = python.display().to_string();
    for (mode, env) in [("config", None), ("env", Some(("PYBRIDGE_PYTHON", python)))] {
        let mut args = vec!["error", mode, python_text.as_str(), status];
        args.extend(texts);
        let outcome = run_host(exe, &args, env.as_slice());
        assert!(
            outcome.status.success() && !outcome.timed_out,
            "{} by {mode} (package {})\n{}",
            python.display(),
            package.display(),
            outcome.describe()
        );
    }
}

#[test]
fn unusable_pythons_are_refused_with_a_status_and_what_to_do() {
    let dir = TempDir::new("refused");
    let package = unpack(&dir.0);
    let exe = build_host(&package, &dir.0);
    let refuse = |python: &Path, texts: &[&str]| {
        expect_refused(&package, &exe, python, "PYB_E_PYTHON_UNUSABLE", texts)
    };

    // A path that does not exist.
    refuse(
        Path::new("/nonexistent/bin/python3"),
        &[
            "/nonexistent/bin/python3",
            "does not exist",
            "name an existing Python",
        ],
    );

    // A static-only build: no shared libpython anywhere.
    let static_only = stand_in(
        &dir.0,
        "python3-static",
        &[
            ("implementation", "cpython"),
            ("version", "3.12.1"),
            ("prefix", "/opt/static"),
            ("base_prefix", "/opt/static"),
            ("executable", "/opt/static/bin/python3"),
            ("shared", "0"),
            ("libdir", "/opt/static/lib"),
            ("soname", "None"),
            ("ldlibrary", "libpython3.12.a"),
        ],
    );
    refuse(
        &static_only,
        &["python3-static", "static-only", "--enable-shared"],
    );

    // A CPython newer than the newest core (a stand-in with a libpython).
    let newer = fake_installation(
        &dir.0.join("newer"),
        "python3.16",
        "3.16.0",
        "libpython3.16.so.1.0",
        &[("gil_disabled", "0"), ("py_debug", "0"), ("abiflags", "")],
    );
    refuse(
        &newer,
        &[
            "python3.16 is CPython 3.16.0, which this pybridge has no core for, newer than the \
             newest CPython this pybridge was built for (3.15)",
            "this pybridge supports CPython 3.10, 3.11, 3.12, 3.13, 3.14, 3.15, GIL-enabled \
             release builds only",
        ],
    );

    // A version this package has no core for: the 3.10 core removed.
    std::fs::remove_file(package.join("lib/libpybridge-core-cp310.so")).unwrap();
    refuse(
        &pyenv_python("3.10.13"),
        &[
            "3.10.13, which this pybridge has no core for (chosen by",
            "supports CPython 3.11, 3.12, 3.13, 3.14, 3.15, GIL-enabled release builds only",
        ],
    );

    // A free-threaded build, named by its executable and by its library.
    let free_threaded = stand_in(
        &dir.0,
        "python3.13t",
        &[
            ("implementation", "cpython"),
            ("version", "3.13.0"),
            ("prefix", "/opt/ft"),
            ("base_prefix", "/opt/ft"),
            ("executable", "/opt/ft/bin/python3.13t"),
            ("shared", "1"),
            ("gil_disabled", "1"),
            ("libdir", "/opt/ft/lib"),
            ("soname", "libpython3.13t.so.1.0"),
        ],
    );
    let supports = "this pybridge supports CPython 3.11, 3.12, 3.13, 3.14, 3.15, GIL-enabled release builds only";
    refuse(
        &free_threaded,
        &[
            "python3.13t is a free-threaded build of CPython 3.13.0 (its sysconfig says \
             Py_GIL_DISABLED=1)",
            supports,
            "with the GIL",
        ],
    );
    let library = fake_libpython(&dir.0, "libpython3.13t.so.1.0");
    refuse(
        &library,
        &[
            "libpython3.13t.so.1.0 is a free-threaded build of CPython 3.13 (its library is \
             named libpython3.13t.so.1.0)",
            supports,
        ],
    );

    // A debug build, named by its executable and by its library.
    let debug = fake_installation(
        &dir.0.join("debug"),
        "python3.14d",
        "3.14.10",
        "libpython3.14d.so.1.0",
        &[("gil_disabled", "0"), ("py_debug", "1"), ("abiflags", "d")],
    );
    refuse(
        &debug,
        &[
            "python3.14d is a debug build of CPython 3.14.10 (its sysconfig says Py_DEBUG=1)",
            supports,
        ],
    );
    let library = fake_libpython(&dir.0, "libpython3.15d.so.1.0");
    refuse(
        &library,
        &[
            "libpython3.15d.so.1.0 is a debug build of CPython 3.15",
            supports,
        ],
    );

    // Files that are not Python: a program that answers nothing, a text file,
    // and a text file named like a libpython.
    refuse(
        Path::new("/bin/true"),
        &["/bin/true", "is not a Python", "did not answer"],
    );
    let text = dir.0.join("notes.txt");
    std::fs::write(&text, "not a program\n").unwrap();
    refuse(&text, &["notes.txt", "is not a Python", "cannot be run"]);
    let fake = dir.0.join("libpython3.11.so.1.0");
    std::fs::write(&fake, "not a library\n").unwrap();
    refuse(&fake, &["libpython3.11.so.1.0", "not a shared library"]);
}

/// Names of the `pyb_*` functions `bindings/c/pybridge.h` declares.
fn header_functions() -> Vec<String> {
    let header = std::fs::read_to_string(repo_root().join("bindings/c/pybridge.h")).unwrap();
    let mut names: Vec<String> = header
        .lines()
        .filter(|line| !line.trim_start().starts_with("//") && !line.starts_with("typedef"))
        .filter_map(|line| {
            let open = line.find('(')?;
            let name = line[..open].rsplit([' ', '*']).next()?;
            name.starts_with("pyb_").then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_package_is_complete_relocatable_and_exports_the_header() {
    let dir = TempDir::new("layout");
    let package = unpack(&dir.0);
    for file in [
        "include/pybridge.h",
        "include/pybridge.hpp",
        "lib/libpybridge.so",
        "lib/libpybridge-core-cp310.so",
        "lib/libpybridge-core-cp311.so",
        "lib/libpybridge-core-cp312.so",
        "lib/libpybridge-core-cp313.so",
        "lib/libpybridge-core-cp314.so",
        "lib/libpybridge-core-cp315.so",
        "lib/pkgconfig/pybridge.pc",
        "lib/cmake/pybridge/pybridgeConfig.cmake",
        "lib/cmake/pybridge/pybridgeConfigVersion.cmake",
        "csharp/PyBridge.nuspec",
        "csharp/lib/netstandard2.0/PyBridge.dll",
        "csharp/runtimes/linux-x64/native/libpybridge.so",
        "csharp/runtimes/linux-x64/native/libpybridge-core-cp311.so",
        "csharp/runtimes/linux-x64/native/libpybridge-core-cp315.so",
    ] {
        assert!(package.join(file).is_file(), "the package has no {file}");
    }
    assert_eq!(
        std::fs::read(package.join("include/pybridge.h")).unwrap(),
        std::fs::read(repo_root().join("bindings/c/pybridge.h")).unwrap(),
        "the packaged header is not the committed one"
    );
    // Nothing points into the build machine, and nothing is left to strip.
    for entry in std::fs::read_dir(package.join("lib")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "so") {
            continue;
        }
        let dynamic = Command::new("readelf")
            .arg("-d")
            .arg(&path)
            .output()
            .unwrap();
        let dynamic = String::from_utf8_lossy(&dynamic.stdout);
        assert!(
            !dynamic.contains("RPATH") && !dynamic.contains("RUNPATH"),
            "{} has a search path:\n{dynamic}",
            path.display()
        );
        let sections = Command::new("readelf")
            .arg("-S")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&sections.stdout).contains(".debug_info"),
            "{} is not stripped",
            path.display()
        );
    }
    // The loader does not link libpython: the host's program never does.
    let loader = Command::new("readelf")
        .arg("-d")
        .arg(package.join("lib/libpybridge.so"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&loader.stdout).contains("libpython"));
    let libs = pkg_config(&package, "--libs");
    assert!(
        libs.iter().all(|flag| !flag.contains("python")),
        "pkg-config links Python: {libs:?}"
    );
    // It exports exactly the header's functions.
    let symbols = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(package.join("lib/libpybridge.so"))
        .output()
        .unwrap();
    let mut exported: Vec<String> = String::from_utf8_lossy(&symbols.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| name.starts_with("pyb_"))
        .map(str::to_string)
        .collect();
    exported.sort();
    assert_eq!(exported, header_functions());
    // Moved elsewhere, it still works: pkg-config paths follow the .pc file.
    let moved = dir.0.join("moved");
    std::fs::rename(&package, &moved).unwrap();
    let cflags = pkg_config(&moved, "--cflags");
    assert_eq!(
        cflags,
        vec![format!("-I{}/lib/pkgconfig/../../include", moved.display())]
    );
}

#[test]
fn a_cmake_project_finds_the_package() {
    let dir = TempDir::new("cmake");
    let package = unpack(&dir.0);
    let source = repo_root().join("tests/cmake_consumer");
    let build = dir.0.join("build");
    let mut configure = clean_command(Path::new("cmake"));
    configure
        .arg("-S")
        .arg(&source)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", package.display()));
    run_compiler(configure).unwrap_or_else(|error| panic!("{error}"));
    let mut make = clean_command(Path::new("cmake"));
    make.arg("--build").arg(&build);
    run_compiler(make).unwrap_or_else(|error| panic!("{error}"));
    let outcome = run_host(
        &build.join("consumer"),
        &[&pyenv_python("3.12.1").display().to_string()],
        &[],
    );
    outcome.assert_finished("the CMake consumer", "consumer: 3.12.1 says 42");
}

/// Debian sid's `/usr/bin/python<minor>` and its full version: only inside
/// the sid chroot.
fn sid_python(minor: &str) -> (PathBuf, String) {
    let python = PathBuf::from(format!("/usr/bin/python{minor}"));
    assert!(
        python.is_file(),
        "{} exists only inside the sid chroot: run scripts/test-package-sid.sh on the host",
        python.display()
    );
    let version = Command::new(&python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("sid's Python runs");
    (
        python,
        String::from_utf8(version.stdout)
            .unwrap()
            .trim()
            .to_string(),
    )
}

/// The scenario on sid's CPython `minor`, named by its executable, with the
/// other sid CPython in PYBRIDGE_PYTHON.
fn run_sid_scenario(minor: &str, other: &str) {
    let (python, version) = sid_python(minor);
    run_scenario_against(&python, &version, None, &sid_python(other).0);
}

#[test]
#[ignore = "needs the sid chroot's CPython 3.14: scripts/test-package-sid.sh"]
fn sid_runs_on_cpython_3_14() {
    run_sid_scenario("3.14", "3.15");
}

#[test]
#[ignore = "needs the sid chroot's CPython 3.15: scripts/test-package-sid.sh"]
fn sid_runs_on_cpython_3_15() {
    run_sid_scenario("3.15", "3.14");
}

#[test]
#[ignore = "needs the sid chroot's CPython 3.14 and 3.15: scripts/test-package-sid.sh"]
fn sid_runs_when_named_by_its_libpython() {
    for (minor, other) in [("3.14", "3.15"), ("3.15", "3.14")] {
        let (_, version) = sid_python(minor);
        let (other, _) = sid_python(other);
        let library = PathBuf::from(format!("/usr/lib/x86_64-linux-gnu/libpython{minor}.so.1.0"));
        run_scenario_against(&library, &version, None, &other);
    }
}

#[test]
#[ignore = "needs the sid chroot's CPython 3.14 and 3.15: scripts/test-package-sid.sh"]
fn sid_runs_in_a_venv_and_imports_what_pip_installed_there() {
    for (minor, other) in [("3.14", "3.15"), ("3.15", "3.14")] {
        let (python, version) = sid_python(minor);
        let (other, _) = sid_python(other);
        run_venv_scenario(&python, &version, Some(&other));
    }
}

#[test]
#[ignore = "needs the sid chroot's CPython 3.14 and 3.15: scripts/test-package-sid.sh"]
fn sid_python_info_names_the_cp314_and_cp315_cores() {
    for (minor, tag) in [("3.14", "cp314"), ("3.15", "cp315")] {
        let (python, version) = sid_python(minor);
        let dir = TempDir::new(&format!("info-{tag}"));
        let package = unpack(&dir.0);
        let exe = build_c_host(&package, &dir.0, "tests/package_hosts/python_info.c");
        let outcome = run_host(&exe, &[python.to_str().unwrap()], &[]);
        outcome.assert_finished("python_info", "python_info: done");
        let core = std::fs::canonicalize(package.join("lib"))
            .unwrap()
            .join(format!("libpybridge-core-{tag}.so"));
        for line in [
            "loader_chose: (nothing yet: pyb_engine_initialize chooses)".to_string(),
            "cores: 3.10, 3.11, 3.12, 3.13, 3.14, 3.15".to_string(),
            format!(
                "loader_chose: {} (chosen by pyb_config.python; CPython {version}, core {})",
                python.display(),
                core.display()
            ),
            format!("version: {version}"),
            format!("build_version: {version}"),
        ] {
            outcome.assert_printed(&line);
        }
    }
}

#[test]
#[ignore = "needs the sid chroot's CPython 3.15: scripts/test-package-sid.sh"]
fn sid_a_python_newer_than_the_newest_core_is_refused() {
    let dir = TempDir::new("sid-newer");
    let package = unpack(&dir.0);
    let exe = build_host(&package, &dir.0);
    // A package whose newest core is 3.14, given sid's real CPython 3.15.
    std::fs::remove_file(package.join("lib/libpybridge-core-cp315.so")).unwrap();
    let (python, version) = sid_python("3.15");
    expect_refused(
        &package,
        &exe,
        &python,
        "PYB_E_PYTHON_UNUSABLE",
        &[
            &format!(
                "{} is CPython {version}, which this pybridge has no core for, newer than the \
                 newest CPython this pybridge was built for (3.14)",
                python.display()
            ),
            "this pybridge supports CPython 3.10, 3.11, 3.12, 3.13, 3.14, GIL-enabled release \
             builds only",
        ],
    );
}
