//! Pipe mode over TCP, off the async runtime: once the session is open, the socket becomes a
//! blocking one and each direction gets a thread of its own.
//!
//! ```text
//!  stdin ──poll, read──▶ [upload] ──seal, write──▶ socket      PING when we were quiet;
//!                           ▲ "open", PING/PONG, receipt,        END at end of input; QUIT
//!                           │ abort asks, wake-up                once both receipts are done
//!  stdout ◀──write── [download] ◀──read, open── socket         a keepalive without a whole
//!                                                               message: PING; three: gone
//! ```
//!
//! Why: a chunk used to cross from the stdin thread to a runtime task and (on the way in) from
//! a task to the stdout thread, each crossing a wake-up; perf put those at a quarter of the
//! samples, after the cipher. The rules are those of the async engine ([`super::tasks`]);
//! only the waiting differs. The runtime only waits for the two threads' results: the first
//! failure stops the other thread (its socket is shut down and it is woken), and is the one
//! reported.

use super::link::{bad_count, check};
use super::poll::wait;
use super::{
    ABORT_GRACE, Acks, Control, Counters, Opened, Step, abort_reason, aborted, output_failed, step,
};
use crate::error::{Error, ProtocolError, Result};
use crate::framed::{Detach, Polled};
use crate::message::{MAX_PLAINTEXT, Message, kind};
use crate::session::LINGER;
use crate::session::keepalive::{Lapse, SilentReads};
use crate::signals::Interrupts;
use crate::transport::{RecvHalf, SendHalf};
use std::fs::File;
use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// Moves stdin to the peer and the peer's bytes to stdout until both QUITs have passed, or
/// until the connection fails, or `cut` says a newer connection replaces it. Either way both
/// threads have ended when it returns, so that a resumed connection's threads never run
/// beside them.
pub(super) async fn transfer<R: Detach, W: Detach>(
    recv: RecvHalf<R>,
    send: SendHalf<W>,
    opening: Opened,
    keepalive: Duration,
    counters: Arc<Counters>,
    interrupts: &mut Interrupts,
    cut: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let preparing = |e| Error::io("preparing the connection for the pipe", e);
    let recv = recv.try_map_io(|io| io.detach().map_err(|(_, e)| e));
    let send = send.try_map_io(|io| io.detach().map_err(|(_, e)| e));
    let (recv, send) = match (recv, send) {
        (Ok(recv), Ok(send)) => (recv, send),
        (Err(e), _) | (_, Err(e)) => return Err(preparing(e)),
    };
    let silence = SilentReads::new(keepalive);
    // Both halves share one open file description: this makes the socket blocking for both.
    send.get_ref().set_nonblocking(false).map_err(preparing)?;
    recv.get_ref()
        .set_read_timeout(Some(silence.read_timeout()))
        .map_err(preparing)?;
    let socket = send.get_ref().try_clone().map_err(preparing)?;
    let (wake_rx, wake_tx) = io::pipe().map_err(preparing)?;
    let stop = Arc::new(AtomicBool::new(false));
    // (A listener may have opened already: the dialer's HELLO came as its first message.)
    let opened = Arc::new(AtomicBool::new(opening.is_open()));
    if opening.is_open() {
        counters.opened.store(true, Ordering::SeqCst);
    }
    let mut abort = Abort {
        socket,
        stop: stop.clone(),
        wake: wake_tx.try_clone().map_err(preparing)?,
        armed: true,
    };
    let (controls_tx, controls_rx) = std::sync::mpsc::sync_channel(4);
    let ask_abort = controls_tx.clone();
    let (done_tx, mut done) = unbounded_channel();
    let upload = Upload {
        send,
        stdin: private(io::stdin().as_fd()).map_err(|e| Error::io("reading stdin", e))?,
        controls: controls_rx,
        wake: wake_rx,
        stop,
        opened: opened.clone(),
        keepalive,
        counters: counters.clone(),
    };
    let download = Download {
        recv,
        stdout: private(io::stdout().as_fd()).map_err(|e| Error::io("writing stdout", e))?,
        controls: controls_tx,
        wake: wake_tx,
        opened,
        opening,
        silence,
        counters: counters.clone(),
    };
    spawn("schat-upload", Done::new(&done_tx, "upload"), move || {
        upload.run()
    })?;
    spawn(
        "schat-download",
        Done::new(&done_tx, "download"),
        move || download.run(),
    )?;
    drop(done_tx);
    let vanished = || Err(Error::Internal("a pipe thread vanished".into()));
    tokio::pin!(cut);
    // Both threads' results. On the first failure, the other thread gets a moment to send the
    // aborting QUIT it may have been asked for; then `abort` stops it, and it is waited for.
    for _ in 0..2 {
        tokio::select! {
            result = done.recv() => {
                if let Err(mut e) = result.unwrap_or_else(vanished) {
                    if counters.abort_asked.load(Ordering::SeqCst) {
                        let other = tokio::time::timeout(ABORT_GRACE, done.recv()).await;
                        // Our own abort is why the peer hung up: its reason is the one to tell.
                        if let (Error::ConnectionCut, Ok(Some(Err(ours)))) = (&e, other) {
                            e = ours;
                        }
                        linger(&abort, &counters, interrupts).await;
                    }
                    drop(abort);
                    return match join(&mut done, interrupts).await {
                        Some(signal) => Err(Error::Interrupted(signal)),
                        None => Err(e),
                    };
                }
            }
            () = &mut cut => {
                drop(abort);
                return match join(&mut done, interrupts).await {
                    Some(signal) => Err(Error::Interrupted(signal)),
                    None => Err(Error::ConnectionCut),
                };
            }
            signal = interrupts.recv() => {
                // Our QUIT with a reason tells the peer the transfer failed, unless our QUIT
                // is out already, or the socket does not take it within a moment.
                let control = Control::Abort(abort_reason(signal), Some(signal));
                if !counters.quit_sent.load(Ordering::SeqCst) && ask_abort.try_send(control).is_ok() {
                    let _ = abort.wake.write(&[1]);
                    let _ = tokio::time::timeout(ABORT_GRACE, done.recv()).await;
                    linger(&abort, &counters, interrupts).await;
                }
                return Err(Error::Interrupted(signal));
            }
        }
    }
    abort.disarm();
    Ok(())
}

