//! Host functions: registration, arguments and results, errors, the
//! release-GIL policy, re-entry, and their life with the engine.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::*;
use pybridge::call::*;
use pybridge::gil::*;
use pybridge::host_function::*;
use pybridge::status::*;
use pybridge::value::*;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn python_calls_host_functions_with_plain_and_object_arguments() {
    within(LIMIT, "arguments", || {
        initialize();
        register("host", "add", 0, |args, result| {
            *result = pyb_value::from_i64(args[0].as_i64().unwrap() + args[1].as_i64().unwrap());
            PYB_OK
        });
        register("host", "describe", 0, |args, result| {
            let parts: Vec<String> = args.iter().map(|arg| format!("{arg:?}")).collect();
            // The text must outlive the call: keep it in a handle, which passes to pybridge.
            let text = parts.join(" ");
            let mut handle = 0;
            ok(unsafe { pyb_object_from_value(&pyb_value::from_text(&text), &mut handle) });
            *result = pyb_value::from_object(handle);
            PYB_OK
        });
        register("host", "length", 0, |args, result| {
            let mut len = 0;
            let status = unsafe { pyb_len(args[0].as_object().unwrap(), &mut len) };
            *result = pyb_value::from_i64(len as i64);
            status
        });
        register("host", "identity", 0, |args, result| {
            *result = args[0];
            PYB_OK
        });
        exec("import host");
        assert_eq!(eval_int("host.add(40, 2)"), 42);
        assert_eq!(
            eval_text("host.describe(None, True, -7, 2.5, 'h\u{e9}\\0', b'\\xff')"),
            "None Bool(true) Int(-7) Float(2.5) Str(\"h\u{e9}\\0\") Bytes(\"\u{fffd}\")"
        );
        assert_eq!(eval_int("host.length([1, 2, 3])"), 3);
        assert!(eval_bool("(lambda x: host.identity(x) is x)(object())"));
        assert!(eval_bool("host.identity('text') == 'text'"));
        assert_eq!(eval_text("host.add.__name__"), "add");
        assert_eq!(eval_text("host.add.__module__"), "host");
        expect_python(try_eval_in(0, "host.add(1, b=2)").unwrap_err(), "TypeError");
    });
}

#[test]
fn a_failing_host_function_raises_host_error_with_its_message() {
    within(LIMIT, "host errors", || {
        initialize();
        register("host", "fail", 0, |_, _| {
            set_error("the device is unplugged");
            PYB_E_INVALID_ARGUMENT
        });
        register("host", "fail_quietly", 0, |_, _| PYB_E_TIMEOUT);
        register("host", "wrong_argument", 0, |_, _| {
            set_error("wrong_argument() takes an int");
            PYB_E_WRONG_TYPE
        });
        register("host", "bad_result", 0, |_, result| {
            *result = pyb_value::from_raw(PYB_VALUE_STR, b"\xff\xfe");
            PYB_OK
        });
        exec("import host, pybridge");
        let status = unsafe { pyb_run(c"host.fail()".as_ptr(), c"caller.py".as_ptr(), 0) };
        expect_python(status, "pybridge.HostError");
        let (_, message, traceback) = python_parts();
        assert_eq!(message, "the device is unplugged");
        assert!(
            traceback.contains("File \"caller.py\", line 1"),
            "{traceback}"
        );
        exec(
            "try:\n    host.fail()\nexcept RuntimeError as e:\n    caught = (type(e) is pybridge.HostError, str(e))",
        );
        assert!(eval_bool("caught == (True, 'the device is unplugged')"));
        expect_python(
            try_eval_in(0, "host.fail_quietly()").unwrap_err(),
            "pybridge.HostError",
        );
        assert_eq!(
            python_parts().1,
            "host function host.fail_quietly failed with PYB_E_TIMEOUT (it set no message with pyb_set_error)"
        );
        expect_python(
            try_eval_in(0, "host.bad_result()").unwrap_err(),
            "pybridge.HostError",
        );
        assert!(
            python_parts().1.contains("not valid UTF-8"),
            "{}",
            last_error()
        );
        // PYB_E_WRONG_TYPE: Python's TypeError, as for a Python function's arguments.
        expect_python(
            try_eval_in(0, "host.wrong_argument('x')").unwrap_err(),
            "TypeError",
        );
        assert_eq!(python_parts().1, "wrong_argument() takes an int");
        assert_eq!(eval_int("1 + 1"), 2);
    });
}

