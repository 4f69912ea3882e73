//! Awaiting Python from the host: results, exceptions, cancellation from
//! another thread, 1,000 concurrent sleeps, and shutdown with pending tasks,
//! each callback counted exactly.

mod common;

use std::ffi::c_void;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pybridge::status::*;
use pybridge::task::*;
use pybridge::value::*;

const LIMIT: Duration = Duration::from_secs(60);

/// What one callback saw.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    task: pyb_task,
    status: &'static str,
    /// The result as Python's repr for plain values, "object" for a handle.
    result: String,
    /// The Python exception type the thread's last error names, if any.
    python_type: Option<String>,
    thread: Option<String>,
}

static OUTCOMES: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
static ARRIVED: Condvar = Condvar::new();

unsafe extern "C" fn record(
    task: pyb_task,
    status: pyb_status,
    result: *const pyb_value,
    user_data: *mut c_void,
) {
    assert_eq!(user_data as usize, 0xc0de);
    let value = unsafe { &*result };
    let result = match value.tag {
        PYB_VALUE_OBJECT => {
            ok(pybridge::object::pyb_object_release(
                value.as_object().unwrap(),
            ));
            "object".to_string()
        }
        _ => format!("{value:?}"),
    };
    let outcome = Outcome {
        task,
        status: name(status),
        result,
        python_type: (status == PYB_E_PYTHON)
            .then(|| python_parts().0)
            .filter(|type_name| !type_name.is_empty()),
        thread: std::thread::current().name().map(str::to_string),
    };
    OUTCOMES.lock().unwrap().push(outcome);
    ARRIVED.notify_all();
}

fn submit(code: &str) -> Result<pyb_task, pyb_status> {
    let awaitable = object_of(code);
    let mut task = 0;
    let status =
        unsafe { pyb_task_submit(awaitable, Some(record), 0xc0de as *mut c_void, &mut task) };
    release(awaitable);
    match status {
        PYB_OK => Ok(task),
        status => Err(status),
    }
}

#[track_caller]
fn submitted(code: &str) -> pyb_task {
    submit(code).unwrap_or_else(|status| panic!("submit {code}: {} {}", name(status), last_error()))
}

/// Waits until `count` callbacks arrived (or `limit` passed) and returns them all.
fn wait_for(count: usize, limit: Duration) -> Vec<Outcome> {
    let deadline = Instant::now() + limit;
    let mut outcomes = OUTCOMES.lock().unwrap();
    while outcomes.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{} of {count} callbacks after {limit:?}: {outcomes:?}",
            outcomes.len()
        );
        outcomes = ARRIVED.wait_timeout(outcomes, left).unwrap().0;
    }
    outcomes.clone()
}

fn of(outcomes: &[Outcome], task: pyb_task) -> Outcome {
    let found: Vec<_> = outcomes
        .iter()
        .filter(|outcome| outcome.task == task)
        .collect();
    assert_eq!(found.len(), 1, "task {task:#x}: {found:?}");
    found[0].clone()
}

const SETUP: &str = "
import asyncio
async def add(a, b):
    await asyncio.sleep(0.01)
    return a + b
async def fail():
    await asyncio.sleep(0)
    raise KeyError('missing')
async def forever():
    await asyncio.sleep(3600)
async def stubborn():
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
async def make_list():
    return [1, 2]
";

#[test]
fn results_and_exceptions_reach_the_callback_on_the_loop_thread() {
    within(LIMIT, "results", || {
        initialize();
        exec(SETUP);
        let sum = submitted("add(2, 3)");
        let failed = submitted("fail()");
        let listed = submitted("make_list()");
        let future = submitted("add(40, 2)");
        let outcomes = wait_for(4, Duration::from_secs(10));
        assert_eq!(outcomes.len(), 4);
        let got = of(&outcomes, sum);
        assert_eq!((got.status, got.result.as_str()), ("PYB_OK", "Int(5)"));
        assert_eq!(
            got.thread.as_deref(),
            None,
            "a Python thread, not a Rust one"
        );
        let got = of(&outcomes, failed);
        assert_eq!(got.status, "PYB_E_PYTHON");
        assert_eq!(got.python_type.as_deref(), Some("KeyError"));
        assert_eq!(of(&outcomes, listed).result, "object");
        assert_eq!(of(&outcomes, future).result, "Int(42)");
        // The loop runs on a thread pybridge owns, named for it.
        assert_eq!(
            eval_text(
                "[t.name for t in __import__('threading').enumerate() if t.name.startswith('pybridge')][0]"
            ),
            "pybridge-asyncio"
        );
    });
}

