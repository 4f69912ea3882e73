//! GIL scopes for host threads: acquire/release with nesting, allow-threads
//! regions, and the persistent thread state each host thread keeps.
//!
//! Why persistent thread states: `PyGILState_Ensure` on a thread without one
//! creates and deletes a thread state per call (about 380 ns against 60 ns),
//! loses `threading.local`, and breaks extensions that cache thread states.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::abi::status::*;
use crate::python::state_quarantine;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, EngineWord, GateState};
use crate::runtime::gil_stats;
use crate::runtime::interpreters;
use crate::runtime::stats;
use crate::runtime::thread_slot::{
    Activity, AllowFrame, CurrentThread, InterpreterFrame, OwnerState, SubinterpreterState,
    ThreadSlot, issuer_of,
};
use crate::runtime::token::{MAX_DEPTH, Token, TokenKind};

/// An open GIL scope for pybridge's own code; released on drop.
pub(crate) struct GilScope {
    thread: CurrentThread,
    token: u64,
}

impl GilScope {
    pub(crate) fn acquire() -> Result<GilScope> {
        let thread = ThreadSlot::current();
        let token = acquire(thread)?;
        Ok(GilScope { thread, token })
    }

    /// Takes over the scope `token` the calling thread just opened (by
    /// `acquire` or `enter_interpreter`), to be released on drop.
    pub(crate) fn adopt(token: u64) -> GilScope {
        GilScope {
            thread: ThreadSlot::current(),
            token,
        }
    }

    /// pyo3's view of the held GIL, for code that uses pyo3's safe API.
    pub(crate) fn python(&self) -> pyo3::Python<'_> {
        // SAFETY: this scope holds the GIL on the calling thread.
        unsafe { pyo3::Python::assume_attached() }
    }
}

impl Drop for GilScope {
    fn drop(&mut self) {
        if let Err(error) = release(self.thread, self.token) {
            log::error!(
                "pybridge could not close its own GIL scope: {}",
                error.message
            );
        }
    }
}

/// Issues the token of a new GIL scope and records it as the innermost.
#[inline(always)]
fn open_scope(thread: CurrentThread) -> u64 {
    let owner = thread.owner();
    let token = owner.issue(thread.id, TokenKind::Gil);
    owner.scope_tokens.push(token);
    token
}

#[inline(always)]
pub(crate) fn acquire(thread: CurrentThread) -> Result<u64> {
    let owner = thread.owner();
    let depth = owner.depth.get();
    if depth > 0 {
        if depth >= MAX_DEPTH {
            return Err(Error::invalid_argument(format!(
                "GIL scopes nest at most {MAX_DEPTH} deep on one thread; release some first"
            )));
        }
        // An open scope normally means the GIL is held, but code inside it may
        // have given the GIL away (a ctypes call, Py_BEGIN_ALLOW_THREADS) and
        // called back into pybridge: then this scope must take it back.
        // SAFETY: a plain load (global on 3.11, thread-local from 3.12).
        if unsafe { ffi::compat::PyThreadState_GetUnchecked() } != owner.tstate.get() {
            return retake_nested(thread);
        }
        owner.depth.set(depth + 1);
        return Ok(open_scope(thread));
    }
    acquire_outermost(thread)
}

#[cold]
#[inline(never)]
fn retake_nested(thread: CurrentThread) -> Result<u64> {
    let owner = thread.owner();
    thread.set_activity(Activity::WaitingForGil);
    let wait = gil_stats::wait_begins();
    // SAFETY: this thread's own state, saved by whoever released the GIL under
    // the open scope; the thread is busy, so the interpreter is alive.
    unsafe { ffi::PyEval_RestoreThread(owner.tstate.get()) };
    note_attached(owner, owner.tstate.get());
    gil_stats::gil_taken(thread, wait);
    thread.set_activity(Activity::HoldingGil);
    let depth = owner.depth.get() + 1;
    owner.depth.set(depth);
    owner.retaken.push(depth);
    Ok(open_scope(thread))
}

