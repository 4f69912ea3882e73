//! GIL statistics as host threads make them: the hooks `python/gil_scopes.rs` and `python/allow_threads.rs` call
//! around every `PyEval_RestoreThread` and `PyEval_SaveThread` of a host
//! thread, and the per-thread and total readings (`capi/stats.rs`). The
//! records and the switch are `gil_times.rs`; it names no thread record, so
//! the thread records can hold it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::runtime::gil_times::{self, LongestHold, Totals};
use crate::runtime::thread_slot::{CurrentThread, ThreadSlot, all_slots};
use crate::sys::clock;

/// Called right before a thread blocks to take a GIL: the start of the wait,
/// or 0 when timing is off.
#[inline(always)]
pub(crate) fn wait_begins() -> u64 {
    if gil_times::enabled() {
        clock::ticks()
    } else {
        0
    }
}

/// Called right after the thread got the GIL: records the wait that began at
/// `began` (0: not timed) and starts the hold.
#[inline(always)]
pub(crate) fn gil_taken(thread: CurrentThread, began: u64) {
    if began != 0 {
        record_wait(thread, began);
    }
}

#[inline(never)]
fn record_wait(thread: CurrentThread, began: u64) {
    let now = clock::ticks();
    let times = thread.gil_times.current();
    times.acquisitions.store(
        times.acquisitions.load(Ordering::Relaxed) + 1,
        Ordering::Relaxed,
    );
    times.wait.record(now.saturating_sub(began));
    thread.owner().gil_hold_start.set(now);
}

/// Called right before the thread gives a GIL away: records the hold, if its
/// start was timed.
#[inline(always)]
pub(crate) fn gil_given_away(thread: CurrentThread) {
    let began = thread.owner().gil_hold_start.get();
    if began != 0 {
        record_hold(thread, began);
    }
}

#[inline(never)]
fn record_hold(thread: CurrentThread, began: u64) {
    thread.owner().gil_hold_start.set(0);
    let held = clock::ticks().saturating_sub(began);
    thread.gil_times.current().hold.record(held);
    if held > gil_times::LONGEST_TICKS.load(Ordering::Relaxed) {
        gil_times::note_longest(thread.id, thread.os_tid, &thread.name, held);
    }
}

/// One live thread's figures, in ticks.
pub(crate) struct ThreadTotals {
    pub slot: Arc<ThreadSlot>,
    pub totals: Totals,
}

/// Every live host thread that took a GIL since the last reset, oldest first.
pub(crate) fn threads() -> Vec<ThreadTotals> {
    all_slots()
        .into_iter()
        .filter_map(|slot| {
            let totals = gil_times::totals_of(&slot.gil_times)?;
            Some(ThreadTotals { slot, totals })
        })
        .collect()
}

/// All threads together, exited ones included, and the longest hold.
pub(crate) fn total() -> (Totals, Option<LongestHold>) {
    gil_times::total(|add| {
        for slot in all_slots() {
            add(&slot.gil_times);
        }
    })
}
