//! Memory straight from the kernel, so that it can be given back
//! (`mmap`/`munmap`; `VirtualAlloc`/`VirtualFree` on Windows).

use std::ptr::NonNull;

/// `bytes` of zeroed, private, read-write memory.
#[cfg(unix)]
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

/// `bytes` of zeroed, private, read-write memory (committed pages are zeroed).
#[cfg(windows)]
pub(crate) fn map_zeroed(bytes: usize) -> std::io::Result<NonNull<u8>> {
    use windows_sys::Win32::System::Memory::{
        MEM_COMMIT, MEM_RESERVE, PAGE_READWRITE, VirtualAlloc,
    };
    // SAFETY: a fresh reservation anywhere; no memory of ours is touched.
    let memory = unsafe {
        VirtualAlloc(
            std::ptr::null(),
            bytes,
            MEM_COMMIT | MEM_RESERVE,
            PAGE_READWRITE,
        )
    };
    NonNull::new(memory.cast()).ok_or_else(std::io::Error::last_os_error)
}

/// Gives back a mapping from `map_zeroed`.
///
/// # Safety
/// `memory` and `bytes` are those of one `map_zeroed` mapping, which nothing
/// uses any more.
pub(crate) unsafe fn unmap(memory: NonNull<u8>, bytes: usize) {
    #[cfg(unix)]
    // SAFETY: as the contract says.
    unsafe {
        libc::munmap(memory.as_ptr().cast(), bytes)
    };
    #[cfg(windows)]
    {
        // A release names the whole reservation, with size 0.
        let _ = bytes;
        // SAFETY: as the contract says.
        unsafe {
            windows_sys::Win32::System::Memory::VirtualFree(
                memory.as_ptr().cast(),
                0,
                windows_sys::Win32::System::Memory::MEM_RELEASE,
            )
        };
    }
}
