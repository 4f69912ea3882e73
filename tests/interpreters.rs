//! Sub-interpreters and pools: entering and nesting, handles that stay in
//! their interpreter, destroy rules under deadlines, thread exit, and the
//! engine's end. The suite runs on every CPython; where the Python has no
//! own-GIL interpreters (3.10, 3.11) the tests check the exact refusal and go
//! on with shared-GIL ones.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use pybridge::engine::{PYB_SHUTDOWN_INTERRUPT, PYB_TIMEOUT_INFINITE};
use pybridge::gil::*;
use pybridge::interpreter::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(60);

fn own_gil_supported() -> bool {
    eval_bool("__import__('sys').version_info[:2] >= (3, 12)")
}

/// A new interpreter: its own GIL where the Python has that, else shared.
fn new_interpreter() -> pyb_interpreter {
    let mut config = pyb_interpreter_config {
        struct_size: 0,
        flags: 0,
    };
    ok(unsafe { pyb_interpreter_config_default(&mut config) });
    if !own_gil_supported() {
        config.flags = PYB_INTERPRETER_SHARED_GIL;
    }
    let mut interp = 0;
    ok(unsafe { pyb_interpreter_new(&config, &mut interp) });
    interp
}

fn enter(interp: pyb_interpreter) -> pyb_gil {
    let mut token = 0;
    ok(unsafe { pyb_interpreter_enter(interp, &mut token) });
    token
}

fn try_enter(interp: pyb_interpreter) -> pyb_status {
    let mut token = 0;
    let status = unsafe { pyb_interpreter_enter(interp, &mut token) };
    if status == PYB_OK {
        ok(pyb_gil_release(token));
    }
    status
}

/// Asserts that exactly `count` thread states were made since `before`, and
/// as many freed.
fn assert_states_made_and_freed(before: &pybridge::stats::pyb_stats, count: u64) {
    let after = stats();
    assert_eq!(
        after.thread_states_created - before.thread_states_created,
        count
    );
    assert_eq!(
        after.thread_states_deleted - before.thread_states_deleted,
        count
    );
}

/// Runs `body` inside `interp`.
fn inside<T>(interp: pyb_interpreter, body: impl FnOnce() -> T) -> T {
    let token = enter(interp);
    let result = body();
    ok(pyb_gil_release(token));
    result
}

/// A thread named `name` that stays inside `interp` (a scope open, its GIL
/// given away, which a shared-GIL interpreter shares) until told to leave.
fn park_inside(
    interp: pyb_interpreter,
    name: &str,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let worker = spawn(name, move || {
        let token = enter(interp);
        let region = begin_allow();
        entered_tx.send(()).unwrap();
        leave_rx.recv().unwrap();
        ok(pyb_end_allow_threads(region));
        ok(pyb_gil_release(token));
    });
    entered_rx.recv().unwrap();
    (leave_tx, worker)
}

#[test]
fn own_gil_needs_3_12_and_shared_gil_works_everywhere() {
    within(LIMIT, "kinds of interpreters", || {
        initialize();
        let mut interp = 0;
        let status = unsafe { pyb_interpreter_new(std::ptr::null(), &mut interp) };
        if own_gil_supported() {
            ok(status);
            ok(pyb_interpreter_destroy(interp, 5_000));
        } else {
            expect(status, PYB_E_UNSUPPORTED);
            let message = last_error();
            let version = eval_text("'%d.%d' % __import__('sys').version_info[:2]");
            assert!(
                message.contains(&format!("CPython {version}")) && message.contains("3.12"),
                "{message}"
            );
            let mut pool = 0;
            expect(
                unsafe { pyb_pool_new(2, std::ptr::null(), &mut pool) },
                PYB_E_UNSUPPORTED,
            );
        }
        let config = pyb_interpreter_config {
            struct_size: std::mem::size_of::<pyb_interpreter_config>(),
            flags: PYB_INTERPRETER_SHARED_GIL,
        };
        ok(unsafe { pyb_interpreter_new(&config, &mut interp) });
        inside(interp, || {
            exec("x = 41 + 1");
            assert_eq!(eval_int("x"), 42);
        });
        assert!(!eval_bool("'x' in globals()"), "the main __main__ is apart");
        let bad = pyb_interpreter_config {
            struct_size: std::mem::size_of::<pyb_interpreter_config>(),
            flags: 0x80,
        };
        expect(
            unsafe { pyb_interpreter_new(&bad, &mut interp) },
            PYB_E_INVALID_ARGUMENT,
        );
        ok(pyb_interpreter_destroy(interp, 5_000));
        expect(pyb_interpreter_destroy(interp, 5_000), PYB_E_BAD_HANDLE);
        expect(try_enter(interp), PYB_E_BAD_HANDLE);
        assert!(last_error().contains("destroyed"), "{}", last_error());
    });
}

#[test]
fn handles_stay_in_their_interpreter_and_values_cross() {
    within(LIMIT, "handles and interpreters", || {
        initialize();
        let a = new_interpreter();
        let list = inside(a, || {
            exec("import weakref\nclass C: pass\nc = C()\nr = weakref.ref(c)");
            let held = eval_object("c");
            exec("del c");
            (eval_object("[1, 2, 3]"), held)
        });
        let (list, held) = list;
        // Used from the main interpreter: a named status, not a crash.
        let mut len = 0;
        expect(
            unsafe { pybridge::call::pyb_len(list, &mut len) },
            PYB_E_WRONG_INTERPRETER,
        );
        assert!(
            last_error().contains(&format!("sub-interpreter {a}")),
            "{}",
            last_error()
        );
        // Plain values are copied across.
        let six = inside(a, || eval("sum([1, 2, 3])"));
        assert_eq!(six.as_i64(), Some(6));
        // A release without any GIL is queued and applied inside its interpreter.
        release(held);
        inside(a, || {
            assert!(eval_bool("r() is None"), "applied by the next call in it");
            ok(unsafe { pybridge::call::pyb_len(list, &mut len) });
            assert_eq!(len, 3);
        });
        // A release from inside another interpreter is queued too.
        with_gil(|| release(list));
        ok(pyb_interpreter_destroy(a, 5_000));
    });
}

