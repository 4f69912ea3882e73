//! Links pybridge to the exact libpython it is built against and records that
//! interpreter's identity, so the engine can default to its standard library
//! and a test can check that the running Python is the build's. A cross-build
//! (Windows, from Linux) has no Python to run: it records the version only.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    let unix = std::env::var_os("CARGO_CFG_UNIX").is_some();
    let cross_compiling = std::env::var("TARGET").ok() != std::env::var("HOST").ok();

    // One initial-exec thread-local pointer (see the file for why it is C). On
    // Windows a DLL's static TLS is already one indexed load (src/sys/current_slot.rs).
    if unix {
        cc::Build::new()
            .file("src/sys/current_slot.c")
            .flag("-fPIC")
            .opt_level(2)
            .compile("pybridge_current_slot");
    }
    println!("cargo:rerun-if-changed=src/sys/current_slot.c");
    // The one C++ frame every host function is called through (see the file).
    let mut host_call = cc::Build::new();
    host_call
        .cpp(true)
        .file("src/python/host_call.cpp")
        .flag("-std=c++17")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .opt_level(2);
    if unix {
        // mingw's code is position independent already, and it warns about the flag.
        host_call.flag("-fPIC");
    } else {
        // libstdc++ linked in (after the object that needs it): a Windows
        // user has no mingw libstdc++-6.dll.
        host_call.cpp_link_stdlib(None);
    }
    host_call.compile("pybridge_host_call");
    if !unix {
        let archive = host_call
            .get_compiler()
            .to_command()
            .arg("-print-file-name=libstdc++.a")
            .output()
            .expect("the C++ compiler locates its libstdc++.a");
        let archive = PathBuf::from(String::from_utf8_lossy(&archive.stdout).trim());
        let directory = archive.parent().expect("libstdc++.a has a folder");
        println!("cargo:rustc-link-search=native={}", directory.display());
        println!("cargo:rustc-link-lib=static=stdc++");
    }
    println!("cargo:rerun-if-changed=src/python/host_call.cpp");

    // An rpath to the build's libpython: without it the loader may pick up another
    // copy of the same soname (Debian's /usr/lib libpython3.11, say). Not for
    // the packaged cores (PYB_NO_RPATH=1, scripts/package.sh): the packaged
    // libpybridge.so loads the chosen libpython before the core, and a shipped
    // file must not point into the build machine. Windows has no rpath: a DLL's
    // imports are found beside it, or already loaded (the loader loads the
    // chosen python3XY.dll first).
    println!("cargo:rerun-if-env-changed=PYB_NO_RPATH");
    if unix && std::env::var("PYB_NO_RPATH").as_deref() != Ok("1") {
        pyo3_build_config::add_libpython_rpath_link_args();
    }

    // The build's Python, the engine's default. A cross-build has none that can
    // run here (pyo3 is told the version, PYO3_CROSS_PYTHON_VERSION, and makes
    // the import library itself), so it records the version alone: its engine
    // always runs a Python the host names, or one it finds (src/capi/python_choice.rs).
    let (executable, version, prefix, libdir) = if cross_compiling {
        (
            String::new(),
            config.version().to_string(),
            String::new(),
            String::new(),
        )
    } else {
        probe_build_python(config)
    };

    println!("cargo:rustc-env=PYB_BUILD_PYTHON_EXECUTABLE={executable}");
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_VERSION={version}");
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_PREFIX={prefix}");
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_LIBDIR={libdir}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PYO3_CROSS_PYTHON_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
}

/// The build's Python: its executable, full version, `sys.prefix` and LIBDIR.
fn probe_build_python(
    config: &pyo3_build_config::InterpreterConfig,
) -> (String, String, String, String) {
    let executable = config
        .executable()
        .map(str::to_string)
        .expect("pyo3 found no Python executable; set PYO3_PYTHON");
    let probe = Command::new(&executable)
        .args([
            "-c",
            "import sys, sysconfig; print(sys.version.split()[0]); print(sys.prefix); \
             print(sysconfig.get_config_var('LIBDIR') or '')",
        ])
        .output()
        .expect("failed to run the build's Python");
    assert!(
        probe.status.success(),
        "the build's Python failed to report itself"
    );
    let text = String::from_utf8(probe.stdout).expect("non-UTF-8 output from Python");
    let mut lines = text.lines().map(str::to_string);
    let version = lines.next().unwrap_or_default();
    let prefix = lines.next().unwrap_or_default();
    let libdir = lines.next().unwrap_or_default();
    (executable, version, prefix, libdir)
}
