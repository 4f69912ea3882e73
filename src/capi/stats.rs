//! `pyb_stats_get` and `pyb_gil_stats_*`: the engine's counters and the GIL's
//! waits and holds, for hosts.

use std::ffi::c_char;

use crate::abi::status::pyb_status;
use crate::capi::boundary::{Versioned, caller_size, ffi_boundary, write_versioned};
use crate::runtime::error::Error;
use crate::runtime::gil_stats;
use crate::runtime::gil_times::{self, Distribution, Totals};
use crate::runtime::thread_slot::all_slots;
use crate::sys::clock;

pub use crate::abi::stats::*;
// `pyb_stats_get`'s snapshot, public for Rust test code written against it
// (the tests here call pyb_stats_get); hidden, and never a C symbol.
#[doc(hidden)]
pub use crate::runtime::stats::snapshot;

impl Versioned for pyb_stats {
    fn set_size(&mut self, size: usize) {
        self.struct_size = size;
    }
}

impl Versioned for pyb_gil_stats {
    fn set_size(&mut self, size: usize) {
        self.struct_size = size;
    }
}

/// Fills `out` (whose `struct_size` the caller sets) with the counters. Any thread.
///
/// A host built against an older, shorter `pyb_stats` gets the fields it
/// knows: only the first `struct_size` bytes are written. A `struct_size` too
/// small to hold itself is `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_stats_get(out: *mut pyb_stats) -> pyb_status {
    ffi_boundary("pyb_stats_get", || {
        // A raw pointer, not `out_ptr`'s reference: the host's struct may be
        // shorter than ours.
        if out.is_null() {
            return Err(Error::null_argument("out"));
        }
        // SAFETY: non-NULL; the caller's struct starts with `struct_size`.
        let size = unsafe { caller_size(out, "pyb_stats") }?;
        // SAFETY: the caller promises `struct_size` writable bytes at `out`.
        unsafe { write_versioned(out.cast(), size, snapshot()) };
        Ok(())
    })
}

/// Switches GIL statistics on (`true`) or off. Any thread, any time, engine
/// running or not (through the release package's loader, a switch before the
/// first `pyb_engine_initialize` is applied when it loads a core); the counts
/// so far are kept (see `pyb_gil_stats_reset`).
/// Also switched on when an engine starts with `PYBRIDGE_GIL_STATS=1` in the
/// environment.
///
/// Off by default: on, a GIL round trip reads the CPU's time-stamp counter
/// three times and stores a few counters, which the benchmark
/// (benches/c/gil_bench.c) measures against the same round trip with them off.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_gil_stats_enable(enabled: bool) -> pyb_status {
    ffi_boundary("pyb_gil_stats_enable", || {
        gil_times::set_enabled(enabled);
        Ok(())
    })
}

/// Forgets every wait and hold recorded so far, of every thread. Any thread.
///
/// Through the release package's loader, this and the other `pyb_gil_stats_*`
/// reads return `PYB_E_NOT_INITIALIZED` until the first `pyb_engine_initialize`
/// has loaded a core (nothing can have been recorded before).
#[unsafe(no_mangle)]
pub extern "C" fn pyb_gil_stats_reset() -> pyb_status {
    ffi_boundary("pyb_gil_stats_reset", || {
        gil_times::reset();
        Ok(())
    })
}

/// Fills `out` (whose `struct_size` the caller sets) with the waits and holds
/// of all host threads together since the last reset, those that exited
/// included, and the longest hold with its thread. Any thread.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (`struct_size`
/// too small to hold itself).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_gil_stats_total(out: *mut pyb_gil_stats) -> pyb_status {
    ffi_boundary("pyb_gil_stats_total", || {
        if out.is_null() {
            return Err(Error::null_argument("out"));
        }
        // SAFETY: non-NULL; the caller's struct starts with `struct_size`.
        let size = unsafe { caller_size(out, "pyb_gil_stats") }?;
        let (totals, longest) = gil_stats::total();
        let mut stats = convert(&totals, clock::nanos_per_tick());
        if let Some(longest) = longest {
            stats.longest_hold_thread_id = longest.thread_id;
            stats.longest_hold_os_thread_id = longest.os_tid;
            // Its kernel id may have gone to a new thread once it exited.
            let alive = all_slots().iter().any(|slot| slot.id == longest.thread_id);
            stats.longest_hold_thread_name = c_name(&if alive {
                current_name(longest.os_tid, &longest.name)
            } else {
                longest.name
            });
        }
        // SAFETY: the caller promises `struct_size` writable bytes at `out`.
        unsafe { write_versioned(out.cast(), size, stats) };
        Ok(())
    })
}