#[test]
fn entering_nests_and_switches_back() {
    within(LIMIT, "nested interpreters", || {
        initialize();
        let (a, b) = (new_interpreter(), new_interpreter());
        exec("where = 'main'");
        inside(a, || exec("where = 'a'"));
        inside(b, || exec("where = 'b'"));
        let outer = acquire();
        assert_eq!(eval_text("where"), "main");
        let in_a = enter(a);
        assert_eq!(eval_text("where"), "a");
        // pyb_gil_acquire nests in the current interpreter.
        let nested = acquire();
        assert_eq!(eval_text("where"), "a");
        let in_b = enter(b);
        assert_eq!(eval_text("where"), "b");
        let a_again = enter(a);
        assert_eq!(eval_text("where"), "a");
        ok(pyb_gil_release(a_again));
        assert_eq!(eval_text("where"), "b");
        // Out of LIFO order: refused, nothing changes.
        expect(pyb_gil_release(in_a), PYB_E_BAD_TOKEN);
        ok(pyb_gil_release(in_b));
        assert_eq!(eval_text("where"), "a");
        ok(pyb_gil_release(nested));
        ok(pyb_gil_release(in_a));
        assert_eq!(eval_text("where"), "main");
        ok(pyb_gil_release(outer));
        assert_eq!(pyb_gil_held(), 0);
        // Host functions live in the main interpreter.
        inside(a, || {
            expect(
                try_register("hostmod", "f", 0, |_, _| PYB_OK),
                PYB_E_UNSUPPORTED,
            )
        });
        ok(pyb_interpreter_destroy(a, 5_000));
        ok(pyb_interpreter_destroy(b, 5_000));
    });
}

#[test]
fn destroy_refuses_from_inside_and_waits_for_threads_inside() {
    within(LIMIT, "destroy rules", || {
        initialize();
        let a = new_interpreter();
        inside(a, || {
            expect(pyb_interpreter_destroy(a, 1_000), PYB_E_WOULD_DEADLOCK)
        });
        let (leave_tx, worker) = park_inside(a, "inside-a");
        let started = Instant::now();
        expect(pyb_interpreter_destroy(a, 200), PYB_E_TIMEOUT);
        let waited = elapsed_ms(started);
        assert!((200..2_000).contains(&waited), "waited {waited} ms");
        assert!(last_error().contains("'inside-a'"), "{}", last_error());
        // Unchanged: still usable.
        assert_eq!(inside(a, || eval_int("6 * 7")), 42);
        // A destroy that waits is let through when the thread leaves.
        let destroyer = spawn("destroyer", move || pyb_interpreter_destroy(a, 10_000));
        // The destroyer waits once it has closed the interpreter to entries.
        let closed = Instant::now();
        while try_enter(a) != PYB_E_SHUTTING_DOWN {
            assert!(
                closed.elapsed() < LIMIT / 2,
                "the destroyer never closed it"
            );
            std::thread::yield_now();
        }
        leave_tx.send(()).unwrap();
        worker.join().unwrap();
        ok(destroyer.join().unwrap());
        expect(try_enter(a), PYB_E_BAD_HANDLE);
    });
}

#[test]
fn a_python_thread_in_an_interpreter_delays_its_destroy() {
    within(LIMIT, "python thread", || {
        initialize();
        let a = new_interpreter();
        inside(a, || {
            exec(
                "import threading\nstop = threading.Event()\n\
                 t = threading.Thread(target=stop.wait, name='waiter', daemon=False)\nt.start()",
            )
        });
        expect(pyb_interpreter_destroy(a, 100), PYB_E_TIMEOUT);
        assert!(last_error().contains("'waiter'"), "{}", last_error());
        inside(a, || exec("stop.set()\nt.join()"));
        ok(pyb_interpreter_destroy(a, 5_000));
    });
}

#[test]
fn a_thread_that_exits_leaves_no_thread_state_behind() {
    within(LIMIT, "thread exit", || {
        initialize();
        let interps = [new_interpreter(), new_interpreter(), new_interpreter()];
        let before = stats();
        spawn("three-interpreters", move || {
            for interp in interps {
                inside(interp, || assert_eq!(eval_int("1 + 1"), 2));
            }
        })
        .join()
        .unwrap();
        // One main state (made first) and one per interpreter, all freed.
        assert_states_made_and_freed(&before, 4);
        for interp in interps {
            ok(pyb_interpreter_destroy(interp, 5_000));
        }
    });
}

#[test]
fn a_pool_lends_its_interpreters_and_counts_waits() {
    within(LIMIT, "pool", || {
        initialize();
        let mut pool = 0;
        let setup = c("def double(n):\n    return 2 * n\n");
        let status = unsafe { pyb_pool_new(2, setup.as_ptr(), &mut pool) };
        if !own_gil_supported() {
            expect(status, PYB_E_UNSUPPORTED);
            return;
        }
        ok(status);
        let mut first = 0;
        let mut second = 0;
        ok(unsafe { pyb_pool_borrow(pool, 1_000, &mut first) });
        ok(unsafe { pyb_pool_borrow(pool, 1_000, &mut second) });
        assert_ne!(first, second);
        let started = Instant::now();
        let mut third = 0;
        expect(
            unsafe { pyb_pool_borrow(pool, 100, &mut third) },
            PYB_E_TIMEOUT,
        );
        assert!(elapsed_ms(started) >= 100);
        assert_eq!(inside(first, || eval_int("double(21)")), 42);
        expect(pyb_pool_destroy(pool, 50), PYB_E_TIMEOUT);
        ok(pyb_pool_return(pool, first));
        expect(pyb_pool_return(pool, first), PYB_E_INVALID_ARGUMENT);
        ok(unsafe { pyb_pool_borrow(pool, 0, &mut third) });
        assert_eq!(third, first);
        ok(pyb_pool_return(pool, third));
        ok(pyb_pool_return(pool, second));
        let mut counters = pyb_pool_stats {
            struct_size: std::mem::size_of::<pyb_pool_stats>(),
            ..Default::default()
        };
        ok(unsafe { pyb_pool_stats_get(pool, &mut counters) });
        assert_eq!(
            (
                counters.size,
                counters.free,
                counters.borrows,
                counters.waits,
                counters.timeouts
            ),
            (2, 2, 3, 1, 1)
        );
        assert!(counters.wait_ns_max >= 100_000_000, "{counters:?}");
        // A setup that raises leaves nothing behind.
        let broken = c("raise ValueError('no')");
        let mut other = 0;
        expect_python(
            unsafe { pyb_pool_new(2, broken.as_ptr(), &mut other) },
            "ValueError",
        );
        ok(pyb_pool_destroy(pool, 5_000));
        expect(
            unsafe { pyb_pool_borrow(pool, 0, &mut third) },
            PYB_E_BAD_HANDLE,
        );
        expect(try_enter(first), PYB_E_BAD_HANDLE);
    });
}

