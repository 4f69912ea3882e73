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

fn blank() -> pyb_buffer {
    pyb_buffer {
        struct_size: std::mem::size_of::<pyb_buffer>(),
        owner: 0,
        data: std::ptr::null_mut(),
        len: 0,
        itemsize: 0,
        readonly: false,
        ndim: 0,
        format: std::ptr::null(),
        shape: std::ptr::null(),
        strides: std::ptr::null(),
    }
}

fn try_view(object: pyb_object, flags: u32) -> Result<pyb_buffer, pyb_status> {
    let mut view = blank();
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
        // The owner is a memoryview handle like any other.
        let mut owned = view(object_of("b'abc'"), 0);
        assert!(owned.readonly);
        let mut length = 0;
        ok(unsafe { pybridge::call::pyb_len(owned.owner, &mut length) });
        assert_eq!(length, 3);
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
        let mut short = blank();
        short.struct_size = 16;
        expect(
            unsafe { pyb_buffer_get(bytes, 0, &mut short) },
            PYB_E_INVALID_ARGUMENT,
        );
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
            let mut taken = pyb_buffer { owner, ..blank() };
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
        expect(
            try_share(data, 32, c"dd", 8, 0, &mut out),
            PYB_E_INVALID_ARGUMENT,
        );
        expect(
            try_share(data, 32, c"?!", 8, 0, &mut out),
            PYB_E_INVALID_ARGUMENT,
        );
        assert!(
            last_error().contains("is not a struct-module format"),
            "{}",
            last_error()
        );
        expect(
            try_share(data, 30, c"d", 8, 0, &mut out),
            PYB_E_INVALID_ARGUMENT,
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
