//! Sub-interpreters as process state: one record per live interpreter, the
//! count of host threads inside each, and the hand-off between a destroyer and
//! the interpreter's keeper thread. No Python object in sight: creating,
//! entering and ending interpreters is `python::subinterpreter`'s job.
//!
//! Entering counts as an entry on the record (`try_enter`), refused once a
//! destroy has closed it; a destroy closes the record, waits on a condition
//! variable for the count to reach zero, and only then asks the keeper to end
//! the interpreter. So no host thread is ever inside an interpreter that ends,
//! and a record is dropped from the registry only when nothing can reach it.

use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};
use pyo3::ffi;

use crate::runtime::config::wait_until;
use crate::runtime::error;
use crate::runtime::gil_cell::InterpreterGilCell;
use crate::runtime::ids::{InterpreterId, ThreadIdent};

/// Set in `entries` while a destroy waits for the threads inside to leave.
const CLOSING: u64 = 1 << 63;

/// Commits the shutdown that asked for interrupts and runs the delivery it
/// is given under the shutdown's lock; false when the shutdown was called
/// off, and then nothing was delivered.
pub(crate) type InterruptCommit = Arc<dyn Fn(&mut dyn FnMut()) -> bool + Send + Sync>;

/// What a keeper is woken for.
pub(crate) enum KeeperWork {
    /// Interrupt these host threads (`ThreadIdent::NONE` matches none) and
    /// the interpreter's own Python threads, once committed.
    Interrupt(Vec<ThreadIdent>, InterruptCommit),
    /// Answer each asker with the names of the Python threads running here.
    Probe(Vec<Sender<error::Result<String>>>),
    /// End the interpreter, or prepare to (a destroyer waits in `ask`).
    End,
}

/// What a destroyer asked of the keeper, and what the keeper answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeeperTalk {
    Idle,
    /// A destroyer asks the keeper to end the interpreter.
    EndRequested,
    /// The keeper found a reason it cannot end now (a Python thread still runs);
    /// nothing changed.
    Refused(String),
    /// A destroyer ending several interpreters together (a pool) asks the
    /// keeper to check that it could end, then hold until told to go.
    PrepareRequested,
    /// The keeper checked (no Python thread runs) and holds this interpreter's
    /// GIL, so none can start, until the destroyer says `Go` or withdraws.
    Prepared,
    /// The destroyer lets a `Prepared` keeper end the interpreter.
    Go,
    /// The keeper passed the point of no return: the interpreter is ending.
    Ending,
    /// The interpreter is gone.
    Ended,
}

pub(crate) struct InterpreterRecord {
    /// Its `pyb_interpreter` handle.
    pub id: InterpreterId,
    pub own_gil: bool,
    /// The engine generation the interpreter was made under.
    pub generation: u32,
    /// The pool it belongs to (0: none); only the pool's destroy ends it.
    pub pool: AtomicU64,
    /// Set by the keeper once created; valid while the record is registered.
    pub interp: AtomicPtr<ffi::PyInterpreterState>,
    /// Host threads inside, plus `CLOSING`.
    entries: AtomicU64,
    /// Guards the wait for `entries` to drain and the keeper hand-off.
    talk: Mutex<KeeperTalk>,
    changed: Condvar,
    /// Host threads an interrupting shutdown asked the keeper to
    /// interrupt, and what commits the shutdown when the keeper delivers one;
    /// guarded by `talk`'s lock for the wake-up.
    interrupts: Mutex<(Vec<ThreadIdent>, Option<InterruptCommit>)>,
    /// Waiting askers of "which Python threads run here?" (an engine shutdown,
    /// before its point of no return); guarded by `talk`'s lock for the wake-up.
    probes: Mutex<Vec<Sender<error::Result<String>>>>,
    /// Held by a destroyer from `close` to the keeper's answer: two destroyers
    /// (a host's and the engine's end, say) must not reopen each other's close.
    pub destroying: Mutex<()>,
    /// This interpreter's free object-handle slots; its GIL is their lock.
    pub free_handle_slots: InterpreterGilCell<Vec<u32>>,
}

impl InterpreterRecord {
    pub(crate) fn new(id: InterpreterId, own_gil: bool, generation: u32) -> Self {
        InterpreterRecord {
            id,
            own_gil,
            generation,
            pool: AtomicU64::new(0),
            interp: AtomicPtr::new(std::ptr::null_mut()),
            entries: AtomicU64::new(0),
            talk: Mutex::new(KeeperTalk::Idle),
            changed: Condvar::new(),
            interrupts: Mutex::new((Vec::new(), None)),
            probes: Mutex::new(Vec::new()),
            destroying: Mutex::new(()),
            free_handle_slots: InterpreterGilCell::new(id, Vec::new()),
        }
    }