#[test]
fn bad_submissions_get_exact_statuses_and_no_callback() {
    within(LIMIT, "bad submissions", || {
        initialize();
        exec(SETUP);
        assert_eq!(submit("42"), Err(PYB_E_WRONG_TYPE));
        assert!(
            last_error().contains("a int is not awaitable"),
            "{}",
            last_error()
        );
        assert_eq!(
            submit("add"),
            Err(PYB_E_WRONG_TYPE),
            "the function, not a call of it"
        );
        let coroutine = object_of("add(1, 2)");
        let mut task = 0;
        expect(
            unsafe { pyb_task_submit(coroutine, None, std::ptr::null_mut(), &mut task) },
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe {
                pyb_task_submit(
                    coroutine,
                    Some(record),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            },
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe { pyb_task_submit(0xdead_0001, Some(record), std::ptr::null_mut(), &mut task) },
            PYB_E_BAD_HANDLE,
        );
        expect(pyb_task_cancel(12345), PYB_E_BAD_HANDLE);
        exec("import gc\ncoro = None");
        release(coroutine);
        // Nothing was called back, and the engine still works.
        let fine = submitted("add(1, 1)");
        let outcomes = wait_for(1, Duration::from_secs(10));
        assert_eq!(outcomes.len(), 1);
        assert_eq!(of(&outcomes, fine).result, "Int(2)");
    });
}

#[test]
fn a_task_cancelled_from_another_thread_reports_cancelled_once() {
    within(LIMIT, "cancel", || {
        initialize();
        exec(SETUP);
        exec(
            "import threading\nrunning = threading.Event()\n\
             async def flagged():\n    running.set()\n    await asyncio.sleep(3600)\n",
        );
        let task = submitted("flagged()");
        // Cancelled once it runs, at its `await`.
        exec("assert running.wait(10)");
        spawn("canceller", move || ok(pyb_task_cancel(task)))
            .join()
            .unwrap();
        let outcomes = wait_for(1, Duration::from_secs(10));
        assert_eq!(of(&outcomes, task).status, "PYB_E_CANCELLED");
        // Cancelling a finished task is harmless and calls nothing back: by
        // the end of the engine every callback there was to make was made.
        ok(pyb_task_cancel(task));
        ok(shutdown(10_000, 0));
        assert_eq!(OUTCOMES.lock().unwrap().len(), 1);
    });
}

#[test]
fn a_thousand_concurrent_sleeps_overlap() {
    within(LIMIT, "1,000 sleeps", || {
        initialize();
        exec("import asyncio\nasync def nap(i):\n    await asyncio.sleep(0.1)\n    return i");
        // Warm the loop up (its thread starts on the first submission).
        submitted("nap(-1)");
        wait_for(1, Duration::from_secs(10));
        let started = Instant::now();
        let tasks: Vec<_> = (0..1000).map(|i| submitted(&format!("nap({i})"))).collect();
        let outcomes = wait_for(1001, Duration::from_secs(10));
        let elapsed = started.elapsed();
        for (i, task) in tasks.iter().enumerate() {
            assert_eq!(of(&outcomes, *task).result, format!("Int({i})"));
        }
        println!("1,000 concurrent asyncio.sleep(0.1) awaited in {elapsed:?}");
        // One after another they take 100 s; overlapped, 0.1-0.6 s even on a
        // busy machine. Not a performance figure (the benchmark has those).
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    });
}

#[test]
fn shutdown_cancels_pending_tasks_and_calls_each_back_once() {
    within(LIMIT, "shutdown with pending tasks", || {
        initialize();
        exec(SETUP);
        exec(
            "import threading\nstarted = threading.Semaphore(0)\n\
             async def counted(awaitable):\n    started.release()\n    await awaitable\n",
        );
        let tasks: Vec<_> = (0..10).map(|_| submitted("counted(forever())")).collect();
        let stubborn = submitted("counted(stubborn())");
        // All eleven are running (at their `await`).
        exec("for _ in range(11):\n    assert started.acquire(timeout=10)\n");
        // A shutdown that times out before its point of no return cancels nothing.
        let holder = acquire();
        let refused = spawn("shutdown", || shutdown(100, 0)).join().unwrap();
        assert_eq!(name(refused), "PYB_E_TIMEOUT");
        ok(pybridge::gil::pyb_gil_release(holder));
        // Nothing was cancelled: each callback below says PYB_E_SHUTTING_DOWN
        // (the engine's end), none PYB_E_CANCELLED.
        assert_eq!(OUTCOMES.lock().unwrap().len(), 0);

        let started = Instant::now();
        ok(shutdown(30_000, 0));
        let took = started.elapsed();
        let outcomes = wait_for(11, Duration::from_secs(1));
        assert_eq!(outcomes.len(), 11);
        for task in tasks.iter().chain([&stubborn]) {
            assert_eq!(of(&outcomes, *task).status, "PYB_E_SHUTTING_DOWN");
        }
        // The stubborn task kept the loop for its 5 s grace period, no longer.
        assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
        println!("shutdown with a task that swallows its cancellation took {took:?}");

        // A new engine has a new loop; the old tasks are unknown to it.
        initialize();
        expect(pyb_task_cancel(tasks[0]), PYB_E_BAD_HANDLE);
        exec(SETUP);
        let fresh = submitted("add(20, 22)");
        let outcomes = wait_for(12, Duration::from_secs(10));
        assert_eq!(of(&outcomes, fresh).result, "Int(42)");
    });
}

/// Names of the Python threads named for pybridge's event loop.
fn loop_threads() -> i64 {
    eval_int("sum(t.name == 'pybridge-asyncio' for t in __import__('threading').enumerate())")
}

#[test]
fn concurrent_first_submissions_start_one_loop_and_the_engine_restarts() {
    within(LIMIT, "concurrent first submissions", || {
        const THREADS: usize = 8;
        initialize();
        exec(SETUP);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let submitters: Vec<_> = (0..THREADS)
            .map(|i| {
                let barrier = barrier.clone();
                spawn(&format!("first-{i}"), move || {
                    barrier.wait();
                    submitted(&format!("add({i}, 100)"))
                })
            })
            .collect();
        let tasks: Vec<_> = submitters.into_iter().map(|t| t.join().unwrap()).collect();
        let outcomes = wait_for(THREADS, Duration::from_secs(10));
        assert_eq!(outcomes.len(), THREADS);
        for (i, task) in tasks.iter().enumerate() {
            assert_eq!(of(&outcomes, *task).result, format!("Int({})", i + 100));
        }
        assert_eq!(loop_threads(), 1, "one event loop per engine life");
        ok(shutdown(30_000, 0));
        // Every loop thread ended with the engine, so a new one starts.
        initialize();
        exec(SETUP);
        let again = submitted("add(1, 2)");
        let outcomes = wait_for(THREADS + 1, Duration::from_secs(10));
        assert_eq!(of(&outcomes, again).result, "Int(3)");
        assert_eq!(loop_threads(), 1);
        ok(shutdown(30_000, 0));
    });
}

/// A task that ends `run_forever` its own way gets its callback, and the loop
/// goes on serving later submissions.
fn loop_survives(code: &'static str, expected_status: &'static str, expected: &'static str) {
    within(LIMIT, code, move || {
        initialize();
        exec(SETUP);
        exec(&format!(
            "import asyncio, sys\nasync def ender():\n    await asyncio.sleep(0)\n    {code}\n    \
             await asyncio.sleep(0.01)\n    return 7"
        ));
        let ender = submitted("ender()");
        let outcomes = wait_for(1, Duration::from_secs(10));
        let got = of(&outcomes, ender);
        assert_eq!(got.status, expected_status, "{got:?}");
        match expected_status {
            "PYB_E_PYTHON" => assert_eq!(got.python_type.as_deref(), Some(expected)),
            _ => assert_eq!(got.result, expected),
        }
        let later = submitted("add(2, 3)");
        let waiting = submitted("forever()");
        let outcomes = wait_for(2, Duration::from_secs(10));
        assert_eq!(of(&outcomes, later).result, "Int(5)");
        ok(pyb_task_cancel(waiting));
        let outcomes = wait_for(3, Duration::from_secs(10));
        assert_eq!(of(&outcomes, waiting).status, "PYB_E_CANCELLED");
        assert_eq!(loop_threads(), 1);
        ok(shutdown(30_000, 0));
        assert_eq!(OUTCOMES.lock().unwrap().len(), 3);
        initialize();
    });
}

#[test]
fn a_task_calling_sys_exit_fails_alone_and_the_loop_goes_on() {
    loop_survives("sys.exit(3)", "PYB_E_PYTHON", "SystemExit");
}

#[test]
fn a_task_raising_keyboard_interrupt_fails_alone_and_the_loop_goes_on() {
    loop_survives(
        "raise KeyboardInterrupt",
        "PYB_E_PYTHON",
        "KeyboardInterrupt",
    );
}

#[test]
fn a_task_stopping_the_loop_does_not_stop_pybridges_loop() {
    loop_survives("asyncio.get_running_loop().stop()", "PYB_OK", "Int(7)");
}

/// How often each submission's callback ran, by its user data (a serial).
static CALLS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static COUNTED: Condvar = Condvar::new();

unsafe extern "C" fn count(
    _: pyb_task,
    _: pyb_status,
    result: *const pyb_value,
    user_data: *mut c_void,
) {
    let value = unsafe { &*result };
    if let Some(handle) = value.as_object() {
        ok(pybridge::object::pyb_object_release(handle));
    }
    let mut calls = CALLS.lock().unwrap();
    let serial = user_data as usize;
    if calls.len() <= serial {
        calls.resize(serial + 1, 0);
    }
    calls[serial] += 1;
    COUNTED.notify_all();
}

/// Submits `coroutine` (a handle, released here) with `count` as its callback
/// and `serial` as its user data.
fn submit_counted(coroutine: pybridge::object::pyb_object, serial: usize) -> pyb_status {
    let mut task = 0;
    let status =
        unsafe { pyb_task_submit(coroutine, Some(count), serial as *mut c_void, &mut task) };
    let _ = pybridge::object::pyb_object_release(coroutine);
    status
}

/// Host threads submit in a loop, each batch inside one GIL scope, while the
/// engine shuts down (interrupting or not), round after round. With SIGPIPE's
/// default action (as in a C host): pybridge's loop must never write into a
/// closing loop's self-pipe (exit 141 before). Every accepted submission is
/// called back exactly once, every refused one never (the interrupt landed
/// after the hand-over: an error, and the callback still ran).
#[test]
fn submissions_racing_shutdowns_are_called_back_exactly_once_and_never_kill_the_host() {
    // SAFETY: restores the default action Rust's runtime replaced.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    within(
        Duration::from_secs(240),
        "submissions racing shutdowns",
        || {
            const ROUNDS: usize = 30;
            const THREADS: usize = 4;
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut accepted_total = 0;
            let mut refused_total = 0;
            for round in 0..ROUNDS {
                initialize();
                exec("async def quick(i):\n    return i");
                // The loop runs before the race begins.
                let warm = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ok(submit_counted(object_of("quick(-1)"), warm));
                // Each submitter says when its first batch went through.
                let (started, first_batches) = std::sync::mpsc::channel();
                let submitters: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let next = next.clone();
                        let started = started.clone();
                        spawn(&format!("submitter-{t}"), move || {
                            let mut accepted = Vec::new();
                            let mut refused = Vec::new();
                            let mut first = true;
                            'batches: loop {
                                let mut gil = 0;
                                if unsafe { pybridge::gil::pyb_gil_acquire(&mut gil) } != PYB_OK {
                                    break;
                                }
                                for _ in 0..20 {
                                    let serial =
                                        next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    let code = c(&format!("quick({serial})"));
                                    let mut value = pyb_value::none();
                                    let status = unsafe {
                                        pybridge::call::pyb_eval(
                                            code.as_ptr(),
                                            c"<race>".as_ptr(),
                                            0,
                                            &mut value,
                                        )
                                    };
                                    if status != PYB_OK {
                                        let _ = pybridge::gil::pyb_gil_release(gil);
                                        break 'batches;
                                    }
                                    let status = submit_counted(value.as_object().unwrap(), serial);
                                    match status {
                                        PYB_OK => accepted.push(serial),
                                        _ => {
                                            refused.push(serial);
                                            let _ = pybridge::gil::pyb_gil_release(gil);
                                            break 'batches;
                                        }
                                    }
                                }
                                let _ = pybridge::gil::pyb_gil_release(gil);
                                if first {
                                    started.send(()).unwrap();
                                    first = false;
                                }
                            }
                            (accepted, refused)
                        })
                    })
                    .collect();
                for _ in 0..THREADS {
                    first_batches.recv().unwrap();
                }
                let flags = if round % 2 == 0 {
                    pybridge::engine::PYB_SHUTDOWN_INTERRUPT
                } else {
                    0
                };
                ok(shutdown(30_000, flags));
                let mut accepted = vec![warm];
                let mut refused = Vec::new();
                for submitter in submitters {
                    let (a, r) = submitter.join().unwrap();
                    accepted.extend(a);
                    refused.extend(r);
                }
                let calls = CALLS.lock().unwrap().clone();
                let calls_of = |serial: usize| calls.get(serial).copied().unwrap_or(0);
                for serial in &accepted {
                    assert_eq!(
                        calls_of(*serial),
                        1,
                        "round {round}: accepted submission {serial}"
                    );
                }
                for serial in &refused {
                    assert_eq!(
                        calls_of(*serial),
                        0,
                        "round {round}: refused submission {serial}"
                    );
                }
                eprintln!(
                    "round {round}: {} accepted, {} refused",
                    accepted.len(),
                    refused.len()
                );
                accepted_total += accepted.len();
                refused_total += refused.len();
            }
            println!(
                "{accepted_total} submissions accepted, {refused_total} refused, in {ROUNDS} rounds"
            );
        },
    );
}

