//! The command line: argument definitions (clap) and what each command does.

use crate::error::{Error, Result, exit};
use crate::fingerprint;
use crate::hardening;
use crate::keyfile::{self, KdfParams, Keyfile, KeyfileError};
use crate::keys::{Identity, PublicKey};
use crate::net::{self, Address, ListenOptions};
use crate::passphrase;
use crate::safety::SafetyNumber;
use crate::sanitize;
use crate::session::pipe::PipeOptions;
use crate::session::verify::{TrustConfig, TrustPolicy};
use crate::session::{DEFAULT_WELCOME, Run, Settings, User, input::Input};
use crate::signals::Interrupts;
use crate::trust::{self, Allow, Entry, Store, TrustError, Verified};
use crate::ui::{self, Ui};
use clap::{Parser, Subcommand};

mod invite;
mod p2p;
mod prompt;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

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
    Listen {
        /// Where to listen: HOST, HOST:PORT, IP:PORT, `[IPv6]:PORT` or :PORT (port 0 picks a free
        /// port; the bound address is printed)
        #[arg(value_name = "ADDR", default_value = "0.0.0.0:12345")]
        addr: String,
        /// Which dialers to admit: `known` (in known_peers; the default), the keys listed in
        /// FILE (one fingerprint per line, # comments), or `anyone` (with a warning). Others are
        /// refused right after the handshake, with a line saying how to admit them. --peer
        /// admits the one key it names
        #[arg(long, value_name = "known|anyone|FILE")]
        allow: Option<String>,
        /// Greeting sent to each peer after the handshake
        #[arg(long, value_name = "TEXT", default_value = DEFAULT_WELCOME)]
        welcome: String,
        /// Exit once the room empties after its first peer, instead of waiting for more
        #[arg(long)]
        once: bool,
        /// Peers in the room at once (1 gives a one-to-one chat); more are turned away
        #[arg(long, value_name = "N", default_value_t = 32)]
        max_peers: usize,
        /// Seconds a knock waits for your answer at the terminal before the dialer is told
        /// nobody answered; 1 to 86400
        #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = seconds_option())]
        knock_wait: u64,
        /// Connections still handshaking at once; when all are taken, a newcomer evicts the
        /// oldest handshake of the address holding the most, or one pending for over a quarter
        /// of --timeout, or is closed at once
        #[arg(long, value_name = "N", default_value_t = 64)]
        max_handshakes: usize,
        /// Connections still handshaking at once from one address (IPv6: one /64); up to 64
        /// more from it wait their turn (within --timeout), beyond that they are closed at once.
        /// An address gets at most 10 log lines per 10 s, then one summary line
        #[arg(long, value_name = "N", default_value_t = crate::net::gate::DEFAULT_PER_SOURCE)]
        max_handshakes_per_address: usize,
        /// Also be reachable through NATs, over iroh (QUIC with hole punching, relayed when
        /// that fails): prints a ticket (`schat:…`) for `schat dial`, and `schat invite`
        /// includes the iroh address while this runs
        #[arg(long)]
        p2p: bool,
        #[command(flatten)]
        p2p_args: p2p::P2pArgs,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Connect to a listening peer, then chat
    #[command(after_help = EXIT_CODES)]
    Dial {
        /// The listener: HOST, HOST:PORT, IP:PORT or `[IPv6]:PORT` (default port 12345), a
        /// ticket (`schat:…`, from `schat invite` or `schat listen --p2p`: its key is expected;
        /// an invite also proves you to the listener; its TCP addresses and its iroh address
        /// are tried at once, and the first to prove the key wins; `-` asks for it on the
        /// terminal, keeping it off the command line, which other users can see), or the
        /// petname of a known peer (its stored addresses are tried, newest first, and its key
        /// is expected)
        #[arg(value_name = "ADDR")]
        addr: String,
        /// What to do with a key known_peers has never seen: ask (on a terminal; refuse
        /// without one), accept-new (trust and remember it), strict (refuse it). A known
        /// address presenting a different key is always refused
        #[arg(long, value_enum, value_name = "POLICY", default_value_t = TrustPolicy::Ask)]
        trust: TrustPolicy,
        /// A spoken code from `schat invite --code` (e.g. 427-absurd-aftermath-acme-alkali-adult;
        /// `-` asks for it on the terminal, off the command line): the listener's key is
        /// verified by proving the code (a PAKE); a wrong code stops both sides
        #[arg(long, value_name = "CODE", conflicts_with = "pipe")]
        code: Option<String>,
        /// Which way to reach a listener whose ticket has both TCP and iroh addresses: any
        /// (both at once, the first to prove its key wins), tcp, or iroh
        #[arg(long, value_enum, value_name = "WAY", default_value_t = net::Via::Any)]
        via: net::Via,
        #[command(flatten)]
        p2p_args: p2p::P2pArgs,
        #[command(flatten)]
        session: SessionArgs,
    },
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

/// Options shared by `listen` and `dial`.
#[derive(Debug, Clone, clap::Args)]
pub struct SessionArgs {
    /// Only accept this peer: a fingerprint (hex; spaces and colons allowed) or a petname. A
    /// matching pin connects whatever known_peers says
    #[arg(long, value_name = "FINGERPRINT|NAME")]
    pub peer: Option<String>,
    /// Seconds allowed for the handshake (and, when dialling, for connecting); 1 to 86400
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = seconds_option())]
    pub timeout: u64,
    /// Seconds of silence before we PING the peer; after three times as long with nothing
    /// received, the peer is declared gone; 1 to 86400
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = seconds_option())]
    pub keepalive: u64,
    /// Write one JSON object per event (connected, welcome, message, notice, left, ticket, error) on
    /// stdout
    #[arg(long)]
    pub json: bool,
    /// Pipe mode: stdin's bytes go to the peer and the peer's bytes to stdout, raw; end of
    /// input means "finished sending". A listener then serves one session (as with --once)
    #[arg(long, conflicts_with = "json")]
    pub pipe: bool,
    /// With --pipe: no progress line and no summary on stderr
    #[arg(long, requires = "pipe")]
    pub quiet: bool,
    /// With --pipe: how many bytes stdin will give, for the progress line's percentage and
    /// time left (found by itself when stdin is a regular file)
    #[arg(long, value_name = "BYTES", requires = "pipe")]
    pub size: Option<u64>,
    /// A display name to announce: others see it beside your key, as `NAME [3f2a9c1b4d5e]`
    /// (their own petname for you wins). Letters, digits, single spaces and - _ . ', at
    /// most 32 characters; /nick changes it during a chat
    #[arg(long, value_name = "NAME", conflicts_with = "pipe")]
    pub name: Option<String>,
}