/// Writes one entry per live host thread that took a GIL since the last reset
/// (oldest thread first) to `out[0..capacity]`, and their number to
/// `*count_out`: when it exceeds `capacity`, only the first `capacity` are
/// written. `out` may be NULL when `capacity` is 0 (to ask for the count).
/// The caller sets `out[0].struct_size`; every entry is written with that
/// size and that stride. Any thread.
///
/// Errors: `PYB_E_NULL_ARGUMENT`, `PYB_E_INVALID_ARGUMENT` (`struct_size`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_gil_stats_threads(
    out: *mut pyb_gil_stats,
    capacity: usize,
    count_out: *mut usize,
) -> pyb_status {
    ffi_boundary("pyb_gil_stats_threads", || {
        if count_out.is_null() {
            return Err(Error::null_argument("count_out"));
        }
        if out.is_null() && capacity > 0 {
            return Err(Error::null_argument("out"));
        }
        let size = if capacity > 0 {
            // SAFETY: non-NULL; the caller's first entry starts with `struct_size`.
            unsafe { caller_size(out, "pyb_gil_stats") }?
        } else {
            0
        };
        let threads = gil_stats::threads();
        let rate = clock::nanos_per_tick();
        for (index, thread) in threads.iter().take(capacity).enumerate() {
            let mut stats = convert(&thread.totals, rate);
            stats.thread_id = thread.slot.id;
            stats.os_thread_id = thread.slot.os_tid;
            stats.thread_name = c_name(&current_name(thread.slot.os_tid, &thread.slot.name));
            if thread.totals.acquisitions > 0 {
                stats.longest_hold_thread_id = thread.slot.id;
                stats.longest_hold_os_thread_id = thread.slot.os_tid;
                stats.longest_hold_thread_name = stats.thread_name;
            }
            // SAFETY: the caller promises `capacity` entries of `struct_size` bytes.
            unsafe { write_versioned(out.cast::<u8>().add(index * size), size, stats) };
        }
        // SAFETY: checked non-NULL above.
        unsafe { *count_out = threads.len() };
        Ok(())
    })
}

fn convert(totals: &Totals, nanos_per_tick: f64) -> pyb_gil_stats {
    let ns = |ticks: u64| (ticks as f64 * nanos_per_tick).round() as u64;
    let percentiles = |distribution: &Distribution| {
        [0.5, 0.9, 0.99].map(|fraction| ns(distribution.percentile(fraction)))
    };
    let [wait_p50_ns, wait_p90_ns, wait_p99_ns] = percentiles(&totals.wait);
    let [hold_p50_ns, hold_p90_ns, hold_p99_ns] = percentiles(&totals.hold);
    pyb_gil_stats {
        struct_size: std::mem::size_of::<pyb_gil_stats>(),
        thread_id: 0,
        os_thread_id: 0,
        thread_name: [0; PYB_THREAD_NAME_SIZE],
        acquisitions: totals.acquisitions,
        wait_total_ns: ns(totals.wait.total),
        wait_max_ns: ns(totals.wait.max),
        wait_p50_ns,
        wait_p90_ns,
        wait_p99_ns,
        hold_total_ns: ns(totals.hold.total),
        hold_max_ns: ns(totals.hold.max),
        hold_p50_ns,
        hold_p90_ns,
        hold_p99_ns,
        longest_hold_thread_id: 0,
        longest_hold_os_thread_id: 0,
        longest_hold_thread_name: [0; PYB_THREAD_NAME_SIZE],
        enabled: gil_times::enabled(),
    }
}

/// The thread's name now (hosts often name a thread after it first called
/// pybridge), else the one it had then.
fn current_name(os_tid: i32, then: &str) -> String {
    crate::sys::thread::name_of(os_tid).unwrap_or_else(|| then.to_string())
}

/// `name` as a NUL-terminated C string, cut at a character boundary to fit.
fn c_name(name: &str) -> [c_char; PYB_THREAD_NAME_SIZE] {
    let mut out = [0 as c_char; PYB_THREAD_NAME_SIZE];
    let mut end = name.len().min(PYB_THREAD_NAME_SIZE - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    for (into, byte) in out.iter_mut().zip(&name.as_bytes()[..end]) {
        *into = *byte as c_char;
    }
    out
}

/// Switches GIL statistics on when an engine starts with `PYBRIDGE_GIL_STATS=1`.
pub(crate) fn enable_from_environment() {
    if std::env::var_os("PYBRIDGE_GIL_STATS").is_some_and(|value| value == "1") {
        gil_times::set_enabled(true);
    }
}
