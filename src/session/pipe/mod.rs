//! Pipe mode: stdin's bytes to the peer, the peer's bytes to stdout, raw, as DATA messages of up
//! to 65518 bytes, then END. A side that has the peer's END and has written everything out
//! confirms it with RECEIVED (how many bytes); once it has sent its END and its RECEIVED, and
//! the peer has confirmed all it sent, it says QUIT (PROTOCOL.md §4.3). So exit 0 means what
//! we sent was written out at the other end, not just that it left.
//!
//! ```text
//!  DATA… END ───────────────▶   (writes it out)
//!            ◀─────────────── RECEIVED(n)      also the other way round, at the same time
//!  QUIT ◀──────────────────▶ QUIT             each side once both receipts are done
//! ```
//!
//! Two engines move the bytes, with the same rules (keepalive, the ending, errors):
//! - `threads`, over TCP when stdin is not a terminal: once the session is open the socket
//!   leaves the async runtime, and one thread per direction does blocking read → seal → write
//!   and read → open → write. No task wake-ups or hand-offs per chunk: after the cipher, those
//!   were the largest cost.
//! - `tasks`, over anything else (a QUIC stream of iroh, a terminal's input, an in-memory
//!   pipe in tests): async tasks, with helper threads for stdin and stdout.
//!
//! Either way stdin is not read before the session is open (the peer's HELLO, and a
//! listener's WELCOME, have come): a listener turned away by one dialer (its key refused, or
//! chat against pipe) goes on to the next with its input whole.
//!
//! And the hot path copies as little as it can: stdin is read straight into a message
//! buffer after its type byte, sealed into the frame buffer, and the frame written with one
//! call; buffers are reused, never reallocated.

mod tasks;
mod threads;

use crate::error::{Error, ProtocolError, Result};
use crate::framed::Detach;
use crate::handshake::Established;
use crate::message::{Message, Mode};
use crate::signals::Interrupts;
use crate::ui::Ui;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// How pipe mode reports progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeOptions {
    /// No progress line and no summary.
    pub quiet: bool,
    /// How many bytes stdin will give (`--size`; else stdin's size when it is a regular
    /// file): the progress line then shows a percentage and the time left.
    pub size: Option<u64>,
}