impl SessionArgs {
    fn settings(&self, paths: &Paths) -> Result<Settings> {
        Ok(Settings {
            pin: paths.resolve_peer(self.peer.as_deref())?,
            handshake_timeout: seconds(self.timeout, "--timeout")?,
            trust: paths.trust_config(),
            keepalive: seconds(self.keepalive, "--keepalive")?,
            pipe: self.pipe.then_some(PipeOptions {
                quiet: self.quiet,
                size: self.size,
            }),
            ticket: None,
            code: None,
            petname: None,
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

/// The cost of the passphrase KDF (Argon2id).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct KdfArgs {
    /// Memory for the passphrase KDF, in MiB (8 to 1024): more makes guessing dearer
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    pub kdf_mib: u32,
    /// Passes of the passphrase KDF (1 to 10)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub kdf_passes: u32,
}

impl KdfArgs {
    fn params(self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_mib.saturating_mul(1024),
            passes: self.kdf_passes,
            lanes: 1,
        }
    }
}

/// `schat peers …`
#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// List known peers with fingerprint, addresses, and how and when each was verified
    List,
    /// Add a peer whose fingerprint you received out of band, and admit it to your rooms
    Add {
        /// The peer's fingerprint
        fingerprint: PublicKey,
        /// Your name for the peer (letters, digits, '.', '_', '-')
        name: String,
        /// An address where the peer listens (host:port), to recognise it when dialling
        #[arg(long, value_name = "ADDR")]
        addr: Option<String>,
        /// Only recognise its key when you dial it: do not let it into your rooms and pipes
        #[arg(long)]
        no_admit: bool,
    },
    /// Let a known peer into your rooms and pipes (`schat listen` admits known peers only
    /// once you admit them; dialling a peer never does)
    Admit {
        /// Petname, fingerprint or address
        peer: String,
    },
    /// Stop letting a known peer into your rooms and pipes (its key stays known for dialling)
    Revoke {
        /// Petname, fingerprint or address
        peer: String,
    },
    /// Give a known peer another petname
    Rename {
        /// Current petname, fingerprint or address
        peer: String,
        /// New petname
        new_name: String,
    },
    /// Forget a peer (by petname or fingerprint), or just one address (by host:port)
    Forget {
        /// Petname, fingerprint or address
        peer: String,
    },
    /// Show the safety number with a peer and, once you have compared it, mark it verified
    Verify {
        /// Petname, fingerprint or address
        peer: String,
        /// Mark as verified without asking (you compared the number already)
        #[arg(long)]
        yes: bool,
    },
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

/// Chooses how a session talks to the user: JSON, the line editor on a terminal, or plain
/// lines; in pipe mode stdin and stdout carry data and questions go to the terminal.
fn front_end(json: bool, pipe: bool) -> (Ui, Input) {
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

/// Runs one parsed command, reports an error if there is one, and returns the exit code.
/// `env_passphrase` is `SCHAT_PASSPHRASE` as [`passphrase::take_from_env`] found it.
pub async fn run(cli: Cli, env_passphrase: passphrase::FromEnv) -> i32 {
    let json = match &cli.command {
        Command::Listen { session, .. } | Command::Dial { session, .. } => session.json,
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
    warn_if_home_is_open(&paths.home, &early);
    let sources = passphrase::Sources {
        file: cli.passphrase_file.clone(),
        env: env_passphrase,
    };
    match cli.command {
        Command::Listen {
            addr,
            allow,
            welcome,
            once,
            max_peers,
            knock_wait,
            max_handshakes,
            max_handshakes_per_address,
            p2p,
            p2p_args,
            session,
        } => {
            let prepared = (|| {
                let allow = match allow.as_deref() {
                    // Closed by default: a stranger must be let in (peers add, --allow).
                    None => Allow::Known,
                    Some("known") => Allow::Known,
                    Some("anyone") => {
                        early.warn(
                            "--allow anyone: every dialer that completes the handshake is \
                             admitted, strangers included",
                        );
                        Allow::Anyone
                    }
                    Some(file) => read_allow_list(file)?,
                };
                if max_peers == 0 || max_handshakes == 0 || max_handshakes_per_address == 0 {
                    return Err(Error::Usage(
                        "--max-peers, --max-handshakes and --max-handshakes-per-address must be \
                         at least 1"
                            .into(),
                    ));
                }
                let settings = session.settings(&paths)?;
                if p2p_args.any() && !p2p {
                    return Err(Error::Usage(
                        "--relay, --relay-ca, --p2p-bind, --no-portmap and --ephemeral-endpoint \
                         go with --p2p"
                            .into(),
                    ));
                }
                let options = ListenOptions {
                    p2p: p2p.then(|| p2p_args.options(false)).transpose()?,
                    addr: Some(addr),
                    once: once || session.pipe,
                    welcome,
                    allow,
                    max_peers,
                    knock_wait: seconds(knock_wait, "--knock-wait")?,
                    gate: crate::net::GateLimits {
                        max_pending: max_handshakes,
                        per_source: max_handshakes_per_address,
                        report_every: crate::net::gate::REPORT_EVERY,
                        stale_after: (settings.handshake_timeout / 4)
                            .max(std::time::Duration::from_secs(1)),
                        stalled_after: crate::net::gate::STALLED_AFTER,
                        silent_after: (settings.handshake_timeout / 2)
                            .max(2 * crate::net::gate::STALLED_AFTER),
                        rate: crate::net::gate::DEFAULT_RATE,
                    },
                };
                let identity = paths.load_or_create(&early, &sources)?;
                Ok((identity, settings, options, install_interrupts()?))
            })();
            let (identity, settings, options, mut interrupts) = match prepared {
                Ok(p) => p,
                Err(e) => return (early, Err(e)),
            };
            let (ui, mut input) = front_end(session.json, session.pipe);
            let run = Run {
                identity: &identity,
                settings: &settings,
                ui: &ui,
            };
            let mut user = User {
                input: &mut input,
                interrupts: &mut interrupts,
            };
            let result = net::listen(&options, &run, &mut user).await;
            // Leave raw mode before the final error is printed.
            drop(input);
            (ui, result)
        }
        Command::Dial {
            addr,
            trust,
            code,
            via,
            p2p_args,
            session,
        } => {
            let prepared = (|| {
                let mut settings = session.settings(&paths)?;
                with_ticket(&addr, &mut settings, &early)?;
                if let Some(code) = &code {
                    if settings.ticket.is_some() || settings.pin.is_some() {
                        return Err(Error::Usage(
                            "--code verifies a key you do not have yet: not with a ticket or --peer".into(),
                        ));
                    }
                    let code = match code.as_str() {
                        "-" => code_from_terminal(&early)?,
                        code => {
                            early.warn(
                                "the code is on the command line, where other users of this \
                                 machine can read it: next time, give `--code -` and type it",
                            );
                            crate::invite::code::Code::parse(code)
                                .map_err(|e| Error::Usage(format!("--code: {e}")))?
                        }
                    };
                    settings.code = Some(code);
                }
                let p2p = p2p_args.options(true)?;
                let identity = paths.load_or_create(&early, &sources)?;
                Ok((identity, settings, p2p, install_interrupts()?))
            })();
            let (identity, settings, p2p, mut interrupts) = match prepared {
                Ok(p) => p,
                Err(e) => return (early, Err(e)),
            };
            let (ui, mut input) = front_end(session.json, session.pipe);
            let target = net::DialTarget {
                addr,
                policy: trust,
                p2p,
                via,
            };
            let run = Run {
                identity: &identity,
                settings: &settings,
                ui: &ui,
            };
            let mut user = User {
                input: &mut input,
                interrupts: &mut interrupts,
            };
            let result = net::dial(&target, &run, &mut user).await.map(|_| ());
            drop(input);
            (ui, result)
        }
        command => {
            let result = match command {
                Command::Keygen {
                    force,
                    no_passphrase,
                    kdf,
                } => keygen(&paths, &sources, force, no_passphrase, kdf.params(), &early),
                Command::Passwd {
                    new_passphrase_file,
                    no_passphrase,
                    kdf,
                } => passwd(
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
                Command::Peers(command) => peers(command, &paths, &early),
                Command::Invite(args) => invite::run(&args, &paths),
                Command::Relay(args) => p2p::relay(args, &paths, &early).await,
                Command::Listen { .. } | Command::Dial { .. } => Ok(()),
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

/// `dial TICKET`: the ticket's key is the pin, its secret (an invite's) and addresses go with
/// the settings. A damaged ticket is refused here, before anything is dialled.
fn with_ticket(addr: &str, settings: &mut Settings, ui: &Ui) -> Result<()> {
    // `-`: asked on the terminal, so the ticket is not on the command line (`ps` shows other
    // users the command lines of this machine).
    let asked;
    let from_terminal = addr == "-";
    let addr = if from_terminal {
        if !passphrase::can_prompt() {
            return Err(Error::Usage(
                "`-` asks on the terminal, and there is none: give the ticket as an argument"
                    .into(),
            ));
        }
        asked = prompt::line("paste the ticket (schat:…): ", |_| None)?;
        asked.as_str()
    } else {
        addr
    };
    if !addr
        .trim()
        .to_ascii_lowercase()
        .starts_with(crate::invite::ticket::PREFIX)
    {
        if from_terminal {
            return Err(Error::Usage("that is not a ticket (schat:…)".into()));
        }
        return Ok(());
    }
    let ticket = crate::invite::Ticket::decode(addr)
        .map_err(|e| Error::Usage(format!("this ticket cannot be used: {e}")))?;
    if !from_terminal && ticket.secret.is_some() {
        ui.warn(
            "the ticket is on the command line, where other users of this machine can read it: \
             next time, run `schat dial -` and paste it",
        );
    }
    if let Some(pin) = settings.pin
        && pin != ticket.key
    {
        return Err(Error::Usage(
            "--peer names another key than the ticket's: use one or the other".into(),
        ));
    }
    if ticket.tcp_addrs().next().is_none() && ticket.endpoint().is_none() {
        return Err(Error::Usage("the ticket holds no address to dial".into()));
    }
    if ticket.secret.is_some() && crate::invite::unix_now() >= ticket.expires {
        ui.warn("this ticket has expired; trying anyway (the inviter decides)");
    }
    // What was read (pasted blind at a terminal), without its secret.
    let name = match ticket.name.as_str() {
        "" => format!("the key {}", fingerprint::short(&ticket.key)),
        name => sanitize::line(name).into_owned(),
    };
    let shown = ticket
        .addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match ticket.id() {
        Some(id) => ui.status(format_args!("invite {id} from {name} at {shown}")),
        None => ui.status(format_args!("ticket of {name} at {shown}")),
    }
    // With an iroh address, known_peers keeps the ticket itself (without its secret), so that
    // `dial PETNAME` finds the iroh address again.
    let reach = ticket.endpoint().map(|_| {
        crate::invite::Ticket {
            secret: None,
            expires: 0,
            ..ticket.clone()
        }
        .encode()
    });
    settings.pin = Some(ticket.key);
    settings.ticket = Some(crate::session::TicketUse {
        addrs: ticket.addrs.clone(),
        name: ticket.name.clone(),
        secret: ticket.secret.clone(),
        reach,
    });
    Ok(())
}

/// A spoken code typed at the terminal: echoed, Tab completing its words, asked again after a
/// typo (three tries in all) rather than ending the command.
fn code_from_terminal(ui: &Ui) -> Result<crate::invite::code::Code> {
    use crate::invite::code::Code;
    if !passphrase::can_prompt() {
        return Err(Error::Usage(
            "`--code -` asks on the terminal, and there is none: give the code as an argument"
                .into(),
        ));
    }
    const TRIES: usize = 3;
    for left in (0..TRIES).rev() {
        let typed = prompt::line("the code (number and words; Tab completes a word): ", |t| {
            Code::complete(t)
        })?;
        match Code::parse(&typed) {
            Ok(code) => return Ok(code),
            Err(e) if left > 0 => ui.warn(format_args!("{e}: type it again ({left} more)")),
            Err(e) => return Err(Error::Usage(format!("--code: {e}"))),
        }
    }
    Err(Error::Usage("--code: no code".into()))
}

/// `schat keygen`.
fn keygen(
    paths: &Paths,
    sources: &passphrase::Sources,
    force: bool,
    no_passphrase: bool,
    kdf: KdfParams,
    ui: &Ui,
) -> Result<()> {
    // Refuse early, before asking for a passphrase that would be wasted.
    let existing = paths.identity.symlink_metadata().is_ok();
    if !force && existing {
        return Err(KeyfileError::Exists {
            path: paths.identity.clone(),
        }
        .into());
    }
    // Replacing an identity throws away who you are to every peer: say so, ask (at a
    // terminal), and keep the old keyfile whatever happens next.
    let backup = match existing {
        true => Some(retire_identity(paths, ui)?),
        false => None,
    };
    let passphrase = if no_passphrase {
        None
    } else if let Some(given) = sources.given()? {
        Some(given).filter(|p| !p.is_empty())
    } else if std::io::stdin().is_terminal() && passphrase::can_prompt() {
        let chosen = passphrase::prompt_new(ui)?;
        if chosen.is_none() {
            ui.warn("no passphrase: anyone who can read the keyfile can use your identity");
        }
        chosen
    } else {
        ui.status(
            "no terminal to ask for a passphrase: the key is stored unprotected \
             (use --passphrase-file or SCHAT_PASSPHRASE to protect it)",
        );
        None
    };
    let identity = Identity::generate().map_err(|e| Error::io("generating a key", e))?;
    let protection = match &passphrase {
        Some(p) => keyfile::Protection::Passphrase(p, kdf),
        None => keyfile::Protection::None,
    };
    keyfile::write(&paths.identity, &identity, force, protection)?;
    if let Some(backup) = backup {
        ui.status(format_args!(
            "the old keyfile is kept in {} (0600); move it back to return to the old identity",
            backup.display()
        ));
    }
    ui.status(format_args!(
        "created identity keyfile {}{}",
        paths.identity.display(),
        if passphrase.is_some() {
            " (protected by a passphrase)"
        } else {
            ""
        }
    ));
    out(fingerprint::grouped(identity.public()))
}

/// Before `keygen --force` replaces an identity: shows whose it was, says what replacing it
/// means, asks at a terminal, and copies the old keyfile aside (0600, never over another file).
/// Returns where the copy is.
fn retire_identity(paths: &Paths, ui: &Ui) -> Result<std::path::PathBuf> {
    let old = std::fs::read(&paths.identity)
        .map_err(|e| Error::io(format!("reading {}", paths.identity.display()), e))?;
    let old = zeroize::Zeroizing::new(old);
    match Keyfile::parse(&paths.identity, &old) {
        Ok(keyfile) => ui.warn(format_args!(
            "this replaces your identity {}: every peer that knows it will see a key-change \
             alarm next time, and must check and accept your new key",
            fingerprint::grouped(&keyfile.public_key())
        )),
        Err(e) => ui.warn(format_args!(
            "replacing a keyfile that does not read well ({e})"
        )),
    }
    if std::io::stdin().is_terminal() && passphrase::can_prompt() {
        let answer = passphrase::read_line_on_terminal("replace it? type yes to go on: ")
            .map_err(|e| Error::io("reading the answer", e))?;
        if answer.trim() != "yes" {
            return Err(Error::Usage(
                "not replaced: your identity is unchanged".into(),
            ));
        }
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let name = match paths.identity.file_name() {
        Some(name) => format!("{}.old-{stamp}", name.to_string_lossy()),
        None => format!("identity.old-{stamp}"),
    };
    let backup = crate::fsutil::parent_dir(&paths.identity).join(name);
    crate::fsutil::write_new_private(&backup, &old).map_err(|e| {
        Error::io(
            format!("keeping the old keyfile as {}", backup.display()),
            e,
        )
    })?;
    Ok(backup)
}

/// `schat passwd`: add, change or remove the passphrase, replacing the file atomically.
fn passwd(
    paths: &Paths,
    sources: &passphrase::Sources,
    new_file: Option<&std::path::Path>,
    no_passphrase: bool,
    kdf: KdfParams,
    ui: &Ui,
) -> Result<()> {
    let keyfile = Keyfile::read(&paths.identity)?;
    let identity = passphrase::unlock(&keyfile, sources, ui, &paths.identity)?;
    let new = if no_passphrase {
        None
    } else if let Some(file) = new_file {
        let p = passphrase::read_file(file)?;
        if p.is_empty() {
            return Err(Error::Usage(
                "the new passphrase file is empty (use --no-passphrase to remove protection)"
                    .into(),
            ));
        }
        Some(p)
    } else if passphrase::can_prompt() {
        passphrase::prompt_new(ui)?
    } else {
        return Err(Error::Usage(
            "no terminal to ask for the new passphrase: use --new-passphrase-file FILE or \
             --no-passphrase"
                .into(),
        ));
    };
    let protection = match &new {
        Some(p) => keyfile::Protection::Passphrase(p, kdf),
        None => keyfile::Protection::None,
    };
    keyfile::write(&paths.identity, &identity, true, protection)?;
    match new {
        Some(_) => ui.status(format_args!(
            "{} is now protected by the new passphrase",
            paths.identity.display()
        )),
        None => ui.warn(format_args!(
            "{} is now unprotected: anyone who can read it can use your identity",
            paths.identity.display()
        )),
    }
    Ok(())
}

fn read_allow_list(file: &str) -> Result<Allow> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("--allow {file}: cannot read it: {e}")))?;
    let keys =
        trust::parse_allow_list(&text).map_err(|e| Error::Usage(format!("--allow {file}: {e}")))?;
    if keys.is_empty() {
        return Err(Error::Usage(format!(
            "--allow {file}: no fingerprints in it; nobody could connect"
        )));
    }
    Ok(Allow::Keys(keys))
}

/// `schat peers …`. known_peers is a file anyone with access to it may have edited: every
/// text taken from it (and anything that quotes it) is printed through `sanitize::line`.
fn peers(command: PeersCommand, paths: &Paths, ui: &Ui) -> Result<()> {
    let clean = |text: &str| sanitize::line(text).into_owned();
    let store = Store::in_home(&paths.home);
    let trust_err = |e: TrustError| match e {
        TrustError::Io { .. } => Error::Internal(e.to_string()),
        other => Error::Usage(other.to_string()),
    };
    match command {
        PeersCommand::List => {
            let peers = store.load().map_err(trust_err)?;
            for (line, reason) in &peers.problems {
                ui.warn(format_args!(
                    "{} line {line}: {reason}",
                    clean(&store.path().display().to_string())
                ));
            }
            let mut out = std::io::stdout().lock();
            let mut any = false;
            for e in peers.entries() {
                any = true;
                // Every row fits 80 columns: the fingerprint on two rows of eight groups, one
                // address a row.
                let grouped = fingerprint::grouped(&e.key);
                let groups: Vec<&str> = grouped.split(' ').collect();
                let (first, second) = groups.split_at(groups.len() / 2);
                let admitted = match e.admitted {
                    true => "yes: may join your rooms and pipes",
                    false => "no: only recognised when you dial it",
                };
                let mut text = format!(
                    "{}\n  fingerprint: {}\n               {}\n  verified:    {} ({})\n  \
                     admitted:    {admitted}\n",
                    clean(&e.name),
                    first.join(" "),
                    second.join(" "),
                    e.how.describe(),
                    clean(&e.when),
                );
                match e.addrs.as_slice() {
                    [] => text.push_str("  addresses:   -\n"),
                    addrs => {
                        for (i, a) in addrs.iter().enumerate() {
                            let label = if i == 0 {
                                "  addresses:  "
                            } else {
                                "              "
                            };
                            // (A stored ticket is long: its start says what it is.)
                            let a = clean(a);
                            let shown = match a.chars().count() > 64 {
                                true => format!("{}…", a.chars().take(63).collect::<String>()),
                                false => a.to_string(),
                            };
                            text.push_str(&format!("{label} {shown}\n"));
                        }
                    }
                }
                let _ = write!(out, "{text}");
            }
            if !any {
                ui.status(format_args!(
                    "no known peers yet ({})",
                    store.path().display()
                ));
            }
            Ok(())
        }
        PeersCommand::Add {
            fingerprint: key,
            name,
            addr,
            no_admit,
        } => {
            let addr = addr
                .map(|a| {
                    Address::parse(&a)
                        .map(|a| a.to_string())
                        .map_err(|e| Error::Usage(format!("--addr {a:?}: {e}")))
                })
                .transpose()?;
            store
                .update(|p| {
                    let mut entry = Entry::new(&name, key, Verified::Fingerprint);
                    entry.addrs.extend(addr);
                    entry.admitted = !no_admit;
                    p.add(entry)
                })
                .map_err(trust_err)?;
            ui.status(format_args!(
                "added {} ({}){}",
                clean(&name),
                fingerprint::grouped(&key),
                match no_admit {
                    true => ": recognised when you dial it, not admitted to your rooms",
                    false => ", admitted to your rooms and pipes",
                }
            ));
            Ok(())
        }
        PeersCommand::Admit { ref peer } | PeersCommand::Revoke { ref peer } => {
            let admit = matches!(command, PeersCommand::Admit { .. });
            let entry = store
                .update(|p| p.set_admitted(peer, admit))
                .map_err(trust_err)?;
            ui.status(format_args!(
                "{} ({}) {}",
                clean(&entry.name),
                fingerprint::short(&entry.key),
                match admit {
                    true => "may now join your rooms and pipes",
                    false => {
                        "is no longer admitted to your rooms and pipes (its key stays known for \
                         dialling)"
                    }
                }
            ));
            Ok(())
        }
        PeersCommand::Rename { peer, new_name } => {
            store
                .update(|p| p.rename(&peer, &new_name))
                .map_err(trust_err)?;
            ui.status(format_args!(
                "renamed {} to {}",
                clean(&peer),
                clean(&new_name)
            ));
            Ok(())
        }
        PeersCommand::Forget { peer } => {
            let done = store.update(|p| p.forget(&peer)).map_err(trust_err)?;
            ui.status(clean(&done));
            Ok(())
        }
        PeersCommand::Verify { peer, yes } => {
            let entry = store
                .load()
                .map_err(trust_err)?
                .find(&peer)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("no known peer matches {peer:?}")))?;
            let me = Keyfile::read(&paths.identity)?.public_key();
            let number = SafetyNumber::new(&me, &entry.key);
            let name = clean(&entry.name);
            out(format_args!("safety number with {name}:"))?;
            for row in number.lines() {
                out(format_args!("    {row}"))?;
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(Error::Usage(
                        "compare the number with your peer, then confirm on a terminal or pass --yes"
                            .into(),
                    ));
                }
                eprint!("schat: does {name} read exactly these digits? [y/N]: ");
                let mut answer = String::new();
                std::io::stdin()
                    .read_line(&mut answer)
                    .map_err(|e| Error::io("reading the answer", e))?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    ui.status("not marked as verified");
                    return Ok(());
                }
            }
            store
                .update(|p| p.set_verified(&entry.key, Verified::SafetyNumber))
                .map_err(trust_err)?;
            ui.status(format_args!(
                "{name} is now marked as verified (safety number compared)"
            ));
            Ok(())
        }
    }
}

/// Warns, as OpenSSH does, when group or others may write to the home directory: they could
/// replace the keyfile or known_peers in it (the files themselves are 0600).
fn warn_if_home_is_open(home: &std::path::Path, ui: &Ui) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(home)
        && meta.is_dir()
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            ui.warn(format_args!(
                "{} has permissions {mode:04o}: other users can write to it and could replace \
                 your keyfile or known_peers (fix with: chmod go-w {})",
                home.display(),
                home.display()
            ));
        }
    }
}

