//! Text handed to a host's buffer: the copy routine behind every truncating
//! `(buf, buf_len)` output (last error, Python info), in the core and in the
//! packaged loader alike.

use std::ffi::c_char;

/// Copies `bytes` into a C buffer as a NUL-terminated string, truncating to fit,
/// and returns the full length. Never panics: it is used outside `ffi_boundary`.
///
/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes.
pub unsafe fn copy_to_c_buffer(bytes: &[u8], buf: *mut c_char, buf_len: usize) -> usize {
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
