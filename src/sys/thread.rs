//! Facts about threads from the kernel and the C library (Linux), or from
//! kernel32 (Windows, at the end). The same functions on both: a thread's
//! kernel id, its Python ident, its stack, its name.

use std::ffi::c_ulong;

/// The calling thread's kernel id (`gettid`).
#[cfg(unix)]
pub(crate) fn os_tid() -> i32 {
    // SAFETY: trivial libc call.
    unsafe { libc::gettid() }
}

/// The calling thread's `pthread_t`, as CPython's thread idents are.
#[cfg(unix)]
pub(crate) fn pthread_id() -> c_ulong {
    // SAFETY: trivial libc call.
    unsafe { libc::pthread_self() as c_ulong }
}

/// Whether the thread with kernel id `native_id` still exists in this process.
#[cfg(unix)]
pub(crate) fn is_alive(native_id: i64) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{native_id}")).exists()
}

/// The calling thread's stack size, if the C library can tell.
#[cfg(unix)]
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
#[cfg(unix)]
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
#[cfg(unix)]
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
#[cfg(unix)]
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

/// The calling thread's id (`GetCurrentThreadId`). Windows ids are 32-bit
/// and multiples of 4; kept as the same `i32` Linux's `gettid` gives.
#[cfg(windows)]
pub(crate) fn os_tid() -> i32 {
    // SAFETY: no arguments.
    unsafe { windows_sys::Win32::System::Threading::GetCurrentThreadId() as i32 }
}

/// The calling thread's Python ident: on Windows CPython uses the thread id
/// (`PyThread_get_thread_ident` is `GetCurrentThreadId`).
#[cfg(windows)]
pub(crate) fn pthread_id() -> c_ulong {
    // SAFETY: no arguments.
    unsafe { windows_sys::Win32::System::Threading::GetCurrentThreadId() as c_ulong }
}

/// A handle to thread `id` of any process, allowed to query it; closed on drop.
#[cfg(windows)]
struct ThreadHandle(windows_sys::Win32::Foundation::HANDLE);

#[cfg(windows)]
impl ThreadHandle {
    fn open(id: i64) -> Option<ThreadHandle> {
        use windows_sys::Win32::System::Threading::{OpenThread, THREAD_QUERY_LIMITED_INFORMATION};
        let id = u32::try_from(id).ok()?;
        // SAFETY: plain call; a null handle means no such thread (or no access).
        let handle = unsafe { OpenThread(THREAD_QUERY_LIMITED_INFORMATION, 0, id) };
        (!handle.is_null()).then_some(ThreadHandle(handle))
    }

    /// Whether it belongs to this process (ids are unique system-wide).
    fn is_ours(&self) -> bool {
        use windows_sys::Win32::System::Threading::{GetCurrentProcessId, GetProcessIdOfThread};
        // SAFETY: a live handle with query access.
        unsafe { GetProcessIdOfThread(self.0) == GetCurrentProcessId() }
    }

    /// The thread's description (`SetThreadDescription`, .NET's `Thread.Name`).
    fn description(&self) -> Option<String> {
        use windows_sys::Win32::Foundation::LocalFree;
        use windows_sys::Win32::System::Threading::GetThreadDescription;
        let mut text = std::ptr::null_mut();
        // SAFETY: a live handle with query access; the text is ours to free.
        unsafe {
            if GetThreadDescription(self.0, &mut text) < 0 || text.is_null() {
                return None;
            }
            let length = (0..).take_while(|&index| *text.add(index) != 0).count();
            let name = String::from_utf16_lossy(std::slice::from_raw_parts(text, length));
            LocalFree(text.cast());
            Some(name)
        }
    }
}

#[cfg(windows)]
impl Drop for ThreadHandle {
    fn drop(&mut self) {
        // SAFETY: a handle this value owns, closed once.
        unsafe { windows_sys::Win32::Foundation::CloseHandle(self.0) };
    }
}

