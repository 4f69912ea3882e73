//! `GilCell`: process state whose only lock is the GIL, borrowed through the
//! GIL token.

use std::cell::{Cell, UnsafeCell};

use pyo3::Python;

/// State whose only lock is the GIL: read or write it only while the calling
/// thread holds the GIL, and never keep the borrow across a call that may run
/// Python code (which may switch threads or re-enter pybridge).
pub(crate) struct GilCell<T> {
    value: UnsafeCell<T>,
    /// Set while `with` lends the value out: a nested `with` on the same cell
    /// (from code run inside the closure) panics instead of aliasing it.
    lent: Cell<bool>,
}

// SAFETY: the value is reached only through `with`, which requires the GIL
// token, so one thread at a time; the `lent` flag, written only under the GIL
// too, rules out a second borrow on that thread. `T: Send` because successive
// GIL holders are different threads.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        GilCell {
            value: UnsafeCell::new(value),
            lent: Cell::new(false),
        }
    }

    /// Lends the value to `f`; the `Python` token proves the GIL is held.
    /// Keep `f` short: it must not run Python code, which could re-enter.
    #[inline(always)]
    pub(crate) fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        assert!(
            !self.lent.replace(true),
            "pybridge bug: a GilCell was borrowed twice"
        );
        struct Return<'a>(&'a Cell<bool>);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _return = Return(&self.lent);
        // SAFETY: exclusive: the GIL keeps other threads out, `lent` this one.
        f(unsafe { &mut *self.value.get() })
    }

    /// # Safety
    /// No other thread can reach the cell (the interpreter whose GIL guards it
    /// is gone, and no thread is inside pybridge), and `f` does not re-enter.
    pub(crate) unsafe fn with_exclusive<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusive by the contract above.
        f(unsafe { &mut *self.value.get() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gil_cell_refuses_a_second_borrow_on_the_same_thread() {
        // No GIL is needed to test the flag: the token is only checked by type.
        // SAFETY: the closure never touches CPython.
        let py = unsafe { Python::assume_attached() };
        let cell = GilCell::new(1_u32);
        assert_eq!(cell.with(py, |value| std::mem::replace(value, 2)), 1);
        let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(py, |_| cell.with(py, |value| *value))
        }));
        assert!(nested.is_err(), "a nested borrow must panic, not alias");
        // The flag was reset on the way out, by the panic too.
        assert_eq!(cell.with(py, |value| *value), 2);
    }
}
