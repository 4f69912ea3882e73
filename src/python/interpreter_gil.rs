//! Which interpreter's GIL the calling thread holds, as a token that names it
//! (`runtime::gil_cell`). `main_gil` asks CPython (the interpreter of the
//! current thread state), so a main-interpreter static is reached only by a
//! thread that really holds the main GIL, whatever pybridge's own records say.

use pyo3::{Python, ffi};

use crate::runtime::gil_cell::MainGil;

/// The main interpreter's GIL token, when the caller's GIL is the main
/// interpreter's; `None` in a sub-interpreter (or on a keeper thread, which
/// runs its sub-interpreter's code on a raw thread state).
#[inline]
pub(crate) fn main_gil(py: Python<'_>) -> Option<MainGil<'_>> {
    // SAFETY: a GIL is held (the token), so the current thread state is live.
    let current = unsafe { ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get()) };
    // SAFETY: the current thread state belongs to the main interpreter, whose
    // GIL its holder holds.
    (current == crate::runtime::gate::interpreter()).then(|| unsafe { MainGil::assume(py) })
}
