//! Memory that must not outlive its engine: the object handle table and
//! host-function registrations.

mod common;

use std::time::Duration;

use common::*;
use pybridge::call::*;
use pybridge::object::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(120);

/// Resident set size of this process, in bytes.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

const MIB: usize = 1 << 20;

#[test]
fn a_filled_handle_table_gives_its_memory_back_when_the_engine_ends() {
    within(LIMIT, "handle table memory", || {
        initialize();
        let object = eval_object("object()");
        // Warm up the allocator and the interpreter before the baseline.
        release(eval_object("[0] * 1000"));
        let before = rss_bytes();
        const HANDLES: usize = 2_000_000;
        let handles = with_gil(|| {
            (0..HANDLES)
                .map(|_| {
                    let mut clone = 0;
                    ok(unsafe { pyb_object_clone(object, &mut clone) });
                    clone
                })
                .collect::<Vec<_>>()
        });
        let filled = rss_bytes();
        ok(shutdown(10_000, 0));
        let after = rss_bytes();
        eprintln!(
            "RSS: {} MiB before, {} MiB with {HANDLES} handles, {} MiB after shutdown",
            before / MIB,
            filled / MIB,
            after / MIB
        );
        // 2M slots of 24 bytes plus the free list: about 50 MiB.
        assert!(
            filled >= before + 40 * MIB,
            "the fill did not show: {} -> {} MiB",
            before / MIB,
            filled / MIB
        );
        // What stays is the host's own Vec of 2M handles (16 MiB) and noise.
        assert!(
            after <= before + 24 * MIB,
            "the table kept its memory: {} MiB before, {} MiB after shutdown",
            before / MIB,
            after / MIB
        );
        // Old handles stay dead in the next engine; new ones work.
        initialize();
        expect(pyb_object_release(handles[0]), PYB_E_BAD_HANDLE);
        expect(pyb_object_release(handles[HANDLES - 1]), PYB_E_BAD_HANDLE);
        let mut length = 0;
        expect(
            unsafe { pyb_len(handles[7], &mut length) },
            PYB_E_BAD_HANDLE,
        );
        let fresh = eval_object("[1, 2, 3]");
        assert_ne!(fresh, handles[0]);
        ok(unsafe { pyb_len(fresh, &mut length) });
        assert_eq!(length, 3);
        release(fresh);
        ok(shutdown(10_000, 0));
    });
}

/// Each registration's method definition once leaked (about 80 bytes with its
/// name); now the function object's capsule owns it.
#[test]
fn replaced_host_functions_free_their_method_definitions() {
    within(LIMIT, "method definitions", || {
        initialize();
        let before = pybridge::host_function::live_definitions();
        for round in 0..1000 {
            register("defs", &format!("f{}", round % 10), 0, |_, _| PYB_OK);
        }
        // The ten names hold the last ten functions; the 990 replaced are gone.
        assert_eq!(pybridge::host_function::live_definitions() - before, 10);
        exec("import defs\nassert defs.f3() is None\n");
        ok(shutdown(10_000, 0));
        eprintln!(
            "definitions alive after shutdown: {}",
            pybridge::host_function::live_definitions()
        );
        assert!(pybridge::host_function::live_definitions() <= 10);
    });
}
