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
    /// The peer's HELLO; a dialer then waits for the listener's WELCOME (or, resuming, its
    /// RESUMED). `early`: a RESUMABLE came first, as a pipe sends it (§4.12); from a chat
    /// peer that is an error, told once its HELLO says which mode it runs.
    Hello { then: Then, early: bool },
    /// The listener's WELCOME, or on a resumed connection its RESUMED.
    Welcome { resumed: bool },
    /// Both seen: the session is open.
    Open,
}

/// What comes after the peer's HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Nothing: a listener's session opens with the dialer's HELLO.
    Open,
    /// A dialer's first connection: the listener's WELCOME.
    Welcome,
    /// A dialer's resumed connection: the listener's RESUMED, in WELCOME's place (§4.10).
    Resumed,
}

impl Opening {
    /// Where a session starts: a dialer expects HELLO then WELCOME, a listener HELLO.
    pub fn new(dialer: bool) -> Self {
        Opening::Hello {
            then: if dialer { Then::Welcome } else { Then::Open },
            early: false,
        }
    }

    /// Where a dialer's resumed connection starts: HELLO, then RESUMED.
    pub fn resumed() -> Self {
        Opening::Hello {
            then: Then::Resumed,
            early: false,
        }
    }

    /// Whether everything the opening needs has arrived.
    pub fn is_open(self) -> bool {
        self == Opening::Open
    }

    /// Whether the peer's HELLO has arrived.
    pub fn hello_seen(self) -> bool {
        !matches!(self, Opening::Hello { .. })
    }

