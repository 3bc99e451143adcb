//! Where a run's files are (the home, the keyfile, known_peers), and reading them.

use super::Cli;
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::keyfile::{self, Keyfile, KeyfileError};
use crate::keys::{Identity, PublicKey};
use crate::passphrase;
use crate::sanitize;
use crate::session::verify::TrustConfig;
use crate::trust::{self, Allow, Store};
use crate::ui::Ui;
use std::path::PathBuf;

pub(super) fn read_allow_list(file: &str) -> Result<Allow> {
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

/// Warns, as OpenSSH does, when group or others may write to the home directory: they could
/// replace the keyfile or known_peers in it (the files themselves are 0600).
pub(super) fn warn_if_home_is_open(home: &std::path::Path, ui: &Ui) {
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

/// The heading of the file options in `--help`.
const FILES: &str = "Files (also before the command)";

/// `--home`, for the commands that keep something in the home but use no keyfile.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = FILES)]
pub struct HomeArgs {
    /// Directory of your files: identity, known_peers, invites [default: $SCHAT_HOME, else the
    /// platform config dir, e.g. ~/.config/schat]
    #[arg(long, value_name = "DIR", hide_short_help = true)]
    pub home: Option<PathBuf>,
}

/// `--home` and `--identity`, for the commands that read the keyfile's public half.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = FILES)]
pub struct KeyfileArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// Identity keyfile to use instead of DIR/identity (never created implicitly)
    #[arg(long, value_name = "FILE", hide_short_help = true)]
    pub identity: Option<PathBuf>,
}

/// `--home`, `--identity` and `--passphrase-file`, for the commands that unlock the key.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = FILES)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub keyfile: KeyfileArgs,
    /// Read the keyfile's passphrase from the first line of FILE, which only you may access
    /// (mode 600)
    ///
    /// Else from the SCHAT_PASSPHRASE environment variable, which schat removes from its
    /// environment at startup; else schat asks on the terminal. Never give a passphrase as an
    /// argument: other users can see arguments
    #[arg(long, value_name = "FILE", hide_short_help = true)]
    pub passphrase_file: Option<PathBuf>,
}

/// The file options a command was given, wherever they were given.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub home: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
}

impl From<&HomeArgs> for Files {
    fn from(args: &HomeArgs) -> Self {
        Files {
            home: args.home.clone(),
            ..Files::default()
        }
    }
}

impl From<&KeyfileArgs> for Files {
    fn from(args: &KeyfileArgs) -> Self {
        Files {
            identity: args.identity.clone(),
            ..Files::from(&args.home)
        }
    }
}

impl From<&UnlockArgs> for Files {
    fn from(args: &UnlockArgs) -> Self {
        Files {
            passphrase_file: args.passphrase_file.clone(),
            ..Files::from(&args.keyfile)
        }
    }
}

impl Files {
    /// The options given after the command, else those before it (`schat --home D listen`).
    pub(super) fn or(self, cli: &Cli) -> Files {
        Files {
            home: self.home.or_else(|| cli.home.clone()),
            identity: self.identity.or_else(|| cli.identity.clone()),
            passphrase_file: self.passphrase_file.or_else(|| cli.passphrase_file.clone()),
        }
    }
}

/// Where this user's files live.
pub(super) struct Paths {
    pub(super) home: PathBuf,
    /// Whether the home came from --home or SCHAT_HOME (then messages must repeat it).
    explicit_home: bool,
    pub(super) identity: PathBuf,
    /// Whether the user named the keyfile explicitly (then it is never created implicitly).
    explicit_identity: bool,
}

impl Paths {
    pub(super) fn new(files: &Files) -> Result<Self> {
        let home = match &files.home {
            Some(dir) => dir.clone(),
            None => dirs::config_dir().map(|d| d.join("schat")).ok_or_else(|| {
                Error::Usage("cannot find a config directory for this user; pass --home DIR".into())
            })?,
        };
        Ok(Paths {
            identity: files
                .identity
                .clone()
                .unwrap_or_else(|| home.join("identity")),
            explicit_identity: files.identity.is_some(),
            explicit_home: files.home.is_some(),
            home,
        })
    }

    pub(super) fn trust_config(&self) -> TrustConfig {
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
    pub(super) fn resolve_peer(&self, peer: Option<&str>) -> Result<Option<PublicKey>> {
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
    pub(super) fn load_or_create(
        &self,
        ui: &Ui,
        sources: &passphrase::Sources,
    ) -> Result<Identity> {
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
