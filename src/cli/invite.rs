//! `schat invite`: make an invite ticket, list the pending ones, revoke one.

use super::{Paths, out};
use crate::error::{Error, Result};
use crate::invite::{Invites, Pending, Ticket, TicketAddr, unix_now};
use crate::keyfile::Keyfile;
use crate::net::Address;
use crate::sanitize;
use crate::session::names;
use crate::trust;
use crate::ui::Ui;
use std::io::IsTerminal;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// Options of `schat invite`.
#[derive(Debug, Clone, clap::Args)]
pub struct InviteArgs {
    /// Your petname for the invitee [default: one is made up]
    #[arg(long, value_name = "PETNAME")]
    pub name: Option<String>,
    /// The name the invitee will know you by [default: your login name]
    ///
    /// It becomes their petname for you (they can change it). Tickets only: a spoken code
    /// carries no name
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
    /// A short code to read out over the phone, instead of a ticket
    ///
    /// The invitee runs `schat dial ADDR --code -`; the address goes separately, and is
    /// printed with the code. Both keys are verified by a PAKE; three wrong tries burn it
    #[arg(long, conflicts_with_all = ["as_name"])]
    pub code: bool,
    /// Where the invitee dials you (repeat for several) [default: this machine]
    ///
    /// HOST:PORT; repeat for several, best first. The default is this machine's addresses
    /// with --port. With --code, printed beside it to read out too
    #[arg(long = "addr", value_name = "HOST:PORT")]
    pub addrs: Vec<String>,
    /// How long the invite is valid: e.g. 90s, 30m, 24h, 7d [default: 24h; 1h with --code]
    #[arg(long, value_name = "DURATION", hide_short_help = true)]
    pub expires: Option<String>,
    /// How many people may redeem it (1: one person; more: a group for your room)
    #[arg(long, value_name = "N", default_value_t = 1, hide_short_help = true)]
    pub uses: u32,
    /// The port your `schat listen` uses, for the default addresses
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = crate::net::DEFAULT_PORT,
        hide_short_help = true
    )]
    pub port: u16,
    /// List the invites on file (pending, used, revoked)
    #[arg(long, conflicts_with_all = ["revoke", "name", "as_name", "addrs"])]
    pub list: bool,
    /// Revoke the pending invite with this id (from --list)
    #[arg(long, value_name = "ID", conflicts_with_all = ["name", "as_name", "addrs"])]
    pub revoke: Option<String>,
    /// Print JSON (the ticket and its details, or the list) instead of text
    #[arg(long, hide_short_help = true)]
    pub json: bool,
    #[command(flatten)]
    pub files: super::paths::KeyfileArgs,
}

