//! The first messages of a session, after the handshake and the key decisions: each side's
//! HELLO announces its mode (chat or pipe), and the listener's WELCOME follows its HELLO.
//!
//! ```text
//!  listener                                  dialer
//!     HELLO(mode, name) ──▶                   (decides about the listener's key)
//!                               ◀── HELLO(mode, name)   its "ready"
//!     WELCOME(text) ──▶                                 a room sends it now, as the dialer
//!                                                       joins (a pipe may send it at once)
//! ```
//!
//! A side refusing the other sends QUIT (`refused:`…, `busy:`…) instead of HELLO or WELCOME;
//! a HELLO of the other mode ends the session at once on both sides. PING, PONG and REKEY may
//! come at any time. Pure: it only looks at messages (PROTOCOL.md §4).

use crate::error::{Error, ProtocolError, Result};
use crate::message::{Message, Mode};

/// What we still expect from the peer before the session is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The peer's HELLO; a dialer then waits for the listener's WELCOME.
    Hello { then_welcome: bool },
    /// The listener's WELCOME.
    Welcome,
    /// Both seen: the session is open.
    Open,
}

impl Opening {
    /// Where a session starts: a dialer expects HELLO then WELCOME, a listener HELLO.
    pub fn new(dialer: bool) -> Self {
        Opening::Hello {
            then_welcome: dialer,
        }
    }

    /// Whether everything the opening needs has arrived.
    pub fn is_open(self) -> bool {
        self == Opening::Open
    }

    /// Takes `msg` if it belongs to the opening (`Ok(None)`); otherwise hands it back for the
    /// session. The HELLO (for its name) and the WELCOME (to show) are handed back once each,
    /// in their place. `ours` is our mode.
    pub fn accept<'a>(&mut self, msg: Message<'a>, ours: Mode) -> Result<Option<Message<'a>>> {
        if matches!(
            msg,
            Message::Ping(_) | Message::Pong(_) | Message::Rekey | Message::Extension { .. }
        ) {
            return Ok(Some(msg));
        }
        match (*self, msg) {
            (Opening::Hello { then_welcome }, msg @ Message::Hello { .. }) => {
                if let Message::Hello { mode, .. } = msg
                    && mode != ours
                {
                    return Err(mismatch(mode));
                }
                *self = if then_welcome {
                    Opening::Welcome
                } else {
                    Opening::Open
                };
                Ok(Some(msg))
            }
            // A dialer admitted by its key may still present an invite (PROTOCOL.md §4.7):
            // handed back, for the listener to ignore.
            (
                Opening::Hello {
                    then_welcome: false,
                },
                msg @ Message::Invite(_),
            ) => Ok(Some(msg)),
            // Receipts are offered right after HELLO (PROTOCOL.md §4.10), so before WELCOME.
            (Opening::Hello { .. }, Message::Receipts) => {
                Err(ProtocolError::Unexpected("RECEIPTS", "before its HELLO").into())
            }
            (Opening::Welcome, msg @ Message::Receipts) => Ok(Some(msg)),
            (Opening::Welcome, msg @ Message::Welcome(_)) => {
                *self = Opening::Open;
                Ok(Some(msg))
            }
            // A QUIT before the session opened: we were turned away.
            (Opening::Hello { .. } | Opening::Welcome, Message::Quit(reason)) => {
                let reason = match reason.as_ref() {
                    "" => "it said goodbye before the session started",
                    r => r,
                };
                Err(Error::RefusedByPeer(
                    crate::sanitize::line(reason).into_owned(),
                ))
            }
            (Opening::Hello { .. }, other) => {
                Err(ProtocolError::Unexpected(other.name(), "before its HELLO").into())
            }
            (Opening::Welcome, other) => {
                Err(ProtocolError::Unexpected(other.name(), "before WELCOME").into())
            }
            (Opening::Open, Message::Hello { .. } | Message::Welcome(_)) => {
                Err(ProtocolError::Unexpected("a second HELLO or WELCOME", "in the session").into())
            }
            (Opening::Open, msg) => Ok(Some(msg)),
        }
    }
}

/// The peer runs the other mode: say which, and what to do.
pub fn mismatch(theirs: Mode) -> Error {
    match theirs {
        Mode::OldPipe => Error::ModeMismatch(format!(
            "the peer runs {} (this schat confirms every pipe end to end, PROTOCOL.md §4.3)",
            theirs.option()
        )),
        _ => Error::ModeMismatch(format!(
            "the peer is in {}; run the same mode on both sides",
            theirs.option()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialer_wants_hello_then_welcome() {
        let mut o = Opening::new(true);
        assert!(matches!(
            o.accept(Message::Ping(b"".as_slice().into()), Mode::Chat),
            Ok(Some(_))
        ));
        assert!(matches!(
            o.accept(Message::hello(Mode::Chat, "carol"), Mode::Chat),
            Ok(Some(Message::Hello { name, .. })) if name == "carol"
        ));
        assert_eq!(o, Opening::Welcome);
        assert!(matches!(
            o.accept(Message::Welcome("hi".into()), Mode::Chat),
            Ok(Some(Message::Welcome(_)))
        ));
        assert!(o.is_open());
        assert!(
            o.accept(Message::hello(Mode::Chat, ""), Mode::Chat)
                .is_err()
        );
    }

    #[test]
    fn receipts_are_offered_after_hello_and_before_welcome() {
        let mut o = Opening::new(true);
        assert!(matches!(
            o.accept(Message::Receipts, Mode::Chat),
            Err(Error::Protocol(ProtocolError::Unexpected("RECEIPTS", _)))
        ));
        let mut o = Opening::new(true);
        o.accept(Message::hello(Mode::Chat, ""), Mode::Chat)
            .unwrap();
        assert!(matches!(
            o.accept(Message::Receipts, Mode::Chat),
            Ok(Some(Message::Receipts))
        ));
        assert_eq!(o, Opening::Welcome, "still waiting for WELCOME");
    }

    #[test]
    fn a_listener_wants_only_hello_and_nothing_before_it() {
        let mut o = Opening::new(false);
        assert!(matches!(
            o.accept(Message::Text("early".into()), Mode::Chat),
            Err(Error::Protocol(ProtocolError::Unexpected("TEXT", _)))
        ));
        let mut o = Opening::new(false);
        assert!(matches!(
            o.accept(Message::hello(Mode::Pipe, ""), Mode::Pipe),
            Ok(Some(Message::Hello { .. }))
        ));
        assert!(o.is_open());
    }

    #[test]
    fn the_other_mode_and_an_early_quit_end_it() {
        let mut o = Opening::new(true);
        assert!(matches!(
            o.accept(Message::hello(Mode::Pipe, ""), Mode::Chat),
            Err(Error::ModeMismatch(m)) if m.contains("--pipe")
        ));
        let mut o = Opening::new(true);
        assert!(matches!(
            o.accept(Message::Quit("busy: the room is full".into()), Mode::Chat),
            Err(Error::RefusedByPeer(r)) if r.contains("full")
        ));
    }
}
