//! `schat peers`: known peers, their petnames, addresses, verification and admission.

use super::out;
use super::paths::Paths;
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::keyfile::Keyfile;
use crate::keys::PublicKey;
use crate::net::Address;
use crate::safety::SafetyNumber;
use crate::sanitize;
use crate::trust::{Entry, Store, TrustError, Verified};
use crate::ui::Ui;
use clap::Subcommand;
use std::io::{IsTerminal, Write};

/// `schat peers`'s arguments: the file options (before or after the subcommand), and what
/// to do.
#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    #[command(subcommand)]
    pub command: PeersCommand,
    #[command(flatten)]
    pub files: super::paths::KeyfileArgs,
}

/// `schat peers …`
#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// Known peers: fingerprints, verification, admission, addresses
    List,
    /// Record a fingerprint received out of band, and admit it to your rooms
    Add {
        /// The peer's fingerprint (64 hex digits; spaces and colons allowed)
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
    /// Let a known peer into your rooms and pipes
    ///
    /// `schat listen` admits only the peers you admitted (this, `peers add`, a knock answered
    /// `y NAME`, an invite); dialling a peer and trusting its key never does
    Admit {
        /// Petname, fingerprint or address
        peer: String,
    },
    /// Stop letting a known peer in (its key stays known for dialling)
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
    /// Forget a peer, or one of its addresses (host:port)
    Forget {
        /// Petname, fingerprint or address
        peer: String,
    },
    /// Compare the safety number with a peer, and record that you did
    Verify {
        /// Petname, fingerprint or address
        peer: String,
        /// Mark as verified without asking (you compared the number already)
        #[arg(long)]
        yes: bool,
    },
}

/// `schat peers …`. known_peers is a file anyone with access to it may have edited: every
/// text taken from it (and anything that quotes it) is printed through `sanitize::line`.
pub(super) fn peers(command: PeersCommand, paths: &Paths, ui: &Ui) -> Result<()> {
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
