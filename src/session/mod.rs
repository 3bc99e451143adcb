//! One conversation on one connection, over any byte stream: handshake, key check, welcome,
//! then full-duplex chat until someone says QUIT.
//!
//! Reading from the peer, reading the user's input and writing to the peer all proceed at
//! once: a `select!` loop owns the receiving half and the input, and a writer task owns the
//! sending half behind a bounded queue, so a slow network never stops us from receiving.

pub mod command;
pub mod input;
pub mod verify;

use crate::error::{Error, ProtocolError, Result};
use crate::fingerprint;
use crate::framed::{FrameReader, FrameWriter};
use crate::handshake::{self, Established};
use crate::keys::{Identity, PublicKey};
use crate::message::{MAX_BODY, Message};
use crate::signals::Interrupts;
use crate::transport::SendHalf;
use crate::trust::Allow;
use crate::ui::Ui;
use command::Command;
use input::{Input, InputEvent};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use verify::{PeerInfo, TrustConfig, TrustPolicy};

/// The welcome a listener sends unless told otherwise.
pub const DEFAULT_WELCOME: &str = "Welcome to schat! Type `quit` to leave.";

/// How long we keep reading after our QUIT, so that it reaches the peer before we close.
const LINGER: Duration = Duration::from_secs(2);

/// Messages waiting for the writer task.
const OUTGOING_QUEUE: usize = 32;

/// Which side of the connection we are.
#[derive(Debug, Clone)]
pub enum Role {
    /// We connected (Noise initiator) to `addr` (host:port as dialled); we expect a WELCOME
    /// first, and check the listener's key against known_peers under `policy`.
    Dialer { addr: String, policy: TrustPolicy },
    /// We accepted (Noise responder); we admit dialers per `allow` and send `welcome` first.
    Listener { welcome: String, allow: Allow },
}

/// Per-session settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// If set, the only peer key we accept.
    pub pin: Option<PublicKey>,
    /// Deadline for the whole handshake.
    pub handshake_timeout: Duration,
    /// Known peers.
    pub trust: TrustConfig,
}

/// How a session ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// We said QUIT (typed `quit`, Ctrl-D, or a signal).
    LocalQuit,
    /// The peer said QUIT.
    PeerQuit,
}

/// Runs the handshake on a connected stream, within the configured deadline.
/// `Ok(None)` means the user interrupted it.
pub async fn establish<R, W>(
    reader: R,
    writer: W,
    identity: &Identity,
    role: &Role,
    settings: &Settings,
    interrupts: &mut Interrupts,
) -> Result<Option<Established<R, W>>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (reader, writer) = (FrameReader::new(reader), FrameWriter::new(writer));
    let handshake = async {
        match role {
            Role::Dialer { .. } => handshake::initiate(identity, reader, writer).await,
            Role::Listener { .. } => handshake::respond(identity, reader, writer).await,
        }
    };
    let deadline = settings.handshake_timeout;
    tokio::select! {
        result = tokio::time::timeout(deadline, handshake) => match result {
            Ok(established) => established.map(Some),
            Err(_) => Err(Error::Timeout("the handshake", deadline.as_secs())),
        },
        _ = interrupts.recv() => Ok(None),
    }
}

/// Everything after the handshake: decide about the peer's key, welcome, chat.
pub async fn converse<R, W>(
    established: Established<R, W>,
    role: &Role,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (peer, local) = (established.peer, established.local);
    ui.status(format_args!(
        "secure session established; peer fingerprint: {}",
        fingerprint::grouped(&peer)
    ));
    let decision = match role {
        Role::Dialer { addr, policy } => {
            verify::dialled(
                peer,
                &local,
                addr,
                settings.pin.as_ref(),
                *policy,
                &settings.trust,
                input,
                ui,
            )
            .await
        }
        Role::Listener { allow, .. } => verify::admitted(
            peer,
            &local,
            settings.pin.as_ref(),
            allow,
            &settings.trust,
            ui,
        ),
    };
    let info = match decision {
        Ok(info) => info,
        Err(e) => {
            refuse(established, "your key was not accepted").await;
            return Err(e);
        }
    };
    ui.status(format_args!("peer: {}", info.trust_line()));
    ui.status(format_args!(
        "safety number: {} (/verify shows it again)",
        info.safety
    ));
    chat(established, role, &info, input, ui, interrupts).await
}

/// Says goodbye to a peer we will not talk to, without reading anything it sent.
async fn refuse<R, W>(established: Established<R, W>, reason: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Established {
        mut recv, mut send, ..
    } = established;
    if send.quit(reason).await.is_ok() {
        let _ = tokio::time::timeout(LINGER, recv.drain()).await;
    }
}