#[inline]
fn acquire_outermost(thread: CurrentThread) -> Result<u64> {
    let owner = thread.owner();
    let inside_already = !owner.allow_frames.is_empty();
    let word = gate::enter(&thread.busy);
    if word.state() != GateState::Running {
        let inside_already = inside_already && !thread.is_engine_thread();
        if let Err(error) = admit_while_closing(owner, word, inside_already) {
            if !inside_already {
                gate::leave(&thread.busy);
            }
            return Err(error);
        }
    }
    if owner.generation.get() != word.generation()
        || owner.tstate.get().is_null()
        || adopted_state_gone(owner)
    {
        if let Err(error) = attach_thread_state(owner, word.generation()) {
            if !inside_already {
                gate::leave(&thread.busy);
            }
            return Err(error);
        }
    }
    // SAFETY: the gate admitted us, so the interpreter is alive; reading the
    // current thread state is a plain load.
    let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    // A thread that already holds the GIL on its own thread state would deadlock
    // on itself if it restored that state again (checked on 3.11-3.13).
    let tstate = owner.tstate.get();
    let borrowed = current == tstate;
    owner.borrowed.set(borrowed);
    if !borrowed {
        thread.set_activity(Activity::WaitingForGil);
        let wait = gil_stats::wait_begins();
        // SAFETY: `tstate` is this thread's own, of the running interpreter.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        note_attached(owner, tstate);
        gil_stats::gil_taken(thread, wait);
    }
    thread.set_activity(Activity::HoldingGil);
    owner.depth.set(1);
    let epoch = thread.epoch.load(Ordering::Relaxed).wrapping_add(1);
    thread.epoch.store(epoch, Ordering::Relaxed);
    Ok(open_scope(thread))
}

/// The gate is not open: only threads the shutdown is already waiting for, or
/// threads that hold the GIL anyway, may go on (they cannot delay shutdown).
/// `inside_already` is never true on the engine thread, whose finalization is
/// real.
#[cold]
#[inline(never)]
fn admit_while_closing(owner: &OwnerState, word: EngineWord, inside_already: bool) -> Result<()> {
    match word.state() {
        GateState::Closed => Err(Error::not_initialized()),
        GateState::Running => Ok(()),
        // Busy all along, so a `Finalizing` seen now is the shutdown's last
        // look, undone when it finds this thread busy (`close_gate_for_good`).
        GateState::ShuttingDown | GateState::Finalizing if inside_already => Ok(()),
        GateState::ShuttingDown => {
            if thread_holds_gil(owner, word) {
                Ok(())
            } else {
                Err(Error::shutting_down())
            }
        }
        // The engine thread too: Python code run by finalization (atexit, __del__,
        // free_user_data) must not make handles that would outlive the interpreter.
        GateState::Finalizing => Err(Error::shutting_down()),
        // A fork() child: the thread that forked goes on inside its open scopes
        // and regions, and so does code that holds the GIL anyway (Python code
        // after os.fork() calling a host function); nothing else gets in.
        GateState::Forked if inside_already || thread_holds_gil(owner, word) => Ok(()),
        GateState::Forked => Err(Error::forked()),
    }
}

/// A state pybridge adopted from `PyGILState` belongs to whoever created it: a
/// host that calls `PyGILState_Release` to zero deletes it under us. Checked on
/// the adopted path only (a thread-specific-storage read).
#[inline(always)]
fn adopted_state_gone(owner: &OwnerState) -> bool {
    // SAFETY: callers passed the gate; a plain lookup.
    !owner.owns_tstate.get()
        && unsafe { ffi::PyGILState_GetThisThreadState() } != owner.tstate.get()
}

