//! The opaque 64-bit values pybridge hands out: object handles and the
//! tokens of GIL scopes and allow-threads regions.

/// A handle to a Python object; 0 is "no object". The caller of a function
/// that returns one owns it: release it with `pyb_object_release`.
#[allow(non_camel_case_types)]
pub type pyb_object = u64;

/// A GIL scope token returned by `pyb_gil_acquire`; pass it to `pyb_gil_release`.
#[allow(non_camel_case_types)]
pub type pyb_gil = u64;

/// An allow-threads token returned by `pyb_begin_allow_threads`; pass it to `pyb_end_allow_threads`.
#[allow(non_camel_case_types)]
pub type pyb_thread_token = u64;
