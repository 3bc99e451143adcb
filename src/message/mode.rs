//! The mode a side announces in its HELLO (PROTOCOL.md §4.0).

/// What a session carries, announced in HELLO so that a chat and a pipe never talk past each
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Chat (and rooms): TEXT, RELAY, NOTICE.
    Chat,
    /// Pipe mode: DATA, then END, and RECEIVED for the peer's stream (§4.3).
    Pipe,
    /// The first pipe mode (`0x01`), whose QUIT was its half-close and which had no receipt:
    /// recognised only to tell its user to upgrade (one protocol, no weaker fallback).
    OldPipe,
}

impl Mode {
    /// The body byte.
    pub fn byte(self) -> u8 {
        match self {
            Mode::Chat => 0x00,
            Mode::OldPipe => 0x01,
            Mode::Pipe => 0x02,
        }
    }

    /// How the user picks it.
    pub fn option(self) -> &'static str {
        match self {
            Mode::Chat => "chat mode (without --pipe)",
            Mode::Pipe => "pipe mode (--pipe)",
            Mode::OldPipe => {
                "the pipe mode of an older schat, without end-to-end receipts: it needs \
                 upgrading"
            }
        }
    }
}
