//! Memory straight from the kernel, so that it can be given back.

use std::ptr::NonNull;

/// `bytes` of zeroed, private, read-write memory.
pub(crate) fn map_zeroed(bytes: usize) -> std::io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping; no memory of ours is touched.
    let memory = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if memory == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NonNull::new(memory.cast()).expect("mmap returned NULL without failing"))
}

/// Gives back a mapping from `map_zeroed`.
///
/// # Safety
/// `memory` and `bytes` are those of one `map_zeroed` mapping, which nothing
/// uses any more.
pub(crate) unsafe fn unmap(memory: NonNull<u8>, bytes: usize) {
    // SAFETY: as the contract says.
    unsafe { libc::munmap(memory.as_ptr().cast(), bytes) };
}