/// After our aborting QUIT: reads and drops what the peer still sends until it closes, or
/// for at most [`LINGER`] (a second signal ends it), so that closing with unread data does
/// not send a reset that destroys the QUIT before the peer reads it (PROTOCOL.md §5). A peer
/// that saw a reset instead would take the abort for a cut, and try to resume.
async fn linger(abort: &Abort, counters: &Counters, interrupts: &mut Interrupts) {
    if !counters.quit_sent.load(Ordering::SeqCst) {
        return;
    }
    let Ok(mut socket) = abort.socket.try_clone() else {
        return;
    };
    // (A short read timeout: the keepalive's may be longer than the whole linger.)
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let draining = tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + LINGER;
        let mut sink = vec![0u8; 1 << 16];
        while std::time::Instant::now() < until {
            match socket.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
            }
        }
    });
    tokio::select! {
        _ = draining => {}
        _ = interrupts.recv() => {}
    }
}

/// Waits for the threads still running (stopped: they end at once, unless stdout holds one
/// up); a signal stops the wait.
async fn join(
    done: &mut tokio::sync::mpsc::UnboundedReceiver<Result<()>>,
    interrupts: &mut Interrupts,
) -> Option<&'static str> {
    tokio::select! {
        () = async { while done.recv().await.is_some() {} } => None,
        signal = interrupts.recv() => Some(signal),
    }
}

/// Our own descriptor for stdin or stdout: Rust's handles buffer, lock, and (stdout) scan for
/// newlines. (Rust opens /dev/null for a standard descriptor closed at start, so these exist.)
fn private(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

fn spawn(name: &str, done: Done, body: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || done.report(body()))
        .map(drop)
        .map_err(|e| Error::io("starting the pipe's threads", e))
}

