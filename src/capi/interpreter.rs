//! Sub-interpreters (own GIL on CPython 3.12+, or sharing the main one) and
//! pools of them (`python/subinterpreter.rs`, `python/pool.rs`).
//!
//! Nesting rules: `pyb_interpreter_enter` opens a GIL scope in the named
//! interpreter and makes it the thread's current interpreter until that scope
//! is released; every object function, `pyb_run` and `pyb_gil_acquire` inside
//! work in the current interpreter. Entering another interpreter from inside a
//! scope switches: the thread gives its current GIL away (as an allow-threads
//! region) and takes it back when the inner scope is released, so a thread
//! never holds two GILs. Entering the current interpreter again nests.
//!
//! Handle 0 names no interpreter and no pool (`PYB_E_BAD_HANDLE`); the main
//! interpreter is entered with `pyb_gil_acquire`. In a `fork()` child every
//! call here returns `PYB_E_FORKED` at once (their keeper threads are gone),
//! except a nested enter of the interpreter whose scope the forking thread
//! has open, which nests like `pyb_gil_acquire`.

use std::ffi::c_char;

use crate::abi::status::{PYB_E_BAD_HANDLE, pyb_status};
use crate::capi::boundary::{check_out, ffi_boundary, optional_utf8_c_arg, out_ptr};
use crate::python::{interpreter_switch, pool, subinterpreter};
use crate::runtime::config::deadline_after;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate::{self, GateState};
use crate::runtime::ids::InterpreterId;
use crate::runtime::thread_slot::ThreadSlot;

pub use crate::abi::handles::pyb_gil;
pub use crate::abi::interpreter::*;

/// Checked first, before any lock: in a `fork()` child a lock may belong to a
/// vanished thread, and no keeper thread is left to end an interpreter.
fn refuse_if_forked() -> Result<()> {
    if gate::load().state() == GateState::Forked {
        return Err(Error::forked());
    }
    Ok(())
}

/// Writes the default settings to `out`: an interpreter with its own GIL. Any
/// thread, any time.
///
/// Errors: `PYB_E_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_interpreter_config_default(
    out: *mut pyb_interpreter_config,
) -> pyb_status {
    ffi_boundary("pyb_interpreter_config_default", || {
        *out_ptr(out, "out")? = pyb_interpreter_config::default();
        Ok(())
    })
}

const KNOWN_INTERPRETER_FLAGS: u32 = PYB_INTERPRETER_SHARED_GIL;

/// Makes a sub-interpreter and writes its handle to `out`. `config` NULL means
/// the defaults (own GIL). Any thread; the call takes the main GIL for a
/// moment (a scope the caller holds is given away meanwhile). The interpreter
/// lives until `pyb_interpreter_destroy` or the engine's shutdown.
///
/// Errors: `PYB_E_NULL_ARGUMENT` (`out`); `PYB_E_UNSUPPORTED` (own GIL before
/// CPython 3.12: the message names the version); `PYB_E_NOT_INITIALIZED`,
/// `PYB_E_SHUTTING_DOWN`, `PYB_E_FORKED`; `PYB_E_INVALID_ARGUMENT` (unknown
/// flags, a `struct_size` too small); `PYB_E_PYTHON` (CPython refused);
/// `PYB_E_OUT_OF_MEMORY` (no thread could be started to keep it);
/// `PYB_E_PANIC` (a bug in pybridge).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_interpreter_new(
    config: *const pyb_interpreter_config,
    out: *mut pyb_interpreter,
) -> pyb_status {
    ffi_boundary("pyb_interpreter_new", || {
        refuse_if_forked()?;
        check_out(out, "out")?;
        let config = if config.is_null() {
            pyb_interpreter_config::default()
        } else {
            // SAFETY: the caller's struct starts with `struct_size`.
            let size = unsafe { (*config).struct_size };
            if size < std::mem::size_of::<pyb_interpreter_config>() {
                return Err(Error::invalid_argument(format!(
                    "pyb_interpreter_config.struct_size is {size}; fill the struct with \
                     pyb_interpreter_config_default"
                )));
            }
            // SAFETY: checked to hold the whole struct.
            unsafe { *config }
        };
        if config.flags & !KNOWN_INTERPRETER_FLAGS != 0 {
            return Err(Error::invalid_argument(format!(
                "unknown pyb_interpreter_config flags {:#x}",
                config.flags & !KNOWN_INTERPRETER_FLAGS
            )));
        }
        let own_gil = config.flags & PYB_INTERPRETER_SHARED_GIL == 0;
        let id = subinterpreter::create(own_gil)?;
        // SAFETY: checked non-null above.
        unsafe { *out = id.0 };
        Ok(())
    })
}

