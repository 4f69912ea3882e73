//! Scopes in sub-interpreters (`pyb_interpreter_enter`): a thread that
//! enters another interpreter gives its GIL away as an allow-threads region,
//! works on its own state there, and switches back when that scope closes.

use std::sync::atomic::Ordering;

use pyo3::ffi;

use crate::abi::status::*;
use crate::python::allow_threads::{begin_allow_threads, end_allow_threads};
use crate::python::gil_scopes::acquire;
use crate::python::thread_states::{ensure_main_thread_state, note_created};
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, GateState};
use crate::runtime::ids::InterpreterId;
use crate::runtime::interpreters;
use crate::runtime::stats;
use crate::runtime::thread_slot::{CurrentThread, InterpreterFrame, SubinterpreterState};

/// Opens a GIL scope in sub-interpreter `id` (`pyb_interpreter_enter`). In the
/// interpreter the thread already works in, it nests like `acquire`. From
/// anywhere else it switches: whatever GIL the thread holds is given away as
/// an allow-threads region (so a thread never holds two GILs, and two threads
/// entering each other's interpreters cannot deadlock), the thread's own
/// state in `id` is made or reused, and the scope's release switches back.
pub(crate) fn enter_interpreter(thread: CurrentThread, id: InterpreterId) -> Result<u64> {
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
    thread.interpreter.store(id.0, Ordering::Relaxed);
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
pub(crate) fn unknown_interpreter(id: InterpreterId) -> Error {
    Error::new(
        PYB_E_BAD_HANDLE,
        format!(
            "interpreter handle {id} is not live: it was destroyed (by \
             pyb_interpreter_destroy or the engine's shutdown) or never made"
        ),
    )
}

/// Puts back what `enter_interpreter` changed and gives up the entry.
pub(crate) fn restore_previous_interpreter(thread: CurrentThread, frame: &InterpreterFrame) {
    let owner = thread.owner();
    owner.tstate.set(frame.previous_tstate);
    owner.owns_tstate.set(frame.previous_owns_tstate);
    owner.generation.set(frame.previous_generation);
    owner.generation_start.set(frame.previous_generation_start);
    thread
        .interpreter
        .store(frame.previous_interpreter.0, Ordering::Relaxed);
    // SAFETY: the record is registered while this thread's entry lasts.
    unsafe { &*frame.record }.leave();
}

/// After the thread's outermost scope `token` closed (and gave its GIL away):
/// if that scope entered an interpreter, back to the one the thread came from.
#[inline(always)]
pub(crate) fn leave_entered_interpreter(thread: CurrentThread, token: u64) -> Result<()> {
    match thread.owner().interpreter_frames.last() {
        Some(frame) if frame.scope_token == token => leave_interpreter(thread, frame),
        _ => Ok(()),
    }
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

/// True when the calling thread is inside sub-interpreter `id`, at any depth.
pub(crate) fn is_inside_interpreter(thread: CurrentThread, id: InterpreterId) -> bool {
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