/// After attaching `tstate` on this thread: CPython now reports it as the
/// thread's PyGILState state; remember it if pybridge made it
/// (`OwnerState::last_attached`).
#[inline(always)]
fn note_attached(owner: &OwnerState, tstate: *mut ffi::PyThreadState) {
    let previous = owner.last_attached.get();
    let made = tstate == owner.tstate.get() && owner.owns_tstate.get();
    owner
        .last_attached
        .set(if made { tstate } else { std::ptr::null_mut() });
    if previous != tstate && !previous.is_null() {
        // Attaching `tstate` wrote into `previous` for the last time.
        state_quarantine::release(previous);
    }
}

/// After `PyThreadState_New` on this thread: CPython made the new state the
/// thread's PyGILState state at once if the thread had none, and then points
/// at the previous one no more; otherwise that happens at its first attach
/// (`note_attached`).
fn note_created(owner: &OwnerState, created: *mut ffi::PyThreadState) {
    // SAFETY: a plain read of this thread's PyGILState slot.
    if unsafe { ffi::PyGILState_GetThisThreadState() } == created {
        let previous = owner.last_attached.replace(created);
        state_quarantine::release(previous);
    }
}

/// Finds or creates this thread's thread state for the running interpreter.
#[cold]
#[inline(never)]
fn attach_thread_state(owner: &OwnerState, generation: u32) -> Result<()> {
    // SAFETY: the gate admitted us; these calls need no GIL.
    let existing = unsafe { ffi::PyGILState_GetThisThreadState() };
    // The state pybridge attached last is reported too, though it may belong to
    // a sub-interpreter or be freed with an ended interpreter (OwnerState::last_attached).
    if !existing.is_null() && existing != owner.last_attached.get() {
        // A Python thread, or a thread that used PyGILState itself: one OS thread
        // must not get a second state (that deadlocked on 3.11).
        owner.tstate.set(existing);
        owner.owns_tstate.set(false);
        owner.last_attached.set(std::ptr::null_mut());
    } else {
        // SAFETY: as above; PyThreadState_New needs no GIL, and on its own thread
        // the new state becomes the thread's PyGILState state (3.11-3.13; on
        // 3.14+ when it is first attached).
        let created = unsafe { ffi::PyThreadState_New(gate::interpreter()) };
        if created.is_null() {
            return Err(Error::new(
                PYB_E_PYTHON,
                "CPython could not allocate a thread state for this thread (out of memory?)",
            ));
        }
        stats::THREAD_STATES_CREATED.fetch_add(1, Ordering::Relaxed);
        owner.tstate.set(created);
        owner.owns_tstate.set(true);
        note_created(owner, created);
    }
    owner.generation.set(generation);
    owner.generation_start.set(owner.next_serial());
    Ok(())
}

/// The thread state CPython would call this thread's own.
fn own_thread_state(owner: &OwnerState, word: EngineWord) -> *mut ffi::PyThreadState {
    let tstate = owner.tstate.get();
    if owner.generation.get() == word.generation() && !tstate.is_null() {
        tstate
    } else {
        // SAFETY: callers passed the gate; a plain lookup.
        unsafe { ffi::PyGILState_GetThisThreadState() }
    }
}

/// True when this thread holds the GIL on its own thread state. Call only from
/// inside the gate with CPython alive.
fn thread_holds_gil(owner: &OwnerState, word: EngineWord) -> bool {
    // SAFETY: a plain load (global on 3.11, thread-local from 3.12).
    let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    !current.is_null() && current == own_thread_state(owner, word)
}

fn may_touch_cpython(slot: &ThreadSlot, word: EngineWord) -> bool {
    match word.state() {
        // The callers go on to ask whether this thread holds the GIL.
        GateState::Running | GateState::ShuttingDown | GateState::Forked => true,
        GateState::Finalizing => slot.is_engine_thread(),
        GateState::Closed => false,
    }
}

