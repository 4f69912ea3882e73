//! GIL statistics: waits and holds per host thread and in total, the longest
//! hold and its thread, exact counts, the switch, reset, and bad arguments.

mod common;
use common::*;

use std::sync::mpsc;
use std::time::Duration;

use pybridge::gil::*;
use pybridge::interpreter::*;
use pybridge::stats::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(60);
const HOLD: Duration = Duration::from_millis(300);

fn blank() -> pyb_gil_stats {
    let mut stats: pyb_gil_stats = unsafe { std::mem::zeroed() };
    stats.struct_size = std::mem::size_of::<pyb_gil_stats>();
    stats
}

fn total() -> pyb_gil_stats {
    let mut stats = blank();
    ok(unsafe { pyb_gil_stats_total(&mut stats) });
    stats
}

fn threads() -> Vec<pyb_gil_stats> {
    let mut count = 0;
    ok(unsafe { pyb_gil_stats_threads(std::ptr::null_mut(), 0, &mut count) });
    let mut entries = vec![blank(); count + 4];
    let mut written = 0;
    ok(unsafe { pyb_gil_stats_threads(entries.as_mut_ptr(), entries.len(), &mut written) });
    entries.truncate(written);
    entries
}

fn name_of(stats: &pyb_gil_stats, longest: bool) -> String {
    let field = if longest {
        &stats.longest_hold_thread_name
    } else {
        &stats.thread_name
    };
    cstr_to_string(field.as_ptr())
}

