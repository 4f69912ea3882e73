//! The engine's life: initialize (on an engine-owned thread), run, shut down
//! from any thread under a deadline, and start again.
//!
//! The engine thread runs `Py_InitializeFromConfig` and, at the end,
//! `Py_FinalizeEx`, so Python's main thread is never a host thread that may exit,
//! block, or be the wrong one at shutdown. Shutdown closes the gate first (new
//! GIL requests fail at once), then waits, with the deadline, for host threads
//! to leave and non-daemon Python threads to finish; only then does it commit to
//! finalizing. Until that commit a timeout reopens the gate and nothing is lost.
//! After it the sub-interpreters end by the callers' deadline; one left alive
//! then abandons the engine (Python stays initialized for good) rather than
//! let `Py_FinalizeEx` abort the process.
//!
//! `state.rs` holds the state machine both sides drive; `startup.rs` and
//! `shutdown.rs` the two sides.

mod shutdown;
mod startup;
mod state;

pub(crate) use shutdown::shutdown;
pub(crate) use startup::initialize;