/// True when the calling thread holds the GIL, through pybridge or otherwise.
pub(crate) fn holds_gil(thread: CurrentThread) -> bool {
    let owner = thread.owner();
    if owner.depth.get() > 0 {
        // Busy already, so CPython is alive; the GIL may have been given away inside the scope.
        // SAFETY: a plain load.
        return unsafe { ffi::compat::PyThreadState_GetUnchecked() } == owner.tstate.get();
    }
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    let held = may_touch_cpython(&thread, word) && thread_holds_gil(owner, word);
    if !was_busy {
        gate::leave(&thread.busy);
    }
    held
}

/// The interpreter whose GIL the calling thread holds right now (through
/// pybridge or otherwise), or None when it holds none.
pub(crate) fn held_gil_interpreter(thread: CurrentThread) -> Option<*mut ffi::PyInterpreterState> {
    let owner = thread.owner();
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    let held = if may_touch_cpython(&thread, word) {
        // SAFETY: a plain load (global on 3.10/3.11, thread-local from 3.12).
        let current = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
        // From 3.12 the current state is this thread's own; before, it is
        // the GIL holder's, which may be another thread (never dereferenced
        // then: it could be freed meanwhile), so it must be one of ours.
        let ours = cfg!(Py_3_12)
            || current == own_thread_state(owner, word)
            || owner
                .subinterpreter_states
                .find(|state| state.tstate == current)
                .is_some();
        // SAFETY: this thread's own state, attached: it holds that state's GIL.
        (!current.is_null() && ours).then(|| unsafe { ffi::PyThreadState_GetInterpreter(current) })
    } else {
        None
    };
    if !was_busy {
        gate::leave(&thread.busy);
    }
    held
}

/// True when a pybridge scope is open on the calling thread and the GIL is
/// really its own right now (a ctypes call inside the scope, for one, runs
/// without it). Never enters the gate.
#[inline(always)]
pub(crate) fn scope_holds_gil(thread: CurrentThread) -> bool {
    let owner = thread.owner();
    // SAFETY: a plain load of the current thread state.
    owner.depth.get() > 0
        && unsafe { ffi::compat::PyThreadState_GetUnchecked() } == owner.tstate.get()
}

#[inline(always)]
pub(crate) fn release(thread: CurrentThread, value: u64) -> Result<()> {
    let owner = thread.owner();
    let depth = owner.depth.get();
    // depth > 0: the innermost token belongs to a scope of the current region.
    if depth == 0 || owner.scope_tokens.last() != Some(value) {
        return Err(misplaced_token(value, Some(thread)));
    }
    owner.scope_tokens.pop();
    if owner.retaken.last() == Some(depth) {
        owner.retaken.pop();
        gil_stats::gil_given_away(thread);
        // Hand the GIL back to whoever gave it away under the enclosing scope.
        // SAFETY: this thread holds the GIL on `owner.tstate`.
        unsafe { ffi::PyEval_SaveThread() };
    }
    owner.depth.set(depth - 1);
    if depth == 1 {
        if !owner.borrowed.get() {
            thread.set_activity(Activity::Idle);
            gil_stats::gil_given_away(thread);
            // SAFETY: this thread holds the GIL on `owner.tstate`.
            unsafe { ffi::PyEval_SaveThread() };
        } else {
            // The thread keeps the GIL, but no longer through pybridge: a hold
            // timed inside this scope (after an allow-threads region) ends here.
            owner.gil_hold_start.set(0);
        }
        if owner.allow_frames.is_empty() {
            thread.set_activity(Activity::Idle);
            gate::leave(&thread.busy);
        } else {
            thread.set_activity(Activity::AllowThreads);
        }
        if let Some(frame) = owner.interpreter_frames.last() {
            if frame.scope_token == value {
                return leave_interpreter(thread, frame);
            }
        }
    }
    Ok(())
}

