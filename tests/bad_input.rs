//! Scenario 5: every bad input we could think of, per function, as a table of
//! (what, expected status). After each row the engine must still work.

mod common;

use std::ffi::c_char;
use std::ptr::{null, null_mut};
use std::time::Duration;

use common::*;
use pybridge::call::*;
use pybridge::host_function::*;
use pybridge::object::*;
use pybridge::status::*;
use pybridge::value::*;

/// Handles and values the rows use.
struct Fixture {
    list: pyb_object,
    tuple: pyb_object,
    dict: pyb_object,
    number: pyb_object,
    big: pyb_object,
    text: pyb_object,
    surrogate: pyb_object,
    falsy_raises: pyb_object,
    released: pyb_object,
    stale: pyb_object,
    failing: pyb_object,
    recursing: pyb_object,
}

const MADE_UP: pyb_object = 0x0000_0042_0000_0007;
/// 2^40: a length that passes the size checks but that no allocator can satisfy.
const HUGE_COUNT: usize = 1 << 40;
const INVALID_UTF8: *const c_char = c"caf\xe9".as_ptr();

fn value(tag: u32) -> pyb_value {
    pyb_value {
        tag,
        ..pyb_value::none()
    }
}

fn str_with(ptr: *const c_char, len: usize) -> pyb_value {
    let mut value = pyb_value::from_text("");
    value.data.str = pyb_str { ptr, len };
    value
}

type Row = (
    &'static str,
    pyb_status,
    Box<dyn Fn(&Fixture) -> pyb_status>,
);

macro_rules! row {
    ($what:expr, $expected:expr, |$f:ident| $body:expr) => {
        (
            $what,
            $expected,
            Box::new(move |$f: &Fixture| {
                let _ = $f;
                #[allow(unused_unsafe)]
                unsafe {
                    $body
                }
            }) as Box<dyn Fn(&Fixture) -> pyb_status>,
        )
    };
}

