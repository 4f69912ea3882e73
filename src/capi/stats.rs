//! `pyb_stats_get`: the engine's counters, for hosts.

use crate::abi::status::pyb_status;
use crate::capi::boundary::ffi_boundary;
use crate::runtime::error::Error;

pub use crate::abi::stats::*;
pub use crate::runtime::stats::snapshot;

/// Fills `out` (whose `struct_size` the caller sets) with the counters. Any thread.
///
/// A host built against an older, shorter `pyb_stats` gets the fields it
/// knows: only the first `struct_size` bytes are written. A `struct_size` too
/// small to hold itself is `PYB_E_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pyb_stats_get(out: *mut pyb_stats) -> pyb_status {
    ffi_boundary("pyb_stats_get", || {
        // A raw pointer, not `out_ptr`'s reference: the host's struct may be
        // shorter than ours.
        if out.is_null() {
            return Err(Error::null_argument("out"));
        }
        // SAFETY: the caller's struct starts with `struct_size`, whatever its version.
        let size = unsafe { (*out).struct_size };
        let own_size = std::mem::size_of::<pyb_stats>();
        if size < std::mem::size_of::<usize>() {
            return Err(Error::invalid_argument(format!(
                "pyb_stats.struct_size is {size}; set it to sizeof(pyb_stats) = {own_size}"
            )));
        }
        let snapshot = pyb_stats {
            struct_size: size,
            ..snapshot()
        };
        // SAFETY: the caller promises `struct_size` writable bytes at `out`;
        // no more than our own struct's are copied.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&snapshot as *const pyb_stats).cast::<u8>(),
                out.cast::<u8>(),
                size.min(own_size),
            )
        };
        Ok(())
    })
}
