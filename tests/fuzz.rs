//! A short sweep of the seeded fuzzer `tests/c/fuzz_host.c`: many host threads
//! doing random things while a controller shuts the engine down and starts it
//! again, with and without `PYB_SHUTDOWN_INTERRUPT`. Each seed runs in its own
//! process under a deadline; a failure names the seed so that
//! `fuzz_host <seed> <interrupt>` replays it. `scripts/fuzz-soak.sh` runs the
//! same program over thousands of seeds.

use pybridge_test_support::host_programs as harness;

use std::time::Duration;

/// Seeds per interrupt setting (override with PYB_FUZZ_SEEDS).
const SEEDS: u64 = 100;
/// One seed normally takes about a second; past this it has hung.
const SEED_DEADLINE: Duration = Duration::from_secs(60);
/// Seeds run this many at a time.
const PARALLEL: usize = 2;

#[test]
fn fuzz_sweep_without_interrupts() {
    harness::fuzz_sweep("tests/c/fuzz_host.c", 0, SEEDS, SEED_DEADLINE, PARALLEL);
}

#[test]
fn fuzz_sweep_with_interrupts() {
    harness::fuzz_sweep("tests/c/fuzz_host.c", 1, SEEDS, SEED_DEADLINE, PARALLEL);
}