/// A thread's result, sent when it ends — also when it ends by panicking, so that the runtime
/// never waits for a thread that is gone.
struct Done {
    tx: Option<UnboundedSender<Result<()>>>,
    what: &'static str,
}

impl Done {
    fn new(tx: &UnboundedSender<Result<()>>, what: &'static str) -> Self {
        Done {
            tx: Some(tx.clone()),
            what,
        }
    }

    fn report(mut self, result: Result<()>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(Error::Internal(format!(
                "the pipe's {} thread stopped unexpectedly",
                self.what
            ))));
        }
    }
}

/// Stops both threads unless disarmed: on the first failure, and when the session is dropped
/// (cancelled) before the end. Shutting the socket down ends a blocked read or write at once;
/// the flag and the wake-up end the upload thread's wait for stdin.
struct Abort {
    socket: TcpStream,
    stop: Arc<AtomicBool>,
    wake: PipeWriter,
    armed: bool,
}

impl Abort {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Abort {
    fn drop(&mut self) {
        if self.armed {
            self.stop.store(true, Ordering::SeqCst);
            let _ = self.socket.shutdown(Shutdown::Both);
            let _ = self.wake.write(&[1]);
        }
    }
}

/// Our direction: stdin as DATA, END at end of input, PINGs and PONGs when asked, our receipt
/// when the download thread has written the peer's stream out, and QUIT once the ending is
/// complete ([`super::Ending`]).
///
/// Until our QUIT we also PING after every `keepalive` in which we sent nothing, so that a
/// peer waiting for our receipt knows we are alive (PROTOCOL.md §4.2).
struct Upload {
    send: SendHalf<TcpStream>,
    stdin: File,
    controls: Receiver<Control>,
    wake: PipeReader,
    stop: Arc<AtomicBool>,
    /// Set by the download thread once the peer's HELLO (and a listener's WELCOME) came: only
    /// then is stdin read (see [`super`]: a listener turned away keeps its input).
    opened: Arc<AtomicBool>,
    keepalive: Duration,
    counters: Arc<Counters>,
}

impl Upload {
    fn run(mut self) -> Result<()> {
        // A DATA message is read in place: its type byte, then stdin's bytes.
        let mut message = vec![0u8; MAX_PLAINTEXT];
        message[0] = kind::DATA;
        // Our heartbeat counts from what we last sent, whatever woke us in between.
        let mut sent = std::time::Instant::now();
        let counters = self.counters.clone();
        let (ending, link) = (&counters.ending, &counters.link);
        let mut started = false;
        loop {
            // Our part of the ending, as soon as it is due.
            if ending.receipt_due.load(Ordering::SeqCst)
                && !ending.receipt_sent.load(Ordering::SeqCst)
            {
                let received = self.counters.received.load(Ordering::SeqCst);
                self.send.send_blocking(&Message::Received(received))?;
                ending.receipt_sent.store(true, Ordering::SeqCst);
                sent = std::time::Instant::now();
            }
            if let Some(count) = link.ack_owed() {
                self.send.send_blocking(&Message::Ack(count))?;
            }
            if ending.may_quit() {
                self.counters.quit_sent.store(true, Ordering::SeqCst);
                return self.send.quit_blocking("");
            }
            let opened = self.opened.load(Ordering::SeqCst);
            if opened && !started {
                started = true;
                self.start()?;
                sent = std::time::Instant::now();
            }
            // What the peer took is released; a full window reads no more input.
            let full = {
                let mut window = link.window();
                let acked = link.acked.load(Ordering::SeqCst);
                if acked > window.start() {
                    window.acked(acked).map_err(|why| bad_count("ACK", why))?;
                }
                window.is_full()
            };
            let reading = opened && !ending.end_sent.load(Ordering::SeqCst) && !full;
            let stdin = reading.then_some(&self.stdin);
            let quiet = self.keepalive.saturating_sub(sent.elapsed());
            let ready = wait(stdin, &self.wake, quiet)?;
            if self.stop.load(Ordering::SeqCst) {
                return Err(Error::Internal("the pipe was stopped".into()));
            }
            if ready.woken {
                let _ = self.wake.read(&mut [0u8; 64]);
                while let Ok(control) = self.controls.try_recv() {
                    sent = std::time::Instant::now();
                    match control {
                        Control::Ping => {
                            self.send.send_blocking(&Message::Ping(Vec::new().into()))?
                        }
                        Control::Abort(reason, signal) => {
                            self.counters.quit_sent.store(true, Ordering::SeqCst);
                            self.send.quit_blocking(&reason)?;
                            return aborted(signal);
                        }
                        Control::Pong(body) => {
                            self.send.send_blocking(&Message::Pong(body.into()))?
                        }
                    }
                }
            }
            if ready.timed_out {
                self.send.send_blocking(&Message::Ping(Vec::new().into()))?;
                sent = std::time::Instant::now();
            }
            if !ready.input {
                continue;
            }
            match self.stdin.read(&mut message[1..]) {
                // End of input: "I have finished sending" (our count is final first).
                Ok(0) => {
                    link.input_ended.store(true, Ordering::SeqCst);
                    ending.end_sent.store(true, Ordering::SeqCst);
                    self.send.send_blocking(&Message::End)?;
                    sent = std::time::Instant::now();
                }
                Ok(n) => {
                    // Counted before it is written, so that no honest ACK counts more; kept
                    // (when this pipe resumes) before it is written, so that a failed write
                    // loses nothing.
                    self.counters.sent.fetch_add(n as u64, Ordering::SeqCst);
                    let mut window = link.window();
                    let next = window.sent(std::mem::take(&mut message), 1 + n);
                    let out = match window.newest() {
                        Some(kept) => kept,
                        None => &next[..1 + n],
                    };
                    self.send.send_encoded_blocking(out)?;
                    drop(window);
                    message = next;
                    message.resize(MAX_PLAINTEXT, 0);
                    message[0] = kind::DATA;
                    sent = std::time::Instant::now();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(Error::io("reading stdin", e)),
            }
        }
    }
}

impl Upload {
    /// The connection is open: on a resumed one, what the peer has not taken goes again
    /// first; a connection that does not resume keeps nothing; an input that had ended ends
    /// again (PROTOCOL.md §4.12).
    fn start(&mut self) -> Result<()> {
        let link = &self.counters.link;
        let mut window = link.window();
        let from = link
            .resend_from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(from) = from {
            let sent = self.counters.sent.load(Ordering::SeqCst);
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
                    self.send.send_encoded_blocking(message)?;
                }
            } else {
                let (mut at, end, mut message) = (window.start(), window.end(), Vec::new());
                let source = link.source()?;
                // (At least once: a resume checks the file even with nothing to send again.)
                loop {
                    let len = match source.read_again(at, end, &mut message) {
                        Ok(len) => len,
                        // The peer hears that the transfer failed, rather than wait for us.
                        Err(e) => {
                            self.counters.abort_asked.store(true, Ordering::SeqCst);
                            self.counters.quit_sent.store(true, Ordering::SeqCst);
                            let _ = self.send.quit_blocking(&format!("aborted: {e}"));
                            return Err(e);
                        }
                    };
                    if len == 1 {
                        break;
                    }
                    self.send.send_encoded_blocking(&message[..len])?;
                    at += (len - 1) as u64;
                }
            }
        }
        if !link.both.load(Ordering::SeqCst) {
            window.stop();
        }
        drop(window);
        if link.input_ended.load(Ordering::SeqCst) {
            self.counters.ending.end_sent.store(true, Ordering::SeqCst);
            self.send.send_blocking(&Message::End)?;
        }
        Ok(())
    }
}

