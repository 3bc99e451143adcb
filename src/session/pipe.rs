//! Pipe mode: stdin's bytes to the peer, the peer's bytes to stdout, raw, as DATA messages of up
//! to 65518 bytes. QUIT means "I have finished sending" (a half-close): each side ends once it
//! has sent its QUIT and received the peer's, with everything received written out.
//!
//! The hot path copies as little as it can: a reader thread reads stdin straight into a
//! message buffer after its type byte, the session seals it into the frame buffer and writes
//! the frame with one call; on the way in, each decrypted chunk goes to a writer thread, so
//! stdout and the socket work in parallel. Buffers circulate through pools, never reallocated.

use super::keepalive::{Lapse, Silence};
use crate::error::{Error, ProtocolError, Result};
use crate::handshake::Established;
use crate::message::{MAX_PLAINTEXT, Message, Mode, kind};
use crate::transport::{PLAINTEXT_BUF_LEN, RecvHalf, SendHalf};
use crate::ui::Ui;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Buffers in flight in each direction.
const IN_FLIGHT: usize = 4;

/// How pipe mode reports progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeOptions {
    /// No progress line and no summary.
    pub quiet: bool,
}

/// Control messages the receiving side asks the sending side to send.
enum Control {
    /// Keepalive probe.
    Ping,
    /// Answer to the peer's PING.
    Pong(Vec<u8>),
}

/// Runs a pipe session on an established connection, with the process's stdin and stdout.
pub async fn run<R, W>(
    established: Established<R, W>,
    listener: bool,
    keepalive: Duration,
    options: PipeOptions,
    ui: &Ui,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Established { recv, mut send, .. } = established;
    // Our HELLO first (a dialer gets here only once it has accepted the listener's key).
    send.send(&Message::hello(Mode::Pipe, "")).await?;
    if listener {
        send.send(&Message::Welcome("schat pipe".into())).await?;
    }
    let counters = Counters::default();
    let started = Instant::now();
    let (control_tx, control_rx) = mpsc::channel::<Control>(4);
    let upload = upload(send, StdinChunks::spawn(), control_rx, keepalive, &counters);
    let download = download(
        recv,
        StdoutChunks::spawn(),
        control_tx,
        !listener,
        keepalive,
        &counters,
    );
    let show_progress = !options.quiet && io::stderr().is_terminal();
    let result = tokio::select! {
        r = async { tokio::try_join!(upload, download) } => r.map(|_| ()),
        never = progress(&counters, started, show_progress) => match never {},
    };
    if show_progress {
        eprint!("\r\x1b[K");
    }
    if !options.quiet {
        let secs = started.elapsed().as_secs_f64();
        let (sent, received) = counters.get();
        ui.status(format_args!(
            "sent {}, received {} in {secs:.1} s ({}/s)",
            size(sent),
            size(received),
            size(((sent + received) as f64 / secs.max(1e-3)) as u64)
        ));
    }
    result
}

/// Our direction: stdin chunks as DATA, PINGs and PONGs when asked, QUIT at end of input.
///
/// While we may still send, we also PING after every `keepalive` in which we sent nothing: a
/// peer that has already sent its QUIT cannot PING us any more (nothing may follow a QUIT), so
/// it learns that we are alive from our heartbeat (PROTOCOL.md §4.2).
async fn upload<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut stdin: StdinChunks,
    mut control: mpsc::Receiver<Control>,
    keepalive: Duration,
    counters: &Counters,
) -> Result<()> {
    let heartbeat = tokio::time::sleep(keepalive);
    tokio::pin!(heartbeat);
    loop {
        heartbeat
            .as_mut()
            .reset(tokio::time::Instant::now() + keepalive);
        tokio::select! {
            () = &mut heartbeat => send.send(&Message::Ping(Vec::new().into())).await?,
            chunk = stdin.filled.recv() => match chunk {
                Some(Ok(buf)) => {
                    send.send_encoded(&buf).await?;
                    counters.sent.fetch_add(buf.len() as u64 - 1, Ordering::Relaxed);
                    let _ = stdin.recycle.send(buf);
                }
                Some(Err(e)) => return Err(Error::io("reading stdin", e)),
                // End of input: "I have finished sending".
                None => return send.quit("").await,
            },
            Some(c) = control.recv() => match c {
                Control::Ping => send.send(&Message::Ping(Vec::new().into())).await?,
                Control::Pong(body) => send.send(&Message::Pong(body.into())).await?,
            },
        }
    }
}

