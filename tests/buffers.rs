//! Zero-copy buffers: views of objects' memory (layout, writability, what
//! they pin, release from any thread and after shutdown) and host memory
//! shared with Python (seen and written by Python, its callback called exactly
//! once, also at shutdown and in a sub-interpreter), with every bad input's
//! exact status.

mod common;

use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use pybridge::buffer::*;
use pybridge::interpreter::*;
use pybridge::object::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(60);

fn try_view(object: pyb_object, flags: u32) -> Result<pyb_buffer, pyb_status> {
    let mut view = blank_buffer();
    match unsafe { pyb_buffer_get(object, flags, &mut view) } {
        PYB_OK => Ok(view),
        status => Err(status),
    }
}

#[track_caller]
fn view(object: pyb_object, flags: u32) -> pyb_buffer {
    try_view(object, flags)
        .unwrap_or_else(|status| panic!("pyb_buffer_get: {} {}", name(status), last_error()))
}

fn format(view: &pyb_buffer) -> String {
    unsafe { CStr::from_ptr(view.format) }
        .to_string_lossy()
        .into_owned()
}

fn dims(view: &pyb_buffer) -> (Vec<isize>, Vec<isize>) {
    let n = view.ndim as usize;
    unsafe {
        (
            std::slice::from_raw_parts(view.shape, n).to_vec(),
            std::slice::from_raw_parts(view.strides, n).to_vec(),
        )
    }
}

#[test]
fn views_describe_the_memory_and_writes_reach_python() {
    within(LIMIT, "views", || {
        initialize();
        exec("data = bytearray(b'hello')");
        let data = eval_object("data");
        let mut bytes = view(data, PYB_BUFFER_WRITABLE);
        assert_eq!(
            (bytes.len, bytes.itemsize, bytes.readonly, bytes.ndim),
            (5, 1, false, 1)
        );
        assert_eq!(format(&bytes), "B");
        assert_eq!(dims(&bytes), (vec![5], vec![1]));
        // Written without the GIL, seen by Python.
        unsafe { *(bytes.data as *mut u8) = b'j' };
        assert_eq!(eval_text("data.decode()"), "jello");
        // The export pins the bytearray: Python cannot resize it meanwhile.
        expect_python(
            unsafe { pybridge::call::pyb_run(c"data.append(33)".as_ptr(), std::ptr::null(), 0) },
            "BufferError",
        );
        ok(unsafe { pyb_buffer_release(&mut bytes) });
        assert_eq!((bytes.owner, bytes.data), (0, std::ptr::null_mut()));
        ok(unsafe { pyb_buffer_release(&mut bytes) }); // a second release does nothing
        exec("data.append(33)");
        assert_eq!(eval_text("data.decode()"), "jello!");

        exec("import array\nnumbers = array.array('d', [1.5, 2.5, 3.5])");
        let mut doubles = view(eval_object("numbers"), 0);
        assert_eq!((doubles.len, doubles.itemsize), (24, 8));
        assert_eq!(format(&doubles), "d");
        let items = unsafe { std::slice::from_raw_parts(doubles.data as *const f64, 3) };
        assert_eq!(items, &[1.5, 2.5, 3.5]);
        ok(unsafe { pyb_buffer_release(&mut doubles) });

        // Strided and two-dimensional views.
        let mut every_other = view(eval_object("memoryview(bytearray(range(10)))[::2]"), 0);
        assert_eq!(
            (every_other.len, dims(&every_other)),
            (5, (vec![5], vec![2]))
        );
        assert_eq!(unsafe { *(every_other.data as *const u8).add(2 * 2) }, 4);
        ok(unsafe { pyb_buffer_release(&mut every_other) });
        let mut matrix = view(
            eval_object("memoryview(bytearray(12)).cast('B', (3, 4))"),
            0,
        );
        assert_eq!((matrix.ndim, dims(&matrix)), (2, (vec![3, 4], vec![4, 1])));
        ok(unsafe { pyb_buffer_release(&mut matrix) });
        // The owner is a handle like any other, to an object Python reads
        // the memory through.
        let mut owned = view(object_of("b'abc'"), 0);
        assert!(owned.readonly);
        set_global("owner", owned.owner);
        assert_eq!(
            eval_text(
                "repr((type(owner).__name__, bytes(memoryview(owner)), len(memoryview(owner))))"
            ),
            "('BufferView', b'abc', 3)"
        );
        exec("del owner");
        ok(unsafe { pyb_buffer_release(&mut owned) });
    });
}