/// The peer's direction: DATA to stdout until its END, then our receipt asked for; its
/// RECEIVED checked; PINGs answered (by the upload thread); keepalive until its QUIT.
struct Download {
    recv: RecvHalf<TcpStream>,
    stdout: File,
    controls: SyncSender<Control>,
    wake: PipeWriter,
    opened: Arc<AtomicBool>,
    opening: Opened,
    silence: SilentReads,
    counters: Arc<Counters>,
}

impl Download {
    fn run(mut self) -> Result<()> {
        let mut peer_ended = false;
        let mut acks = Acks::default();
        loop {
            self.opening.overdue()?;
            let msg = match self.recv.recv_blocking()? {
                Polled::Idle => match self.silence.idle() {
                    None => continue,
                    Some(Lapse::Ping) => {
                        ask(&self.controls, &mut self.wake, Control::Ping);
                        continue;
                    }
                    Some(Lapse::Gone(e)) => return Err(e),
                },
                Polled::Ready(msg) => msg,
            };
            self.silence.heard();
            let Some(msg) = msg else {
                return Err(Error::ConnectionCut);
            };
            let (msg, opened) = self.opening.accept(msg, &self.counters.link)?;
            if opened {
                self.counters.opened.store(true, Ordering::SeqCst);
                self.opened.store(true, Ordering::SeqCst);
                let _ = self.wake.write(&[1]);
            }
            let Some(msg) = msg else {
                continue;
            };
            let ending = &self.counters.ending;
            match step(msg)? {
                Step::Data(_) | Step::End if peer_ended => {
                    return Err(ProtocolError::Unexpected("DATA or END", "after its END").into());
                }
                Step::Data(bytes) => {
                    // (Counted once written: the receipt says what reached the output.)
                    if let Err(e) = self.stdout.write_all(&bytes) {
                        let written = self.counters.received.load(Ordering::SeqCst);
                        let reason = output_failed(&e, written);
                        self.counters.abort_asked.store(true, Ordering::SeqCst);
                        ask(&self.controls, &mut self.wake, Control::Abort(reason, None));
                        return Err(Error::io(
                            format!(
                                "writing stdout (the output is incomplete: {} of the peer's \
                                 stream arrived and was written)",
                                super::size(written)
                            ),
                            e,
                        ));
                    }
                    self.counters
                        .received
                        .fetch_add(bytes.len() as u64, Ordering::SeqCst);
                    if acks.due(&self.counters) {
                        let _ = self.wake.write(&[1]);
                    }
                }
                Step::Ack(count) => {
                    let sent = self.counters.sent.load(Ordering::SeqCst);
                    self.counters.link.peer_acked(count, sent)?;
                    let _ = self.wake.write(&[1]);
                }
                // Everything is written (stdout is our own unbuffered descriptor): confirm it.
                Step::End => {
                    peer_ended = true;
                    ending.peer_ended.store(true, Ordering::SeqCst);
                    ending.receipt_due.store(true, Ordering::SeqCst);
                    let _ = self.wake.write(&[1]);
                }
                Step::Received(count) => {
                    ending.peer_received(count, &self.counters.sent)?;
                    let _ = self.wake.write(&[1]);
                }
                Step::Quit(Ok(())) => return ending.peer_quit(peer_ended),
                Step::Quit(Err(e)) => return Err(e),
                Step::Pong(body) => {
                    ask(&self.controls, &mut self.wake, Control::Pong(body));
                }
                Step::Resume => {
                    self.counters.abort_asked.store(true, Ordering::SeqCst);
                    ask(
                        &self.controls,
                        &mut self.wake,
                        Control::Abort(crate::session::GONE.into(), None),
                    );
                    return Err(super::not_held());
                }
                Step::Nothing => {}
            }
        }
    }
}

/// Asks the upload thread to send `control`, and wakes it. Never blocks: when asks pile up
/// (the upload thread is stuck on a full socket), more of the same would add nothing.
fn ask(controls: &SyncSender<Control>, wake: &mut PipeWriter, control: Control) -> bool {
    let queued = controls.try_send(control).is_ok();
    if queued {
        let _ = wake.write(&[1]);
    }
    queued
}