#[test]
fn modules_are_importable_and_existing_modules_are_extended() {
    within(LIMIT, "modules", || {
        initialize();
        exec(
            "import types, sys\nsys.modules['existing'] = types.ModuleType('existing')\nexisting = sys.modules['existing']\nexisting.keep = 1",
        );
        register("existing", "seven", 0, |_, result| {
            *result = pyb_value::from_i64(7);
            PYB_OK
        });
        register("fresh_module", "eight", 0, |_, result| {
            *result = pyb_value::from_i64(8);
            PYB_OK
        });
        let mut scope = 0;
        ok(unsafe { pyb_scope_new(&mut scope) });
        exec_in(
            scope,
            "import existing, fresh_module\nfrom fresh_module import eight",
        );
        assert_eq!(
            eval_in(scope, "existing.seven() + existing.keep").as_i64(),
            Some(8)
        );
        assert_eq!(eval_in(scope, "eight()").as_i64(), Some(8));
        // Registering again replaces the function.
        register("fresh_module", "eight", 0, |_, result| {
            *result = pyb_value::from_i64(-8);
            PYB_OK
        });
        assert_eq!(eval_in(scope, "fresh_module.eight()").as_i64(), Some(-8));
        release(scope);
    });
}

#[test]
fn release_gil_policy_lets_python_run_and_pybridge_calls_still_work() {
    within(LIMIT, "release policy", || {
        initialize();
        register("host", "without_gil", PYB_FN_RELEASE_GIL, |args, result| {
            let held_inside = pyb_gil_held();
            // pybridge calls take the GIL themselves inside the function.
            let doubled = call(args[0].as_object().unwrap(), &[pyb_value::from_i64(21)]);
            let mut list = 0;
            ok(unsafe {
                pyb_list_new(
                    [pyb_value::from_i64(held_inside as i64), doubled].as_ptr(),
                    2,
                    &mut list,
                )
            });
            *result = pyb_value::from_object(list);
            PYB_OK
        });
        register("host", "with_gil", 0, |_, result| {
            let held = pyb_gil_held();
            let mut token = 0;
            ok(unsafe { pyb_begin_allow_threads(&mut token) });
            let released = pyb_gil_held();
            ok(pyb_end_allow_threads(token));
            *result = pyb_value::from_i64(held as i64 * 10 + released as i64);
            PYB_OK
        });
        register("host", "scoped", PYB_FN_RELEASE_GIL, |_, result| {
            // A GIL scope inside a released host function takes the GIL back.
            let before = pyb_gil_held();
            let scope = acquire();
            let inside = pyb_gil_held();
            ok(pyb_gil_release(scope));
            let after = pyb_gil_held();
            *result = pyb_value::from_i64(before as i64 * 100 + inside as i64 * 10 + after as i64);
            PYB_OK
        });
        exec("import host");
        assert!(eval_bool("host.without_gil(lambda n: n * 2) == [0, 42]"));
        assert_eq!(eval_int("host.with_gil()"), 10);
        assert_eq!(eval_int("host.scoped()"), 10);
        // Called from a Python thread, too.
        exec(
            "import threading\nout = []\nt = threading.Thread(target=lambda: out.append(host.without_gil(lambda n: -n)))\nt.start()\nt.join()",
        );
        assert!(eval_bool("out == [[0, -21]]"));
    });
}

#[test]
fn host_functions_can_be_reentered_through_python() {
    within(LIMIT, "re-entry", || {
        initialize();
        let depth_seen = Arc::new(AtomicUsize::new(0));
        let seen = depth_seen.clone();
        for (name, flags) in [("down", 0), ("down_released", PYB_FN_RELEASE_GIL)] {
            let seen = seen.clone();
            register("host", name, flags, move |args, result| {
                let n = args[0].as_i64().unwrap();
                seen.fetch_max(n as usize, Ordering::SeqCst);
                *result = if n == 0 {
                    pyb_value::from_i64(0)
                } else {
                    // Back into Python, which calls this function again.
                    let step = eval_object("step");
                    let inner = try_call(step, &[pyb_value::from_i64(n - 1)]);
                    release(step);
                    match inner {
                        Ok(value) => pyb_value::from_i64(value.as_i64().unwrap() + 1),
                        Err(status) => return status,
                    }
                };
                PYB_OK
            });
        }
        exec(
            "import host\ndef step(n):\n    return host.down(n) if n % 2 else host.down_released(n)",
        );
        assert_eq!(eval_int("step(20)"), 20);
        assert_eq!(depth_seen.load(Ordering::SeqCst), 20);
    });
}

