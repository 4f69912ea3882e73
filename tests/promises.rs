//! Async host functions (`pyb_promise_*`): Python awaits what the host
//! completes later from another thread; cancellation in Python reaches the
//! host once; the engine's end cancels what is pending; every misuse gets an
//! exact status and leaves the promise as it was.

mod common;

use std::ffi::c_void;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pybridge::host_function::*;
use pybridge::interpreter::*;
use pybridge::promise::*;
use pybridge::status::*;
use pybridge::value::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Promises the host function made, in order, for the test to complete.
static MADE: Mutex<Vec<pyb_promise>> = Mutex::new(Vec::new());
/// Promises whose cancel callback ran, in order (with their user data).
static CANCELLED: Mutex<Vec<(pyb_promise, usize)>> = Mutex::new(Vec::new());
static CHANGED: Condvar = Condvar::new();

unsafe extern "C" fn on_cancel(promise: pyb_promise, user_data: *mut c_void) {
    CANCELLED
        .lock()
        .unwrap()
        .push((promise, user_data as usize));
    CHANGED.notify_all();
}

/// `host.later()`: an async host function whose result the test delivers.
unsafe extern "C" fn later(
    _args: *const pyb_value,
    _nargs: usize,
    result: *mut pyb_value,
    _user_data: *mut c_void,
) -> pyb_status {
    let mut awaitable = 0;
    let mut promise = 0;
    let status = unsafe {
        pyb_promise_new(
            Some(on_cancel),
            0x5eed as *mut c_void,
            &mut awaitable,
            &mut promise,
        )
    };
    if status != PYB_OK {
        return status;
    }
    MADE.lock().unwrap().push(promise);
    CHANGED.notify_all();
    unsafe { *result = pyb_value::from_object(awaitable) };
    PYB_OK
}

fn register_later() {
    ok(unsafe {
        pyb_register_function(
            c"host".as_ptr(),
            c"later".as_ptr(),
            Some(later),
            std::ptr::null_mut(),
            None,
            0,
        )
    });
}

/// Waits for the `count`-th entry of `list` and returns it.
fn nth<T: Clone>(list: &Mutex<Vec<T>>, count: usize, what: &str) -> T {
    let deadline = Instant::now() + LIMIT / 2;
    let mut items = list.lock().unwrap();
    while items.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: {} of {count}", items.len());
        items = CHANGED.wait_timeout(items, left).unwrap().0;
    }
    items[count - 1].clone()
}

/// Python awaiting in a thread of its own, on its own event loop
/// (`asyncio.run`): its outcome lands in `outcomes[name]`.
const AWAITERS: &str = "
import asyncio, threading, host
outcomes = {}
threads = {}
def await_in_thread(name, make):
    async def main():
        try:
            outcomes[name] = ('ok', await make())
        except asyncio.CancelledError:
            outcomes[name] = ('cancelled', None)
            raise
        except Exception as error:
            outcomes[name] = (type(error).__qualname__, str(error))
    thread = threads[name] = threading.Thread(target=lambda: asyncio.run(main()), name=name)
    thread.start()
";

fn outcome(name: &str) -> String {
    eval_text(&format!("repr(outcomes.get({name:?}))"))
}

fn resolve_int(promise: pyb_promise, value: i64) -> pyb_status {
    unsafe { pyb_promise_resolve(promise, &pyb_value::from_i64(value)) }
}

/// Joins the Python thread `name` (started by `await_in_thread`).
fn join(name: &str) {
    exec(&format!("threads[{name:?}].join()"));
}