/// Whether thread `native_id` still runs in this process.
#[cfg(windows)]
pub(crate) fn is_alive(native_id: i64) -> bool {
    use windows_sys::Win32::Foundation::STILL_ACTIVE;
    use windows_sys::Win32::System::Threading::GetExitCodeThread;
    let Some(thread) = ThreadHandle::open(native_id) else {
        return false;
    };
    let mut code = 0;
    // SAFETY: a live handle with query access.
    let read = unsafe { GetExitCodeThread(thread.0, &mut code) } != 0;
    thread.is_ours() && read && code == STILL_ACTIVE as u32
}

/// The calling thread's stack size (reserved, not committed).
#[cfg(windows)]
pub(crate) fn stack_size() -> Option<usize> {
    let (mut low, mut high) = (0, 0);
    // SAFETY: writes the two limits of the calling thread's stack.
    unsafe {
        windows_sys::Win32::System::Threading::GetCurrentThreadStackLimits(&mut low, &mut high)
    };
    high.checked_sub(low).filter(|size| *size > 0)
}

/// The calling thread's description (empty when it has none).
#[cfg(windows)]
pub(crate) fn own_name() -> String {
    name_of(os_tid()).unwrap_or_default()
}

/// The current description of this process's thread `os_tid`, if it still runs.
#[cfg(windows)]
pub(crate) fn name_of(os_tid: i32) -> Option<String> {
    let thread = ThreadHandle::open(i64::from(os_tid as u32))?;
    if !thread.is_ours() {
        return None;
    }
    Some(thread.description().unwrap_or_default())
}

/// CPython 3.14+ parks a thread on Windows in an alertable `SleepEx` loop,
/// which cannot be told from outside from any other sleep: never recognised.
#[cfg(windows)]
#[cfg_attr(not(Py_3_14), allow(dead_code))]
pub(crate) fn is_paused_below(_native_id: i64, _is_caller: impl Fn(usize) -> bool) -> bool {
    false
}

/// Whether a thread's exit (pybridge's thread-local destructor) may wait for
/// a lock another thread holds, the GIL among them. Linux: yes. Windows: no:
/// a DLL's thread-local destructors run during `DLL_THREAD_DETACH`, under the
/// loader lock, and a thread that holds the GIL while it loads a DLL (an
/// extension module's init, `ctypes`) waits for that lock: waiting for the
/// GIL there is a deadlock (Microsoft's DllMain best practices).
pub(crate) const EXIT_MAY_WAIT: bool = cfg!(unix);

/// Runs `body` on a new detached thread with a stack big enough for CPython
/// (4 MiB). Callable from a thread's exit on Windows, under the loader lock:
/// `CreateThread` does not wait for it (the new thread runs once the exiting
/// one lets go), and nothing of Rust's `std::thread` (whose thread-locals may
/// be gone at that point) is used there.
#[cfg(unix)]
pub(crate) fn spawn_detached(name: &str, body: fn()) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(DETACHED_STACK)
        .spawn(body)
        .map(drop)
}

const DETACHED_STACK: usize = 4 << 20;

#[cfg(windows)]
pub(crate) fn spawn_detached(_name: &str, body: fn()) -> std::io::Result<()> {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{CreateThread, STACK_SIZE_PARAM_IS_A_RESERVATION};

    unsafe extern "system" fn start(body: *mut std::ffi::c_void) -> u32 {
        // SAFETY: the `fn()` that `spawn_detached` passed as the argument.
        let body: fn() = unsafe { std::mem::transmute(body) };
        // A panic must not unwind out of a thread's start routine.
        let _ = std::panic::catch_unwind(body);
        0
    }
    // SAFETY: a start routine and an argument that live for ever.
    let handle = unsafe {
        CreateThread(
            std::ptr::null(),
            DETACHED_STACK,
            Some(start),
            body as *mut std::ffi::c_void,
            STACK_SIZE_PARAM_IS_A_RESERVATION,
            std::ptr::null_mut(),
        )
    };
    if handle.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the handle just returned, closed once; the thread runs on.
    unsafe { CloseHandle(handle) };
    Ok(())
}
