//! Interpreters that Python code makes itself (PEP 734, CPython 3.14+):
//! `concurrent.interpreters` and `InterpreterPoolExecutor` used through
//! pybridge from several host threads, beside pybridge's own pools, and an
//! engine shutdown while such interpreters are alive and busy: it ends within
//! its deadline or returns `PYB_E_TIMEOUT` with nothing changed, and a
//! restart works after it. On CPython before 3.14 (no `concurrent.interpreters`)
//! each test prints why it is skipped.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pybridge::engine::*;
use pybridge::interpreter::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(90);

/// How long past its deadline a shutdown may return on a loaded machine
/// (as in tests/shutdown.rs).
const SLACK_MS: u128 = 250;

/// Starts the engine; false (with the reason printed) where the Python has no
/// `concurrent.interpreters`.
fn start_with_pep734() -> bool {
    initialize();
    if eval_bool("__import__('sys').version_info >= (3, 14)") {
        return true;
    }
    println!(
        "skipped: CPython {} has no concurrent.interpreters (PEP 734 came with 3.14)",
        eval_text("__import__('platform').python_version()")
    );
    ok(shutdown(PYB_TIMEOUT_INFINITE, 0));
    false
}

/// Runs `body` under the deadline with the engine started, unless the Python
/// has no `concurrent.interpreters`.
fn scenario(what: &str, body: impl FnOnce() + Send + 'static) {
    within(LIMIT, what, move || {
        if start_with_pep734() {
            body();
        }
    });
}

/// Shuts down with `timeout_ms` and checks the status and that it returned
/// within the deadline (plus slack); returns the message.
#[track_caller]
fn shutdown_expecting(timeout_ms: u32, flags: u32, expected: pyb_status) -> String {
    let start = Instant::now();
    let status = shutdown(timeout_ms, flags);
    let message = last_error();
    let took = elapsed_ms(start);
    expect(status, expected);
    assert!(
        took <= u128::from(timeout_ms) + SLACK_MS,
        "shutdown({timeout_ms}) took {took} ms"
    );
    message
}

/// A shutdown called off at its deadline left the engine as it was: running,
/// no exception pending, Python-made interpreters still usable.
#[track_caller]
fn assert_unchanged() {
    assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
    exec(
        "from concurrent import interpreters\n\
         probe = interpreters.create()\n\
         probe.exec('x = 6 * 7')\n\
         probe.close()",
    );
}

/// After a clean shutdown: a fresh interpreter whose Python code can make
/// interpreters again. On a new thread: on 3.15 a thread that had a state in
/// the previous interpreter hangs in its next acquire (issue 20's stale thread
/// state, fixed in src/python/thread_states.rs, not here).
fn restart_and_use() {
    spawn("after-restart", restart_and_use_here).join().unwrap();
}

fn restart_and_use_here() {
    initialize();
    exec(
        "from concurrent import interpreters\n\
         again = interpreters.create()\n\
         again.exec('import sys; n = sys.version_info.major')\n\
         again.close()",
    );
    assert_eq!(
        eval_int("len(__import__('concurrent.interpreters').interpreters.list_all())"),
        1
    );
    ok(shutdown(10_000, 0));
}

/// Defines `started` and `stop` (cross-interpreter queues) and `busy`, an
/// interpreter whose `__main__` has them.
const SETUP_BUSY: &str = "\
import threading, time
from concurrent import interpreters
started = interpreters.create_queue()
stop = interpreters.create_queue()
busy = interpreters.create()
busy.prepare_main(started=started, stop=stop)
";

/// Code for `busy`: says it started, then loops (sleeping) until told to stop.
const LOOP_UNTIL_STOPPED: &str =
    "import time\nstarted.put(1)\nwhile stop.empty():\n    time.sleep(0.01)\n";

/// Waits (in Python, up to 30 s) until `busy` said it started.
fn wait_started() {
    exec("started.get(timeout=30)");
}

