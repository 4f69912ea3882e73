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
use crate::runtime::frames::{Frame, InterpreterFrame};
use crate::runtime::gate::{self, GateState};
use crate::runtime::ids::InterpreterId;
use crate::runtime::interpreters;
use crate::runtime::stats;
use crate::runtime::thread_slot::{CurrentThread, SubinterpreterState};
use crate::runtime::token::TokenValue;

/// Opens a GIL scope in sub-interpreter `id` (`pyb_interpreter_enter`). In the
/// interpreter the thread already works in, it nests like `acquire`. From
/// anywhere else it switches: whatever GIL the thread holds is given away as
/// an allow-threads region (so a thread never holds two GILs, and two threads
/// entering each other's interpreters cannot deadlock), the thread's own
/// state in `id` is made or reused, and the scope's release switches back.
pub(crate) fn enter_interpreter(thread: CurrentThread, id: InterpreterId) -> Result<TokenValue> {
    let owner = thread.owner();
    if thread.current_interpreter() == id && owner.frames.depth() > 0 {
        return acquire(thread);
    }
    let word = gate::load();
    if owner.frames.innermost_switch().is_none()
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
    // holds none: no region (`TokenValue::NONE`) then, the common case of a pool worker.
    // SAFETY: a plain load of the current thread state.
    let holds_nothing = owner.frames.depth() == 0
        && !owner.frames.in_allow_threads_region()
        && unsafe { ffi::compat::PyThreadState_GetUnchecked() }.is_null();
    let region = if holds_nothing {
        TokenValue::NONE
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
    let switch = InterpreterFrame {
        record,
        region_token: region,
        previous_tstate: owner.tstate.get(),
        previous_owns_tstate: owner.owns_tstate.get(),
        previous_generation: owner.generation.get(),
        previous_generation_start: owner.generation_start.get(),
    };
    owner.tstate.set(tstate);
    owner.owns_tstate.set(true);
    owner.generation.set(record.generation);
    // The switch goes right below the scope `acquire` opens, whose release
    // switches back (`leave_entered_interpreter`).
    owner.frames.push(Frame::Interpreter(switch));
    thread.publish_interpreter();
    acquire(thread).inspect_err(|_| {
        // `acquire` pushed nothing: the switch is the innermost frame.
        owner.frames.leave_switch();
        restore_previous_interpreter(thread, &switch);
        end_region(thread, region);
    })
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

/// Puts back what `enter_interpreter` changed (once `switch` is out of the
/// frames) and gives up the entry.
pub(crate) fn restore_previous_interpreter(thread: CurrentThread, switch: &InterpreterFrame) {
    let owner = thread.owner();
    owner.tstate.set(switch.previous_tstate);
    owner.owns_tstate.set(switch.previous_owns_tstate);
    owner.generation.set(switch.previous_generation);
    owner.generation_start.set(switch.previous_generation_start);
    thread.publish_interpreter();
    switch.record().leave();
}

/// After the thread's outermost scope of the current nesting closed (and gave
/// its GIL away): if that scope entered an interpreter (the switch is the
/// frame right below it), back to the one the thread came from.
#[inline(always)]
pub(crate) fn leave_entered_interpreter(thread: CurrentThread) -> Result<()> {
    match thread.owner().frames.leave_switch() {
        Some(switch) => leave_interpreter(thread, switch),
        None => Ok(()),
    }
}

/// The release of a switched-to interpreter's outermost scope (which gave its
/// GIL away already): back to the interpreter the thread came from.
fn leave_interpreter(thread: CurrentThread, switch: InterpreterFrame) -> Result<()> {
    restore_previous_interpreter(thread, &switch);
    match switch.region_token {
        TokenValue::NONE => Ok(()),
        region => end_allow_threads(thread, region),
    }
}

/// Ends the region `enter_interpreter` opened (0: none) on a failed enter.
fn end_region(thread: CurrentThread, region: TokenValue) {
    if region != TokenValue::NONE {
        let _ = end_allow_threads(thread, region);
    }
}

/// True when the calling thread is inside interpreter `id`, at any depth: the
/// one it works in, or one a switch still open came from (the main one
/// always: the first switch came from there).
pub(crate) fn is_inside_interpreter(thread: CurrentThread, id: InterpreterId) -> bool {
    id.is_main() || thread.current_interpreter() == id || thread.owner().frames.has_switch_into(id)
}
