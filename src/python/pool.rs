//! Pools of sub-interpreters, each set up by the same code: a caller borrows a
//! free one (waiting up to a deadline on a condition variable), works in it,
//! and gives it back. Counters say how often and how long callers waited.

use std::ffi::CStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::abi::interpreter::pyb_pool_stats;
use crate::abi::status::*;
use crate::python::gil::{self, GilScope};
use crate::python::subinterpreter;
use crate::runtime::error::{Error, Result};
use crate::runtime::thread_slot::ThreadSlot;

/// At most this many interpreters in one pool.
pub(crate) const MAX_POOL_SIZE: usize = 256;

struct Members {
    free: Vec<u64>,
    borrowed: Vec<u64>,
    /// Set by a destroy: borrowers are refused, returns still accepted.
    closing: bool,
}

struct Pool {
    id: u64,
    size: usize,
    members: Mutex<Members>,
    changed: Condvar,
    borrows: AtomicU64,
    waits: AtomicU64,
    timeouts: AtomicU64,
    wait_ns_total: AtomicU64,
    wait_ns_max: AtomicU64,
}

static POOLS: Mutex<Vec<Arc<Pool>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn find(id: u64) -> Result<Arc<Pool>> {
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
    let mut made = Vec::with_capacity(count);
    let outcome = (0..count).try_for_each(|_| {
        let id = subinterpreter::create(true)?;
        made.push(id);
        match setup {
            Some(code) => run_setup(id, code),
            None => Ok(()),
        }
    });
    if let Err(error) = outcome {
        for id in made {
            let _ = subinterpreter::destroy(id, None);
        }
        return Err(error);
    }
    let pool = Arc::new(Pool {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        size: count,
        members: Mutex::new(Members {
            free: made,
            borrowed: Vec::new(),
            closing: false,
        }),
        changed: Condvar::new(),
        borrows: AtomicU64::new(0),
        waits: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        wait_ns_total: AtomicU64::new(0),
        wait_ns_max: AtomicU64::new(0),
    });
    let id = pool.id;
    POOLS.lock().push(pool);
    Ok(id)
}

fn run_setup(interpreter: u64, code: &CStr) -> Result<()> {
    let token = gil::enter_interpreter(ThreadSlot::current(), interpreter)?;
    let scope = GilScope::adopt(token);
    crate::python::call::run(scope.python(), code, c"<pool setup>", 0)
}

pub(crate) fn borrow(id: u64, deadline: Option<Instant>) -> Result<u64> {
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
        let timed_out = match deadline {
            Some(deadline) => pool.changed.wait_until(&mut members, deadline).timed_out(),
            None => {
                pool.changed.wait(&mut members);
                false
            }
        };
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

pub(crate) fn give_back(id: u64, interpreter: u64) -> Result<()> {
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

/// Waits for every interpreter to come back, then destroys them all.
pub(crate) fn destroy(id: u64, deadline: Option<Instant>) -> Result<()> {
    let pool = find(id)?;
    let mut members = pool.members.lock();
    members.closing = true;
    pool.changed.notify_all();
    while !members.borrowed.is_empty() {
        let timed_out = match deadline {
            Some(deadline) => pool.changed.wait_until(&mut members, deadline).timed_out(),
            None => {
                pool.changed.wait(&mut members);
                false
            }
        };
        if timed_out && !members.borrowed.is_empty() {
            members.closing = false;
            pool.changed.notify_all();
            return Err(Error::new(
                PYB_E_TIMEOUT,
                format!(
                    "pool {id} was not destroyed: interpreter(s) {:?} are still borrowed; \
                     it is unchanged",
                    members.borrowed
                ),
            ));
        }
    }
    let interpreters = members.free.clone();
    drop(members);
    for (done, interpreter) in interpreters.iter().enumerate() {
        if let Err(error) = subinterpreter::destroy(*interpreter, deadline) {
            if error.status == PYB_E_BAD_HANDLE {
                // Destroyed by the host directly.
                continue;
            }
            // Those destroyed stay destroyed: keep the rest in the pool.
            let mut members = pool.members.lock();
            members.free = interpreters[done..].to_vec();
            members.closing = false;
            return Err(error);
        }
    }
    POOLS.lock().retain(|pool| pool.id != id);
    Ok(())
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
        pool.members.lock().closing = true;
        pool.changed.notify_all();
    }
}
