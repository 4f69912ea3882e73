//! One record per host thread that has used pybridge: its persistent Python
//! thread states, its frame stack (`runtime/frames.rs`: GIL scopes, regions,
//! interpreter switches), and the flags the shutdown side reads.
//!
//! The record lives in a process-wide registry (so shutdown can see every
//! thread) and is reached from its own thread through one thread-local pointer
//! kept in initial-exec TLS (`sys/current_slot.rs`); Rust TLS is used only
//! for the thread-exit hook.

use std::cell::Cell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pyo3::ffi;

use crate::runtime::cell_stack::CellStack;
use crate::runtime::frames::FrameStack;
use crate::runtime::gate::lock_unless_forked;
use crate::runtime::gil_times::{self, GilTimes};
use crate::runtime::ids::{InterpreterId, ThreadIdent};
use crate::runtime::token::{Serials, Token, TokenKind, TokenValue};
use crate::sys::{current_slot, thread as os_thread};

/// What a thread is doing, for the messages that name what blocks a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Activity {
    Idle = 0,
    WaitingForGil = 1,
    HoldingGil = 2,
    AllowThreads = 3,
}

/// This thread's own thread state in one sub-interpreter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubinterpreterState {
    pub interpreter: InterpreterId,
    pub tstate: *mut ffi::PyThreadState,
}

/// State only the owning thread reads or writes, reached only through its
/// [`CurrentThread`]. Every field is a `Cell` or a [`CellStack`]: no `&mut`
/// into it ever exists, so Python code run in the middle of a GIL operation
/// (`PyThreadState_Clear` running `__del__`, which calls back into pybridge)
/// cannot alias a borrow the outer operation still holds.
#[derive(Debug)]
pub(crate) struct OwnerState {
    /// This thread's persistent thread state; valid only while `generation`
    /// equals the running engine's generation.
    pub tstate: Cell<*mut ffi::PyThreadState>,
    /// True when pybridge created `tstate` and must delete it.
    pub owns_tstate: Cell<bool>,
    pub generation: Cell<u32>,
    /// The state pybridge made (in any interpreter) that it attached last on
    /// this thread, which CPython (3.12+) therefore reports as the thread's
    /// `PyGILState` state until something else is attached. Its interpreter
    /// may have ended since (an engine's end, a sub-interpreter's destroy)
    /// without CPython forgetting it: 3.15 goes on reporting the freed state,
    /// and attaching it hung or crashed. So it is never adopted as the main
    /// state; compared, never dereferenced. Null after adopting another's.
    pub last_attached: Cell<*mut ffi::PyThreadState>,
    /// The open GIL scopes, allow-threads regions and interpreter switches,
    /// innermost last: the nesting depth and the interpreter are read off it.
    pub frames: FrameStack,
    /// Where this thread's token serials come from.
    serials: Cell<Serials>,
    /// The first serial issued under the current `generation`: older tokens
    /// of this thread come from an earlier engine (for messages only).
    pub generation_start: Cell<u64>,
    /// This thread's thread states in sub-interpreters (kept, like the main one).
    pub subinterpreter_states: CellStack<SubinterpreterState>,
    /// When this thread's current GIL hold began, in clock ticks; 0 when it
    /// is not timed (GIL statistics off, or no GIL held through pybridge).
    pub gil_hold_start: Cell<u64>,
}

pub(crate) struct ThreadSlot {
    /// Unique for the life of the process.
    pub id: u64,
    /// The gate flag: set while the thread holds the GIL through pybridge, is in
    /// an allow-threads region that will take it back, or is about to touch CPython.
    pub busy: AtomicBool,
    pub activity: AtomicU8,
    /// Bumped by the owner on every outermost acquire: tokens carry it, so a
    /// token from a closed scope never matches a new one of the same depth, and
    /// the shutdown side uses it to tell a thread that kept the GIL from one
    /// that took it again. Atomic only so the shutdown side may read it.
    pub epoch: AtomicU32,
    pub os_tid: i32,
    pub pthread_id: std::ffi::c_ulong,
    /// The operating system's name for the thread when it first used
    /// pybridge (`sys::thread::own_name`).
    pub name: String,
    /// The interpreter this thread works in now: 0 for the main one, else the
    /// sub-interpreter's id. A published copy of what the owner's frames say
    /// (`FrameStack::interpreter`), kept because other threads must read it
    /// (a shutdown or a destroy finds and interrupts threads by interpreter)
    /// and the owner's hot path reads it too (every new handle is filed under
    /// it); written only by [`CurrentThread::publish_interpreter`].
    interpreter: AtomicU64,
    /// Set on pybridge's own keeper threads, which a shutdown must never interrupt.
    pub internal: AtomicBool,
    /// How long this thread waited for and held GILs (written by the owner only).
    pub gil_times: GilTimes,
    /// Private: reached only through [`CurrentThread::owner`].
    owner: OwnerState,
}

