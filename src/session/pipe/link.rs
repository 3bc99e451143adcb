//! What a pipe carries from one connection to the next (PROTOCOL.md §4.12): whether it offers
//! to resume, what it sent that the peer has not taken ([`Window`]), the peer's count of it,
//! and where a resumed connection starts sending again. Both engines share it; only the
//! sending side touches the window, the receiving side only the counts.

use super::Counters;
use crate::error::{Error, ProtocolError, Result};
use crate::message::{MAX_PLAINTEXT, Message, Mode, kind};
use crate::resume::Window;
use crate::resume::window::BadCount;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A receiver acknowledges what it took after every this many bytes since its last ACK.
pub(super) const ACK_STEP: u64 = 1 << 20;

#[derive(Debug)]
pub(super) struct Link {
    /// We send RESUMABLE (before our HELLO) on every connection.
    pub offer: bool,
    /// Both sides offered on this connection: the window keeps, ACKs flow, a cut resumes.
    pub both: AtomicBool,
    /// The peer's HELLO came on this connection, so `both` is known. (A connection cut
    /// before it may have opened on the peer's side: it is resumed if we offered.)
    pub decided: AtomicBool,
    /// The peer's latest count of our bytes it took (ACK, RESUME, RESUMED).
    pub acked: AtomicU64,
    /// On a resumed connection, the peer's count: where sending starts again.
    pub resend_from: Mutex<Option<u64>>,
    /// What we sent and the peer has not taken. (Only the sending side locks it.)
    pub window: Mutex<Window>,
    /// Our count of the peer's bytes that an ACK should carry, and the last one sent: the
    /// receiving side raises the first, the sending side sends it when it is ahead. (Not
    /// through a queue that could be full: a dropped ACK could leave the peer's window full
    /// for good, with nothing arriving to make us ACK again.)
    pub ack_wanted: AtomicU64,
    pub ack_sent: AtomicU64,
    /// Our input ended: every new connection sends END again once it has resent the rest.
    pub input_ended: AtomicBool,
    /// Our input, when it is a regular file: what must go again is read from it again, and
    /// the window only counts.
    source: Option<std::sync::Arc<Source>>,
}

/// A regular file as stdin, and where in it our stream began.
#[derive(Debug)]
pub(super) struct Source {
    file: std::fs::File,
    base: u64,
    /// Which file it was and when it was last changed, when the pipe began: a file changed
    /// since cannot give back the bytes that were sent.
    stamp: (u64, u64, i64, i64),
}

/// What identifies a file's contents cheaply: device, inode, modification time.
fn stamp(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec())
}

impl Source {
    /// Reads our stream's bytes from `at` (before `end`) again from the input file, as a
    /// DATA message in `message` (at most one message's worth); returns its length, 1 (the
    /// type byte alone) when nothing is left. Fails when the file changed since the pipe
    /// began. (Blocking file I/O: the async engine calls it off the runtime.)
    pub fn read_again(&self, at: u64, end: u64, message: &mut Vec<u8>) -> Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (end - at).min((MAX_PLAINTEXT - 1) as u64) as usize;
        message.resize(1 + want, 0);
        message[0] = kind::DATA;
        let changed = |e| {
            Error::io(
                "reading stdin again to send what the peer missed (the file changed since \
                 the pipe began, or is shorter than what was sent)",
                e,
            )
        };
        self.unchanged().map_err(changed)?;
        self.file
            .read_exact_at(&mut message[1..], self.base + at)
            .map_err(changed)?;
        Ok(1 + want)
    }

    /// Whether the file is still as it was when the pipe began (checked on every resume,
    /// also when nothing needs reading again: the rule is the same either way).
    pub fn unchanged(&self) -> std::io::Result<()> {
        match stamp(&self.file.metadata()?) == self.stamp {
            true => Ok(()),
            false => Err(std::io::Error::other("it was modified")),
        }
    }

    /// Stdin, if it is a regular file (a descriptor of our own: reading it again at an
    /// offset does not move stdin's position).
    fn stdin() -> Option<Source> {
        use std::io::Seek;
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
        let mut file = std::fs::File::from(fd);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let base = file.stream_position().ok()?;
        Some(Source {
            file,
            base,
            stamp: stamp(&meta),
        })
    }
}

