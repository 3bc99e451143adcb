//! One connection of a pipe: the opening we send (RESUME and RESUMABLE first when they are
//! due, PROTOCOL.md §4.12), then whichever engine fits the stream, until it ends; and, at a
//! listener, watching for the dialer to come back on another connection meanwhile.

use super::comeback::{self, Back};
use super::{Counters, Opened, tasks, threads};
use crate::error::{ProtocolError, Result};
use crate::framed::Detach;
use crate::handshake::Established;
use crate::message::{Message, Mode};
use crate::signals::Interrupts;
use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// One connection of a pipe: the opening we send, then the engine until it ends.
pub(super) struct Connection<'a> {
    pub counters: &'a Arc<Counters>,
    /// The session's token, from its first handshake (PROTOCOL.md §4.11).
    pub token: &'a zeroize::Zeroizing<[u8; 32]>,
    pub resumed_within: Duration,
    pub listener: bool,
    /// Not the session's first connection: the dialer names the session (RESUME), the listener
    /// answers RESUMED in WELCOME's place.
    pub resumed: bool,
    pub keepalive: Duration,
}

impl Connection<'_> {
    pub async fn run<R, W>(
        &self,
        back: Back<R, W>,
        carried: &mut tasks::Carried,
        interrupts: &mut Interrupts,
        cut: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Result<()>
    where
        R: AsyncRead + Unpin + Detach,
        W: AsyncWrite + Unpin + Detach,
    {
        let counters = self.counters;
        let Back {
            established,
            peer_count,
            first,
        } = back;
        let Established { recv, mut send, .. } = established;
        counters.new_connection(peer_count);
        let link = &counters.link;
        if self.resumed && !self.listener {
            // The session's name, and how much of the listener's stream we took.
            send.send(&Message::Resume {
                token: self.token.clone(),
                shown: counters.received.load(Ordering::SeqCst),
            })
            .await?;
        }
        // Our offer to resume comes before our HELLO (§4.12), so that a listener knows when
        // its pipe opens whether to keep what it sends.
        if link.offer {
            send.send(&Message::Resumable).await?;
        }
        // Our HELLO (a dialer gets here only once it has accepted the listener's key).
        send.send(&Message::hello(Mode::Pipe, "")).await?;
        if self.listener {
            send.send(&match self.resumed {
                true => Message::Resumed(counters.received.load(Ordering::SeqCst)),
                false => Message::Welcome("schat pipe".into()),
            })
            .await?;
        }
        let dialer = !self.listener;
        let mut opening = Opened::new(dialer, self.resumed, self.resumed_within);
        // A listener's admission may have read the dialer's first message: the opening takes
        // it first. (Before HELLO nothing else may come; a RESUME went elsewhere.)
        if let Some(first) = first {
            // (A PING this early goes unanswered: the keepalive only needs it to arrive.)
            match opening.accept(first, link)?.0 {
                None
                | Some(
                    Message::Resumable
                    | Message::Hello { .. }
                    | Message::Ping(_)
                    | Message::Pong(_)
                    | Message::Rekey
                    | Message::Extension { .. }
                    | Message::Pairs(_),
                ) => {}
                Some(other) => {
                    return Err(ProtocolError::Unexpected(other.name(), "before its HELLO").into());
                }
            }
        }
        let cut = async {
            match cut {
                Some(cut) => drop(cut.await),
                None => std::future::pending().await,
            }
        };
        // Not when stdin is a terminal: there, another thread may be reading the terminal
        // (for a key question), so a read the poll said was ready could block and hold up our
        // PINGs and PONGs; and typing is no bulk transfer. (Nor once the async engine has run
        // on an earlier connection: its helper threads hold what stdin gave and what stdout
        // has yet to write.)
        if recv.get_ref().detachable()
            && send.get_ref().detachable()
            && !io::stdin().is_terminal()
            && !carried.started()
        {
            let counters = counters.clone();
            threads::transfer(
                recv,
                send,
                opening,
                self.keepalive,
                counters,
                interrupts,
                cut,
            )
            .await
        } else {
            let keepalive = self.keepalive;
            tasks::transfer(
                recv, send, opening, keepalive, counters, carried, interrupts, cut,
            )
            .await
        }
    }

    /// A listener's connection, while watching for the dialer to come back on another one
    /// (it noticed the cut before we did): the old connection is then closed, and the new one
    /// handed back with the result.
    pub async fn run_watching<R, W>(
        &self,
        back: Back<R, W>,
        carried: &mut tasks::Carried,
        interrupts: &mut Interrupts,
        arrivals: &mut tokio::sync::mpsc::Receiver<Box<crate::session::room::Arrival<R, W>>>,
        token: &[u8; 32],
    ) -> (Result<()>, Option<Back<R, W>>)
    where
        R: AsyncRead + Unpin + Detach + Send + 'static,
        W: AsyncWrite + Unpin + Detach + Send + 'static,
    {
        let key = back.established.peer;
        let (cut_tx, cut_rx) = tokio::sync::oneshot::channel();
        let running = self.run(back, carried, interrupts, Some(cut_rx));
        tokio::pin!(running);
        let mut cut_tx = Some(cut_tx);
        let mut taken_back: Option<Back<R, W>> = None;
        loop {
            tokio::select! {
                result = &mut running => return (result, taken_back),
                // (Also while the old connection winds down: a dialer that tried again since
                // is on the newer connection, and the older one is told `gone:`.)
                Some(arrival) = arrivals.recv() => {
                    match comeback::takes_back(arrival, token, &key) {
                        Ok(back) if self.counters.resumable() => {
                            if let Some(older) = taken_back.replace(back) {
                                comeback::refuse(older.established);
                            }
                            if let Some(cut) = cut_tx.take() {
                                let _ = cut.send(());
                            }
                        }
                        Ok(back) => comeback::refuse(back.established),
                        Err(other) => comeback::refuse(other.established),
                    }
                }
            }
        }
    }
}