#[test]
fn a_task_is_cancelled_from_inside_a_sub_interpreter_scope_and_not_submitted_there() {
    within(LIMIT, "cancel inside a sub-interpreter", || {
        initialize();
        exec(SETUP);
        let task = submitted("forever()");
        let coroutine = object_of("add(1, 2)");
        let interp = shared_gil_interpreter();
        spawn("inside", move || {
            let mut token = 0;
            ok(unsafe { pybridge::interpreter::pyb_interpreter_enter(interp, &mut token) });
            // Cancelling runs no Python: it works from any scope.
            ok(pyb_task_cancel(task));
            let mut refused = 0;
            expect(
                unsafe {
                    pyb_task_submit(coroutine, Some(record), 0xc0de as *mut c_void, &mut refused)
                },
                PYB_E_WRONG_INTERPRETER,
            );
            let own = object_of("__import__('asyncio').sleep(0)");
            expect(
                unsafe { pyb_task_submit(own, Some(record), 0xc0de as *mut c_void, &mut refused) },
                PYB_E_UNSUPPORTED,
            );
            release(own);
            ok(pybridge::gil::pyb_gil_release(token));
        })
        .join()
        .unwrap();
        release(coroutine);
        let outcomes = wait_for(1, Duration::from_secs(10));
        assert_eq!(outcomes.len(), 1);
        assert_eq!(of(&outcomes, task).status, "PYB_E_CANCELLED");
        ok(pybridge::interpreter::pyb_interpreter_destroy(
            interp, 10_000,
        ));
    });
}

