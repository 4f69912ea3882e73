//! `fork()` in a process whose engine runs: the child's copy of the engine is
//! closed for good (`PYB_E_FORKED`, at once, even when another thread held the
//! GIL at the fork), scopes the forking thread had open keep working, and
//! Python's own `os.fork()` and multiprocessing (fork, spawn, forkserver) from
//! host threads work.

mod common;
use common::*;

use std::time::{Duration, Instant};

use pybridge::call::pyb_run;
use pybridge::engine::*;
use pybridge::gil::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(60);
/// How long a child may take before it counts as hung and is killed.
const CHILD_LIMIT: Duration = Duration::from_secs(10);

/// Forks; the child runs `check` and exits with what it returns (0 = passed,
/// otherwise the number of the failed step). The parent waits for it under
/// `CHILD_LIMIT` and returns its exit code; a hung child is killed and fails the test.
fn in_child(check: impl FnOnce() -> i32 + std::panic::UnwindSafe) -> i32 {
    // SAFETY: the child calls only pybridge and libc, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // A panic must not end the child's only thread with exit status 0.
        let code = std::panic::catch_unwind(check).unwrap_or(99);
        // SAFETY: leaves the child without running the parent's atexit work.
        unsafe { libc::_exit(code) };
    }
    // A thread waits for the child (waitpid blocks) while this one waits for
    // that thread, under the deadline.
    let (exited_tx, exited_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: our own child.
        let done = unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = exited_tx.send((done, status));
    });
    match exited_rx.recv_timeout(CHILD_LIMIT) {
        Ok((done, status)) => {
            assert_eq!(done, pid, "waitpid failed");
            assert!(
                libc::WIFEXITED(status),
                "the child died of signal {}",
                libc::WTERMSIG(status)
            );
            libc::WEXITSTATUS(status)
        }
        Err(_) => {
            // SAFETY: our own child, not reaped yet (the waiting thread reaps it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the fork() child hung for {CHILD_LIMIT:?}");
        }
    }
}

/// Runs `script` with `pyb_run` on a new host thread: (status, last error).
fn run_on_host_thread(thread_name: &str, script: String) -> (pyb_status, String) {
    spawn(thread_name, move || {
        let script = c(&script);
        let status = unsafe { pyb_run(script.as_ptr(), std::ptr::null(), 0) };
        (status, last_error())
    })
    .join()
    .unwrap()
}

/// Step `step` passes when `status` is `expected`.
fn step(step: i32, status: pyb_status, expected: pyb_status) -> Result<(), i32> {
    if status == expected {
        Ok(())
    } else {
        Err(step)
    }
}

fn exit_code(result: Result<(), i32>) -> i32 {
    result.err().unwrap_or(0)
}

/// Every entry a fork() child may try, each refused at once with `PYB_E_FORKED`.
fn child_is_fenced_off() -> i32 {
    exit_code((|| {
        if pyb_engine_state() != PYB_STATE_FORKED {
            return Err(1);
        }
        let mut token = 0;
        step(2, unsafe { pyb_gil_acquire(&mut token) }, PYB_E_FORKED)?;
        let code = c("x = 1");
        step(
            3,
            unsafe { pyb_run(code.as_ptr(), std::ptr::null(), 0) },
            PYB_E_FORKED,
        )?;
        step(4, pyb_engine_shutdown(1000, 0), PYB_E_FORKED)?;
        step(
            5,
            unsafe { pyb_engine_initialize(std::ptr::null()) },
            PYB_E_FORKED,
        )?;
        if !last_error().contains("fork() child") {
            return Err(6);
        }
        if pyb_gil_held() != 0 {
            return Err(7);
        }
        Ok(())
    })())
}

#[test]
fn a_child_forked_while_another_thread_holds_the_gil_gets_forked_at_once() {
    within(LIMIT, "fork with the GIL held elsewhere", || {
        initialize();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = spawn("gil-holder", move || {
            let token = acquire();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            ok(pyb_gil_release(token));
        });
        held_rx.recv().unwrap();
        assert_eq!(in_child(child_is_fenced_off), 0);
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        // The parent is untouched.
        assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
        assert_eq!(eval_i64("6 * 7"), 42);
        ok(shutdown(5000, 0));
    });
}

