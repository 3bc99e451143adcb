//! `schat send` and `schat receive`: a one-off file transfer, no chat needed. Each is `dial`
//! (with `--to`/`--from`) or `listen --once` (without) with `--send` or `--accept-files`, so
//! the session, its checks and its exit codes are exactly theirs.

use super::dial::DialArgs;
use super::listen::ListenArgs;
use super::p2p;
use super::session::seconds_option;
use crate::error::{Error, Result};
use crate::session::verify::TrustPolicy;
use clap::{Args, FromArgMatches};
use std::path::PathBuf;

/// What `send` and `receive` share.
#[derive(Debug, Clone, Args)]
pub struct TransferArgs {
    /// Where to wait to be dialled [default: 0.0.0.0:12345]
    ///
    /// Without --to or --from: HOST:PORT or :PORT (port 0: any free port, printed)
    #[arg(long, value_name = "ADDR", hide_short_help = true)]
    pub on: Option<String>,
    /// Only this peer: a fingerprint or a petname
    ///
    /// Its key is checked; any other is refused (as --peer of `dial` and `listen`)
    #[arg(long, value_name = "KEY", hide_short_help = true)]
    pub peer: Option<String>,
    /// Dialling a key known_peers has never seen: ask, accept-new or strict (as `dial`)
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        default_value_t = TrustPolicy::Ask,
        hide_possible_values = true,
        hide_short_help = true
    )]
    pub trust: TrustPolicy,
    /// Waiting to be dialled: who may come in: known (default), anyone, or a FILE of keys
    #[arg(long, value_name = "WHO", hide_short_help = true)]
    pub allow: Option<String>,
    /// Waiting to be dialled behind NAT too (iroh): prints a ticket
    #[arg(long)]
    pub p2p: bool,
    /// JSON events on stdout (file_offered, file_progress, file_done…)
    #[arg(long)]
    pub json: bool,
    /// Seconds allowed for the handshake (and for connecting); 1 to 86400
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = seconds_option(),
        hide_short_help = true
    )]
    pub timeout: u64,
    #[command(flatten)]
    pub p2p_args: p2p::P2pArgs,
    #[command(flatten)]
    pub files: super::paths::UnlockArgs,
}

/// `schat send`'s arguments.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Files or folders to send (a folder's files keep their place under its name)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Whom to: HOST[:PORT], a petname or a ticket; none: wait to be dialled
    ///
    /// As `dial` takes it (- to paste a ticket). Without it, wait for the receiver to dial
    /// you (`schat receive --from`)
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    #[command(flatten)]
    pub common: TransferArgs,
}

/// `schat receive`'s arguments.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Where the files go [default: your Downloads folder]
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// Whom from: HOST[:PORT], a petname or a ticket; none: wait to be dialled
    ///
    /// As `dial` takes it (- to paste a ticket). Without it, wait for the sender to dial you
    /// (`schat send --to`)
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    #[command(flatten)]
    pub common: TransferArgs,
}

/// What a transfer runs as.
pub enum Run {
    Dial(Box<DialArgs>),
    Listen(Box<ListenArgs>),
}

impl SendArgs {
    pub fn run(self) -> Result<Run> {
        let SendArgs { paths, to, common } = self;
        session_of(to, common, paths, None)
    }
}

impl ReceiveArgs {
    pub fn run(self) -> Result<Run> {
        let ReceiveArgs { into, from, common } = self;
        let into = match into.or_else(crate::files::default_download_dir) {
            Some(dir) => dir,
            None => {
                return Err(Error::Usage(
                    "no Downloads folder here: give --into DIR".into(),
                ));
            }
        };
        session_of(from, common, Vec::new(), Some(into))
    }
}

/// `dial ADDR` or `listen --once`, with their defaults, then these options.
fn session_of(
    addr: Option<String>,
    common: TransferArgs,
    send: Vec<PathBuf>,
    accept: Option<PathBuf>,
) -> Result<Run> {
    let usage = |e: clap::Error| Error::Usage(e.to_string());
    let TransferArgs {
        on,
        peer,
        trust,
        allow,
        p2p,
        json,
        timeout,
        p2p_args,
        files,
    } = common;
    let with = |session: &mut super::SessionArgs| {
        session.peer = peer.clone();
        session.json = json;
        session.timeout = timeout;
        session.send = send.clone();
        session.accept_files = accept.clone();
    };
    match addr {
        Some(addr) => {
            if on.is_some() || allow.is_some() || p2p {
                return Err(Error::Usage(
                    "--on, --allow and --p2p are for waiting to be dialled: not with --to or \
                     --from"
                        .into(),
                ));
            }
            let command = DialArgs::augment_args(clap::Command::new("dial"));
            let matches = command
                .try_get_matches_from(["dial", addr.as_str()])
                .map_err(usage)?;
            let mut args = DialArgs::from_arg_matches(&matches).map_err(usage)?;
            args.trust = trust;
            args.p2p_args = p2p_args;
            args.files = files;
            with(&mut args.session);
            Ok(Run::Dial(Box::new(args)))
        }
        None => {
            let mut argv = vec!["listen".to_owned(), "--once".to_owned()];
            argv.extend(on);
            let command = ListenArgs::augment_args(clap::Command::new("listen"));
            let matches = command.try_get_matches_from(argv).map_err(usage)?;
            let mut args = ListenArgs::from_arg_matches(&matches).map_err(usage)?;
            args.allow = allow;
            args.p2p = p2p;
            args.p2p_args = p2p_args;
            args.files = files;
            with(&mut args.session);
            Ok(Run::Listen(Box::new(args)))
        }
    }
}