/// Control messages the receiving side (or a signal) asks the sending side to send.
enum Control {
    /// Keepalive probe.
    Ping,
    /// Answer to the peer's PING.
    Pong(Vec<u8>),
    /// The pipe fails: QUIT with this reason (`aborted: …`), so the peer knows the transfer
    /// failed (PROTOCOL.md §4.3). A signal's name, when a signal stopped it.
    Abort(String, Option<&'static str>),
}

/// How long an interrupted pipe waits for its aborting QUIT to go out (a full socket may
/// never take it) before it stops anyway.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// The QUIT reason an interrupted pipe sends.
fn abort_reason(signal: &str) -> String {
    format!("aborted: {signal}")
}

/// The QUIT reason of a receiver whose output failed: the sender hears why, and how much of
/// its stream was written out.
fn output_failed(e: &io::Error, written: u64) -> String {
    format!(
        "aborted: writing the output failed ({}) after {}",
        crate::error::plain_io(e),
        size(written)
    )
}

/// How the upload side ends after sending an aborting QUIT: a signal is its own error; a
/// failure of the other direction is that direction's to report.
fn aborted(signal: Option<&'static str>) -> Result<()> {
    match signal {
        Some(signal) => Err(Error::Interrupted(signal)),
        None => Ok(()),
    }
}

/// Runs a pipe session on an established connection, with the process's stdin and stdout.
pub async fn run<R, W>(
    established: Established<R, W>,
    listener: bool,
    keepalive: Duration,
    options: PipeOptions,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()>
where
    R: AsyncRead + Unpin + Detach,
    W: AsyncWrite + Unpin + Detach,
{
    let Established { recv, mut send, .. } = established;
    let ciphers = send.ciphers();
    // Our HELLO first (a dialer gets here only once it has accepted the listener's key).
    send.send(&Message::hello(Mode::Pipe, "")).await?;
    if listener {
        send.send(&Message::Welcome("schat pipe".into())).await?;
    }
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let dialer = !listener;
    let transfer = async {
        // Not when stdin is a terminal: there, another thread may be reading the terminal
        // (for a key question), so a read the poll said was ready could block and hold up our
        // PINGs and PONGs; and typing is no bulk transfer.
        if recv.get_ref().detachable() && send.get_ref().detachable() && !io::stdin().is_terminal()
        {
            threads::transfer(recv, send, dialer, keepalive, counters.clone(), interrupts).await
        } else {
            tasks::transfer(recv, send, dialer, keepalive, &counters, interrupts).await
        }
    };
    let show_progress = !options.quiet && io::stderr().is_terminal();
    let total = options.size.or_else(stdin_size);
    let result = tokio::select! {
        r = transfer => r,
        never = progress(&counters, started, show_progress, total) => match never {},
    };
    if show_progress {
        eprint!("\r\x1b[K");
    }
    // A dialer this listener turned away (or that turned it away) never had a session: no
    // summary of nothing.
    let opened = counters.opened.load(Ordering::SeqCst);
    if result.is_err() && opened && !counters.ending.peer_ended.load(Ordering::SeqCst) {
        let received = counters.received.load(Ordering::SeqCst);
        ui.warn(format_args!(
            "your output is incomplete: {} of the peer's stream arrived, and its end never came",
            size(received)
        ));
    }
    if !options.quiet && opened {
        let secs = started.elapsed().as_secs_f64();
        let (sent, received) = counters.get();
        ui.status(format_args!(
            "sent {}, received {} in {secs:.1} s ({}/s), {}",
            size(sent),
            size(received),
            size(((sent + received) as f64 / secs.max(1e-3)) as u64),
            ciphers.describe()
        ));
    }
    result
}

/// The size of stdin when it is a regular file (what a progress line can count towards).
fn stdin_size() -> Option<u64> {
    use std::os::fd::AsFd;
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

/// What a message from the peer means to a pipe, once the opening has passed it.
enum Step<'a> {
    /// Bytes for stdout.
    Data(std::borrow::Cow<'a, [u8]>),
    /// The peer has sent all its DATA: write everything out, then confirm it with RECEIVED.
    End,
    /// The peer wrote out this many of our bytes.
    Received(u64),
    /// The peer is done: `Ok` when the ending was complete; otherwise why it was not (what
    /// arrived is still written out).
    Quit(Result<()>),
    /// Answer the peer's PING with this body.
    Pong(Vec<u8>),
    /// Nothing to do.
    Nothing,
}

/// Where the ending stands (PROTOCOL.md §4.3), shared by the two directions: it decides when
/// our QUIT may go, and whether the peer's QUIT came in time.
#[derive(Debug, Default)]
struct Ending {
    /// Our END is out: `Counters::sent` is final.
    end_sent: AtomicBool,
    /// The peer's END came: its stream is complete.
    peer_ended: AtomicBool,
    /// The peer's END came and everything before it is written out: our receipt is due.
    receipt_due: AtomicBool,
    receipt_sent: AtomicBool,
    /// The peer's RECEIVED matched what we sent.
    confirmed: AtomicBool,
}

impl Ending {
    /// Whether our QUIT may go: our END and RECEIVED sent, and all we sent confirmed.
    fn may_quit(&self) -> bool {
        self.end_sent.load(Ordering::SeqCst)
            && self.receipt_sent.load(Ordering::SeqCst)
            && self.confirmed.load(Ordering::SeqCst)
    }

    /// The peer's RECEIVED: it must come once, after our END, and count exactly what we sent.
    fn peer_received(&self, count: u64, sent: &AtomicU64) -> Result<()> {
        if !self.end_sent.load(Ordering::SeqCst) {
            return Err(ProtocolError::Unexpected("RECEIVED", "before our END").into());
        }
        if self.confirmed.swap(true, Ordering::SeqCst) {
            return Err(ProtocolError::Unexpected("RECEIVED", "twice").into());
        }
        let sent = sent.load(Ordering::SeqCst);
        if count != sent {
            return Err(Error::PeerAborted(format!(
                "it confirmed {count} bytes written out, but {sent} were sent"
            )));
        }
        Ok(())
    }

    /// The peer's QUIT with an empty reason: a goodbye only when the ending was complete.
    fn peer_quit(&self, peer_ended: bool) -> Result<()> {
        if !peer_ended {
            return Err(Error::PeerAborted(
                "it left before the end of its stream (no END): what arrived may be incomplete"
                    .into(),
            ));
        }
        if !self.confirmed.load(Ordering::SeqCst) {
            return Err(Error::PeerAborted(
                "it left without confirming that what we sent was written out".into(),
            ));
        }
        Ok(())
    }
}

fn step(msg: Message<'_>) -> Result<Step<'_>> {
    Ok(match msg {
        Message::Data(bytes) => Step::Data(bytes),
        Message::End => Step::End,
        Message::Received(count) => Step::Received(count),
        Message::Quit(reason) => Step::Quit(match super::QuitReason::of(&reason).error() {
            None => Ok(()),
            Some(e) => Err(e),
        }),
        Message::Ping(body) => Step::Pong(body.into_owned()),
        // (A pipe's receipt is RECEIVED, and pipes do not resume: offers of chat receipts and
        // of resuming are ignored like any extension.)
        Message::Pong(_)
        | Message::Rekey
        | Message::Extension { .. }
        | Message::Receipts
        | Message::Resumable => Step::Nothing,
        Message::Ack(_) | Message::Resume { .. } | Message::Resumed(_) => {
            return Err(ProtocolError::Unexpected(msg.name(), "in a pipe").into());
        }
        Message::Text(_)
        | Message::Relay { .. }
        | Message::Notice(_)
        | Message::Private(_)
        | Message::Nick(_)
        | Message::Invite(_)
        | Message::Pake { .. }
        | Message::Confirm(_)
        | Message::Who => {
            return Err(
                ProtocolError::Unexpected(msg.name(), "in a pipe (is it in chat mode?)").into(),
            );
        }
        // The listener's greeting means nothing to a pipe; the opening saw it came once.
        Message::Welcome(_) => Step::Nothing,
        // Its name means nothing to a pipe; the opening saw that it came once.
        Message::Hello { .. } => Step::Nothing,
    })
}

/// Bytes moved so far, shared with the progress line, and the ending.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    /// Our QUIT is out: nothing more may be sent, not even an aborting QUIT.
    quit_sent: AtomicBool,
    /// One direction failed and asked the other to send an aborting QUIT: wait a moment for it.
    abort_asked: AtomicBool,
    /// The opening is done: this was a session (a summary is due).
    opened: AtomicBool,
    ending: Ending,
}

impl Counters {
    fn get(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

/// Redraws a progress line on stderr four times a second (if enabled). With the size of what
/// we send known, it shows how far along that is and the time left. Never returns.
async fn progress(
    counters: &Counters,
    started: Instant,
    enabled: bool,
    total: Option<u64>,
) -> std::convert::Infallible {
    if !enabled {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let (sent, received) = counters.get();
        let moved = sent + received;
        let now = Instant::now();
        let rate = (moved - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (moved, now);
        let elapsed = started.elapsed().as_secs();
        let up = match total {
            Some(total) if total > 0 => {
                let done = sent.min(total);
                let percent = done as f64 * 100.0 / total as f64;
                // Time left at the average rate so far (steadier than the last quarter second).
                let average = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let left = match average > 0.0 {
                    true => clock(((total - done) as f64 / average) as u64),
                    false => "?".into(),
                };
                format!(
                    "{} of {} ({percent:.0}%, {left} left)",
                    size(sent),
                    size(total)
                )
            }
            _ => size(sent),
        };
        eprint!(
            "\r\x1b[Kschat: ↑ {up}  ↓ {}  {}/s  {}",
            size(received),
            size(rate as u64),
            clock(elapsed)
        );
        let _ = io::stderr().flush();
    }
}

/// `m:ss` (or `h:mm:ss`).
fn clock(secs: u64) -> String {
    match secs >= 3600 {
        true => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        false => format!("{}:{:02}", secs / 60, secs % 60),
    }
}

/// A byte count for people: B, KiB, MiB, GiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