/// The coroutine a callback submits during the engine's end, and what it heard.
static LATE_COROUTINE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LATE_STATUS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

unsafe extern "C" fn submit_again(
    task: pyb_task,
    status: pyb_status,
    result: *const pyb_value,
    _: *mut c_void,
) {
    let coroutine = LATE_COROUTINE.load(std::sync::atomic::Ordering::SeqCst);
    let mut late = 0;
    let again =
        unsafe { pyb_task_submit(coroutine, Some(record), 0xc0de as *mut c_void, &mut late) };
    LATE_STATUS.lock().unwrap().push(name(again));
    unsafe { record(task, status, result, 0xc0de as *mut c_void) };
}

#[test]
fn a_callback_submitting_during_the_engines_end_is_refused_and_starts_no_loop() {
    within(LIMIT, "submission during the engine's end", || {
        initialize();
        exec(SETUP);
        LATE_COROUTINE.store(object_of("add(1, 2)"), std::sync::atomic::Ordering::SeqCst);
        let waiting = object_of("forever()");
        let mut task = 0;
        ok(unsafe {
            pyb_task_submit(waiting, Some(submit_again), std::ptr::null_mut(), &mut task)
        });
        release(waiting);
        ok(shutdown(30_000, 0));
        let outcomes = wait_for(1, Duration::from_secs(1));
        assert_eq!(of(&outcomes, task).status, "PYB_E_SHUTTING_DOWN");
        assert_eq!(*LATE_STATUS.lock().unwrap(), ["PYB_E_SHUTTING_DOWN"]);
        // No loop thread outlived the engine: a new one starts at once.
        initialize();
        assert_eq!(
            OUTCOMES.lock().unwrap().len(),
            1,
            "the refused submission was never called back"
        );
        exec(SETUP);
        let fresh = submitted("add(20, 22)");
        assert_eq!(
            of(&wait_for(2, Duration::from_secs(10)), fresh).result,
            "Int(42)"
        );
    });
}

