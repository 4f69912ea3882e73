//! Allow-threads regions (`pyb_begin_allow_threads`/`pyb_end_allow_threads`):
//! the calling thread gives whatever GIL it holds away and takes it back at
//! the region's end; a thread that holds none gets a no-op region.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::python::thread_states::{may_touch_cpython, note_attached, thread_holds_gil};
use crate::python::token_diagnostics::misplaced_token;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;
use crate::runtime::gil_stats;
use crate::runtime::thread_slot::{Activity, AllowFrame, CurrentThread, ThreadSlot};
use crate::runtime::token::{MAX_DEPTH, TokenKind};

pub(crate) fn begin_allow_threads(thread: CurrentThread) -> Result<u64> {
    let owner = thread.owner();
    if (owner.allow_frames.len() + owner.noop_regions.len()) as u32 >= MAX_DEPTH {
        return Err(Error::invalid_argument(format!(
            "allow-threads regions nest at most {MAX_DEPTH} deep on one thread"
        )));
    }
    // Does this thread hold the GIL? Through pybridge as a rule, but code inside
    // a scope may have given it away (ctypes), and a Python thread calling a
    // host function holds it without pybridge: ask CPython, from inside the gate.
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    if !(may_touch_cpython(&thread, word) && thread_holds_gil(owner, word)) {
        if !was_busy {
            gate::leave(&thread.busy);
        }
        let token = owner.issue(thread.id, TokenKind::AllowThreadsNoop);
        owner.noop_regions.push(token);
        return Ok(token);
    }
    let depth = owner.depth.get();
    if depth == 0 && owner.generation.get() != word.generation() {
        // Token generations must match the running engine; a state cached from
        // an earlier engine is gone with it.
        owner.tstate.set(std::ptr::null_mut());
        owner.generation.set(word.generation());
        owner.generation_start.set(owner.next_serial());
    }
    thread.set_activity(Activity::AllowThreads);
    gil_stats::gil_given_away(thread);
    // SAFETY: this thread holds the GIL; busy stays set until the region ends.
    let saved = unsafe { ffi::PyEval_SaveThread() };
    let token = owner.issue(thread.id, TokenKind::AllowThreads);
    owner.allow_frames.push(AllowFrame {
        saved_tstate: saved,
        depth,
        epoch: thread.epoch.load(Ordering::Relaxed),
        borrowed: owner.borrowed.get(),
        token,
    });
    owner.depth.set(0);
    owner.borrowed.set(false);
    Ok(token)
}

pub(crate) fn end_allow_threads(thread: CurrentThread, value: u64) -> Result<()> {
    let owner = thread.owner();
    if owner.noop_regions.last() == Some(value) {
        owner.noop_regions.pop();
        return Ok(());
    }
    let Some(top) = owner.allow_frames.last() else {
        return Err(misplaced_token(value, Some(thread)));
    };
    if value != top.token || owner.depth.get() > 0 {
        return Err(misplaced_token(value, Some(thread)));
    }
    owner.allow_frames.pop();
    thread.set_activity(Activity::WaitingForGil);
    // Timed only when the region gave away a hold pybridge timed (not a GIL
    // the thread held without pybridge, such as a Python thread's).
    let wait = if top.depth > 0 {
        gil_stats::wait_begins()
    } else {
        0
    };
    // SAFETY: the thread state this thread saved at begin; the shutdown side
    // waits for busy threads, so the interpreter is alive.
    unsafe { ffi::PyEval_RestoreThread(top.saved_tstate) };
    note_attached(owner, top.saved_tstate);
    gil_stats::gil_taken(thread, wait);
    owner.depth.set(top.depth);
    thread.epoch.store(top.epoch, Ordering::Relaxed);
    owner.borrowed.set(top.borrowed);
    if top.depth > 0 {
        thread.set_activity(Activity::HoldingGil);
    } else if owner.allow_frames.is_empty() {
        // The thread holds the GIL the way it did before the region (not through pybridge).
        thread.set_activity(Activity::Idle);
        gate::leave(&thread.busy);
    }
    Ok(())
}

/// Runs `body` with whatever GIL the calling thread holds given away, so that
/// the threads `body` waits for can take it.
pub(crate) fn with_gil_given_away<T>(body: impl FnOnce() -> T) -> T {
    let thread = ThreadSlot::current();
    let region = begin_allow_threads(thread);
    let result = body();
    if let Ok(region) = region {
        if let Err(error) = end_allow_threads(thread, region) {
            log::error!("pybridge could not take its GIL back: {}", error.message);
        }
    }
    result
}