#[test]
fn python_run_by_a_thread_exit_may_call_back_into_pybridge() {
    // A host thread exits; freeing its thread state (PyThreadState_Clear) drops
    // its threading.local, whose __del__ calls a host function that opens GIL
    // scopes and an allow-threads region on that same, exiting thread. Before
    // the owner state was made of cells, the exit path held a `&mut` to it
    // across that callback, which took a second one.
    within(LIMIT, "callback during thread exit", || {
        initialize();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        register("host", "reenter", 0, move |_, result| {
            let outer = acquire();
            let inner = acquire();
            let ran = unsafe { pyb_run(c"reentered = 1".as_ptr(), c"<del>".as_ptr(), 0) };
            assert_eq!(name(pyb_gil_release(inner)), "PYB_OK");
            let mut region = 0;
            assert_eq!(
                name(unsafe { pyb_begin_allow_threads(&mut region) }),
                "PYB_OK"
            );
            assert_eq!(name(pyb_end_allow_threads(region)), "PYB_OK");
            assert_eq!(name(pyb_gil_release(outer)), "PYB_OK");
            seen.fetch_add(1, Ordering::SeqCst);
            *result = pyb_value::from_i64(0);
            ran
        });
        exec(concat!(
            "import host, threading
",
            "local = threading.local()
",
            "class CallsBack:
",
            "    def __del__(self):
",
            "        host.reenter()
",
        ));
        let deleted_before = stats().thread_states_deleted;
        std::thread::spawn(|| exec("local.value = CallsBack()"))
            .join()
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(stats().thread_states_deleted, deleted_before + 1);
        assert_eq!(eval_int("reentered"), 1);
        // Other threads, and a new one, still get the GIL.
        std::thread::spawn(|| assert_eq!(eval_int("reentered + 1"), 2))
            .join()
            .unwrap();
    });
}

#[test]
fn shutdown_waits_for_a_running_host_function_then_frees_user_data() {
    within(LIMIT, "shutdown and host functions", || {
        initialize();
        let finished = Arc::new(Mutex::new(None::<Instant>));
        let mark = finished.clone();
        // The host function tells when it is entered and returns when told to.
        let (entered_tx, entered_rx) = mpsc::channel();
        let (finish_tx, finish_rx) = mpsc::channel::<()>();
        let finish_rx = Mutex::new(finish_rx);
        register("host", "slow", PYB_FN_RELEASE_GIL, move |_, _| {
            entered_tx.send(()).unwrap();
            finish_rx.lock().unwrap().recv().unwrap();
            *mark.lock().unwrap() = Some(Instant::now());
            PYB_OK
        });
        register("host", "other", 0, |_, _| PYB_OK);
        let freed_before = FREED.load(Ordering::SeqCst);
        let runner = spawn("runner", || exec("import host\nhost.slow()"));
        entered_rx.recv().unwrap();
        // A short deadline times out while the host function runs, and changes nothing.
        expect(shutdown(50, 0), PYB_E_TIMEOUT);
        assert!(last_error().contains("runner"), "{}", last_error());
        assert_eq!(FREED.load(Ordering::SeqCst), freed_before);
        let stopper = spawn("stopper", || {
            let status = shutdown(10_000, 0);
            (status, Instant::now())
        });
        wait_for_shutting_down();
        assert!(
            !stopper.is_finished(),
            "shutdown returned while the host function ran"
        );
        finish_tx.send(()).unwrap();
        runner.join().unwrap();
        let (status, stopped) = stopper.join().unwrap();
        ok(status);
        let finished = finished
            .lock()
            .unwrap()
            .expect("the host function finished");
        assert!(
            finished <= stopped,
            "shutdown returned before the host function did"
        );
        assert_eq!(
            FREED.load(Ordering::SeqCst),
            freed_before + 2,
            "each user_data freed once"
        );
        initialize();
        expect_python(
            try_eval_in(0, "__import__('host')").unwrap_err(),
            "ModuleNotFoundError",
        );
        assert_eq!(FREED.load(Ordering::SeqCst), freed_before + 2);
    });
}

