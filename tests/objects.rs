//! Values, handles, conversions and the call API, with and without the GIL held.

mod common;

use std::time::Duration;

use common::*;
use pybridge::call::*;
use pybridge::object::*;
use pybridge::status::*;
use pybridge::value::*;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn plain_results_come_back_without_handles() {
    within(LIMIT, "plain results", || {
        initialize();
        assert_eq!(eval("None").tag, PYB_VALUE_NONE);
        assert_eq!(eval("1 == 1").as_bool(), Some(true));
        assert_eq!(eval("1 == 2").as_bool(), Some(false));
        assert_eq!(eval("6 * 7").as_i64(), Some(42));
        assert_eq!(eval("-2**63").as_i64(), Some(i64::MIN));
        assert_eq!(eval("2**63 - 1").as_i64(), Some(i64::MAX));
        assert_eq!(eval("1.5").as_f64(), Some(1.5));
        assert_eq!(eval_text("'h\u{e9}llo'"), "h\u{e9}llo");
        let with_nul = eval("'a\\0b'");
        assert_eq!(with_nul.tag, PYB_VALUE_STR);
        assert_eq!(with_nul.to_bytes().unwrap(), b"a\0b");
        assert_eq!(
            unsafe { *with_nul.data.str.ptr.add(3) },
            0,
            "NUL-terminated"
        );
        let bytes = eval("b'\\x00\\xff'");
        assert_eq!(bytes.tag, PYB_VALUE_BYTES);
        assert_eq!(bytes.to_bytes().unwrap(), vec![0, 255]);
        // Anything else is a handle: big ints, containers, subclasses, surrogates.
        for expr in [
            "2**63",
            "[1, 2]",
            "type('S', (str,), {})('x')",
            "'\\ud800'",
            "bytearray(b'x')",
        ] {
            let handle = eval_object(expr);
            release(handle);
        }
    });
}

#[test]
fn run_and_eval_in_main_and_in_separate_scopes() {
    within(LIMIT, "scopes", || {
        initialize();
        exec("shared = 'main'");
        let mut first = 0;
        let mut second = 0;
        ok(unsafe { pyb_scope_new(&mut first) });
        ok(unsafe { pyb_scope_new(&mut second) });
        exec_in(first, "x = 1\ndef f():\n    return x * 10");
        exec_in(second, "x = 2");
        assert_eq!(eval_in(first, "f()").as_i64(), Some(10));
        assert_eq!(eval_in(second, "x").as_i64(), Some(2));
        assert_eq!(
            eval_in(first, "len([1, 2, 3])").as_i64(),
            Some(3),
            "builtins"
        );
        expect_python(try_eval_in(second, "f").unwrap_err(), "NameError");
        expect_python(try_eval_in(0, "x").unwrap_err(), "NameError");
        expect_python(try_eval_in(first, "shared").unwrap_err(), "NameError");
        assert_eq!(eval_text("shared"), "main");
        release(first);
        release(second);
    });
}

#[test]
fn import_attributes_calls_and_methods() {
    within(LIMIT, "calls", || {
        initialize();
        let math = import("math");
        let mut out = pyb_value::none();
        ok(unsafe { pyb_getattr(math, c"pi".as_ptr(), &mut out) });
        assert_eq!(out.as_f64(), Some(std::f64::consts::PI));
        ok(unsafe { pyb_getattr(math, c"gcd".as_ptr(), &mut out) });
        let gcd = out.as_object().unwrap();
        let result = call(gcd, &[pyb_value::from_i64(12), pyb_value::from_i64(18)]);
        assert_eq!(result.as_i64(), Some(6));

        exec("def describe(a, b=0, *, sep='-'):\n    return f'{a}{sep}{b}'");
        let describe = eval_object("describe");
        let args = [
            pyb_value::from_text("x"),
            pyb_value::from_i64(5),
            pyb_value::from_text("+"),
        ];
        let names = [c"sep".as_ptr()];
        ok(unsafe { pyb_call(describe, args.as_ptr(), 2, names.as_ptr(), 1, &mut out) });
        assert_eq!(out.to_text().unwrap(), "x+5");
        // Keyword values follow the positional ones, in the order of their names.
        let names = [c"sep".as_ptr(), c"b".as_ptr()];
        ok(unsafe { pyb_call(describe, args.as_ptr(), 1, names.as_ptr(), 2, &mut out) });
        assert_eq!(out.to_text().unwrap(), "x5+");

        let text = object_of("'a,b,c'");
        let comma = [pyb_value::from_text(","), pyb_value::from_i64(1)];
        let maxsplit = [c"maxsplit".as_ptr()];
        ok(unsafe {
            pyb_call_method(
                text,
                c"split".as_ptr(),
                comma.as_ptr(),
                1,
                maxsplit.as_ptr(),
                1,
                &mut out,
            )
        });
        let parts = out.as_object().unwrap();
        exec("class Box:\n    pass\nbox = Box()");
        let boxed = eval_object("box");
        ok(unsafe { pyb_setattr(boxed, c"parts".as_ptr(), &pyb_value::from_object(parts)) });
        assert!(eval_bool("box.parts == ['a', 'b,c']"));
        ok(unsafe { pyb_setattr(boxed, c"n".as_ptr(), &pyb_value::from_i64(7)) });
        assert_eq!(eval_int("box.n"), 7);
        for handle in [math, gcd, describe, text, parts, boxed] {
            release(handle);
        }
    });
}

