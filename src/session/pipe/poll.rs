//! The upload thread's one wait: until stdin is readable, the download thread wakes it
//! (a byte on a pipe), or a keepalive passes, with `poll(2)` on the two descriptors.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{self, PipeReader};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What the upload thread's wait saw.
#[derive(Debug, Default)]
pub(super) struct Ready {
    /// Stdin has something (or its end, or an error) for a read.
    pub input: bool,
    /// The download thread asked for something, or the pipe is stopping.
    pub woken: bool,
    /// A keepalive passed with neither.
    pub timed_out: bool,
}

/// Waits until stdin is readable or the wake-up pipe has a byte, at most `timeout`.
/// (`None`: stdin is not to be read yet.)
pub(super) fn wait(stdin: Option<&File>, wake: &PipeReader, timeout: Duration) -> Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            // poll ignores a negative descriptor.
            fd: stdin.map_or(-1, |f| f.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: `fds` is a valid array of two pollfd for the length given, and outlives the
        // call; poll only writes their `revents`.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if n >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io("waiting for stdin", e));
        }
    }
    let [wake, input] = fds;
    if input.revents & libc::POLLNVAL != 0 {
        return Err(Error::io(
            "reading stdin",
            io::Error::from_raw_os_error(libc::EBADF),
        ));
    }
    let ready = Ready {
        input: input.revents != 0,
        woken: wake.revents != 0,
        timed_out: false,
    };
    Ok(Ready {
        timed_out: !ready.input && !ready.woken,
        ..ready
    })
}
