//! Pools of sub-interpreters, each set up by the same code: a caller borrows a
//! free one (waiting up to a deadline on a condition variable), works in it,
//! and gives it back. Counters say how often and how long callers waited.

use std::ffi::CStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::abi::interpreter::pyb_pool_stats;
use crate::abi::status::*;
use crate::python::allow_threads;
use crate::python::gil::GilScope;
use crate::python::interpreter_switch;
use crate::python::subinterpreter;
use crate::runtime::config::{lock_until, wait_until};
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, GateState};
use crate::runtime::ids::InterpreterId;
use crate::runtime::interpreters::{self, InterpreterRecord, KeeperTalk};
use crate::runtime::thread_slot::ThreadSlot;

/// At most this many interpreters in one pool.
pub(crate) const MAX_POOL_SIZE: usize = 256;

struct Members {
    free: Vec<InterpreterId>,
    borrowed: Vec<InterpreterId>,
    /// Set by a destroy: borrowers are refused, returns still accepted.
    closing: bool,
    /// Set by the engine's end, which ended the interpreters: a destroy
    /// waiting for borrowed ones has nothing left to do.
    ended: bool,
}

struct Pool {
    id: u64,
    size: usize,
    members: Mutex<Members>,
    changed: Condvar,
    /// Held by a destroyer for its whole run: two must not undo each other's work.
    destroying: Mutex<()>,
    borrows: AtomicU64,
    waits: AtomicU64,
    timeouts: AtomicU64,
    wait_ns_total: AtomicU64,
    wait_ns_max: AtomicU64,
}

static POOLS: Mutex<Vec<Arc<Pool>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn find(id: u64) -> Result<Arc<Pool>> {
    if id == 0 {
        return Err(Error::new(
            PYB_E_BAD_HANDLE,
            "pool handle is 0, which names no pool; pass a handle pyb_pool_new returned",
        ));
    }
    POOLS
        .lock()
        .iter()
        .find(|pool| pool.id == id)
        .cloned()
        .ok_or_else(|| {
            Error::new(
                PYB_E_BAD_HANDLE,
                format!(
                    "pool handle {id} is not live: it was destroyed (by pyb_pool_destroy or \
                     the engine's shutdown) or never made"
                ),
            )
        })
}

/// Makes `count` interpreters with their own GIL and runs `setup` in each.
pub(crate) fn create(count: usize, setup: Option<&CStr>) -> Result<u64> {
    if count == 0 || count > MAX_POOL_SIZE {
        return Err(Error::invalid_argument(format!(
            "a pool holds 1 to {MAX_POOL_SIZE} interpreters, not {count}"
        )));
    }
    subinterpreter::refuse_unsupported(true)?;
    let generation = gate::load().generation();
    let mut made = Vec::with_capacity(count);
    let outcome = (0..count).try_for_each(|_| {
        let id = subinterpreter::create(true)?;
        made.push(id);
        match setup {
            Some(code) => run_setup(id, code),
            None => Ok(()),
        }
    });
    // The engine's end may overtake a creation: it ends the interpreters made
    // so far (then entering one for its setup is a bad handle) and, once past
    // its point of no return, ends every registered pool (`on_engine_end`).
    let ending = || {
        let word = gate::load();
        word.generation() != generation
            || !matches!(word.state(), GateState::Running | GateState::ShuttingDown)
    };
    if let Err(error) = outcome {
        for id in made {
            let _ = subinterpreter::destroy(id, None);
        }
        return Err(if ending() {
            Error::shutting_down()
        } else {
            error
        });
    }
    let pool_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    for record in made.iter().filter_map(|&id| interpreters::lookup(id)) {
        record.pool.store(pool_id, Ordering::Relaxed);
    }
    let pool = Arc::new(Pool {
        id: pool_id,
        size: count,
        members: Mutex::new(Members {
            free: made,
            borrowed: Vec::new(),
            closing: false,
            ended: false,
        }),
        changed: Condvar::new(),
        destroying: Mutex::new(()),
        borrows: AtomicU64::new(0),
        waits: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        wait_ns_total: AtomicU64::new(0),
        wait_ns_max: AtomicU64::new(0),
    });
    let id = pool.id;
    let mut pools = POOLS.lock();
    // Registered before `on_engine_end` (which takes this lock only after the
    // point of no return), or not at all: a pool registered after it would
    // lend interpreters the engine's end destroyed (the API fuzzer's
    // pyb_pool_new got PYB_E_BAD_HANDLE from such a race).
    // Its interpreters are the engine's end's to destroy, as every other.
    if ending() {
        return Err(Error::shutting_down());
    }
    pools.push(pool);
    Ok(id)
}