fn rows() -> Vec<Row> {
    // The rows run after this function returns: give their outputs storage that lives.
    let out: *mut pyb_value = Box::leak(Box::new(pyb_value::none()));
    let handle: *mut pyb_object = Box::leak(Box::new(0));
    let size: *mut usize = Box::leak(Box::new(0));
    let flag: *mut bool = Box::leak(Box::new(false));
    let int: *mut i64 = Box::leak(Box::new(0));
    let double: *mut f64 = Box::leak(Box::new(0.0));
    let small: *mut u8 = Box::leak(Box::new([0u8; 2])).as_mut_ptr();
    let one = [pyb_value::from_i64(1)];
    vec![
        // pyb_run / pyb_eval / pyb_scope_new
        row!("run: NULL code", PYB_E_NULL_ARGUMENT, |f| pyb_run(
            null(),
            null(),
            0
        )),
        row!("run: code not UTF-8", PYB_E_INVALID_ARGUMENT, |f| pyb_run(
            INVALID_UTF8,
            null(),
            0
        )),
        row!("run: filename not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_run(c"x = 1".as_ptr(), INVALID_UTF8, 0)
        }),
        row!("run: syntax error", PYB_E_PYTHON, |f| pyb_run(
            c"def (".as_ptr(),
            null(),
            0
        )),
        row!("run: released scope", PYB_E_BAD_HANDLE, |f| pyb_run(
            c"x = 1".as_ptr(),
            null(),
            f.released
        )),
        row!("run: made-up scope", PYB_E_BAD_HANDLE, |f| pyb_run(
            c"x = 1".as_ptr(),
            null(),
            MADE_UP
        )),
        row!("run: scope from an earlier engine", PYB_E_BAD_HANDLE, |f| {
            pyb_run(c"x = 1".as_ptr(), null(), f.stale)
        }),
        row!("run: scope is a list", PYB_E_WRONG_TYPE, |f| pyb_run(
            c"x = 1".as_ptr(),
            null(),
            f.list
        )),
        row!("run: raises SystemExit", PYB_E_PYTHON, |f| pyb_run(
            c"raise SystemExit(3)".as_ptr(),
            null(),
            0
        )),
        row!("eval: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_eval(
            c"1".as_ptr(),
            null(),
            0,
            null_mut()
        )),
        row!("eval: a statement", PYB_E_PYTHON, |f| pyb_eval(
            c"x = 1".as_ptr(),
            null(),
            0,
            out
        )),
        row!("eval: NULL expression", PYB_E_NULL_ARGUMENT, |f| pyb_eval(
            null(),
            null(),
            0,
            out
        )),
        row!("scope_new: NULL out", PYB_E_NULL_ARGUMENT, |f| {
            pyb_scope_new(null_mut())
        }),
        // pyb_import
        row!("import: NULL name", PYB_E_NULL_ARGUMENT, |f| pyb_import(
            null(),
            handle
        )),
        row!("import: name not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_import(INVALID_UTF8, handle)
        }),
        row!("import: missing module", PYB_E_PYTHON, |f| pyb_import(
            c"no_such_module_42".as_ptr(),
            handle
        )),
        row!("import: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_import(
            c"math".as_ptr(),
            null_mut()
        )),
        // pyb_getattr / pyb_setattr
        row!("getattr: handle 0", PYB_E_BAD_HANDLE, |f| pyb_getattr(
            0,
            c"x".as_ptr(),
            out
        )),
        row!("getattr: NULL name", PYB_E_NULL_ARGUMENT, |f| pyb_getattr(
            f.list,
            null(),
            out
        )),
        row!("getattr: name not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_getattr(f.list, INVALID_UTF8, out)
        }),
        row!("getattr: missing attribute", PYB_E_PYTHON, |f| pyb_getattr(
            f.list,
            c"nope".as_ptr(),
            out
        )),
        row!("getattr: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_getattr(
            f.list,
            c"append".as_ptr(),
            null_mut()
        )),
        row!("setattr: NULL value", PYB_E_NULL_ARGUMENT, |f| pyb_setattr(
            f.list,
            c"x".as_ptr(),
            null()
        )),
        row!("setattr: unknown tag", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_setattr(f.list, c"x".as_ptr(), &value(99))
        }),
        row!("setattr: str not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_setattr(
                f.list,
                c"x".as_ptr(),
                &pyb_value::from_raw(PYB_VALUE_STR, b"\xc3"),
            )
        }),
        row!("setattr: str NULL with length", PYB_E_NULL_ARGUMENT, |f| {
            pyb_setattr(f.list, c"x".as_ptr(), &str_with(null(), 5))
        }),
        row!("setattr: str huge length", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_setattr(f.list, c"x".as_ptr(), &str_with(c"x".as_ptr(), usize::MAX))
        }),
        row!("setattr: bytes huge length", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_setattr(
                f.list,
                c"x".as_ptr(),
                &pyb_value {
                    tag: PYB_VALUE_BYTES,
                    ..str_with(c"x".as_ptr(), 1 << 63)
                },
            )
        }),
        row!("setattr: released object value", PYB_E_BAD_HANDLE, |f| {
            pyb_setattr(f.list, c"x".as_ptr(), &pyb_value::from_object(f.released))
        }),
        row!("setattr: read-only attribute", PYB_E_PYTHON, |f| {
            pyb_setattr(f.list, c"append".as_ptr(), &pyb_value::none())
        }),
        // pyb_call / pyb_call_method
        row!("call: NULL args with nargs", PYB_E_NULL_ARGUMENT, |f| {
            pyb_call(f.failing, null(), 2, null(), 0, out)
        }),
        row!(
            "call: nargs + nkwargs overflow",
            PYB_E_INVALID_ARGUMENT,
            |f| pyb_call(f.failing, one.as_ptr(), usize::MAX, null(), 1, out)
        ),
        // A count no allocator can satisfy, with a one-item array: refused
        // before the array is read, and the process lives on.
        row!("call: 2^40 nargs", PYB_E_OUT_OF_MEMORY, |f| pyb_call(
            f.failing,
            one.as_ptr(),
            HUGE_COUNT,
            null(),
            0,
            out
        )),
        row!("call_method: 2^40 nargs", PYB_E_OUT_OF_MEMORY, |f| {
            pyb_call_method(
                f.list,
                c"append".as_ptr(),
                one.as_ptr(),
                HUGE_COUNT,
                null(),
                0,
                out,
            )
        }),
        row!("tuple_new: 2^40 items", PYB_E_OUT_OF_MEMORY, |f| {
            pyb_tuple_new(one.as_ptr(), HUGE_COUNT, handle)
        }),
        row!("list_new: 2^40 items", PYB_E_OUT_OF_MEMORY, |f| {
            pyb_list_new(one.as_ptr(), HUGE_COUNT, handle)
        }),
        row!("dict_new: 2^40 pairs", PYB_E_OUT_OF_MEMORY, |f| {
            pyb_dict_new(one.as_ptr(), one.as_ptr(), HUGE_COUNT, handle)
        }),
        row!(
            "engine_initialize: 2^40 module_search_paths",
            PYB_E_OUT_OF_MEMORY,
            |f| {
                let paths = [c"/tmp".as_ptr()];
                let config = pybridge::config::pyb_config {
                    module_search_paths: paths.as_ptr(),
                    module_search_paths_len: HUGE_COUNT,
                    ..Default::default()
                };
                pybridge::engine::pyb_engine_initialize(&config)
            }
        ),
        row!("call: huge nargs", PYB_E_INVALID_ARGUMENT, |f| pyb_call(
            f.failing,
            one.as_ptr(),
            usize::MAX / 2,
            null(),
            0,
            out
        )),
        row!(
            "call: NULL kwnames with nkwargs",
            PYB_E_NULL_ARGUMENT,
            |f| pyb_call(f.failing, one.as_ptr(), 0, null(), 1, out)
        ),
        row!(
            "call: NULL kwname entry",
            PYB_E_NULL_ARGUMENT,
            |f| pyb_call(f.failing, one.as_ptr(), 0, [null()].as_ptr(), 1, out)
        ),
        row!("call: kwname not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_call(f.failing, one.as_ptr(), 0, [INVALID_UTF8].as_ptr(), 1, out)
        }),
        row!("call: bad value tag in args", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_call(f.list, [value(7)].as_ptr(), 1, null(), 0, out)
        }),
        row!("call: not callable", PYB_E_PYTHON, |f| pyb_call(
            f.list,
            null(),
            0,
            null(),
            0,
            out
        )),
        row!("call: released callable", PYB_E_BAD_HANDLE, |f| pyb_call(
            f.released,
            null(),
            0,
            null(),
            0,
            out
        )),
        row!("call: stale callable", PYB_E_BAD_HANDLE, |f| pyb_call(
            f.stale,
            null(),
            0,
            null(),
            0,
            out
        )),
        row!("call: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_call(
            f.failing,
            null(),
            0,
            null(),
            0,
            null_mut()
        )),
        row!("call: wrong argument count", PYB_E_PYTHON, |f| pyb_call(
            f.recursing,
            null(),
            0,
            null(),
            0,
            out
        )),
        row!("call_method: NULL name", PYB_E_NULL_ARGUMENT, |f| {
            pyb_call_method(f.list, null(), null(), 0, null(), 0, out)
        }),
        row!("call_method: missing method", PYB_E_PYTHON, |f| {
            pyb_call_method(f.list, c"nope".as_ptr(), null(), 0, null(), 0, out)
        }),
        row!("call_method: made-up object", PYB_E_BAD_HANDLE, |f| {
            pyb_call_method(MADE_UP, c"copy".as_ptr(), null(), 0, null(), 0, out)
        }),
        // host functions that fail or are re-entered
        row!("host function fails", PYB_E_PYTHON, |f| pyb_call(
            f.failing,
            null(),
            0,
            null(),
            0,
            out
        )),
        row!("host function re-entered 30 deep", PYB_OK, |f| pyb_call(
            f.recursing,
            [pyb_value::from_i64(30)].as_ptr(),
            1,
            null(),
            0,
            out
        )),
        row!(
            "host function re-entered, inner call fails",
            PYB_E_PYTHON,
            |f| pyb_call(
                f.recursing,
                [pyb_value::from_i64(-1)].as_ptr(),
                1,
                null(),
                0,
                out
            )
        ),
        // pyb_getitem / pyb_setitem / pyb_len
        row!("getitem: NULL key", PYB_E_NULL_ARGUMENT, |f| pyb_getitem(
            f.dict,
            null(),
            out
        )),
        row!("getitem: missing key", PYB_E_PYTHON, |f| pyb_getitem(
            f.dict,
            &pyb_value::from_text("nope"),
            out
        )),
        row!(
            "getitem: index out of range",
            PYB_E_PYTHON,
            |f| pyb_getitem(f.list, &pyb_value::from_i64(99), out)
        ),
        row!("getitem: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_getitem(
            f.list,
            &pyb_value::from_i64(0),
            null_mut()
        )),
        row!("setitem: into a tuple", PYB_E_PYTHON, |f| pyb_setitem(
            f.tuple,
            &pyb_value::from_i64(0),
            &pyb_value::none()
        )),
        row!("setitem: unhashable key", PYB_E_PYTHON, |f| pyb_setitem(
            f.dict,
            &pyb_value::from_object(f.list),
            &pyb_value::none()
        )),
        row!("setitem: NULL value", PYB_E_NULL_ARGUMENT, |f| pyb_setitem(
            f.dict,
            &pyb_value::from_i64(0),
            null()
        )),
        row!("len: of an int", PYB_E_PYTHON, |f| pyb_len(f.number, size)),
        row!("len: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_len(
            f.list,
            null_mut()
        )),
        row!("len: released", PYB_E_BAD_HANDLE, |f| pyb_len(
            f.released, size
        )),
        // pyb_iter / pyb_iter_next
        row!("iter: of an int", PYB_E_PYTHON, |f| pyb_iter(
            f.number, handle
        )),
        row!("iter_next: on a list", PYB_E_WRONG_TYPE, |f| pyb_iter_next(
            f.list, out, flag
        )),
        row!("iter_next: NULL done", PYB_E_NULL_ARGUMENT, |f| {
            pyb_iter_next(f.list, out, null_mut())
        }),
        // containers
        row!("tuple_new: NULL items", PYB_E_NULL_ARGUMENT, |f| {
            pyb_tuple_new(null(), 3, handle)
        }),
        row!("tuple_new: bad item", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_tuple_new([pyb_value::none(), value(42)].as_ptr(), 2, handle)
        }),
        row!("list_new: released item", PYB_E_BAD_HANDLE, |f| {
            pyb_list_new([pyb_value::from_object(f.released)].as_ptr(), 1, handle)
        }),
        row!("list_new: NULL out", PYB_E_NULL_ARGUMENT, |f| pyb_list_new(
            null(),
            0,
            null_mut()
        )),
        row!("dict_new: NULL values", PYB_E_NULL_ARGUMENT, |f| {
            pyb_dict_new(one.as_ptr(), null(), 1, handle)
        }),
        row!("dict_new: unhashable key", PYB_E_PYTHON, |f| pyb_dict_new(
            [pyb_value::from_object(f.list)].as_ptr(),
            one.as_ptr(),
            1,
            handle
        )),
        // conversions
        row!(
            "to_int64: a str",
            PYB_E_WRONG_TYPE,
            |f| pyb_object_to_int64(f.text, int)
        ),
        row!("to_int64: 2**70", PYB_E_OUT_OF_RANGE, |f| {
            pyb_object_to_int64(f.big, int)
        }),
        row!("to_int64: NULL out", PYB_E_NULL_ARGUMENT, |f| {
            pyb_object_to_int64(f.number, null_mut())
        }),
        row!("to_double: a list", PYB_E_WRONG_TYPE, |f| {
            pyb_object_to_double(f.list, double)
        }),
        row!("to_bool: __bool__ raises", PYB_E_PYTHON, |f| {
            pyb_object_to_bool(f.falsy_raises, flag)
        }),
        row!("to_string: an int", PYB_E_WRONG_TYPE, |f| {
            pyb_object_to_string(f.number, null_mut(), 0, size)
        }),
        row!("to_string: buffer too small", PYB_E_OUT_OF_RANGE, |f| {
            pyb_object_to_string(f.text, small.cast(), 2, size)
        }),
        row!("to_string: lone surrogate", PYB_E_OUT_OF_RANGE, |f| {
            pyb_object_to_string(f.surrogate, null_mut(), 0, size)
        }),
        row!("to_string: NULL len_out", PYB_E_NULL_ARGUMENT, |f| {
            pyb_object_to_string(f.text, null_mut(), 0, null_mut())
        }),
        row!(
            "to_bytes: a str",
            PYB_E_WRONG_TYPE,
            |f| pyb_object_to_bytes(f.text, null_mut(), 0, size)
        ),
        // handles
        row!("clone: released", PYB_E_BAD_HANDLE, |f| pyb_object_clone(
            f.released, handle
        )),
        row!(
            "clone: NULL out",
            PYB_E_NULL_ARGUMENT,
            |f| pyb_object_clone(f.list, null_mut())
        ),
        row!("release: twice", PYB_E_BAD_HANDLE, |f| pyb_object_release(
            f.released
        )),
        row!(
            "release: made up",
            PYB_E_BAD_HANDLE,
            |f| pyb_object_release(MADE_UP)
        ),
        row!("release: all bits set", PYB_E_BAD_HANDLE, |f| {
            pyb_object_release(u64::MAX)
        }),
        row!("release: earlier engine", PYB_E_BAD_HANDLE, |f| {
            pyb_object_release(f.stale)
        }),
        row!("release: 0", PYB_OK, |f| pyb_object_release(0)),
        row!("from_value: NULL", PYB_E_NULL_ARGUMENT, |f| {
            pyb_object_from_value(null(), handle)
        }),
        row!("from_value: unknown tag", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_object_from_value(&value(u32::MAX), handle)
        }),
        // registration
        row!("register: NULL module", PYB_E_NULL_ARGUMENT, |f| {
            pyb_register_function(null(), c"f".as_ptr(), Some(noop), null_mut(), None, 0)
        }),
        row!("register: NULL fn", PYB_E_NULL_ARGUMENT, |f| {
            pyb_register_function(c"m".as_ptr(), c"f".as_ptr(), None, null_mut(), None, 0)
        }),
        row!("register: dotted module", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_register_function(
                c"a.b".as_ptr(),
                c"f".as_ptr(),
                Some(noop),
                null_mut(),
                None,
                0,
            )
        }),
        row!("register: empty name", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_register_function(c"m".as_ptr(), c"".as_ptr(), Some(noop), null_mut(), None, 0)
        }),
        row!("register: name not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_register_function(c"m".as_ptr(), INVALID_UTF8, Some(noop), null_mut(), None, 0)
        }),
        row!("register: unknown flags", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_register_function(
                c"m".as_ptr(),
                c"f".as_ptr(),
                Some(noop),
                null_mut(),
                None,
                0x80,
            )
        }),
        row!("register: module import fails", PYB_E_PYTHON, |f| {
            pyb_register_function(
                c"broken_module".as_ptr(),
                c"f".as_ptr(),
                Some(noop),
                null_mut(),
                None,
                0,
            )
        }),
        row!("set_error: NULL", PYB_E_NULL_ARGUMENT, |f| pyb_set_error(
            null()
        )),
        row!("set_error: not UTF-8", PYB_E_INVALID_ARGUMENT, |f| {
            pyb_set_error(INVALID_UTF8)
        }),
    ]
}

