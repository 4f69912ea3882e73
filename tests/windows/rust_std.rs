//! rust_std: a Rust program built for x86_64-pc-windows-gnu with plain `rustc`
//! (no Cargo, no pybridge), run under wine by scripts/test-windows.sh. It
//! proves what every pybridge DLL will need from the test prefix: that Rust's
//! standard library loads (it imports `ProcessPrng` from bcryptprimitives.dll,
//! which wine 8 lacks; the prefix has the stand-in built from
//! tests/windows/bcryptprimitives.c) and that its threads, thread-locals and
//! randomly keyed hash maps work. Prints "rust_std: all checks passed" last,
//! the convention scripts/wine-run.sh checks.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

const THREADS: u64 = 4;
const INCREMENTS: u64 = 10_000;

fn fail(message: String) -> ! {
    eprintln!("rust_std: FAILED: {message}");
    exit(1);
}

fn main() {
    let mut checks = 0;

    // A hash map's keys come from ProcessPrng (through std's RandomState).
    let mut map = HashMap::new();
    for i in 0..1_000u64 {
        map.insert(i, i * i);
    }
    if map.len() != 1_000 || map[&999] != 998_001 {
        fail(format!("the hash map holds {} entries", map.len()));
    }
    checks += 1;
    // Two RandomStates hash alike only if their keys are alike.
    let (first, second) = (RandomState::new(), RandomState::new());
    if first.hash_one(42u64) == second.hash_one(42u64) {
        fail("two RandomStates gave the same hash".to_string());
    }
    checks += 1;

    // Win32 threads through std, each with its own thread-local, joined.
    thread_local! {
        static COUNTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let total = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let total = Arc::clone(&total);
            thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    COUNTED.with(|counted| counted.set(counted.get() + 1));
                    total.fetch_add(1, Ordering::Relaxed);
                }
                COUNTED.with(|counted| counted.get())
            })
        })
        .collect();
    for (index, worker) in workers.into_iter().enumerate() {
        match worker.join() {
            Ok(INCREMENTS) => checks += 1,
            Ok(other) => fail(format!(
                "thread {index} counted {other}, expected {INCREMENTS}"
            )),
            Err(_) => fail(format!("thread {index} panicked")),
        }
    }
    let total = total.load(Ordering::Relaxed);
    if total != THREADS * INCREMENTS {
        fail(format!(
            "the threads counted {total}, expected {}",
            THREADS * INCREMENTS
        ));
    }
    checks += 1;
    println!("rust_std: {checks} checks");
    println!("rust_std: all checks passed");
}
