//! `schat keygen`, `schat passwd` and `schat fingerprint`: the identity keyfile.

use super::out;
use super::paths::{Paths, UnlockArgs};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::keyfile::{self, KdfParams, Keyfile, KeyfileError};
use crate::keys::Identity;
use crate::passphrase;
use crate::ui::Ui;
use std::io::IsTerminal;

/// `schat keygen`'s arguments.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Replace an existing keyfile: it shows the old fingerprint and asks, and keeps the old
    /// file beside the new one (identity.old-TIME, mode 600)
    #[arg(long)]
    pub force: bool,
    /// Store the key unprotected, without asking for a passphrase
    #[arg(long)]
    pub no_passphrase: bool,
    #[command(flatten)]
    pub kdf: KdfArgs,
    #[command(flatten)]
    pub files: UnlockArgs,
}

/// `schat passwd`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Read the new passphrase from the first line of FILE (mode 600)
    #[arg(long, value_name = "FILE", conflicts_with = "no_passphrase")]
    pub new_passphrase_file: Option<std::path::PathBuf>,
    /// Remove the protection: store the key unprotected
    #[arg(long)]
    pub no_passphrase: bool,
    #[command(flatten)]
    pub kdf: KdfArgs,
    #[command(flatten)]
    pub files: UnlockArgs,
}

/// `schat fingerprint`'s arguments.
#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// Print 64 hex digits without spaces
    #[arg(long)]
    pub raw: bool,
    /// Print your iroh endpoint id instead (derived from your identity; for a relay's
    /// --allow-endpoint). Needs the keyfile's passphrase
    #[arg(long, conflicts_with = "raw")]
    pub endpoint: bool,
    #[command(flatten)]
    pub files: UnlockArgs,
}

/// The cost of the passphrase KDF (Argon2id).
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Passphrase cost")]
pub struct KdfArgs {
    /// Memory for the passphrase KDF, in MiB (8 to 1024): more makes guessing dearer
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 128,
        hide_short_help = true
    )]
    pub kdf_mib: u32,
    /// Passes of the passphrase KDF (1 to 10)
    #[arg(long, value_name = "N", default_value_t = 3, hide_short_help = true)]
    pub kdf_passes: u32,
}

impl KdfArgs {
    pub(super) fn params(self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_mib.saturating_mul(1024),
            passes: self.kdf_passes,
            lanes: 1,
        }
    }
}

/// `schat keygen`.
pub(super) fn keygen(
    paths: &Paths,
    sources: &passphrase::Sources,
    args: &KeygenArgs,
    ui: &Ui,
) -> Result<()> {
    let (force, no_passphrase, kdf) = (args.force, args.no_passphrase, args.kdf.params());
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
pub(super) fn retire_identity(paths: &Paths, ui: &Ui) -> Result<std::path::PathBuf> {
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
pub(super) fn passwd(
    paths: &Paths,
    sources: &passphrase::Sources,
    args: &PasswdArgs,
    ui: &Ui,
) -> Result<()> {
    let (new_file, no_passphrase) = (args.new_passphrase_file.as_deref(), args.no_passphrase);
    let kdf = args.kdf.params();
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

/// `schat fingerprint`: the key's fingerprint (needs no passphrase), or the iroh endpoint id
/// derived from the secret key (which does).
pub(super) fn fingerprint(
    paths: &Paths,
    sources: &passphrase::Sources,
    args: &FingerprintArgs,
    ui: &Ui,
) -> Result<()> {
    let keyfile = Keyfile::read(&paths.identity)?;
    if args.endpoint {
        let identity = passphrase::unlock(&keyfile, sources, ui, &paths.identity)?;
        return out(crate::net::iroh::endpoint_key(&identity).public());
    }
    let key = keyfile.public_key();
    match args.raw {
        true => out(key),
        false => out(fingerprint::grouped(&key)),
    }
}