/// Runs `schat invite`.
pub fn run(args: &InviteArgs, paths: &Paths, ui: &Ui) -> Result<()> {
    let invites = Invites::in_home(&paths.home);
    let store_error = |e: std::io::Error| Error::io("the invites file", e);
    if args.list {
        return list(&invites, args.json, ui);
    }
    if let Some(id) = &args.revoke {
        return match invites.revoke(id, unix_now()).map_err(store_error)? {
            true => {
                ui.status(format_args!("invite {} revoked", sanitize::line(id)));
                Ok(())
            }
            false => {
                // Say what it is, when it is on file at all.
                let on_file = invites.load().unwrap_or_default();
                let why = match on_file.iter().find(|p| p.id.eq_ignore_ascii_case(id)) {
                    Some(p) => format!("invite {} is {} already", p.id, list_state(p, unix_now())),
                    None => format!(
                        "no invite {} on file (`schat invite --list` shows them)",
                        sanitize::line(id)
                    ),
                };
                Err(Error::Usage(why))
            }
        };
    }
    let petname = match &args.name {
        Some(name)
            if trust::Store::in_home(&paths.home)
                .load()
                .is_ok_and(|p| p.by_name(name).is_some()) =>
        {
            return Err(Error::Usage(format!(
                "--name {name:?}: a known peer is called that already (choose another, or \
                 `schat peers rename` it first)"
            )));
        }
        Some(name) => {
            trust::validate_name(name)
                .map_err(|e| Error::Usage(format!("--name {name:?}: {e}")))?;
            name.clone()
        }
        None => String::new(),
    };
    let suggested = match &args.as_name {
        Some(name) => {
            trust::validate_name(name).map_err(|e| Error::Usage(format!("--as {name:?}: {e}")))?;
            name.clone()
        }
        None => std::env::var("USER")
            .ok()
            .filter(|u| trust::validate_name(u).is_ok() && names::check_name(u).is_ok())
            .unwrap_or_default(),
    };
    if args.uses == 0 {
        return Err(Error::Usage("--uses must be at least 1".into()));
    }
    let expires = args
        .expires
        .clone()
        .unwrap_or_else(|| if args.code { "1h" } else { "24h" }.into());
    let lifetime = parse_duration(&expires).ok_or_else(|| {
        Error::Usage(format!(
            "--expires {expires:?}: say e.g. 90s, 30m, 24h or 7d"
        ))
    })?;
    if args.code {
        // Its words are kept on file until it is used: not for long.
        if lifetime > 86_400 {
            return Err(Error::Usage(
                "a spoken code lives at most 24 h (--expires); use a ticket for longer".into(),
            ));
        }
        return spoken_code(args, &invites, lifetime, &petname, ui);
    }
    let addrs = match args.addrs.is_empty() {
        false => args
            .addrs
            .iter()
            .map(|a| ticket_addr(a))
            .collect::<Result<Vec<_>>>()?,
        true => crate::net::tcp::reachable_addrs(args.port),
    };
    if addrs.is_empty() {
        return Err(Error::Usage(
            "this machine has no address to put in the ticket: give --addr HOST:PORT".into(),
        ));
    }
    let key = Keyfile::read(&paths.identity)
        .map_err(Error::from)?
        .public_key();
    // A `listen --p2p` of this home left its iroh address: dialers get it too.
    let mut addrs = addrs;
    let iroh = p2p_address(paths, &key);
    if !iroh.is_empty() {
        addrs.truncate(crate::invite::ticket::MAX_ADDRS / 2);
        let room = crate::invite::ticket::MAX_ADDRS - addrs.len();
        addrs.extend(iroh.into_iter().take(room));
    }
    let mut secret = Zeroizing::new([0u8; crate::invite::ticket::SECRET_LEN]);
    rand::fill(&mut secret[..]);
    let now = unix_now();
    let ticket = Ticket {
        key,
        secret: Some(secret.clone()),
        expires: now.saturating_add(lifetime),
        name: suggested,
        addrs,
    };
    invites
        .add(
            Pending::new(&secret, ticket.expires, args.uses, &petname),
            now,
        )
        .map_err(store_error)?;
    let text = ticket.encode();
    let id = ticket.id().unwrap_or_default();
    let expires = timestamp(ticket.expires);
    if args.json {
        let shown: Vec<String> = ticket.addrs.iter().map(ToString::to_string).collect();
        let object = serde_json::json!({
            "ticket": text,
            "id": id,
            "expires": expires,
            "uses": args.uses,
            "petname": (!petname.is_empty()).then_some(&petname),
            "addresses": shown,
        });
        out(object)?;
        return Ok(());
    }
    out(&text)?;
    if std::io::stderr().is_terminal() {
        let shown: Vec<String> = ticket.addrs.iter().map(ToString::to_string).collect();
        ui.status(format_args!(
            "invite {} (for {} {}, until {expires})",
            id,
            args.uses,
            if args.uses == 1 { "person" } else { "people" }
        ));
        ui.status(format_args!(
            "send the line above over a channel you trust (who reads it first can use \
             it); they run `schat dial -` and paste it"
        ));
        ui.status(format_args!(
            "keep `schat listen` running, reachable at {}; revoke with `schat invite \
             --revoke {}`",
            shown.join(", "),
            id
        ));
        if args.addrs.is_empty() {
            ui.status(format_args!(
                "(those are this machine's addresses with port {}: give --addr HOST:PORT \
                 if your listener uses another port, or is reached through a public address)",
                args.port
            ));
        }
    }
    Ok(())
}

/// `schat invite --code`: a code to read out, filed under a fresh nameplate.
fn spoken_code(
    args: &InviteArgs,
    invites: &Invites,
    lifetime: u64,
    petname: &str,
    ui: &Ui,
) -> Result<()> {
    use crate::invite::code::Code;
    let now = unix_now();
    let expires = now.saturating_add(lifetime);
    let words = Code::generate(100);
    let nameplate = invites
        .add_code(words.words(), expires, args.uses, petname, now)
        .map_err(|e| Error::io("the invites file", e))?;
    let code = Code::from_parts(nameplate, words.words())
        .map_err(|e| Error::Internal(format!("a generated code does not parse: {e}")))?;
    let until = timestamp(expires);
    // The code goes with an address: the same ones a ticket would carry.
    let addrs: Vec<String> = match args.addrs.is_empty() {
        false => args
            .addrs
            .iter()
            .map(|a| ticket_addr(a).map(|a| a.to_string()))
            .collect::<Result<Vec<_>>>()?,
        true => crate::net::tcp::reachable_addrs(args.port)
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    if args.json {
        let object = serde_json::json!({
            "code": code.spoken().as_str(),
            "id": nameplate.to_string(),
            "expires": until,
            "uses": args.uses,
            "petname": (!petname.is_empty()).then_some(petname),
            "addresses": addrs,
        });
        out(object)?;
        return Ok(());
    }
    out(code.spoken().as_str())?;
    if std::io::stderr().is_terminal() {
        ui.status(format_args!(
            "a code for {} {} (until {until}); read it to them, with an address where \
             they reach you: {}",
            args.uses,
            if args.uses == 1 { "person" } else { "people" },
            match addrs.is_empty() {
                true => "(this machine has none: give --addr HOST:PORT)".to_string(),
                false => addrs.join(", "),
            }
        ));
        ui.status(format_args!(
            "they run `schat dial {} --code -` and type it",
            addrs.first().map_or("YOUR-ADDRESS", String::as_str)
        ));
        ui.status(format_args!(
            "keep `schat listen` running; three wrong tries burn the code; revoke with \
             `schat invite --revoke {nameplate}`"
        ));
    }
    Ok(())
}

/// What `--list` calls an invite's state.
fn list_state(p: &Pending, now: u64) -> &'static str {
    match p.state {
        crate::invite::store::State::Open if now >= p.expires => "expired",
        crate::invite::store::State::Open => "pending",
        crate::invite::store::State::Used => "used",
        crate::invite::store::State::Revoked => "revoked",
        crate::invite::store::State::Burned => "burned",
    }
}

