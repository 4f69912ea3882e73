//! GIL scopes on host threads: nesting, persistent thread states, allow-threads
//! regions, and every misuse with its exact status.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use pybridge::engine::*;
use pybridge::gil::*;
use pybridge::status::*;
use pyo3::ffi;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn eight_threads_ten_thousand_nested_scopes_keep_an_exact_count() {
    within(LIMIT, "8 x 10,000 nested scopes", || {
        initialize();
        run("counter = 0");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                spawn(&format!("host-{i}"), || {
                    for _ in 0..10_000 {
                        let outer = acquire();
                        let inner = acquire();
                        // Read-modify-write across bytecodes: only exact if the GIL is really held.
                        run_held("counter = counter + 1");
                        ok(pyb_gil_release(inner));
                        ok(pyb_gil_release(outer));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(eval_i64("counter"), 80_000);
        // One persistent thread state per host thread (plus the main test thread).
        assert_eq!(stats().thread_states_created, 9);
        assert_eq!(stats().thread_states_deleted, 8);
    });
}

#[test]
fn a_thread_keeps_one_thread_state_and_its_threading_local() {
    within(LIMIT, "persistent thread state", || {
        initialize();
        run("import threading\nlocal = threading.local()");
        let created_before = stats().thread_states_created;
        spawn("keeper", || {
            run("local.value = 42");
            for _ in 0..1000 {
                assert_eq!(eval_i64("local.value"), 42);
            }
            // PyGILState_Ensure inside a scope nests on the same thread state.
            with_gil(|| unsafe {
                let mine = ffi::PyThreadState_Get();
                let gstate = ffi::PyGILState_Ensure();
                assert_eq!(ffi::PyThreadState_Get(), mine);
                assert_eq!(ffi::PyGILState_Check(), 1);
                ffi::PyGILState_Release(gstate);
                assert_eq!(ffi::PyThreadState_Get(), mine);
            });
        })
        .join()
        .unwrap();
        assert_eq!(stats().thread_states_created, created_before + 1);
        // The thread exited: its state was deleted with it.
        assert_eq!(stats().thread_states_deleted, 1);
    });
}

#[test]
fn gil_held_reports_every_way_of_holding_it() {
    within(LIMIT, "pyb_gil_held", || {
        assert_eq!(pyb_gil_held(), 0, "before initialization");
        initialize();
        assert_eq!(pyb_gil_held(), 0, "initialize leaves the GIL free");
        let token = acquire();
        assert_eq!(pyb_gil_held(), 1);
        let allow = begin_allow();
        assert_eq!(pyb_gil_held(), 0, "inside an allow-threads region");
        ok(pyb_end_allow_threads(allow));
        assert_eq!(pyb_gil_held(), 1);
        ok(pyb_gil_release(token));
        assert_eq!(pyb_gil_held(), 0);
        // Held without pybridge: a Python thread calling back through ctypes-free C code
        // is modelled by PyGILState_Ensure on a fresh thread.
        spawn("gilstate", || {
            let token = acquire();
            let allow = begin_allow();
            unsafe {
                let gstate = ffi::PyGILState_Ensure();
                assert_eq!(pyb_gil_held(), 1);
                ffi::PyGILState_Release(gstate);
            }
            assert_eq!(pyb_gil_held(), 0);
            ok(pyb_end_allow_threads(allow));
            ok(pyb_gil_release(token));
        })
        .join()
        .unwrap();
    });
}

#[test]
fn a_python_thread_keeps_running_while_host_threads_hold_no_gil() {
    within(LIMIT, "python thread runs", || {
        initialize();
        // The ticker tells the host, through a host function, once it has
        // ticked 50 times; the host waits for that holding no GIL.
        let (ticked_tx, ticked_rx) = mpsc::channel();
        register("host", "ticked", 0, move |_, _| {
            ticked_tx.send(()).unwrap();
            PYB_OK
        });
        run(concat!(
            "import threading, time, host\n",
            "ticks = 0\n",
            "stop = False\n",
            "def tick():\n",
            "    global ticks\n",
            "    while not stop:\n",
            "        ticks += 1\n",
            "        if ticks == 50:\n",
            "            host.ticked()\n",
            "        time.sleep(0.001)\n",
            "ticker = threading.Thread(target=tick, daemon=True)\n",
            "ticker.start()\n"
        ));
        ticked_rx
            .recv_timeout(LIMIT / 2)
            .expect("the Python thread did not tick 50 times while the host held no GIL");
        assert!(eval_i64("ticks") >= 50);
        run("stop = True\nticker.join()");
    });
}

#[test]
fn allow_threads_inside_a_scope_lets_another_thread_run_python() {
    within(LIMIT, "allow threads", || {
        initialize();
        run("progress = 0");
        let token = acquire();
        let inner = acquire();
        let allow = begin_allow();
        // While this thread is in the region, another thread runs Python.
        let other = spawn("other", || {
            for _ in 0..100 {
                run("progress += 1");
            }
        });
        other.join().unwrap();
        ok(pyb_end_allow_threads(allow));
        // Back to the nesting we had: both tokens close in order.
        assert_eq!(eval_i64_held("progress"), 100);
        ok(pyb_gil_release(inner));
        ok(pyb_gil_release(token));
    });
}

#[test]
fn allow_threads_without_the_gil_is_a_no_op() {
    within(LIMIT, "no-op allow threads", || {
        initialize();
        let allow = begin_allow();
        assert_eq!(pyb_gil_held(), 0);
        ok(pyb_end_allow_threads(allow));
        assert_eq!(pyb_gil_held(), 0);
        // Also before initialization and after shutdown (the pythonnet sequence).
        ok(shutdown(5000, 0));
        let allow = begin_allow();
        ok(pyb_end_allow_threads(allow));
    });
}

#[test]
fn a_scope_can_be_reopened_inside_an_allow_threads_region() {
    within(LIMIT, "reacquire in region", || {
        initialize();
        let token = acquire();
        let allow = begin_allow();
        let again = acquire();
        run_held("x = 1");
        // Ending the region while a scope opened inside it is still open is refused.
        expect(pyb_end_allow_threads(allow), PYB_E_BAD_TOKEN);
        // Releasing the outer token while inside the region is refused too.
        expect(pyb_gil_release(token), PYB_E_BAD_TOKEN);
        ok(pyb_gil_release(again));
        ok(pyb_end_allow_threads(allow));
        ok(pyb_gil_release(token));
        assert_eq!(eval_i64("x"), 1);
    });
}

#[test]
fn release_misuse_returns_exact_statuses_and_changes_nothing() {
    within(LIMIT, "misuse", || {
        initialize();
        let outer = acquire();
        let inner = acquire();
        // Out of LIFO order.
        expect(pyb_gil_release(outer), PYB_E_BAD_TOKEN);
        assert!(last_error().contains("LIFO"), "{}", last_error());
        // On another thread.
        let status = spawn("thief", move || pyb_gil_release(inner))
            .join()
            .unwrap();
        expect(status, PYB_E_WRONG_THREAD);
        // An allow-threads end with a GIL token, and a made-up token.
        expect(pyb_end_allow_threads(inner), PYB_E_BAD_TOKEN);
        expect(pyb_gil_release(0), PYB_E_BAD_TOKEN);
        expect(pyb_gil_release(u64::MAX), PYB_E_BAD_TOKEN);
        // Still nested twice: both release in order.
        assert_eq!(pyb_gil_held(), 1);
        ok(pyb_gil_release(inner));
        ok(pyb_gil_release(outer));
        // Twice.
        expect(pyb_gil_release(outer), PYB_E_BAD_TOKEN);
        assert!(last_error().contains("already closed"), "{}", last_error());
        // A token from a finished scope does not close a new scope at the same depth.
        let fresh = acquire();
        expect(pyb_gil_release(outer), PYB_E_BAD_TOKEN);
        ok(pyb_gil_release(fresh));
        // A NULL output pointer.
        expect(
            unsafe { pyb_gil_acquire(std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe { pyb_begin_allow_threads(std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        // The engine is still fully usable.
        run("ok = 1");
        assert_eq!(eval_i64("ok"), 1);
    });
}

#[test]
fn allow_threads_misuse_returns_exact_statuses() {
    within(LIMIT, "allow misuse", || {
        initialize();
        let token = acquire();
        let first = begin_allow();
        let second = begin_allow(); // no GIL held now: a no-op region
        ok(pyb_end_allow_threads(second));
        let status = spawn("thief", move || pyb_end_allow_threads(first))
            .join()
            .unwrap();
        expect(status, PYB_E_WRONG_THREAD);
        ok(pyb_end_allow_threads(first));
        expect(pyb_end_allow_threads(first), PYB_E_BAD_TOKEN);
        ok(pyb_gil_release(token));
    });
}

#[test]
fn no_op_regions_close_in_order_among_themselves_only() {
    within(LIMIT, "no-op region order", || {
        initialize();
        // Without the GIL: two no-op regions, then a scope opened inside them.
        let first = begin_allow();
        let second = begin_allow();
        let scope = acquire();
        // No-op regions close innermost first among themselves...
        expect(pyb_end_allow_threads(first), PYB_E_BAD_TOKEN);
        assert!(
            last_error().contains("not the innermost"),
            "{}",
            last_error()
        );
        // ...but a scope opened inside one does not hold it open.
        ok(pyb_end_allow_threads(second));
        assert_eq!(pyb_gil_held(), 1);
        // A real region, then a no-op one inside it: the real one ends first,
        // and the scope and the last no-op region close in either order.
        let real = begin_allow();
        let inner = begin_allow();
        assert_eq!(pyb_gil_held(), 0);
        ok(pyb_end_allow_threads(real));
        assert_eq!(pyb_gil_held(), 1);
        run_held("closed_in_any_order = 1");
        ok(pyb_gil_release(scope));
        assert_eq!(pyb_gil_held(), 0);
        ok(pyb_end_allow_threads(inner));
        ok(pyb_end_allow_threads(first));
        expect(pyb_end_allow_threads(first), PYB_E_BAD_TOKEN);
        assert_eq!(eval_i64("closed_in_any_order"), 1);
    });
}

#[test]
fn tokens_from_an_earlier_engine_are_refused() {
    within(LIMIT, "earlier engine tokens", || {
        initialize();
        let old = acquire();
        ok(pyb_gil_release(old));
        ok(shutdown(5000, 0));
        expect(unsafe { pyb_gil_acquire(&mut 0) }, PYB_E_NOT_INITIALIZED);
        initialize();
        let token = acquire();
        expect(pyb_gil_release(old), PYB_E_BAD_TOKEN);
        assert!(last_error().contains("earlier engine"), "{}", last_error());
        ok(pyb_gil_release(token));
    });
}

#[test]
fn nesting_is_counted_on_the_thread() {
    within(LIMIT, "deep nesting", || {
        initialize();
        let tokens: Vec<_> = (0..1000).map(|_| acquire()).collect();
        assert_eq!(pyb_gil_held(), 1);
        for token in tokens.into_iter().rev() {
            ok(pyb_gil_release(token));
        }
        assert_eq!(pyb_gil_held(), 0);
    });
}

#[test]
fn contended_acquires_from_many_threads_all_make_progress() {
    within(LIMIT, "contention", || {
        initialize();
        const THREADS: usize = 4;
        /// Scopes each thread must get through while all of them contend.
        const EACH: u64 = 1_000;
        let stop = Arc::new(AtomicBool::new(false));
        let (reached_tx, reached_rx) = mpsc::channel();
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let stop = stop.clone();
                let reached = reached_tx.clone();
                spawn(&format!("contender-{i}"), move || {
                    let mut mine = 0u64;
                    // Each keeps contending until every one has reached EACH.
                    while !stop.load(Ordering::Relaxed) {
                        with_gil(|| ());
                        mine += 1;
                        if mine == EACH {
                            reached.send(i).unwrap();
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut reached: Vec<usize> = (0..THREADS)
            .map(|_| {
                reached_rx
                    .recv_timeout(LIMIT / 2)
                    .expect("a contender starved")
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        let counts: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        reached.sort();
        assert_eq!(reached, (0..THREADS).collect::<Vec<_>>());
        assert!(counts.iter().all(|&count| count >= EACH), "{counts:?}");
        assert_eq!(pyb_engine_state(), PYB_STATE_RUNNING);
    });
}

#[test]
fn a_pygilstate_state_deleted_by_the_host_is_not_reused() {
    within(LIMIT, "adopted state deleted", || {
        initialize();
        let created_before = stats().thread_states_created;
        spawn("gilstate-host", || unsafe {
            // The host takes the GIL its own way; pybridge adopts that state.
            let gstate = ffi::PyGILState_Ensure();
            let token = acquire();
            run_held("a = 1");
            ok(pyb_gil_release(token));
            // Releasing to zero deletes the state CPython created for the host.
            ffi::PyGILState_Release(gstate);
            // pybridge must notice and give the thread a state of its own.
            let token = acquire();
            run_held("a = a + 1");
            ok(pyb_gil_release(token));
        })
        .join()
        .unwrap();
        assert_eq!(eval_i64("a"), 2);
        assert_eq!(stats().thread_states_created, created_before + 2);
    });
}

#[test]
fn a_scope_whose_gil_was_given_away_inside_takes_it_back() {
    within(LIMIT, "ctypes inside a scope", || {
        initialize();
        // ctypes CFUNCTYPE calls release the GIL around the foreign call, inside
        // our open scope; the called pybridge functions must notice.
        let held = pyb_gil_held as *const () as usize;
        let info = pybridge::info::pyb_python_info as *const () as usize;
        let token = acquire();
        run_held(&format!(
            "import ctypes, sys\n\
             held = ctypes.CFUNCTYPE(ctypes.c_int32)({held})()\n\
             info = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)({info})\n\
             buf = ctypes.create_string_buffer(4096)\n\
             info(buf, 4096)\n\
             prefix_ok = ('prefix: ' + sys.prefix) in buf.value.decode()\n"
        ));
        assert_eq!(eval_i64_held("held"), 0, "ctypes gave the GIL away");
        assert_eq!(eval_i64_held("prefix_ok"), 1, "a nested scope took it back");
        assert_eq!(pyb_gil_held(), 1);
        ok(pyb_gil_release(token));
        assert_eq!(pyb_gil_held(), 0);
    });
}

#[test]
fn allow_threads_where_the_gil_was_given_away_inside_a_scope_is_a_no_op() {
    within(LIMIT, "allow threads after ctypes released", || {
        initialize();
        let begin = pyb_begin_allow_threads as *const () as usize;
        let end = pyb_end_allow_threads as *const () as usize;
        let token = acquire();
        // Inside a ctypes call (GIL given away) the region must not release again.
        run_held(&format!(
            "import ctypes\n\
             token = ctypes.c_uint64()\n\
             begin = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_uint64))({begin})\n\
             end = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint64)({end})\n\
             statuses = (begin(ctypes.byref(token)), end(token.value))\n"
        ));
        assert_eq!(eval_i64_held("statuses == (0, 0)"), 1);
        ok(pyb_gil_release(token));
    });
}

/// A deterministic stream of 64-bit values (xorshift64*), for forged tokens.
fn forged_values(seed: u64, count: usize) -> impl Iterator<Item = u64> {
    let mut state = seed;
    (0..count).map(move |_| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[test]
fn a_million_forged_tokens_close_nothing() {
    within(LIMIT, "forged tokens", || {
        initialize();
        let scope = acquire();
        let region = begin_allow();
        assert_eq!(pyb_gil_held(), 0);
        let accepted = forged_values(0x5eed, 1_000_000)
            .filter(|&value| value != region && pyb_end_allow_threads(value) == PYB_OK)
            .count();
        assert_eq!(accepted, 0, "forged values ended the allow-threads region");
        assert_eq!(pyb_gil_held(), 0, "the region is still open");
        ok(pyb_end_allow_threads(region));
        assert_eq!(pyb_gil_held(), 1);
        let inner = acquire();
        let accepted = forged_values(0xfeed, 1_000_000)
            .filter(|&value| value != inner && pyb_gil_release(value) == PYB_OK)
            .count();
        assert_eq!(accepted, 0, "forged values closed the scope");
        ok(pyb_gil_release(inner));
        ok(pyb_gil_release(scope));
        assert_eq!(pyb_gil_held(), 0);
    });
}

#[test]
fn a_stale_no_op_token_does_not_end_a_real_region() {
    within(LIMIT, "stale no-op token", || {
        initialize();
        // Without the GIL the region is a no-op, and its token is still checked.
        let noop = begin_allow();
        ok(pyb_end_allow_threads(noop));
        expect(pyb_end_allow_threads(noop), PYB_E_BAD_TOKEN);
        assert!(last_error().contains("already closed"), "{}", last_error());
        let scope = acquire();
        let real = begin_allow();
        expect(pyb_end_allow_threads(noop), PYB_E_BAD_TOKEN);
        assert_eq!(pyb_gil_held(), 0, "the real region is still open");
        // A no-op token ends only on its own thread.
        let other = spawn("no-op-owner", begin_allow).join().unwrap();
        expect(pyb_end_allow_threads(other), PYB_E_BAD_TOKEN);
        ok(pyb_end_allow_threads(real));
        ok(pyb_gil_release(scope));
    });
}

#[test]
fn a_token_never_comes_back_however_many_scopes_follow() {
    within(LIMIT, "token reuse", || {
        initialize();
        let first = acquire();
        ok(pyb_gil_release(first));
        let mut seen = std::collections::HashSet::from([first]);
        // The old layout's 12-bit epoch gave scope 4,097 the first scope's token.
        for _ in 0..4095 {
            let token = acquire();
            assert!(seen.insert(token), "token {token:#x} was issued twice");
            ok(pyb_gil_release(token));
        }
        let live = acquire();
        assert!(seen.insert(live), "scope 4,097 got an earlier token");
        expect(pyb_gil_release(first), PYB_E_BAD_TOKEN);
        assert!(last_error().contains("already closed"), "{}", last_error());
        assert_eq!(pyb_gil_held(), 1, "the live scope is still open");
        ok(pyb_gil_release(live));
        for _ in 0..10_000 {
            let nested_outer = acquire();
            let nested_inner = acquire();
            assert!(seen.insert(nested_outer) && seen.insert(nested_inner));
            ok(pyb_gil_release(nested_inner));
            ok(pyb_gil_release(nested_outer));
        }
        assert_eq!(seen.len(), 4097 + 20_000);
    });
}
