//! Everything that touches a Python object. A function that needs the GIL
//! takes a GIL token (`pyo3::Python<'py>`, minted by a `gil::GilScope` or by
//! CPython calling in) and references are owned through `owned::Owned`. State
//! guarded by one interpreter's GIL takes a token naming that interpreter
//! (`runtime::gil_cell`, made by `interpreter_gil` and `handles`).

pub(crate) mod allow_threads;
pub(crate) mod attached;
pub(crate) mod buffer;
pub(crate) mod call;
pub(crate) mod coroutine;
pub(crate) mod embedded;
pub(crate) mod exception;
pub(crate) mod fork;
pub(crate) mod gil;
pub(crate) mod gil_scopes;
pub(crate) mod handles;
pub(crate) mod host_function;
pub(crate) mod host_object;
pub(crate) mod info;
pub(crate) mod interpreter;
pub(crate) mod interpreter_gil;
pub(crate) mod interpreter_switch;
pub(crate) mod interrupts;
pub(crate) mod object;
pub(crate) mod owned;
pub(crate) mod pool;
pub(crate) mod promise;
pub(crate) mod python_made;
pub(crate) mod reinit_guard;
pub(crate) mod state_quarantine;
pub(crate) mod subinterpreter;
pub(crate) mod thread_exit;
pub(crate) mod thread_state_ident;
pub(crate) mod thread_states;
pub(crate) mod token_diagnostics;
pub(crate) mod value;