#[test]
fn bad_requests_get_exact_statuses_and_change_nothing() {
    within(LIMIT, "bad requests", || {
        initialize();
        let bytes = object_of("b'read only'");
        assert_eq!(
            try_view(bytes, PYB_BUFFER_WRITABLE).err(),
            Some(PYB_E_WRONG_TYPE)
        );
        assert!(
            last_error().contains("the memory of a bytes is read-only"),
            "{}",
            last_error()
        );
        assert_eq!(try_view(object_of("42"), 0).err(), Some(PYB_E_WRONG_TYPE));
        assert!(
            last_error().contains("a int does not export its memory"),
            "{}",
            last_error()
        );
        assert_eq!(try_view(bytes, 2).err(), Some(PYB_E_INVALID_ARGUMENT));
        let mut short = blank_buffer();
        short.struct_size = std::mem::offset_of!(pyb_buffer, strides);
        expect(
            unsafe { pyb_buffer_get(bytes, 0, &mut short) },
            PYB_E_INVALID_ARGUMENT,
        );
        assert_eq!(short.owner, 0);
        // An older host's struct, ending at `strides`, is filled up to there.
        let mut older = blank_buffer();
        older.struct_size = std::mem::offset_of!(pyb_buffer, lowest);
        ok(unsafe { pyb_buffer_get(bytes, 0, &mut older) });
        assert_eq!(
            (older.len, older.lowest, older.span),
            (9, std::ptr::null_mut(), 0)
        );
        ok(unsafe { pyb_buffer_release(&mut older) });
        expect(
            unsafe { pyb_buffer_get(bytes, 0, std::ptr::null_mut()) },
            PYB_E_NULL_ARGUMENT,
        );
        assert_eq!(try_view(0xdead_0001, 0).err(), Some(PYB_E_BAD_HANDLE));
        ok(unsafe { pyb_buffer_release(std::ptr::null_mut()) });
        // The engine still works, and the object still gives a read-only view.
        let mut fine = view(bytes, 0);
        assert_eq!(fine.len, 9);
        ok(unsafe { pyb_buffer_release(&mut fine) });
    });
}

#[test]
fn a_view_released_on_a_thread_without_the_gil_is_applied_later() {
    within(LIMIT, "release from another thread", || {
        initialize();
        exec("data = bytearray(4)");
        let taken = view(eval_object("data"), 0);
        let owner = taken.owner;
        spawn("releaser", move || {
            // The view as the other thread holds it (raw pointers are not Send).
            let mut taken = pyb_buffer {
                owner,
                ..blank_buffer()
            };
            assert_eq!(pybridge::gil::pyb_gil_held(), 0);
            ok(unsafe { pyb_buffer_release(&mut taken) });
            assert_eq!(taken.owner, 0);
        })
        .join()
        .unwrap();
        // The next entry applies the queued release: the bytearray may grow again.
        exec("data.extend(b'xy')");
        assert_eq!(eval_int("len(data)"), 6);
        expect(pyb_object_release(owner), PYB_E_BAD_HANDLE);
    });
}

#[test]
fn a_view_after_shutdown_is_a_bad_handle_and_a_new_engine_works() {
    within(LIMIT, "view after shutdown", || {
        initialize();
        let mut old = view(eval_object("bytearray(8)"), 0);
        ok(shutdown(10_000, 0));
        expect(unsafe { pyb_buffer_release(&mut old) }, PYB_E_BAD_HANDLE);
        assert_eq!(old.owner, 0);
        initialize();
        let mut fresh = view(eval_object("bytearray(3)"), 0);
        assert_eq!(fresh.len, 3);
        ok(unsafe { pyb_buffer_release(&mut fresh) });
    });
}

static RELEASED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_release(user_data: *mut c_void) {
    assert_eq!(user_data as usize, 0x5eed);
    RELEASED.fetch_add(1, Ordering::SeqCst);
}