unsafe extern "C" fn noop(
    _: *const pyb_value,
    _: usize,
    _: *mut pyb_value,
    _: *mut std::ffi::c_void,
) -> pyb_status {
    PYB_OK
}

#[test]
fn every_bad_input_returns_its_status_and_leaves_the_engine_usable() {
    within(Duration::from_secs(60), "bad input table", || {
        initialize();
        let stale = eval_object("[]");
        ok(shutdown(10_000, 0));
        initialize();
        register("host", "fail", 0, |_, _| {
            set_error("refused");
            PYB_E_INVALID_ARGUMENT
        });
        register("host", "recurse", PYB_FN_RELEASE_GIL, |args, result| {
            let n = args[0].as_i64().unwrap();
            if n <= 0 {
                *result = pyb_value::from_i64(n);
                return if n == 0 {
                    PYB_OK
                } else {
                    PYB_E_INVALID_ARGUMENT
                };
            }
            let again = eval_object("__import__('host').recurse");
            let inner = try_call(again, &[pyb_value::from_i64(n - 1)]);
            release(again);
            match inner {
                Ok(value) => {
                    *result = value;
                    PYB_OK
                }
                Err(status) => status,
            }
        });
        exec(concat!(
            "import sys, types\n",
            "class Falsy:\n",
            "    def __bool__(self):\n",
            "        raise ValueError('no truth')\n",
            "class BrokenFinder:\n",
            "    def find_spec(self, name, path=None, target=None):\n",
            "        if name == 'broken_module':\n",
            "            raise ImportError('cannot load broken_module')\n",
            "sys.meta_path.insert(0, BrokenFinder())\n",
        ));
        let fixture = Fixture {
            list: eval_object("[1, 2]"),
            tuple: eval_object("(1,)"),
            dict: eval_object("{'a': 1}"),
            number: object_of("5"),
            big: eval_object("2**70"),
            text: object_of("'text'"),
            surrogate: eval_object("'\\ud800'"),
            falsy_raises: eval_object("Falsy()"),
            released: {
                let handle = eval_object("object()");
                release(handle);
                handle
            },
            stale,
            failing: eval_object("__import__('host').fail"),
            recursing: eval_object("__import__('host').recurse"),
        };
        let mut failures = Vec::new();
        for (what, expected, run) in rows() {
            let status = run(&fixture);
            if status != expected {
                failures.push(format!(
                    "{what}: expected {}, got {} ({})",
                    name(expected),
                    name(status),
                    last_error()
                ));
            }
            // The engine still works, with no exception left pending.
            let check = try_eval_in(0, "1 + 1");
            assert_eq!(
                check.map(|value| value.as_i64()),
                Ok(Some(2)),
                "after {what}: {}",
                last_error()
            );
            assert_eq!(pybridge::gil::pyb_gil_held(), 0, "after {what}");
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

#[test]
fn a_count_no_allocator_can_satisfy_names_the_argument_and_the_size() {
    within(Duration::from_secs(60), "out of memory message", || {
        initialize();
        let one = [pyb_value::from_i64(1)];
        let mut handle = 0;
        expect(
            unsafe { pyb_tuple_new(one.as_ptr(), HUGE_COUNT, &mut handle) },
            PYB_E_OUT_OF_MEMORY,
        );
        let message = last_error();
        assert!(
            message.contains("`count` asks for 1099511627776 items (8796093022208 bytes)"),
            "{message}"
        );
        assert_eq!(handle, 0, "no handle was written");
        ok(unsafe { pyb_tuple_new(one.as_ptr(), 1, &mut handle) });
        release(handle);
    });
}
