//! `pyb_engine_shutdown(…, PYB_SHUTDOWN_INTERRUPT)` with host threads busy in
//! Python: an attempt that times out before interrupting anything leaves no
//! exception behind and no lock held; once it has interrupted a thread it
//! cannot be called off, and its deadline gives `PYB_E_SHUTDOWN_COMMITTED`.

mod common;
use common::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pybridge::call::pyb_run;
use pybridge::engine::*;
use pybridge::gil::*;
use pybridge::status::*;
use pybridge::value::*;

const LIMIT: Duration = Duration::from_secs(120);
/// How far past its deadline a shutdown may return: the caller's wake-up at
/// its deadline, on a machine whose both cores are busy with other work (a
/// 300 ms deadline returned after 390 ms during a CI run beside a fuzz soak;
/// a shutdown that waited for the blocker would not return at all).
const SLACK_MS: u128 = 250;

/// What the busy host threads run: each touches a lock an interrupt used to
/// leave held (the import system, error formatting, `Thread.start`).
const WORKLOADS: [(&str, pyb_status); 3] = [
    (
        "import sys\nsys.modules.pop('colorsys', None)\nimport colorsys\n",
        PYB_OK,
    ),
    ("def f():\n    raise KeyError('boom')\nf()\n", PYB_E_PYTHON),
    (
        "import threading\nt = threading.Thread(target=lambda: None)\nt.start()\nt.join()\n",
        PYB_OK,
    ),
];

/// A host thread running one workload in a loop, retrying while the engine is
/// stopped. Returns what went wrong (an unexpected status, or an interrupt that
/// surfaced when `interrupts_allowed` is false).
struct Worker {
    done: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

fn start_worker(index: usize, stop: &Arc<AtomicBool>, interrupts_allowed: bool) -> Worker {
    let done = Arc::new(AtomicU64::new(0));
    let (code, expected) = WORKLOADS[index % WORKLOADS.len()];
    let (stop, counter) = (stop.clone(), done.clone());
    let thread = spawn(&format!("busy-{index}"), move || {
        let code = c(code);
        let mut problems = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let status = unsafe { pyb_run(code.as_ptr(), c("<busy>").as_ptr(), 0) };
            let message = if status == PYB_OK {
                String::new()
            } else {
                last_error()
            };
            if message.contains("ShutdownInterrupt") {
                if !interrupts_allowed {
                    problems.push(format!("an interrupt surfaced: {message}"));
                }
            } else if status == expected {
                counter.fetch_add(1, Ordering::Relaxed);
            } else if status == PYB_E_SHUTTING_DOWN || status == PYB_E_NOT_INITIALIZED {
                std::thread::sleep(Duration::from_millis(1));
            } else {
                problems.push(format!("{}: {message}", name(status)));
            }
        }
        problems
    });
    Worker { done, thread }
}