/// Host threads keep submitting while a task calls `sys.exit()`: before, that
/// ended the loop, whose `loop.close()` raced the submissions' writes into its
/// self-pipe (SIGPIPE with the default action, as in a C host) and refused
/// every later one. Now each submission is accepted and called back once.
#[test]
fn submissions_racing_a_task_that_exits_are_all_served() {
    // SAFETY: restores the default action Rust's runtime replaced.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    within(LIMIT, "submissions racing sys.exit()", || {
        const THREADS: usize = 4;
        const EACH: usize = 300;
        initialize();
        exec("import sys\nasync def quick(i):\n    return i\nasync def ender():\n    sys.exit(1)");
        ok(submit_counted(object_of("quick(-1)"), 0));
        let (started, first) = std::sync::mpsc::channel();
        let submitters: Vec<_> = (0..THREADS)
            .map(|t| {
                let started = started.clone();
                spawn(&format!("submitter-{t}"), move || {
                    for i in 0..EACH {
                        let serial = 1 + t * EACH + i;
                        let status = submit_counted(object_of(&format!("quick({serial})")), serial);
                        assert_eq!(
                            name(status),
                            "PYB_OK",
                            "submission {serial}: {}",
                            last_error()
                        );
                        if i == 0 {
                            started.send(()).unwrap();
                        }
                    }
                })
            })
            .collect();
        for _ in 0..THREADS {
            first.recv().unwrap();
        }
        let ender = submitted("ender()");
        for submitter in submitters {
            submitter.join().unwrap();
        }
        let outcomes = wait_for(1, Duration::from_secs(10));
        assert_eq!(
            of(&outcomes, ender).python_type.as_deref(),
            Some("SystemExit")
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut calls = CALLS.lock().unwrap();
        while !(calls.len() == 1 + THREADS * EACH && calls.iter().all(|&n| n == 1)) {
            assert!(calls.iter().all(|&n| n <= 1), "a callback ran twice");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "not every submission was called back: {calls:?}"
            );
            calls = COUNTED.wait_timeout(calls, left).unwrap().0;
        }
        drop(calls);
        ok(shutdown(30_000, 0));
    });
}