// SAFETY: `owner` (the one field that is not atomic or immutable) is reached
// only through a `CurrentThread`, which is made only from the calling thread's
// own thread-local pointer and is `!Send`; so only the owning thread touches it.
unsafe impl Sync for ThreadSlot {}
unsafe impl Send for ThreadSlot {}

/// The calling thread's own slot: the only way to its [`OwnerState`]. `!Send`
/// (it never leaves the thread), `Copy` (cheap to pass down the call chain).
/// Other threads see slots only as `&ThreadSlot` or `Arc<ThreadSlot>` (the
/// shutdown side, through `all_slots`), which reach the atomic fields alone.
#[derive(Clone, Copy)]
pub(crate) struct CurrentThread {
    slot: &'static ThreadSlot,
    _not_send: PhantomData<*const ()>,
}

impl CurrentThread {
    /// # Safety
    /// `slot` is the calling thread's own slot, kept alive until it exits.
    #[inline(always)]
    unsafe fn new(slot: &'static ThreadSlot) -> CurrentThread {
        CurrentThread {
            slot,
            _not_send: PhantomData,
        }
    }

    /// This thread's private state.
    #[inline(always)]
    pub(crate) fn owner(&self) -> &OwnerState {
        &self.slot.owner
    }

    /// Publishes the interpreter the frames now say this thread works in;
    /// called after each switch is pushed or taken out.
    pub(crate) fn publish_interpreter(&self) {
        let id = self.owner().frames.interpreter();
        self.slot.interpreter.store(id.0, Ordering::Relaxed);
    }
}

impl Deref for CurrentThread {
    type Target = ThreadSlot;

    #[inline(always)]
    fn deref(&self) -> &ThreadSlot {
        self.slot
    }
}

static REGISTRY: Mutex<Vec<Arc<ThreadSlot>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Which live thread (slot id) each token-serial block was given to: error
/// messages name the thread a misplaced token belongs to. One entry per 2^16
/// tokens a thread issues; removed when the thread exits.
static BLOCK_OWNERS: Mutex<Option<HashMap<u64, u64>>> = Mutex::new(None);

#[inline(always)]
fn current_ptr() -> *const ThreadSlot {
    current_slot::get().cast()
}

fn set_current_ptr(slot: *const ThreadSlot) {
    current_slot::set(slot.cast())
}

/// What a thread's exit does with its record's CPython state (`gil` registers
/// it when an engine first starts: before that no record has a thread state).
static ON_THREAD_EXIT: OnceLock<fn(CurrentThread)> = OnceLock::new();

pub(crate) fn on_thread_exit(handler: fn(CurrentThread)) {
    ON_THREAD_EXIT.get_or_init(|| handler);
}

/// Runs when a thread with a slot exits (`sys::thread_exit`): frees the
/// thread state and unregisters.
fn exit_hook() {
    let ptr = current_ptr();
    if ptr.is_null() {
        return;
    }
    // SAFETY: this thread's own slot; the registry keeps it alive until
    // it is removed below (or for ever: see `create`).
    let slot = unsafe { CurrentThread::new(&*ptr) };
    let handler = ON_THREAD_EXIT.get().copied();
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(handler) = handler {
            handler(slot)
        }
    })) {
        crate::runtime::error::Error::from_panic(payload);
    }
    set_current_ptr(std::ptr::null());
    // In a fork() child (whose last thread's exit runs this from `exit()`
    // too) a table whose lock a thread that is gone holds keeps its entry.
    if let Some(owners) = lock_unless_forked(&BLOCK_OWNERS)
        .as_mut()
        .and_then(|owners| owners.as_mut())
    {
        owners.retain(|_, id| *id != slot.id);
    }
    // The longest hold keeps naming this thread once it has gone, by the
    // name it ended with (a host may name a thread after its first call).
    gil_times::thread_exits(slot.id, os_thread::own_name());
    gil_times::retire(&slot.gil_times, || {
        if let Some(mut registry) = lock_unless_forked(&REGISTRY) {
            registry.retain(|entry| !std::ptr::eq(Arc::as_ptr(entry), ptr));
        }
    });
}

