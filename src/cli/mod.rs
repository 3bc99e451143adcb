//! The command line: argument definitions (clap) and what each command does, a file per
//! command: `listen`, `dial`, `keys` (keygen, passwd, fingerprint), `peers`, `invite`,
//! `p2p` (relay, and the iroh options); `session` has what listen and dial share, `paths`
//! where the files are, `prompt` answers typed at the terminal. This file parses and
//! dispatches.

use crate::error::{Error, Result, exit};
use crate::fingerprint;
use crate::hardening;
use crate::keyfile::Keyfile;
use crate::net;
use crate::passphrase;
use crate::sanitize;
use crate::ui::Ui;
use clap::{Parser, Subcommand};

mod dial;
mod invite;
mod keys;
mod listen;
mod p2p;
mod paths;
mod peers;
mod prompt;
mod session;

pub use dial::DialArgs;
pub use keys::KdfArgs;
pub use listen::ListenArgs;
use paths::Paths;
pub use peers::PeersCommand;
pub use session::{MAX_SECONDS, SessionArgs};
use std::io::Write;
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit status:
  0  the session ended cleanly (a QUIT without a reason) and nothing sent was turned away
  1  error: network, protocol, keyfile, a connection cut without QUIT, a silent peer, a
     peer that aborted (a QUIT with a reason), or a pipe stopped by Ctrl-C or a signal
     (before or during its session)
  2  usage error
  3  you refused the peer's key: it did not match --peer, it changed since you last saw
     this address, or it is unknown (or, with --trust strict, new at this address)
  4  the peer turned you away: it refused your key, the room was full, it never welcomed
     you, or it runs the other mode (chat against --pipe)";