impl Link {
    pub fn new(offer: bool) -> Self {
        let source = offer.then(Source::stdin).flatten().map(std::sync::Arc::new);
        Link {
            offer,
            both: AtomicBool::new(false),
            decided: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            ack_wanted: AtomicU64::new(0),
            ack_sent: AtomicU64::new(0),
            resend_from: Mutex::new(None),
            window: Mutex::new(match (offer, &source) {
                (false, _) => Window::off(),
                (true, Some(_)) => Window::counting(),
                (true, None) => Window::new(crate::resume::PIPE_WINDOW),
            }),
            input_ended: AtomicBool::new(false),
            source,
        }
    }

    /// The window (never poisoned in a way that matters: it holds plain data).
    pub fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where what must go again is read from, when the window only counts.
    pub fn source(&self) -> Result<std::sync::Arc<Source>> {
        self.source
            .clone()
            .ok_or_else(|| Error::Internal("nothing to read a pipe's bytes again from".into()))
    }

    /// The ACK the sending side owes, if one is (and notes it sent).
    pub fn ack_owed(&self) -> Option<u64> {
        let wanted = self.ack_wanted.load(Ordering::SeqCst);
        (wanted > self.ack_sent.load(Ordering::SeqCst)).then(|| {
            self.ack_sent.store(wanted, Ordering::SeqCst);
            wanted
        })
    }

    /// A new connection: nobody has offered on it yet.
    pub fn reconnected(&self, resend_from: Option<u64>) {
        self.both.store(false, Ordering::SeqCst);
        self.decided.store(false, Ordering::SeqCst);
        // (RESUME or RESUMED carries our count on the new connection.)
        let wanted = self.ack_wanted.load(Ordering::SeqCst);
        self.ack_sent.store(wanted, Ordering::SeqCst);
        *self.resend_from.lock().unwrap_or_else(|e| e.into_inner()) = resend_from;
    }

    /// Whether a cut of this connection is resumed: both offered, or we offered and the
    /// peer's HELLO had not come yet (its offer, before it, unknown; a peer that did not keep
    /// the session answers our RESUME `gone:`, and a listener that never opened has nothing
    /// to lose by waiting).
    pub fn resumes_after_cut(&self) -> bool {
        self.offer && (self.both.load(Ordering::SeqCst) || !self.decided.load(Ordering::SeqCst))
    }

    /// The peer's ACK of `count` of our bytes. `sent`: our bytes handed to the connection so
    /// far (counted before they are written, so no honest count exceeds it).
    pub fn peer_acked(&self, count: u64, sent: u64) -> Result<()> {
        if !self.both.load(Ordering::SeqCst) {
            return Err(ProtocolError::Unexpected(
                "ACK",
                "in a pipe that does not resume (RESUMABLE was not sent by both)",
            )
            .into());
        }
        check(count, self.acked.load(Ordering::SeqCst), sent, "ACK")?;
        self.acked.store(count, Ordering::SeqCst);
        Ok(())
    }
}

/// A count from the peer: never more than we sent, never less than an earlier one.
pub(super) fn check(count: u64, earlier: u64, sent: u64, what: &'static str) -> Result<()> {
    let why = match count {
        c if c > sent => BadCount::MoreThanSent,
        c if c < earlier => BadCount::WentBack,
        _ => return Ok(()),
    };
    Err(bad_count(what, why))
}

