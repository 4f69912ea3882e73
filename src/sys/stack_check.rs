//! A warning when a thread whose stack is too small for this CPython first
//! enters pybridge.
//!
//! CPython recurses on the C stack for `repr`, `str`, `json.dumps`, `pickle`
//! and friends of deeply nested data, up to its C recursion limit, and a
//! thread whose stack ends first dies with SIGSEGV: no status can report that.
//! Measured with a 100,000-deep nested list and dict on the pyenv builds (see
//! docs/CPYTHON-NOTES.md, "Stack size"): 3.10 needs 512 KiB, 3.11 256 KiB,
//! 3.12 384 KiB; 3.13 raised the C recursion limit and needs 3 MiB
//! (`json.dumps` of a deep dict; 2 MiB crashes). The minimums below add margin.

/// The smallest stack this CPython is known to be safe on, with margin.
pub(crate) const MINIMUM_STACK: usize = if cfg!(Py_3_13) { 4 << 20 } else { 1 << 20 };

/// Logs a warning naming the thread (`describe`) when its stack is below
/// `MINIMUM_STACK`. Once per thread, when its record is created.
pub(crate) fn warn_if_stack_too_small(describe: impl FnOnce() -> String) {
    let Some(size) = crate::sys::thread::stack_size() else {
        return;
    };
    if size < MINIMUM_STACK {
        log::warn!(
            "{} has a {} KiB stack; this CPython needs at least {} KiB to survive deep \
             recursion in C code (repr, json or pickle of deeply nested data), which \
             otherwise crashes the process. Start the thread with a larger stack",
            describe(),
            size >> 10,
            MINIMUM_STACK >> 10
        );
    }
}
