//! A short sweep of the seeded API fuzzer `tests/c/fuzz_api.c`: host threads
//! using sub-interpreters, pools, handles across interpreters, buffers, host
//! memory, tasks and fork() while a controller shuts the engine down and
//! starts it again, with and without `PYB_SHUTDOWN_INTERRUPT`. Each seed runs
//! in its own process under a deadline; a failure names the seed and the
//! command that replays it (`fuzz_api <seed> <interrupt>`).
//! `PYB_FUZZ_SKIP=tasks,pools` (see the program) switches families off;
//! `scripts/fuzz-soak.sh --api` runs it over thousands of seeds.

use pybridge_test_support::host_programs as harness;

use std::time::Duration;

/// Seeds per interrupt setting (override with PYB_FUZZ_SEEDS).
const SEEDS: u64 = 100;
/// One seed normally takes one to two seconds; past this it has hung.
const SEED_DEADLINE: Duration = Duration::from_secs(60);
/// Seeds run this many at a time.
const PARALLEL: usize = 2;

#[test]
fn api_fuzz_sweep_without_interrupts() {
    harness::fuzz_sweep("tests/c/fuzz_api.c", 0, SEEDS, SEED_DEADLINE, PARALLEL);
}

#[test]
fn api_fuzz_sweep_with_interrupts() {
    harness::fuzz_sweep("tests/c/fuzz_api.c", 1, SEEDS, SEED_DEADLINE, PARALLEL);
}