/// The protocol error of a false count in `what`.
pub(super) fn bad_count(what: &'static str, why: BadCount) -> crate::error::Error {
    ProtocolError::Unexpected(
        what,
        match why {
            BadCount::MoreThanSent => "counting more bytes than were sent",
            BadCount::WentBack => "counting fewer bytes than an earlier count",
        },
    )
    .into()
}

/// What the receiving side learns from the opening about resuming, before it tells the
/// sending side that the connection is open: the peer's offer (known at its HELLO, which
/// comes after it), and on a dialer's resumed connection the listener's count (RESUMED).
#[derive(Debug, Default)]
pub(super) struct Offers {
    peer_offered: bool,
}

impl Offers {
    /// Looks at a message the opening handed back. (The opening allows one RESUMABLE, before
    /// the HELLO.)
    pub fn note(&mut self, msg: &Message<'_>, link: &Link) {
        match msg {
            Message::Resumable => self.peer_offered = true,
            Message::Hello { .. } => {
                link.both
                    .store(link.offer && self.peer_offered, Ordering::SeqCst);
                link.decided.store(true, Ordering::SeqCst);
            }
            Message::Resumed(count) => {
                *link.resend_from.lock().unwrap_or_else(|e| e.into_inner()) = Some(*count)
            }
            _ => {}
        }
    }
}

/// The receiving side's view of a connection's opening: it notes the peer's offer to resume
/// (and a RESUMED's count) before the sending side hears that the connection is open.
pub(super) struct Opened {
    opening: crate::session::opening::Opening,
    offers: Offers,
    open: bool,
    /// A dialer's resumed connection: RESUMED must come by then (PROTOCOL.md §4.11).
    deadline: Option<(std::time::Instant, Duration)>,
}

impl Opened {
    /// Whether the connection is open (the sending side may start).
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn new(dialer: bool, resumed: bool, within: Duration) -> Self {
        use crate::session::opening::Opening;
        Opened {
            opening: match (dialer, resumed) {
                (true, true) => Opening::resumed(),
                _ => Opening::new(dialer),
            },
            offers: Offers::default(),
            open: false,
            deadline: (dialer && resumed).then(|| (std::time::Instant::now() + within, within)),
        }
    }

    /// When the opening must be done by, if it must.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.deadline.filter(|_| !self.open).map(|(at, _)| at)
    }

    /// The error of an opening that took too long (a listener that does not answer RESUMED:
    /// the dialer dials again).
    pub fn overdue(&self) -> Result<()> {
        match self.deadline {
            Some((at, within)) if !self.open && std::time::Instant::now() >= at => Err(
                Error::Timeout("RESUMED from the listener", within.as_secs()),
            ),
            _ => Ok(()),
        }
    }

    /// Takes `msg` through the opening. `Ok((msg, true))` once, when the connection has just
    /// opened: the sending side may start.
    pub fn accept<'a>(
        &mut self,
        msg: Message<'a>,
        link: &Link,
    ) -> Result<(Option<Message<'a>>, bool)> {
        let msg = self.opening.accept(msg, Mode::Pipe)?;
        if let Some(msg) = &msg {
            self.offers.note(msg, link);
        }
        let opened = self.opening.is_open() && !self.open;
        if opened {
            self.open = true;
        }
        Ok((msg, opened))
    }
}

/// Where the receiving side stands with our ACKs (PROTOCOL.md §4.12).
#[derive(Debug, Default)]
pub(super) struct Acks {
    last: u64,
}

impl Acks {
    /// After taking DATA: whether an ACK is now due; if so it is owed (see
    /// [`Link::ack_owed`]) and the sending side should be woken.
    pub fn due(&mut self, counters: &Counters) -> bool {
        if !counters.link.both.load(Ordering::SeqCst) {
            return false;
        }
        let taken = counters.received.load(Ordering::SeqCst);
        if taken < self.last + ACK_STEP {
            return false;
        }
        self.last = taken;
        counters.link.ack_wanted.fetch_max(taken, Ordering::SeqCst);
        true
    }
}
