//! `CellStack`: the one kind of stack a thread's own record keeps (its frames,
//! its sub-interpreter states): no borrow of its contents outlives a call.

use std::cell::UnsafeCell;

/// A stack the owning thread changes through `&self`, like a `Cell`: every
/// method copies values in or out and calls no other code while it touches
/// the `Vec`, so no reference into it outlives the call. Code that runs Python
/// between two calls (which may call back into pybridge on this thread) can
/// therefore never alias it. `UnsafeCell` makes it `!Sync`.
#[derive(Debug)]
pub(crate) struct CellStack<T: Copy>(UnsafeCell<Vec<T>>);

impl<T: Copy> CellStack<T> {
    pub(crate) const fn new() -> Self {
        CellStack(UnsafeCell::new(Vec::new()))
    }

    // SAFETY (every method): the `Vec` is borrowed only for the method's own
    // body, which calls nothing that could reach this stack again, and the type
    // is `!Sync`, so no other thread can.
    #[inline(always)]
    pub(crate) fn push(&self, value: T) {
        unsafe { (*self.0.get()).push(value) }
    }

    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<T> {
        unsafe { (*self.0.get()).pop() }
    }

    #[inline(always)]
    pub(crate) fn last(&self) -> Option<T> {
        unsafe { (*self.0.get()).last().copied() }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        unsafe { (*self.0.get()).len() }
    }

    pub(crate) fn clear(&self) {
        unsafe { (*self.0.get()).clear() }
    }

    /// The value at `index`, if any (copied out: no borrow outlives the call).
    #[inline(always)]
    fn get(&self, index: usize) -> Option<T> {
        unsafe { (&(*self.0.get())).get(index).copied() }
    }

    /// Drops the last value, if any (no copy out).
    #[inline(always)]
    pub(crate) fn discard_last(&self) {
        unsafe {
            (*self.0.get()).pop();
        }
    }

    /// Takes out the value at `index` (which must exist); those above move down.
    #[inline(always)]
    pub(crate) fn remove(&self, index: usize) -> T {
        unsafe {
            let values = &mut *self.0.get();
            // The usual case, the last value, without `Vec::remove`'s `memmove` call.
            if index + 1 == values.len() {
                values.pop().expect("index + 1 == len")
            } else {
                values.remove(index)
            }
        }
    }

    /// The last value, top first, that `matches`, with its index. `matches`
    /// runs on a copy with the stack not borrowed (as for `find`).
    #[inline(always)]
    pub(crate) fn rfind(&self, matches: impl Fn(&T) -> bool) -> Option<(usize, T)> {
        (0..self.len())
            .rev()
            .map_while(|index| Some((index, self.get(index)?)))
            .find(|(_, value)| matches(value))
    }

    /// How many values `matches` (run on copies, as for `find`).
    pub(crate) fn count(&self, matches: impl Fn(&T) -> bool) -> usize {
        (0..)
            .map_while(|index| self.get(index))
            .filter(|value| matches(value))
            .count()
    }

    /// The first value, bottom first, that `matches`. `matches` runs on a copy
    /// with the stack not borrowed, so it may call anything, this stack's
    /// methods included.
    pub(crate) fn find(&self, matches: impl Fn(&T) -> bool) -> Option<T> {
        (0..)
            .map_while(|index| self.get(index))
            .find(|value| matches(value))
    }

    /// Keeps only the values `keep` says to. `keep` runs on copies with the
    /// stack not borrowed (as for `find`); it must not change this stack.
    pub(crate) fn retain(&self, keep: impl Fn(&T) -> bool) {
        let before = self.len();
        let kept: Vec<T> = self
            .to_vec()
            .into_iter()
            .filter(|value| keep(value))
            .collect();
        debug_assert_eq!(self.len(), before, "`keep` changed the stack it filters");
        // SAFETY: as for every method; nothing runs while the `Vec` is replaced.
        unsafe { *self.0.get() = kept }
    }

    /// A copy, bottom first (error paths).
    pub(crate) fn to_vec(&self) -> Vec<T> {
        unsafe { (*self.0.get()).clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_stack_copies_values_in_and_out() {
        let stack = CellStack::new();
        assert_eq!((stack.len(), stack.last(), stack.pop()), (0, None, None));
        for value in [3_u64, 5, 8] {
            stack.push(value);
        }
        assert_eq!(stack.to_vec(), vec![3, 5, 8]);
        assert_eq!(
            (stack.last(), stack.pop(), stack.len()),
            (Some(8), Some(8), 2)
        );
        assert_eq!(stack.rfind(|&value| value < 5), Some((0, 3)));
        assert_eq!(stack.remove(0), 3);
        assert_eq!(stack.count(|&value| value == 5), 1);
        stack.clear();
        assert_eq!(stack.len(), 0);
    }
}
