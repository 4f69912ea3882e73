//! Builds `benches/c/gil_bench.c` against the release `libpybridge.so` and runs
//! it: the C program measures pybridge's GIL round trip and nested acquire
//! against raw CPython in the same run and prints the ratios. It reports; it
//! does not fail on the figures (shared machines move them from run to run).
//!
//! `cargo bench --bench gil_roundtrip` runs the full measurement; run without
//! `--bench` (for example by `cargo test --benches`) it does a short smoke run.
//!
//! When the release package is built (`scripts/package.sh`), the same program
//! runs a second time, linked to the packaged `libpybridge.so`: the loader that
//! forwards every call to the core it loaded, against raw CPython in that run.

use pybridge_test_support::host_programs as harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The full run takes a few seconds; past this it has hung.
const DEADLINE: Duration = Duration::from_secs(300);

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let dir = harness::work_dir("gil_bench");
    let exe = harness::build_c_program("benches/c/gil_bench.c", &dir, "-O2")
        .unwrap_or_else(|gcc| panic!("benches/c/gil_bench.c does not build:\n{gcc}"));
    let args: &[&str] = if full { &[] } else { &["--quick"] };
    let outcome = harness::run_with_deadline(&exe, args, DEADLINE, false);
    assert!(
        !outcome.timed_out,
        "gil_bench did not finish within {DEADLINE:?} and was killed"
    );
    assert!(
        outcome.status.success(),
        "gil_bench failed: {}",
        outcome.status
    );
    let _ = std::fs::remove_dir_all(&dir);
    through_the_package(args);
}

/// Runs gil_bench linked to the release package's loader, if it is built.
fn through_the_package(args: &[&str]) {
    let name = format!("pybridge-{}-linux-x86_64", env!("CARGO_PKG_VERSION"));
    let tarball = harness::repo_root().join(format!("dist/{name}.tar.gz"));
    if !tarball.is_file() {
        println!(
            "(no {}: run scripts/package.sh to benchmark through the packaged loader)",
            tarball.display()
        );
        return;
    }
    let dir = harness::work_dir("gil_bench_package");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar runs");
    assert!(status.success(), "could not unpack {}", tarball.display());
    let lib = dir.join(&name).join("lib");
    let exe = harness::build_c_program_against("benches/c/gil_bench.c", &dir, "-O2", &lib)
        .unwrap_or_else(|gcc| {
            panic!("benches/c/gil_bench.c does not build against the package:\n{gcc}")
        });
    println!("through the packaged libpybridge.so (the loader, then its core):");
    let mut command = Command::new(&exe);
    command
        .args(args)
        // Only the package: nothing from target/ on the library path.
        .env_remove("LD_LIBRARY_PATH")
        .env("PYBRIDGE_PYTHON", env!("PYB_BUILD_PYTHON_EXECUTABLE"));
    let outcome = harness::run_command_with_deadline(command, DEADLINE, false);
    assert!(
        !outcome.timed_out,
        "gil_bench through the package did not finish within {DEADLINE:?}"
    );
    assert!(
        outcome.status.success(),
        "gil_bench through the package failed: {}",
        outcome.status
    );
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
