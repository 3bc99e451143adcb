//! A pipe whose connection dropped finds its peer again (PROTOCOL.md §4.12): the dialer dials
//! the same routes with backoff, the listener waits for the dialer's RESUME, each for the
//! grace period. Whoever else turns up is told `busy:` (by the listener's accept loop) or
//! `gone:` (a RESUME naming another session).

use crate::error::{Error, Result};
use crate::handshake::Established;
use crate::keys::PublicKey;
use crate::message::Message;
use crate::resume::{Backoff, same_token};
use crate::session::room::Arrival;
use crate::session::{GONE, Redial};
use crate::signals::Interrupts;
use crate::ui::Ui;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a pipe finds its peer again after a cut, if it can.
pub enum Comeback<'a, R, W> {
    /// It cannot: a cut ends it (`--no-reconnect`, or nothing to dial again).
    Never,
    /// A dialer: dial again.
    Dial(&'a mut dyn Redial<R, W>),
    /// A listener: the connections whose first message was RESUME, from the accept loop.
    Await(mpsc::Receiver<Box<Arrival<R, W>>>),
}

impl<R, W> Comeback<'_, R, W> {
    /// Whether a cut can be survived (so we offer to resume).
    pub fn possible(&self) -> bool {
        !matches!(self, Comeback::Never)
    }
}

/// A connection that takes the session back, and for a listener the dialer's count (where
/// our sending starts again; a dialer learns the listener's from RESUMED).
pub(super) struct Back<R, W> {
    pub established: Established<R, W>,
    pub peer_count: Option<u64>,
    /// The peer's first message, if it was read before (only on a first connection).
    pub first: Option<Message<'static>>,
}

/// Dials again until a connection proves `key`, within `grace` of the cut.
pub(super) async fn dial_again<R, W>(
    redial: &mut dyn Redial<R, W>,
    key: &PublicKey,
    grace: Duration,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Back<R, W>> {
    let give_up = Instant::now() + grace;
    let mut backoff = Backoff::default();
    let expired = || Error::Network(format!("could not reconnect within {} s", grace.as_secs()));
    for attempt in 1u32.. {
        let at = Instant::now() + backoff.next(rand::random::<f64>());
        if at >= give_up {
            return Err(expired());
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            name = interrupts.recv() => return Err(Error::Interrupted(name)),
        }
        let outcome = tokio::select! {
            outcome = tokio::time::timeout_at(give_up, redial.redial(key)) => outcome,
            name = interrupts.recv() => return Err(Error::Interrupted(name)),
        };
        match outcome {
            Ok(Ok(established)) => {
                return Ok(Back {
                    established,
                    peer_count: None,
                    first: None,
                });
            }
            // Another key answered, or the listener refused us: no point in trying again.
            Ok(Err(e @ (Error::PeerRefused(_) | Error::RefusedByPeer(_)))) => return Err(e),
            Ok(Err(e)) => {
                if attempt.is_power_of_two() {
                    ui.status(format_args!("still reconnecting ({e})"));
                }
            }
            Err(_) => return Err(expired()),
        }
    }
    Err(expired())
}

/// Waits, until `until`, for the dialer of session `token` (key `key`) to come back; any
/// other RESUME is told `gone:`.
pub(super) async fn await_return<R, W>(
    arrivals: &mut mpsc::Receiver<Box<Arrival<R, W>>>,
    token: &[u8; 32],
    key: &PublicKey,
    until: Instant,
    interrupts: &mut Interrupts,
) -> Result<Back<R, W>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let arrival = tokio::select! {
            arrival = arrivals.recv() => arrival,
            () = tokio::time::sleep_until(until) => None,
            name = interrupts.recv() => return Err(Error::Interrupted(name)),
        };
        let Some(arrival) = arrival else {
            return Err(Error::Network(
                "the peer did not come back within the grace period".into(),
            ));
        };
        match takes_back(arrival, token, key) {
            Ok(mut back) => {
                // A dialer that tried again since waits on the newest connection.
                while let Ok(newer) = arrivals.try_recv() {
                    match takes_back(newer, token, key) {
                        Ok(newer) => refuse(std::mem::replace(&mut back, newer).established),
                        Err(other) => refuse(other.established),
                    }
                }
                return Ok(back);
            }
            Err(other) => refuse(other.established),
        }
    }
}

/// The connection, if it names session `token` and proves its key `key`; else it is handed
/// back, to be told `gone:`.
pub(super) fn takes_back<R, W>(
    arrival: Box<Arrival<R, W>>,
    token: &[u8; 32],
    key: &PublicKey,
) -> std::result::Result<Back<R, W>, Box<Arrival<R, W>>> {
    match arrival.first {
        Some(Message::Resume {
            token: ref theirs,
            shown,
        }) if same_token(theirs, token) && arrival.established.peer == *key => Ok(Back {
            established: arrival.established,
            peer_count: Some(shown),
            first: None,
        }),
        _ => Err(arrival),
    }
}

/// Tells a connection that the session it names is not here (in the background).
pub(super) fn refuse<R, W>(established: Established<R, W>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(crate::session::refuse(established, GONE));
}
