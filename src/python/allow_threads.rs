//! Allow-threads regions (`pyb_begin_allow_threads`/`pyb_end_allow_threads`):
//! the calling thread gives whatever GIL it holds away and takes it back at
//! the region's end; a thread that holds none gets a no-op region.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::python::thread_states::{may_touch_cpython, note_attached, thread_holds_gil};
use crate::python::token_diagnostics::misplaced_token;
use crate::runtime::error::{Error, Result};
use crate::runtime::frames::{AllowFrame, Frame};
use crate::runtime::gate;
use crate::runtime::gil_stats;
use crate::runtime::thread_slot::{Activity, CurrentThread, ThreadSlot};
use crate::runtime::token::{MAX_DEPTH, TokenKind, TokenValue};

pub(crate) fn begin_allow_threads(thread: CurrentThread) -> Result<TokenValue> {
    let owner = thread.owner();
    if owner.frames.regions_open() >= MAX_DEPTH as usize {
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
        owner.frames.push(Frame::NoopAllowThreads { token });
        return Ok(token);
    }
    if owner.frames.depth() == 0 && owner.generation.get() != word.generation() {
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
    // The scopes open now wait below the region: the nesting starts again above it.
    owner.frames.push(Frame::AllowThreads(AllowFrame {
        token,
        saved_tstate: saved,
        epoch: thread.epoch.load(Ordering::Relaxed),
    }));
    Ok(token)
}

pub(crate) fn end_allow_threads(thread: CurrentThread, value: TokenValue) -> Result<()> {
    let owner = thread.owner();
    // A no-op region closes when it is the innermost no-op one, wherever the
    // other frames are (`runtime/frames.rs`); a region that gave the GIL away
    // only with no scope opened inside it still open.
    if owner.frames.end_noop_region(value) {
        return Ok(());
    }
    let Some(region) = owner.frames.end_region(value) else {
        return Err(misplaced_token(value, Some(thread)));
    };
    // The scopes the region interrupted are the innermost again.
    let depth = owner.frames.depth();
    thread.set_activity(Activity::WaitingForGil);
    // Timed only when the region gave away a hold pybridge timed (not a GIL
    // the thread held without pybridge, such as a Python thread's).
    let wait = if depth > 0 {
        gil_stats::wait_begins()
    } else {
        0
    };
    // SAFETY: the thread state this thread saved at begin; the shutdown side
    // waits for busy threads, so the interpreter is alive.
    unsafe { ffi::PyEval_RestoreThread(region.saved_tstate) };
    note_attached(owner, region.saved_tstate);
    gil_stats::gil_taken(thread, wait);
    thread.epoch.store(region.epoch, Ordering::Relaxed);
    if depth > 0 {
        thread.set_activity(Activity::HoldingGil);
    } else if !owner.frames.in_allow_threads_region() {
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
