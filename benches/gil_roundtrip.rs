//! Builds `benches/c/gil_bench.c` against the release `libpybridge.so` and runs
//! it: the C program measures pybridge's GIL round trip and nested acquire
//! against raw CPython in the same run and prints the ratios. It reports; it
//! does not fail on the figures (shared machines move them from run to run).
//!
//! `cargo bench --bench gil_roundtrip` runs the full measurement; run without
//! `--bench` (for example by `cargo test --benches`) it does a short smoke run.

#[path = "../support/host_programs.rs"]
mod harness;

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
}