fn list(invites: &Invites, json: bool, ui: &Ui) -> Result<()> {
    let now = unix_now();
    let all = invites
        .load()
        .map_err(|e| Error::io("the invites file", e))?;
    if json {
        let list: Vec<serde_json::Value> = all
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id,
                    "state": list_state(p, now),
                    "uses_left": p.uses,
                    "expires": timestamp(p.expires),
                    "petname": (!p.petname.is_empty()).then_some(&p.petname),
                })
            })
            .collect();
        out(serde_json::Value::Array(list))?;
        return Ok(());
    }
    if all.is_empty() {
        ui.status(format_args!("no invites on file"));
    }
    // Hand edits this version cannot read stay in the file; say where they are.
    for line in invites.unreadable().unwrap_or_default() {
        ui.warn(format_args!(
            "{} line {line} is not an invite this schat can read; it is kept as it is",
            invites.path().display()
        ));
    }
    if !all.is_empty() {
        out(format_args!(
            "{:<8}  {:<6}  {:<8}  {:<9}  {:<20}  petname",
            "id", "kind", "state", "uses left", "until"
        ))?;
    }
    for p in &all {
        let kind = match p.secret {
            crate::invite::store::Secret::Hash(_) => "ticket",
            crate::invite::store::Secret::Code { .. } => "code",
        };
        let state = list_state(p, now);
        let uses = if state == "pending" {
            p.uses.to_string()
        } else {
            "-".into()
        };
        out(format_args!(
            "{:<8}  {kind:<6}  {state:<8}  {uses:<9}  {:<20}  {}",
            p.id,
            timestamp(p.expires),
            sanitize::line(if p.petname.is_empty() {
                "-"
            } else {
                &p.petname
            })
        ))?;
    }
    Ok(())
}

/// `90s`, `30m`, `24h`, `7d` (or plain seconds) in seconds; at most a year.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let seconds = n.checked_mul(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    })?;
    (1..=366 * 86_400).contains(&seconds).then_some(seconds)
}

fn ticket_addr(text: &str) -> Result<TicketAddr> {
    let addr = Address::parse(text).map_err(|e| Error::Usage(format!("--addr {text:?}: {e}")))?;
    if addr.host.is_empty() || addr.port == 0 {
        return Err(Error::Usage(format!(
            "--addr {text:?}: a ticket needs a host and a port to dial"
        )));
    }
    Ok(match addr.host.parse::<IpAddr>() {
        Ok(ip) => TicketAddr::Ip(ip, addr.port),
        Err(_) => TicketAddr::Host(addr.host, addr.port),
    })
}

/// The iroh parts of the address a running `listen --p2p` left in this home (see
/// `net::p2p_address_file`), if it is for our key and that listener still runs; nothing
/// otherwise. (A file: read as
/// untrusted, decoded strictly.)
fn p2p_address(paths: &Paths, key: &crate::keys::PublicKey) -> Vec<TicketAddr> {
    // Only while that listener runs: it holds the lock (one left by a killed listener is not).
    let alive = std::fs::File::open(paths.home.join("p2p-address.lock")).is_ok_and(|lock| {
        matches!(
            lock.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        )
    });
    let Ok(text) = std::fs::read_to_string(paths.home.join("p2p-address")) else {
        return Vec::new();
    };
    if !alive {
        return Vec::new();
    }
    match Ticket::decode(&text) {
        Ok(t) if t.key == *key && t.endpoint().is_some() => {
            t.addrs.into_iter().filter(|a| !a.is_tcp()).collect()
        }
        _ => Vec::new(),
    }
}

fn timestamp(unix: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(unix).unwrap_or(i64::MAX))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("120"), Some(120));
        for bad in ["", "0s", "5w", "h", "-1h", "400d", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
