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
//!
//! A pipe survives a cut connection (PROTOCOL.md §4.12): what the peer has not taken is kept
//! (or, from a regular file, read again), and the session goes on over a new connection.
//!
//! - `connection`: one connection (the opening we send, the engine, a listener watching for
//!   the dialer's return); `link`: what carries over between connections, and the receiving
//!   side's offers and ACKs; `comeback`: dialling again, or waiting for the dialer;
//!   `threads` and `tasks`: the two engines (`poll`: the threaded one's wait, `stdio`: the
//!   async one's helper threads);
//!   `progress`: the progress line.

mod comeback;
mod connection;
mod link;
mod poll;
mod progress;
mod stdio;
mod tasks;
mod threads;

pub use comeback::Comeback;

use crate::error::{Error, ProtocolError, Result};
use crate::framed::Detach;
use crate::handshake::Established;
use crate::message::Message;
use crate::signals::Interrupts;
use crate::ui::Ui;
use comeback::Back;
use connection::Connection;
use link::{Acks, Link, Opened};
use progress::{progress, size};
use std::io::{self, IsTerminal};
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

/// The error of a connection whose dialer named a session this listener does not hold: it
/// was told `gone:` (the aborting QUIT), and the listener goes on to the next dialer.
fn not_held() -> Error {
    Error::PeerRefused(
        "it asked to resume a pipe this listener does not hold (told `gone:`)".into(),
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

/// What a pipe needs to survive a cut connection (PROTOCOL.md §4.12).
pub struct Resuming<'a, R, W> {
    /// How to find the peer again.
    pub comeback: Comeback<'a, R, W>,
    /// For how long after a cut (`None`: a cut ends the pipe).
    pub grace: Option<Duration>,
    /// How long a dialer's resumed connection waits for RESUMED before dialling again.
    pub resumed_within: Duration,
}

/// A pipe's first connection.
pub struct Start<R, W> {
    pub established: Established<R, W>,
    pub listener: bool,
    /// The peer's first message, when a listener's admission read it.
    pub first: Option<Message<'static>>,
}

/// Runs a pipe session on an established connection, with the process's stdin and stdout,
/// across as many connections as it takes when it can resume.
pub async fn run<R, W>(
    start: Start<R, W>,
    keepalive: Duration,
    options: PipeOptions,
    resuming: Resuming<'_, R, W>,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()>
where
    R: AsyncRead + Unpin + Detach + Send + 'static,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    let Start {
        established,
        listener,
        first,
    } = start;
    let Resuming {
        mut comeback,
        grace,
        resumed_within,
    } = resuming;
    let grace = grace.filter(|_| comeback.possible());
    let (token, key) = (established.resume_token.clone(), established.peer);
    let counters = Arc::new(Counters::new(Link::new(grace.is_some())));
    let started = Instant::now();
    let mut carried = tasks::Carried::default();
    let mut ciphers = established.send.ciphers();
    let transfers = async {
        let mut next = Some(Back {
            established,
            peer_count: None,
            first,
        });
        let mut resumed = false;
        loop {
            let Some(back) = next.take() else {
                return Err(Error::Internal("a pipe without a connection".into()));
            };
            ciphers = back.established.send.ciphers();
            let connection = Connection {
                counters: &counters,
                token: &token,
                resumed_within,
                listener,
                resumed,
                keepalive,
            };
            let (result, taken_back) = match &mut comeback {
                Comeback::Await(arrivals) => {
                    connection
                        .run_watching(back, &mut carried, interrupts, arrivals, &token)
                        .await
                }
                _ => (
                    connection.run(back, &mut carried, interrupts, None).await,
                    None,
                ),
            };
            let e = match result {
                Ok(()) => return Ok(()),
                // Turned away on a resumed connection (`gone:`): the pipe is over, but what was
                // taken before the cut was taken (exit 1, not 4: nothing says to send it all
                // again).
                Err(
                    e @ (Error::RefusedByPeer(_) | Error::ModeMismatch(_) | Error::PeerRefused(_)),
                ) if resumed => {
                    let why = e.to_string();
                    return Err(Error::Undelivered(format!(
                        "the pipe cannot be resumed ({why}); the peer had taken {} of the {} sent",
                        size(counters.link.acked.load(Ordering::SeqCst)),
                        size(counters.sent.load(Ordering::SeqCst))
                    )));
                }
                Err(e) => e,
            };
            let Some(grace) = grace.filter(|_| counters.may_resume(&e)) else {
                return Err(e);
            };
            resumed = true;
            if let Some(back) = taken_back {
                ui.status("the peer came back on a new connection; resuming the transfer");
                next = Some(back);
                continue;
            }
            let back = match &mut comeback {
                Comeback::Dial(redial) => {
                    ui.warn(format_args!("connection lost ({e}); reconnecting…"));
                    comeback::dial_again(&mut **redial, &key, grace, ui, interrupts).await
                }
                Comeback::Await(arrivals) => {
                    ui.warn(format_args!(
                        "connection lost ({e}); waiting up to {} s for the peer to come back",
                        grace.as_secs()
                    ));
                    let until = tokio::time::Instant::now() + grace;
                    comeback::await_return(arrivals, &token, &key, until, interrupts).await
                }
                Comeback::Never => return Err(e),
            };
            match back {
                // The cut stays the error (and decides the exit status); why it stayed cut is
                // said on its own line.
                Err(why @ Error::Network(_)) => {
                    ui.warn(format_args!("not resumed: {why}"));
                    return Err(e);
                }
                Ok(back) => {
                    ui.status(format_args!(
                        "reconnected; resuming the transfer ({} sent, {} received so far)",
                        size(counters.sent.load(Ordering::SeqCst)),
                        size(counters.received.load(Ordering::SeqCst))
                    ));
                    next = Some(back);
                }
                Err(e) => return Err(e),
            }
        }
    };
    let show_progress = !options.quiet && io::stderr().is_terminal();
    let total = options.size.or_else(stdin_size);
    let result = tokio::select! {
        r = transfers => r,
        never = progress(&counters, started, show_progress, total) => match never {},
    };
    // What the async engine's stdout thread still holds is written before we go (after a
    // failure: success wrote it all before its receipt), for at most a keepalive, or until
    // a signal.
    tokio::select! {
        () = carried.finish() => {}
        _ = interrupts.recv() => {}
        () = tokio::time::sleep(keepalive) => {}
    }
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
    /// The peer took this many of our bytes (§4.12).
    Ack(u64),
    /// A dialer asks to resume, on a connection that is not a resumed one: the session it
    /// names is not here (`gone:`).
    Resume,
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
    /// A new connection: each side sends END and RECEIVED again on it.
    fn restart(&self) {
        for flag in [
            &self.end_sent,
            &self.peer_ended,
            &self.receipt_due,
            &self.receipt_sent,
            &self.confirmed,
        ] {
            flag.store(false, Ordering::SeqCst);
        }
    }

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
        Message::Ack(count) => Step::Ack(count),
        // (A pipe's receipt is RECEIVED: an offer of chat receipts is ignored like any
        // extension. The opening placed RESUMABLE and RESUMED, and the receiving side noted
        // them.)
        Message::Pong(_)
        | Message::Rekey
        | Message::Extension { .. }
        | Message::Receipts
        | Message::Resumable
        | Message::Files
        | Message::Pairs(_)
        | Message::Resumed(_) => Step::Nothing,
        // (A listener reads a RESUME before the session; the opening refuses a late one.)
        // (Before a listener's HELLO: a dialer resuming a session this connection is not.)
        Message::Resume { .. } => Step::Resume,
        Message::Text(_)
        | Message::Relay { .. }
        | Message::Notice(_)
        | Message::Private(_)
        | Message::Nick(_)
        | Message::Invite(_)
        | Message::Pake { .. }
        | Message::Confirm(_)
        | Message::File(_)
        | Message::Peer(_)
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
#[derive(Debug)]
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
    /// What carries over to the next connection.
    link: Link,
}

