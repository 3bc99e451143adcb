//! Pipe mode over an async stream (a QUIC stream of iroh; in tests, an in-memory pipe): our
//! direction and the peer's run as two futures, with a helper thread reading stdin and one
//! writing stdout, so that stdout and the network work at the same time. Chunks travel
//! between them as whole buffers through small pools, never copied or reallocated.

use super::link::{bad_count, check};
use super::stdio::{StdinChunks, StdoutChunks};
use super::{
    ABORT_GRACE, Acks, Control, Counters, Opened, Step, abort_reason, aborted, output_failed, step,
};
use crate::error::{Error, ProtocolError, Result};
use crate::message::Message;
use crate::resume::Window;
use crate::session::keepalive::{Lapse, Silence};
use crate::signals::Interrupts;
use crate::transport::{RecvHalf, SendHalf};
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

/// Buffers in flight in each direction.
pub(super) const IN_FLIGHT: usize = 4;

/// The helper threads, which outlive a connection when the pipe resumes: what the stdin
/// thread read and the stdout thread has queued belongs to the session, not to a connection.
#[derive(Default)]
pub(super) struct Carried {
    stdin: Option<StdinChunks>,
    stdout: Option<StdoutChunks>,
}

impl Carried {
    /// Whether this engine has run: its helper threads own what stdin gave them and what
    /// stdout has not written yet, so every later connection must use them too.
    pub fn started(&self) -> bool {
        self.stdout.is_some()
    }

    /// The session is over: whatever was queued for stdout is written before we go.
    pub async fn finish(&mut self) {
        if let Some(stdout) = &mut self.stdout {
            let _ = stdout.finish().await;
        }
    }
}

/// Moves stdin to the peer and the peer's bytes to stdout until both QUITs have passed, or
/// the connection fails, or `cut` says a newer connection replaces it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn transfer<R, W>(
    recv: RecvHalf<R>,
    send: SendHalf<W>,
    opening: Opened,
    keepalive: Duration,
    counters: &Counters,
    carried: &mut Carried,
    interrupts: &mut Interrupts,
    cut: impl std::future::Future<Output = ()>,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (control_tx, control_rx) = mpsc::channel::<Control>(4);
    let abort = control_tx.clone();
    let (opened_tx, opened_rx) = oneshot::channel();
    // (A listener may have opened already: the dialer's HELLO came as its first message.)
    let opened_tx = match opening.is_open() {
        true => {
            counters.opened.store(true, Ordering::SeqCst);
            let _ = opened_tx.send(());
            None
        }
        false => Some(opened_tx),
    };
    // The download side says when the ending moved on (our receipt is due, the peer's came).
    let (moved_tx, moved_rx) = mpsc::channel::<()>(1);
    let Carried { stdin, stdout } = carried;
    let stdout = stdout.get_or_insert_with(StdoutChunks::spawn);
    let upload = upload(
        send, opened_rx, control_rx, moved_rx, keepalive, counters, stdin,
    );
    let download = download(
        recv,
        stdout,
        Asks {
            control: control_tx,
            moved: moved_tx,
        },
        opened_tx,
        opening,
        keepalive,
        counters,
    );
    // Both directions; on the first failure the other gets a moment to send the aborting QUIT
    // it may have been asked for.
    let both = async {
        tokio::pin!(upload, download);
        let first = tokio::select! {
            r = &mut upload => (r, true),
            r = &mut download => (r, false),
        };
        match first {
            (Err(e), _) if !counters.abort_asked.load(Ordering::SeqCst) => Err(e),
            (Err(e), up) => {
                let other = tokio::time::timeout(ABORT_GRACE, async {
                    match up {
                        true => download.await,
                        false => upload.await,
                    }
                })
                .await;
                // Our own abort is why the peer hung up: its reason is the one to tell.
                match (e, other) {
                    (Error::ConnectionCut, Ok(Err(ours))) => Err(ours),
                    (e, _) => Err(e),
                }
            }
            (Ok(()), true) => download.await,
            (Ok(()), false) => upload.await,
        }
    };
    tokio::pin!(both, cut);
    tokio::select! {
        result = &mut both => result,
        // (Dropping the two futures stops them between two steps: what they took is counted.)
        () = &mut cut => Err(Error::ConnectionCut),
        signal = interrupts.recv() => {
            let control = Control::Abort(abort_reason(signal), Some(signal));
            if !counters.quit_sent.load(Ordering::SeqCst) && abort.try_send(control).is_ok() {
                let _ = tokio::time::timeout(ABORT_GRACE, &mut both).await;
            }
            Err(Error::Interrupted(signal))
        }
    }
}