#[test]
fn items_lengths_iteration_and_containers() {
    within(LIMIT, "containers", || {
        initialize();
        let items = [
            pyb_value::from_i64(1),
            pyb_value::from_text("two"),
            pyb_value::none(),
        ];
        let (mut tuple, mut list, mut dict) = (0, 0, 0);
        ok(unsafe { pyb_tuple_new(items.as_ptr(), items.len(), &mut tuple) });
        ok(unsafe { pyb_list_new(items.as_ptr(), items.len(), &mut list) });
        let keys = [pyb_value::from_text("a"), pyb_value::from_i64(2)];
        let values = [pyb_value::from_f64(0.5), pyb_value::from_object(list)];
        ok(unsafe { pyb_dict_new(keys.as_ptr(), values.as_ptr(), 2, &mut dict) });
        let mut len = 0;
        ok(unsafe { pyb_len(tuple, &mut len) });
        assert_eq!(len, 3);
        ok(unsafe { pyb_len(dict, &mut len) });
        assert_eq!(len, 2);
        let mut out = pyb_value::none();
        ok(unsafe { pyb_getitem(tuple, &pyb_value::from_i64(1), &mut out) });
        assert_eq!(out.to_text().unwrap(), "two");
        ok(unsafe { pyb_getitem(dict, &pyb_value::from_text("a"), &mut out) });
        assert_eq!(out.as_f64(), Some(0.5));
        ok(unsafe { pyb_setitem(list, &pyb_value::from_i64(2), &pyb_value::from_i64(3)) });
        ok(unsafe {
            pyb_setitem(
                dict,
                &pyb_value::from_text("b"),
                &pyb_value::from_bool(true),
            )
        });
        // The dict holds the list itself, so the change shows through it.
        let mut inner = pyb_value::none();
        ok(unsafe { pyb_getitem(dict, &pyb_value::from_i64(2), &mut inner) });
        let inner = inner.as_object().unwrap();
        let mut iterator = 0;
        ok(unsafe { pyb_iter(inner, &mut iterator) });
        let mut seen = Vec::new();
        loop {
            let mut done = false;
            ok(unsafe { pyb_iter_next(iterator, &mut out, &mut done) });
            if done {
                assert_eq!(out.tag, PYB_VALUE_NONE);
                break;
            }
            seen.push(format!("{out:?}"));
        }
        assert_eq!(seen, ["Int(1)", "Str(\"two\")", "Int(3)"]);
        let mut empty = 0;
        ok(unsafe { pyb_tuple_new(std::ptr::null(), 0, &mut empty) });
        ok(unsafe { pyb_len(empty, &mut len) });
        assert_eq!(len, 0);
        for handle in [tuple, list, dict, inner, iterator, empty] {
            release(handle);
        }
    });
}