#[test]
fn a_child_forked_from_inside_a_scope_finishes_its_scope_then_is_fenced_off() {
    within(LIMIT, "fork inside a scope", || {
        initialize();
        run("import json");
        let token = acquire();
        let code = in_child(move || {
            // The scope the forking thread had open still works, nested ones too.
            let mut inner = 0;
            if unsafe { pyb_gil_acquire(&mut inner) } != PYB_OK {
                return 9;
            }
            let script = c("assert json.loads(json.dumps([1, 2])) == [1, 2]");
            let status = unsafe { pyb_run(script.as_ptr(), std::ptr::null(), 0) };
            if status != PYB_OK || pyb_gil_release(inner) != PYB_OK {
                return 10;
            }
            if pyb_gil_release(token) != PYB_OK {
                return 11;
            }
            child_is_fenced_off()
        });
        assert_eq!(code, 0);
        ok(pyb_gil_release(token));
        ok(shutdown(5000, 0));
    });
}

#[test]
fn os_fork_from_a_host_thread_runs_python_in_the_child() {
    within(LIMIT, "os.fork", || {
        initialize();
        let result = run_on_host_thread(
            "forker",
            concat!(
                "import os, json, threading\n",
                "pid = os.fork()\n",
                "if pid == 0:\n",
                "    try:\n",
                "        t = threading.Thread(target=lambda: json.dumps({'a': 1}))\n",
                "        t.start(); t.join()\n",
                "        code = 0 if json.loads('[3]') == [3] else 2\n",
                "    except BaseException:\n",
                "        code = 3\n",
                "    os._exit(code)\n",
                "_, status = os.waitpid(pid, 0)\n",
                "child_exit = os.waitstatus_to_exitcode(status)\n",
            )
            .to_string(),
        );
        assert_eq!(name(result.0), "PYB_OK", "{}", result.1);
        assert_eq!(eval_i64("child_exit"), 0);
        ok(shutdown(5000, 0));
    });
}