/// What the download side asks of the upload side.
struct Asks {
    control: mpsc::Sender<Control>,
    /// A wake-up: the ending moved on (see [`super::Ending`]), or the peer took more of ours.
    moved: mpsc::Sender<()>,
}

/// Our direction: stdin chunks as DATA, END at end of input, PINGs, PONGs and ACKs when
/// asked, our receipt once the peer's stream is written out, and QUIT once the ending is
/// complete ([`super::Ending`]).
///
/// Until our QUIT we also PING after every `keepalive` in which we sent nothing, so that a
/// peer waiting for our receipt knows we are alive (PROTOCOL.md §4.2).
async fn upload<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut opened: oneshot::Receiver<()>,
    mut control: mpsc::Receiver<Control>,
    mut moved: mpsc::Receiver<()>,
    keepalive: Duration,
    counters: &Counters,
    stdin: &mut Option<StdinChunks>,
) -> Result<()> {
    let heartbeat = tokio::time::sleep(keepalive);
    tokio::pin!(heartbeat);
    let ending = &counters.ending;
    let link = &counters.link;
    // The window is ours while this connection runs (a guard gives it back, also when the
    // connection is dropped mid-send): nothing else touches it meanwhile.
    let mut window = Lent::take(link);
    // Stdin is read only once the session is open (see the module comment of `pipe`).
    let mut waiting = true;
    loop {
        if ending.receipt_due.load(Ordering::SeqCst) && !ending.receipt_sent.load(Ordering::SeqCst)
        {
            let received = counters.received.load(Ordering::SeqCst);
            send.send(&Message::Received(received)).await?;
            ending.receipt_sent.store(true, Ordering::SeqCst);
        }
        if let Some(count) = link.ack_owed() {
            send.send(&Message::Ack(count)).await?;
        }
        if ending.may_quit() {
            counters.quit_sent.store(true, Ordering::SeqCst);
            return send.quit("").await;
        }
        // What the peer took is released; a full window reads no more input.
        let acked = link.acked.load(Ordering::SeqCst);
        if acked > window.start() {
            window.acked(acked).map_err(|why| bad_count("ACK", why))?;
        }
        let full = window.is_full();
        let reading = !waiting && !full && !ending.end_sent.load(Ordering::SeqCst);
        heartbeat
            .as_mut()
            .reset(tokio::time::Instant::now() + keepalive);
        tokio::select! {
            Some(()) = moved.recv() => {}
            () = &mut heartbeat => send.send(&Message::Ping(Vec::new().into())).await?,
            open = &mut opened, if waiting => {
                if open.is_err() {
                    // The download side ended before the opening did: its error tells why.
                    std::future::pending::<()>().await;
                }
                waiting = false;
                start(&mut send, &mut window, counters).await?;
                if !link.input_ended.load(Ordering::SeqCst) && stdin.is_none() {
                    *stdin = Some(StdinChunks::spawn());
                }
            }
            chunk = next_chunk(stdin), if reading => match chunk {
                Some(Ok(buf)) => {
                    let len = buf.len();
                    // Counted and kept before it is written (see the threads engine).
                    counters.sent.fetch_add(len as u64 - 1, Ordering::SeqCst);
                    let spare = window.sent(buf, len);
                    match window.newest() {
                        Some(kept) => send.send_encoded(kept).await?,
                        None => send.send_encoded(&spare[..len]).await?,
                    }
                    if let Some(stdin) = stdin.as_ref() {
                        let _ = stdin.recycle.send(spare);
                    }
                }
                Some(Err(e)) => return Err(Error::io("reading stdin", e)),
                // End of input: "I have finished sending" (our count is final first).
                None => {
                    *stdin = None;
                    link.input_ended.store(true, Ordering::SeqCst);
                    ending.end_sent.store(true, Ordering::SeqCst);
                    send.send(&Message::End).await?;
                }
            },
            Some(c) = control.recv() => match c {
                Control::Ping => send.send(&Message::Ping(Vec::new().into())).await?,
                Control::Pong(body) => send.send(&Message::Pong(body.into())).await?,
                Control::Abort(reason, signal) => {
                    counters.quit_sent.store(true, Ordering::SeqCst);
                    send.quit(&reason).await?;
                    return aborted(signal);
                }
            },
        }
    }
}

