//! `pyb_promise`: results that host functions deliver to Python later.

use std::ffi::c_void;

/// A result Python awaits and the host delivers later (`pyb_promise_new`),
/// from any thread, with `pyb_promise_resolve` or `pyb_promise_reject`.
#[allow(non_camel_case_types)]
pub type pyb_promise = u64;

/// Tells the host that nothing awaits `promise` any more before it was
/// completed: the last Python coroutine awaiting it was cancelled (called on
/// that coroutine's event-loop thread), or the engine is ending (called on
/// the engine's thread). At most once per promise, with the GIL held; keep it
/// short and do not release the GIL in it. The host should stop the work
/// (cancel its `CancellationToken`, say) and still complete the promise,
/// which then returns `PYB_E_CANCELLED`, `PYB_E_BAD_HANDLE` or
/// `PYB_E_NOT_INITIALIZED` and ends pybridge's use of `user_data`.
#[allow(non_camel_case_types)]
pub type pyb_promise_cancel_fn =
    Option<unsafe extern "C" fn(promise: pyb_promise, user_data: *mut c_void)>;
