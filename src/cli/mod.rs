//! The command line: argument definitions (clap) and what each command does, a file per
//! command: `listen`, `dial`, `keys` (keygen, passwd, fingerprint), `peers`, `invite`,
//! `p2p` (relay, and the iroh options); `session` has what listen and dial share, `paths`
//! where the files are, `prompt` answers typed at the terminal. This file parses and
//! dispatches.

use crate::error::{Error, Result, exit};
use crate::hardening;
use crate::passphrase;
use crate::sanitize;
use crate::ui::Ui;
use clap::{Parser, Subcommand};

mod dial;
mod help;
mod invite;
mod keys;
mod listen;
mod p2p;
mod paths;
mod peers;
mod prompt;
mod session;
mod transfer;

pub use dial::DialArgs;
pub use keys::KdfArgs;
pub use listen::ListenArgs;
use paths::Paths;
pub use peers::PeersCommand;
pub use session::{MAX_SECONDS, SessionArgs};
use std::io::Write;
use std::path::PathBuf;

/// End-to-end encrypted chat for two people or a small room, terminal to terminal
///
/// One side listens, the other dials, and no server stands between them. A Noise XX handshake
/// (X25519, ChaCha20-Poly1305, BLAKE2s), hybrid with ML-KEM-768 so that recorded sessions
/// stay secret against future quantum computers, proves both long-term keys; everything after
/// it is encrypted and authenticated (AES-256-GCM when both machines have AES instructions,
/// else ChaCha20-Poly1305). Compare fingerprints or safety numbers with your peer, pin them
/// with --peer, or let `schat invite` verify first contact.
#[derive(Debug, Parser)]
#[command(
    name = "schat",
    version,
    disable_help_subcommand = true,
    help_template = help::TOP_TEMPLATE,
    after_long_help = help::TOP_LONG
)]
pub struct Cli {
    /// Directory of your files [default: ~/.config/schat]
    ///
    /// It holds your identity, known_peers and invites; the default is the platform config
    /// dir. Also accepted after the command, and from SCHAT_HOME
    #[arg(long, env = "SCHAT_HOME", value_name = "DIR", hide_env = true)]
    pub home: Option<PathBuf>,

    /// (Also accepted after the command, which lists it.)
    #[arg(long, value_name = "FILE", hide = true)]
    pub identity: Option<PathBuf>,