/// Opens a GIL scope in `interp` on the calling thread and writes its token to
/// `out`; release it with `pyb_gil_release`, on the same thread, in LIFO order.
/// The thread keeps one thread state per interpreter it has entered, reused by
/// later scopes and freed when the thread exits (see the module comment for
/// nesting). Blocks while another thread holds that interpreter's GIL.
///
/// A pool's interpreter may be entered while borrowed.
///
/// Errors: `PYB_E_BAD_HANDLE` (0, destroyed, or never made);
/// `PYB_E_SHUTTING_DOWN` (being destroyed, or the engine is stopping);
/// `PYB_E_NOT_INITIALIZED`; `PYB_E_FORKED`; `PYB_E_NULL_ARGUMENT`;
/// `PYB_E_INVALID_ARGUMENT` (scopes or allow-threads regions nested too deep
/// on this thread); `PYB_E_OUT_OF_MEMORY`, `PYB_E_PYTHON` (CPython could not
/// allocate the thread's state); `PYB_E_PANIC` (a bug in pybridge).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_interpreter_enter(
    interp: pyb_interpreter,
    out: *mut pyb_gil,
) -> pyb_status {
    ffi_boundary("pyb_interpreter_enter", || {
        let out = out_ptr(out, "out")?;
        let thread = ThreadSlot::current();
        refuse_no_interpreter(interp)?;
        let interp = InterpreterId(interp);
        let nested = thread.current_interpreter() == interp && thread.owner().frames.depth() > 0;
        if !nested {
            refuse_if_forked()?;
        }
        *out = interpreter_switch::enter_interpreter(thread, interp)?.0;
        Ok(())
    })
}

/// Destroys `interp`: waits up to `timeout_ms` (`PYB_TIMEOUT_INFINITE`: no
/// limit) for host threads inside it to leave and for every Python thread
/// running in it to finish (daemon ones too, which only shared-GIL
/// interpreters allow: CPython cannot end an interpreter while one of its
/// threads lives), then ends it on its keeper thread. Its object handles
/// die with it. Any thread but one inside `interp`; a scope the caller holds
/// elsewhere is given away while it waits. A pool's interpreters end only
/// with their pool (`pyb_pool_destroy`).
///
/// Errors: `PYB_E_WOULD_DEADLOCK` (the caller is inside it; nothing changed);
/// `PYB_E_TIMEOUT` (the message names who is still inside; nothing changed);
/// `PYB_E_SHUTDOWN_COMMITTED` (the deadline passed after the end began:
/// CPython was still running the interpreter's atexit functions and
/// finalizers; the end carries on, the interpreter can no longer be entered,
/// and a later destroy waits for the end, then returns `PYB_OK` or
/// `PYB_E_BAD_HANDLE`); `PYB_E_BAD_HANDLE` (0, already destroyed, or never
/// made); `PYB_E_INVALID_ARGUMENT` (it belongs to a pool: the message names
/// it; nothing changed); `PYB_E_FORKED`; `PYB_E_PANIC` (a bug in pybridge).
#[unsafe(no_mangle)]
pub extern "C" fn pyb_interpreter_destroy(interp: pyb_interpreter, timeout_ms: u32) -> pyb_status {
    ffi_boundary("pyb_interpreter_destroy", || {
        refuse_if_forked()?;
        refuse_no_interpreter(interp)?;
        subinterpreter::destroy(InterpreterId(interp), deadline_after(timeout_ms))
    })
}

/// Makes a pool of `count` interpreters with their own GIL and runs
/// `setup_code` (NULL: none) in each one's `__main__`. Any thread. The pool
/// lives until `pyb_pool_destroy` or the engine's shutdown; its interpreters
/// end only with it.
///
/// Errors: `PYB_E_UNSUPPORTED` (before CPython 3.12); `PYB_E_INVALID_ARGUMENT`
/// (`count` 0 or above 256, bad UTF-8); `PYB_E_PYTHON` (the setup code
/// raised, or CPython refused: nothing is left behind); `PYB_E_NULL_ARGUMENT`
/// (`out`); `PYB_E_NOT_INITIALIZED`, `PYB_E_SHUTTING_DOWN`, `PYB_E_FORKED`;
/// `PYB_E_OUT_OF_MEMORY`; `PYB_E_PANIC` (a bug in pybridge).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_pool_new(
    count: usize,
    setup_code: *const c_char,
    out: *mut pyb_pool,
) -> pyb_status {
    ffi_boundary("pyb_pool_new", || {
        refuse_if_forked()?;
        check_out(out, "out")?;
        let setup = optional_utf8_c_arg(setup_code, "setup_code")?;
        let id = pool::create(count, setup)?;
        // SAFETY: checked non-null above.
        unsafe { *out = id };
        Ok(())
    })
}

