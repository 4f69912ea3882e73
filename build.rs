//! Links pybridge to the exact libpython it is built against and records that
//! interpreter's identity, so the engine can default to its standard library
//! and a test can check that the running Python is the build's.

use std::process::Command;

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();

    // One initial-exec thread-local pointer (see the file for why it is C).
    cc::Build::new()
        .file("src/sys/current_slot.c")
        .flag("-fPIC")
        .opt_level(2)
        .compile("pybridge_current_slot");
    println!("cargo:rerun-if-changed=src/sys/current_slot.c");
    // The one C++ frame every host function is called through (see the file).
    cc::Build::new()
        .cpp(true)
        .file("src/python/host_call.cpp")
        .flag("-fPIC")
        .flag("-std=c++17")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .opt_level(2)
        .compile("pybridge_host_call");
    println!("cargo:rerun-if-changed=src/python/host_call.cpp");

    // An rpath to the build's libpython: without it the loader may pick up another
    // copy of the same soname (Debian's /usr/lib libpython3.11, say). Not for
    // the packaged cores (PYB_NO_RPATH=1, scripts/package.sh): the packaged
    // libpybridge.so loads the chosen libpython before the core, and a shipped
    // file must not point into the build machine.
    println!("cargo:rerun-if-env-changed=PYB_NO_RPATH");
    if std::env::var("PYB_NO_RPATH").as_deref() != Ok("1") {
        pyo3_build_config::add_libpython_rpath_link_args();
    }

    let executable = config
        .executable()
        .expect("pyo3 found no Python executable; set PYO3_PYTHON")
        .to_string();
    let probe = Command::new(&executable)
        .args([
            "-c",
            "import sys, sysconfig; print(sys.version.split()[0]); print(sys.prefix); \
             print(sysconfig.get_config_var('LIBDIR') or ''); print(sysconfig.get_paths()['include'])",
        ])
        .output()
        .expect("failed to run the build's Python");
    assert!(
        probe.status.success(),
        "the build's Python failed to report itself"
    );
    let text = String::from_utf8(probe.stdout).expect("non-UTF-8 output from Python");
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default();
    let prefix = lines.next().unwrap_or_default();
    let libdir = lines.next().unwrap_or_default();
    let include = lines.next().unwrap_or_default();
    assert!(
        std::path::Path::new(include).join("Python.h").exists(),
        "{executable} has no C headers at {include} (install its -dev package, e.g. python3-dev)"
    );

    // One struct field of CPython's thread state, read against the build's own
    // headers (see the file for why).
    cc::Build::new()
        .file("src/python/thread_state_ident.c")
        .include(include)
        .flag("-fPIC")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .opt_level(2)
        .compile("pybridge_cpython_layout");
    println!("cargo:rerun-if-changed=src/python/thread_state_ident.c");

    println!("cargo:rustc-env=PYB_BUILD_PYTHON_EXECUTABLE={executable}");
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_VERSION={version}");
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_PREFIX={prefix}");
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_LIBDIR={libdir}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}