/// Found by tests/c/fuzz_api.c on 3.11: with pybridge's loop running in the
/// main interpreter, `asyncio.run()` in a shared-GIL sub-interpreter said
/// "cannot be called from a running event loop". 3.10's and 3.11's `_asyncio`
/// caches the running loop in a process-wide static keyed by thread-state id,
/// and those ids repeat across interpreters, so a sub-interpreter thread was
/// handed the main loop. Such interpreters get the pure-Python asyncio there.
#[test]
fn asyncio_runs_in_shared_gil_interpreters_while_the_loop_runs() {
    within(LIMIT, "asyncio in a shared-GIL interpreter", || {
        use pybridge::interpreter::*;
        initialize();
        exec(
            "import asyncio\nasync def spin():\n    while True:\n        await asyncio.sleep(0.0005)\n",
        );
        // Busy, so the loop thread keeps asking asyncio for its running loop.
        let forever = submitted("spin()");
        let interp = shared_gil_interpreter();
        // Each thread gets a new thread state (and id) in the interpreter.
        for round in 0..64 {
            let result = spawn(&format!("asyncio-{round}"), move || {
                let mut token = 0;
                ok(unsafe { pyb_interpreter_enter(interp, &mut token) });
                let code =
                    c("import asyncio\nfor _ in range(50):\n    asyncio.run(asyncio.sleep(0))\n");
                let status = unsafe { pybridge::call::pyb_run(code.as_ptr(), std::ptr::null(), 0) };
                let message = last_error();
                ok(pybridge::gil::pyb_gil_release(token));
                (status, message)
            })
            .join()
            .unwrap();
            assert_eq!(result.0, PYB_OK, "round {round}: {}", result.1);
        }
        ok(pyb_interpreter_destroy(interp, 10_000));
        ok(pyb_task_cancel(forever));
        ok(shutdown(10_000, 0));
    });
}