fn share(memory: &mut [f64], flags: u32) -> Result<pyb_object, pyb_status> {
    let mut out = 0;
    match unsafe {
        pyb_buffer_from_host(
            memory.as_mut_ptr().cast(),
            std::mem::size_of_val(memory),
            c"d".as_ptr(),
            8,
            flags,
            Some(count_release),
            0x5eed as *mut c_void,
            &mut out,
        )
    } {
        PYB_OK => Ok(out),
        status => Err(status),
    }
}

fn set_global(name: &str, handle: pyb_object) {
    let main = import("__main__");
    let key = std::ffi::CString::new(name).unwrap();
    let value = pybridge::value::pyb_value::from_object(handle);
    ok(unsafe { pybridge::call::pyb_setattr(main, key.as_ptr(), &value) });
    release(main);
}

#[test]
fn host_memory_is_seen_and_written_by_python_and_released_once() {
    within(LIMIT, "host memory", || {
        initialize();
        let memory: &'static mut [f64] = Box::leak(vec![1.0, 2.0, 3.0, 4.0].into_boxed_slice());
        let shared = share(memory, PYB_BUFFER_WRITABLE).unwrap();
        set_global("shared", shared);
        release(shared);
        assert_eq!(
            eval_text("repr((shared.format, shared.itemsize, shared.shape, sum(shared)))"),
            "('d', 8, (4,), 10.0)"
        );
        exec("shared[0] = 42.0\nalias = shared.cast('B')");
        assert_eq!(memory[0], 42.0);
        // Still referenced from Python (two memoryviews): not released.
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0);
        exec("del shared");
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0);
        exec("del alias");
        assert_eq!(RELEASED.load(Ordering::SeqCst), 1);

        // Read-only memory: Python's own error when it writes.
        let frozen = share(memory, 0).unwrap();
        set_global("frozen", frozen);
        release(frozen);
        expect_python(
            unsafe { pybridge::call::pyb_run(c"frozen[0] = 1.0".as_ptr(), std::ptr::null(), 0) },
            "TypeError",
        );
        assert_eq!(memory[0], 42.0);
        // Kept in a global across shutdown: finalization lets go of it.
        ok(shutdown(10_000, 0));
        assert_eq!(RELEASED.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn bad_host_memory_gets_exact_statuses_and_no_callback() {
    within(LIMIT, "bad host memory", || {
        initialize();
        let mut memory = [0.0_f64; 4];
        let mut out = 0;
        let try_share = |data: *mut c_void,
                         len: usize,
                         format: &CStr,
                         itemsize: usize,
                         flags: u32,
                         out: &mut pyb_object| unsafe {
            pyb_buffer_from_host(
                data,
                len,
                format.as_ptr(),
                itemsize,
                flags,
                Some(count_release),
                0x5eed as *mut c_void,
                out,
            )
        };
        let data = memory.as_mut_ptr().cast();
        expect(
            try_share(data, 32, c"d", 4, 0, &mut out),
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains("itemsize 4 does not match format"),
            "{}",
            last_error()
        );
        // Only one item, without a repeat count, even where the sizes agree
        // ("4B" is 4 bytes): struct syntax that is not one item is refused.
        for (format, itemsize) in [
            (c"4B", 4),
            (c"2d", 16),
            (c"dd", 16),
            (c"1d", 8),
            (c"<4B", 4),
            (c"x", 1),
            (c"s", 1),
            (c"3s", 3),
            (c"p", 1),
            (c"<n", 8),
            (c"<P", 8),
            (c"", 1),
            (c"?!", 1),
            (c"@@d", 8),
            (c"d<", 8),
            (c"Zd", 16),
        ] {
            expect(
                try_share(data, 32, format, itemsize, 0, &mut out),
                PYB_E_INVALID_ARGUMENT,
            );
            assert!(
                last_error().contains(&format!(
                    "format {format:?} is not a struct-module format of one item"
                )),
                "{format:?}: {}",
                last_error()
            );
        }
        expect(
            try_share(data, 30, c"d", 8, 0, &mut out),
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains("len 30 is not a whole number of 8-byte items"),
            "{}",
            last_error()
        );
        let too_long = isize::MAX as usize + 1;
        expect(
            try_share(data, too_long, c"B", 1, 0, &mut out),
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains(&format!(
                "len {too_long} is over PTRDIFF_MAX ({}), the most a Python buffer can hold",
                isize::MAX
            )),
            "{}",
            last_error()
        );
        expect(
            try_share(data, 32, c"d", 8, 4, &mut out),
            PYB_E_INVALID_ARGUMENT,
        );
        expect(
            try_share(std::ptr::null_mut(), 32, c"d", 8, 0, &mut out),
            PYB_E_NULL_ARGUMENT,
        );
        expect(
            unsafe {
                pyb_buffer_from_host(
                    data,
                    32,
                    c"d".as_ptr(),
                    8,
                    0,
                    None,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            },
            PYB_E_NULL_ARGUMENT,
        );
        assert_eq!(out, 0);
        // Empty memory is fine, even at NULL; format NULL means bytes.
        let mut empty = 0;
        ok(unsafe {
            pyb_buffer_from_host(
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
                1,
                0,
                None,
                std::ptr::null_mut(),
                &mut empty,
            )
        });
        set_global("empty", empty);
        assert_eq!(eval_text("repr((empty.format, len(empty)))"), "('B', 0)");
        release(empty);
        // Every one-item format: with a byte order, and native-only ones.
        for (format, itemsize) in [(c"<d", 8), (c"!i", 4), (c"@P", 8), (c"n", 8), (c"?", 1)] {
            let mut one = 0;
            ok(unsafe {
                pyb_buffer_from_host(
                    data,
                    32 / itemsize * itemsize,
                    format.as_ptr(),
                    itemsize,
                    0,
                    None,
                    std::ptr::null_mut(),
                    &mut one,
                )
            });
            set_global("one", one);
            assert_eq!(eval_text("one.format"), format.to_str().unwrap());
            release(one);
        }
        exec("del one");
        assert_eq!(
            RELEASED.load(Ordering::SeqCst),
            0,
            "no callback for a refused share"
        );
    });
}

#[test]
fn host_memory_in_a_sub_interpreter_is_released_when_it_ends() {
    within(LIMIT, "host memory in a sub-interpreter", || {
        initialize();
        let interp = shared_gil_interpreter();
        let memory: &'static mut [f64] = Box::leak(vec![0.5; 2].into_boxed_slice());
        let mut gil = 0;
        ok(unsafe { pyb_interpreter_enter(interp, &mut gil) });
        let shared = share(memory, 0).unwrap();
        set_global("kept", shared);
        release(shared);
        assert_eq!(eval_text("repr(sum(kept))"), "1.0");
        // Views work there too, with that interpreter's own holder type.
        exec("data = bytearray(3)");
        let mut inside = view(eval_object("data"), PYB_BUFFER_WRITABLE);
        expect_python(
            unsafe { pybridge::call::pyb_run(c"data.append(1)".as_ptr(), std::ptr::null(), 0) },
            "BufferError",
        );
        ok(unsafe { pyb_buffer_release(&mut inside) });
        exec("data.append(1)");
        let mut kept_view = view(eval_object("data"), 0);
        ok(pybridge::gil::pyb_gil_release(gil));
        // The main interpreter makes its own exporter type; both work.
        let main_shared = share(memory, 0).unwrap();
        release(main_shared);
        // Released without the GIL: queued until the next entry.
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0);
        exec("pass");
        assert_eq!(RELEASED.load(Ordering::SeqCst), 1);
        ok(pyb_interpreter_destroy(interp, 10_000));
        assert_eq!(RELEASED.load(Ordering::SeqCst), 2);
        // The interpreter's end let go of the view it held.
        expect(
            unsafe { pyb_buffer_release(&mut kept_view) },
            PYB_E_BAD_HANDLE,
        );
    });
}

/// The NumPy venv for the Python this library was built with
/// (scripts/numpy-venv.sh: made once, NumPy from PyPI).
fn numpy_venv() -> String {
    let output = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/numpy-venv.sh"
        ))
        .arg(env!("PYB_BUILD_PYTHON_EXECUTABLE"))
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "scripts/numpy-venv.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn numpy_arrays_are_filled_in_place_and_read_host_memory() {
    // Making the venv the first time downloads NumPy.
    within(Duration::from_secs(900), "NumPy", || {
        let venv = std::ffi::CString::new(numpy_venv()).unwrap();
        let config = pybridge::config::pyb_config {
            virtual_env: venv.as_ptr(),
            ..Default::default()
        };
        ok(unsafe { pybridge::engine::pyb_engine_initialize(&config) });
        // 100 MiB of float64, filled by the host through a view.
        const ITEMS: usize = 100 * 1024 * 1024 / 8;
        exec(&format!("import numpy as np\nbig = np.zeros({ITEMS})"));
        let mut filled = view(eval_object("big"), PYB_BUFFER_WRITABLE);
        assert_eq!(
            (format(&filled), filled.len, filled.ndim),
            ("d".to_string(), ITEMS * 8, 1)
        );
        assert_eq!(dims(&filled), (vec![ITEMS as isize], vec![8]));
        let items = unsafe { std::slice::from_raw_parts_mut(filled.data as *mut f64, ITEMS) };
        for (index, item) in items.iter_mut().enumerate() {
            *item = index as f64;
        }
        ok(unsafe { pyb_buffer_release(&mut filled) });
        // Whole numbers below 2^53: the float64 sum is exact.
        let expected = (ITEMS as u64) * (ITEMS as u64 - 1) / 2;
        assert_eq!(eval_int("int(big.sum())"), expected as i64);
        assert_eq!(eval_text("repr(float(big[12345]))"), "12345.0");

        // Host memory as a NumPy array, written by NumPy.
        let memory: &'static mut [f64] = Box::leak(vec![1.5; 1000].into_boxed_slice());
        let shared = share(memory, PYB_BUFFER_WRITABLE).unwrap();
        set_global("host", shared);
        release(shared);
        exec("arr = np.frombuffer(host, dtype=np.float64)\narr *= 2\ndel host");
        assert_eq!((memory[0], memory[999]), (3.0, 3.0));
        assert_eq!(
            RELEASED.load(Ordering::SeqCst),
            0,
            "the array still uses it"
        );
        exec("del arr");
        assert_eq!(RELEASED.load(Ordering::SeqCst), 1);
    });
}

