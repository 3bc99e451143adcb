//! What `listen` and `dial` share: the session's options, the front end (line editor, plain
//! lines or JSON), signals, and durations.

use super::paths::Paths;
use crate::error::{Error, Result};
use crate::session::Settings;
use crate::session::input::Input;
use crate::session::pipe::PipeOptions;
use crate::signals::Interrupts;
use crate::ui::{self, Ui};
use std::io::IsTerminal;
use std::time::Duration;

/// Options shared by `listen` and `dial`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Session options")]
pub struct SessionArgs {
    /// Only this peer: a fingerprint or a petname
    ///
    /// The fingerprint has 64 hex digits (spaces and colons allowed). A matching pin connects
    /// whatever known_peers says; any other key is refused right after the handshake (exit 3)
    #[arg(long, value_name = "KEY")]
    pub peer: Option<String>,
    /// Move raw bytes (stdin, stdout) instead of chat
    ///
    /// stdin's bytes go to the peer and the peer's bytes to stdout, raw; end of input means
    /// "finished sending", and each side exits 0 only once the other confirmed writing
    /// everything out. A listener then serves one session (as with --once)
    #[arg(long, conflicts_with = "json")]
    pub pipe: bool,
    /// One JSON object per event on stdout
    ///
    /// Events: connected, welcome, message, joined, left, renamed, roster, notice, ticket,
    /// file_offered, file_progress, file_done, file_failed, error…
    #[arg(long)]
    pub json: bool,
    /// A display name to announce: others see it beside your key, as `NAME [3f2a9c1b4d5e]`
    /// (their own petname for you wins). Letters, digits, single spaces and - _ . ', at
    /// most 32 characters; /nick changes it during a chat
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "pipe",
        hide_short_help = true
    )]
    pub name: Option<String>,
    /// Seconds allowed for the handshake (and, when dialling, for connecting); 1 to 86400
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = seconds_option(),
        hide_short_help = true
    )]
    pub timeout: u64,
    /// Seconds of silence before we PING the peer; after three times as long with nothing
    /// received, the peer is declared gone; 1 to 86400
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = seconds_option(),
        hide_short_help = true
    )]
    pub keepalive: u64,
    /// Seconds a dropped chat or pipe is kept to resume: a dialer dials again for this long, a
    /// listener keeps the member's place (or the pipe); 1 to 86400
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 600,
        value_parser = seconds_option(),
        hide_short_help = true
    )]
    pub resume_grace: u64,
    /// A dropped chat or pipe ends at once (exit 1), as before resuming existed: no dialling
    /// again, no place kept
    #[arg(long, hide_short_help = true)]
    pub no_reconnect: bool,
    /// Save files offered to us here without asking (up to 64 GiB a session): for scripts
    ///
    /// Without it, each offer waits for /accept (or /reject). Names from the peer are checked:
    /// never outside DIR, no overwriting (a taken name becomes `name (1).ext`). A dialer with
    /// it does not leave at the end of its input, but when the peer leaves: `dial HOST
    /// --accept-files DIR </dev/null` receives what HOST sends (`listen --send`), then exits
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "pipe",
        hide_short_help = true
    )]
    pub accept_files: Option<std::path::PathBuf>,
    /// Where accepted files go [default: your Downloads folder]
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["pipe", "accept_files"],
        hide_short_help = true
    )]
    pub download_dir: Option<std::path::PathBuf>,
    /// Offer these files or folders as soon as the chat opens, then leave once each is
    /// delivered (exit 0) or has failed (exit 1); repeat for more
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "pipe",
        hide_short_help = true
    )]
    pub send: Vec<std::path::PathBuf>,
    /// With --pipe: no progress line and no summary on stderr
    #[arg(long, requires = "pipe", hide_short_help = true)]
    pub quiet: bool,
    /// With --pipe: how many bytes stdin will give, for the progress line's percentage and
    /// time left (found by itself when stdin is a regular file)
    #[arg(long, value_name = "BYTES", requires = "pipe", hide_short_help = true)]
    pub size: Option<u64>,
}

impl SessionArgs {
    pub(super) fn settings(&self, paths: &Paths) -> Result<Settings> {
        Ok(Settings {
            pin: paths.resolve_peer(self.peer.as_deref())?,
            handshake_timeout: seconds(self.timeout, "--timeout")?,
            trust: paths.trust_config(),
            keepalive: seconds(self.keepalive, "--keepalive")?,
            resume_grace: match self.no_reconnect {
                true => None,
                false => Some(seconds(self.resume_grace, "--resume-grace")?),
            },
            pipe: self.pipe.then_some(PipeOptions {
                quiet: self.quiet,
                size: self.size,
            }),
            ticket: None,
            code: None,
            petname: None,
            files: crate::files::Policy {
                dir: (self.accept_files.clone())
                    .or_else(|| self.download_dir.clone())
                    .or_else(crate::files::default_download_dir),
                auto: self.accept_files.is_some(),
            },
            send: self.send.clone(),
            name: match &self.name {
                Some(name) => {
                    crate::session::names::check_name(name)
                        .map_err(|why| Error::Usage(format!("--name {name:?}: {why}")))?;
                    name.clone()
                }
                None => String::new(),
            },
        })
    }
}

/// Chooses how a session talks to the user: JSON, the line editor on a terminal, or plain
/// lines; in pipe mode stdin and stdout carry data and questions go to the terminal.
pub(super) fn front_end(json: bool, pipe: bool) -> (Ui, Input) {
    if pipe {
        return (Ui::plain(), Input::tty().unwrap_or_else(Input::none));
    }
    if json {
        return (Ui::json(), Input::stdin());
    }
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        match Input::editor() {
            Ok((input, writer)) => return (Ui::interactive(writer, ui::color_wanted()), input),
            Err(e) => Ui::plain().warn(format_args!(
                "cannot use the terminal's line editor ({e}); reading plain lines"
            )),
        }
    }
    (Ui::plain(), Input::stdin())
}

/// The longest any duration option may be: a day. Longer is a typo, and deadlines computed
/// from it (three keepalives, an instant plus a timeout) must never overflow.
pub const MAX_SECONDS: u64 = 86_400;

/// Parses a duration option in seconds, 1 to [`MAX_SECONDS`] (anything else is a usage error).
pub(super) fn seconds_option() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(1..=MAX_SECONDS)
}

pub(super) fn seconds(secs: u64, option: &str) -> Result<Duration> {
    if !(1..=MAX_SECONDS).contains(&secs) {
        return Err(Error::Usage(format!(
            "{option} must be 1 to {MAX_SECONDS} seconds"
        )));
    }
    Ok(Duration::from_secs(secs))
}

pub(super) fn install_interrupts() -> Result<Interrupts> {
    Interrupts::install().map_err(|e| Error::io("installing signal handlers", e))
}
