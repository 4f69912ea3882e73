//! Identifiers that travel between modules, each its own type so that one
//! can never be passed where another is meant (an interpreter id where a
//! thread ident goes, or the two of a pair swapped). Tokens have theirs in
//! `token.rs`.

use std::fmt;

/// An interpreter pybridge knows: 0 is the main interpreter, any other value
/// a sub-interpreter's `pyb_interpreter` handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub(crate) struct InterpreterId(pub u64);

impl InterpreterId {
    pub(crate) const MAIN: InterpreterId = InterpreterId(0);

    pub(crate) fn is_main(self) -> bool {
        self == InterpreterId::MAIN
    }
}

impl fmt::Display for InterpreterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The ident CPython knows a thread by (`threading.get_ident()`, the
/// `pthread_t`), which `PyThreadState_SetAsyncExc` takes. 0 matches no thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub(crate) struct ThreadIdent(pub u64);

impl ThreadIdent {
    /// Matches no thread: a keeper woken for its interpreter's Python threads alone.
    pub(crate) const NONE: ThreadIdent = ThreadIdent(0);
}
