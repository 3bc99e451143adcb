//! `schat listen`: its arguments, and how a run is prepared from them.

use super::p2p;
use super::paths::{Paths, read_allow_list};
use super::session::{SessionArgs, front_end, install_interrupts, seconds, seconds_option};
use crate::error::{Error, Result};
use crate::net::{self, ListenOptions};
use crate::passphrase;
use crate::session::{DEFAULT_WELCOME, Run, User};
use crate::trust::Allow;
use crate::ui::Ui;

/// `schat listen`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Where to listen: HOST:PORT or :PORT [default: 0.0.0.0:12345]
    ///
    /// Also IP:PORT or [IPv6]:PORT. Port 0 picks a free port; the bound address is printed
    #[arg(
        value_name = "ADDR",
        default_value = "0.0.0.0:12345",
        hide_default_value = true
    )]
    pub addr: String,
    /// Who may come in: known (default), anyone, or a FILE of keys
    ///
    /// known: the peers admitted in known_peers (at a terminal, others knock and you answer);
    /// FILE: the keys listed there, one fingerprint per line, # comments; anyone: every key,
    /// with a warning. Others are refused right after the handshake, with a line saying how
    /// to admit them. --peer admits the one key it names
    #[arg(long, value_name = "WHO")]
    pub allow: Option<String>,
    /// Exit once the room empties after its first peer
    #[arg(long, hide_short_help = true)]
    pub once: bool,
    /// Host a room you take no part in: its members talk end to end
    ///
    /// You admit members (known peers, knocks, invites) and pass on what they seal for each
    /// other; you cannot read, alter or forge it, and say nothing yourself. Members whose
    /// schat cannot talk end to end are turned away
    #[arg(long, conflicts_with_all = ["pipe", "send"])]
    pub relay_only: bool,
    /// Be reachable behind NAT too (iroh); prints a ticket
    ///
    /// iroh is QUIC with hole punching, relayed when that fails. The ticket (`schat:…`) is
    /// for `schat dial`; `schat invite` includes the iroh address while this runs
    #[arg(long)]
    pub p2p: bool,
    /// Greeting sent to each peer after the handshake
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_WELCOME, hide_short_help = true)]
    pub welcome: String,
    /// Peers in the room at once (1 gives a one-to-one chat); more are turned away
    #[arg(
        long,
        value_name = "N",
        default_value_t = 32,
        help_heading = "Limits",
        hide_short_help = true
    )]
    pub max_peers: usize,
    /// Seconds a knock waits for your answer at the terminal before the dialer is told
    /// nobody answered; 1 to 86400
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = seconds_option(),
        help_heading = "Limits",
        hide_short_help = true
    )]
    pub knock_wait: u64,
    /// Connections still handshaking at once; when all are taken, a newcomer evicts the
    /// oldest handshake of the address holding the most, or one pending for over a quarter
    /// of --timeout, or is closed at once
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        help_heading = "Limits",
        hide_short_help = true
    )]
    pub max_handshakes: usize,
    /// Connections still handshaking at once from one address (IPv6: one /64); up to 64
    /// more from it wait their turn (within --timeout), beyond that they are closed at once.
    /// An address gets at most 10 log lines per 10 s, then one summary line
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::net::gate::DEFAULT_PER_SOURCE,
        help_heading = "Limits",
        hide_short_help = true
    )]
    pub max_handshakes_per_address: usize,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub p2p_args: p2p::P2pArgs,
    #[command(flatten)]
    pub files: super::paths::UnlockArgs,
}

/// Runs `schat listen`; returns the `Ui` in use at the end (to report an error through it).
pub(super) async fn listen(
    args: ListenArgs,
    paths: &Paths,
    sources: &passphrase::Sources,
    early: Ui,
) -> (Ui, Result<()>) {
    let ListenArgs {
        addr,
        allow,
        welcome,
        once,
        relay_only,
        max_peers,
        knock_wait,
        max_handshakes,
        max_handshakes_per_address,
        p2p,
        p2p_args,
        session,
        files: _,
    } = args;
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
        let settings = session.settings(paths)?;
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
            relay_only,
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
        let identity = paths.load_or_create(&early, sources)?;
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
