//! Four end-to-end scenarios of the product promise: Python threads overlap a
//! released GIL, native workers call back in, host threads interleave scripts
//! and released host calls, and an exception arrives with its traceback (bad
//! input is tests/bad_input.rs).

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use common::*;
use pybridge::call::*;
use pybridge::host_function::*;
use pybridge::object::*;
use pybridge::status::*;
use pybridge::value::*;

/// Calls of one host function inside at once: (now, most).
type Inside = Arc<(Mutex<(usize, usize)>, Condvar)>;

fn enter(inside: &Inside) -> std::sync::MutexGuard<'_, (usize, usize)> {
    let mut count = inside.0.lock().unwrap();
    count.0 += 1;
    count.1 = count.1.max(count.0);
    inside.1.notify_all();
    count
}

/// Scenario 1: four Python threads call a host function at once. With the GIL
/// released they overlap: each waits (up to 10 s) until all four are inside
/// together, which only a released GIL allows. Without, they take turns: each
/// works 200 ms, never two at once.
#[test]
fn scenario_1_released_gil_lets_python_threads_overlap() {
    within(Duration::from_secs(60), "scenario 1", || {
        initialize();
        let released: Inside = Arc::default();
        let held: Inside = Arc::default();
        let inside = released.clone();
        register(
            "native",
            "meet_released",
            PYB_FN_RELEASE_GIL,
            move |_, _| {
                let count = enter(&inside);
                let (mut count, _) = inside
                    .1
                    .wait_timeout_while(count, Duration::from_secs(10), |count| count.1 < 4)
                    .unwrap();
                count.0 -= 1;
                PYB_OK
            },
        );
        let inside = held.clone();
        register("native", "work_held", 0, move |_, _| {
            drop(enter(&inside));
            std::thread::sleep(Duration::from_millis(200));
            inside.0.lock().unwrap().0 -= 1;
            PYB_OK
        });
        exec(concat!(
            "import threading, time, native\n",
            "def four_threads(fn):\n",
            "    threads = [threading.Thread(target=fn) for _ in range(4)]\n",
            "    start = time.monotonic()\n",
            "    for t in threads: t.start()\n",
            "    for t in threads: t.join()\n",
            "    return int((time.monotonic() - start) * 1000)\n",
        ));
        eval_int("four_threads(native.meet_released)");
        let serialized = eval_int("four_threads(native.work_held)");
        let most = |inside: &Inside| inside.0.lock().unwrap().1;
        assert_eq!(most(&released), 4, "released: calls inside at once");
        assert_eq!(most(&held), 1, "held: calls inside at once");
        assert!(
            serialized >= 790,
            "held: {serialized} ms for 4 x 200 ms (should serialize)"
        );
    });
}

/// A message for the native worker: the payload and the callback to call with the result.
struct Job {
    message: i64,
    callback: pyb_object,
}

/// Scenario 2: a Python subscriber loop hands each message from a queue (fed by
/// a Python thread) to a host processor, whose own native worker thread calls a
/// Python callback when done. 100 runs, every message processed and called back.
#[test]
fn scenario_2_native_worker_calls_back_while_python_keeps_receiving() {
    within(Duration::from_secs(120), "scenario 2", || {
        initialize();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Option<Job>>();
        let stop_tx = jobs_tx.clone();
        let jobs_tx = std::sync::Mutex::new(jobs_tx);
        register("processor", "submit", PYB_FN_RELEASE_GIL, move |args, _| {
            let mut callback = 0;
            // The argument handle dies with the call: keep a clone for the worker.
            let status = unsafe { pyb_object_clone(args[1].as_object().unwrap(), &mut callback) };
            if status != PYB_OK {
                return status;
            }
            let job = Job {
                message: args[0].as_i64().unwrap(),
                callback,
            };
            jobs_tx.lock().unwrap().send(Some(job)).unwrap();
            PYB_OK
        });
        // The processor's own thread, created natively, not by Python.
        let worker = std::thread::spawn(move || {
            let mut processed = 0;
            while let Some(job) = jobs_rx.recv().unwrap() {
                let result = pyb_value::from_i64(job.message * 10);
                call(job.callback, &[result]);
                // No GIL here: the release is queued.
                release(job.callback);
                processed += 1;
            }
            processed
        });
        exec(concat!(
            "import queue, threading, processor\n",
            "N = 50\n",
            "def run_once():\n",
            "    inbox = queue.Queue()\n",
            "    results = []\n",
            "    done = threading.Event()\n",
            "    def on_processed(value):\n",
            "        results.append(value)\n",
            "        if len(results) == N:\n",
            "            done.set()\n",
            "    def feed():\n",
            "        for i in range(N):\n",
            "            inbox.put(i)\n",
            "    feeder = threading.Thread(target=feed)\n",
            "    feeder.start()\n",
            "    for _ in range(N):\n",
            "        processor.submit(inbox.get(timeout=10), on_processed)\n",
            "    feeder.join()\n",
            "    if not done.wait(timeout=10):\n",
            "        raise TimeoutError(f'{len(results)} of {N} called back')\n",
            "    return sorted(results) == [i * 10 for i in range(N)]\n",
        ));
        for run in 0..100 {
            assert!(eval_bool("run_once()"), "run {run} lost messages");
        }
        stop_tx.send(None).unwrap();
        assert_eq!(worker.join().unwrap(), 100 * 50);
        // Every callback clone the worker released without the GIL is gone.
        ok(shutdown(10_000, 0));
    });
}