/// The connection is open: what the peer has not taken goes again first (a resumed
/// connection), a connection that does not resume keeps nothing, an input that had ended
/// ends again (PROTOCOL.md §4.12).
async fn start<W: AsyncWrite + Unpin>(
    send: &mut SendHalf<W>,
    window: &mut Window,
    counters: &Counters,
) -> Result<()> {
    let link = &counters.link;
    let from = link
        .resend_from
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(from) = from {
        let sent = counters.sent.load(Ordering::SeqCst);
        check(
            from,
            link.acked.load(Ordering::SeqCst),
            sent,
            "RESUME or RESUMED",
        )?;
        window
            .acked(from)
            .map_err(|why| bad_count("RESUME or RESUMED", why))?;
        link.acked.fetch_max(from, Ordering::SeqCst);
        if window.is_in_memory() {
            for message in window.messages() {
                send.send_encoded(message).await?;
            }
        } else {
            let (mut at, end, source) = (window.start(), window.end(), link.source()?);
            // (At least once: a resume checks the file even with nothing to send again.)
            loop {
                // (Off the runtime: it reads a file.)
                let source = source.clone();
                let read_again = tokio::task::spawn_blocking(move || {
                    let mut message = Vec::new();
                    source
                        .read_again(at, end, &mut message)
                        .map(|len| (message, len))
                })
                .await
                .map_err(|e| Error::Internal(format!("reading stdin again: {e}")))
                .and_then(|read| read);
                let (message, len) = match read_again {
                    Ok(read) => read,
                    // The peer hears that the transfer failed, rather than wait for us.
                    Err(e) => {
                        counters.abort_asked.store(true, Ordering::SeqCst);
                        counters.quit_sent.store(true, Ordering::SeqCst);
                        let _ = send.quit(&format!("aborted: {e}")).await;
                        return Err(e);
                    }
                };
                if len == 1 {
                    break;
                }
                send.send_encoded(&message[..len]).await?;
                at += (len - 1) as u64;
            }
        }
    }
    if !link.both.load(Ordering::SeqCst) {
        window.stop();
    }
    if link.input_ended.load(Ordering::SeqCst) {
        counters.ending.end_sent.store(true, Ordering::SeqCst);
        send.send(&Message::End).await?;
    }
    Ok(())
}