#[test]
fn the_engine_end_destroys_interpreters_and_pools() {
    within(LIMIT, "engine end", || {
        initialize();
        let a = new_interpreter();
        let list = inside(a, || eval_object("[1]"));
        let (leave_tx, worker) = park_inside(a, "busy-in-a");
        expect(shutdown(100, 0), PYB_E_TIMEOUT);
        assert!(last_error().contains("'busy-in-a'"), "{}", last_error());
        leave_tx.send(()).unwrap();
        worker.join().unwrap();
        ok(shutdown(10_000, 0));
        expect(try_enter(a), PYB_E_NOT_INITIALIZED);
        initialize();
        expect(try_enter(a), PYB_E_BAD_HANDLE);
        expect(pybridge::object::pyb_object_release(list), PYB_E_BAD_HANDLE);
        let b = new_interpreter();
        assert_ne!(a, b, "handles are never reused");
        assert_eq!(inside(b, || eval_int("2 + 2")), 4);
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn extensions_without_isolation_fail_with_import_error_not_a_crash() {
    within(LIMIT, "extension modules", || {
        initialize();
        let a = new_interpreter();
        for code in [
            "import _datetime",
            "import readline",
            "import _decimal",
            "import json",
            "import math",
            "import ssl",
        ] {
            let code = c(code);
            let status = inside(a, || unsafe {
                pybridge::call::pyb_run(code.as_ptr(), std::ptr::null(), 0)
            });
            if status != PYB_OK {
                expect_python(status, "ImportError");
            }
        }
        ok(pyb_interpreter_destroy(a, 5_000));
        // What people import every day works, in one interpreter after another
        // (on 3.12 with the fallbacks of src/python/subinterpreter.rs's guard),
        // and the process still ends cleanly.
        for _ in 0..2 {
            let a = new_interpreter();
            inside(a, || {
                exec(
                    "import hashlib, asyncio, datetime, decimal, zoneinfo, json\n\
                     digest = hashlib.sha256(b'x').hexdigest()\n\
                     async def twice(n):\n    await asyncio.sleep(0)\n    return 2 * n\n\
                     result = asyncio.run(twice(21))\n\
                     day = datetime.date(2026, 12, 3).isoformat()\n\
                     total = str(decimal.Decimal('0.1') + decimal.Decimal('0.2'))",
                );
                assert_eq!(eval_int("result"), 42);
                assert_eq!(eval_text("digest[:8]"), "2d711642");
                assert_eq!(eval_text("day"), "2026-12-03");
                assert_eq!(eval_text("total"), "0.3");
            });
            ok(pyb_interpreter_destroy(a, 5_000));
        }
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn an_interrupting_shutdown_stops_threads_busy_in_interpreters() {
    within(LIMIT, "interrupting shutdown", || {
        initialize();
        let interps = [new_interpreter(), new_interpreter()];
        let (ready_tx, ready_rx) = mpsc::channel();
        let workers: Vec<_> = (0..4)
            .map(|index| {
                let interp = interps[index % 2];
                let ready = ready_tx.clone();
                spawn(&format!("busy-{index}"), move || {
                    let token = enter(interp);
                    ready.send(()).unwrap();
                    let code = c("while True:\n    x = 1\n");
                    let status =
                        unsafe { pybridge::call::pyb_run(code.as_ptr(), std::ptr::null(), 0) };
                    let parts = python_parts();
                    ok(pyb_gil_release(token));
                    (name(status), parts.0)
                })
            })
            .collect();
        for _ in 0..4 {
            ready_rx.recv().unwrap();
        }
        let started = Instant::now();
        expect(shutdown(300, 0), PYB_E_TIMEOUT);
        let waited = elapsed_ms(started);
        assert!((300..3_000).contains(&waited), "waited {waited} ms");
        let started = Instant::now();
        ok(shutdown(20_000, PYB_SHUTDOWN_INTERRUPT));
        let stopped = elapsed_ms(started);
        for worker in workers {
            assert_eq!(
                worker.join().unwrap(),
                ("PYB_E_PYTHON", "ShutdownInterrupt".to_string())
            );
        }
        assert!(
            stopped < 10_000,
            "the interrupting shutdown took {stopped} ms"
        );
    });
}

/// As in the main interpreter (tests/interrupting_shutdown.rs): a keeper
/// interrupts a thread running a module's body only once the import is over.
#[test]
fn a_thread_importing_in_an_interpreter_is_interrupted_after_the_import() {
    within(LIMIT, "interrupt after an import", || {
        initialize();
        let interp = new_interpreter();
        SlowImport::new("interp", 400).interrupt_during_the_import(move |code| {
            let token = enter(interp);
            let status = unsafe { pybridge::call::pyb_run(code.as_ptr(), std::ptr::null(), 0) };
            let message = last_error();
            ok(pyb_gil_release(token));
            (status, message)
        });
    });
}

#[test]
fn a_hundred_create_destroy_cycles_keep_memory_bounded() {
    within(Duration::from_secs(120), "create/destroy cycles", || {
        initialize();
        const WORK: &str =
            "import json\nrows = [{'i': i} for i in range(1000)]\ntext = json.dumps(rows)";
        let cycle = || {
            let interp = new_interpreter();
            inside(interp, || {
                exec(WORK);
                let list = eval_object("rows");
                release(list);
            });
            ok(pyb_interpreter_destroy(interp, 10_000));
        };
        for _ in 0..10 {
            cycle();
        }
        let before = rss_kib();
        for _ in 0..100 {
            cycle();
        }
        let grown = rss_kib().saturating_sub(before);
        // The same cycles through CPython's own module, in this process: CPython
        // 3.12 and 3.13 keep an own-GIL interpreter's allocator arenas after it
        // ends (about 1.8 MiB even for an empty one; not with PYTHONMALLOC=malloc).
        exec(&format!(
            "import sys\n\
             try:\n    import _interpreters as m\n    new = lambda: m.create('isolated')\n    run = m.exec\n\
             except ImportError:\n    import _xxsubinterpreters as m\n    run = m.run_string\n    \
             new = (lambda: m.create(isolated=True)) if sys.version_info >= (3, 12) else m.create\n\
             def rss():\n    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n\
             def cycle():\n    x = new()\n    run(x, {WORK:?})\n    m.destroy(x)\n\
             for _ in range(10):\n    cycle()\n\
             before = rss()\n\
             for _ in range(100):\n    cycle()\n\
             cpython_grew = rss() - before"
        ));
        let cpython = eval_int("cpython_grew").max(0) as u64;
        println!(
            "RSS grew {grown} KiB over 100 create/destroy cycles; CPython alone: {cpython} KiB"
        );
        // The bound: at most 16 MiB (160 KiB a cycle) more than CPython itself.
        assert!(
            grown <= cpython + 16 * 1024,
            "RSS grew {grown} KiB over 100 cycles, CPython alone {cpython} KiB"
        );
        // This thread's main state and that of the one keeper thread, reused.
        let after = stats();
        assert_eq!(after.thread_states_created - after.thread_states_deleted, 2);
    });
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Issue 19, defect 1: a thread that used a sub-interpreter, left it, and then
/// exits inside a main-interpreter scope. Its exit used to attach its
/// sub-interpreter state while it still held the main GIL: a deadlock on a
/// shared GIL (3.11), a fatal error or a crash on 3.12/3.13.
#[test]
fn a_thread_exiting_in_a_main_scope_after_a_sub_interpreter_frees_every_state() {
    within(LIMIT, "exit in a main scope", || {
        initialize();
        let mut interps = vec![shared_gil_interpreter()];
        if own_gil_supported() {
            interps.push(new_interpreter());
        }
        for interp in interps.iter().copied() {
            let before = stats();
            spawn("exits-holding-main", move || {
                inside(interp, || assert_eq!(eval_int("2 + 3"), 5));
                // Left open on purpose: the thread exits inside this scope.
                let _scope = acquire();
                assert_eq!(eval_int("40 + 2"), 42);
            })
            .join()
            .unwrap();
            // Its main state and its state in `interp`, both freed at exit.
            assert_states_made_and_freed(&before, 2);
            // Both interpreters still work, from this thread and another.
            assert_eq!(eval_int("1 + 1"), 2);
            assert_eq!(inside(interp, || eval_int("3 * 3")), 9);
            spawn("after", move || inside(interp, || eval_int("4 * 4")))
                .join()
                .map(|value| assert_eq!(value, 16))
                .unwrap();
            ok(pyb_interpreter_destroy(interp, 5_000));
        }
        ok(shutdown(10_000, 0));
    });
}

/// Starts a Python thread named `name` in `interp` that runs until `stop` is
/// set there; `target` is its body (`stop.wait` sits in `threading`, where no
/// interrupt may land; `poll` runs bytecode every 10 ms).
fn start_python_thread(interp: pyb_interpreter, name: &str, daemon: bool, target: &str) {
    inside(interp, || {
        exec(&format!(
            "import threading, time\n\
             stop = threading.Event()\n\
             def poll():\n    while not stop.is_set():\n        time.sleep(0.01)\n\
             worker = threading.Thread(target={target}, name={name:?}, daemon={})\n\
             worker.start()",
            if daemon { "True" } else { "False" }
        ))
    });
}

/// Interpreters to start a Python thread in, with its daemon flag: shared-GIL
/// ones allow daemon threads; own-GIL ones (3.12+) do not.
fn interpreters_with_daemon_flags() -> Vec<(pyb_interpreter, bool)> {
    let mut cases = vec![
        (shared_gil_interpreter(), true),
        (shared_gil_interpreter(), false),
    ];
    if own_gil_supported() {
        cases.push((new_interpreter(), false));
    }
    cases
}

/// Issue 19, defect 2: a Python thread running in a sub-interpreter keeps the
/// engine's shutdown from its point of no return, as a main-interpreter one
/// does: `PYB_E_TIMEOUT` with nothing changed (it used to commit, then
/// `Py_FinalizeEx` failed fatally on the interpreter left alive).
#[test]
fn a_python_thread_in_a_sub_interpreter_times_the_shutdown_out_unchanged() {
    within(LIMIT, "python thread at shutdown", || {
        initialize();
        for (interp, daemon) in interpreters_with_daemon_flags() {
            start_python_thread(interp, "sub-worker", daemon, "stop.wait");
            for flags in [0, PYB_SHUTDOWN_INTERRUPT] {
                let started = Instant::now();
                expect(shutdown(300, flags), PYB_E_TIMEOUT);
                let waited = elapsed_ms(started);
                assert!((300..5_000).contains(&waited), "waited {waited} ms");
                let message = last_error();
                assert!(
                    message.contains("'sub-worker'")
                        && message.contains(&format!("sub-interpreter {interp}")),
                    "{message}"
                );
                // Unchanged: the thread lives, the interpreter and the engine work.
                assert_eq!(inside(interp, || eval_int("int(worker.is_alive())")), 1);
                assert_eq!(eval_int("6 * 7"), 42);
            }
            inside(interp, || exec("stop.set()\nworker.join()"));
            ok(pyb_interpreter_destroy(interp, 5_000));
        }
        ok(shutdown(10_000, 0));
    });
}

/// With `PYB_SHUTDOWN_INTERRUPT`, a sub-interpreter's Python thread running
/// bytecode gets `SystemExit` from its keeper and the shutdown ends cleanly.
#[test]
fn an_interrupting_shutdown_ends_a_sub_interpreters_python_threads() {
    within(LIMIT, "interrupt python threads", || {
        initialize();
        for (interp, daemon) in interpreters_with_daemon_flags() {
            start_python_thread(interp, &format!("poller-{interp}"), daemon, "poll");
        }
        ok(shutdown(20_000, PYB_SHUTDOWN_INTERRUPT));
        initialize();
        assert_eq!(eval_int("6 * 7"), 42);
        ok(shutdown(10_000, 0));
    });
}

/// Issue 19, defect 5: code a keeper runs in its interpreter during a destroy
/// raises (here `threading.enumerate`, which it calls to list the Python
/// threads, is broken on purpose). The exception object used to get a handle
/// filed under the main interpreter, and its queued release freed it there
/// with the wrong allocator: "free(): invalid size" on 3.12/3.13.
#[test]
fn an_exception_in_a_keepers_code_is_freed_in_its_own_interpreter() {
    within(LIMIT, "keeper exception", || {
        initialize();
        let mut interps = vec![shared_gil_interpreter()];
        if own_gil_supported() {
            interps.push(new_interpreter());
        }
        for interp in interps {
            inside(interp, || {
                exec(
                    "import threading\nreal_enumerate = threading.enumerate\n\
                     threading.enumerate = lambda: [1 / 0]",
                )
            });
            for _ in 0..10 {
                // Long enough for the keeper to answer at least once on a busy machine.
                expect(pyb_interpreter_destroy(interp, 500), PYB_E_TIMEOUT);
                let message = last_error();
                assert!(message.contains("ZeroDivisionError"), "{message}");
                // Queued releases run at the next acquire: allocate around them.
                assert_eq!(eval_int("len([str(i) * 50 for i in range(2000)])"), 2000);
            }
            inside(interp, || exec("threading.enumerate = real_enumerate"));
            ok(pyb_interpreter_destroy(interp, 5_000));
        }
        ok(shutdown(10_000, 0));
    });
}

/// Issue 19, defect 6: the guard against re-initializing extension modules
/// that crash CPython (src/python/reinit_guard.rs) covers sub-interpreters
/// that share the main GIL: there every hazard is refused (each import there
/// initializes it once more), and the pure-Python twins take over. On 3.11,
/// `zoneinfo` in five such interpreters aborted the process at shutdown; on
/// 3.12, `datetime` and friends crashed after a restart.
#[test]
fn shared_gil_interpreters_refuse_modules_cpython_crashes_reinitializing() {
    within(LIMIT, "re-import guard in sub-interpreters", || {
        let minor = || eval_int("__import__('sys').version_info[1]");
        initialize();
        let hazards: &[&str] = match minor() {
            10 => &["_asyncio"],
            11 => &["_zoneinfo", "_asyncio"],
            12 => &[
                "_asyncio",
                "_ctypes",
                "_datetime",
                "_decimal",
                "_hashlib",
                "_ssl",
                "_zoneinfo",
            ],
            _ => &[],
        };
        // The main interpreter initializes them first, then a restart.
        exec("import datetime, decimal, zoneinfo, asyncio, hashlib");
        ok(shutdown(10_000, 0));
        initialize();
        for round in 0..5 {
            let interp = shared_gil_interpreter();
            inside(interp, || {
                exec(concat!(
                    "import datetime, decimal, zoneinfo, asyncio, hashlib, sys\n",
                    "assert datetime.date(2026, 12, 7).isoformat() == '2026-12-07'\n",
                    "assert str(decimal.Decimal('1.10') + decimal.Decimal('2.205')) == '3.305'\n",
                    "assert zoneinfo.ZoneInfo('UTC').key == 'UTC'\n",
                    "assert asyncio.run(asyncio.sleep(0, 'slept')) == 'slept'\n",
                    "assert hashlib.sha256(b'x').hexdigest().startswith('2d711642')\n",
                ));
                for module in hazards {
                    exec(&format!(
                        "try:\n    import {module}\nexcept ImportError as e:\n    refusal = str(e)\n\
                         else:\n    refusal = None\n"
                    ));
                    let refusal = eval_text("refusal");
                    assert!(
                        refusal.contains(&format!(
                            "pybridge refuses to import {module} in a sub-interpreter"
                        )),
                        "round {round}, {module}: {refusal}"
                    );
                }
            });
            ok(pyb_interpreter_destroy(interp, 5_000));
        }
        ok(shutdown(10_000, 0));
    });
}

/// A pool of `count` interpreters with `double` defined in each, or `None`
/// where the Python has no own-GIL interpreters (the refusal checked).
fn doubling_pool(count: usize) -> Option<pyb_pool> {
    let mut pool = 0;
    let setup = c("def double(n):\n    return 2 * n\n");
    let status = unsafe { pyb_pool_new(count, setup.as_ptr(), &mut pool) };
    if !own_gil_supported() {
        expect(status, PYB_E_UNSUPPORTED);
        return None;
    }
    ok(status);
    Some(pool)
}

/// Runs `body` under the deadline on a fresh `doubling_pool` (nothing where
/// the Python has no own-GIL interpreters).
fn with_doubling_pool(what: &str, count: usize, body: impl FnOnce(pyb_pool) + Send + 'static) {
    within(LIMIT, what, move || {
        initialize();
        if let Some(pool) = doubling_pool(count) {
            body(pool);
        }
    });
}

fn borrow(pool: pyb_pool, timeout_ms: u32) -> pyb_interpreter {
    let mut interp = 0;
    ok(unsafe { pyb_pool_borrow(pool, timeout_ms, &mut interp) });
    interp
}

fn pool_stats(pool: pyb_pool) -> pyb_pool_stats {
    let mut counters = pyb_pool_stats {
        struct_size: std::mem::size_of::<pyb_pool_stats>(),
        ..Default::default()
    };
    ok(unsafe { pyb_pool_stats_get(pool, &mut counters) });
    counters
}

/// Every member of the pool can be borrowed at once without waiting and
/// works; all are given back.
fn assert_whole_and_usable(pool: pyb_pool, count: usize) {
    let before = pool_stats(pool);
    assert_eq!((before.size, before.free), (count as u64, count as u64));
    let members: Vec<_> = (0..count).map(|_| borrow(pool, 0)).collect();
    for &member in &members {
        assert_eq!(inside(member, || eval_int("double(21)")), 42);
    }
    for member in members {
        ok(pyb_pool_return(pool, member));
    }
    let after = pool_stats(pool);
    assert_eq!(after.waits, before.waits, "no borrow waited");
}

#[test]
fn a_pool_destroy_that_times_out_on_a_thread_inside_changes_nothing() {
    with_doubling_pool("pool destroy with a thread inside a member", 3, |pool| {
        // A thread stays inside a member after giving it back (a host bug the
        // destroy must survive).
        let member = borrow(pool, 0);
        let (leave_tx, worker) = park_inside(member, "inside-member");
        ok(pyb_pool_return(pool, member));
        let started = Instant::now();
        expect(pyb_pool_destroy(pool, 200), PYB_E_TIMEOUT);
        let waited = elapsed_ms(started);
        assert!((200..2_000).contains(&waited), "waited {waited} ms");
        let message = last_error();
        assert!(
            message.contains("'inside-member'") && message.contains("unchanged"),
            "{message}"
        );
        assert_whole_and_usable(pool, 3);
        leave_tx.send(()).unwrap();
        worker.join().unwrap();
        ok(pyb_pool_destroy(pool, 10_000));
        expect(try_enter(member), PYB_E_BAD_HANDLE);
    });
}

#[test]
fn a_pool_destroy_that_times_out_on_a_python_thread_changes_nothing() {
    with_doubling_pool("pool destroy with a Python thread in a member", 2, |pool| {
        let member = borrow(pool, 0);
        inside(member, || {
            exec(
                "import threading\nstop = threading.Event()\n\
                 t = threading.Thread(target=stop.wait, name='waiter')\nt.start()",
            )
        });
        ok(pyb_pool_return(pool, member));
        expect(pyb_pool_destroy(pool, 200), PYB_E_TIMEOUT);
        let message = last_error();
        assert!(
            message.contains("'waiter'") && message.contains("unchanged"),
            "{message}"
        );
        assert_whole_and_usable(pool, 2);
        inside(member, || exec("stop.set()\nt.join()"));
        ok(pyb_pool_destroy(pool, 10_000));
    });
}

#[test]
fn a_pool_destroy_from_inside_a_member_would_deadlock_and_changes_nothing() {
    with_doubling_pool("pool destroy from inside a member", 2, |pool| {
        let member = borrow(pool, 0);
        let token = enter(member);
        // Borrowed and entered, then given back and still entered: refused at once.
        for give_back in [false, true] {
            if give_back {
                ok(pyb_pool_return(pool, member));
            }
            let started = Instant::now();
            expect(
                pyb_pool_destroy(pool, PYB_TIMEOUT_INFINITE),
                PYB_E_WOULD_DEADLOCK,
            );
            assert!(elapsed_ms(started) < 1_000, "refused at once");
            assert!(
                last_error().contains(&format!("inside interpreter {member}")),
                "{}",
                last_error()
            );
        }
        assert_eq!(eval_int("double(4)"), 8);
        ok(pyb_gil_release(token));
        assert_whole_and_usable(pool, 2);
        ok(pyb_pool_destroy(pool, 10_000));
    });
}

#[test]
fn a_pool_member_is_destroyed_only_with_its_pool() {
    with_doubling_pool("destroying a pool member", 2, |pool| {
        let borrowed = borrow(pool, 0);
        let free = borrow(pool, 0);
        ok(pyb_pool_return(pool, free));
        for member in [borrowed, free] {
            expect(
                pyb_interpreter_destroy(member, 1_000),
                PYB_E_INVALID_ARGUMENT,
            );
            assert!(
                last_error().contains(&format!("belongs to pool {pool}")),
                "{}",
                last_error()
            );
        }
        ok(pyb_pool_return(pool, borrowed));
        assert_whole_and_usable(pool, 2);
        ok(pyb_pool_destroy(pool, 10_000));
        expect(pyb_interpreter_destroy(borrowed, 1_000), PYB_E_BAD_HANDLE);
    });
}

#[test]
fn handle_0_is_no_interpreter_and_no_pool() {
    within(LIMIT, "handle 0", || {
        initialize();
        expect(pyb_interpreter_destroy(0, 1_000), PYB_E_BAD_HANDLE);
        assert!(last_error().contains("is 0"), "{}", last_error());
        // Also from inside a main-interpreter scope (0 is not the main one).
        with_gil(|| {
            expect(pyb_interpreter_destroy(0, 1_000), PYB_E_BAD_HANDLE);
            expect(try_enter(0), PYB_E_BAD_HANDLE);
        });
        expect(try_enter(0), PYB_E_BAD_HANDLE);
        let mut interp = 0;
        expect(
            unsafe { pyb_pool_borrow(0, 0, &mut interp) },
            PYB_E_BAD_HANDLE,
        );
        assert!(last_error().contains("is 0"), "{}", last_error());
        expect(pyb_pool_return(0, 1), PYB_E_BAD_HANDLE);
        expect(pyb_pool_destroy(0, 1_000), PYB_E_BAD_HANDLE);
    });
}

#[test]
fn pool_destroys_race_each_other_borrowers_and_the_engine_end() {
    with_doubling_pool("racing pool destroys", 2, |pool| {
        // Two destroyers and a borrower at once: the pool ends once.
        let member = borrow(pool, 0);
        let destroyers: Vec<_> = (0..2)
            .map(|index| {
                spawn(&format!("destroyer-{index}"), move || {
                    pyb_pool_destroy(pool, 10_000)
                })
            })
            .collect();
        let mut other = 0;
        // Closed to borrowers once a destroy runs.
        while unsafe { pyb_pool_borrow(pool, 0, &mut other) } != PYB_E_SHUTTING_DOWN {
            ok(pyb_pool_return(pool, other));
        }
        ok(pyb_pool_return(pool, member));
        let statuses: Vec<_> = destroyers
            .into_iter()
            .map(|destroyer| name(destroyer.join().unwrap()))
            .collect();
        assert_eq!(statuses, ["PYB_OK", "PYB_OK"]);
        expect(try_enter(member), PYB_E_BAD_HANDLE);
        // A destroy waiting for a borrowed interpreter when the engine ends
        // returns: the engine's end destroyed the pool.
        let pool = doubling_pool(2).unwrap();
        let member = borrow(pool, 0);
        let destroyer = spawn("waiting-destroyer", move || {
            pyb_pool_destroy(pool, PYB_TIMEOUT_INFINITE)
        });
        while unsafe { pyb_pool_borrow(pool, 0, &mut other) } != PYB_E_SHUTTING_DOWN {
            ok(pyb_pool_return(pool, other));
        }
        ok(shutdown(10_000, 0));
        ok(destroyer.join().unwrap());
        expect(pyb_pool_return(pool, member), PYB_E_BAD_HANDLE);
    });
}

/// Found by tests/c/fuzz_api.c: on 3.13.0, own-GIL interpreters importing
/// `datetime` on two threads at once corrupted the heap when one ended
/// (`_PyTuple_ClearFreeList` in `Py_EndInterpreter`; reproduced with CPython's
/// own `_interpreters` module, no pybridge). pybridge refuses `_datetime` in
/// own-GIL interpreters there, so `datetime` runs on `_pydatetime`.
#[test]
fn own_gil_interpreters_importing_datetime_at_once_end_cleanly() {
    within(LIMIT, "datetime in own-GIL interpreters", || {
        initialize();
        if !own_gil_supported() {
            return;
        }
        let workers: Vec<_> = (0..2)
            .map(|index| {
                spawn(&format!("datetime-{index}"), || {
                    for _ in 0..20 {
                        let interp = new_interpreter();
                        inside(interp, || {
                            exec("import datetime\nd = datetime.date(2026, 12, 7) + datetime.timedelta(days=1)");
                            assert_eq!(eval_text("d.isoformat()"), "2026-12-08");
                        });
                        ok(pyb_interpreter_destroy(interp, 10_000));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        ok(shutdown(10_000, 0));
    });
}

/// A thread whose first pybridge call entered a sub-interpreter has that
/// interpreter's state as its PyGILState state afterwards (CPython binds the
/// first state a thread activates): its first main-interpreter scope must
/// still run in the main interpreter, on a state of its own.
#[test]
fn first_main_scope_after_a_subinterpreter_runs_in_the_main_interpreter() {
    initialize();
    run("where = 'main'");
    let interp = new_interpreter();
    within(LIMIT, "a main scope after a sub-interpreter", move || {
        let token = enter(interp);
        run_held("where = 'sub'");
        ok(pyb_gil_release(token));
        assert!(
            eval_bool("where == 'main'"),
            "the first main scope ran in the sub-interpreter"
        );
    });
    ok(pyb_interpreter_destroy(interp, PYB_TIMEOUT_INFINITE));
    assert!(eval_bool("where == 'main'"));
}

/// A pool-worker-like thread enters a sub-interpreter with no main scope, so
/// its state there stays its PyGILState state (3.12+). The destroy frees that
/// state from the keeper; the thread's next attach writes into it. The block
/// is held (`thread_states_held` + 1) until that attach, then freed.
#[test]
fn a_state_freed_by_a_destroy_is_held_until_its_thread_attaches_another() {
    initialize();
    if !own_gil_supported() {
        println!("skipped: CPython 3.10 and 3.11 never write into a thread's previous state");
        ok(shutdown(10_000, 0));
        return;
    }
    let interp = new_interpreter();
    let (to_worker, commands) = mpsc::channel::<bool>();
    let (done, answers) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        for in_sub in commands {
            if in_sub {
                let token = enter(interp);
                run_held("x = 1");
                ok(pyb_gil_release(token));
            } else {
                run("y = 2");
            }
            done.send(()).unwrap();
        }
    });
    within(LIMIT, "a state freed by a destroy", move || {
        to_worker.send(true).unwrap();
        answers.recv().unwrap();
        let before = stats().thread_states_held;
        ok(pyb_interpreter_destroy(interp, 10_000));
        assert_eq!(
            stats().thread_states_held,
            before + 1,
            "held by the destroy"
        );
        to_worker.send(false).unwrap();
        answers.recv().unwrap();
        assert_eq!(
            stats().thread_states_held,
            before,
            "freed once the thread attached another"
        );
        drop(to_worker);
        worker.join().unwrap();
    });
    ok(shutdown(10_000, 0));
}

/// A pipe whose read end Python code in an interpreter blocks on at its end
/// (an atexit function), until the test writes to it: an end that takes as
/// long as the test says, without timing anything.
struct Gate {
    read: i32,
    write: i32,
}

impl Gate {
    fn new() -> Gate {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        Gate {
            read: fds[0],
            write: fds[1],
        }
    }

    /// Code that makes the interpreter's end wait for one `open`.
    fn atexit_code(&self) -> String {
        format!(
            "import atexit, os\natexit.register(os.read, {}, 1)\n",
            self.read
        )
    }

    /// Lets the end of `interp` go on and waits until it has ended: a destroy
    /// that waits sees it go, or finds it gone.
    fn open_and_wait_for_the_end(&self, interp: pyb_interpreter) {
        self.open(1);
        let status = pyb_interpreter_destroy(interp, PYB_TIMEOUT_INFINITE);
        assert!(
            status == PYB_OK || status == PYB_E_BAD_HANDLE,
            "{}: {}",
            name(status),
            last_error()
        );
    }

    /// Lets `count` waiting ends go on.
    fn open(&self, count: usize) {
        let bytes = vec![b'x'; count];
        assert_eq!(
            unsafe { libc::write(self.write, bytes.as_ptr().cast(), count) },
            count as isize
        );
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// Asserts that `destroy` returns PYB_E_SHUTDOWN_COMMITTED near its deadline
/// (the end began and goes on) and returns its message.
fn assert_left_ending(what: &str, timeout_ms: u32, destroy: impl FnOnce(u32) -> pyb_status) {
    let started = Instant::now();
    expect(destroy(timeout_ms), PYB_E_SHUTDOWN_COMMITTED);
    let waited = elapsed_ms(started);
    assert!(
        (timeout_ms as u128..timeout_ms as u128 + 2_000).contains(&waited),
        "{what}: waited {waited} ms for a {timeout_ms} ms deadline"
    );
    let message = last_error();
    assert!(
        message.contains("carries on") && message.contains("atexit"),
        "{what}: {message}"
    );
}

#[test]
fn a_destroy_whose_deadline_passes_while_the_interpreter_ends_returns_and_the_end_carries_on() {
    within(LIMIT, "a destroy left ending", || {
        initialize();
        let gate = Gate::new();
        for interp in [new_interpreter(), shared_gil_interpreter()] {
            inside(interp, || exec(&gate.atexit_code()));
            assert_left_ending("destroy", 100, |ms| pyb_interpreter_destroy(interp, ms));
            // Past its point of no return: closed to everyone, for good.
            expect(try_enter(interp), PYB_E_SHUTTING_DOWN);
            assert_left_ending("a second destroy", 50, |ms| {
                pyb_interpreter_destroy(interp, ms)
            });
            // The engine's shutdown will not finalize under an ending
            // interpreter: it times out, called off, the engine unchanged.
            expect(shutdown(200, 0), PYB_E_TIMEOUT);
            assert!(
                last_error().contains(&format!("sub-interpreter {interp} is still ending")),
                "{}",
                last_error()
            );
            assert_eq!(eval_int("6 * 7"), 42);
            gate.open_and_wait_for_the_end(interp);
            expect(pyb_interpreter_destroy(interp, 0), PYB_E_BAD_HANDLE);
            expect(try_enter(interp), PYB_E_BAD_HANDLE);
        }
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn a_pool_destroy_whose_deadline_passes_while_its_interpreters_end_carries_on() {
    within(LIMIT, "a pool destroy left ending", || {
        initialize();
        let gate = Gate::new();
        let mut pool = 0;
        let setup = c(&gate.atexit_code());
        let status = unsafe { pyb_pool_new(2, setup.as_ptr(), &mut pool) };
        if !own_gil_supported() {
            expect(status, PYB_E_UNSUPPORTED);
            return;
        }
        ok(status);
        assert_left_ending("pool destroy", 100, |ms| pyb_pool_destroy(pool, ms));
        let mut lent = 0;
        expect(
            unsafe { pyb_pool_borrow(pool, 0, &mut lent) },
            PYB_E_SHUTTING_DOWN,
        );
        assert_left_ending("a second pool destroy", 50, |ms| pyb_pool_destroy(pool, ms));
        gate.open(2);
        ok(pyb_pool_destroy(pool, PYB_TIMEOUT_INFINITE));
        expect(pyb_pool_destroy(pool, 0), PYB_E_BAD_HANDLE);
        ok(shutdown(10_000, 0));
    });
}

/// Issue 21: past its point of no return a shutdown gives the sub-interpreters
/// until its deadline, all of them together. One still ending then (its
/// atexit function blocked in native code) can neither be waited for nor
/// finalized under (CPython aborts the process when `Py_FinalizeEx` finds a
/// sub-interpreter alive), so the shutdown is abandoned: the caller hears
/// `PYB_E_SHUTDOWN_COMMITTED` at its deadline, the engine gives up by then too,
/// Python stays initialized, every later shutdown says so at once, and a
/// restart is refused with `PYB_E_SHUTTING_DOWN` instead of crashing.
#[test]
fn a_sub_interpreter_still_ending_at_the_shutdown_deadline_abandons_the_engine() {
    within(
        LIMIT,
        "an engine end with a sub-interpreter still ending",
        || {
            /// How far past the deadline the call and the engine may be on a busy
            /// machine: their wake-ups, and one keeper answer (200 ms).
            const SLACK_MS: u128 = 1_000;
            initialize();
            let gate = Gate::new();
            let interp = new_interpreter();
            inside(interp, || exec(&gate.atexit_code()));
            const DEADLINE_MS: u32 = 1_000;
            let started = Instant::now();
            expect(shutdown(DEADLINE_MS, 0), PYB_E_SHUTDOWN_COMMITTED);
            let waited = elapsed_ms(started);
            assert!(
                (u128::from(DEADLINE_MS)..u128::from(DEADLINE_MS) + SLACK_MS).contains(&waited),
                "waited {waited} ms for a {DEADLINE_MS} ms deadline"
            );
            // A start waits for the shutdown in progress, which the engine gives
            // up at the same deadline, and is refused.
            expect(
                unsafe { pybridge::engine::pyb_engine_initialize(std::ptr::null()) },
                PYB_E_SHUTTING_DOWN,
            );
            let gave_up = elapsed_ms(started);
            assert!(
                gave_up < u128::from(DEADLINE_MS) + SLACK_MS,
                "the engine gave up after {gave_up} ms"
            );
            let refusal = last_error();
            assert!(
                refusal.contains("no engine can start again")
                    && refusal.contains(&format!("sub-interpreter {interp} was still ending")),
                "{refusal}"
            );
            // Every later shutdown returns the same at once, whatever its timeout.
            for timeout_ms in [0, PYB_TIMEOUT_INFINITE] {
                let asked = Instant::now();
                expect(shutdown(timeout_ms, 0), PYB_E_SHUTDOWN_COMMITTED);
                assert!(elapsed_ms(asked) < SLACK_MS, "{} ms", elapsed_ms(asked));
                let message = last_error();
                assert!(
                    message.contains("shutdown abandoned")
                        && message.contains("Python stays initialized"),
                    "{message}"
                );
            }
            assert_eq!(
                pybridge::engine::pyb_engine_state(),
                pybridge::engine::PYB_STATE_SHUTTING_DOWN
            );
            let mut token = 0;
            expect(unsafe { pyb_gil_acquire(&mut token) }, PYB_E_SHUTTING_DOWN);
            // The interpreter's end finishes once its atexit function returns;
            // the engine stays as it was, and the process lives on.
            gate.open_and_wait_for_the_end(interp);
            expect(shutdown(0, 0), PYB_E_SHUTDOWN_COMMITTED);
            expect(
                unsafe { pybridge::engine::pyb_engine_initialize(std::ptr::null()) },
                PYB_E_SHUTTING_DOWN,
            );
        },
    );
}

/// Issue 21, the other way a sub-interpreter outlives a shutdown's deadline: an
/// interrupting shutdown commits by interrupting a Python thread in one, which
/// sits in native code (`os.read`) and cannot stop. Nothing was finalized, so
/// the shutdown carries on: the caller hears `PYB_E_SHUTDOWN_COMMITTED` at
/// its deadline, a restart meanwhile `PYB_E_TIMEOUT` within
/// `previous_threads_timeout_ms` (nothing started), and once the thread
/// leaves native code it takes its interrupt, the shutdown ends cleanly and a
/// restart works.
#[test]
fn a_sub_interpreter_thread_in_native_code_keeps_a_committed_shutdown_going_and_a_restart_waits() {
    within(LIMIT, "a committed shutdown held by native code", || {
        const SLACK_MS: u128 = 1_000;
        initialize();
        let gate = Gate::new();
        let interp = new_interpreter();
        let native_id = inside(interp, || {
            exec(&format!(
                "import os, threading\n\
                 def wait_for_gate():\n    os.read({}, 1)\n\
                 worker = threading.Thread(target=wait_for_gate, name='native-waiter')\n\
                 worker.start()",
                gate.read
            ));
            eval_int("worker.native_id")
        });
        // In the read system call (number 0 on x86-64), where no interrupt lands.
        wait_until(LIMIT / 2, "the worker blocking in read", || {
            std::fs::read_to_string(format!("/proc/self/task/{native_id}/syscall"))
                .is_ok_and(|call| call.starts_with("0 "))
        });
        const DEADLINE_MS: u32 = 1_000;
        let started = Instant::now();
        expect(
            shutdown(DEADLINE_MS, PYB_SHUTDOWN_INTERRUPT),
            PYB_E_SHUTDOWN_COMMITTED,
        );
        let waited = elapsed_ms(started);
        assert!(
            (u128::from(DEADLINE_MS)..u128::from(DEADLINE_MS) + SLACK_MS).contains(&waited),
            "waited {waited} ms"
        );
        assert!(last_error().contains("'native-waiter'"), "{}", last_error());
        let mut config = unsafe { std::mem::zeroed() };
        ok(unsafe { pybridge::config::pyb_config_default(&mut config) });
        config.previous_threads_timeout_ms = 100;
        expect(
            unsafe { pybridge::engine::pyb_engine_initialize(&config) },
            PYB_E_TIMEOUT,
        );
        assert!(
            last_error().contains("shutdown was still under way"),
            "{}",
            last_error()
        );
        assert_eq!(
            pybridge::engine::pyb_engine_state(),
            pybridge::engine::PYB_STATE_SHUTTING_DOWN
        );
        gate.open(1);
        let status = shutdown(PYB_TIMEOUT_INFINITE, 0);
        assert!(
            status == PYB_OK || status == PYB_E_NOT_INITIALIZED,
            "{}: {}",
            name(status),
            last_error()
        );
        assert_eq!(stats().interpreters_finalized, 1);
        initialize();
        assert_eq!(eval_int("6 * 7"), 42);
        ok(shutdown(10_000, 0));
    });
}

/// Issue 21: the sub-interpreters' deadline is the callers', but never less
/// than one keeper answer: here an interrupting shutdown commits on a
/// main-interpreter thread that catches its interrupt and waits for the test,
/// so the caller's deadline has long passed (and no call waits any more) when
/// the engine gets to the sub-interpreters. An idle one still ends, and the
/// engine finalizes instead of giving up.
#[test]
fn a_committed_shutdown_that_outlives_its_deadline_still_ends_idle_sub_interpreters() {
    within(LIMIT, "idle sub-interpreters after the deadline", || {
        initialize();
        let gate = Gate::new();
        let interp = new_interpreter();
        assert_eq!(inside(interp, || eval_int("6 * 7")), 42);
        run(&format!(
            "import os, threading, time\n\
             def stubborn():\n    \
                 try:\n        while True:\n            time.sleep(0.001)\n    \
                 except SystemExit:\n        os.read({}, 1)\n\
             worker = threading.Thread(target=stubborn, name='stubborn', daemon=False)\n\
             worker.start()",
            gate.read
        ));
        expect(
            shutdown(300, PYB_SHUTDOWN_INTERRUPT),
            PYB_E_SHUTDOWN_COMMITTED,
        );
        assert!(last_error().contains("'stubborn'"), "{}", last_error());
        gate.open(1);
        wait_until(LIMIT / 2, "the engine's end", || {
            pybridge::engine::pyb_engine_state() == pybridge::engine::PYB_STATE_UNINITIALIZED
        });
        assert_eq!(stats().interpreters_finalized, 1);
        expect(try_enter(interp), PYB_E_NOT_INITIALIZED);
        initialize();
        expect(try_enter(interp), PYB_E_BAD_HANDLE);
        ok(shutdown(10_000, 0));
    });
}
