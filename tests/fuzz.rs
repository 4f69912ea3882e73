//! A short sweep of the seeded fuzzer `tests/c/fuzz_host.c`: many host threads
//! doing random things while a controller shuts the engine down and starts it
//! again, with and without `PYB_SHUTDOWN_INTERRUPT`. Each seed runs in its own
//! process under a deadline; a failure names the seed so that
//! `fuzz_host <seed> <interrupt>` replays it. `scripts/fuzz-soak.sh` runs the
//! same program over thousands of seeds.

#[path = "../support/host_programs.rs"]
mod harness;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use harness::*;

/// Seeds per interrupt setting (override with PYB_FUZZ_SEEDS).
const SEEDS: u64 = 100;
/// One seed normally takes about a second; past this it has hung.
const SEED_DEADLINE: Duration = Duration::from_secs(60);
/// Seeds run this many at a time.
const PARALLEL: usize = 2;

fn sweep(interrupt: u32) {
    let seeds: u64 = std::env::var("PYB_FUZZ_SEEDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(SEEDS);
    let dir = work_dir(&format!("fuzz-{interrupt}"));
    let exe =
        build_c_program("tests/c/fuzz_host.c", &dir, "-O1").unwrap_or_else(|gcc| panic!("{gcc}"));
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let passed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed) as u64 + 1;
                    if seed > seeds {
                        break;
                    }
                    let (seed_text, interrupt_text) = (seed.to_string(), interrupt.to_string());
                    let outcome = run_with_deadline(
                        &exe,
                        &[&seed_text, &interrupt_text],
                        SEED_DEADLINE,
                        true,
                    );
                    if outcome.status.success() && outcome.stdout.contains("fuzz_host: ok") {
                        passed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.lock().unwrap().push(format!(
                            "seed {seed} (replay: fuzz_host {seed} {interrupt}): {}",
                            outcome.describe()
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "fuzz sweep, interrupt {interrupt}: {} passed, {} failed",
        passed.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed.load(Ordering::Relaxed) as u64, seeds);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fuzz_sweep_without_interrupts() {
    sweep(0);
}

#[test]
fn fuzz_sweep_with_interrupts() {
    sweep(1);
}