/// Opens a GIL scope in sub-interpreter `id` (`pyb_interpreter_enter`). In the
/// interpreter the thread already works in, it nests like `acquire`. From
/// anywhere else it switches: whatever GIL the thread holds is given away as
/// an allow-threads region (so a thread never holds two GILs, and two threads
/// entering each other's interpreters cannot deadlock), the thread's own
/// state in `id` is made or reused, and the scope's release switches back.
pub(crate) fn enter_interpreter(thread: CurrentThread, id: u64) -> Result<u64> {
    let owner = thread.owner();
    if thread.current_interpreter() == id && owner.depth.get() > 0 {
        return acquire(thread);
    }
    let word = gate::load();
    if owner.interpreter_frames.is_empty()
        && (owner.tstate.get().is_null()
            || owner.generation.get() != word.generation()
            || word.state() != GateState::Running)
    {
        // Before any sub-interpreter state: the thread's first state becomes its
        // PyGILState state, and that one must be the main interpreter's, or
        // deleting the sub state later unbinds the wrong one (3.12-3.13).
        ensure_main_thread_state(thread)?;
    }
    let record = interpreters::enter(id).map_err(|closing| {
        if closing {
            Error::new(
                PYB_E_SHUTTING_DOWN,
                format!("sub-interpreter {id} is being destroyed"),
            )
        } else {
            unknown_interpreter(id)
        }
    })?;
    // Whatever GIL the thread holds is given away as an allow-threads region.
    // A thread in no scope and no region that has no current thread state
    // holds none: no region (0) then, the common case of a pool worker.
    // SAFETY: a plain load of the current thread state.
    let holds_nothing = owner.depth.get() == 0
        && owner.allow_frames.is_empty()
        && unsafe { ffi::compat::PyThreadState_GetUnchecked() }.is_null();
    let region = if holds_nothing {
        0
    } else {
        match begin_allow_threads(thread) {
            Ok(region) => region,
            Err(error) => {
                record.leave();
                return Err(error);
            }
        }
    };
    let tstate = match owner
        .subinterpreter_states
        .find(|state| state.interpreter == id)
    {
        Some(state) => state.tstate,
        None => {
            // SAFETY: the entry keeps the interpreter alive; no GIL needed.
            let created = unsafe { ffi::PyThreadState_New(record.interp.load(Ordering::Acquire)) };
            if created.is_null() {
                record.leave();
                end_region(thread, region);
                return Err(Error::new(
                    PYB_E_OUT_OF_MEMORY,
                    format!("CPython could not allocate a thread state in sub-interpreter {id}"),
                ));
            }
            stats::THREAD_STATES_CREATED.fetch_add(1, Ordering::Relaxed);
            note_created(owner, created);
            // States of interpreters destroyed since were freed by their end.
            owner
                .subinterpreter_states
                .retain(|state| interpreters::lookup(state.interpreter).is_some());
            owner.subinterpreter_states.push(SubinterpreterState {
                interpreter: id,
                tstate: created,
            });
            created
        }
    };
    let mut frame = InterpreterFrame {
        record,
        scope_token: 0,
        region_token: region,
        previous_interpreter: thread.current_interpreter(),
        previous_tstate: owner.tstate.get(),
        previous_owns_tstate: owner.owns_tstate.get(),
        previous_generation: owner.generation.get(),
        previous_generation_start: owner.generation_start.get(),
    };
    owner.tstate.set(tstate);
    owner.owns_tstate.set(true);
    owner.generation.set(record.generation);
    thread.interpreter.store(id, Ordering::Relaxed);
    match acquire(thread) {
        Ok(token) => {
            frame.scope_token = token;
            owner.interpreter_frames.push(frame);
            Ok(token)
        }
        Err(error) => {
            restore_previous_interpreter(thread, &frame);
            end_region(thread, region);
            Err(error)
        }
    }
}

#[cold]
pub(crate) fn unknown_interpreter(id: u64) -> Error {
    Error::new(
        PYB_E_BAD_HANDLE,
        format!(
            "interpreter handle {id} is not live: it was destroyed (by \
             pyb_interpreter_destroy or the engine's shutdown) or never made"
        ),
    )
}