fn run_setup(interpreter: InterpreterId, code: &CStr) -> Result<()> {
    let token = interpreter_switch::enter_interpreter(ThreadSlot::current(), interpreter)?;
    let scope = GilScope::adopt(token);
    crate::python::call::run(scope.python(), code, c"<pool setup>", 0)
}

pub(crate) fn borrow(id: u64, deadline: Option<Instant>) -> Result<InterpreterId> {
    let pool = find(id)?;
    let started = Instant::now();
    let mut members = pool.members.lock();
    let mut waited = false;
    loop {
        if members.closing {
            return Err(Error::new(
                PYB_E_SHUTTING_DOWN,
                format!("pool {id} is being destroyed"),
            ));
        }
        if let Some(interpreter) = members.free.pop() {
            members.borrowed.push(interpreter);
            drop(members);
            pool.borrows.fetch_add(1, Ordering::Relaxed);
            if waited {
                pool.note_wait(started);
            }
            return Ok(interpreter);
        }
        if !waited {
            waited = true;
            pool.waits.fetch_add(1, Ordering::Relaxed);
        }
        let timed_out = wait_until(&pool.changed, &mut members, deadline);
        if timed_out && members.free.is_empty() && !members.closing {
            drop(members);
            pool.note_wait(started);
            pool.timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                PYB_E_TIMEOUT,
                format!(
                    "no interpreter of pool {id} came free in time (all {} borrowed)",
                    pool.size
                ),
            ));
        }
    }
}

impl Pool {
    fn note_wait(&self, started: Instant) {
        let waited = started.elapsed().as_nanos() as u64;
        self.wait_ns_total.fetch_add(waited, Ordering::Relaxed);
        self.wait_ns_max.fetch_max(waited, Ordering::Relaxed);
    }
}

pub(crate) fn give_back(id: u64, interpreter: InterpreterId) -> Result<()> {
    let pool = find(id)?;
    let mut members = pool.members.lock();
    let Some(position) = members.borrowed.iter().position(|&b| b == interpreter) else {
        let why = if members.free.contains(&interpreter) {
            "was already given back"
        } else {
            "is not one of its interpreters"
        };
        return Err(Error::invalid_argument(format!(
            "interpreter {interpreter} {why} (pool {id})"
        )));
    };
    members.borrowed.swap_remove(position);
    members.free.push(interpreter);
    pool.changed.notify_all();
    Ok(())
}

/// Destroys the pool and all its interpreters, or changes nothing: refused
/// from inside a member; else waits for every member to come back and every
/// thread inside one to leave, and ends them only once each could end.
pub(crate) fn destroy(id: u64, deadline: Option<Instant>) -> Result<()> {
    let pool = find(id)?;
    let thread = ThreadSlot::current();
    if let Some(inside) = pool
        .member_ids()
        .into_iter()
        .find(|&member| interpreter_switch::is_inside_interpreter(thread, member))
    {
        return Err(Error::new(
            PYB_E_WOULD_DEADLOCK,
            format!(
                "pool {id} was not destroyed: this thread is inside interpreter {inside} of \
                 it (release that scope with pyb_gil_release, and give the interpreter back, \
                 first); it is unchanged"
            ),
        ));
    }
    let _one_destroyer = lock_until(&pool.destroying, deadline).ok_or_else(|| {
        Error::new(
            PYB_E_TIMEOUT,
            format!("pool {id} was not destroyed: another destroy of it was still under way"),
        )
    })?;
    if find(id).is_err() {
        // The other destroyer finished it.
        return Ok(());
    }
    allow_threads::with_gil_given_away(|| pool.end_members(deadline))?;
    POOLS.lock().retain(|pool| pool.id != id);
    Ok(())
}

impl Pool {
    fn member_ids(&self) -> Vec<InterpreterId> {
        let members = self.members.lock();
        members
            .free
            .iter()
            .chain(&members.borrowed)
            .copied()
            .collect()
    }

    /// Closes the pool to borrowers, waits for every member to come back, and
    /// ends them all; on failure reopens it, unchanged.
    fn end_members(&self, deadline: Option<Instant>) -> Result<()> {
        let mut members = self.members.lock();
        members.closing = true;
        self.changed.notify_all();
        let mut outcome = Ok(());
        while !members.borrowed.is_empty() {
            let timed_out = wait_until(&self.changed, &mut members, deadline);
            if members.ended {
                return Ok(());
            }
            if timed_out && !members.borrowed.is_empty() {
                outcome = Err(format!(
                    "interpreter(s) {:?} are still borrowed",
                    members.borrowed
                ));
                break;
            }
        }
        if outcome.is_ok() {
            let interpreters = members.free.clone();
            drop(members);
            outcome = match end_together(&interpreters, deadline) {
                Ok(Ended::All) => Ok(()),
                // Past the point of no return: the pool stays closed.
                Ok(Ended::NotYet) => {
                    return Err(subinterpreter::still_ending(&format!("pool {}", self.id)));
                }
                Err(why) => Err(why),
            };
            members = self.members.lock();
        }
        outcome.map_err(|why| {
            members.closing = false;
            self.changed.notify_all();
            Error::new(
                PYB_E_TIMEOUT,
                format!("pool {} was not destroyed: {why}; it is unchanged", self.id),
            )
        })
    }
}

