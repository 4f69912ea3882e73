//! Process-wide settings: the fork() hook and signal dispositions.

/// Runs `prepare` on the forking thread before every `fork()`, then `parent`
/// in the parent and `child` in the child (on its only thread). Err carries
/// `pthread_atfork`'s error number.
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

/// Ignores SIGPIPE for the whole process, as the `python` program does.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: sets a disposition; no handler of ours runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Runs `body` with SIGPIPE blocked on the calling thread, and discards a
/// SIGPIPE that `body` raised there, so a write into a pipe or socket whose
/// reader is gone fails with EPIPE instead of killing a process that keeps
/// SIGPIPE's default action. Only this thread's mask changes, and only for the
/// call; a SIGPIPE that was pending before is left pending.
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