/// Every worker completes another run of its workload within `limit`.
fn assert_all_progress(workers: &[Worker], limit: Duration) {
    let before: Vec<u64> = workers
        .iter()
        .map(|w| w.done.load(Ordering::Relaxed))
        .collect();
    let start = Instant::now();
    while workers
        .iter()
        .zip(&before)
        .any(|(w, before)| w.done.load(Ordering::Relaxed) == *before)
    {
        assert!(
            start.elapsed() < limit,
            "a busy thread made no progress for {limit:?} (deadlocked): done {:?} -> {:?}",
            before,
            workers
                .iter()
                .map(|w| w.done.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stop_workers(stop: &AtomicBool, workers: Vec<Worker>) {
    stop.store(true, Ordering::Relaxed);
    let problems: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.thread.join().unwrap())
        .collect();
    assert!(
        problems.is_empty(),
        "{} problem(s): {problems:#?}",
        problems.len()
    );
}

/// Waits for a shutdown that returned `PYB_E_SHUTDOWN_COMMITTED` to end.
fn finish_committed_shutdown() {
    let status = shutdown(10_000, 0);
    assert!(
        status == PYB_OK || status == PYB_E_NOT_INITIALIZED,
        "joining a committed shutdown gave {}: {}",
        name(status),
        last_error()
    );
    assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
}

/// The hang randomized testing found, reduced: a thread inside an allow-threads region means no
/// attempt can finish, so each interrupting attempt must time out having
/// changed nothing: no interrupt surfaces later, and imports, error formatting
/// and `Thread.start` keep working.
#[test]
fn interrupting_shutdowns_that_time_out_leave_busy_threads_untouched() {
    within(LIMIT, "timed-out interrupting shutdowns", || {
        initialize();
        let stop = Arc::new(AtomicBool::new(false));
        let (region_open_tx, region_open_rx) = std::sync::mpsc::channel();
        let (end_region_tx, end_region_rx) = std::sync::mpsc::channel::<()>();
        let native_worker = spawn("native-work", move || {
            let token = acquire();
            let region = begin_allow();
            region_open_tx.send(()).unwrap();
            end_region_rx.recv().unwrap();
            ok(pyb_end_allow_threads(region));
            ok(pyb_gil_release(token));
        });
        region_open_rx.recv().unwrap();
        let workers: Vec<Worker> = (0..3).map(|i| start_worker(i, &stop, false)).collect();
        assert_all_progress(&workers, Duration::from_secs(10));
        const ATTEMPTS: usize = 400;
        for attempt in 0..ATTEMPTS {
            let start = Instant::now();
            let status = shutdown(2, PYB_SHUTDOWN_INTERRUPT);
            let took = elapsed_ms(start);
            assert_eq!(
                name(status),
                "PYB_E_TIMEOUT",
                "attempt {attempt}: {}",
                last_error()
            );
            assert!(took <= 2 + SLACK_MS, "attempt {attempt} took {took} ms");
            assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
        }
        assert_eq!(stats().shutdown_timeouts, ATTEMPTS as u64);
        assert_all_progress(&workers, Duration::from_secs(10));
        stop_workers(&stop, workers);
        end_region_tx.send(()).unwrap();
        native_worker.join().unwrap();
        ok(shutdown(10_000, PYB_SHUTDOWN_INTERRUPT));
        assert_eq!(stats().interpreters_finalized, 1);
    });
}

/// Without a region open, interrupting shutdowns with short deadlines stop
/// the engine (at once, or after `PYB_E_SHUTDOWN_COMMITTED`), or time out
/// having interrupted nothing; every restarted engine imports and formats
/// errors as before.
#[test]
fn interrupting_shutdowns_with_short_deadlines_stop_cleanly_or_change_nothing() {
    within(LIMIT, "interrupting shutdown cycles", || {
        initialize();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<Worker> = (0..3).map(|i| start_worker(i, &stop, true)).collect();
        const CYCLES: u32 = 30;
        let (mut stopped, mut committed, mut timed_out) = (0, 0, 0);
        for cycle in 0..CYCLES {
            assert_all_progress(&workers, Duration::from_secs(10));
            let timeout = 1 + cycle % 10;
            let start = Instant::now();
            let status = shutdown(timeout, PYB_SHUTDOWN_INTERRUPT);
            let took = elapsed_ms(start);
            assert!(
                took <= timeout as u128 + SLACK_MS,
                "cycle {cycle}: {took} ms"
            );
            match status {
                PYB_OK => stopped += 1,
                PYB_E_SHUTDOWN_COMMITTED => {
                    committed += 1;
                    finish_committed_shutdown();
                }
                PYB_E_TIMEOUT => {
                    timed_out += 1;
                    assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
                    assert!(
                        last_error().contains("changed nothing")
                            || last_error().contains("runs on unchanged"),
                        "{}",
                        last_error()
                    );
                    ok(shutdown(10_000, PYB_SHUTDOWN_INTERRUPT));
                }
                other => panic!("cycle {cycle}: {}: {}", name(other), last_error()),
            }
            assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
            initialize();
        }
        eprintln!("{stopped} stopped, {committed} committed, {timed_out} timed out");
        assert_eq!(stopped + committed + timed_out, CYCLES);
        assert_all_progress(&workers, Duration::from_secs(10));
        stop_workers(&stop, workers);
        assert_eq!(stats().interpreters_finalized, CYCLES as u64);
        ok(shutdown(10_000, 0));
    });
}

/// A thread that swallows the interrupt keeps a committed shutdown waiting:
/// the caller gets `PYB_E_SHUTDOWN_COMMITTED` naming it, the engine takes no
/// new work, and the shutdown ends when the thread leaves.
#[test]
fn a_shutdown_that_interrupted_a_thread_cannot_be_called_off() {
    within(LIMIT, "committed shutdown", || {
        initialize();
        count_shutdown_joins();
        // The stubborn thread tells when it is inside its first loop and when
        // the interrupt reached it; its second loop runs until released.
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (interrupted_tx, interrupted_rx) = std::sync::mpsc::channel();
        let released = Arc::new(AtomicBool::new(false));
        register("host", "inside", 0, move |_, _| {
            inside_tx.send(()).unwrap();
            PYB_OK
        });
        register("host", "interrupted", 0, move |_, _| {
            interrupted_tx.send(()).unwrap();
            PYB_OK
        });
        let leave = released.clone();
        register("host", "released", 0, move |_, result| {
            *result = pyb_value::from_bool(leave.load(Ordering::SeqCst));
            PYB_OK
        });
        let stubborn = spawn("stubborn", move || {
            let token = acquire();
            // The shutdown interrupts each thread once: the second loop runs on.
            let code = c(concat!(
                "import host, time\n",
                "try:\n",
                "    host.inside()\n",
                "    while True:\n",
                "        time.sleep(0.001)\n",
                "except BaseException as interrupt:\n",
                "    assert type(interrupt).__name__ == 'ShutdownInterrupt', repr(interrupt)\n",
                "host.interrupted()\n",
                "while not host.released():\n",
                "    time.sleep(0.001)\n",
            ));
            let status = unsafe { pyb_run(code.as_ptr(), c("<stubborn>").as_ptr(), 0) };
            ok(pyb_gil_release(token));
            status
        });
        inside_rx.recv().unwrap();
        // The deadline leaves the engine thread ample time to interrupt (it
        // must, for the attempt to be committed) on a busy machine.
        const DEADLINE_MS: u32 = 1000;
        let start = Instant::now();
        let status = spawn("stopper", || {
            (shutdown(DEADLINE_MS, PYB_SHUTDOWN_INTERRUPT), last_error())
        })
        .join()
        .unwrap();
        assert!(
            elapsed_ms(start) <= u128::from(DEADLINE_MS) + SLACK_MS,
            "{} ms",
            elapsed_ms(start)
        );
        expect(status.0, PYB_E_SHUTDOWN_COMMITTED);
        assert!(
            status.1.contains("stubborn"),
            "names the thread: {}",
            status.1
        );
        assert!(status.1.contains("cannot be called off"), "{}", status.1);
        interrupted_rx.recv().unwrap();
        assert_eq!(pyb_engine_state(), PYB_STATE_SHUTTING_DOWN);
        let mut token = 0;
        expect(
            spawn("late", move || unsafe { pyb_gil_acquire(&mut token) })
                .join()
                .unwrap(),
            PYB_E_SHUTTING_DOWN,
        );
        // A second shutdown asked while the stubborn thread runs on joins the
        // committed one and sees it finish once the thread leaves.
        let joiner = spawn("joiner", || shutdown(10_000, 0));
        wait_until(LIMIT / 2, "the second shutdown joining", || {
            shutdown_joins() == 1
        });
        assert!(
            !joiner.is_finished(),
            "the shutdown ended before the thread left"
        );
        released.store(true, Ordering::SeqCst);
        ok(stubborn.join().unwrap());
        ok(joiner.join().unwrap());
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        assert_eq!(stats().shutdown_timeouts, 0);
    });
}

/// Once `Py_FinalizeEx` runs, the deadline gives `PYB_E_SHUTDOWN_COMMITTED`,
/// not `PYB_E_TIMEOUT` (whose promise is that nothing changed).
#[test]
fn a_deadline_during_finalization_reports_the_shutdown_committed() {
    within(LIMIT, "slow finalization", || {
        initialize();
        count_shutdown_joins();
        // An atexit handler that says it began, then waits until released:
        // Py_FinalizeEx runs it, so finalization lasts until then.
        let [began_read, began_write] = pipe();
        let [release_read, release_write] = pipe();
        run(&format!(
            "import atexit, os\n\
             def slow_exit():\n    os.write({began_write}, b'x')\n    os.read({release_read}, 1)\n\
             atexit.register(slow_exit)\n"
        ));
        // Ample time for the engine thread to begin finalizing on a busy machine.
        const DEADLINE_MS: u32 = 1000;
        let start = Instant::now();
        let status = shutdown(DEADLINE_MS, 0);
        assert!(
            elapsed_ms(start) <= u128::from(DEADLINE_MS) + SLACK_MS,
            "{} ms",
            elapsed_ms(start)
        );
        expect(status, PYB_E_SHUTDOWN_COMMITTED);
        assert!(
            last_error().contains("Py_FinalizeEx is running"),
            "{}",
            last_error()
        );
        assert_eq!(read_byte(began_read), b'x', "the atexit handler began");
        assert_eq!(pyb_engine_state(), PYB_STATE_SHUTTING_DOWN);
        let finisher = spawn("finisher", || shutdown(10_000, 0));
        wait_until(LIMIT / 2, "the second shutdown joining", || {
            shutdown_joins() == 1
        });
        write_byte(release_write);
        ok(finisher.join().unwrap());
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
        assert_eq!(stats().interpreters_finalized, 1);
        for fd in [began_read, began_write, release_read, release_write] {
            // SAFETY: our own descriptors, closed once.
            unsafe { libc::close(fd) };
        }
    });
}

fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    fds
}

fn read_byte(fd: i32) -> u8 {
    let mut byte = 0u8;
    // SAFETY: one byte into a local.
    let read = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
    assert_eq!(read, 1, "read");
    byte
}

fn write_byte(fd: i32) {
    // SAFETY: one byte from a constant.
    let written = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    assert_eq!(written, 1, "write");
}

/// A thread running a module's body is interrupted only once its import is
/// over: an interrupt in the body would hand a half-made module to any other
/// thread importing it.
#[test]
fn a_thread_in_the_middle_of_an_import_is_interrupted_after_it() {
    within(LIMIT, "interrupt after an import", || {
        initialize();
        SlowImport::new("main", 400).interrupt_during_the_import(|code| {
            let status = unsafe { pyb_run(code.as_ptr(), c("<importer>").as_ptr(), 0) };
            (status, last_error())
        });
    });
}
