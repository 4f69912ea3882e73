//! `Owned`: the crate's one type for a strong reference to a Python object.
//!
//! It is released on drop, is never NULL, and cannot outlive the GIL token it
//! was made with (the `'py` lifetime, in the style of pyo3's `Bound<'py, T>`),
//! nor leave its thread (`NonNull` is `!Send`). pyo3's own owning types are
//! not used (clippy.toml fences them off): they defer decrefs into process-wide
//! pools that outlive an interpreter (docs/CPYTHON-NOTES.md).
//!
//! `Owned::new`, which turns a NULL result into the pending exception's error,
//! is in `exception.rs` (this module stays below error formatting).
//!
//! `#[repr(transparent)]` over `NonNull`, so `Option<Owned>` has the layout of
//! a `*mut PyObject` (NULL for `None`): a slice of them is a vectorcall
//! argument array as it is (`call.rs`).

use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3::{Python, ffi};

#[repr(transparent)]
pub(crate) struct Owned<'py> {
    object: NonNull<ffi::PyObject>,
    _gil: PhantomData<Python<'py>>,
}

impl<'py> Owned<'py> {
    /// Takes a reference the caller owns, or `None` for NULL (no error check).
    ///
    /// # Safety
    /// `object` is NULL or a strong reference the caller gives up.
    #[inline]
    pub(crate) unsafe fn from_raw(
        _py: Python<'py>,
        object: *mut ffi::PyObject,
    ) -> Option<Owned<'py>> {
        NonNull::new(object).map(|object| Owned {
            object,
            _gil: PhantomData,
        })
    }

    /// A new reference to a borrowed object.
    ///
    /// # Safety
    /// `object` is a live, non-NULL object.
    #[inline]
    pub(crate) unsafe fn from_borrowed(py: Python<'py>, object: *mut ffi::PyObject) -> Owned<'py> {
        // SAFETY: GIL held (the token); the object is live.
        unsafe {
            ffi::Py_IncRef(object);
            Owned::from_raw(py, object).expect("a borrowed object is not NULL")
        }
    }

    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut ffi::PyObject {
        self.object.as_ptr()
    }

    /// Gives the reference up to the caller (a handle, a C API call that steals).
    #[inline]
    pub(crate) fn into_raw(self) -> *mut ffi::PyObject {
        let object = self.object.as_ptr();
        std::mem::forget(self);
        object
    }
}

impl Drop for Owned<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the `'py` token says the GIL is held; the reference is ours.
        // May run `__del__`.
        unsafe { ffi::Py_DecRef(self.object.as_ptr()) };
    }
}

/// `Owned::as_ptr`, or NULL.
#[inline]
pub(crate) fn ptr_or_null(object: &Option<Owned<'_>>) -> *mut ffi::PyObject {
    object.as_ref().map_or(std::ptr::null_mut(), Owned::as_ptr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_reference_is_one_pointer_wide_with_null_for_none() {
        assert_eq!(
            std::mem::size_of::<Option<Owned<'static>>>(),
            std::mem::size_of::<*mut ffi::PyObject>()
        );
        let none: Option<Owned<'static>> = None;
        // SAFETY: reading the bits of a pointer-sized Option.
        let bits: *mut ffi::PyObject = unsafe { std::mem::transmute(none) };
        assert!(bits.is_null());
        assert!(ptr_or_null(&None).is_null());
    }
}