/// Runs `body` on a named thread that then waits, alive, until told to exit.
fn parked(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> (
    mpsc::Receiver<i32>,
    mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (done_tx, done_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let handle = spawn(name, move || {
        body();
        done_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = exit_rx.recv();
    });
    (done_rx, exit_tx, handle)
}

#[test]
fn a_long_hold_shows_as_the_holders_hold_and_the_waiters_wait() {
    within(LIMIT, "hold and wait", || {
        initialize();
        ok(pyb_gil_stats_enable(true));
        ok(pyb_gil_stats_reset());
        let (holding_tx, holding_rx) = mpsc::channel();
        let (waiting_tx, waiting_rx) = mpsc::channel::<()>();
        let (holder_done, holder_exit, holder) = parked("gil-holder", move || {
            let token = acquire();
            holding_tx.send(()).unwrap();
            // The hold (the work measured) goes on from the moment the waiter
            // is about to wait, so the waiter's wait spans nearly all of it.
            waiting_rx.recv().unwrap();
            std::thread::sleep(HOLD);
            ok(pyb_gil_release(token));
        });
        holding_rx.recv().unwrap();
        let (waiter_done, waiter_exit, waiter) = parked("gil-waiter", move || {
            waiting_tx.send(()).unwrap();
            ok(pyb_gil_release(acquire()));
        });
        let holder_tid = holder_done.recv().unwrap();
        let waiter_tid = waiter_done.recv().unwrap();

        let entries = threads();
        let find = |tid: i32| {
            *entries
                .iter()
                .find(|entry| entry.os_thread_id == tid)
                .unwrap_or_else(|| panic!("no entry for tid {tid} in {entries:?}"))
        };
        let (held, waited) = (find(holder_tid), find(waiter_tid));
        assert_eq!((held.acquisitions, waited.acquisitions), (1, 1));
        assert_eq!(name_of(&held, false), "gil-holder");
        assert_eq!(name_of(&waited, false), "gil-waiter");
        let hold_ns = HOLD.as_nanos() as u64;
        assert!(
            held.hold_max_ns >= hold_ns && held.hold_max_ns < hold_ns + 5_000_000_000,
            "holder's longest hold {} ns",
            held.hold_max_ns
        );
        assert_eq!(held.hold_total_ns, held.hold_max_ns);
        // Bucket bounds are within 25% above, capped by the maximum.
        assert_eq!(held.hold_p99_ns, held.hold_max_ns);
        assert!(
            waited.wait_max_ns >= hold_ns / 2,
            "the waiter waited {} ns for a GIL held {hold_ns} ns",
            waited.wait_max_ns
        );
        assert!(held.wait_max_ns < waited.wait_max_ns);
        assert_eq!(held.longest_hold_thread_id, held.thread_id);

        let sum = total();
        assert!(sum.enabled);
        assert_eq!(sum.acquisitions, 2);
        assert_eq!(sum.hold_max_ns, held.hold_max_ns);
        assert_eq!(sum.longest_hold_thread_id, held.thread_id);
        assert_eq!(sum.longest_hold_os_thread_id, holder_tid);
        assert_eq!(name_of(&sum, true), "gil-holder");
        assert_eq!((sum.thread_id, sum.os_thread_id), (0, 0));
        // Each figure is rounded to a nanosecond on its own.
        let parts = held.wait_total_ns + waited.wait_total_ns;
        assert!(
            sum.wait_total_ns.abs_diff(parts) <= 1,
            "{sum:?} against {parts}"
        );

        for (exit, handle) in [(holder_exit, holder), (waiter_exit, waiter)] {
            exit.send(()).unwrap();
            handle.join().unwrap();
        }
        // Exited threads leave the per-thread list but stay in the total, and
        // the longest hold still names its thread.
        assert!(
            threads()
                .iter()
                .all(|entry| entry.os_thread_id != holder_tid)
        );
        let after = total();
        assert_eq!(after.acquisitions, 2);
        assert_eq!(after.hold_max_ns, held.hold_max_ns);
        assert_eq!(name_of(&after, true), "gil-holder");
    });
}

#[test]
fn every_way_of_taking_the_gil_counts_once_and_nothing_counts_while_off() {
    within(LIMIT, "exact counts", || {
        initialize();
        ok(pyb_gil_stats_enable(true));
        ok(pyb_gil_stats_reset());
        let (done, exit, handle) = parked("counted", || {
            for _ in 0..1000 {
                ok(pyb_gil_release(acquire()));
            }
            // One outermost scope, nested scopes (not waits), and ten
            // allow-threads regions, each of which takes the GIL back.
            let outer = acquire();
            for _ in 0..10 {
                ok(pyb_gil_release(acquire()));
                let region = begin_allow();
                ok(pyb_end_allow_threads(region));
            }
            ok(pyb_gil_release(outer));
        });
        let tid = done.recv().unwrap();
        let mine = |entries: Vec<pyb_gil_stats>| {
            entries
                .into_iter()
                .find(|entry| entry.os_thread_id == tid)
                .map(|entry| entry.acquisitions)
        };
        assert_eq!(mine(threads()), Some(1011));
        assert_eq!(total().acquisitions, 1011);

        ok(pyb_gil_stats_enable(false));
        assert!(!total().enabled);
        spawn("uncounted", || {
            for _ in 0..500 {
                ok(pyb_gil_release(acquire()));
            }
        })
        .join()
        .unwrap();
        assert_eq!(total().acquisitions, 1011);

        // A hold that began while on and ends while off still counts; one that
        // began while off does not.
        ok(pyb_gil_stats_enable(true));
        let token = acquire();
        ok(pyb_gil_stats_enable(false));
        ok(pyb_gil_release(token));
        let token = acquire();
        ok(pyb_gil_stats_enable(true));
        ok(pyb_gil_release(token));
        assert_eq!(total().acquisitions, 1012);

        ok(pyb_gil_stats_reset());
        assert_eq!(mine(threads()), None);
        let cleared = total();
        assert_eq!(
            (
                cleared.acquisitions,
                cleared.wait_total_ns,
                cleared.hold_max_ns
            ),
            (0, 0, 0)
        );
        assert_eq!(cleared.longest_hold_thread_id, 0);
        exit.send(()).unwrap();
        handle.join().unwrap();
    });
}

#[test]
fn switching_between_interpreters_counts_each_gil_taken() {
    within(LIMIT, "interpreter switches", || {
        initialize();
        // Shared with the main GIL: the switch gives one GIL away and takes
        // one all the same.
        let interp = shared_gil_interpreter();
        ok(pyb_gil_stats_enable(true));
        ok(pyb_gil_stats_reset());
        let (done, exit, handle) = parked("switcher", move || {
            let main = acquire();
            let mut inside = 0;
            ok(unsafe { pyb_interpreter_enter(interp, &mut inside) });
            ok(pyb_gil_release(inside));
            ok(pyb_gil_release(main));
        });
        let tid = done.recv().unwrap();
        // The main GIL, the sub-interpreter's, and the main one taken back.
        let entry = threads()
            .into_iter()
            .find(|entry| entry.os_thread_id == tid)
            .unwrap();
        assert_eq!(entry.acquisitions, 3);
        exit.send(()).unwrap();
        handle.join().unwrap();
        ok(pyb_interpreter_destroy(interp, 10_000));
    });
}

#[test]
fn bad_arguments_get_exact_statuses_and_short_structs_get_their_fields() {
    within(LIMIT, "bad arguments", || {
        expect(
            unsafe { pyb_gil_stats_total(std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        let mut count = 0;
        expect(
            unsafe { pyb_gil_stats_threads(std::ptr::null_mut(), 1, &mut count) },
            PYB_E_NULL_ARGUMENT,
        );
        let mut entry = blank();
        expect(
            unsafe { pyb_gil_stats_threads(&mut entry, 1, std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        entry.struct_size = 0;
        expect(
            unsafe { pyb_gil_stats_total(&mut entry) },
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains("pyb_gil_stats.struct_size is 0"),
            "{}",
            last_error()
        );

        // Two live threads timed ('second' exited): a capacity of one writes
        // one entry and reports two.
        initialize();
        ok(pyb_gil_stats_enable(true));
        ok(pyb_gil_stats_reset());
        ok(pyb_gil_release(acquire()));
        spawn("second", || ok(pyb_gil_release(acquire())))
            .join()
            .unwrap();
        let (done, exit, handle) = parked("third", || ok(pyb_gil_release(acquire())));
        done.recv().unwrap();
        let mut entries = [blank(), blank()];
        entries[1].acquisitions = 77;
        ok(unsafe { pyb_gil_stats_threads(entries.as_mut_ptr(), 1, &mut count) });
        assert_eq!(count, 2, "this thread and 'third' are alive");
        assert_eq!(entries[0].acquisitions, 1);
        assert_eq!(entries[1].acquisitions, 77, "past the capacity");

        // A host built against a struct that ended before `thread_name`.
        let short = std::mem::offset_of!(pyb_gil_stats, thread_name);
        let mut old = blank();
        old.struct_size = short;
        old.acquisitions = 99;
        ok(unsafe { pyb_gil_stats_total(&mut old) });
        assert_eq!(old.struct_size, short);
        assert_eq!(old.acquisitions, 99, "past the caller's struct_size");
        exit.send(()).unwrap();
        handle.join().unwrap();
    });
}

#[test]
fn the_environment_switches_statistics_on_at_engine_start() {
    within(LIMIT, "PYBRIDGE_GIL_STATS", || {
        assert!(!total().enabled, "off before any engine");
        // SAFETY: this test's process runs no other thread that reads the environment.
        unsafe { std::env::set_var("PYBRIDGE_GIL_STATS", "1") };
        initialize();
        assert!(
            total().enabled,
            "on after an engine started with PYBRIDGE_GIL_STATS=1"
        );
        ok(pyb_gil_release(acquire()));
        assert_eq!(total().acquisitions, 1);
    });
}

/// Names the calling thread through the OS only, as a C or C# host does:
/// Rust's `thread::current().name()` does not know it.
fn set_os_name(name: &str) {
    let name = std::ffi::CString::new(name).unwrap();
    assert_eq!(
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) },
        0
    );
}

#[test]
fn the_longest_hold_keeps_its_threads_id_tid_and_os_name_after_it_exits() {
    within(LIMIT, "longest hold after exit", || {
        initialize();
        ok(pyb_gil_stats_enable(true));
        ok(pyb_gil_stats_reset());
        // Unnamed for Rust, "holder" for the OS, before any pybridge call.
        let (done_tx, done_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel::<&'static str>();
        let holder = std::thread::spawn(move || {
            set_os_name("holder");
            let token = acquire();
            std::thread::sleep(Duration::from_millis(40));
            ok(pyb_gil_release(token));
            done_tx.send(unsafe { libc::gettid() }).unwrap();
            // Renamed after its last call: the record takes the name it ends with.
            if let Ok(new_name) = exit_rx.recv() {
                set_os_name(new_name);
            }
        });
        let tid = done_rx.recv().unwrap();
        let live = threads()
            .into_iter()
            .find(|entry| entry.os_thread_id == tid)
            .expect("the holder is alive");
        assert_eq!(name_of(&live, false), "holder");
        let alive = total();
        assert_eq!(
            (
                alive.longest_hold_thread_id,
                alive.longest_hold_os_thread_id,
                name_of(&alive, true)
            ),
            (live.thread_id, tid, "holder".to_string())
        );

        exit_tx.send("holder-ended").unwrap();
        holder.join().unwrap();
        assert!(
            threads()
                .iter()
                .all(|entry| entry.thread_id != live.thread_id)
        );
        let after = total();
        assert_eq!(
            (
                after.longest_hold_thread_id,
                after.longest_hold_os_thread_id,
                name_of(&after, true)
            ),
            (live.thread_id, tid, "holder-ended".to_string())
        );
        assert_eq!(after.hold_max_ns, alive.hold_max_ns);
        assert_eq!(after.acquisitions, 1);
    });
}
