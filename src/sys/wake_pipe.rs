//! A pipe whose only job is to wake a thread that waits on its reading end
//! (the event loop's `add_reader`): one byte written never blocks the writer.
//!
//! Linux: `pipe2` with `O_NONBLOCK | O_CLOEXEC`. Windows: the C runtime's
//! `_pipe` (binary, not inherited), which asyncio's selector loop cannot
//! watch there (it selects on sockets only): the event loop on Windows is
//! still to be ported (issue 23).

/// One end of the pipe, a C file descriptor; -1 when closed.
pub(crate) type PipeEnd = libc::c_int;

/// A closed end.
pub(crate) const CLOSED: PipeEnd = -1;

/// A new pipe: (reader, writer).
pub(crate) fn open() -> std::io::Result<(PipeEnd, PipeEnd)> {
    let mut fds = [CLOSED; 2];
    #[cfg(unix)]
    // SAFETY: `fds` has room for the two descriptors.
    let status = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    #[cfg(windows)]
    // SAFETY: `fds` has room for the two descriptors.
    let status = unsafe { libc::pipe(fds.as_mut_ptr(), 4096, libc::O_BINARY | libc::O_NOINHERIT) };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

/// Writes one byte into `writer` (an open end from `open`). A full pipe has
/// a wake-up in it already, so a failure is ignored.
pub(crate) fn wake(writer: PipeEnd) {
    // SAFETY: an open pipe end its owner passes; one byte from a live buffer.
    unsafe { libc::write(writer, [1u8].as_ptr().cast(), 1) };
}

/// Closes `end` if it is open, and marks it closed.
pub(crate) fn close(end: &mut PipeEnd) {
    if *end >= 0 {
        // SAFETY: a descriptor its owner passes, closed once.
        unsafe { libc::close(*end) };
        *end = CLOSED;
    }
}
