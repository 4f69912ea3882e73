//! Thread states that CPython frees while a thread still points at them, held
//! back from reuse until that thread has moved on.
//!
//! From 3.12, CPython makes every state a thread attaches that thread's
//! `PyGILState` state, sub-interpreter states included (measured on 3.12-3.15),
//! in a thread-local slot only that thread can change. A sub-interpreter's end
//! frees the states host threads left there from another thread (its keeper
//! deletes them before `Py_EndInterpreter`), which leaves such a thread's slot
//! dangling, and its next attach of any state writes into the freed one
//! (`bind_gilstate_tstate` clears its `bound_gilstate` bit): one bit of memory
//! that may belong to something else by then. A pool worker that entered an
//! interpreter with no main scope met this on every pool destroy.
//!
//! So pybridge wraps CPython's raw allocator. Before such an end it names the
//! states it will free (`expect_freed_elsewhere`); when CPython frees one, the
//! block is held instead of returned to `malloc`, until the thread it belonged
//! to has attached another state or exited (`release`), when it is freed for
//! real. Threads that never come back keep theirs held: a few KiB each.
//!
//! An engine's end needs none of this (measured): 3.12 and 3.13 forget every
//! thread's slot with the interpreter (a `PyGILState_GetThisThreadState()`
//! of NULL after a restart), and 3.14 and 3.15, which keep reporting the old
//! state, keep it allocated too (nothing was freed through this allocator by
//! a finalization with host threads' states in it).
//!
//! Only where pybridge initialized Python (a guest engine leaves the
//! allocator alone), and only from 3.12 (3.10 and 3.11 never write into a
//! thread's previous state).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::ffi;

use crate::runtime::stats;

/// Open addressing, linear probing; a power of two.
const SLOTS: usize = 16384;
/// An entry sits at most this far from its home slot, so a lookup stops
/// after this many slots even when tombstones have filled the table.
const MAX_PROBE: usize = 64;
const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
/// Set on an entry whose block CPython has freed (blocks are 16-byte aligned).
const FREED: usize = 2;

static TABLE: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(EMPTY) }; SLOTS];
/// Entries that are neither empty nor tombstones: frees look nothing up while 0.
static ENTRIES: AtomicUsize = AtomicUsize::new(0);

/// The allocator wrapped, as `usize`s (read by any thread that frees).
static BASE_CTX: AtomicUsize = AtomicUsize::new(0);
static BASE_MALLOC: AtomicUsize = AtomicUsize::new(0);
static BASE_CALLOC: AtomicUsize = AtomicUsize::new(0);
static BASE_REALLOC: AtomicUsize = AtomicUsize::new(0);
static BASE_FREE: AtomicUsize = AtomicUsize::new(0);

type Malloc = extern "C" fn(*mut c_void, usize) -> *mut c_void;
type Calloc = extern "C" fn(*mut c_void, usize, usize) -> *mut c_void;
type Realloc = extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void;
type Free = extern "C" fn(*mut c_void, *mut c_void);

fn base_ctx() -> *mut c_void {
    BASE_CTX.load(Ordering::Acquire) as *mut c_void
}

extern "C" fn held_malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: set from CPython's allocator before this one was installed.
    let base: Malloc = unsafe { std::mem::transmute(BASE_MALLOC.load(Ordering::Acquire)) };
    base(base_ctx(), size)
}

extern "C" fn held_calloc(_ctx: *mut c_void, count: usize, size: usize) -> *mut c_void {
    // SAFETY: as in `held_malloc`.
    let base: Calloc = unsafe { std::mem::transmute(BASE_CALLOC.load(Ordering::Acquire)) };
    base(base_ctx(), count, size)
}

extern "C" fn held_realloc(_ctx: *mut c_void, block: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as in `held_malloc`.
    let base: Realloc = unsafe { std::mem::transmute(BASE_REALLOC.load(Ordering::Acquire)) };
    base(base_ctx(), block, size)
}

extern "C" fn held_free(_ctx: *mut c_void, block: *mut c_void) {
    if !block.is_null() && ENTRIES.load(Ordering::Acquire) != 0 && hold(block as usize) {
        return;
    }
    free_for_real(block as usize);
}

