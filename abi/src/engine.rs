//! The engine's states and the shutdown's timeout and flags.

/// No engine: before the first initialize or after a successful shutdown.
pub const PYB_STATE_UNINITIALIZED: i32 = 0;
/// Python runs; GIL requests are accepted.
pub const PYB_STATE_RUNNING: i32 = 1;
/// A shutdown is in progress; new GIL requests fail with `PYB_E_SHUTTING_DOWN`.
/// After a shutdown was abandoned (see `pyb_engine_shutdown`), for the rest of
/// the process.
pub const PYB_STATE_SHUTTING_DOWN: i32 = 2;
/// This process is a `fork()` child of a process whose engine was running (or
/// starting, or stopping). The child has only the forking thread, so its copy
/// of the engine is closed for good: every call that would start, enter or stop
/// it returns `PYB_E_FORKED` at once. GIL scopes the forking thread had open
/// go on working until it closes them, so Python's own `os.fork()` and
/// multiprocessing's fork start method keep working. A process forked while no
/// engine ran is an ordinary process and may start its own.
pub const PYB_STATE_FORKED: i32 = 3;

/// A timeout that never expires.
pub const PYB_TIMEOUT_INFINITE: u32 = u32::MAX;
/// `pyb_engine_shutdown` flag: stop threads that run Python instead of only
/// waiting for them. The shutdown raises `SystemExit` in Python threads and
/// `_pybridge_engine.ShutdownInterrupt` (a `BaseException`) in host threads
/// inside a GIL scope; each fires when its thread next runs Python bytecode.
///
/// Interrupting is a point of no return, so it happens only when the stop can
/// follow: never while a host thread is inside an allow-threads region (native
/// work an exception cannot stop; the shutdown waits, and at its deadline
/// returns `PYB_E_TIMEOUT` having changed nothing), nor while an interpreter
/// that Python code made (`concurrent.interpreters`, 3.14+) runs code (no
/// exception reaches it there; the same wait) or native code holds a PEP 788
/// interpreter guard (3.15+), and never in a thread
/// whose Python stack is inside the import system, `threading`, `logging`,
/// `queue`, `concurrent.futures` or `multiprocessing` (an exception there can
/// leave a lock held that finalization needs; the thread is interrupted once it
/// has left them). Once a thread was interrupted the shutdown never reverts:
/// past the deadline it returns `PYB_E_SHUTDOWN_COMMITTED` and carries on.
pub const PYB_SHUTDOWN_INTERRUPT: u32 = 1;