/// Ends every memoryview Python can reach from `names` (each name, and a fresh
/// memoryview of each), with `with` and `release()`, as Python code may.
const END_EVERY_MEMORYVIEW: &str = "\
def end_every_memoryview(*objects):
    for obj in objects:
        for m in (obj, memoryview(obj)):
            if isinstance(m, memoryview):
                with m:
                    pass
                m.release()
";

#[test]
fn python_cannot_end_a_views_export() {
    within(LIMIT, "a view's own export", || {
        initialize();
        exec(END_EVERY_MEMORYVIEW);
        exec("data = bytearray(b'abcd')");
        let mut held = view(eval_object("data"), PYB_BUFFER_WRITABLE);
        // Python gets the owner too, and ends whatever memoryview it can.
        set_global("owner", held.owner);
        exec("end_every_memoryview(owner, data)\ndel owner");
        // The view's own export still pins the bytearray...
        for grow in [c"data.extend(b'x' * 100000)", c"data.append(33)"] {
            expect_python(
                unsafe { pybridge::call::pyb_run(grow.as_ptr(), std::ptr::null(), 0) },
                "BufferError",
            );
        }
        assert_eq!(eval_int("len(data)"), 4);
        // ... so its memory is still the bytearray's.
        unsafe { *(held.data as *mut u8) = b'z' };
        assert_eq!(eval_text("data.decode()"), "zbcd");
        // A view of the owner is a view of the same memory, with an export of
        // its own: it outlives the first.
        let mut second = view(held.owner, PYB_BUFFER_WRITABLE);
        assert_eq!((second.data, second.len), (held.data, 4));
        ok(unsafe { pyb_buffer_release(&mut held) });
        expect_python(
            unsafe { pybridge::call::pyb_run(c"data.append(33)".as_ptr(), std::ptr::null(), 0) },
            "BufferError",
        );
        ok(unsafe { pyb_buffer_release(&mut second) });
        exec("data.extend(b'x' * 100000)");
        assert_eq!(eval_int("len(data)"), 100_004);
    });
}