/// How far `end_together` got by its deadline once every keeper was told to go.
enum Ended {
    All,
    /// Some interpreter was still ending (past the point of no return) at the deadline.
    NotYet,
}

/// Ends all these interpreters or none: takes each one's destroy lock, closes
/// each to new entries and waits for the threads inside to leave, has each
/// keeper check that it could end (no Python thread runs) and hold, and only
/// then lets them end. A failure before that point undoes it all.
fn end_together(
    ids: &[InterpreterId],
    deadline: Option<Instant>,
) -> std::result::Result<Ended, String> {
    // An interpreter already gone was ended by the engine's end.
    let records: Vec<_> = ids
        .iter()
        .filter_map(|&id| interpreters::lookup(id))
        .collect();
    let mut destroy_locks = Vec::with_capacity(records.len());
    for record in &records {
        let lock = lock_until(&record.destroying, deadline);
        destroy_locks.push(lock.ok_or_else(|| {
            format!(
                "the engine's shutdown was still ending interpreter {}",
                record.id
            )
        })?);
    }
    let live: Vec<_> = records
        .iter()
        .filter(|record| interpreters::lookup(record.id).is_some())
        .collect();
    let mut closed = Vec::with_capacity(live.len());
    let mut prepared = Vec::with_capacity(live.len());
    let outcome = live.iter().try_for_each(|record| {
        if !record.close(deadline) {
            return Err(format!(
                "{} inside its interpreter {}",
                subinterpreter::threads_inside(record.id),
                record.id
            ));
        }
        closed.push(record);
        Ok(())
    });
    let outcome = outcome.and_then(|()| {
        live.iter().try_for_each(|record| {
            prepare(record, deadline)?;
            prepared.push(record);
            Ok(())
        })
    });
    if outcome.is_err() {
        prepared.iter().for_each(|record| record.withdraw());
        closed.iter().for_each(|record| record.reopen());
        return outcome.map(|()| Ended::All);
    }
    // Every go is given before any end is waited for: all or none.
    let answers: Vec<_> = prepared.iter().map(|record| record.go(deadline)).collect();
    Ok(if answers.contains(&KeeperTalk::Ending) {
        Ended::NotYet
    } else {
        Ended::All
    })
}

/// Asks the keeper to prepare the end until it can (no Python thread runs in
/// its interpreter) or the deadline passes.
fn prepare(
    record: &InterpreterRecord,
    deadline: Option<Instant>,
) -> std::result::Result<(), String> {
    let mut last_reason = String::new();
    loop {
        match record.prepare_to_end(deadline) {
            // Ended: the engine's end got there first. Ending: an earlier
            // destroy of the pool passed the point of no return; `go` waits for it.
            KeeperTalk::Prepared | KeeperTalk::Ended | KeeperTalk::Ending => return Ok(()),
            KeeperTalk::Refused(why) if !why.is_empty() => last_reason = why,
            _ => {}
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(if last_reason.is_empty() {
                format!(
                    "the keeper thread of interpreter {} could not take its GIL in time",
                    record.id
                )
            } else {
                last_reason
            });
        }
        // Nothing tells when a Python thread ends: look again soon.
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(crate) fn stats(id: u64) -> Result<pyb_pool_stats> {
    let pool = find(id)?;
    let free = pool.members.lock().free.len() as u64;
    Ok(pyb_pool_stats {
        struct_size: std::mem::size_of::<pyb_pool_stats>(),
        size: pool.size as u64,
        free,
        borrows: pool.borrows.load(Ordering::Relaxed),
        waits: pool.waits.load(Ordering::Relaxed),
        timeouts: pool.timeouts.load(Ordering::Relaxed),
        wait_ns_total: pool.wait_ns_total.load(Ordering::Relaxed),
        wait_ns_max: pool.wait_ns_max.load(Ordering::Relaxed),
    })
}

/// The engine's end forgets every pool (their interpreters end with it) and
/// wakes borrowers, who are then told the pool is gone.
pub(crate) fn on_engine_end() {
    let pools = std::mem::take(&mut *POOLS.lock());
    for pool in pools {
        let mut members = pool.members.lock();
        members.closing = true;
        members.ended = true;
        drop(members);
        pool.changed.notify_all();
    }
}
