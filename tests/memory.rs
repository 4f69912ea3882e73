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
    const HANDLES: usize = 2_000_000;
    within(LIMIT, "handle table memory", || {
        initialize();
        let object = eval_object("object()");
        // Warm up the allocator and the interpreter before the baseline.
        release(eval_object("[0] * 1000"));
        let before = rss_bytes();
        // PYB_MEMORY_HANDLES=16777215 measures a full table.
        let count: usize = std::env::var("PYB_MEMORY_HANDLES")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(HANDLES);
        // Only three are kept: the host keeps no memory of its own here, so
        // what stays after the shutdown is the table's.
        let handles = with_gil(|| {
            let mut kept = [0; 3];
            for index in 0..count {
                let mut clone = 0;
                ok(unsafe { pyb_object_clone(object, &mut clone) });
                match index {
                    0 => kept[0] = clone,
                    7 => kept[1] = clone,
                    _ if index == count - 1 => kept[2] = clone,
                    _ => {}
                }
            }
            kept
        });
        let filled = rss_bytes();
        ok(shutdown(10_000, 0));
        let after = rss_bytes();
        eprintln!(
            "RSS: {} MiB before, {} MiB with {count} handles, {} MiB after shutdown",
            before / MIB,
            filled / MIB,
            after / MIB
        );
        // 24 bytes a slot plus the free list: about 50 MiB for 2M.
        assert!(
            filled >= before + count * 20,
            "the fill did not show: {} -> {} MiB",
            before / MIB,
            filled / MIB
        );
        // The host keeps three handles: what stays is noise.
        assert!(
            after <= before + 4 * MIB,
            "the table kept its memory: {} MiB before, {} MiB after shutdown",
            before / MIB,
            after / MIB
        );
        // Old handles stay dead in the next engine; new ones work.
        initialize();
        expect(pyb_object_release(handles[0]), PYB_E_BAD_HANDLE);
        expect(pyb_object_release(handles[2]), PYB_E_BAD_HANDLE);
        let mut length = 0;
        expect(
            unsafe { pyb_len(handles[1], &mut length) },
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