/// End-to-end encrypted chat over a direct TCP connection, or through NATs over iroh.
///
/// schat wraps the connection in a Noise XX handshake (X25519, ChaCha20-Poly1305, BLAKE2s),
/// hybrid with ML-KEM-768 so that recorded sessions stay secret against future quantum
/// computers: both sides prove their long-term identity key, and everything after the
/// handshake is encrypted and authenticated (AES-256-GCM when both machines have AES
/// instructions, else ChaCha20-Poly1305; SCHAT_NO_AES=1 keeps ChaCha20-Poly1305). Compare
/// fingerprints out of band, pin them with
/// --peer, or let `schat invite` verify first contact.
#[derive(Debug, Parser)]
#[command(name = "schat", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Directory holding your identity keyfile and known_peers [default: the platform config
    /// dir, e.g. ~/.config/schat]
    #[arg(long, env = "SCHAT_HOME", value_name = "DIR", global = true)]
    pub home: Option<PathBuf>,

    /// Identity keyfile to use instead of DIR/identity (never created implicitly)
    #[arg(long, value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,

    /// Read the keyfile's passphrase from the first line of FILE, which only you may access
    /// (mode 600) (also: the SCHAT_PASSPHRASE environment variable, which schat removes from its
    /// environment at startup; otherwise schat asks on the terminal). Never give a passphrase
    /// as an argument: other users can see arguments
    #[arg(long, value_name = "FILE", global = true)]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new identity keyfile and print its fingerprint. On a terminal it asks for a
    /// passphrase (twice; empty for none); otherwise the key is stored unprotected unless a
    /// passphrase comes from --passphrase-file or SCHAT_PASSPHRASE
    Keygen {
        /// Replace an existing keyfile (the old identity is lost for good)
        #[arg(long)]
        force: bool,
        /// Store the key unprotected, without asking
        #[arg(long)]
        no_passphrase: bool,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Add, change or remove the keyfile's passphrase (the file is replaced atomically). The
    /// current passphrase comes from the usual sources; the new one from a prompt or
    /// --new-passphrase-file
    Passwd {
        /// Read the new passphrase from the first line of FILE (mode 600)
        #[arg(long, value_name = "FILE", conflicts_with = "no_passphrase")]
        new_passphrase_file: Option<PathBuf>,
        /// Remove the protection: store the key unprotected
        #[arg(long)]
        no_passphrase: bool,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Print your identity's fingerprint, for your peer to pin with --peer
    Fingerprint {
        /// Print 64 hex digits without spaces
        #[arg(long)]
        raw: bool,
        /// Print your iroh endpoint id instead (derived from your identity; for a relay's
        /// --allow-endpoint). Needs the keyfile's passphrase
        #[arg(long, conflicts_with = "raw")]
        endpoint: bool,
    },
    /// Host a chat room that peers dial into (or, with --pipe, serve one pipe session)
    #[command(after_help = EXIT_CODES)]
    Listen(listen::ListenArgs),
    /// Connect to a listening peer, then chat
    #[command(after_help = EXIT_CODES)]
    Dial(dial::DialArgs),
    /// Manage known peers: petnames, fingerprints, addresses, verification
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Invite someone: print a one-line ticket (`schat:…`) that lets them dial you with your
    /// key already verified, and proves them to your `schat listen` (which need not restart).
    /// Also --list and --revoke ID
    Invite(invite::InviteArgs),
    /// Run a relay for iroh (for `--p2p`): it forwards encrypted packets between peers that
    /// cannot reach each other directly and helps them punch through NATs. It never sees
    /// schat keys or content. TLS from certificate files or Let's Encrypt; --insecure-http for
    /// tests and closed LANs
    Relay(p2p::RelayArgs),
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    // Before anything else, while this is the only thread: take the passphrase out of the
    // environment (and out of what /proc/PID/environ shows).
    // SAFETY: no other thread exists yet, so nothing else reads or writes the environment.
    let env_passphrase = unsafe { passphrase::take_from_env() };
    // No core dumps, and /proc/PID/{mem,environ} closed to other processes of this user: the
    // process will hold a secret key, maybe a passphrase.
    if let Err(e) = hardening::forbid_core_dumps() {
        Ui::plain().warn(format_args!(
            "cannot disable core dumps ({e}): a crash could write your secret key to disk"
        ));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    restore_terminal_on_panic();
    // Opt-in diagnostics of the transports (iroh logs through `tracing`): IP addresses and
    // endpoint ids, never keys or content.
    // A relay is a server: its errors (a failing ACME order, a bad certificate) go to stderr
    // unless SCHAT_LOG says otherwise.
    let relay_default = matches!(cli.command, Command::Relay(_)).then(|| "error".to_string());
    if let Some(filter) = std::env::var("SCHAT_LOG").ok().or(relay_default) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli, env_passphrase)),
        Err(e) => {
            Ui::plain().error(format_args!("cannot start the async runtime: {e}"));
            exit::ERROR
        }
    }
}

/// A panic must not leave the terminal in raw mode (the line editor's Drop also restores it,
/// but a panic hook runs first and covers panics on other threads). The report replaces the
/// default hook's: a panic message can quote input (a typed line, a peer's text, a file), so it
/// is printed escaped, like everything else schat shows.
fn restore_terminal_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let _ = crossterm::terminal::disable_raw_mode();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", panic_report(info));
        // Only with RUST_BACKTRACE=1, as with the default hook.
        let trace = std::backtrace::Backtrace::capture();
        if trace.status() == std::backtrace::BacktraceStatus::Captured {
            let _ = writeln!(err, "{}", sanitize::block(&trace.to_string()));
        }
    }));
}

/// One escaped line saying where the panic happened and why.
fn panic_report(info: &std::panic::PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let location = info
        .location()
        .map(|l| format!(" at {l}"))
        .unwrap_or_default();
    let report = format!(
        "schat: internal error (a bug in schat; please report it): thread '{}' panicked{location}: {}",
        thread.name().unwrap_or("<unnamed>"),
        info.payload_as_str().unwrap_or("(no message)"),
    );
    sanitize::line(&report).into_owned()
}