/// Where each item of a view starts, walking `shape` and `strides` from `data`.
fn item_addresses(view: &pyb_buffer) -> Vec<usize> {
    let (shape, strides) = if view.ndim == 0 {
        (vec![], vec![])
    } else {
        dims(view)
    };
    let mut addresses = vec![view.data as usize];
    for (&count, &stride) in shape.iter().zip(&strides) {
        addresses = addresses
            .iter()
            .flat_map(|&start| (0..count).map(move |i| start.wrapping_add_signed(i * stride)))
            .collect();
    }
    addresses
}

#[test]
fn data_is_the_first_item_and_lowest_and_span_cover_every_item() {
    within(LIMIT, "reversed views", || {
        initialize();
        exec("import array\ndata = bytearray(range(10))\nints = array.array('i', range(5))");
        // (expression, len, strides, the first item, the item at the lowest address, span)
        let cases: [(&str, usize, isize, i64, i64, usize); 7] = [
            ("memoryview(data)", 10, 1, 0, 0, 10),
            ("memoryview(data)[::-1]", 10, -1, 9, 0, 10),
            ("memoryview(data)[::-2]", 5, -2, 9, 1, 9),
            ("memoryview(data)[8:1:-3]", 3, -3, 8, 2, 7),
            ("memoryview(data)[::3]", 4, 3, 0, 0, 10),
            ("memoryview(ints)[::-1]", 20, -4, 4, 0, 20),
            ("memoryview(ints)[3:0:-2]", 8, -8, 3, 1, 12),
        ];
        for (expr, len, stride, first, lowest_item, span) in cases {
            let mut seen = view(eval_object(expr), 0);
            let read = |address: *mut c_void| unsafe {
                if seen.itemsize == 4 {
                    i64::from(*(address as *const i32))
                } else {
                    i64::from(*(address as *const u8))
                }
            };
            assert_eq!(
                (
                    seen.len,
                    dims(&seen).1,
                    read(seen.data),
                    read(seen.lowest),
                    seen.span
                ),
                (len, vec![stride], first, lowest_item, span),
                "{expr}"
            );
            // Every item lies in [lowest, lowest + span), the extremes at its ends.
            let addresses = item_addresses(&seen);
            let low = seen.lowest as usize;
            assert_eq!(*addresses.iter().min().unwrap(), low, "{expr}");
            assert_eq!(
                addresses.iter().max().unwrap() + seen.itemsize,
                low + seen.span,
                "{expr}"
            );
            ok(unsafe { pyb_buffer_release(&mut seen) });
        }
        // Empty: nothing spanned; a scalar (ndim 0): its one item.
        let mut empty = view(eval_object("memoryview(data)[5:5]"), 0);
        assert_eq!((empty.len, empty.span, empty.lowest), (0, 0, empty.data));
        ok(unsafe { pyb_buffer_release(&mut empty) });
        let mut scalar = view(
            eval_object("memoryview(ints)[2:3].cast('B').cast('i', [])"),
            0,
        );
        assert_eq!(
            (scalar.ndim, scalar.shape, scalar.strides, scalar.span),
            (0, std::ptr::null(), std::ptr::null(), 4)
        );
        assert_eq!((read_i32(scalar.data), scalar.lowest), (2, scalar.data));
        ok(unsafe { pyb_buffer_release(&mut scalar) });
    });
}