#[test]
fn multiprocessing_works_from_a_host_thread_with_every_start_method() {
    within(LIMIT, "multiprocessing", || {
        initialize();
        for method in ["fork", "spawn", "forkserver"] {
            let result = run_on_host_thread(
                &format!("mp-{method}"),
                format!(
                    "import multiprocessing\n\
                     with multiprocessing.get_context('{method}').Pool(2) as pool:\n\
                     \x20   squares_{method} = pool.map(abs, [-1, -2, -3])\n"
                ),
            );
            assert_eq!(name(result.0), "PYB_OK", "{method}: {}", result.1);
            assert_eq!(
                eval_i64(&format!("int(squares_{method} == [1, 2, 3])")),
                1,
                "{method}"
            );
        }
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn a_child_forked_after_a_clean_shutdown_may_start_its_own_engine() {
    within(LIMIT, "fork after shutdown", || {
        initialize();
        run("x = 1");
        ok(shutdown(5000, 0));
        let code = in_child(|| {
            exit_code((|| {
                if pyb_engine_state() != PYB_STATE_UNINITIALIZED {
                    return Err(1);
                }
                step(
                    2,
                    unsafe { pyb_engine_initialize(std::ptr::null()) },
                    PYB_OK,
                )?;
                let script = c("y = sum(range(10))");
                step(
                    3,
                    unsafe { pyb_run(script.as_ptr(), std::ptr::null(), 0) },
                    PYB_OK,
                )?;
                step(4, pyb_engine_shutdown(5000, 0), PYB_OK)?;
                Ok(())
            })())
        });
        assert_eq!(code, 0);
        initialize();
        assert_eq!(eval_i64("2 + 2"), 4);
        ok(shutdown(5000, 0));
    });
}

/// Every interpreter and pool call in a fork() child returns `PYB_E_FORKED` at
/// once, a destroy with no limit too (their keeper threads are gone there).
#[test]
fn a_child_gets_forked_at_once_from_every_interpreter_and_pool_call() {
    use pybridge::interpreter::*;
    within(LIMIT, "interpreters and pools in a fork child", || {
        initialize();
        let interp = shared_gil_interpreter();
        let mut pool = 0;
        let made_pool = unsafe { pyb_pool_new(2, std::ptr::null(), &mut pool) } == PYB_OK;
        // A pool handle that names none where pools need CPython 3.12.
        let pool = if made_pool { pool } else { 1 };
        let mut member = 0;
        if made_pool {
            ok(unsafe { pyb_pool_borrow(pool, 0, &mut member) });
        }
        let code = in_child(move || {
            let started = Instant::now();
            let result = (|| {
                let mut out = 0;
                step(
                    1,
                    pyb_interpreter_destroy(interp, PYB_TIMEOUT_INFINITE),
                    PYB_E_FORKED,
                )?;
                step(
                    2,
                    unsafe { pyb_interpreter_enter(interp, &mut out) },
                    PYB_E_FORKED,
                )?;
                step(
                    3,
                    unsafe { pyb_interpreter_new(std::ptr::null(), &mut out) },
                    PYB_E_FORKED,
                )?;
                step(
                    4,
                    unsafe { pyb_pool_new(1, std::ptr::null(), &mut out) },
                    PYB_E_FORKED,
                )?;
                step(
                    5,
                    unsafe { pyb_pool_borrow(pool, PYB_TIMEOUT_INFINITE, &mut out) },
                    PYB_E_FORKED,
                )?;
                step(6, pyb_pool_return(pool, member.max(1)), PYB_E_FORKED)?;
                let mut counters = pyb_pool_stats {
                    struct_size: std::mem::size_of::<pyb_pool_stats>(),
                    ..Default::default()
                };
                step(
                    7,
                    unsafe { pyb_pool_stats_get(pool, &mut counters) },
                    PYB_E_FORKED,
                )?;
                step(
                    8,
                    pyb_pool_destroy(pool, PYB_TIMEOUT_INFINITE),
                    PYB_E_FORKED,
                )?;
                if !last_error().contains("fork() child") {
                    return Err(9);
                }
                Ok(())
            })();
            if result.is_ok() && started.elapsed() > Duration::from_secs(1) {
                return 10;
            }
            exit_code(result)
        });
        assert_eq!(code, 0);
        // The parent's are untouched.
        if made_pool {
            ok(pyb_pool_return(pool, member));
            ok(pyb_pool_destroy(pool, 10_000));
        }
        ok(pyb_interpreter_destroy(interp, 10_000));
        ok(shutdown(5000, 0));
    });
}

/// A release that would be queued (no scope open) is refused in a child: the
/// queue's lock may belong to a thread that did not survive the fork (a
/// child of tests/c/fuzz_api.c hung there), and nothing would apply it.
#[test]
fn a_child_refuses_releases_that_would_be_queued() {
    use pybridge::buffer::*;
    use pybridge::object::*;
    within(LIMIT, "releases in a fork child", || {
        initialize();
        let object = eval_object("bytearray(b'abc')");
        let mut view = blank_buffer();
        ok(unsafe { pyb_buffer_get(object, 0, &mut view) });
        let code = in_child(move || {
            let mut view = view;
            let result = (|| {
                step(1, pyb_object_release(object), PYB_E_FORKED)?;
                step(2, unsafe { pyb_buffer_release(&mut view) }, PYB_E_FORKED)?;
                if view.owner != 0 {
                    return Err(3);
                }
                Ok(())
            })();
            exit_code(result)
        });
        assert_eq!(code, 0);
        // The parent's handle and view are untouched.
        ok(unsafe { pyb_buffer_release(&mut view) });
        release(object);
        ok(shutdown(5000, 0));
    });
}

/// A host thread that forks inside its scope while other threads wait for
/// the GIL: the child may release the GIL (its scope, and Python code that
/// releases it) without hanging on a lock a vanished waiter held. pybridge
/// runs CPython's fork protocol (PyOS_BeforeFork / AfterFork_*) around the
/// raw fork, as os.fork() does; before, about 1 child in 20 hung in drop_gil
/// (tests/c/fuzz_api.c).
#[test]
fn a_child_forked_while_others_wait_for_the_gil_can_release_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    within(LIMIT, "fork under GIL contention", || {
        initialize();
        let stop = Arc::new(AtomicBool::new(false));
        let laps = Arc::new(AtomicU64::new(0));
        let contenders: Vec<_> = (0..3)
            .map(|index| {
                let (stop, laps) = (stop.clone(), laps.clone());
                spawn(&format!("contender-{index}"), move || {
                    while !stop.load(Ordering::Relaxed) {
                        let token = acquire();
                        ok(pyb_gil_release(token));
                        laps.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for round in 0..60 {
            let token = acquire();
            let code = in_child(move || {
                let script = c("import time\ntime.sleep(0)\nx = sum(range(100))\n");
                let ran = unsafe { pyb_run(script.as_ptr(), std::ptr::null(), 0) };
                if ran != PYB_OK {
                    return 1;
                }
                if pyb_gil_release(token) != PYB_OK {
                    return 2;
                }
                0
            });
            assert_eq!(code, 0, "round {round}");
            ok(pyb_gil_release(token));
        }
        stop.store(true, Ordering::Relaxed);
        for contender in contenders {
            contender.join().unwrap();
        }
        assert!(laps.load(Ordering::Relaxed) > 0);
        // The parent's Python still forks its own way too.
        run("import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\n");
        ok(shutdown(5000, 0));
    });
}

/// Two threads fork at once, one from a scope and one without: glibc runs
/// their fork handlers side by side, so the second's whole fork lands inside
/// the first's CPython fork protocol. Neither may end the other's: before the
/// fix, the second thread's parent step called `PyOS_AfterFork_Parent`
/// without the import lock (a fatal error on 3.10), left the first's import
/// lock held (the next fork from a scope hung) and cost the first's child its
/// `PyOS_AfterFork_Child` (hung in drop_gil). Found by tests/c/fuzz_api.c.
#[test]
fn a_fork_without_a_scope_inside_another_threads_fork_leaves_its_protocol_alone() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

    /// The thread that forks from its scope; its handlers do the choreography.
    static SCOPED_FORKER: AtomicI32 = AtomicI32::new(0);
    /// Set by the scoped forker's prepare step (1 = CPython's before-fork step
    /// had run: the import lock was held; 2 = it had not).
    static PROTOCOL_SEEN: AtomicU32 = AtomicU32::new(0);
    /// Set when the other thread's whole fork ran inside the scoped one's.
    static INNER_FORK_DONE: AtomicU32 = AtomicU32::new(0);
    type Signals = (mpsc::Sender<()>, mpsc::Receiver<i32>);
    static SIGNALS: Mutex<Option<Signals>> = Mutex::new(None);
    use std::sync::mpsc;

    /// Registered before the engine's, so it runs after pybridge's prepare
    /// step (glibc runs prepare handlers newest first).
    extern "C" fn prepare() {
        // SAFETY: gettid has no preconditions.
        if unsafe { libc::gettid() } != SCOPED_FORKER.load(Ordering::SeqCst) {
            return;
        }
        // This thread holds the main GIL through its scope.
        let held = c("import _imp\nif not _imp.lock_held(): raise SystemError('no protocol')");
        let status = unsafe { pyb_run(held.as_ptr(), std::ptr::null(), 0) };
        PROTOCOL_SEEN.store(if status == PYB_OK { 1 } else { 2 }, Ordering::SeqCst);
        let guard = SIGNALS.lock().unwrap();
        let (go, done) = guard.as_ref().unwrap();
        go.send(()).unwrap();
        if let Ok(exit_code) = done.recv_timeout(CHILD_LIMIT) {
            INNER_FORK_DONE.store(if exit_code == 0 { 1 } else { 2 }, Ordering::SeqCst);
        }
    }

    within(LIMIT, "two forks at once", || {
        // SAFETY: plain function pointers, registered once in this process.
        assert_eq!(
            unsafe { libc::pthread_atfork(Some(prepare), None, None) },
            0
        );
        initialize();
        let (go_tx, go_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        *SIGNALS.lock().unwrap() = Some((go_tx, done_rx));
        // A thread that has used pybridge but holds no scope when it forks.
        let (ready_tx, ready_rx) = mpsc::channel();
        let plain_forker = spawn("plain forker", move || {
            ok(unsafe { pyb_run(c("x = 1").as_ptr(), std::ptr::null(), 0) });
            ready_tx.send(()).unwrap();
            if go_rx.recv_timeout(LIMIT).is_err() {
                return;
            }
            // SAFETY: the child only exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: leaves the child at once.
                unsafe { libc::_exit(0) };
            }
            let mut status = -1;
            // SAFETY: our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            let _ = done_tx.send(status);
        });
        ready_rx.recv_timeout(LIMIT).unwrap();
        // SAFETY: gettid has no preconditions.
        SCOPED_FORKER.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        let token = acquire();
        let code = in_child(move || {
            let script = c("import time\ntime.sleep(0)\nx = sum(range(100))\n");
            if unsafe { pyb_run(script.as_ptr(), std::ptr::null(), 0) } != PYB_OK {
                return 1;
            }
            if pyb_gil_release(token) != PYB_OK {
                return 2;
            }
            0
        });
        SCOPED_FORKER.store(0, Ordering::SeqCst);
        ok(pyb_gil_release(token));
        // (Its exit frees its thread state, which takes the GIL.)
        plain_forker.join().unwrap();
        assert_eq!(
            PROTOCOL_SEEN.load(Ordering::SeqCst),
            1,
            "pybridge's fork step must run before this test's (one process per test)"
        );
        assert_eq!(INNER_FORK_DONE.load(Ordering::SeqCst), 1, "the plain fork");
        assert_eq!(code, 0, "the scoped fork's child");
        // The import lock went back: Python imports, and forks from a scope again.
        run("import _imp\nassert not _imp.lock_held()\nimport decimal");
        let token = acquire();
        let code = in_child(move || exit_code(step(1, pyb_gil_release(token), PYB_OK)));
        assert_eq!(code, 0, "the second scoped fork's child");
        ok(pyb_gil_release(token));
        ok(shutdown(5000, 0));
    });
}

/// Two threads fork from scopes, the second while the first's protocol has
/// let the GIL go inside `PyOS_BeforeFork` (a `register_at_fork` hook that
/// waits, as logging's lock or a contended import lock do). The second waits
/// for the first's fork to end without the GIL: holding it there hung both
/// forks. Each fork runs the protocol: another thread's hooks under way say
/// nothing about this one's fork (a process-wide "os.fork() is under way"
/// flag made the second skip it).
#[test]
fn a_fork_from_a_scope_waits_for_another_scopes_fork_without_the_gil() {
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

    /// The thread that forks second; the prepare step below acts only there.
    static SECOND_FORKER: AtomicI32 = AtomicI32::new(0);
    /// 1 when the second fork's prepare step woke the first's hook.
    static WOKE_FIRST: AtomicU32 = AtomicU32::new(0);

    /// Registered after the engine's, so it runs before pybridge's prepare
    /// step (glibc runs prepare handlers newest first).
    extern "C" fn prepare() {
        // SAFETY: gettid has no preconditions.
        if unsafe { libc::gettid() } != SECOND_FORKER.load(Ordering::SeqCst) {
            return;
        }
        // This thread holds the main GIL through its scope; the first fork's
        // hook needs it back to go on.
        let wake = c("second_fork_started.set()");
        let status = unsafe { pyb_run(wake.as_ptr(), std::ptr::null(), 0) };
        WOKE_FIRST.store(u32::from(status == PYB_OK), Ordering::SeqCst);
    }

    fn fork_from_scope(token: pyb_gil) -> i32 {
        in_child(move || {
            let script = c("import time\ntime.sleep(0)\nx = sum(range(100))\n");
            if unsafe { pyb_run(script.as_ptr(), std::ptr::null(), 0) } != PYB_OK {
                return 1;
            }
            exit_code(step(2, pyb_gil_release(token), PYB_OK))
        })
    }

    within(LIMIT, "two forks from scopes", || {
        initialize();
        run(r#"
import os, threading
first_in_hook = threading.Event()
second_fork_started = threading.Event()
first_forker = second_forker = None
hooks_ran_on = []
def hook():
    hooks_ran_on.append(threading.get_ident())
    if threading.get_ident() == first_forker:
        global first_hook_woken
        first_in_hook.set()
        first_hook_woken = second_fork_started.wait(30)
first_hook_woken = False
os.register_at_fork(before=hook)
"#);
        // SAFETY: a plain function pointer, registered once in this process.
        assert_eq!(
            unsafe { libc::pthread_atfork(Some(prepare), None, None) },
            0
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let second = spawn("second forker", move || {
            // Its thread state is made before the first fork holds that off.
            let token = acquire();
            ready_tx.send(()).unwrap();
            run_held("first_in_hook.wait(30)\nsecond_forker = threading.get_ident()");
            // SAFETY: gettid has no preconditions.
            SECOND_FORKER.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            let code = fork_from_scope(token);
            ok(pyb_gil_release(token));
            code
        });
        ready_rx.recv_timeout(LIMIT).unwrap();
        let token = acquire();
        run_held("first_forker = threading.get_ident()");
        let first_code = fork_from_scope(token);
        ok(pyb_gil_release(token));
        // (Its exit frees its thread state, which takes the GIL.)
        let second_code = second.join().unwrap();
        assert_eq!(
            eval_i64("first_hook_woken"),
            1,
            "the first fork's hook was woken"
        );
        assert_eq!(
            WOKE_FIRST.load(Ordering::SeqCst),
            1,
            "the second fork woke the first"
        );
        assert_eq!(first_code, 0, "the first fork's child");
        assert_eq!(second_code, 0, "the second fork's child");
        // Both forks ran CPython's protocol (its hooks), each once.
        assert_eq!(
            eval_i64("sorted(hooks_ran_on) == sorted([first_forker, second_forker])"),
            1
        );
        ok(shutdown(5000, 0));
    });
}