    /// Counts one more thread inside, unless a destroy has closed the record.
    #[inline]
    pub(crate) fn try_enter(&self) -> bool {
        let previous = self.entries.fetch_add(1, Ordering::AcqRel);
        if previous & CLOSING != 0 {
            self.leave();
            return false;
        }
        true
    }

    #[inline]
    pub(crate) fn leave(&self) {
        let previous = self.entries.fetch_sub(1, Ordering::AcqRel);
        if previous == CLOSING | 1 {
            // The last one out of a closing record wakes the destroyer.
            let _talk = self.talk.lock();
            self.changed.notify_all();
        }
    }

    /// Closes the record to new entries and waits until no thread is inside or
    /// the deadline passes (then the record is open again and false returned).
    pub(crate) fn close(&self, deadline: Option<Instant>) -> bool {
        self.entries.fetch_or(CLOSING, Ordering::AcqRel);
        let mut talk = self.talk.lock();
        while self.entries.load(Ordering::Acquire) != CLOSING {
            let timed_out = wait_until(&self.changed, &mut talk, deadline);
            if timed_out && self.entries.load(Ordering::Acquire) != CLOSING {
                self.reopen_locked(&talk);
                return false;
            }
        }
        true
    }

    /// Opens a record closed by a destroyer that gave up, unless its
    /// interpreter passed the point of no return (a destroy that returned
    /// `PYB_E_SHUTDOWN_COMMITTED`): an ending interpreter stays closed.
    pub(crate) fn reopen(&self) {
        self.reopen_locked(&self.talk.lock());
    }

    fn reopen_locked(&self, talk: &KeeperTalk) {
        if !matches!(talk, KeeperTalk::Ending | KeeperTalk::Ended) {
            self.entries.fetch_and(!CLOSING, Ordering::AcqRel);
        }
    }

    /// Destroyer side: asks the keeper to end the interpreter, then waits for
    /// its answer until the deadline (see `ask`).
    pub(crate) fn ask_keeper_to_end(&self, deadline: Option<Instant>) -> KeeperTalk {
        self.ask(KeeperTalk::EndRequested, deadline)
    }

    /// Destroyer side, for interpreters that end together or not at all: asks
    /// the keeper to check it could end and hold. `Prepared` (then `go` or
    /// `withdraw` must follow), or `Refused` with nothing changed.
    pub(crate) fn prepare_to_end(&self, deadline: Option<Instant>) -> KeeperTalk {
        self.ask(KeeperTalk::PrepareRequested, deadline)
    }

    /// Destroyer side: lets a `Prepared` keeper end the interpreter and waits
    /// for the end until the deadline: `Ended`, or `Ending` when it is still
    /// ending then (the go cannot be taken back).
    pub(crate) fn go(&self, deadline: Option<Instant>) -> KeeperTalk {
        self.ask(KeeperTalk::Go, deadline)
    }

    /// Destroyer side: sends a `Prepared` keeper back to waiting; nothing changed.
    pub(crate) fn withdraw(&self) {
        let mut talk = self.talk.lock();
        if *talk == KeeperTalk::Prepared {
            *talk = KeeperTalk::Idle;
            self.changed.notify_all();
        }
    }

    /// Posts `request`, then waits for an answer other than the request itself
    /// until the deadline. No answer in time withdraws the request and reads as
    /// a `Refused` without a reason, except a `Go`, which stands. An interpreter
    /// past the point of no return is not asked again: its end is waited for,
    /// and `Ending` comes back when the deadline passes first (CPython runs its
    /// atexit functions and finalizers meanwhile, for as long as they take).
    fn ask(&self, request: KeeperTalk, deadline: Option<Instant>) -> KeeperTalk {
        let mut talk = self.talk.lock();
        // A `Go` stands too (destroyers hold `destroying`, so none is pending here).
        if !matches!(
            *talk,
            KeeperTalk::Ended | KeeperTalk::Ending | KeeperTalk::Go
        ) {
            *talk = request.clone();
            self.changed.notify_all();
        }
        loop {
            match &*talk {
                KeeperTalk::Ending | KeeperTalk::Go => {}
                asked if *asked == request => {}
                answer => {
                    let answer = answer.clone();
                    if !matches!(answer, KeeperTalk::Ended | KeeperTalk::Prepared) {
                        *talk = KeeperTalk::Idle;
                    }
                    return answer;
                }
            }
            let timed_out = wait_until(&self.changed, &mut talk, deadline);
            if timed_out {
                match &*talk {
                    // Told to go, the keeper passes the point of no return.
                    KeeperTalk::Ending | KeeperTalk::Go => return KeeperTalk::Ending,
                    asked if *asked == request => {
                        *talk = KeeperTalk::Idle;
                        return KeeperTalk::Refused(String::new());
                    }
                    _ => {}
                }
            }
        }
    }

