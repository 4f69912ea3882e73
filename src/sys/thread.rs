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

/// The calling thread's name as the operating system knows it: what the host
/// set with `pthread_setname_np` (or .NET's `Thread.Name` on CoreCLR, or
/// Rust's `thread::Builder::name`, cut to 15 bytes), else the process's name
/// the thread inherited. Rust's `thread::current().name()` knows only names
/// given through Rust, so it has none for a host's threads.
pub(crate) fn own_name() -> String {
    // Linux keeps 15 bytes and a NUL.
    let mut buffer = [0 as libc::c_char; 16];
    // SAFETY: the calling thread's own handle and a buffer of the stated
    // length; glibc asks the kernel (prctl PR_GET_NAME) for the calling thread.
    let status = unsafe {
        libc::pthread_getname_np(libc::pthread_self(), buffer.as_mut_ptr(), buffer.len())
    };
    if status != 0 {
        return String::new();
    }
    // SAFETY: pthread_getname_np wrote a NUL-terminated string on success.
    unsafe { std::ffi::CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The current name of this process's thread `os_tid` (what the host set with
/// `pthread_setname_np` or .NET's `Thread.Name`), if it still runs.
pub(crate) fn name_of(os_tid: i32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/self/task/{os_tid}/comm")).ok()?;
    Some(name.trim_end_matches('\n').to_string())
}

/// Whether thread `native_id` of this process sits in the `pause` system call
/// with a return address for which `is_caller` holds among the first words
/// of its stack: how CPython 3.14+ parks a thread for good (a loop around
/// `pause()` in `PyThread_hang_thread`). A thread that merely sleeps, or runs,
/// is not parked. The stack is read through `/proc/self/mem`, so a thread
/// that ends meanwhile makes the read fail instead of faulting.
// Used to recognise threads CPython 3.14+ parks at finalization.
#[cfg_attr(not(Py_3_14), allow(dead_code))]
pub(crate) fn is_paused_below(native_id: i64, is_caller: impl Fn(usize) -> bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    const PAUSE: i64 = libc::SYS_pause;
    // Where there is no pause system call, glibc's pause() suspends on a signal mask.
    #[cfg(not(target_arch = "x86_64"))]
    const PAUSE: i64 = libc::SYS_rt_sigsuspend;
    // `/proc/<tid>/syscall`: the number, six arguments, the stack pointer and
    // the program counter, in hex; "running" when the thread is not blocked.
    let Ok(line) = std::fs::read_to_string(format!("/proc/self/task/{native_id}/syscall")) else {
        return false;
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 9 || fields[0].parse::<i64>().ok() != Some(PAUSE) {
        return false;
    }
    let Some(stack_pointer) = fields[7]
        .strip_prefix("0x")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    else {
        return false;
    };
    // libc's wrapper frames sit between the system call and its caller: a few
    // hundred bytes of stack (measured: 4 frames on glibc 2.41).
    const SCANNED_WORDS: usize = 256;
    let mut stack = [0u8; SCANNED_WORDS * 8];
    use std::os::unix::fs::FileExt;
    let read = std::fs::File::open("/proc/self/mem")
        .and_then(|mem| mem.read_at(&mut stack, stack_pointer));
    let Ok(read) = read else {
        return false;
    };
    stack[..read - read % 8]
        .chunks_exact(8)
        .map(|word| u64::from_ne_bytes(word.try_into().expect("8 bytes")) as usize)
        .any(is_caller)
}
