//! State whose only lock is one interpreter's GIL, and the tokens that name
//! which interpreter's GIL the caller holds.
//!
//! pyo3's `Python<'py>` proves that *a* GIL is held. Since interpreters with
//! their own GIL (3.12+) that is not enough: the main interpreter's state is
//! not protected by a sub-interpreter's GIL, and a free-threaded build has no
//! GIL at all. So the tokens here name their interpreter:
//! - `MainGil<'py>`: the main interpreter's GIL; the only key to a
//!   `MainGilCell` (the process-wide statics of the main interpreter), so a
//!   static of the main interpreter is checked by type;
//! - `InterpreterGil<'py>`: the GIL of the interpreter it names; the key to an
//!   `InterpreterGilCell`, which knows its interpreter and refuses another's.
//!
//! Tokens are made in `python::interpreter_gil`, from what the thread state
//! says (checked) or from a scope that entered the interpreter (assumed).

use std::cell::{Cell, UnsafeCell};

use pyo3::Python;

use crate::runtime::ids::InterpreterId;

/// Proof that the calling thread holds the main interpreter's GIL.
#[derive(Clone, Copy)]
pub(crate) struct MainGil<'py> {
    py: Python<'py>,
}

impl<'py> MainGil<'py> {
    /// # Safety
    /// The calling thread holds the main interpreter's GIL for `'py`.
    #[inline(always)]
    pub(crate) unsafe fn assume(py: Python<'py>) -> Self {
        MainGil { py }
    }

    #[inline(always)]
    pub(crate) fn python(self) -> Python<'py> {
        self.py
    }
}

/// Proof that the calling thread holds the GIL of `interpreter`.
#[derive(Clone, Copy)]
pub(crate) struct InterpreterGil<'py> {
    py: Python<'py>,
    interpreter: InterpreterId,
}

impl<'py> InterpreterGil<'py> {
    /// # Safety
    /// The calling thread holds `interpreter`'s GIL for `'py`.
    #[inline(always)]
    pub(crate) unsafe fn assume(py: Python<'py>, interpreter: InterpreterId) -> Self {
        InterpreterGil { py, interpreter }
    }

    #[inline(always)]
    pub(crate) fn python(self) -> Python<'py> {
        self.py
    }

    #[inline(always)]
    pub(crate) fn interpreter(self) -> InterpreterId {
        self.interpreter
    }
}

/// A value lent out one borrow at a time: what both cells share. The lock
/// (some GIL) is the caller's to prove; this only rules out a second borrow
/// on the same thread, by code run inside the first.
struct Lendable<T> {
    value: UnsafeCell<T>,
    lent: Cell<bool>,
}

impl<T> Lendable<T> {
    const fn new(value: T) -> Self {
        Lendable {
            value: UnsafeCell::new(value),
            lent: Cell::new(false),
        }
    }

    /// # Safety
    /// The caller holds the lock that guards this value.
    #[inline(always)]
    unsafe fn lend<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        assert!(
            !self.lent.replace(true),
            "pybridge bug: a GIL-guarded cell was borrowed twice"
        );
        struct Return<'a>(&'a Cell<bool>);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _return = Return(&self.lent);
        // SAFETY: the lock keeps other threads out (the caller's contract),
        // `lent` this one.
        f(unsafe { &mut *self.value.get() })
    }

    /// # Safety
    /// As `InterpreterGilCell::with_exclusive`.
    unsafe fn exclusive<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusive by the caller's contract.
        f(unsafe { &mut *self.value.get() })
    }
}

/// State of the main interpreter whose only lock is its GIL: reached only
/// with a `MainGil`. Never keep the borrow across a call that may run Python
/// code (which may switch threads or re-enter pybridge).
pub(crate) struct MainGilCell<T> {
    inner: Lendable<T>,
}

// SAFETY: the value is reached only through `with`, which requires the main
// GIL's token, so one thread at a time; the `lent` flag, written only under
// that GIL too, rules out a second borrow on that thread. `T: Send` because
// successive GIL holders are different threads.
unsafe impl<T: Send> Sync for MainGilCell<T> {}

impl<T> MainGilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        MainGilCell {
            inner: Lendable::new(value),
        }
    }

    /// Lends the value to `f`; keep `f` short: it must not run Python code.
    #[inline(always)]
    pub(crate) fn with<R>(&self, _gil: MainGil<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the token proves the main GIL is held.
        unsafe { self.inner.lend(f) }
    }
}

/// State of one interpreter whose only lock is that interpreter's GIL: the
/// cell knows its interpreter and lends its value only to a token naming it.
pub(crate) struct InterpreterGilCell<T> {
    interpreter: InterpreterId,
    inner: Lendable<T>,
}

// SAFETY: as for `MainGilCell`, with the interpreter's GIL: `with` checks the
// token names this cell's interpreter before lending.
unsafe impl<T: Send> Sync for InterpreterGilCell<T> {}

impl<T> InterpreterGilCell<T> {
    pub(crate) const fn new(interpreter: InterpreterId, value: T) -> Self {
        InterpreterGilCell {
            interpreter,
            inner: Lendable::new(value),
        }
    }

    /// Lends the value to `f` when `gil` is this cell's interpreter's; a
    /// token of another interpreter is a pybridge bug, and panics (inside the
    /// C boundary, a `PYB_E_PANIC`) instead of racing that interpreter's
    /// threads. Keep `f` short: it must not run Python code.
    #[inline(always)]
    pub(crate) fn with<R>(&self, gil: InterpreterGil<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        assert!(
            gil.interpreter() == self.interpreter,
            "pybridge bug: interpreter {}'s state borrowed under interpreter {}'s GIL",
            self.interpreter,
            gil.interpreter()
        );
        // SAFETY: the token proves this interpreter's GIL is held.
        unsafe { self.inner.lend(f) }
    }

    /// # Safety
    /// No other thread can reach the cell (its interpreter is gone, and no
    /// thread is inside pybridge), and `f` does not re-enter.
    pub(crate) unsafe fn with_exclusive<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: as the contract says.
        unsafe { self.inner.exclusive(f) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // No GIL is needed to test the cells: the tokens are only checked by type
    // and by the interpreter they name. SAFETY (each `assume`): the closures
    // never touch CPython.

    #[test]
    fn a_cell_refuses_a_second_borrow_on_the_same_thread() {
        let gil = unsafe { MainGil::assume(Python::assume_attached()) };
        let cell = MainGilCell::new(1_u32);
        assert_eq!(cell.with(gil, |value| std::mem::replace(value, 2)), 1);
        let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(gil, |_| cell.with(gil, |value| *value))
        }));
        assert!(nested.is_err(), "a nested borrow must panic, not alias");
        // The flag was reset on the way out, by the panic too.
        assert_eq!(cell.with(gil, |value| *value), 2);
    }

    #[test]
    fn an_interpreter_cell_lends_only_to_its_own_interpreter() {
        let py = unsafe { Python::assume_attached() };
        let cell = InterpreterGilCell::new(InterpreterId(7), 5_u32);
        let own = unsafe { InterpreterGil::assume(py, InterpreterId(7)) };
        assert_eq!(cell.with(own, |value| *value), 5);
        let main = unsafe { InterpreterGil::assume(py, InterpreterId::MAIN) };
        let wrong = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(main, |value| *value)
        }));
        assert!(
            wrong.is_err(),
            "another interpreter's token must be refused"
        );
        assert_eq!(cell.with(own, |value| *value), 5);
    }
}
