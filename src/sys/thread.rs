//! Facts about threads from the kernel and the C library.

/// The calling thread's kernel id (`gettid`).
pub(crate) fn os_tid() -> i32 {
    // SAFETY: trivial libc call.
    unsafe { libc::gettid() }
}

/// The calling thread's `pthread_t`, as CPython's thread idents are.
pub(crate) fn pthread_id() -> libc::c_ulong {
    // SAFETY: trivial libc call.
    unsafe { libc::pthread_self() as libc::c_ulong }
}

/// Whether the thread with kernel id `native_id` still exists in this process.
pub(crate) fn is_alive(native_id: i64) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{native_id}")).exists()
}

/// The calling thread's stack size, if the C library can tell.
pub(crate) fn stack_size() -> Option<usize> {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which we
    // read and then destroy; plain libc calls.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut address = std::ptr::null_mut();
        let mut size = 0;
        let status = libc::pthread_attr_getstack(&attr, &mut address, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (status == 0).then_some(size)
    }
}

/// The current name of this process's thread `os_tid` (what the host set with
/// `pthread_setname_np` or .NET's `Thread.Name`), if it still runs.
pub(crate) fn name_of(os_tid: i32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/self/task/{os_tid}/comm")).ok()?;
    Some(name.trim_end_matches('\n').to_string())
}
