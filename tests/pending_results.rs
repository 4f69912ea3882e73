//! Python awaiting the host: pending results (`pyb_pending_*`) returned by
//! host functions and completed later from other threads, on Python's own
//! asyncio loops and pybridge's; a failure as `HostError`; a result there
//! before the await; cancellation from Python calling `on_cancel` once and
//! refusing the host's late result; each misuse with its exact status; and
//! `free_user_data` once per pending result.

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::Duration;

use common::*;
use pybridge::object::*;
use pybridge::pending::*;
use pybridge::status::*;
use pybridge::value::*;

const LIMIT: Duration = Duration::from_secs(60);
const USER_DATA: usize = 0xfeed;

static CANCELS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_cancel(user_data: *mut c_void) {
    assert_eq!(user_data as usize, USER_DATA);
    CANCELS.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn count_free(user_data: *mut c_void) {
    assert_eq!(user_data as usize, USER_DATA);
    FREES.fetch_add(1, Ordering::SeqCst);
}

fn new_pending() -> pyb_object {
    let mut pending = 0;
    ok(unsafe {
        pyb_pending_new(
            Some(count_cancel),
            USER_DATA as *mut c_void,
            Some(count_free),
            &mut pending,
        )
    });
    pending
}

fn clone(handle: pyb_object) -> pyb_object {
    let mut out = 0;
    ok(unsafe { pyb_object_clone(handle, &mut out) });
    out
}

/// Results Python stored, as its repr.
fn result_of(key: &str) -> String {
    eval_text(&format!("repr(results[{key:?}])"))
}

const SETUP: &str = "
import asyncio, threading, host
results = {}
async def wait_later(key):
    try:
        results[key] = ('ok', await host.later())
    except asyncio.CancelledError:
        results[key] = ('cancelled',)
        raise
    except Exception as error:
        results[key] = (type(error).__name__, str(error))
async def signal_when_awaiting(key):
    task = asyncio.ensure_future(wait_later(key))
    await asyncio.sleep(0)  # the task ran up to its await of the pending result
    host.awaiting(key)
    await task
async def cancel_when_awaiting(key):
    task = asyncio.ensure_future(wait_later(key))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
def in_thread(coroutine):
    thread = threading.Thread(target=lambda: asyncio.run(coroutine))
    thread.start()
    return thread
";

/// Registers `host.later()` (a new pending result, its handle sent to the
/// test), `host.now(value)` (one completed before it is returned) and
/// `host.awaiting(key)` (Python says a task awaits; sent to the test).
fn register_host_functions() -> (mpsc::Receiver<pyb_object>, mpsc::Receiver<String>) {
    let (pending_tx, pending_rx) = mpsc::channel();
    let pending_tx = Mutex::new(pending_tx);
    register("host", "later", 0, move |_, result| {
        let pending = new_pending();
        *result = pyb_value::from_object(clone(pending));
        pending_tx.lock().unwrap().send(pending).unwrap();
        PYB_OK
    });
    register("host", "now", 0, |args, result| {
        let pending = new_pending();
        ok(unsafe { pyb_pending_resolve(pending, &args[0]) });
        *result = pyb_value::from_object(pending);
        PYB_OK
    });
    let (awaiting_tx, awaiting_rx) = mpsc::channel();
    let awaiting_tx = Mutex::new(awaiting_tx);
    register("host", "awaiting", 0, move |args, _| {
        let key = args[0].to_text().unwrap();
        awaiting_tx.lock().unwrap().send(key).unwrap();
        PYB_OK
    });
    (pending_rx, awaiting_rx)
}

#[test]
fn pending_results_complete_from_other_threads_on_any_event_loop() {
    within(LIMIT, "pending results", || {
        initialize();
        let (pendings, awaiting) = register_host_functions();
        exec(SETUP);

        // Awaited on a Python thread's own loop, resolved from a host thread.
        exec("first = in_thread(signal_when_awaiting('first'))");
        let first = pendings.recv().unwrap();
        assert_eq!(awaiting.recv().unwrap(), "first");
        spawn("resolver", move || {
            ok(unsafe { pyb_pending_resolve(first, &pyb_value::from_i64(42)) })
        })
        .join()
        .unwrap();
        exec("first.join(30)\nassert not first.is_alive()");
        assert_eq!(result_of("first"), "('ok', 42)");

        // Rejected: Python sees a HostError with the host's message.
        exec("second = in_thread(signal_when_awaiting('second'))");
        let second = pendings.recv().unwrap();
        assert_eq!(awaiting.recv().unwrap(), "second");
        spawn("rejecter", move || {
            ok(unsafe { pyb_pending_reject(second, c"no disk".as_ptr()) })
        })
        .join()
        .unwrap();
        exec("second.join(30)\nassert not second.is_alive()");
        assert_eq!(result_of("second"), "('HostError', 'no disk')");

        // Completed before the await: the await finishes at once.
        exec(
            "async def now():\n    return await host.now('ready')\n\
             results['now'] = asyncio.run(now())",
        );
        assert_eq!(result_of("now"), "'ready'");

        // An object value, and the awaiting loop being pybridge's own.
        let third_task = {
            let coroutine = object_of("wait_later('third')");
            let mut task = 0;
            ok(unsafe {
                pybridge::task::pyb_task_submit(
                    coroutine,
                    Some(task_done),
                    std::ptr::null_mut(),
                    &mut task,
                )
            });
            release(coroutine);
            task
        };
        let third = pendings.recv().unwrap();
        let list = object_of("[1, 2, 3]");
        ok(unsafe { pyb_pending_resolve(third, &pyb_value::from_object(list)) });
        release(list);
        assert_eq!(first_task_done(), (third_task, PYB_OK));
        assert_eq!(result_of("third"), "('ok', [1, 2, 3])");

        // Completed twice: refused, and the first outcome stands.
        expect(
            unsafe { pyb_pending_resolve(first, &pyb_value::from_i64(1)) },
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains("this pending result was completed already"),
            "{}",
            last_error()
        );
        expect(
            unsafe { pyb_pending_reject(second, c"again".as_ptr()) },
            PYB_E_INVALID_ARGUMENT,
        );
        for handle in [first, second, third] {
            release(handle);
        }
        assert_eq!(CANCELS.load(Ordering::SeqCst), 0);
        exec("import gc\ngc.collect()");
        assert_eq!(
            FREES.load(Ordering::SeqCst),
            4,
            "one free per pending result"
        );
        ok(shutdown(10_000, 0));
    });
}

/// Task callbacks' (task, status), in the order they came.
static DONE: Mutex<Vec<(u64, pyb_status)>> = Mutex::new(Vec::new());
static DONE_CHANGED: Condvar = Condvar::new();

/// The first task callback's (task, status), waiting for it up to `LIMIT`.
fn first_task_done() -> (u64, pyb_status) {
    let done = DONE.lock().unwrap();
    let (done, _) = DONE_CHANGED
        .wait_timeout_while(done, LIMIT, |done| done.is_empty())
        .unwrap();
    *done.first().expect("a task callback within the limit")
}

unsafe extern "C" fn task_done(
    task: u64,
    status: pyb_status,
    _result: *const pyb_value,
    _user_data: *mut c_void,
) {
    DONE.lock().unwrap().push((task, status));
    DONE_CHANGED.notify_all();
}

#[test]
fn cancelling_the_awaiting_task_tells_the_host_once_and_refuses_its_late_result() {
    within(LIMIT, "cancelled pending results", || {
        initialize();
        let (pendings, _awaiting) = register_host_functions();
        exec(SETUP);
        exec("cancelled = in_thread(cancel_when_awaiting('cancelled'))\ncancelled.join(30)");
        let pending = pendings.recv().unwrap();
        assert_eq!(result_of("cancelled"), "('cancelled',)");
        assert_eq!(CANCELS.load(Ordering::SeqCst), 1);
        expect(
            unsafe { pyb_pending_resolve(pending, &pyb_value::from_i64(7)) },
            PYB_E_CANCELLED,
        );
        assert!(
            last_error().contains("Python cancelled the task awaiting this pending result"),
            "{}",
            last_error()
        );
        expect(
            unsafe { pyb_pending_reject(pending, c"late".as_ptr()) },
            PYB_E_CANCELLED,
        );
        assert_eq!(CANCELS.load(Ordering::SeqCst), 1, "on_cancel once");
        release(pending);
        exec("import gc\ngc.collect()");
        assert_eq!(FREES.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn misuse_gets_exact_statuses_and_no_callback() {
    within(LIMIT, "pending misuse", || {
        let mut out = 0;
        expect(
            unsafe { pyb_pending_new(None, std::ptr::null_mut(), None, &mut out) },
            PYB_E_NOT_INITIALIZED,
        );
        initialize();
        expect(
            unsafe { pyb_pending_new(None, std::ptr::null_mut(), None, std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        let pending = new_pending();
        expect(
            unsafe { pyb_pending_resolve(pending, std::ptr::null()) },
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe { pyb_pending_reject(pending, std::ptr::null()) },
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe { pyb_pending_reject(pending, [0xffu8, 0].as_ptr().cast()) },
            PYB_E_INVALID_ARGUMENT,
        );
        let number = object_of("12345678901234567890");
        expect(
            unsafe { pyb_pending_resolve(number, &pyb_value::from_i64(1)) },
            PYB_E_WRONG_TYPE,
        );
        assert!(
            last_error().contains("a int is not a pending result (made by pyb_pending_new)"),
            "{}",
            last_error()
        );
        release(number);
        expect(
            unsafe { pyb_pending_resolve(0xdead_0001, &pyb_value::from_i64(1)) },
            PYB_E_BAD_HANDLE,
        );
        // Never awaited, never completed: freed with its last handle (released
        // with the GIL held, so at once rather than queued).
        with_gil(|| release(pending));
        assert_eq!(FREES.load(Ordering::SeqCst), 1);
        assert_eq!(CANCELS.load(Ordering::SeqCst), 0);
        // An engine's end makes a kept handle stale.
        let kept = new_pending();
        ok(shutdown(10_000, 0));
        assert_eq!(FREES.load(Ordering::SeqCst), 2, "freed at the engine's end");
        expect(
            unsafe { pyb_pending_resolve(kept, &pyb_value::from_i64(1)) },
            PYB_E_BAD_HANDLE,
        );
    });
}