/// Scenario 3: host threads each run their own scripts, in their own scopes,
/// calling release-policy host functions; 1,000 iterations each, exact totals.
#[test]
fn scenario_3_host_threads_interleave_scripts_and_released_host_calls() {
    within(Duration::from_secs(120), "scenario 3", || {
        initialize();
        const THREADS: i64 = 4;
        const ITERATIONS: i64 = 1000;
        let native_total = Arc::new(AtomicI64::new(0));
        let total = native_total.clone();
        register(
            "native",
            "deposit",
            PYB_FN_RELEASE_GIL,
            move |args, result| {
                let amount = args[0].as_i64().unwrap();
                // Native work with the GIL released; other threads run Python meanwhile.
                let before = total.fetch_add(amount, Ordering::SeqCst);
                std::thread::yield_now();
                *result = pyb_value::from_i64(before + amount);
                PYB_OK
            },
        );
        exec("import threading\nshared = {'calls': 0}\nlock = threading.Lock()");
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                spawn(&format!("script-{t}"), move || {
                    let mut scope = 0;
                    ok(unsafe { pyb_scope_new(&mut scope) });
                    exec_in(
                        scope,
                        "import native, __main__\nmine = 0\nlast_seen = 0",
                    );
                    for i in 0..ITERATIONS {
                        let code = format!(
                            "seen = native.deposit({})\nmine += {}\nassert seen > last_seen\nlast_seen = seen\nwith __main__.lock:\n    __main__.shared['calls'] += 1",
                            i + 1,
                            i + 1
                        );
                        exec_in(scope, &code);
                    }
                    let mine = eval_in(scope, "mine").as_i64().unwrap();
                    release(scope);
                    mine
                })
            })
            .collect();
        let per_thread: Vec<i64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let expected = ITERATIONS * (ITERATIONS + 1) / 2;
        assert_eq!(per_thread, vec![expected; THREADS as usize]);
        assert_eq!(native_total.load(Ordering::SeqCst), THREADS * expected);
        assert_eq!(eval_int("shared['calls']"), THREADS * ITERATIONS);
    });
}

/// Scenario 4: `1/0` gives PYB_E_PYTHON with ZeroDivisionError and a traceback
/// naming the script's file; the next call works.
#[test]
fn scenario_4_zero_division_reports_type_and_traceback_then_engine_works() {
    within(Duration::from_secs(30), "scenario 4", || {
        initialize();
        let status = unsafe {
            pyb_run(
                c"x = 1\ndef divide():\n    return x / 0\ndivide()\n".as_ptr(),
                c"scenario4.py".as_ptr(),
                0,
            )
        };
        expect(status, PYB_E_PYTHON);
        let (kind, message, traceback) = python_parts();
        assert_eq!(kind, "ZeroDivisionError");
        assert_eq!(message, "division by zero");
        assert!(
            traceback.contains("File \"scenario4.py\", line 4, in <module>"),
            "{traceback}"
        );
        assert!(
            traceback.contains("File \"scenario4.py\", line 3, in divide"),
            "{traceback}"
        );
        let whole = last_error();
        assert!(
            whole.starts_with("pyb_run: PYB_E_PYTHON: ZeroDivisionError: division by zero\nTraceback (most recent call last):"),
            "{whole}"
        );
        assert!(whole.contains("scenario4.py"), "{whole}");
        // The exception was cleared: the next calls work and see the script's state.
        assert_eq!(eval_int("x + 1"), 2);
        let mut out = pyb_value::none();
        expect(
            unsafe { pyb_eval(c"1/0".as_ptr(), c"expr.py".as_ptr(), 0, &mut out) },
            PYB_E_PYTHON,
        );
        assert_eq!(python_parts().0, "ZeroDivisionError");
        assert_eq!(eval_int("x"), 1);
    });
}
