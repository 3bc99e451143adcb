//! `schat dial`: its arguments, and how a run is prepared from them (a ticket, a spoken code).

use super::p2p;
use super::paths::Paths;
use super::prompt;
use super::session::{SessionArgs, front_end, install_interrupts};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::net;
use crate::passphrase;
use crate::sanitize;
use crate::session::verify::TrustPolicy;
use crate::session::{Run, Settings, User};
use crate::ui::Ui;

/// `schat dial`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DialArgs {
    /// HOST[:PORT], a petname, a ticket (schat:…), or - to paste a ticket
    ///
    /// An address is HOST, HOST:PORT, IP:PORT or [IPv6]:PORT (port 12345 unless given). A
    /// petname's stored addresses are tried, newest first, and its key is expected. A ticket
    /// comes from `schat invite` or `schat listen --p2p`: its key is expected (an invite also
    /// proves you to the listener); its TCP addresses and its iroh address are tried at once,
    /// and the first to prove the key wins. `-` asks for the ticket on the terminal, keeping it
    /// off the command line, which other users can see
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// A key known_peers has never seen: ask, accept-new or strict
    ///
    /// ask: at a terminal (refuse without one); accept-new: trust and remember it; strict:
    /// refuse it. A known address presenting a different key is always refused
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        default_value_t = TrustPolicy::Ask,
        hide_possible_values = true
    )]
    pub trust: TrustPolicy,
    /// A spoken code from `schat invite --code` (- to type it)
    ///
    /// For example 427-absurd-aftermath-acme-alkali-adult; `-` asks for it on the terminal,
    /// off the command line. The listener's key is verified by proving the code (a PAKE); a
    /// wrong code stops both sides
    #[arg(long, value_name = "CODE", conflicts_with = "pipe")]
    pub code: Option<String>,
    /// Which way to reach a listener whose ticket has both TCP and iroh addresses: any
    /// (both at once, the first to prove its key wins), tcp, or iroh
    #[arg(
        long,
        value_enum,
        value_name = "WAY",
        default_value_t = net::Via::Any,
        help_heading = "NAT options (iroh)",
        hide_short_help = true
    )]
    pub via: net::Via,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub p2p_args: p2p::P2pArgs,
    #[command(flatten)]
    pub files: super::paths::UnlockArgs,
}

/// Runs `schat dial`; returns the `Ui` in use at the end (to report an error through it).
pub(super) async fn dial(
    args: DialArgs,
    paths: &Paths,
    sources: &passphrase::Sources,
    early: Ui,
) -> (Ui, Result<()>) {
    let DialArgs {
        addr,
        trust,
        code,
        via,
        p2p_args,
        session,
        files: _,
    } = args;
    let prepared = (|| {
        let mut settings = session.settings(paths)?;
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
        let identity = paths.load_or_create(&early, sources)?;
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

/// `dial TICKET`: the ticket's key is the pin, its secret (an invite's) and addresses go with
/// the settings. A damaged ticket is refused here, before anything is dialled.
pub(super) fn with_ticket(addr: &str, settings: &mut Settings, ui: &Ui) -> Result<()> {
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
pub(super) fn code_from_terminal(ui: &Ui) -> Result<crate::invite::code::Code> {
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