    /// (Also accepted after the command, which lists it.)
    #[arg(long, value_name = "FILE", hide = true)]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, in the order a newcomer meets them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create your identity (a key pair) and print its fingerprint
    ///
    /// At a terminal it asks for a passphrase that seals the key on disk (twice; empty for
    /// none); otherwise the key is stored unprotected unless a passphrase comes from
    /// --passphrase-file or SCHAT_PASSPHRASE
    #[command(after_help = help::KEYGEN_EXAMPLES)]
    Keygen(keys::KeygenArgs),
    /// Print your fingerprint, for your peers to admit or pin
    #[command(after_help = help::FINGERPRINT_EXAMPLES)]
    Fingerprint(keys::FingerprintArgs),
    /// Host a chat room that peers dial into (or one --pipe session)
    #[command(after_help = help::LISTEN_EXAMPLES, after_long_help = help::LISTEN_LONG)]
    Listen(listen::ListenArgs),
    /// Connect to a listener, then chat (or --pipe)
    #[command(after_help = help::DIAL_EXAMPLES, after_long_help = help::DIAL_LONG)]
    Dial(dial::DialArgs),
    /// Send files or folders, then exit: 0 once each was delivered and checked
    ///
    /// Dials --to (an address, a petname or a ticket) or, without it, waits for the receiver
    /// to dial in (`listen --once`). Each file is offered with its BLAKE3 hash; the receiver
    /// checks it before saving. A cut connection resumes where it was
    #[command(after_help = help::SEND_EXAMPLES)]
    Send(transfer::SendArgs),
    /// Receive files into a folder, then exit when the sender is done
    ///
    /// Dials --from or, without it, waits for the sender to dial in. Names are checked: never
    /// outside the folder, never over a file (a taken name becomes `name (1).ext`)
    #[command(after_help = help::RECEIVE_EXAMPLES)]
    Receive(transfer::ReceiveArgs),
    /// Known peers: who may come in, whom you recognise, who is verified
    #[command(after_help = help::PEERS_EXAMPLES, disable_help_subcommand = true)]
    Peers(peers::PeersArgs),
    /// Invite someone, keys verified already: a ticket or a spoken code
    ///
    /// A ticket is one line (`schat:…`) that lets them dial you with your key already
    /// verified, and proves them to your `schat listen` (which need not restart); --code makes
    /// a short code to read out over the phone instead. Also --list and --revoke ID
    #[command(after_help = help::INVITE_EXAMPLES)]
    Invite(invite::InviteArgs),
    /// Add, change or remove your keyfile's passphrase
    ///
    /// The file is replaced atomically. The current passphrase comes from the usual sources;
    /// the new one from a prompt or --new-passphrase-file
    #[command(after_help = help::PASSWD_EXAMPLES)]
    Passwd(keys::PasswdArgs),
    /// Run a relay for iroh, for peers behind NAT (`--p2p`)
    ///
    /// It forwards encrypted packets between peers that cannot reach each other directly and
    /// helps them punch through NATs. It never sees schat keys or content. TLS from
    /// certificate files or Let's Encrypt; --insecure-http for tests and closed LANs
    #[command(after_help = help::RELAY_EXAMPLES)]
    Relay(p2p::RelayArgs),
    /// Print a completion script for your shell
    #[command(after_help = help::COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write schat's man pages (schat.1, schat-listen.1, …) into DIR
    #[command(after_help = help::MANPAGES_EXAMPLES)]
    Manpages {
        /// Where to write them, e.g. ~/.local/share/man/man1 (created if need be)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

impl Command {
    /// The file options given after the command (those before it are on [`Cli`]).
    fn files(&self) -> paths::Files {
        match self {
            Command::Keygen(a) => (&a.files).into(),
            Command::Fingerprint(a) => (&a.files).into(),
            Command::Passwd(a) => (&a.files).into(),
            Command::Listen(a) => (&a.files).into(),
            Command::Dial(a) => (&a.files).into(),
            Command::Send(a) => (&a.common.files).into(),
            Command::Receive(a) => (&a.common.files).into(),
            Command::Peers(a) => (&a.files).into(),
            Command::Invite(a) => (&a.files).into(),
            Command::Relay(a) => (&a.files).into(),
            Command::Completions { .. } | Command::Manpages { .. } => paths::Files::default(),
        }
    }
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
        Command::Send(args) => args.common.json,
        Command::Receive(args) => args.common.json,
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
    // Neither needs a home: they describe schat, not a user.
    match &cli.command {
        Command::Completions { shell } => return (early, help::completions(*shell)),
        Command::Manpages { dir } => return (early, help::manpages(dir)),
        _ => {}
    }
    let files = cli.command.files().or(&cli);
    let paths = match Paths::new(&files) {
        Ok(paths) => paths,
        Err(e) => return (early, Err(e)),
    };
    paths::warn_if_home_is_open(&paths.home, &early);
    let sources = passphrase::Sources {
        file: files.passphrase_file,
        env: env_passphrase,
    };
    match cli.command {
        Command::Listen(args) => listen::listen(args, &paths, &sources, early).await,
        Command::Dial(args) => dial::dial(args, &paths, &sources, early).await,
        Command::Send(args) => transfer_run(args.run(), &paths, &sources, early).await,
        Command::Receive(args) => transfer_run(args.run(), &paths, &sources, early).await,
        command => {
            let result = match command {
                Command::Keygen(args) => keys::keygen(&paths, &sources, &args, &early),
                Command::Passwd(args) => keys::passwd(&paths, &sources, &args, &early),
                Command::Fingerprint(args) => keys::fingerprint(&paths, &sources, &args, &early),
                Command::Peers(args) => peers::peers(args.command, &paths, &early),
                Command::Invite(args) => invite::run(&args, &paths, &early),
                Command::Relay(args) => p2p::relay(args, &paths, &early).await,
                Command::Listen(_)
                | Command::Dial(_)
                | Command::Send(_)
                | Command::Receive(_)
                | Command::Completions { .. }
                | Command::Manpages { .. } => Ok(()),
            };
            (early, result)
        }
    }
}

/// `send` and `receive` run as `dial` or `listen`.
async fn transfer_run(
    run: Result<transfer::Run>,
    paths: &Paths,
    sources: &passphrase::Sources,
    early: Ui,
) -> (Ui, Result<()>) {
    match run {
        Ok(transfer::Run::Dial(args)) => dial::dial(*args, paths, sources, early).await,
        Ok(transfer::Run::Listen(args)) => listen::listen(*args, paths, sources, early).await,
        Err(e) => (early, Err(e)),
    }
}

/// Writes one line to stdout. A closed stdout (`| head`) is an error, not a panic: what
/// was asked for did not arrive.
fn out(line: impl std::fmt::Display) -> Result<()> {
    out_bytes(format!("{line}\n").as_bytes())
}

/// Writes bytes to stdout, as [`out`] does.
fn out_bytes(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
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
