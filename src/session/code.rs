//! The dialer's side of a spoken code (PROTOCOL.md §4.8): right after the handshake, before
//! HELLO, prove the code in a PAKE bound to this session and check the listener proves it too.
//! Only then is the listener's key remembered, as verified by code.

use crate::error::{Error, Result};
use crate::handshake::Established;
use crate::invite::code::{CONFIRM_LEN, Code, Exchange, PAKE_LEN, Side};
use crate::message::Message;
use crate::ui::Ui;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Runs the exchange; `Err` (after a loud warning when the code did not match) ends the session.
pub async fn prove<R, W>(
    established: &mut Established<R, W>,
    code: &Code,
    deadline: Duration,
    ui: &Ui,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (exchange, ours) = Exchange::start(code, &established.handshake_hash, Side::Dialer);
    let mut message = [0u8; PAKE_LEN];
    message.copy_from_slice(&ours);
    established
        .send
        .send(&Message::Pake {
            nameplate: Some(code.nameplate),
            message,
        })
        .await?;
    let theirs = match next(established, deadline).await? {
        Message::Pake {
            nameplate: None,
            message,
        } => message,
        // It let us in without the code (it knows us, or admits anyone): its key is not
        // verified by the code, so we stop.
        Message::Hello { .. } => {
            return Err(Error::PeerRefused(
                "the listener let you in without running the code exchange (no such code \
                 pending there?): its key is not verified; nothing was sent"
                    .into(),
            ));
        }
        other => return Err(unexpected(other)),
    };
    let Some(confirmations) = exchange.finish(&theirs) else {
        return Err(Error::PeerRefused(
            "the listener's PAKE message is malformed".into(),
        ));
    };
    established
        .send
        .send(&Message::Confirm(confirmations.ours))
        .await?;
    match next(established, deadline).await {
        Ok(Message::Confirm(mac)) if confirmations.check(&mac) => Ok(()),
        Ok(Message::Confirm(_)) => {
            alarm(ui);
            Err(Error::PeerRefused(
                "the listener did not prove the code: not verified, nothing sent".into(),
            ))
        }
        Err(Error::RefusedByPeer(why)) => {
            if why.contains("WRONG CODE") {
                alarm(ui);
            }
            Err(Error::RefusedByPeer(why))
        }
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    }
}

/// The next message, within `deadline`; a QUIT is the listener turning us away.
async fn next<R, W>(
    established: &mut Established<R, W>,
    deadline: Duration,
) -> Result<Message<'static>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let by = tokio::time::Instant::now() + deadline;
    loop {
        return match tokio::time::timeout_at(by, established.recv.recv()).await {
            Err(_) => Err(Error::Timeout("the code exchange", deadline.as_secs())),
            Ok(Err(e)) => Err(e),
            Ok(Ok(None)) => Err(Error::ConnectionCut),
            Ok(Ok(Some(Message::Quit(reason)))) => Err(Error::RefusedByPeer(
                crate::sanitize::line(&reason).into_owned(),
            )),
            // Extensions may come at any time (a host's PAIRS before its HELLO, §4.14).
            Ok(Ok(Some(Message::Pairs(_) | Message::Extension { .. }))) => continue,
            Ok(Ok(Some(msg))) => Ok(msg.into_owned()),
        };
    }
}

fn unexpected(msg: Message<'_>) -> Error {
    crate::error::ProtocolError::Unexpected(msg.name(), "during the code exchange").into()
}

fn alarm(ui: &Ui) {
    ui.alarm(&[
        "!! THE CODE DID NOT MATCH.",
        "!! Either it was mistyped, or someone is between you and your peer.",
        "!! Nothing was sent. Check the code with your peer (it is burned after 3 tries).",
    ]);
}

/// Bytes a spoken code adds to the session's opening: our PAKE message (with the nameplate)
/// and confirmation, theirs, each framed and sealed (2 + 1 + body + 16 bytes).
pub const ADDED_BYTES: usize =
    (2 + 1 + PAKE_LEN + 2 + 16) + (2 + 1 + PAKE_LEN + 16) + 2 * (2 + 1 + CONFIRM_LEN + 16);
