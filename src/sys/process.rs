//! Process-wide settings: the fork() hook and signal dispositions. Windows
//! has neither fork() nor SIGPIPE: there these do nothing.

/// Runs `prepare` on the forking thread before every `fork()`, then `parent`
/// in the parent and `child` in the child (on its only thread). Err carries
/// `pthread_atfork`'s error number.
#[cfg(unix)]
pub(crate) fn on_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> Result<(), i32> {
    // SAFETY: registers plain `extern "C"` functions; no other arguments.
    match unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) } {
        0 => Ok(()),
        error => Err(error),
    }
}

/// No fork() on Windows: nothing to hook.
#[cfg(windows)]
pub(crate) fn on_fork(
    _prepare: extern "C" fn(),
    _parent: extern "C" fn(),
    _child: extern "C" fn(),
) -> Result<(), i32> {
    Ok(())
}

/// Ignores SIGPIPE for the whole process, as the `python` program does.
#[cfg(unix)]
pub(crate) fn ignore_sigpipe() {
    // SAFETY: sets a disposition; no handler of ours runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Runs `body` with SIGPIPE blocked on the calling thread, and discards a
/// SIGPIPE that `body` raised there, so a write into a pipe or socket whose
/// reader is gone fails with EPIPE instead of killing a process that keeps
/// SIGPIPE's default action. Only this thread's mask changes, and only for the
/// call; a SIGPIPE that was pending before is left pending.
#[cfg(unix)]
pub(crate) fn without_sigpipe<T>(body: impl FnOnce() -> T) -> T {
    // SAFETY (this function): signal sets are plain data initialized by
    // sigemptyset/sigaddset; pthread_sigmask and sigtimedwait act on this
    // thread only.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut previous);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let pending_before = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let result = body();
        if !pending_before {
            let immediately = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // EAGAIN when none is pending: nothing to discard.
            while libc::sigtimedwait(&pipe, std::ptr::null_mut(), &immediately) == libc::SIGPIPE {}
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        result
    }
}

/// Windows has no SIGPIPE: a write to a closed pipe fails with an error.
#[cfg(windows)]
pub(crate) fn ignore_sigpipe() {}

/// Windows has no SIGPIPE: `body` runs as it is.
#[cfg(windows)]
pub(crate) fn without_sigpipe<T>(body: impl FnOnce() -> T) -> T {
    body()
}