impl Counters {
    fn new(link: Link) -> Self {
        Counters {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            quit_sent: AtomicBool::new(false),
            abort_asked: AtomicBool::new(false),
            opened: AtomicBool::new(false),
            ending: Ending::default(),
            link,
        }
    }

    /// A new connection: the ending starts afresh (§4.12); `resend_from` is the peer's count
    /// when it is already known (a listener's resumed connection: the dialer's RESUME).
    fn new_connection(&self, resend_from: Option<u64>) {
        self.ending.restart();
        self.link.reconnected(resend_from);
    }

    /// Whether a pipe that ended with `e` may resume: the connection resumes
    /// ([`Link::resumes_after_cut`]), it was lost (nobody ended it), and we had not said QUIT.
    fn may_resume(&self, e: &Error) -> bool {
        let lost = match e {
            Error::Io { context, .. } => {
                context == "reading from the peer" || context == "sending to the peer"
            }
            _ => crate::session::chat_cut(e),
        };
        lost && self.resumable()
    }

    /// Whether this session can still resume: nobody ended it (our QUIT, an abort) and the
    /// connection resumes.
    fn resumable(&self) -> bool {
        self.link.resumes_after_cut()
            && !self.quit_sent.load(Ordering::SeqCst)
            && !self.abort_asked.load(Ordering::SeqCst)
    }

    fn get(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}
