//! `fork()` in a process whose engine runs: the child's copy of the engine is
//! closed for good (`PYB_E_FORKED`, at once, even when another thread held the
//! GIL at the fork), scopes the forking thread had open keep working, and
//! Python's own `os.fork()` and multiprocessing (fork, spawn, forkserver) from
//! host threads work.

mod common;
use common::*;

use std::time::Duration;

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