/// The peer's direction: DATA to stdout until its END, then our receipt asked for once it is
/// all written; its RECEIVED checked; PINGs answered; its ACKs noted; keepalive until its
/// QUIT.
async fn download<R: AsyncRead + Unpin>(
    mut recv: RecvHalf<R>,
    stdout: &mut StdoutChunks,
    asks: Asks,
    mut opened: Option<oneshot::Sender<()>>,
    mut opening: Opened,
    keepalive: Duration,
    counters: &Counters,
) -> Result<()> {
    let mut silence = Silence::new(keepalive);
    let mut peer_ended = false;
    let mut acks = Acks::default();
    let ending = &counters.ending;
    loop {
        let deadline = opening.deadline();
        let msg = tokio::select! {
            msg = recv.recv() => msg?,
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                opening.overdue()?;
                continue;
            }
            lapse = silence.lapse() => match lapse {
                Lapse::Ping => {
                    let _ = asks.control.try_send(Control::Ping);
                    continue;
                }
                Lapse::Gone(e) => return Err(e),
            }
        };
        silence.heard();
        let Some(msg) = msg else {
            return Err(Error::ConnectionCut);
        };
        let (msg, now_open) = opening.accept(msg, &counters.link)?;
        if now_open && let Some(opened) = opened.take() {
            counters.opened.store(true, Ordering::SeqCst);
            let _ = opened.send(());
        }
        let Some(msg) = msg else {
            continue;
        };
        match step(msg)? {
            Step::Data(_) | Step::End if peer_ended => {
                return Err(ProtocolError::Unexpected("DATA or END", "after its END").into());
            }
            Step::Data(bytes) => {
                let len = bytes.len();
                // Hand the decrypted buffer itself to the writer thread; take a spare in its
                // place. The body starts after the type byte.
                let full = recv.exchange_buffer(stdout.spare());
                if let Err(e) = stdout.write(full, 1..1 + len).await {
                    return Err(output_error(e, &asks, counters).await);
                }
                counters.received.fetch_add(len as u64, Ordering::SeqCst);
                if acks.due(counters) {
                    let _ = asks.moved.try_send(());
                }
            }
            Step::Ack(count) => {
                counters
                    .link
                    .peer_acked(count, counters.sent.load(Ordering::SeqCst))?;
                let _ = asks.moved.try_send(());
            }
            // Confirmed only once the writer has written and flushed everything.
            Step::End => {
                peer_ended = true;
                ending.peer_ended.store(true, Ordering::SeqCst);
                if let Err(e) = stdout.finish().await {
                    return Err(output_error(e, &asks, counters).await);
                }
                ending.receipt_due.store(true, Ordering::SeqCst);
                let _ = asks.moved.try_send(());
            }
            Step::Received(count) => {
                ending.peer_received(count, &counters.sent)?;
                let _ = asks.moved.try_send(());
            }
            Step::Quit(Ok(())) => return ending.peer_quit(peer_ended),
            Step::Quit(Err(e)) => {
                // What arrived before an abort is still written out.
                let _ = stdout.finish().await;
                return Err(e);
            }
            Step::Pong(body) => {
                let _ = asks.control.try_send(Control::Pong(body));
            }
            Step::Resume => {
                counters.abort_asked.store(true, Ordering::SeqCst);
                let _ = asks
                    .control
                    .send(Control::Abort(crate::session::GONE.into(), None))
                    .await;
                return Err(super::not_held());
            }
            Step::Nothing => {}
        }
    }
}

/// Our output failed: the peer is told in an aborting QUIT (with how much was written), and
/// the error says the output is incomplete.
async fn output_error(e: Error, asks: &Asks, counters: &Counters) -> Error {
    let written = counters.received.load(Ordering::SeqCst);
    let (reason, e) = match e {
        Error::Io { source, .. } => (output_failed(&source, written), source),
        other => return other,
    };
    counters.abort_asked.store(true, Ordering::SeqCst);
    let _ = asks.control.send(Control::Abort(reason, None)).await;
    Error::io(
        format!(
            "writing stdout (the output is incomplete: {} of the peer's stream arrived and was \
             written)",
            super::size(written)
        ),
        e,
    )
}

/// The link's window, lent to one connection's upload; given back when dropped.
struct Lent<'a> {
    link: &'a super::Link,
    window: Window,
}

impl<'a> Lent<'a> {
    fn take(link: &'a super::Link) -> Self {
        let window = std::mem::replace(&mut *link.window(), Window::off());
        Lent { link, window }
    }
}

impl std::ops::Deref for Lent<'_> {
    type Target = Window;
    fn deref(&self) -> &Window {
        &self.window
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Window {
        &mut self.window
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        *self.link.window() = std::mem::replace(&mut self.window, Window::off());
    }
}

/// The next chunk of stdin; never, while it is not read yet.
async fn next_chunk(stdin: &mut Option<StdinChunks>) -> Option<io::Result<Vec<u8>>> {
    match stdin {
        Some(stdin) => stdin.filled.recv().await,
        None => std::future::pending().await,
    }
}