/// Puts back what `enter_interpreter` changed and gives up the entry.
fn restore_previous_interpreter(thread: CurrentThread, frame: &InterpreterFrame) {
    let owner = thread.owner();
    owner.tstate.set(frame.previous_tstate);
    owner.owns_tstate.set(frame.previous_owns_tstate);
    owner.generation.set(frame.previous_generation);
    owner.generation_start.set(frame.previous_generation_start);
    thread
        .interpreter
        .store(frame.previous_interpreter, Ordering::Relaxed);
    // SAFETY: the record is registered while this thread's entry lasts.
    unsafe { &*frame.record }.leave();
}

/// The release of a switched-to interpreter's outermost scope (which gave its
/// GIL away already): back to the interpreter the thread came from.
fn leave_interpreter(thread: CurrentThread, frame: InterpreterFrame) -> Result<()> {
    thread.owner().interpreter_frames.pop();
    restore_previous_interpreter(thread, &frame);
    match frame.region_token {
        0 => Ok(()),
        region => end_allow_threads(thread, region),
    }
}

/// Ends the region `enter_interpreter` opened (0: none) on a failed enter.
fn end_region(thread: CurrentThread, region: u64) {
    if region != 0 {
        let _ = end_allow_threads(thread, region);
    }
}

/// Gives the thread a state in the main interpreter if it has none yet (no GIL taken).
fn ensure_main_thread_state(thread: CurrentThread) -> Result<()> {
    let owner = thread.owner();
    let was_busy = thread.busy.load(Ordering::Relaxed);
    let word = gate::enter(&thread.busy);
    let result = if word.state() != GateState::Running && !was_busy {
        admit_while_closing(owner, word, false)
    } else {
        Ok(())
    };
    let result = result.and_then(|()| {
        if owner.generation.get() != word.generation() || owner.tstate.get().is_null() {
            attach_thread_state(owner, word.generation())
        } else {
            Ok(())
        }
    });
    if !was_busy {
        gate::leave(&thread.busy);
    }
    result
}