/// `pyb_task_check_wait` from one place, with the message when it refuses.
fn check_wait() -> (&'static str, String) {
    let status = pyb_task_check_wait();
    let message = if status == PYB_OK {
        String::new()
    } else {
        last_error()
    };
    (name(status), message)
}

static CALLBACK_CHECKS: Mutex<Vec<(&'static str, &'static str)>> = Mutex::new(Vec::new());

/// A task callback that asks whether it may wait, with the GIL it is called
/// with and inside an allow-threads region, then records the outcome.
unsafe extern "C" fn check_in_callback(
    task: pyb_task,
    status: pyb_status,
    result: *const pyb_value,
    user_data: *mut c_void,
) {
    let held = check_wait().0;
    let region = begin_allow();
    let released = check_wait().0;
    ok(pybridge::gil::pyb_end_allow_threads(region));
    CALLBACK_CHECKS.lock().unwrap().push((held, released));
    unsafe { record(task, status, result, user_data) };
}

#[test]
fn waiting_for_a_task_where_the_loop_cannot_finish_it_is_refused_at_once() {
    use pybridge::gil::*;
    use pybridge::host_function::*;
    within(LIMIT, "check wait", || {
        assert_eq!(check_wait().0, "PYB_OK", "no engine: nothing to wait for");
        initialize();
        assert_eq!(check_wait().0, "PYB_OK", "no GIL held");

        // Inside a GIL scope: refused, with the reason and what to do.
        let token = acquire();
        let (status, message) = check_wait();
        assert_eq!(status, "PYB_E_WOULD_DEADLOCK");
        assert!(
            message.contains("holds the GIL that pybridge's event loop needs to finish the task")
                && message.contains("pybridge::AllowThreads"),
            "{message}"
        );
        // Nested, and inside an allow-threads region in it.
        let nested = acquire();
        assert_eq!(check_wait().0, "PYB_E_WOULD_DEADLOCK");
        let region = begin_allow();
        assert_eq!(check_wait().0, "PYB_OK");
        ok(pyb_end_allow_threads(region));
        ok(pyb_gil_release(nested));
        ok(pyb_gil_release(token));
        assert_eq!(check_wait().0, "PYB_OK");

        // Host functions Python calls: with the GIL (from this thread and
        // from a Python thread), and with it released.
        register("host", "check_held", 0, |_, result| {
            *result = pyb_value::from_text(check_wait().0);
            PYB_OK
        });
        register("host", "check_released", PYB_FN_RELEASE_GIL, |_, result| {
            *result = pyb_value::from_text(check_wait().0);
            PYB_OK
        });
        exec(
            "import host, threading\n\
             seen = [host.check_held(), host.check_released()]\n\
             t = threading.Thread(target=lambda: seen.extend([host.check_held(), host.check_released()]))\n\
             t.start(); t.join()",
        );
        assert_eq!(
            eval_text("repr(seen)"),
            "['PYB_E_WOULD_DEADLOCK', 'PYB_OK', 'PYB_E_WOULD_DEADLOCK', 'PYB_OK']"
        );

        // A sub-interpreter that shares the main GIL.
        let shared = shared_gil_interpreter();
        let mut inside = 0;
        ok(unsafe { pybridge::interpreter::pyb_interpreter_enter(shared, &mut inside) });
        assert_eq!(check_wait().0, "PYB_E_WOULD_DEADLOCK");
        ok(pyb_gil_release(inside));
        ok(pybridge::interpreter::pyb_interpreter_destroy(
            shared, 10_000,
        ));

        // The loop's own thread, in a task callback: with the GIL and without.
        exec(SETUP);
        let awaitable = object_of("add(1, 2)");
        let mut task = 0;
        ok(unsafe {
            pyb_task_submit(
                awaitable,
                Some(check_in_callback),
                0xc0de as *mut c_void,
                &mut task,
            )
        });
        release(awaitable);
        let outcome = of(&wait_for(1, LIMIT), task);
        assert_eq!(outcome.status, "PYB_OK");
        assert_eq!(
            *CALLBACK_CHECKS.lock().unwrap(),
            [("PYB_E_WOULD_DEADLOCK", "PYB_E_WOULD_DEADLOCK")]
        );
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn a_thread_in_an_own_gil_interpreter_may_wait_for_a_task() {
    use pybridge::gil::*;
    use pybridge::interpreter::*;
    within(LIMIT, "own GIL", || {
        initialize();
        if !eval_bool("__import__('sys').version_info[:2] >= (3, 12)") {
            println!("skipped: own-GIL interpreters need CPython 3.12");
            return;
        }
        let mut config = pyb_interpreter_config {
            struct_size: 0,
            flags: 0,
        };
        ok(unsafe { pyb_interpreter_config_default(&mut config) });
        let mut interp = 0;
        ok(unsafe { pyb_interpreter_new(&config, &mut interp) });
        // Entered from a main GIL scope: the main GIL is given away inside.
        let main = acquire();
        let mut inside = 0;
        ok(unsafe { pyb_interpreter_enter(interp, &mut inside) });
        assert_eq!(check_wait().0, "PYB_OK");
        // Back in the main scope, the main GIL is held again.
        ok(pyb_gil_release(inside));
        assert_eq!(check_wait().0, "PYB_E_WOULD_DEADLOCK");
        ok(pyb_gil_release(main));
        ok(pyb_interpreter_destroy(interp, 10_000));
    });
}