/// What code run by the engine's end got back from `pyb_eval`: (status, tag of the value).
static DURING_FINALIZATION: std::sync::Mutex<Vec<(&str, pyb_status, u32)>> =
    std::sync::Mutex::new(Vec::new());

fn eval_during_finalization(who: &'static str) {
    let mut value = pyb_value::none();
    let status = unsafe { pyb_eval(c"[1, 2, 3]".as_ptr(), std::ptr::null(), 0, &mut value) };
    DURING_FINALIZATION
        .lock()
        .unwrap()
        .push((who, status, value.tag));
}

unsafe extern "C" fn free_by_evaluating(_: *mut std::ffi::c_void) {
    eval_during_finalization("free_user_data");
}

unsafe extern "C" fn evaluate_from_python(
    _: *const pyb_value,
    _: usize,
    _: *mut pyb_value,
    _: *mut std::ffi::c_void,
) -> pyb_status {
    eval_during_finalization("__del__");
    PYB_OK
}

/// Code that the engine's end runs (free_user_data, a `__del__` run by
/// Py_FinalizeEx) cannot make handles: they would outlive the interpreter
/// and were a use-after-free in the next engine.
#[test]
fn code_run_by_the_engines_end_cannot_make_handles() {
    within(LIMIT, "handles during finalization", || {
        initialize();
        ok(unsafe {
            pyb_register_function(
                c"host".as_ptr(),
                c"evaluate".as_ptr(),
                Some(evaluate_from_python),
                std::ptr::null_mut(),
                Some(free_by_evaluating),
                0,
            )
        });
        exec(concat!(
            "import host\n",
            "class CallsHostWhenCollected:\n",
            "    def __del__(self, evaluate=host.evaluate):\n",
            "        evaluate()\n",
            "kept_until_the_end = CallsHostWhenCollected()\n",
        ));
        ok(shutdown(10_000, 0));
        let seen = DURING_FINALIZATION.lock().unwrap().clone();
        assert!(
            seen.iter().any(|(who, _, _)| *who == "free_user_data"),
            "free_user_data ran: {seen:?}"
        );
        for (who, status, tag) in &seen {
            assert_eq!(name(*status), "PYB_E_SHUTTING_DOWN", "{who}");
            assert_eq!(*tag, PYB_VALUE_NONE, "{who} got no value");
        }
        // The next engine works, and nothing from the last one lingers.
        initialize();
        assert_eq!(eval_int("len([1, 2, 3])"), 3);
        ok(shutdown(10_000, 0));
    });
}

static HOST_OBJECTS_FREED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn free_host_object(pointer: *mut std::ffi::c_void) {
    drop(unsafe { Box::from_raw(pointer.cast::<String>()) });
    HOST_OBJECTS_FREED.fetch_add(1, Ordering::SeqCst);
}

fn host_object(text: &str) -> pybridge::object::pyb_object {
    let pointer = Box::into_raw(Box::new(text.to_string())).cast();
    let mut handle = 0;
    ok(unsafe {
        pybridge::host_object::pyb_host_object_new(pointer, Some(free_host_object), &mut handle)
    });
    handle
}