    /// Shutdown side: asks the keeper to interrupt these host threads (and the
    /// interpreter's own Python threads); does not wait. The keeper calls
    /// `commit` before it raises anything and raises nothing when it says no
    /// (the shutdown was called off meanwhile).
    pub(crate) fn post_interrupt(&self, host_threads: Vec<ThreadIdent>, commit: InterruptCommit) {
        let _talk = self.talk.lock();
        let mut interrupts = self.interrupts.lock();
        interrupts.0.extend(host_threads);
        interrupts.1 = Some(commit);
        self.changed.notify_all();
    }

    /// Asks the keeper which Python threads run in the interpreter; the
    /// answer (their names, empty for none) comes on the returned channel.
    pub(crate) fn post_probe(&self) -> Receiver<error::Result<String>> {
        let (answer, answered) = std::sync::mpsc::channel();
        let _talk = self.talk.lock();
        self.probes.lock().push(answer);
        self.changed.notify_all();
        answered
    }

    /// Keeper side: blocks until there is work.
    pub(crate) fn wait_for_work(&self) -> KeeperWork {
        let mut talk = self.talk.lock();
        loop {
            let probes = std::mem::take(&mut *self.probes.lock());
            if !probes.is_empty() {
                return KeeperWork::Probe(probes);
            }
            let (threads, commit) = std::mem::take(&mut *self.interrupts.lock());
            if let Some(commit) = commit.filter(|_| !threads.is_empty()) {
                return KeeperWork::Interrupt(threads, commit);
            }
            if matches!(
                *talk,
                KeeperTalk::EndRequested | KeeperTalk::PrepareRequested
            ) {
                return KeeperWork::End;
            }
            self.changed.wait(&mut talk);
        }
    }

    /// Keeper side, holding the interpreter's GIL with no Python thread
    /// running: passes the point of no return if the request still stands (a
    /// destroyer at its deadline withdraws it under the same lock). A request
    /// to prepare is answered `Prepared` and held, GIL and all, until `Go`.
    pub(crate) fn commit_to_end(&self) -> bool {
        let mut talk = self.talk.lock();
        if *talk == KeeperTalk::PrepareRequested {
            *talk = KeeperTalk::Prepared;
            self.changed.notify_all();
            while *talk == KeeperTalk::Prepared {
                self.changed.wait(&mut talk);
            }
        }
        if !matches!(*talk, KeeperTalk::EndRequested | KeeperTalk::Go) {
            return false;
        }
        *talk = KeeperTalk::Ending;
        self.changed.notify_all();
        true
    }

    /// Past the point of no return and not yet ended (a destroy returned
    /// `PYB_E_SHUTDOWN_COMMITTED`, or one is waiting for the end).
    pub(crate) fn is_ending(&self) -> bool {
        matches!(*self.talk.lock(), KeeperTalk::Ending | KeeperTalk::Go)
    }

    /// Keeper side: answers the destroyer.
    pub(crate) fn answer(&self, answer: KeeperTalk) {
        *self.talk.lock() = answer;
        self.changed.notify_all();
    }
}

static REGISTRY: RwLock<Vec<Arc<InterpreterRecord>>> = RwLock::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new, process-unique interpreter id.
pub(crate) fn next_id() -> InterpreterId {
    InterpreterId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn register(record: Arc<InterpreterRecord>) {
    REGISTRY.write().push(record);
}

pub(crate) fn unregister(id: InterpreterId) {
    REGISTRY.write().retain(|record| record.id != id);
}

pub(crate) fn lookup(id: InterpreterId) -> Option<Arc<InterpreterRecord>> {
    REGISTRY
        .read()
        .iter()
        .find(|record| record.id == id)
        .cloned()
}

/// Enters the live record `id` (see `try_enter`) and returns it, borrowed: a
/// record with a thread inside stays registered, so the reference is good
/// until the matching `leave`. `Err(true)`: it exists but is being destroyed.
pub(crate) fn enter(id: InterpreterId) -> Result<&'static InterpreterRecord, bool> {
    let registry = REGISTRY.read();
    let record = registry
        .iter()
        .find(|record| record.id == id)
        .ok_or(false)?;
    if !record.try_enter() {
        return Err(true);
    }
    // SAFETY: see above: an entered record is not dropped before its `leave`,
    // because `unregister` happens only after `close` saw no thread inside.
    Ok(unsafe { &*Arc::as_ptr(record) })
}

/// Every live record, for the engine's end.
pub(crate) fn all() -> Vec<Arc<InterpreterRecord>> {
    REGISTRY.read().clone()
}