fn free_for_real(block: usize) {
    // SAFETY: as in `held_malloc`.
    let base: Free = unsafe { std::mem::transmute(BASE_FREE.load(Ordering::Acquire)) };
    base(base_ctx(), block as *mut c_void);
}

/// Wraps CPython's raw allocator. Call on the engine thread right after
/// `Py_InitializeFromConfig`: a re-initialization puts CPython's default
/// allocators back, so each engine installs it again. A thread freeing
/// meanwhile may read the old and new functions mixed: both forward to the
/// same allocator with the same context.
pub(crate) fn install() {
    if !cfg!(Py_3_12) {
        return;
    }
    let mut current = ffi::PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    };
    // SAFETY: fills `current` with the raw domain's allocator.
    unsafe { ffi::PyMem_GetAllocator(ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut current) };
    let (Some(malloc), Some(calloc), Some(realloc), Some(free)) = (
        current.malloc,
        current.calloc,
        current.realloc,
        current.free,
    ) else {
        log::warn!("CPython's raw allocator is incomplete; freed thread states are not held");
        return;
    };
    if free as usize == held_free as *const () as usize {
        return;
    }
    BASE_CTX.store(current.ctx as usize, Ordering::Release);
    BASE_MALLOC.store(malloc as usize, Ordering::Release);
    BASE_CALLOC.store(calloc as usize, Ordering::Release);
    BASE_REALLOC.store(realloc as usize, Ordering::Release);
    BASE_FREE.store(free as usize, Ordering::Release);
    let mut wrapper = ffi::PyMemAllocatorEx {
        ctx: current.ctx,
        malloc: Some(held_malloc),
        calloc: Some(held_calloc),
        realloc: Some(held_realloc),
        free: Some(held_free),
    };
    // SAFETY: the wrapper forwards to the allocator it replaces.
    unsafe { ffi::PyMem_SetAllocator(ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut wrapper) };
}

fn installed() -> bool {
    BASE_FREE.load(Ordering::Acquire) != 0
}

fn home(block: usize) -> usize {
    ((block >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) & (SLOTS - 1)
}

fn probe(block: usize) -> impl Iterator<Item = &'static AtomicUsize> {
    let start = home(block);
    (0..MAX_PROBE).map(move |step| &TABLE[(start + step) & (SLOTS - 1)])
}

/// `tstate` is about to be freed by a thread other than the one it belongs to
/// (all of an ending interpreter's other states). GIL held, before the free.
pub(crate) fn expect_freed_elsewhere(tstate: *mut ffi::PyThreadState) {
    let block = tstate as usize;
    if !installed() || block == 0 || block & (FREED | TOMBSTONE) != 0 {
        return;
    }
    if probe(block).any(|slot| slot.load(Ordering::Acquire) & !FREED == block) {
        return;
    }
    for slot in probe(block) {
        let seen = slot.load(Ordering::Acquire);
        if (seen == EMPTY || seen == TOMBSTONE)
            && slot
                .compare_exchange(seen, block, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            ENTRIES.fetch_add(1, Ordering::AcqRel);
            return;
        }
    }
    log::warn!("no room to hold thread state {block:#x}: freed at once");
}

/// CPython frees `block`: keep it if it is expected. Any thread.
fn hold(block: usize) -> bool {
    for slot in probe(block) {
        let seen = slot.load(Ordering::Acquire);
        if seen == EMPTY {
            return false;
        }
        if seen == block
            && slot
                .compare_exchange(block, block | FREED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            stats::THREAD_STATES_HELD.fetch_add(1, Ordering::Relaxed);
            return true;
        }
    }
    false
}

/// The thread `tstate` belonged to has attached another state (or is
/// exiting), so nothing points at it any more: free it if CPython did.
pub(crate) fn release(tstate: *mut ffi::PyThreadState) {
    let block = tstate as usize;
    if block == 0 || ENTRIES.load(Ordering::Acquire) == 0 {
        return;
    }
    for slot in probe(block) {
        let seen = slot.load(Ordering::Acquire);
        if seen == EMPTY {
            return;
        }
        if seen & !FREED == block
            && slot
                .compare_exchange(seen, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            ENTRIES.fetch_sub(1, Ordering::AcqRel);
            if seen & FREED != 0 {
                stats::THREAD_STATES_HELD.fetch_sub(1, Ordering::Relaxed);
                free_for_real(block);
            }
            return;
        }
    }
}