/// The longest any duration option may be: a day. Longer is a typo, and deadlines computed
/// from it (three keepalives, an instant plus a timeout) must never overflow.
pub const MAX_SECONDS: u64 = 86_400;

/// Parses a duration option in seconds, 1 to [`MAX_SECONDS`] (anything else is a usage error).
fn seconds_option() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(1..=MAX_SECONDS)
}

fn seconds(secs: u64, option: &str) -> Result<Duration> {
    if !(1..=MAX_SECONDS).contains(&secs) {
        return Err(Error::Usage(format!(
            "{option} must be 1 to {MAX_SECONDS} seconds"
        )));
    }
    Ok(Duration::from_secs(secs))
}

fn install_interrupts() -> Result<Interrupts> {
    Interrupts::install().map_err(|e| Error::io("installing signal handlers", e))
}

/// Where this user's files live.
struct Paths {
    home: PathBuf,
    /// Whether the home came from --home or SCHAT_HOME (then messages must repeat it).
    explicit_home: bool,
    identity: PathBuf,
    /// Whether the user named the keyfile explicitly (then it is never created implicitly).
    explicit_identity: bool,
}

impl Paths {
    fn new(cli: &Cli) -> Result<Self> {
        let home = match &cli.home {
            Some(dir) => dir.clone(),
            None => dirs::config_dir().map(|d| d.join("schat")).ok_or_else(|| {
                Error::Usage("cannot find a config directory for this user; pass --home DIR".into())
            })?,
        };
        Ok(Paths {
            identity: cli
                .identity
                .clone()
                .unwrap_or_else(|| home.join("identity")),
            explicit_identity: cli.identity.is_some(),
            explicit_home: cli.home.is_some(),
            home,
        })
    }