fn read_i32(address: *mut c_void) -> i32 {
    unsafe { *(address as *const i32) }
}

/// How often each host object (pointer 0, 1, 2) was freed.
static FREED: [AtomicUsize; 3] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

unsafe extern "C" fn count_free(pointer: *mut c_void) {
    FREED[pointer as usize].fetch_add(1, Ordering::SeqCst);
}

fn host_object(pointer: usize) -> pyb_object {
    let mut out = 0;
    ok(unsafe {
        pybridge::host_object::pyb_host_object_new(
            pointer as *mut c_void,
            Some(count_free),
            &mut out,
        )
    });
    out
}

#[test]
fn what_a_daemon_thread_can_reach_at_shutdown_is_never_freed() {
    within(LIMIT, "daemon thread at shutdown", || {
        initialize();
        let memory: &'static mut [f64] = Box::leak(vec![0.25; 2].into_boxed_slice());
        exec(
            "import sys, types\nsys.modules['elsewhere'] = elsewhere = types.ModuleType('elsewhere')",
        );
        let elsewhere = eval_object("elsewhere");
        for (scope, name, handle) in [
            (0, "held_object", host_object(0)),
            (0, "held_memory", share(memory, 0).unwrap()),
            (0, "main_object", host_object(1)),
            (elsewhere, "other_object", host_object(2)),
            (elsewhere, "other_memory", share(memory, 0).unwrap()),
        ] {
            let key = std::ffi::CString::new(name).unwrap();
            let value = pybridge::value::pyb_value::from_object(handle);
            let target = if scope == 0 {
                import("__main__")
            } else {
                scope
            };
            ok(unsafe { pybridge::call::pyb_setattr(target, key.as_ptr(), &value) });
            if scope == 0 {
                release(target);
            }
            release(handle);
        }
        release(elsewhere);
        // A daemon thread running a function of __main__ holds the first two
        // in its arguments, waiting for ever.
        exec(
            "import threading\n\
             started, never = threading.Event(), threading.Event()\n\
             def hold(obj, mem):\n    started.set()\n    never.wait()\n\
             threading.Thread(target=hold, args=(held_object, held_memory), daemon=True).start()\n\
             started.wait()\n\
             del held_object, held_memory, elsewhere",
        );
        ok(shutdown(10_000, 0));
        // Finalization let go of the other module's globals; what the frozen
        // thread reaches (its arguments, its function's module globals) it never frees.
        let freed: Vec<usize> = FREED.iter().map(|n| n.load(Ordering::SeqCst)).collect();
        assert_eq!((freed, RELEASED.load(Ordering::SeqCst)), (vec![0, 0, 1], 1));
    });
}