    /// Takes `msg` if it belongs to the opening (`Ok(None)`); otherwise hands it back for the
    /// session. The HELLO (for its name) and the WELCOME (to show) are handed back once each,
    /// in their place, and so is a RESUMED; so are RECEIPTS and RESUMABLE (after HELLO), and a
    /// dialer's RESUME or INVITE (before it). `ours` is our mode.
    pub fn accept<'a>(&mut self, msg: Message<'a>, ours: Mode) -> Result<Option<Message<'a>>> {
        if matches!(
            msg,
            Message::Ping(_)
                | Message::Pong(_)
                | Message::Rekey
                | Message::Extension { .. }
                | Message::Pairs(_)
        ) {
            return Ok(Some(msg));
        }
        match (*self, msg) {
            (Opening::Hello { then, early }, msg @ Message::Hello { .. }) => {
                if let Message::Hello { mode, .. } = msg
                    && mode != ours
                {
                    return Err(mismatch(mode));
                }
                if early && ours != Mode::Pipe {
                    return Err(ProtocolError::Unexpected("RESUMABLE", "before its HELLO").into());
                }
                *self = match then {
                    Then::Open => Opening::Open,
                    Then::Welcome => Opening::Welcome { resumed: false },
                    Then::Resumed => Opening::Welcome { resumed: true },
                };
                Ok(Some(msg))
            }
            // A dialer admitted by its key may still present an invite (PROTOCOL.md §4.7), and
            // a dialer resuming names its session first (§4.11): handed back, for the listener.
            (
                Opening::Hello {
                    then: Then::Open, ..
                },
                msg @ (Message::Invite(_) | Message::Resume { .. }),
            ) => Ok(Some(msg)),
            // A pipe offers to resume right before its HELLO (§4.12), once; a chat after it.
            // (A chat side hears a pipe's early offer out: the HELLO then says "pipe".)
            (Opening::Hello { then, early: false }, msg @ Message::Resumable) => {
                *self = Opening::Hello { then, early: true };
                Ok((ours == Mode::Pipe).then_some(msg))
            }
            (_, Message::Resumable) if ours == Mode::Pipe => Err(ProtocolError::Unexpected(
                "RESUMABLE",
                "after its HELLO or twice, in a pipe",
            )
            .into()),
            // Offered right after HELLO (§4.10, §4.11), so before WELCOME.
            (Opening::Hello { .. }, Message::Receipts | Message::Resumable | Message::Files) => {
                Err(
                    ProtocolError::Unexpected("RECEIPTS, RESUMABLE or FILES", "before its HELLO")
                        .into(),
                )
            }
            (_, msg @ (Message::Receipts | Message::Resumable | Message::Files)) => Ok(Some(msg)),
            (Opening::Welcome { resumed: false }, msg @ Message::Welcome(_))
            | (Opening::Welcome { resumed: true }, msg @ Message::Resumed(_)) => {
                *self = Opening::Open;
                Ok(Some(msg))
            }
            // A QUIT before the session opened: we were turned away (or, resuming, the
            // session is gone).
            (Opening::Hello { .. } | Opening::Welcome { .. }, Message::Quit(reason)) => {
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
            (Opening::Welcome { resumed: false }, other) => {
                Err(ProtocolError::Unexpected(other.name(), "before WELCOME").into())
            }
            (Opening::Welcome { resumed: true }, other) => Err(ProtocolError::Unexpected(
                other.name(),
                "before RESUMED, on a resumed connection",
            )
            .into()),
            (Opening::Open, Message::Hello { .. } | Message::Welcome(_)) => {
                Err(ProtocolError::Unexpected("a second HELLO or WELCOME", "in the session").into())
            }
            (Opening::Open, Message::Resume { .. } | Message::Resumed(_)) => Err(
                ProtocolError::Unexpected("RESUME or RESUMED", "in the middle of a session").into(),
            ),
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
        assert_eq!(o, Opening::Welcome { resumed: false });
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
    fn a_resumed_connection_opens_with_resumed_in_welcome_s_place() {
        let mut o = Opening::resumed();
        o.accept(Message::Resumable, Mode::Chat).unwrap();
        assert!(
            o.accept(Message::hello(Mode::Chat, ""), Mode::Chat)
                .is_err(),
            "RESUMABLE before a chat's HELLO"
        );
        let mut o = Opening::resumed();
        assert!(
            o.accept(Message::Receipts, Mode::Chat).is_err(),
            "before HELLO"
        );
        let mut o = Opening::resumed();
        o.accept(Message::hello(Mode::Chat, ""), Mode::Chat)
            .unwrap();
        assert!(matches!(
            o.accept(Message::Resumable, Mode::Chat),
            Ok(Some(Message::Resumable))
        ));
        assert!(
            { o }
                .accept(Message::Welcome("hi".into()), Mode::Chat)
                .is_err(),
            "a WELCOME where RESUMED belongs"
        );
        assert!(matches!(
            o.accept(Message::Resumed(3), Mode::Chat),
            Ok(Some(Message::Resumed(3)))
        ));
        assert!(o.is_open());
        assert!(o.accept(Message::Resumed(3), Mode::Chat).is_err());
        // A first connection never takes a RESUMED.
        let mut o = Opening::new(true);
        o.accept(Message::hello(Mode::Chat, ""), Mode::Chat)
            .unwrap();
        assert!(o.accept(Message::Resumed(0), Mode::Chat).is_err());
    }

    #[test]
    fn a_listener_takes_a_resume_before_hello_and_not_after() {
        let resume = || Message::Resume {
            token: zeroize::Zeroizing::new([7; 32]),
            shown: 2,
        };
        let mut o = Opening::new(false);
        assert!(matches!(
            o.accept(resume(), Mode::Chat),
            Ok(Some(Message::Resume { shown: 2, .. }))
        ));
        o.accept(Message::hello(Mode::Chat, ""), Mode::Chat)
            .unwrap();
        assert!(o.accept(resume(), Mode::Chat).is_err());
        // A dialer never takes one.
        assert!(Opening::new(true).accept(resume(), Mode::Chat).is_err());
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

    #[test]
    fn a_pipe_offers_to_resume_before_its_hello_once() {
        let mut o = Opening::new(false);
        assert!(matches!(
            o.accept(Message::Resumable, Mode::Pipe),
            Ok(Some(Message::Resumable))
        ));
        assert!(
            { o }.accept(Message::Resumable, Mode::Pipe).is_err(),
            "twice"
        );
        o.accept(Message::hello(Mode::Pipe, ""), Mode::Pipe)
            .unwrap();
        assert!(
            o.accept(Message::Resumable, Mode::Pipe).is_err(),
            "after HELLO"
        );
        // A chat side meeting a pipe is told the modes differ, not about the offer.
        let mut o = Opening::new(true);
        o.accept(Message::Resumable, Mode::Chat).unwrap();
        assert!(matches!(
            o.accept(Message::hello(Mode::Pipe, ""), Mode::Chat),
            Err(Error::ModeMismatch(_))
        ));
    }
}
