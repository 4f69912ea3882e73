//! A host thread's frame stack: every GIL scope, allow-threads region and
//! interpreter switch it has open, innermost last, each frame saying what it
//! is. The GIL nesting depth, whether the outermost scope borrowed the GIL,
//! whether the thread is inside a region and which interpreter it works in
//! are read off this one stack, never kept beside it.
//!
//! A region or a switch starts a new nesting: the scopes above it count from
//! 1 again, and those below it wait until it ends. A switch into another
//! interpreter sits right below the first scope opened there (which closes
//! it) and right above the region that gave the previous GIL away, if any.
//!
//! No-op regions (begun by a thread that held no GIL) give nothing away and
//! take nothing back, so every other rule looks through them, and they close
//! in LIFO order among themselves only. A GIL scope or a region may therefore
//! close while a no-op region opened after it is still open (orders the C API
//! has always accepted: the C, C++ and Rust tests pin them): it is taken out
//! from under the no-op frames, which stay where they are.

use pyo3::ffi;

use crate::runtime::cell_stack::CellStack;
use crate::runtime::ids::InterpreterId;
use crate::runtime::interpreters::InterpreterRecord;
use crate::runtime::token::TokenValue;

/// One thing a thread has open.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Frame {
    /// A GIL scope (`pyb_gil_acquire`, `pyb_interpreter_enter`, pybridge's own `GilScope`).
    Scope(ScopeFrame),
    /// An allow-threads region that gave the GIL away.
    AllowThreads(AllowFrame),
    /// An allow-threads region begun without a GIL: its end does nothing.
    NoopAllowThreads { token: TokenValue },
    /// A switch into another interpreter than the thread was in.
    Interpreter(InterpreterFrame),
}

impl Frame {
    #[inline(always)]
    fn is_noop(&self) -> bool {
        matches!(self, Frame::NoopAllowThreads { .. })
    }
}

/// An open GIL scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopeFrame {
    pub token: TokenValue,
    /// 1 for the first scope above the thread's innermost region or switch
    /// (or the bottom), 2 for the one nested in it, and so on.
    pub depth: u32,
    pub entry: ScopeEntry,
}

/// How a scope got its GIL, which says what its release gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeEntry {
    /// The outermost scope took the GIL; its release gives it away.
    Took,
    /// The outermost scope found the GIL held by this thread already (a Python
    /// thread calling into the host, or code inside `PyGILState_Ensure`): its
    /// release must not give the GIL away.
    Borrowed,
    /// A nested scope under a scope that held the GIL.
    Nested,
    /// A nested scope that found the GIL given away under the enclosing scope
    /// (ctypes, a C extension's `Py_BEGIN_ALLOW_THREADS`) and took it back;
    /// its release gives it away again.
    Retook,
}

/// A region opened by `pyb_begin_allow_threads` that released the GIL: what to
/// restore at the matching end (the scopes it interrupted are the frames below).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AllowFrame {
    pub token: TokenValue,
    pub saved_tstate: *mut ffi::PyThreadState,
    /// `ThreadSlot::epoch` when the region began, put back at its end.
    pub epoch: u32,
}

/// A switch by `pyb_interpreter_enter` into another interpreter than the
/// thread was in: what to restore when the scope above it closes. The
/// interpreter the thread came from is the next switch below (or the main one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InterpreterFrame {
    /// The entered interpreter's record; the thread's entry keeps it registered.
    pub record: *const InterpreterRecord,
    /// The allow-threads region that gave the previous interpreter's GIL away
    /// (a no-op one when the thread held none inside a region), or 0 when the
    /// thread was in no scope and no region.
    pub region_token: TokenValue,
    /// The thread's state before the switch, and where it came from.
    pub previous_tstate: *mut ffi::PyThreadState,
    pub previous_owns_tstate: bool,
    pub previous_generation: u32,
    pub previous_generation_start: u64,
}

impl InterpreterFrame {
    /// The entered interpreter's record.
    #[inline(always)]
    pub(crate) fn record(&self) -> &InterpreterRecord {
        // SAFETY: the thread's entry (`runtime::interpreters::enter`) keeps the
        // record registered until the frame is gone.
        unsafe { &*self.record }
    }
}

/// One thread's frames, innermost last. A [`CellStack`], so no closure (and no
/// Python code) runs while its contents are borrowed.
#[derive(Debug)]
pub(crate) struct FrameStack(CellStack<Frame>);

impl FrameStack {
    pub(crate) const fn new() -> Self {
        FrameStack(CellStack::new())
    }

    #[inline(always)]
    pub(crate) fn push(&self, frame: Frame) {
        self.0.push(frame)
    }

    pub(crate) fn clear(&self) {
        self.0.clear()
    }