#[test]
fn python_made_interpreters_work_from_several_host_threads() {
    scenario("Python-made interpreters from host threads", || {
        exec(
            "from concurrent import interpreters\n\
             got = []\n\
             def work(n, round):\n\
             \x20   results = interpreters.create_queue()\n\
             \x20   interp = interpreters.create()\n\
             \x20   interp.prepare_main(results=results, n=n, round=round)\n\
             \x20   interp.exec('results.put(n * 100 + round)')\n\
             \x20   assert interp.call(sum, [n, round, 1]) == n + round + 1\n\
             \x20   thread = interp.call_in_thread(pow, 2, 10)\n\
             \x20   thread.join()\n\
             \x20   got.append(results.get(timeout=30))\n\
             \x20   interp.close()",
        );
        let workers: Vec<_> = (0..4)
            .map(|n| {
                spawn(&format!("host-{n}"), move || {
                    for round in 0..3 {
                        exec(&format!("work({n}, {round})"));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let expected: i64 = (0..4)
            .flat_map(|n| (0..3).map(move |round| n * 100 + round))
            .sum();
        // Each item was put inside its interpreter and taken in the main one.
        assert_eq!(eval_int("len(got)"), 12);
        assert_eq!(eval_int("sum(got)"), expected);
        // An executor from two host threads at once.
        exec(
            "from concurrent.futures import InterpreterPoolExecutor\n\
             pool = InterpreterPoolExecutor(max_workers=2)",
        );
        let submitters: Vec<_> = (0..2)
            .map(|n| {
                spawn(&format!("submitter-{n}"), move || {
                    eval_int(&format!("sum(pool.map(pow, [{n} + 2] * 20, range(20)))"))
                })
            })
            .collect();
        let sums: Vec<i64> = submitters.into_iter().map(|t| t.join().unwrap()).collect();
        let powers = |base: i64| -> i64 { (0..20).map(|e| base.pow(e)).sum() };
        assert_eq!(sums, vec![powers(2), powers(3)]);
        exec("pool.shutdown(wait=True)");
        // Only the main interpreter is left.
        assert_eq!(
            eval_int("len(interpreters.list_all())"),
            1,
            "interpreters left behind"
        );
        ok(shutdown(10_000, 0));
        restart_and_use();
    });
}

#[test]
fn an_idle_python_made_interpreter_does_not_block_a_shutdown() {
    scenario("shutdown beside an idle interpreter", || {
        // Never closed: CPython ends it in Py_FinalizeEx (with a RuntimeWarning).
        exec(
            "from concurrent import interpreters\n\
             idle = interpreters.create()\n\
             idle.exec('import threading; data = list(range(1000))')",
        );
        shutdown_expecting(10_000, 0, PYB_OK);
        restart_and_use();
    });
}

#[test]
fn a_python_made_interpreter_running_code_blocks_a_shutdown_until_its_deadline() {
    scenario("shutdown beside a busy interpreter", || {
        // A daemon thread (host code starts daemon threads) runs a loop inside
        // the interpreter: the old engine went past its point of no return
        // and had Py_FinalizeEx end the interpreter under the loop.
        exec(SETUP_BUSY);
        exec(&format!(
            "runner = threading.Thread(target=busy.exec, args=({LOOP_UNTIL_STOPPED:?},))\n\
             assert runner.daemon\n\
             runner.start()"
        ));
        wait_started();
        for flags in [0, PYB_SHUTDOWN_INTERRUPT] {
            let message = shutdown_expecting(300, flags, PYB_E_TIMEOUT);
            assert!(
                message.contains("made by Python code") && message.contains("is running code"),
                "{message}"
            );
            assert_unchanged();
            assert!(eval_bool("runner.is_alive() and busy.is_running()"));
        }
        exec("stop.put(1)\nrunner.join(30)\nassert not runner.is_alive()");
        shutdown_expecting(10_000, 0, PYB_OK);
        restart_and_use();
    });
}

#[test]
fn an_interrupting_shutdown_never_commits_while_a_python_made_interpreter_runs() {
    scenario("interrupting shutdown beside a busy interpreter", || {
        // A non-daemon thread inside the interpreter: the old engine raised
        // SystemExit in its main-interpreter state (it fires only when the
        // thread comes back, which it never does) and so committed a
        // shutdown that could not end: PYB_E_SHUTDOWN_COMMITTED.
        exec(SETUP_BUSY);
        exec(&format!(
            "runner = threading.Thread(target=busy.exec, args=({LOOP_UNTIL_STOPPED:?},), daemon=False)\n\
             runner.start()"
        ));
        wait_started();
        let message = shutdown_expecting(400, PYB_SHUTDOWN_INTERRUPT, PYB_E_TIMEOUT);
        assert!(message.contains("called off"), "{message}");
        assert_unchanged();
        exec("stop.put(1)\nrunner.join(30)\nassert not runner.is_alive()");
        shutdown_expecting(10_000, PYB_SHUTDOWN_INTERRUPT, PYB_OK);
        restart_and_use();
    });
}

#[test]
fn a_thread_inside_a_python_made_interpreter_delays_a_committed_shutdown() {
    scenario("shutdown beside a thread inside an interpreter", || {
        // A thread started inside a Python-made interpreter is invisible
        // from outside it (pybridge never enters such an interpreter), and
        // Py_FinalizeEx waits for it (3.14.10, 3.15.2): the shutdown passes
        // its point of no return, returns PYB_E_SHUTDOWN_COMMITTED at its
        // deadline, and ends when the thread does; never an abort.
        exec(SETUP_BUSY);
        let inner = "import threading, time\n\
                     def inner():\n\
                     \x20   started.put(1)\n\
                     \x20   time.sleep(1.5)\n\
                     threading.Thread(target=inner, name='inner').start()\n";
        exec(&format!("busy.exec({inner:?})"));
        wait_started();
        assert!(!eval_bool("busy.is_running()"));
        let message = shutdown_expecting(300, 0, PYB_E_SHUTDOWN_COMMITTED);
        assert!(message.contains("Py_FinalizeEx is running"), "{message}");
        shutdown_expecting(30_000, 0, PYB_OK);
        restart_and_use();
    });
}

#[test]
fn an_executor_with_pending_work_blocks_a_shutdown_until_its_deadline() {
    scenario("shutdown beside a busy executor", || {
        // Workers started from a host thread are daemons, so the old engine
        // committed, and Py_FinalizeEx waited for every queued item.
        exec(
            "import time\n\
             from concurrent.futures import InterpreterPoolExecutor\n\
             executor = InterpreterPoolExecutor(max_workers=1)\n\
             futures = [executor.submit(time.sleep, 0.5) for _ in range(20)]\n\
             while not futures[0].running(): time.sleep(0.001)",
        );
        for flags in [0, PYB_SHUTDOWN_INTERRUPT] {
            let message = shutdown_expecting(300, flags, PYB_E_TIMEOUT);
            assert!(
                message.contains("made by Python code")
                    || message.contains("InterpreterPoolExecutor has"),
                "{message}"
            );
            assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
        }
        assert!(eval_int("sum(f.done() for f in futures)") < 20);
        exec("executor.shutdown(wait=False, cancel_futures=True)");
        // At most the running item (0.5 s) is left.
        shutdown_expecting(10_000, 0, PYB_OK);
        restart_and_use();
    });
}

#[test]
fn pybridge_pools_and_python_made_interpreters_coexist() {
    scenario("pools beside Python-made interpreters", || {
        let setup = c("import math\nsquares = [i * i for i in range(100)]");
        let mut pool = 0;
        ok(unsafe { pyb_pool_new(2, setup.as_ptr(), &mut pool) });
        exec(
            "from concurrent import interpreters\n\
             from concurrent.futures import InterpreterPoolExecutor\n\
             mine = [interpreters.create(), interpreters.create()]\n\
             executor = InterpreterPoolExecutor(max_workers=2)",
        );
        // pybridge's interpreters are listed, but as made through the C API.
        assert_eq!(eval_int("len(interpreters.list_all())"), 1 + 2 + 2);
        let pool_users: Vec<_> = (0..2)
            .map(|n| {
                spawn(&format!("pool-user-{n}"), move || {
                    let mut total = 0;
                    for _ in 0..50 {
                        let mut interp = 0;
                        ok(unsafe { pyb_pool_borrow(pool, 30_000, &mut interp) });
                        let mut token = 0;
                        ok(unsafe { pyb_interpreter_enter(interp, &mut token) });
                        total += eval_i64_held("sum(squares)");
                        ok(pybridge::gil::pyb_gil_release(token));
                        ok(pyb_pool_return(pool, interp));
                    }
                    total
                })
            })
            .collect();
        let python_users: Vec<_> = (0..2)
            .map(|n| {
                spawn(&format!("python-user-{n}"), move || {
                    let mut total = 0;
                    for round in 0..20 {
                        total += eval_int(&format!(
                            "mine[{n}].call(pow, {n} + 2, {round} % 5) + sum(executor.map(abs, range(-10, 0)))"
                        ));
                    }
                    total
                })
            })
            .collect();
        let squares: i64 = (0..100).map(|i| i * i).sum();
        for user in pool_users {
            assert_eq!(user.join().unwrap(), 50 * squares);
        }
        let expected = |n: i64| -> i64 { (0..20).map(|r| (n + 2).pow(r % 5) + 55).sum() };
        let totals: Vec<i64> = python_users
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(totals, vec![expected(0), expected(1)]);
        exec("executor.shutdown(wait=True)");
        // The pool and `mine` are left alive: the shutdown ends them all.
        shutdown_expecting(10_000, 0, PYB_OK);
        restart_and_use();
    });
}