/// True when the calling thread is inside sub-interpreter `id`, at any depth.
pub(crate) fn is_inside_interpreter(thread: CurrentThread, id: u64) -> bool {
    thread.current_interpreter() == id
        || thread
            .owner()
            .interpreter_frames
            .find(|frame| {
                frame.previous_interpreter == id
                    // SAFETY: registered while this thread's entry lasts.
                    || unsafe { &*frame.record }.id == id
            })
            .is_some()
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

/// A thread that exits inside an interpreter scope (a host bug) first gives
/// that interpreter's GIL back, deleting its state there, and unwinds to the
/// interpreter it came from.
fn leave_interpreter_frames_on_exit(thread: CurrentThread) {
    let owner = thread.owner();
    while let Some(frame) = owner.interpreter_frames.pop() {
        let tstate = owner.tstate.get();
        // SAFETY: a plain load of the current thread state.
        if unsafe { ffi::compat::PyThreadState_GetUnchecked() } == tstate {
            // SAFETY: this thread holds the sub-interpreter's GIL on its own state.
            unsafe {
                ffi::PyThreadState_Clear(tstate);
                ffi::PyThreadState_DeleteCurrent();
            }
            stats::THREAD_STATES_DELETED.fetch_add(1, Ordering::Relaxed);
            owner
                .subinterpreter_states
                .retain(|state| state.tstate != tstate);
        }
        owner.depth.set(0);
        owner.scope_tokens.clear();
        restore_previous_interpreter(thread, &frame);
    }
}

/// A thread's exit frees its states in sub-interpreters that still run (each
/// under that interpreter's GIL); states in interpreters being destroyed are
/// freed by their destroyer. Runs after the main state is gone, so the thread
/// holds no GIL: attaching a sub state while the main one is attached is a
/// deadlock on a shared GIL (3.11) and a fatal error on 3.12/3.13.
fn release_subinterpreter_states_on_exit(thread: CurrentThread) {
    let owner = thread.owner();
    // SAFETY: a plain load of the current thread state.
    let attached = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    if !attached.is_null() {
        // Still attached somewhere (the engine was shutting down and the main
        // state was left for finalization): leave the sub states to their
        // interpreters' ends rather than attach a second state.
        log::debug!(
            "{} exits attached to a thread state; its sub-interpreter states are left to their interpreters' ends",
            thread.describe()
        );
        owner.subinterpreter_states.clear();
        return;
    }
    for state in owner.subinterpreter_states.to_vec() {
        let Ok(record) = interpreters::enter(state.interpreter) else {
            continue;
        };
        // SAFETY: the entry keeps the interpreter alive; the state is this
        // thread's own and not current (it holds no GIL here).
        unsafe {
            ffi::PyEval_RestoreThread(state.tstate);
            ffi::PyThreadState_Clear(state.tstate);
            ffi::PyThreadState_DeleteCurrent();
        }
        stats::THREAD_STATES_DELETED.fetch_add(1, Ordering::Relaxed);
        record.leave();
    }
    owner.subinterpreter_states.clear();
}

/// Explains why `value` does not close the calling thread's innermost scope
/// or region. Error path only: it may take locks and search.
#[cold]
#[inline(never)]
pub(crate) fn misplaced_token(value: u64, thread: Option<CurrentThread>) -> Error {
    let bad = |message: String| Error::new(PYB_E_BAD_TOKEN, message);
    let Some(token) = Token::decode(value) else {
        return bad(format!("{value:#x} is not a pybridge token"));
    };
    let issuer = issuer_of(token);
    let thread = match (thread, issuer) {
        (_, None) => {
            return bad(format!(
                "token {value:#x} belongs to no live thread: it was never issued or its \
                 thread has exited"
            ));
        }
        (Some(thread), Some(issuer)) if issuer.id == thread.id => thread,
        (_, Some(issuer)) => {
            return Error::new(
                PYB_E_WRONG_THREAD,
                format!(
                    "token {value:#x} belongs to {}; close a scope or region on the thread \
                     that opened it",
                    issuer.describe()
                ),
            );
        }
    };
    let owner = thread.owner();
    let depth = owner.depth.get();
    let (open, what, closer): (Vec<u64>, _, _) = match token.kind {
        TokenKind::Gil => (owner.scope_tokens.to_vec(), "GIL scope", "pyb_gil_release"),
        TokenKind::AllowThreads => (
            owner
                .allow_frames
                .to_vec()
                .iter()
                .map(|frame| frame.token)
                .collect(),
            "allow-threads region",
            "pyb_end_allow_threads",
        ),
        TokenKind::AllowThreadsNoop => (
            owner.noop_regions.to_vec(),
            "allow-threads region",
            "pyb_end_allow_threads",
        ),
    };
    if let Some(position) = open.iter().position(|&open| open == value) {
        if token.kind == TokenKind::Gil && depth == 0 && !owner.allow_frames.is_empty() {
            return bad(format!(
                "token {value:#x} is a GIL scope opened before the allow-threads region this \
                 thread is in: call pyb_end_allow_threads first"
            ));
        }
        if token.kind == TokenKind::AllowThreads && depth > 0 {
            return bad(format!(
                "this thread still holds {depth} GIL scope(s) opened inside the allow-threads \
                 region: release them before pyb_end_allow_threads"
            ));
        }
        return bad(format!(
            "{what} token {value:#x} is not the innermost one ({} open, this is number {}): \
             close them in LIFO order with {closer}",
            open.len(),
            position + 1
        ));
    }
    if token.serial < owner.generation_start.get() {
        return bad(format!(
            "token {value:#x} comes from an earlier engine: tokens die with pyb_engine_shutdown"
        ));
    }
    bad(format!(
        "{what} token {value:#x} was already closed ({} open on this thread); each token \
         is closed exactly once, with {closer}",
        open.len()
    ))
}

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

/// Frees the exiting thread's own thread states, if the engine still runs:
/// unwinds interpreter switches, then the main state (which lets go of the
/// main GIL), then the states in sub-interpreters, each under its own GIL.
pub(crate) fn release_on_thread_exit(thread: CurrentThread) {
    leave_interpreter_frames_on_exit(thread);
    release_main_state_on_exit(thread);
    release_subinterpreter_states_on_exit(thread);
    // Nothing on this thread attaches a state any more.
    let owner = thread.owner();
    state_quarantine::release(owner.last_attached.replace(std::ptr::null_mut()));
}

/// Frees the exiting thread's main-interpreter state (after any interpreter
/// frames were unwound), taking the GIL for it unless the thread holds it.
fn release_main_state_on_exit(thread: CurrentThread) {
    let owner = thread.owner();
    let tstate = owner.tstate.get();
    if tstate.is_null() || !owner.owns_tstate.get() {
        return;
    }
    let depth = owner.depth.get();
    let inside = depth > 0 || !owner.allow_frames.is_empty();
    if inside {
        log::warn!(
            "{} exits with {} GIL scope(s) and {} allow-threads region(s) open; closing them",
            thread.describe(),
            depth,
            owner.allow_frames.len()
        );
    }
    let holding = depth > 0 && !owner.borrowed.get();
    let word = gate::enter(&thread.busy);
    let ours = owner.generation.get() == word.generation();
    // A thread inside has been busy all along, so a `Finalizing` it sees is
    // only the shutdown's last look, which it undoes when it finds this thread
    // busy (`close_gate_for_good`): the interpreter lives on until this thread
    // leaves. Not admitting it there made it exit with the GIL held, and the
    // shutdown then waited for that GIL for ever (fuzzer under TSan).
    // A keeper thread exits only when the engine's end retires it, before
    // Py_FinalizeEx and without the main GIL held: it frees its own state,
    // which 3.14+ would otherwise leak (finalization no longer frees the
    // states of other threads, which a parked daemon thread may still use).
    let retired_keeper = thread.internal.load(Ordering::Relaxed);
    let admitted = ours
        && (word.state() == GateState::Running
            || ((inside || retired_keeper)
                && matches!(
                    word.state(),
                    GateState::ShuttingDown | GateState::Finalizing
                )));
    if admitted {
        // SAFETY: admitted by the gate; the state is this thread's own. Clear may
        // run Python code that calls back into pybridge on this thread: it sees
        // an open, borrowed scope, and the owner state holds no borrow across it.
        unsafe {
            if !holding {
                ffi::PyEval_RestoreThread(tstate);
            }
            owner.depth.set(depth.max(1));
            owner.borrowed.set(true);
            ffi::PyThreadState_Clear(tstate);
            ffi::PyThreadState_DeleteCurrent();
        }
        stats::THREAD_STATES_DELETED.fetch_add(1, Ordering::Relaxed);
    } else if ours && word.state() != GateState::Closed {
        // Left in the interpreter's list: Py_FinalizeEx frees it. Deleting it from
        // another thread is not safe: on 3.12+ that unbinds the *deleting* thread's
        // PyGILState state (unbind_gilstate_tstate clears the caller's TSS slot).
        log::debug!(
            "{} exited during a shutdown; its thread state is left for finalization",
            thread.describe()
        );
    }
    owner.tstate.set(std::ptr::null_mut());
    owner.depth.set(0);
    owner.allow_frames.clear();
    owner.scope_tokens.clear();
    owner.noop_regions.clear();
    thread.set_activity(Activity::Idle);
    gate::leave(&thread.busy);
}