    /// The innermost frame that is not a no-op region, with its index.
    #[inline(always)]
    fn innermost(&self) -> Option<(usize, Frame)> {
        match self.0.last() {
            Some(Frame::NoopAllowThreads { .. }) => self.innermost_under_noops(),
            Some(frame) => Some((self.0.len() - 1, frame)),
            None => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn innermost_under_noops(&self) -> Option<(usize, Frame)> {
        self.0.rfind(|frame| !frame.is_noop())
    }

    /// Takes out the innermost frame that is not a no-op region if `fits` says so.
    #[inline(always)]
    fn take_innermost_if(&self, fits: impl Fn(&Frame) -> bool) -> Option<Frame> {
        let (index, frame) = self.innermost()?;
        fits(&frame).then(|| self.0.remove(index))
    }

    /// The innermost scope, when no region or switch was opened after it.
    #[inline(always)]
    pub(crate) fn innermost_scope(&self) -> Option<ScopeFrame> {
        match self.innermost() {
            Some((_, Frame::Scope(scope))) => Some(scope),
            _ => None,
        }
    }

    /// GIL nesting since the innermost region or switch; 0 = no scope open there.
    #[inline(always)]
    pub(crate) fn depth(&self) -> u32 {
        // Written out (not through `innermost_scope`) so the hot path reads
        // the one field instead of copying the frame.
        match self.0.last() {
            Some(Frame::Scope(scope)) => scope.depth,
            Some(Frame::NoopAllowThreads { .. }) => self.depth_under_noops(),
            Some(Frame::AllowThreads(_) | Frame::Interpreter(_)) | None => 0,
        }
    }

    #[cold]
    #[inline(never)]
    fn depth_under_noops(&self) -> u32 {
        self.innermost_scope().map_or(0, |scope| scope.depth)
    }

    /// True when the outermost scope since the innermost region or switch
    /// found the GIL already held by this thread (false with no scope open).
    pub(crate) fn borrowed(&self) -> bool {
        self.depth() > 0
            && self
                .0
                .rfind(|frame| matches!(frame, Frame::Scope(scope) if scope.depth == 1))
                .is_some_and(|(_, frame)| {
                    matches!(frame, Frame::Scope(scope) if scope.entry == ScopeEntry::Borrowed)
                })
    }

    /// Closes the innermost scope if its token is `token`, saying how it got
    /// its GIL. (Only that field is read back: a wider read of a frame pushed
    /// a moment ago, as in a round trip, stalls on store forwarding.)
    #[inline(always)]
    pub(crate) fn close_scope(&self, token: TokenValue) -> Option<ScopeEntry> {
        match self.0.last() {
            Some(Frame::Scope(scope)) if scope.token == token => {
                self.0.discard_last();
                Some(scope.entry)
            }
            Some(Frame::NoopAllowThreads { .. }) => self.close_scope_under_noops(token),
            _ => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn close_scope_under_noops(&self, token: TokenValue) -> Option<ScopeEntry> {
        match self
            .take_innermost_if(|frame| matches!(frame, Frame::Scope(scope) if scope.token == token))
        {
            Some(Frame::Scope(scope)) => Some(scope.entry),
            _ => None,
        }
    }

    /// Ends the innermost no-op region if its token is `token`.
    #[inline(always)]
    pub(crate) fn end_noop_region(&self, token: TokenValue) -> bool {
        match self.0.last() {
            Some(Frame::NoopAllowThreads { token: top }) if top == token => {
                self.0.pop();
                true
            }
            _ => self.end_noop_region_under_others(token),
        }
    }

    #[cold]
    #[inline(never)]
    fn end_noop_region_under_others(&self, token: TokenValue) -> bool {
        match self.0.rfind(Frame::is_noop) {
            Some((index, Frame::NoopAllowThreads { token: innermost })) if innermost == token => {
                self.0.remove(index);
                true
            }
            _ => false,
        }
    }

    /// Ends the region `token` if it is the innermost frame (no-op regions
    /// aside): no scope opened inside it is still open.
    #[inline(always)]
    pub(crate) fn end_region(&self, token: TokenValue) -> Option<AllowFrame> {
        match self.take_innermost_if(
            |frame| matches!(frame, Frame::AllowThreads(region) if region.token == token),
        ) {
            Some(Frame::AllowThreads(region)) => Some(region),
            _ => None,
        }
    }

    /// Takes out the switch right under a scope that just closed, if it is one.
    #[inline(always)]
    pub(crate) fn leave_switch(&self) -> Option<InterpreterFrame> {
        match self.0.last() {
            None | Some(Frame::Scope(_) | Frame::AllowThreads(_)) => None,
            Some(_) => self.take_innermost_switch(),
        }
    }

    #[cold]
    #[inline(never)]
    fn take_innermost_switch(&self) -> Option<InterpreterFrame> {
        match self.take_innermost_if(|frame| matches!(frame, Frame::Interpreter(_))) {
            Some(Frame::Interpreter(switch)) => Some(switch),
            _ => None,
        }
    }

    /// True when a region that gave a GIL away is open, at any depth (the
    /// thread will take that GIL back, so it stays busy).
    #[inline(always)]
    pub(crate) fn in_allow_threads_region(&self) -> bool {
        match self.0.last() {
            None => false,
            Some(Frame::AllowThreads(_)) => true,
            Some(_) => self.region_further_down(),
        }
    }

    #[cold]
    #[inline(never)]
    fn region_further_down(&self) -> bool {
        self.0
            .rfind(|frame| matches!(frame, Frame::AllowThreads(_)))
            .is_some()
    }

    /// Open regions of both kinds.
    pub(crate) fn regions_open(&self) -> usize {
        self.0.count(|frame| {
            matches!(
                frame,
                Frame::AllowThreads(_) | Frame::NoopAllowThreads { .. }
            )
        })
    }

    /// The innermost switch into another interpreter, with its index.
    #[inline(always)]
    pub(crate) fn innermost_switch(&self) -> Option<(usize, InterpreterFrame)> {
        match self.0.rfind(|frame| matches!(frame, Frame::Interpreter(_))) {
            Some((index, Frame::Interpreter(switch))) => Some((index, switch)),
            _ => None,
        }
    }

    /// The interpreter the frames say the thread works in: the innermost
    /// switch's, else the main one.
    pub(crate) fn interpreter(&self) -> InterpreterId {
        self.innermost_switch()
            .map_or(InterpreterId::MAIN, |(_, switch)| switch.record().id)
    }

    /// True when a switch into `id` is open, at any depth.
    pub(crate) fn has_switch_into(&self, id: InterpreterId) -> bool {
        self.0
            .rfind(|frame| matches!(frame, Frame::Interpreter(switch) if switch.record().id == id))
            .is_some()
    }

    /// A thread's exit unwinding the switch at `index` (innermost first): the
    /// switch and every scope go (their GILs are gone with the states the exit
    /// freed); regions stay, so the exit still sees the thread inside one.
    pub(crate) fn drop_switch_and_scopes(&self, index: usize) {
        self.0.remove(index);
        self.0.retain(|frame| !matches!(frame, Frame::Scope(_)));
    }

    /// A copy, bottom first (error paths).
    pub(crate) fn to_vec(&self) -> Vec<Frame> {
        self.0.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(token: u64, depth: u32, entry: ScopeEntry) -> Frame {
        Frame::Scope(ScopeFrame {
            token: TokenValue(token),
            depth,
            entry,
        })
    }

    fn region(token: u64) -> Frame {
        Frame::AllowThreads(AllowFrame {
            token: TokenValue(token),
            saved_tstate: std::ptr::null_mut(),
            epoch: 0,
        })
    }

    #[test]
    fn depth_and_borrowing_are_read_off_the_frames() {
        let frames = FrameStack::new();
        assert_eq!((frames.depth(), frames.borrowed()), (0, false));
        frames.push(scope(10, 1, ScopeEntry::Borrowed));
        frames.push(scope(11, 2, ScopeEntry::Nested));
        assert_eq!((frames.depth(), frames.borrowed()), (2, true));
        frames.push(region(20));
        assert_eq!((frames.depth(), frames.borrowed()), (0, false));
        assert!(frames.in_allow_threads_region());
        frames.push(scope(12, 1, ScopeEntry::Took));
        assert_eq!((frames.depth(), frames.borrowed()), (1, false));
        assert_eq!(frames.regions_open(), 1);
    }

    #[test]
    fn no_op_regions_are_looked_through_and_close_among_themselves() {
        let frames = FrameStack::new();
        frames.push(scope(10, 1, ScopeEntry::Took));
        frames.push(Frame::NoopAllowThreads {
            token: TokenValue(30),
        });
        frames.push(Frame::NoopAllowThreads {
            token: TokenValue(31),
        });
        assert_eq!(frames.depth(), 1);
        // Not the innermost no-op region.
        assert!(!frames.end_noop_region(TokenValue(30)));
        // The scope closes from under both no-op regions.
        assert_eq!(frames.close_scope(TokenValue(10)), Some(ScopeEntry::Took));
        assert_eq!(frames.depth(), 0);
        assert!(frames.end_noop_region(TokenValue(31)));
        assert!(frames.end_noop_region(TokenValue(30)));
        assert!(frames.to_vec().is_empty());
    }

    #[test]
    fn a_region_ends_only_with_no_scope_open_inside_it() {
        let frames = FrameStack::new();
        frames.push(region(20));
        frames.push(scope(12, 1, ScopeEntry::Took));
        assert!(frames.end_region(TokenValue(20)).is_none());
        assert!(frames.close_scope(TokenValue(12)).is_some());
        frames.push(Frame::NoopAllowThreads {
            token: TokenValue(30),
        });
        assert_eq!(
            frames.end_region(TokenValue(20)).map(|region| region.token),
            Some(TokenValue(20))
        );
        assert!(!frames.in_allow_threads_region());
        assert_eq!(frames.regions_open(), 1);
    }
}
