//! The engine's life: initialize (on an engine-owned thread), run, shut down
//! from any thread under a deadline, and start again (`lifecycle/`).

use crate::abi::config::pyb_config;
use crate::abi::status::pyb_status;
use crate::capi::boundary::ffi_boundary;
use crate::capi::config::engine_config;
use crate::lifecycle;
use crate::runtime::gate::{self, GateState};

pub use crate::abi::engine::*;

/// Starts the engine: Python is initialized on a new engine-owned thread, which
/// stays Python's main thread until shutdown. Idempotent: when the engine already
/// runs this returns `PYB_OK` at once; concurrent calls from many threads wait
/// for the one that initializes and all return its result. `config` may be NULL
/// for defaults; it is copied. When this returns, no host thread holds the GIL.
///
/// If Python is already initialized in this process (pybridge was loaded into
/// a Python process), the engine adopts it as a guest and never finalizes it.
///
/// Any thread; the caller must not hold the GIL. Errors: `PYB_E_INIT_FAILED`
/// (CPython's reason in the message), `PYB_E_INVALID_ARGUMENT` (bad config),
/// `PYB_E_OUT_OF_MEMORY` (`module_search_paths_len` too large to allocate for),
/// `PYB_E_TIMEOUT` (a shutdown still under way, the previous engine thread not
/// yet exited, or daemon threads of the previous interpreter still alive, after
/// `previous_threads_timeout_ms`; nothing started), `PYB_E_SHUTTING_DOWN` (the
/// last engine's shutdown was abandoned, see `pyb_engine_shutdown`: no engine
/// can start again in this process), `PYB_E_FORKED` (a `fork()` child of a
/// process whose engine ran, see `PYB_STATE_FORKED`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_engine_initialize(config: *const pyb_config) -> pyb_status {
    ffi_boundary("pyb_engine_initialize", || {
        crate::capi::stats::enable_from_environment();
        lifecycle::initialize(engine_config(config)?)
    })
}

/// Shuts the engine down from any thread, within `timeout_ms` (`PYB_TIMEOUT_INFINITE`
/// to wait for ever).
///
/// New GIL requests fail at once with `PYB_E_SHUTTING_DOWN`. The call then waits
/// until no host thread holds the GIL through pybridge or is inside an
/// allow-threads region, until non-daemon Python threads of the main
/// interpreter have finished, and until no Python thread runs in any live
/// sub-interpreter (daemon ones too: CPython cannot end an interpreter while
/// one of its threads lives), and (CPython 3.14+) until no interpreter that
/// Python code made (`concurrent.interpreters`) runs code and no
/// `InterpreterPoolExecutor` has queued work, and (3.15+) until native code
/// holds no PEP 788 interpreter guard (`PyInterpreterGuard`, or a
/// `PyThreadState_Ensure` scope: `Py_FinalizeEx` would wait for it); then the
/// engine thread ends the sub-interpreters and runs `Py_FinalizeEx` (which
/// ends idle Python-made interpreters, and waits for threads started inside
/// them), and the call returns `PYB_OK`.
///
/// If the deadline passes first, the outcome depends on whether the shutdown
/// passed its point of no return (threads interrupted, see
/// `PYB_SHUTDOWN_INTERRUPT`, or `Py_FinalizeEx` begun):
/// - before it: `PYB_E_TIMEOUT`, the message names what blocked it, and the
///   engine runs on exactly as before, with no exception pending anywhere (try
///   again later);
/// - after it: `PYB_E_SHUTDOWN_COMMITTED`; the state stays `SHUTTING_DOWN`
///   until the shutdown ends and then becomes `UNINITIALIZED`. Call
///   `pyb_engine_shutdown` again to wait for it.
///
/// Past the point of no return the sub-interpreters are ended within the
/// latest deadline of the calls waiting for the shutdown (`PYB_TIMEOUT_INFINITE`:
/// no limit; at least 200 ms however short). One still alive then (its
/// `atexit` function blocked, say) abandons the engine, because `Py_FinalizeEx`
/// with a sub-interpreter alive aborts the process: Python stays initialized
/// until the process exits, the state stays `SHUTTING_DOWN`, this and every
/// later shutdown return `PYB_E_SHUTDOWN_COMMITTED` ("shutdown abandoned: ...")
/// and `pyb_engine_initialize` returns `PYB_E_SHUTTING_DOWN`.
///
/// Flags: `PYB_SHUTDOWN_INTERRUPT`. Concurrent calls join the shutdown in
/// progress: exactly one finalizes, each returns when it ends or its own deadline
/// passes. After `PYB_OK`, `pyb_engine_initialize` starts a fresh interpreter.
///
/// Errors: `PYB_E_WOULD_DEADLOCK` when the calling thread holds the GIL or is in
/// an allow-threads region (nothing changes); `PYB_E_NOT_INITIALIZED`;
/// `PYB_E_INVALID_ARGUMENT` (unknown flags); `PYB_E_TIMEOUT`;
/// `PYB_E_SHUTDOWN_COMMITTED`; `PYB_E_FORKED`.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_engine_shutdown(timeout_ms: u32, flags: u32) -> pyb_status {
    ffi_boundary("pyb_engine_shutdown", || {
        lifecycle::shutdown(timeout_ms, flags)
    })
}

/// `PYB_STATE_UNINITIALIZED`, `PYB_STATE_RUNNING`, `PYB_STATE_SHUTTING_DOWN`
/// or `PYB_STATE_FORKED`. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn pyb_engine_state() -> i32 {
    match gate::load().state() {
        GateState::Closed => PYB_STATE_UNINITIALIZED,
        GateState::Running => PYB_STATE_RUNNING,
        GateState::ShuttingDown | GateState::Finalizing => PYB_STATE_SHUTTING_DOWN,
        GateState::Forked => PYB_STATE_FORKED,
    }
}