/// Borrows a free interpreter of `pool`, waiting up to `timeout_ms` for one,
/// and writes it to `out`. Enter it with `pyb_interpreter_enter` and give it
/// back with `pyb_pool_return`. Any thread.
///
/// Errors: `PYB_E_TIMEOUT` (all borrowed until the deadline);
/// `PYB_E_SHUTTING_DOWN` (the pool is being destroyed, or was destroyed by
/// the engine's shutdown during the wait); `PYB_E_BAD_HANDLE` (0, destroyed,
/// or never made); `PYB_E_NULL_ARGUMENT`; `PYB_E_FORKED`; `PYB_E_PANIC`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_pool_borrow(
    pool: pyb_pool,
    timeout_ms: u32,
    out: *mut pyb_interpreter,
) -> pyb_status {
    ffi_boundary("pyb_pool_borrow", || {
        check_out(out, "out")?;
        refuse_if_forked()?;
        let interp = pool::borrow(pool, deadline_after(timeout_ms))?;
        // SAFETY: checked non-null above.
        unsafe { *out = interp.0 };
        Ok(())
    })
}

/// Gives a borrowed interpreter back to `pool`. Any thread (not only the
/// borrower); release your scopes in it first.
///
/// Errors: `PYB_E_INVALID_ARGUMENT` (not borrowed from this pool, or already
/// given back); `PYB_E_BAD_HANDLE` (0, destroyed, or never made);
/// `PYB_E_FORKED`; `PYB_E_PANIC`.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_pool_return(pool: pyb_pool, interp: pyb_interpreter) -> pyb_status {
    ffi_boundary("pyb_pool_return", || {
        refuse_if_forked()?;
        pool::give_back(pool, InterpreterId(interp))
    })
}

/// Destroys `pool` and all its interpreters, or nothing: waits up to
/// `timeout_ms` (`PYB_TIMEOUT_INFINITE`: no limit) for every borrowed one to
/// come back, for every host thread inside one to leave and for every Python
/// thread running in one to finish, and only then ends them all. Borrowers
/// meanwhile get `PYB_E_SHUTTING_DOWN`. A destroy that the engine's shutdown,
/// or a concurrent destroy, overtakes returns `PYB_OK` once the pool is gone.
/// Any thread but one inside any of its interpreters; a scope the caller holds
/// elsewhere is given away while it waits.
///
/// Errors: `PYB_E_TIMEOUT` (at the deadline an interpreter was still
/// borrowed, a thread still inside one, a Python thread still running in one,
/// or another destroy of the pool under way; the message says which; nothing
/// changed: the pool keeps all its interpreters, and every one not borrowed
/// can be borrowed at once); `PYB_E_SHUTDOWN_COMMITTED` (the deadline passed
/// after the interpreters began to end; they end in the background, the pool
/// lends nothing, and a later destroy waits for the end); `PYB_E_WOULD_DEADLOCK`
/// (the caller is inside one of its
/// interpreters; nothing changed); `PYB_E_BAD_HANDLE` (0, destroyed, or never
/// made); `PYB_E_FORKED`; `PYB_E_PANIC` (a bug in pybridge).
#[unsafe(no_mangle)]
pub extern "C" fn pyb_pool_destroy(pool: pyb_pool, timeout_ms: u32) -> pyb_status {
    ffi_boundary("pyb_pool_destroy", || {
        refuse_if_forked()?;
        pool::destroy(pool, deadline_after(timeout_ms))
    })
}

/// Fills `out` with the pool's counters; set `out->struct_size` first. Any thread.
///
/// Errors: `PYB_E_INVALID_ARGUMENT` (`struct_size` smaller than this
/// version's `pyb_pool_stats`); `PYB_E_BAD_HANDLE` (0, destroyed, or never
/// made); `PYB_E_NULL_ARGUMENT`; `PYB_E_FORKED`; `PYB_E_PANIC`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_pool_stats_get(
    pool: pyb_pool,
    out: *mut pyb_pool_stats,
) -> pyb_status {
    ffi_boundary("pyb_pool_stats_get", || {
        let out = out_ptr(out, "out")?;
        refuse_if_forked()?;
        let own_size = std::mem::size_of::<pyb_pool_stats>();
        if out.struct_size < own_size {
            return Err(Error::invalid_argument(format!(
                "pyb_pool_stats.struct_size is {}; set it to sizeof(pyb_pool_stats) = {own_size}",
                out.struct_size
            )));
        }
        *out = pool::stats(pool)?;
        Ok(())
    })
}

/// Handle 0 is "none", not the main interpreter.
fn refuse_no_interpreter(interp: pyb_interpreter) -> Result<()> {
    if interp == 0 {
        return Err(Error::new(
            PYB_E_BAD_HANDLE,
            "interpreter handle is 0, which names no interpreter (the main one is entered \
             with pyb_gil_acquire); pass a handle pyb_interpreter_new or pyb_pool_borrow \
             returned",
        ));
    }
    Ok(())
}
