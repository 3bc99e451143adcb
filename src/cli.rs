//! The command line: argument definitions (clap) and what each command does.

use crate::error::{Error, Result, exit};
use crate::fingerprint;
use crate::keyfile::{self, KeyfileError};
use crate::keys::{Identity, PublicKey};
use crate::net::{self, ListenOptions};
use crate::session::{DEFAULT_WELCOME, Settings, input::Input};
use crate::signals::Interrupts;
use crate::ui::Ui;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit status:
  0  the session ended cleanly (a QUIT was sent or received)
  1  error: network, protocol, keyfile, or a connection cut without QUIT
  2  usage error
  3  the peer's key was refused (it did not match --peer)";

/// End-to-end encrypted chat over a direct TCP connection.
///
/// schat wraps the connection in a Noise XX handshake (X25519, ChaCha20-Poly1305, BLAKE2s):
/// both sides prove their long-term identity key, and everything after the handshake is
/// encrypted and authenticated. Compare fingerprints out of band, or pin them with --peer.
#[derive(Debug, Parser)]
#[command(name = "schat", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Directory holding your identity keyfile [default: the platform config dir, e.g.
    /// ~/.config/schat]
    #[arg(long, env = "SCHAT_HOME", value_name = "DIR", global = true)]
    pub home: Option<PathBuf>,

    /// Identity keyfile to use instead of DIR/identity (never created implicitly)
    #[arg(long, value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new identity keyfile and print its fingerprint
    Keygen {
        /// Replace an existing keyfile (the old identity is lost for good)
        #[arg(long)]
        force: bool,
    },
    /// Print your identity's fingerprint, for your peer to pin with --peer
    Fingerprint {
        /// Print 64 hex digits without spaces
        #[arg(long)]
        raw: bool,
    },
    /// Wait for a peer to dial in, then chat
    #[command(after_help = EXIT_CODES)]
    Listen {
        /// Where to listen: HOST, HOST:PORT, IP:PORT, [IPv6]:PORT or :PORT (port 0 picks a free
        /// port; the bound address is printed)
        #[arg(value_name = "ADDR", default_value = "0.0.0.0:12345")]
        addr: String,
        /// Only accept the peer with this fingerprint (hex; spaces and colons allowed)
        #[arg(long, value_name = "FINGERPRINT")]
        peer: Option<PublicKey>,
        /// Greeting sent to each peer after the handshake
        #[arg(long, value_name = "TEXT", default_value = DEFAULT_WELCOME)]
        welcome: String,
        /// Exit after the first session instead of waiting for the next peer
        #[arg(long)]
        once: bool,
        /// Seconds a connecting peer has to complete the handshake
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        timeout: u64,
    },
    /// Connect to a listening peer, then chat
    #[command(after_help = EXIT_CODES)]
    Dial {
        /// The listener: HOST, HOST:PORT, IP:PORT or [IPv6]:PORT (default port 12345)
        #[arg(value_name = "ADDR")]
        addr: String,
        /// Only accept the peer with this fingerprint (hex; spaces and colons allowed)
        #[arg(long, value_name = "FINGERPRINT")]
        peer: Option<PublicKey>,
        /// Seconds allowed for connecting, and again for the handshake
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        timeout: u64,
    },
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let ui = Ui::detect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui.error(format_args!("cannot start the async runtime: {e}"));
            return exit::ERROR;
        }
    };
    match runtime.block_on(run(cli, &ui)) {
        Ok(()) => exit::OK,
        Err(e) => {
            ui.error(&e);
            e.exit_code()
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli, ui: &Ui) -> Result<()> {
    let paths = Paths::new(&cli)?;
    match cli.command {
        Command::Keygen { force } => {
            let identity = Identity::generate().map_err(|e| Error::io("generating a key", e))?;
            keyfile::write(&paths.identity, &identity, force)?;
            ui.status(format_args!(
                "created identity keyfile {}",
                paths.identity.display()
            ));
            println!("{}", fingerprint::grouped(identity.public()));
            Ok(())
        }
        Command::Fingerprint { raw } => {
            let identity = keyfile::load(&paths.identity)?;
            if raw {
                println!("{}", identity.public());
            } else {
                println!("{}", fingerprint::grouped(identity.public()));
            }
            Ok(())
        }
        Command::Listen {
            addr,
            peer,
            welcome,
            once,
            timeout,
        } => {
            let identity = paths.load_or_create(ui)?;
            let settings = Settings {
                pin: peer,
                handshake_timeout: seconds(timeout)?,
            };
            let options = ListenOptions {
                addr: Some(addr),
                once,
                welcome,
            };
            let mut interrupts = install_interrupts()?;
            let mut input = Input::stdin();
            net::listen(
                &options,
                &identity,
                &settings,
                &mut input,
                ui,
                &mut interrupts,
            )
            .await
        }
        Command::Dial {
            addr,
            peer,
            timeout,
        } => {
            let identity = paths.load_or_create(ui)?;
            let settings = Settings {
                pin: peer,
                handshake_timeout: seconds(timeout)?,
            };
            let mut interrupts = install_interrupts()?;
            let mut input = Input::stdin();
            net::dial(
                &addr,
                seconds(timeout)?,
                &identity,
                &settings,
                &mut input,
                ui,
                &mut interrupts,
            )
            .await
            .map(|_| ())
        }
    }
}

fn seconds(secs: u64) -> Result<Duration> {
    if secs == 0 {
        return Err(Error::Usage("--timeout must be at least 1 second".into()));
    }
    Ok(Duration::from_secs(secs))
}

fn install_interrupts() -> Result<Interrupts> {
    Interrupts::install().map_err(|e| Error::io("installing signal handlers", e))
}

/// Where this user's files live.
struct Paths {
    identity: PathBuf,
    /// Whether the user named the keyfile explicitly (then it is never created implicitly).
    explicit_identity: bool,
}

impl Paths {
    fn new(cli: &Cli) -> Result<Self> {
        if let Some(file) = &cli.identity {
            return Ok(Paths {
                identity: file.clone(),
                explicit_identity: true,
            });
        }
        let home = match &cli.home {
            Some(dir) => dir.clone(),
            None => dirs::config_dir().map(|d| d.join("schat")).ok_or_else(|| {
                Error::Usage("cannot find a config directory for this user; pass --home DIR".into())
            })?,
        };
        Ok(Paths {
            identity: home.join("identity"),
            explicit_identity: false,
        })
    }

    /// Loads the identity, creating one on first use so a newcomer's first command works.
    fn load_or_create(&self, ui: &Ui) -> Result<Identity> {
        match keyfile::load(&self.identity) {
            Err(KeyfileError::NotFound { .. }) if !self.explicit_identity => {
                let identity =
                    Identity::generate().map_err(|e| Error::io("generating a key", e))?;
                keyfile::write(&self.identity, &identity, false)?;
                ui.status(format_args!(
                    "no identity yet: created {} (fingerprint {})",
                    self.identity.display(),
                    fingerprint::grouped(identity.public())
                ));
                Ok(identity)
            }
            other => Ok(other?),
        }
    }
}
