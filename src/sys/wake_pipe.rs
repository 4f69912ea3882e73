//! A wake-up channel whose only job is to wake the event loop, which watches
//! its reading end with `add_reader`: one byte written never blocks the
//! writer, and pybridge itself empties the reading end (`drain`), so Python
//! only needs a number its selector can watch.
//!
//! Linux: a pipe, `pipe2` with `O_NONBLOCK | O_CLOEXEC`. Windows: a connected
//! pair of loopback TCP sockets (non-blocking, not inherited, Nagle off so a
//! one-byte wake-up is sent at once), because `select`, which asyncio's
//! selector loop uses there, watches sockets only; the reading end is the
//! `SOCKET` value, which `add_reader` accepts as a file number.

/// One end, a file descriptor (Linux) or a `SOCKET` (Windows); `CLOSED` when closed.
pub(crate) type PipeEnd = i64;

/// A closed end.
pub(crate) const CLOSED: PipeEnd = -1;

/// A new channel: (reader, writer).
#[cfg(unix)]
pub(crate) fn open() -> std::io::Result<(PipeEnd, PipeEnd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let status = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((PipeEnd::from(fds[0]), PipeEnd::from(fds[1])))
}

/// Writes one byte into `writer` (an open end from `open`). A full pipe has
/// a wake-up in it already, so a failure is ignored.
#[cfg(unix)]
pub(crate) fn wake(writer: PipeEnd) {
    // SAFETY: an open pipe end its owner passes; one byte from a live buffer.
    unsafe { libc::write(writer as libc::c_int, [1u8].as_ptr().cast(), 1) };
}

/// Reads everything waiting at `reader` (an open end from `open`), without
/// blocking: the wake-ups it had are consumed.
#[cfg(unix)]
pub(crate) fn drain(reader: PipeEnd) {
    let mut buffer = [0u8; 256];
    // SAFETY: an open, non-blocking pipe end its owner passes; a live buffer.
    while unsafe {
        libc::read(
            reader as libc::c_int,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    } > 0
    {}
}

/// Closes `end` if it is open, and marks it closed.
#[cfg(unix)]
pub(crate) fn close(end: &mut PipeEnd) {
    if *end >= 0 {
        // SAFETY: a descriptor its owner passes, closed once.
        unsafe { libc::close(*end as libc::c_int) };
        *end = CLOSED;
    }
}

#[cfg(windows)]
mod sockets {
    use std::io::{Read, Write};
    use std::mem::ManuallyDrop;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::windows::io::{FromRawSocket, IntoRawSocket, RawSocket};

    use super::{CLOSED, PipeEnd};

    /// A loopback pair: a listener on an ephemeral port takes exactly the
    /// connection this call made (another local process could connect first:
    /// its connection is dropped). std's sockets are created not inherited.
    pub(crate) fn open() -> std::io::Result<(PipeEnd, PipeEnd)> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let writer = TcpStream::connect(listener.local_addr()?)?;
        let ours = writer.local_addr()?;
        let reader = loop {
            let (stream, peer) = listener.accept()?;
            if peer == ours {
                break stream;
            }
        };
        writer.set_nodelay(true)?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(true)?;
        Ok((
            reader.into_raw_socket() as PipeEnd,
            writer.into_raw_socket() as PipeEnd,
        ))
    }

    /// The socket `end` names, borrowed (not closed when dropped).
    fn borrow(end: PipeEnd) -> ManuallyDrop<TcpStream> {
        // SAFETY: an open socket from `open`, which its owner keeps open while
        // it passes it; ManuallyDrop keeps it open.
        ManuallyDrop::new(unsafe { TcpStream::from_raw_socket(end as RawSocket) })
    }

    pub(crate) fn wake(writer: PipeEnd) {
        // A full buffer (WSAEWOULDBLOCK) has a wake-up in it already.
        let _ = borrow(writer).write(&[1]);
    }

    pub(crate) fn drain(reader: PipeEnd) {
        let mut buffer = [0u8; 256];
        let mut socket = borrow(reader);
        while matches!(socket.read(&mut buffer), Ok(read) if read > 0) {}
    }

    pub(crate) fn close(end: &mut PipeEnd) {
        if *end != CLOSED {
            // SAFETY: an open socket from `open`, closed once.
            drop(unsafe { TcpStream::from_raw_socket(*end as RawSocket) });
            *end = CLOSED;
        }
    }
}

#[cfg(windows)]
pub(crate) use sockets::{close, drain, open, wake};