#[test]
fn host_objects_go_to_python_come_back_and_are_freed_once() {
    within(LIMIT, "host objects", || {
        initialize();
        // A host function that reads the host object Python hands it.
        register("native", "describe", 0, |args, result| {
            let Some(handle) = args.first().and_then(pyb_value::as_object) else {
                set_error("expected a host object");
                return PYB_E_INVALID_ARGUMENT;
            };
            let mut pointer = std::ptr::null_mut();
            let status =
                unsafe { pybridge::host_object::pyb_host_object_get(handle, &mut pointer) };
            if status != PYB_OK {
                return status;
            }
            let text = unsafe { &*pointer.cast::<String>() };
            *result = pyb_value::from_i64(text.len() as i64);
            PYB_OK
        });
        let handle = host_object("a .NET or C++ object");
        let main = import("__main__");
        let value = pyb_value::from_object(handle);
        ok(unsafe { pyb_setattr(main, c"kept".as_ptr(), &value) });
        release(handle);
        exec("import native\nlength = native.describe(kept)\nsame = [kept, kept]");
        assert_eq!(eval_int("length"), 20);
        assert_eq!(eval_text("type(kept).__name__"), "PyCapsule");
        // Not a host object: an exact status, which the function returns, raised
        // in Python as TypeError (a wrong argument type).
        expect_python(
            unsafe {
                pyb_run(
                    c"import native\nnative.describe(object())".as_ptr(),
                    std::ptr::null(),
                    0,
                )
            },
            "TypeError",
        );
        let mut pointer = std::ptr::null_mut();
        let plain = object_of("[1]");
        expect(
            unsafe { pybridge::host_object::pyb_host_object_get(plain, &mut pointer) },
            PYB_E_WRONG_TYPE,
        );
        assert!(
            last_error().contains("a list is not a host object"),
            "{}",
            last_error()
        );
        release(plain);
        assert_eq!(HOST_OBJECTS_FREED.load(Ordering::SeqCst), 0);
        exec("del kept\ndel same");
        assert_eq!(
            HOST_OBJECTS_FREED.load(Ordering::SeqCst),
            1,
            "freed once Python let go"
        );
        // One kept until the end: freed by the shutdown.
        let last = host_object("kept to the end");
        let value = pyb_value::from_object(last);
        ok(unsafe { pyb_setattr(main, c"until_the_end".as_ptr(), &value) });
        release(last);
        release(main);
        ok(shutdown(10_000, 0));
        assert_eq!(HOST_OBJECTS_FREED.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn keyword_arguments_reach_functions_that_ask_for_them() {
    within(LIMIT, "keyword arguments", || {
        initialize();
        // Returns "positional|name=value,..." from what it was given.
        register("native", "describe", PYB_FN_KEYWORDS, |args, result| {
            let mut names = std::ptr::null();
            let mut count = 0;
            let status =
                unsafe { pybridge::host_function::pyb_host_keywords(&mut names, &mut count) };
            if status != PYB_OK {
                return status;
            }
            let names = if count == 0 {
                &[][..]
            } else {
                unsafe { std::slice::from_raw_parts(names, count) }
            };
            let positional = args.len() - names.len();
            let text = |value: &pyb_value| format!("{value:?}");
            let mut out: Vec<String> = args[..positional].iter().map(text).collect();
            for (name, value) in names.iter().zip(&args[positional..]) {
                let name = unsafe { std::slice::from_raw_parts(name.ptr.cast::<u8>(), name.len) };
                out.push(format!("{}={}", String::from_utf8_lossy(name), text(value)));
            }
            let joined = out.join(",");
            *result = pyb_value::from_i64(0);
            set_error(&joined); // carried out through the error text below
            PYB_E_INVALID_ARGUMENT
        });
        register("native", "plain", 0, |_, result| {
            *result = pyb_value::from_i64(1);
            PYB_OK
        });
        let run = |code: &str| {
            let code = c(&format!("import native\n{code}"));
            unsafe { pyb_run(code.as_ptr(), std::ptr::null(), 0) }
        };
        expect_python(
            run("native.describe(1, 'two', scale=3.5, name='x')"),
            "pybridge.HostError",
        );
        let (_, message, _) = python_parts();
        assert_eq!(
            message,
            "Int(1),Str(\"two\"),scale=Float(3.5),name=Str(\"x\")"
        );
        expect_python(run("native.describe(7)"), "pybridge.HostError");
        assert_eq!(python_parts().1, "Int(7)");
        expect_python(run("native.describe(**{'a': None})"), "pybridge.HostError");
        assert_eq!(python_parts().1, "a=None");
        // A function registered without the flag refuses keywords, as Python's own do.
        expect_python(run("native.plain(x=1)"), "TypeError");
        // Outside a host function there are none.
        let mut names = std::ptr::null();
        let mut count = 9;
        ok(unsafe { pybridge::host_function::pyb_host_keywords(&mut names, &mut count) });
        assert_eq!((names, count), (std::ptr::null(), 0));
        expect(
            unsafe { pybridge::host_function::pyb_host_keywords(std::ptr::null_mut(), &mut count) },
            PYB_E_NULL_ARGUMENT,
        );
    });
}