#[test]
fn conversions_say_what_went_wrong() {
    within(LIMIT, "conversions", || {
        initialize();
        let big = eval_object("2**64");
        let negative = object_of("-5");
        let text = object_of("'h\u{e9}\\0!'");
        let surrogate = eval_object("'\\udc80'");
        let blob = eval_object("bytearray(b'\\x01\\x00\\x02')");
        let flag = object_of("True");
        let huge = eval_object("10**400");
        let empty_list = eval_object("[]");

        let mut int = 0i64;
        ok(unsafe { pyb_object_to_int64(negative, &mut int) });
        assert_eq!(int, -5);
        ok(unsafe { pyb_object_to_int64(flag, &mut int) });
        assert_eq!(int, 1);
        expect(
            unsafe { pyb_object_to_int64(big, &mut int) },
            PYB_E_OUT_OF_RANGE,
        );
        assert!(
            last_error().contains("does not fit in int64"),
            "{}",
            last_error()
        );
        expect(
            unsafe { pyb_object_to_int64(text, &mut int) },
            PYB_E_WRONG_TYPE,
        );
        assert!(
            last_error().contains("'str', not an int"),
            "{}",
            last_error()
        );

        let mut double = 0.0;
        ok(unsafe { pyb_object_to_double(big, &mut double) });
        assert_eq!(double, 18446744073709551616.0);
        expect(
            unsafe { pyb_object_to_double(huge, &mut double) },
            PYB_E_OUT_OF_RANGE,
        );
        expect(
            unsafe { pyb_object_to_double(text, &mut double) },
            PYB_E_WRONG_TYPE,
        );

        let mut truth = true;
        ok(unsafe { pyb_object_to_bool(empty_list, &mut truth) });
        assert!(!truth);

        let mut len = 0;
        ok(unsafe { pyb_object_to_string(text, std::ptr::null_mut(), 0, &mut len) });
        assert_eq!(len, 5, "UTF-8 length with the embedded NUL");
        let mut buf = [0x55u8; 6];
        ok(unsafe { pyb_object_to_string(text, buf.as_mut_ptr().cast(), 6, &mut len) });
        assert_eq!(&buf, "h\u{e9}\0!\0".as_bytes());
        let mut small = [0u8; 5];
        expect(
            unsafe { pyb_object_to_string(text, small.as_mut_ptr().cast(), 5, &mut len) },
            PYB_E_OUT_OF_RANGE,
        );
        assert!(last_error().contains("6 are needed"), "{}", last_error());
        expect(
            unsafe { pyb_object_to_string(surrogate, std::ptr::null_mut(), 0, &mut len) },
            PYB_E_OUT_OF_RANGE,
        );
        expect(
            unsafe { pyb_object_to_string(blob, std::ptr::null_mut(), 0, &mut len) },
            PYB_E_WRONG_TYPE,
        );

        let mut bytes = [0u8; 3];
        ok(unsafe { pyb_object_to_bytes(blob, bytes.as_mut_ptr(), 3, &mut len) });
        assert_eq!((len, bytes), (3, [1, 0, 2]));
        expect(
            unsafe { pyb_object_to_bytes(text, bytes.as_mut_ptr(), 3, &mut len) },
            PYB_E_WRONG_TYPE,
        );

        // Values going in: invalid UTF-8 is refused, embedded NULs survive.
        let mut handle = 0;
        let bad = pyb_value::from_raw(PYB_VALUE_STR, b"ok\xff");
        expect(
            unsafe { pyb_object_from_value(&bad, &mut handle) },
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(last_error().contains("offset 2"), "{}", last_error());
        ok(unsafe { pyb_object_from_value(&pyb_value::from_text("a\0b"), &mut handle) });
        ok(unsafe { pyb_len(handle, &mut len) });
        assert_eq!(len, 3);
        for handle in [
            big, negative, text, surrogate, blob, flag, huge, empty_list, handle,
        ] {
            release(handle);
        }
    });
}

#[test]
fn handles_clone_release_and_go_stale() {
    within(LIMIT, "handles", || {
        initialize();
        let list = eval_object("[1, 2, 3]");
        let mut twin = 0;
        ok(unsafe { pyb_object_clone(list, &mut twin) });
        assert_ne!(twin, list);
        release(list);
        let mut len = 0;
        expect(unsafe { pyb_len(list, &mut len) }, PYB_E_BAD_HANDLE);
        assert!(last_error().contains("was released"), "{}", last_error());
        ok(unsafe { pyb_len(twin, &mut len) });
        assert_eq!(len, 3);
        expect(pyb_object_release(list), PYB_E_BAD_HANDLE);
        ok(pyb_object_release(0));
        for made_up in [1u64, 0xdead_beef, u64::MAX, 1 << 63 | 1, (7 << 32) | 1] {
            expect(pyb_object_release(made_up), PYB_E_BAD_HANDLE);
            expect(unsafe { pyb_len(made_up, &mut len) }, PYB_E_BAD_HANDLE);
        }
        // A reused slot gets a new generation: the old handle stays dead.
        let reused = eval_object("[]");
        expect(unsafe { pyb_len(list, &mut len) }, PYB_E_BAD_HANDLE);
        release(reused);

        // Handles die with the engine, also across a restart.
        let survivor = eval_object("object()");
        ok(shutdown(10_000, 0));
        expect(unsafe { pyb_len(twin, &mut len) }, PYB_E_BAD_HANDLE);
        assert!(last_error().contains("shut down"), "{}", last_error());
        expect(pyb_object_release(survivor), PYB_E_BAD_HANDLE);
        let mut out = pyb_value::none();
        expect(
            unsafe { pyb_eval(c"1".as_ptr(), std::ptr::null(), 0, &mut out) },
            PYB_E_NOT_INITIALIZED,
        );
        initialize();
        let fresh = eval_object("[0]");
        expect(unsafe { pyb_len(twin, &mut len) }, PYB_E_BAD_HANDLE);
        expect(pyb_object_release(survivor), PYB_E_BAD_HANDLE);
        ok(unsafe { pyb_len(fresh, &mut len) });
        release(fresh);
    });
}

#[test]
fn release_without_the_gil_is_queued_and_never_blocks() {
    within(LIMIT, "queued release", || {
        initialize();
        exec("import weakref\nclass C:\n    pass\nobj = C()\nref = weakref.ref(obj)");
        let handle = eval_object("obj");
        exec("del obj");
        // Another thread holds the GIL for the whole time the release runs.
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = spawn("holder", move || {
            let token = acquire();
            held_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            ok(pybridge::gil::pyb_gil_release(token));
        });
        held_rx.recv().unwrap();
        let releaser = spawn("releaser", move || {
            let started = std::time::Instant::now();
            let status = pyb_object_release(handle);
            (status, started.elapsed())
        });
        // The holder keeps the GIL until after the release returned, so a
        // release that waited for the GIL would hang; the bound (generous for
        // a busy machine) catches one that waits for anything else.
        let (status, took) = releaser.join().unwrap();
        ok(status);
        assert!(
            took < Duration::from_secs(1),
            "release blocked for {took:?}"
        );
        expect(pyb_object_release(handle), PYB_E_BAD_HANDLE);
        assert!(last_error().contains("queued"), "{}", last_error());
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        // The next pybridge call with the GIL applies the queued release first.
        assert!(eval_bool("ref() is None"));
    });
}

#[test]
fn object_calls_work_with_and_without_an_open_gil_scope() {
    within(LIMIT, "scopes and threads", || {
        initialize();
        exec("def add(a, b):\n    return a + b");
        let add = eval_object("add");
        let token = acquire();
        for i in 0..100 {
            let sum = call(add, &[pyb_value::from_i64(i), pyb_value::from_i64(1)]);
            assert_eq!(sum.as_i64(), Some(i + 1));
        }
        assert_eq!(pybridge::gil::pyb_gil_held(), 1);
        ok(pybridge::gil::pyb_gil_release(token));
        assert_eq!(pybridge::gil::pyb_gil_held(), 0);
        let workers: Vec<_> = (0..4)
            .map(|t| {
                spawn(&format!("caller-{t}"), move || {
                    let mut total = 0;
                    for i in 0..2000 {
                        let item = object_of("[]");
                        let sum = call(add, &[pyb_value::from_i64(i), pyb_value::from_i64(t)]);
                        total += sum.as_i64().unwrap();
                        release(item);
                    }
                    assert_eq!(pybridge::gil::pyb_gil_held(), 0);
                    total
                })
            })
            .collect();
        let totals: Vec<i64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let base = 1999 * 2000 / 2;
        assert_eq!(totals, [base, base + 2000, base + 4000, base + 6000]);
        release(add);
    });
}

#[test]
fn python_errors_have_type_message_and_traceback_and_are_cleared() {
    within(LIMIT, "python errors", || {
        initialize();
        let status = unsafe { pyb_run(c"def broken(:\n".as_ptr(), c"bad.py".as_ptr(), 0) };
        expect_python(status, "SyntaxError");
        exec("import json");
        expect_python(
            try_eval_in(0, "json.loads('{')").unwrap_err(),
            "json.decoder.JSONDecodeError",
        );
        let (_, message, traceback) = python_parts();
        assert!(message.starts_with("Expecting property name"), "{message}");
        assert!(
            traceback.starts_with("Traceback (most recent call last):"),
            "{traceback}"
        );
        assert!(traceback.ends_with(&format!("json.decoder.JSONDecodeError: {message}")));
        // A pybridge error that is not a Python exception has no Python parts.
        expect(pyb_object_release(12345), PYB_E_BAD_HANDLE);
        assert_eq!(
            python_parts(),
            (String::new(), String::new(), String::new())
        );
        assert_eq!(eval_int("40 + 2"), 42);
    });
}

static CTYPES_HANDLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CTYPES_STATUS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

extern "C" fn release_from_ctypes() {
    let handle = CTYPES_HANDLE.load(std::sync::atomic::Ordering::SeqCst);
    let status = pyb_object_release(handle);
    CTYPES_STATUS.store(status, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn release_inside_a_scope_but_without_the_gil_is_queued() {
    within(LIMIT, "release under ctypes", || {
        initialize();
        // ctypes gives the GIL away around foreign calls, while this thread's
        // pybridge scope (from pyb_run) stays open.
        exec("import weakref\nclass C:\n    pass\nobj = C()\nref = weakref.ref(obj)");
        let handle = eval_object("obj");
        exec("del obj");
        CTYPES_HANDLE.store(handle, std::sync::atomic::Ordering::SeqCst);
        let address = release_from_ctypes as *const () as usize;
        exec(&format!(
            "import ctypes\nctypes.CFUNCTYPE(None)({address})()\nalive_after_call = ref() is not None"
        ));
        ok(CTYPES_STATUS.load(std::sync::atomic::Ordering::SeqCst));
        assert!(eval_bool("alive_after_call"), "released without the GIL");
        assert!(eval_bool("ref() is None"), "the queued release was applied");
    });
}

#[test]
fn python_errors_carry_their_bases_and_the_exception_object() {
    within(LIMIT, "exception object", || {
        initialize();
        let mut none = 7;
        ok(unsafe { pyb_last_error_python_exception(&mut none) });
        assert_eq!(none, 0, "no Python error yet");
        let scope = {
            let mut scope = 0;
            ok(unsafe { pyb_scope_new(&mut scope) });
            scope
        };
        exec_in(
            scope,
            "class AppError(KeyError):\n    def __init__(self, code):\n        super().__init__(code)\n        self.code = code\n",
        );
        let code = c("raise AppError(42)");
        expect_python(
            unsafe { pyb_run(code.as_ptr(), c"<test>".as_ptr(), scope) },
            // Not `__pybridge__.AppError`: the scope's module name is internal.
            "AppError",
        );
        assert_eq!(
            python_types(),
            "AppError\nKeyError\nLookupError\nException\nBaseException"
        );
        let mut exception = 0;
        ok(unsafe { pyb_last_error_python_exception(&mut exception) });
        assert_ne!(exception, 0);
        let mut value = pyb_value::none();
        ok(unsafe { pyb_getattr(exception, c"code".as_ptr(), &mut value) });
        assert_eq!(
            value.as_i64(),
            Some(42),
            "an attribute of the exception object"
        );
        // A second copy is another handle to the same object.
        let mut again = 0;
        ok(unsafe { pyb_last_error_python_exception(&mut again) });
        assert_ne!(again, exception);
        release(again);
        release(exception);
        // Library modules name their module; builtins do not.
        expect_python(
            unsafe {
                pyb_run(
                    c"import json; json.loads('{')".as_ptr(),
                    std::ptr::null(),
                    0,
                )
            },
            "json.decoder.JSONDecodeError",
        );
        assert_eq!(
            python_types(),
            "json.decoder.JSONDecodeError\nValueError\nException\nBaseException"
        );
        // After a shutdown the object is gone with its engine: a named status.
        ok(shutdown(10_000, 0));
        let mut stale = 0;
        expect(
            unsafe { pyb_last_error_python_exception(&mut stale) },
            PYB_E_BAD_HANDLE,
        );
        assert_eq!(stale, 0);
    });
}