#[test]
fn python_awaits_what_another_thread_delivers_once() {
    within(LIMIT, "resolve and reject", || {
        initialize();
        register_later();
        exec(AWAITERS);
        exec("await_in_thread('a', host.later)");
        let promise = nth(&MADE, 1, "promise a made");
        // Delivered from a host thread that never held the GIL.
        let status = spawn("resolver", move || resolve_int(promise, 42))
            .join()
            .unwrap();
        ok(status);
        join("a");
        assert_eq!(outcome("a"), "('ok', 42)");
        // Completed once: later completions are refused, and nothing changes.
        expect(resolve_int(promise, 7), PYB_E_BAD_HANDLE);
        assert!(
            last_error().contains("completed already"),
            "{}",
            last_error()
        );
        expect(
            unsafe { pyb_promise_reject(promise, c"late".as_ptr()) },
            PYB_E_BAD_HANDLE,
        );

        // A rejection is pybridge.HostError with the host's message.
        exec("await_in_thread('b', host.later)");
        let promise = nth(&MADE, 2, "promise b made");
        ok(unsafe { pyb_promise_reject(promise, c"the disk is full".as_ptr()) });
        join("b");
        assert_eq!(outcome("b"), "('HostError', 'the disk is full')");

        // Delivered before anyone awaits: the await returns at once.
        exec("early = host.later()");
        let promise = nth(&MADE, 3, "promise early made");
        ok(unsafe { pyb_promise_resolve(promise, &pyb_value::from_text("soon")) });
        exec("async def get_early():\n    return await early\nawait_in_thread('c', get_early)");
        join("c");
        assert_eq!(outcome("c"), "('ok', 'soon')");
        assert_eq!(
            eval_text("repr(early)"),
            format!("<pybridge host promise {promise} resolved>")
        );

        // Two coroutines on two loops await one promise: both get it.
        exec(concat!(
            "shared = host.later()\n",
            "async def get_shared():\n    return await shared\n",
            "await_in_thread('d1', get_shared)\nawait_in_thread('d2', get_shared)\n",
        ));
        let promise = nth(&MADE, 4, "promise shared made");
        let list = object_of("[1, 2, 3]");
        ok(unsafe { pyb_promise_resolve(promise, &pyb_value::from_object(list)) });
        release(list); // the handle stayed the caller's
        join("d1");
        join("d2");
        assert_eq!(outcome("d1"), "('ok', [1, 2, 3])");
        assert_eq!(outcome("d2"), "('ok', [1, 2, 3])");
        assert!(
            CANCELLED.lock().unwrap().is_empty(),
            "nothing was cancelled"
        );
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn cancelling_the_last_awaiter_tells_the_host_once() {
    within(LIMIT, "cancel", || {
        initialize();
        register_later();
        exec(AWAITERS);
        exec(concat!(
            "shared = host.later()\n",
            "tasks = {}\n",
            "def await_cancellable(name):\n",
            "    async def main():\n",
            "        task = asyncio.ensure_future(shared)\n",
            "        tasks[name] = (asyncio.get_running_loop(), task)\n",
            "        return await task\n",
            "    await_in_thread(name, main)\n",
            "def cancel(name):\n",
            "    loop, task = tasks[name]\n",
            "    loop.call_soon_threadsafe(task.cancel)\n",
            "await_cancellable('x')\nawait_cancellable('y')\n",
        ));
        let promise = nth(&MADE, 1, "promise made");
        // Both coroutines are inside the promise's await (its waiter list).
        wait_until(LIMIT / 2, "both awaiting", || {
            eval_int("len(shared._waiters)") == 2
        });
        // One of two awaiters cancelled: the other still waits, the host hears nothing.
        exec("cancel('x')");
        join("x");
        assert_eq!(outcome("x"), "('cancelled', None)");
        assert!(CANCELLED.lock().unwrap().is_empty(), "one awaiter is left");
        // The last one: the host is told, once, with its user data.
        exec("cancel('y')");
        join("y");
        assert_eq!(nth(&CANCELLED, 1, "cancel callback"), (promise, 0x5eed));
        // The host still completes it: the outcome is dropped, and it is done.
        expect(resolve_int(promise, 1), PYB_E_CANCELLED);
        assert!(last_error().contains("cancelled"), "{}", last_error());
        expect(resolve_int(promise, 1), PYB_E_BAD_HANDLE);
        assert_eq!(CANCELLED.lock().unwrap().len(), 1, "told once");
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn pybridges_own_event_loop_awaits_promises() {
    within(LIMIT, "a task awaiting a promise", || {
        initialize();
        register_later();
        exec("import host\nasync def fetch():\n    return 2 * await host.later()");
        let coroutine = object_of("fetch()");
        let (done_tx, done_rx) = mpsc::channel::<(pyb_status, Option<i64>)>();
        unsafe extern "C" fn on_done(
            _task: pybridge::task::pyb_task,
            status: pyb_status,
            result: *const pyb_value,
            user_data: *mut c_void,
        ) {
            let sender =
                unsafe { Box::from_raw(user_data as *mut mpsc::Sender<(pyb_status, Option<i64>)>) };
            let _ = sender.send((status, unsafe { &*result }.as_i64()));
        }
        let mut task = 0;
        ok(unsafe {
            pybridge::task::pyb_task_submit(
                coroutine,
                Some(on_done),
                Box::into_raw(Box::new(done_tx)) as *mut c_void,
                &mut task,
            )
        });
        release(coroutine);
        let promise = nth(&MADE, 1, "promise made");
        ok(resolve_int(promise, 21));
        let (status, value) = done_rx.recv_timeout(LIMIT / 2).unwrap();
        expect(status, PYB_OK);
        assert_eq!(value, Some(42));
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn the_engines_end_cancels_pending_promises_and_later_completions_are_refused() {
    within(LIMIT, "engine end", || {
        initialize();
        register_later();
        exec("import host\nkept = host.later()\nalso_kept = host.later()");
        let first = nth(&MADE, 1, "first promise");
        let second = nth(&MADE, 2, "second promise");
        ok(resolve_int(second, 1));
        ok(shutdown(10_000, 0));
        // Only the pending one is told, once.
        assert_eq!(*CANCELLED.lock().unwrap(), vec![(first, 0x5eed)]);
        expect(resolve_int(first, 1), PYB_E_NOT_INITIALIZED);
        // In the next engine life, the old ids are stale.
        initialize();
        expect(resolve_int(first, 1), PYB_E_BAD_HANDLE);
        assert!(
            last_error().contains("engine that shut down"),
            "{}",
            last_error()
        );
        ok(shutdown(10_000, 0));
    });
}

#[test]
fn misuse_gets_exact_statuses_and_leaves_the_promise_pending() {
    within(LIMIT, "misuse", || {
        initialize();
        let mut awaitable = 0;
        let mut promise = 0;
        expect(
            unsafe {
                pyb_promise_new(
                    None,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut promise,
                )
            },
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe {
                pyb_promise_new(
                    None,
                    std::ptr::null_mut(),
                    &mut awaitable,
                    std::ptr::null_mut(),
                )
            },
            PYB_E_NULL_ARGUMENT,
        );
        ok(unsafe { pyb_promise_new(None, std::ptr::null_mut(), &mut awaitable, &mut promise) });
        expect(
            unsafe { pyb_promise_resolve(promise, std::ptr::null()) },
            PYB_E_NULL_ARGUMENT,
        );
        // Values the host got wrong leave it pending.
        let bad_utf8 = pyb_value::from_raw(PYB_VALUE_STR, &[0xff, 0xfe]);
        expect(
            unsafe { pyb_promise_resolve(promise, &bad_utf8) },
            PYB_E_INVALID_ARGUMENT,
        );
        let stale = object_of("object()");
        release(stale);
        expect(
            unsafe { pyb_promise_resolve(promise, &pyb_value::from_object(stale)) },
            PYB_E_BAD_HANDLE,
        );
        expect(
            unsafe { pyb_promise_reject(promise, [0xffu8, 0].as_ptr().cast()) },
            PYB_E_INVALID_ARGUMENT,
        );
        // Never made: 0, and an id of this engine life that was never issued.
        expect(resolve_int(0, 1), PYB_E_BAD_HANDLE);
        expect(resolve_int(promise + 1000, 1), PYB_E_BAD_HANDLE);
        // Still pending, and completes normally; a NULL message has a default.
        ok(unsafe { pyb_promise_reject(promise, std::ptr::null()) });
        let main = import("__main__");
        ok(unsafe {
            pybridge::call::pyb_setattr(
                main,
                c"rejected".as_ptr(),
                &pyb_value::from_object(awaitable),
            )
        });
        release(main);
        release(awaitable);
        exec(concat!(
            "import asyncio
async def outcome():
    try:
        await rejected
",
            "    except Exception as error:
        return type(error).__qualname__ + ': ' + str(error)
",
            "seen = asyncio.run(outcome())",
        ));
        assert_eq!(
            eval_text("seen"),
            "HostError: the host rejected the promise"
        );
        // Sub-interpreters have no promises.
        let mut interp = 0;
        let mut config = pyb_interpreter_config {
            struct_size: 0,
            flags: PYB_INTERPRETER_SHARED_GIL,
        };
        ok(unsafe { pyb_interpreter_config_default(&mut config) });
        config.flags = PYB_INTERPRETER_SHARED_GIL;
        ok(unsafe { pyb_interpreter_new(&config, &mut interp) });
        let mut token = 0;
        ok(unsafe { pyb_interpreter_enter(interp, &mut token) });
        expect(
            unsafe { pyb_promise_new(None, std::ptr::null_mut(), &mut awaitable, &mut promise) },
            PYB_E_UNSUPPORTED,
        );
        assert!(
            last_error().contains("main interpreter"),
            "{}",
            last_error()
        );
        ok(pybridge::gil::pyb_gil_release(token));
        ok(pyb_interpreter_destroy(interp, 10_000));
        ok(shutdown(10_000, 0));
    });
}