    fn trust_config(&self) -> TrustConfig {
        let peers_command = if self.explicit_home {
            format!("schat --home {} peers", self.home.display())
        } else {
            "schat peers".to_string()
        };
        TrustConfig {
            store: Store::in_home(&self.home),
            peers_command,
        }
    }

    /// `--peer` takes a fingerprint or the petname of a known peer.
    fn resolve_peer(&self, peer: Option<&str>) -> Result<Option<PublicKey>> {
        let Some(text) = peer else { return Ok(None) };
        match fingerprint::parse(text) {
            Ok(key) => return Ok(Some(key)),
            Err(e @ fingerprint::FingerprintError::NotCanonical) => {
                return Err(Error::Usage(format!("--peer {text:?}: {e}")));
            }
            Err(_) => {}
        }
        let peers = Store::in_home(&self.home)
            .load()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
        match peers.by_name(text) {
            Some(entry) => Ok(Some(entry.key)),
            // The 12 digits a label shows name a key among a few, but anyone can make a key
            // that shares them: they identify, they do not pin.
            None if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit()) => {
                let known = peers
                    .entries()
                    .filter(|e| e.key.to_hex().starts_with(&digits.to_ascii_lowercase()))
                    .map(|e| sanitize::line(&e.name).into_owned())
                    .collect::<Vec<_>>();
                Err(Error::Usage(format!(
                    "--peer {}: {} hex digits identify a key but do not pin it (anyone can make \
                     a key that starts the same); give all 64 digits of the fingerprint{}",
                    sanitize::line(text),
                    digits.len(),
                    match known.as_slice() {
                        [] => String::from(", or a petname from `schat peers list`"),
                        names => format!(", or the petname {}", names.join(" or ")),
                    }
                )))
            }
            None => Err(Error::Usage(format!(
                "--peer {text:?} is neither a fingerprint (64 hex digits) nor the petname of a known peer"
            ))),
        }
    }

    /// Loads the identity (asking for its passphrase if need be), creating one on first use so
    /// a newcomer's first command works.
    fn load_or_create(&self, ui: &Ui, sources: &passphrase::Sources) -> Result<Identity> {
        match Keyfile::read(&self.identity) {
            Ok(keyfile) => passphrase::unlock(&keyfile, sources, ui, &self.identity),
            Err(KeyfileError::NotFound { .. }) if !self.explicit_identity => {
                let identity =
                    Identity::generate().map_err(|e| Error::io("generating a key", e))?;
                keyfile::write(&self.identity, &identity, false, keyfile::Protection::None)?;
                ui.status(format_args!(
                    "no identity yet: created {} (fingerprint {}; unprotected: \
                     `schat passwd` adds a passphrase)",
                    self.identity.display(),
                    fingerprint::grouped(identity.public())
                ));
                Ok(identity)
            }
            Err(e) => Err(e.into()),
        }
    }
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
