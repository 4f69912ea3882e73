//! The entry gate: no thread reaches CPython unless the engine is running, and
//! the shutdown side can tell, without any lock on the GIL path, when no thread
//! is inside.
//!
//! A thread announces itself by setting its own `busy` flag with a plain store,
//! then reads the engine word. The shutdown side writes the engine word, then
//! issues a process-wide memory barrier (`membarrier`), then reads every busy
//! flag. Either the shutdown side sees the flag, or the thread sees the closed
//! gate (Dekker's pattern with the expensive fence moved to the rare side).
//! Measured: a shared atomic counter cost 1.30-1.33x the raw GIL round trip,
//! per-thread flags with membarrier 1.12-1.16x (see docs/CPYTHON-NOTES.md).

use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU64, Ordering, compiler_fence, fence,
};

use parking_lot::{Mutex, MutexGuard};
use pyo3::ffi;

use crate::sys::membarrier;

/// Gate states. `Finalizing` is reported to hosts as shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum GateState {
    Closed = 0,
    Running = 1,
    ShuttingDown = 2,
    /// `Py_FinalizeEx` runs or is about to: only the engine thread touches CPython.
    Finalizing = 3,
    /// This process is a `fork()` child of one whose engine was running (see `fork`).
    Forked = 4,
}

/// The engine word: generation in the high bits, gate state in the low byte.
/// One load tells a thread both whether it may enter and whether its cached
/// thread state belongs to the running interpreter.
static ENGINE_WORD: AtomicU64 = AtomicU64::new(0);

/// The running interpreter: valid while the gate admits the caller.
static INTERPRETER: AtomicPtr<ffi::PyInterpreterState> = AtomicPtr::new(std::ptr::null_mut());
/// The OS thread id of the engine thread, 0 when none runs.
static ENGINE_THREAD_TID: AtomicI32 = AtomicI32::new(0);

/// The running interpreter (valid while the gate admits the caller).
#[inline(always)]
pub(crate) fn interpreter() -> *mut ffi::PyInterpreterState {
    INTERPRETER.load(Ordering::Acquire)
}

/// Published by the engine thread when the interpreter starts and ends.
pub(crate) fn set_interpreter(interpreter: *mut ffi::PyInterpreterState) {
    INTERPRETER.store(interpreter, Ordering::Release);
}

pub(crate) fn engine_thread_tid() -> i32 {
    ENGINE_THREAD_TID.load(Ordering::Relaxed)
}

/// Set by the engine thread for its life (0 after).
pub(crate) fn set_engine_thread_tid(tid: i32) {
    ENGINE_THREAD_TID.store(tid, Ordering::Relaxed);
}

/// True until `membarrier` is known to work; then entry needs only a compiler fence.
static FENCE_ON_ENTRY: AtomicBool = AtomicBool::new(true);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EngineWord(u64);

impl EngineWord {
    pub(crate) fn new(generation: u32, state: GateState) -> Self {
        EngineWord(((generation as u64) << 8) | state as u64)
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 8) as u32
    }

    pub(crate) fn state(self) -> GateState {
        match self.0 & 0xff {
            1 => GateState::Running,
            2 => GateState::ShuttingDown,
            3 => GateState::Finalizing,
            4 => GateState::Forked,
            _ => GateState::Closed,
        }
    }
}

#[inline(always)]
pub(crate) fn load() -> EngineWord {
    EngineWord(ENGINE_WORD.load(Ordering::Acquire))
}

/// Publishes a new gate state. Callers serialize through the engine lifecycle lock.
pub(crate) fn store(word: EngineWord) {
    ENGINE_WORD.store(word.0, Ordering::SeqCst);
}

/// Marks the calling thread as inside and returns the engine word it must obey.
/// The caller clears `busy` again if the word does not let it in.
#[inline(always)]
pub(crate) fn enter(busy: &AtomicBool) -> EngineWord {
    busy.store(true, Ordering::Relaxed);
    if FENCE_ON_ENTRY.load(Ordering::Relaxed) {
        fence(Ordering::SeqCst);
    } else {
        // The shutdown side's membarrier supplies the hardware fence; this one
        // only stops the compiler from moving the load above the store.
        compiler_fence(Ordering::SeqCst);
    }
    load()
}

/// Marks the calling thread as outside. Release: everything it did in CPython
/// happens-before the shutdown side seeing the flag clear.
#[inline(always)]
pub(crate) fn leave(busy: &AtomicBool) {
    busy.store(false, Ordering::Release);
}

/// `table` locked; in a fork() child of a running engine only when that
/// needs no wait, because a thread that is gone may hold it there (None then:
/// the child does without what the table records). For pybridge's own
/// process-wide tables that a fenced-off child may still touch: thread
/// records, token owners, GIL-time totals.
pub(crate) fn lock_unless_forked<T>(table: &'static Mutex<T>) -> Option<MutexGuard<'static, T>> {
    if load().state() == GateState::Forked {
        table.try_lock()
    } else {
        Some(table.lock())
    }
}

/// Whether this process registered for expedited membarrier: 0 not yet tried,
/// 1 registered, 2 not available.
static MEMBARRIER: AtomicU8 = AtomicU8::new(0);

/// Registers the process for expedited membarrier once; on success the GIL path
/// drops its hardware fence. Kernels without it keep the fence (correct, slower).
/// Runs before each engine starts, with no engine running.
pub(crate) fn prepare() {
    if MEMBARRIER.load(Ordering::Acquire) == 0 {
        MEMBARRIER.store(
            if membarrier::register() { 1 } else { 2 },
            Ordering::Release,
        );
    }
    if MEMBARRIER.load(Ordering::Acquire) == 1 {
        FENCE_ON_ENTRY.store(false, Ordering::SeqCst);
    }
}

/// In a `fork()` child: register again before the next engine rather than rely
/// on the kernel carrying the parent's registration over; a full fence until then.
pub(crate) fn forget_membarrier() {
    FENCE_ON_ENTRY.store(true, Ordering::SeqCst);
    MEMBARRIER.store(0, Ordering::Release);
}

/// The shutdown side's half of the handshake: after this returns, every thread
/// either has its busy flag visible to us or will see the word we stored.
pub(crate) fn barrier() {
    fence(Ordering::SeqCst);
    if !FENCE_ON_ENTRY.load(Ordering::Relaxed) {
        membarrier::fence_all_threads();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_word_keeps_generation_and_state_apart() {
        let states = [
            GateState::Closed,
            GateState::Running,
            GateState::ShuttingDown,
            GateState::Finalizing,
            GateState::Forked,
        ];
        for generation in [0, 1, 255, 256, u32::MAX] {
            for state in states {
                let word = EngineWord::new(generation, state);
                assert_eq!(word.generation(), generation);
                assert_eq!(word.state(), state);
            }
        }
        // A byte no state uses reads as closed: never as a state that admits.
        assert_eq!(EngineWord(0x1_ff).state(), GateState::Closed);
        assert_eq!(EngineWord(0x1_ff).generation(), 1);
    }
}