/// The full-duplex conversation.
async fn chat<R, W>(
    established: Established<R, W>,
    role: &Role,
    peer: &PeerInfo,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Established { mut recv, send, .. } = established;
    let label = &peer.label;
    let (queue, outgoing) = mpsc::channel::<Message<'static>>(OUTGOING_QUEUE);
    let mut writer = tokio::spawn(write_loop(send, outgoing));
    let mut awaiting_welcome = false;
    match role {
        Role::Listener { welcome, .. } => {
            let _ = queue.send(Message::Welcome(welcome.clone().into())).await;
        }
        Role::Dialer { .. } => awaiting_welcome = true,
    }
    // A line read from input but not yet accepted by the full queue. While one is pending we
    // stop reading input, but keep receiving, so neither side can deadlock the other.
    let mut pending: Option<String> = None;

    let outcome: Result<Option<String>> = loop {
        tokio::select! {
            received = recv.recv() => {
                let msg = match received {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break Err(Error::ConnectionCut),
                    Err(e) => break Err(e),
                };
                if awaiting_welcome {
                    match msg {
                        Message::Welcome(text) => {
                            ui.welcome(&text);
                            awaiting_welcome = false;
                            continue;
                        }
                        Message::Quit(reason) => {
                            break Err(Error::RefusedByPeer(crate::sanitize::line(&reason).into_owned()))
                        }
                        other => break Err(ProtocolError::Unexpected(other.name(), "before WELCOME").into()),
                    }
                }
                match msg {
                    Message::Text(text) => {
                        if let Err(e) = ui.message(label, &text) {
                            break Err(Error::io("writing to stdout", e));
                        }
                    }
                    Message::Quit(reason) => {
                        if reason.is_empty() {
                            ui.status("the peer left");
                        } else {
                            ui.status(format_args!("the peer left: {}", crate::sanitize::line(&reason)));
                        }
                        break Ok(None);
                    }
                    Message::Ping(body) => {
                        // If the queue is full the peer is not reading; a lost PONG costs nothing.
                        let _ = queue.try_send(Message::Pong(body.into_owned().into()));
                    }
                    Message::Pong(_) | Message::Extension { .. } => {}
                    Message::Welcome(_) => {
                        break Err(ProtocolError::Unexpected("WELCOME", "in the middle of the session").into())
                    }
                }
            }
            event = input.next(), if pending.is_none() => match event {
                InputEvent::Line(line) => match command::parse(&line) {
                    Command::Say(text) => pending = Some(text.to_owned()),
                    Command::Quit => break Ok(Some(String::new())),
                    Command::Verify => {
                        ui.status(format_args!("safety number with {}:", peer.label));
                        for row in peer.safety.lines() {
                            ui.status(format_args!("    {row}"));
                        }
                        ui.status("read it aloud with your peer: the same digits mean the same two keys");
                    }
                    Command::Help => ui.status(command::HELP),
                    Command::Unknown(word) => ui.warn(format_args!(
                        "unknown command /{word} (nothing sent; /help lists commands, //{word} sends it as text)"
                    )),
                },
                InputEvent::TooLong => ui.warn(format_args!(
                    "line not sent: longer than {MAX_BODY} bytes, the most one message can carry"
                )),
                InputEvent::NotUtf8 => ui.warn("line not sent: it is not valid UTF-8 text"),
                InputEvent::Eof => break Ok(Some(String::new())),
                InputEvent::Failed(e) => {
                    ui.error(format_args!("reading input failed: {e}"));
                    break Ok(Some(String::new()));
                }
            },
            permit = queue.reserve(), if pending.is_some() => match (permit, pending.take()) {
                (Ok(permit), Some(line)) => permit.send(Message::Text(line.into())),
                _ => break Err(writer_failure(&mut writer).await),
            },
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; leaving"));
                break Ok(Some(String::new()));
            }
            result = &mut writer => break Err(match result {
                Ok(Err(e)) => e,
                _ => Error::Internal("the sending task stopped".into()),
            }),
        }
    };

    match outcome {
        // The peer left: stop writing, close our side.
        Ok(None) => {
            drop(queue);
            let _ = writer.await;
            Ok(Ended::PeerQuit)
        }
        // We leave: QUIT goes out after everything already queued; then wait for the peer to
        // close, so the QUIT is not lost to a reset.
        Ok(Some(reason)) => {
            let _ = queue.send(Message::Quit(reason.into())).await;
            drop(queue);
            match writer.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Internal("the sending task failed".into())),
            }
            let _ = tokio::time::timeout(LINGER, recv.drain()).await;
            Ok(Ended::LocalQuit)
        }
        Err(e) => {
            writer.abort();
            Err(e)
        }
    }
}

async fn writer_failure(writer: &mut tokio::task::JoinHandle<Result<()>>) -> Error {
    match writer.await {
        Ok(Err(e)) => e,
        _ => Error::Internal("the sending task stopped".into()),
    }
}

/// Sends queued messages in order. Stops after a QUIT or when the queue closes, then closes our
/// direction of the stream.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut outgoing: mpsc::Receiver<Message<'static>>,
) -> Result<()> {
    while let Some(msg) = outgoing.recv().await {
        send.send(&msg).await?;
        if send.quit_sent() {
            break;
        }
    }
    send.close().await
}