#[test]
fn a_view_in_a_reference_cycle_is_collected_once_released() {
    within(LIMIT, "a view in a cycle", || {
        initialize();
        exec("import ctypes, gc\ncells = (ctypes.py_object * 2)()");
        let cells = eval_object("cells");
        let mut held = view(cells, 0);
        release(cells);
        let marker = host_object(0);
        set_global("owner", held.owner);
        set_global("marker", marker);
        release(marker);
        // The exporter keeps references to its own view's owner and to a host
        // object: a cycle through the view's export.
        exec("cells[0], cells[1] = owner, marker\ndel owner, marker, cells\ngc.collect()");
        assert_eq!(FREED[0].load(Ordering::SeqCst), 0, "the handle keeps it");
        ok(unsafe { pyb_buffer_release(&mut held) });
        exec("gc.collect()");
        assert_eq!(FREED[0].load(Ordering::SeqCst), 1);
    });
}

/// pybridge sizes a host format itself (running `struct`'s Python code there
/// let an interrupting shutdown's pending exception fire and be reported as a
/// bad format; tests/c/fuzz_api.c). Its sizes must be `struct.calcsize`'s for
/// every prefix and item, and it must refuse exactly what `struct` refuses.
#[test]
fn host_formats_are_sized_as_struct_sizes_them() {
    within(LIMIT, "format sizes", || {
        initialize();
        let mut memory = [0u8; 64];
        for prefix in ["", "@", "=", "<", ">", "!"] {
            for item in "?cbBhHiIlLqQnNefdP".chars() {
                let format = format!("{prefix}{item}");
                exec(&format!(
                    "import struct\ntry:\n    size = struct.calcsize({format:?})\n\
                     except struct.error:\n    size = -1\n"
                ));
                let calc = eval_int("size");
                let c_format = c(&format);
                let mut out = 0;
                let status = unsafe {
                    pyb_buffer_from_host(
                        memory.as_mut_ptr().cast(),
                        64,
                        c_format.as_ptr(),
                        calc.max(1) as usize,
                        0,
                        None,
                        std::ptr::null_mut(),
                        &mut out,
                    )
                };
                if calc < 0 {
                    expect(status, PYB_E_INVALID_ARGUMENT);
                } else {
                    ok(status);
                    release(out);
                }
            }
        }
        ok(shutdown(10_000, 0));
    });
}