/// The peer's direction: DATA to stdout until its QUIT, PINGs answered, and keepalive while
/// the peer may still send.
async fn download<R: AsyncRead + Unpin>(
    mut recv: RecvHalf<R>,
    mut stdout: StdoutChunks,
    control: mpsc::Sender<Control>,
    dialer: bool,
    keepalive: Duration,
    counters: &Counters,
) -> Result<()> {
    let mut silence = Silence::new(keepalive);
    let mut opening = super::opening::Opening::new(dialer);
    loop {
        let msg = tokio::select! {
            msg = recv.recv() => msg?,
            lapse = silence.lapse() => match lapse {
                Lapse::Ping => {
                    let _ = control.try_send(Control::Ping);
                    continue;
                }
                Lapse::Gone(e) => return Err(e),
            }
        };
        silence.heard();
        let Some(msg) = msg else {
            return Err(Error::ConnectionCut);
        };
        let Some(msg) = opening.accept(msg, Mode::Pipe)? else {
            continue;
        };
        match msg {
            Message::Data(bytes) => {
                let len = bytes.len();
                counters.received.fetch_add(len as u64, Ordering::Relaxed);
                // Hand the decrypted buffer itself to the writer thread; take a spare in its
                // place. The body starts after the type byte.
                let full = recv.exchange_buffer(stdout.spare());
                stdout.write(full, 1..1 + len).await?;
            }
            // The peer has finished sending: everything received must reach stdout before
            // this side can report success — or, when its reason is not a goodbye, report why
            // it stopped (what arrived is still written out).
            Message::Quit(reason) => {
                let ending = super::QuitReason::of(&reason).error();
                stdout.finish().await?;
                return ending.map_or(Ok(()), Err);
            }
            Message::Ping(body) => {
                let _ = control.try_send(Control::Pong(body.into_owned()));
            }
            Message::Pong(_) | Message::Rekey | Message::Extension { .. } => {}
            Message::Text(_)
            | Message::Relay { .. }
            | Message::Notice(_)
            | Message::Private(_)
            | Message::Nick(_)
            | Message::Invite(_)
            | Message::Pake { .. }
            | Message::Confirm(_)
            | Message::Who => {
                return Err(ProtocolError::Unexpected(
                    msg.name(),
                    "in a pipe (is it in chat mode?)",
                )
                .into());
            }
            // The listener's greeting means nothing to a pipe; the opening saw it came once.
            Message::Welcome(_) => {}
            // Its name means nothing to a pipe; the opening saw that it came once.
            Message::Hello { .. } => {}
        }
    }
}

/// Bytes moved so far, shared with the progress line.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Counters {
    fn get(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

/// Redraws a progress line on stderr four times a second (if enabled). Never returns.
async fn progress(
    counters: &Counters,
    started: Instant,
    enabled: bool,
) -> std::convert::Infallible {
    if !enabled {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let (sent, received) = counters.get();
        let total = sent + received;
        let now = Instant::now();
        let rate = (total - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (total, now);
        let elapsed = started.elapsed().as_secs();
        eprint!(
            "\r\x1b[Kschat: ↑ {}  ↓ {}  {}/s  {}:{:02}",
            size(sent),
            size(received),
            size(rate as u64),
            elapsed / 60,
            elapsed % 60
        );
        let _ = io::stderr().flush();
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

/// Chunks of stdin, read by a helper thread straight into DATA messages (type byte first).
struct StdinChunks {
    filled: mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: std::sync::mpsc::Sender<Vec<u8>>,
}

impl StdinChunks {
    fn spawn() -> Self {
        let (filled_tx, filled) = mpsc::channel(IN_FLIGHT);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                // Recycled buffers come back truncated to their last chunk; growing them again
                // only zeroes what a shorter chunk left uninitialised.
                let mut buf = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(MAX_PLAINTEXT));
                buf.resize(MAX_PLAINTEXT, 0);
                buf[0] = kind::DATA;
                let read = loop {
                    match stdin.read(&mut buf[1..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let chunk = match read {
                    Ok(0) => return, // dropping the sender signals the end of input
                    Ok(n) => {
                        buf.truncate(1 + n);
                        Ok(buf)
                    }
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if filled_tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        StdinChunks { filled, recycle }
    }
}

/// A plaintext buffer and the part of it to write.
type Chunk = (Box<[u8]>, std::ops::Range<usize>);

/// A helper thread writing received chunks to stdout, so the socket and stdout work at once.
/// Chunks travel as whole plaintext buffers with the range to write; buffers come back to be
/// swapped into the receiver again.
struct StdoutChunks {
    to_thread: Option<mpsc::Sender<Chunk>>,
    recycled: std::sync::mpsc::Receiver<Box<[u8]>>,
    done: mpsc::Receiver<io::Result<()>>,
}

impl StdoutChunks {
    fn spawn() -> Self {
        let (to_thread, mut chunks) =
            mpsc::channel::<(Box<[u8]>, std::ops::Range<usize>)>(IN_FLIGHT);
        let (recycle, recycled) = std::sync::mpsc::channel();
        let (done_tx, done) = mpsc::channel(1);
        std::thread::spawn(move || {
            let result = (|| {
                // Write to the file descriptor itself: Rust's `Stdout` is line-buffered and
                // would scan every chunk for newlines and copy it once more.
                let mut out = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
                while let Some((buf, range)) = chunks.blocking_recv() {
                    out.write_all(&buf[range])?;
                    let _ = recycle.send(buf);
                }
                out.flush()
            })();
            let _ = done_tx.blocking_send(result);
        });
        StdoutChunks {
            to_thread: Some(to_thread),
            recycled,
            done,
        }
    }

    /// A buffer to swap into the receiver: a recycled one of full size, or a new one. (A
    /// recycled buffer can be small: the receiver's first buffer is, and so is one that only
    /// ever held small frames. Handing it back would make the receiver grow it again.)
    fn spare(&self) -> Box<[u8]> {
        match self.recycled.try_recv() {
            Ok(buf) if buf.len() >= PLAINTEXT_BUF_LEN => buf,
            _ => vec![0u8; PLAINTEXT_BUF_LEN].into_boxed_slice(),
        }
    }

    /// Queues `buf[range]` for stdout.
    async fn write(&mut self, buf: Box<[u8]>, range: std::ops::Range<usize>) -> Result<()> {
        let queued = match &self.to_thread {
            Some(tx) => tx.send((buf, range)).await.is_ok(),
            None => false,
        };
        if queued {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.finish().await?;
        Err(Error::Internal("the stdout writer stopped".into()))
    }

    /// Waits until everything queued is written and flushed.
    async fn finish(&mut self) -> Result<()> {
        self.to_thread = None;
        match self.done.recv().await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Error::io("writing stdout", e)),
            None => Err(Error::Internal("the stdout writer vanished".into())),
        }
    }
}
