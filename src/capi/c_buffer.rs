//! Bytes handed to a host's buffer: the two copy routines behind every
//! `(buf, buf_len)` output: truncating text (last error, Python info), and
//! all-or-nothing contents (`pyb_object_to_string`, `pyb_object_to_bytes`).

use std::ffi::c_char;

use crate::abi::status::PYB_E_OUT_OF_RANGE;
use crate::runtime::error::{Error, Result};

/// Copies `bytes` into a C buffer as a NUL-terminated string, truncating to fit,
/// and returns the full length. Never panics: it is used outside `ffi_boundary`.
///
/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes.
pub(crate) unsafe fn copy_to_c_buffer(bytes: &[u8], buf: *mut c_char, buf_len: usize) -> usize {
    if !buf.is_null() && buf_len > 0 {
        let copied = bytes.len().min(buf_len - 1);
        // SAFETY: `copied + 1 <= buf_len` bytes fit in the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), copied);
            *buf.add(copied) = 0;
        }
    }
    bytes.len()
}

/// Copies `bytes` (and a NUL if `terminate`) into a host buffer that must fit
/// all of it; NULL asks for the length only. Returns the length.
///
/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes.
pub(crate) unsafe fn copy_out(
    bytes: &[u8],
    buf: *mut u8,
    buf_len: usize,
    terminate: bool,
) -> Result<usize> {
    if buf.is_null() {
        return Ok(bytes.len());
    }
    let needed = bytes.len() + terminate as usize;
    if buf_len < needed {
        return Err(Error::new(
            PYB_E_OUT_OF_RANGE,
            format!(
                "the buffer holds {buf_len} bytes but {needed} are needed; pass buf = NULL \
                 to ask for the length first"
            ),
        ));
    }
    // SAFETY: the host promises `buf_len >= needed` writable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        if terminate {
            *buf.add(bytes.len()) = 0;
        }
    }
    Ok(bytes.len())
}