/// True when no thread holds the locks a thread's first call or exit takes.
/// For a fork() child, which may run an engine of its own only when no thread
/// that is gone there held one: it asks without waiting.
pub(crate) fn bookkeeping_unlocked() -> bool {
    REGISTRY.try_lock().is_some()
        && BLOCK_OWNERS.try_lock().is_some()
        && gil_times::bookkeeping_unlocked()
}

impl ThreadSlot {
    /// The calling thread's slot, created on first use.
    #[inline(always)]
    pub(crate) fn current() -> CurrentThread {
        let ptr = current_ptr();
        if ptr.is_null() {
            return Self::create();
        }
        // SAFETY: the thread-local pointer names this thread's own slot, which
        // the registry keeps alive until this thread exits.
        unsafe { CurrentThread::new(&*ptr) }
    }

    /// The calling thread's slot if it has one (no allocation).
    #[inline(always)]
    pub(crate) fn existing() -> Option<CurrentThread> {
        let ptr = current_ptr();
        // SAFETY: as in `current`.
        unsafe { ptr.as_ref().map(|slot| CurrentThread::new(slot)) }
    }

    #[cold]
    #[inline(never)]
    fn create() -> CurrentThread {
        let slot = Arc::new(ThreadSlot {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            busy: AtomicBool::new(false),
            activity: AtomicU8::new(Activity::Idle as u8),
            epoch: AtomicU32::new(0),
            os_tid: os_thread::os_tid(),
            pthread_id: os_thread::pthread_id(),
            name: os_thread::own_name(),
            interpreter: AtomicU64::new(0),
            internal: AtomicBool::new(false),
            owner: OwnerState {
                tstate: Cell::new(std::ptr::null_mut()),
                owns_tstate: Cell::new(false),
                generation: Cell::new(0),
                last_attached: Cell::new(std::ptr::null_mut()),
                frames: FrameStack::new(),
                serials: Cell::new(Serials::new()),
                generation_start: Cell::new(0),
                subinterpreter_states: CellStack::new(),
                gil_hold_start: Cell::new(0),
            },
            gil_times: GilTimes::new(),
        });
        crate::sys::stack_check::warn_if_stack_too_small(|| slot.describe());
        let ptr = Arc::as_ptr(&slot);
        match lock_unless_forked(&REGISTRY) {
            Some(mut registry) => registry.push(slot),
            // A fork() child of a running engine whose registry lock a thread
            // that is gone holds (one registering or exiting at the fork):
            // waiting for it hung the child before its call could return
            // PYB_E_FORKED (tests/c/fuzz_api.c). Nothing reads the registry
            // there, so the slot is kept for the rest of the process instead.
            None => std::mem::forget(slot),
        }
        set_current_ptr(ptr);
        crate::sys::thread_exit::arm(exit_hook);
        // SAFETY: this thread's own slot, registered (or forgotten) above;
        // lives until this thread exits.
        unsafe { CurrentThread::new(&*ptr) }
    }

    pub(crate) fn set_activity(&self, activity: Activity) {
        self.activity.store(activity as u8, Ordering::Relaxed);
    }

    pub(crate) fn activity(&self) -> Activity {
        match self.activity.load(Ordering::Relaxed) {
            1 => Activity::WaitingForGil,
            2 => Activity::HoldingGil,
            3 => Activity::AllowThreads,
            _ => Activity::Idle,
        }
    }

    /// The ident CPython knows this thread by.
    // `c_ulong` is `u64` here and 32 bits on Windows.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn ident(&self) -> ThreadIdent {
        ThreadIdent(self.pthread_id as u64)
    }

    /// The interpreter this thread works in now (any thread may ask).
    #[inline(always)]
    pub(crate) fn current_interpreter(&self) -> InterpreterId {
        InterpreterId(self.interpreter.load(Ordering::Relaxed))
    }

    /// True on the engine thread (Python's main thread) while it runs.
    pub(crate) fn is_engine_thread(&self) -> bool {
        self.os_tid == crate::runtime::gate::engine_thread_tid()
    }

    /// "thread 'name' (tid N)", for messages.
    pub(crate) fn describe(&self) -> String {
        format!("host thread '{}' (tid {})", self.name, self.os_tid)
    }
}

