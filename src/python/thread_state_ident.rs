//! The thread ident (`threading.get_ident()`) a thread state was made on.
//!
//! CPython has no public function for it; the field (`thread_id`,
//! Include/cpython/pystate.h) sits at an offset that changes with the minor
//! version. It used to be read by a C file compiled against the build's
//! headers, but a Windows cross-build has no Windows CPython headers (the
//! embeddable distribution ships none), so the offsets are written here,
//! measured with `offsetof` against each version's headers (3.10.13, 3.11.7,
//! 3.12.1, 3.13.0, Debian sid's 3.14 and 3.15). Every field before it is a
//! pointer, an `int` or a bitfield word, so the offset is the same on Windows
//! x64; the field is an `unsigned long`, 8 bytes on Linux and 4 on Windows,
//! which `c_ulong` follows. `layout_holds` checks the offset on the calling
//! thread's own state before anything trusts it.
//!
//! The interrupting shutdown needs the ident to find a thread's innermost
//! frame without `sys._current_frames()`, which crashes CPython 3.12 when
//! another interpreter runs (docs/CPYTHON-NOTES.md, "Interrupting threads").

use std::ffi::c_ulong;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::{Python, ffi};

use crate::runtime::ids::ThreadIdent;

/// `offsetof(PyThreadState, thread_id)` for the CPython this build is for.
const THREAD_ID_OFFSET: usize = if cfg!(Py_3_15) {
    176
} else if cfg!(Py_3_13) {
    152
} else if cfg!(Py_3_12) {
    136
} else if cfg!(Py_3_11) {
    152
} else {
    176
};

/// The ident of the thread `state` was made on.
///
/// # Safety
/// GIL held; `state` is a live thread state of the interpreter whose GIL it is.
pub(crate) unsafe fn ident_of(_py: Python<'_>, state: *mut ffi::PyThreadState) -> ThreadIdent {
    // SAFETY: `state` is live (caller); the offset is the field's for this
    // CPython version, checked by `layout_holds`; the field is aligned.
    let ident = unsafe {
        state
            .cast::<u8>()
            .add(THREAD_ID_OFFSET)
            .cast::<c_ulong>()
            .read()
    };
    from_c(ident)
}

/// A CPython thread ident (`unsigned long`: 64 bits on Linux, 32 on Windows).
#[allow(clippy::useless_conversion)]
fn from_c(ident: c_ulong) -> ThreadIdent {
    ThreadIdent(u64::from(ident))
}

/// Set once the offset was seen right: the layout cannot change in a process.
static LAYOUT_SEEN_RIGHT: AtomicBool = AtomicBool::new(false);

/// Whether the offset is right for the CPython that runs: the calling
/// thread's own state must carry the calling thread's ident. (A state made on
/// another thread would carry that thread's ident; pybridge interrupts from
/// the engine thread and keepers, on states they made, so a false answer
/// means the layout is not the one written here.) GIL held.
pub(crate) fn layout_holds(py: Python<'_>) -> bool {
    if LAYOUT_SEEN_RIGHT.load(Ordering::Relaxed) {
        return true;
    }
    // SAFETY: GIL held, so the calling thread has a current, live state.
    let holds = unsafe {
        let own = ffi::PyThreadState_Get();
        ident_of(py, own) == from_c(ffi::PyThread_get_thread_ident())
    };
    if holds {
        LAYOUT_SEEN_RIGHT.store(true, Ordering::Relaxed);
    }
    holds
}