/// Runs one parsed command, reports an error if there is one, and returns the exit code.
/// `env_passphrase` is `SCHAT_PASSPHRASE` as [`passphrase::take_from_env`] found it.
pub async fn run(cli: Cli, env_passphrase: passphrase::FromEnv) -> i32 {
    let json = match &cli.command {
        Command::Listen(listen::ListenArgs { session, .. })
        | Command::Dial(dial::DialArgs { session, .. }) => session.json,
        _ => false,
    };
    // Until a session's front end exists (after any passphrase prompt, which needs the
    // terminal in its normal mode), messages go out plainly — or as JSON events.
    let early = if json { Ui::json() } else { Ui::plain() };
    let (ui, result) = execute(cli, env_passphrase, early).await;
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            ui.error(&e);
            e.exit_code()
        }
    }
}

/// Runs the command; returns the `Ui` in use at the end (to report an error through it).
async fn execute(cli: Cli, env_passphrase: passphrase::FromEnv, early: Ui) -> (Ui, Result<()>) {
    let paths = match Paths::new(&cli) {
        Ok(paths) => paths,
        Err(e) => return (early, Err(e)),
    };
    paths::warn_if_home_is_open(&paths.home, &early);
    let sources = passphrase::Sources {
        file: cli.passphrase_file.clone(),
        env: env_passphrase,
    };
    match cli.command {
        Command::Listen(args) => listen::listen(args, &paths, &sources, early).await,
        Command::Dial(args) => dial::dial(args, &paths, &sources, early).await,
        command => {
            let result = match command {
                Command::Keygen {
                    force,
                    no_passphrase,
                    kdf,
                } => keys::keygen(&paths, &sources, force, no_passphrase, kdf.params(), &early),
                Command::Passwd {
                    new_passphrase_file,
                    no_passphrase,
                    kdf,
                } => keys::passwd(
                    &paths,
                    &sources,
                    new_passphrase_file.as_deref(),
                    no_passphrase,
                    kdf.params(),
                    &early,
                ),
                Command::Fingerprint { endpoint: true, .. } => Keyfile::read(&paths.identity)
                    .map_err(Error::from)
                    .and_then(|keyfile| {
                        passphrase::unlock(&keyfile, &sources, &early, &paths.identity)
                    })
                    .and_then(|identity| out(net::iroh::endpoint_key(&identity).public())),
                Command::Fingerprint { raw, .. } => Keyfile::read(&paths.identity)
                    .map_err(Error::from)
                    .and_then(|keyfile| {
                        let key = keyfile.public_key();
                        if raw {
                            out(key)
                        } else {
                            out(fingerprint::grouped(&key))
                        }
                    }),
                Command::Peers(command) => peers::peers(command, &paths, &early),
                Command::Invite(args) => invite::run(&args, &paths),
                Command::Relay(args) => p2p::relay(args, &paths, &early).await,
                Command::Listen(_) | Command::Dial(_) => Ok(()),
            };
            (early, result)
        }
    }
}

/// Writes one line to stdout. A closed stdout (`| head`) is an error, not a panic: what
/// was asked for did not arrive.
fn out(line: impl std::fmt::Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("writing to stdout", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process that `panic_messages_are_printed_escaped` starts.
    const PANIC_CHILD: &str = "SCHAT_TEST_PANIC_CHILD";

    /// A panic message can quote input; the hook must print it escaped. The hook is global, so
    /// the panic happens in a child process (this test binary, running only this test).
    #[test]
    fn panic_messages_are_printed_escaped() {
        if std::env::var_os(PANIC_CHILD).is_some() {
            restore_terminal_on_panic();
            let hostile = "typed \x1b[2J\x1b]0;pwned\x07 line";
            let _ = std::panic::catch_unwind(|| panic!("bad input {hostile}"));
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cli::tests::panic_messages_are_printed_escaped",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PANIC_CHILD, "1")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("bad input typed \\x1b[2J\\x1b]0;pwned\\x07 line"),
            "{stderr}"
        );
        assert!(stderr.contains("internal error"), "{stderr}");
        assert!(!stderr.contains('\x1b'), "{stderr:?}");
    }
}