/// A snapshot of every registered slot, for the shutdown side.
pub(crate) fn all_slots() -> Vec<Arc<ThreadSlot>> {
    // (None in a fork() child where a thread that is gone holds it.)
    lock_unless_forked(&REGISTRY)
        .map(|slots| slots.clone())
        .unwrap_or_default()
}

impl OwnerState {
    /// A new token of `kind` for the thread whose slot id is `slot_id`.
    #[inline(always)]
    pub(crate) fn issue(&self, slot_id: u64, kind: TokenKind) -> TokenValue {
        let mut serials = self.serials.get();
        let serial = serials.take(|block| {
            if let Some(mut owners) = lock_unless_forked(&BLOCK_OWNERS) {
                owners
                    .get_or_insert_with(HashMap::new)
                    .insert(block, slot_id);
            }
        });
        self.serials.set(serials);
        Token { serial, kind }.encode()
    }

    /// The serial `issue` will use next.
    pub(crate) fn next_serial(&self) -> u64 {
        self.serials.get().peek()
    }
}

/// The live thread a token was issued to, if it is still alive.
pub(crate) fn issuer_of(token: Token) -> Option<Arc<ThreadSlot>> {
    let id = *lock_unless_forked(&BLOCK_OWNERS)?
        .as_ref()?
        .get(&token.block())?;
    lock_unless_forked(&REGISTRY)?
        .iter()
        .find(|slot| slot.id == id)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::gate::{self, GateState};
    use std::sync::mpsc;
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Spawns `body` and returns a receiver that hears from a joiner once the
    /// thread has ended, its exit hook included.
    fn ended_after(body: impl FnOnce() + Send + 'static) -> mpsc::Receiver<()> {
        let thread = std::thread::spawn(body);
        let (ended_tx, ended_rx) = mpsc::channel();
        std::thread::spawn(move || {
            thread.join().unwrap();
            let _ = ended_tx.send(());
        });
        ended_rx
    }

    /// In a fork() child of a running engine, a thread's first call and its
    /// exit take none of the bookkeeping locks, which a thread that is gone
    /// may hold there (as this test's own guards stand in for). Changes the
    /// process's gate: nextest runs each test in a process of its own.
    #[test]
    fn a_fork_childs_threads_come_and_go_without_the_bookkeeping_locks() {
        // A thread with a slot (and an exit hook) from before the fork.
        let (made_tx, made_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let old_thread_ended = ended_after(move || {
            made_tx.send(ThreadSlot::current().id).unwrap();
            let _ = go_rx.recv();
        });
        let old_id = made_rx.recv_timeout(LIMIT).unwrap();
        assert!(REGISTRY.lock().iter().any(|slot| slot.id == old_id));

        let held = (REGISTRY.lock(), BLOCK_OWNERS.lock());
        assert!(!bookkeeping_unlocked());
        gate::store(gate::EngineWord::new(1, GateState::Forked));
        go_tx.send(()).unwrap();
        old_thread_ended
            .recv_timeout(LIMIT)
            .expect("a thread's exit waited for the bookkeeping locks");
        let (id_tx, id_rx) = mpsc::channel();
        let new_thread_ended = ended_after(move || id_tx.send(ThreadSlot::current().id).unwrap());
        let new_id = id_rx
            .recv_timeout(LIMIT)
            .expect("a new thread's first call waited for the registry");
        new_thread_ended
            .recv_timeout(LIMIT)
            .expect("a new thread's exit waited for the bookkeeping locks");
        // The readers do without the tables instead of waiting.
        assert!(all_slots().is_empty());
        let token = Token::decode(ThreadSlot::current().owner().issue(1, TokenKind::Gil)).unwrap();
        assert!(issuer_of(token).is_none());
        drop(held);
        assert!(bookkeeping_unlocked());
        assert!(REGISTRY.lock().iter().all(|slot| slot.id != new_id));
    }
}
