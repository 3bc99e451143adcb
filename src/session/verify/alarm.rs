//! What the user is shown when a key must be decided on: the question for a new key, and the
//! alarm for a changed one. Both show the numbers as grids (the same on every screen).

use super::*;
use crate::fingerprint;

/// The prompt for an unknown key. `None` means the user refused.
pub(super) async fn ask(
    peer: &PublicKey,
    safety: &SafetyNumber,
    addr: &str,
    input: &mut Input,
    ui: &Ui,
) -> Result<Option<(Verified, Option<String>)>> {
    // Few rows (the conversation comes next), each number once, as grids that read the same
    // on both screens.
    ui.status(format_args!(
        "new peer at {addr}: compare the safety number with them (read it aloud), or paste the \
         fingerprint they sent you"
    ));
    ui.grid("safety number:", &safety.lines());
    ui.grid("fingerprint:  ", &fingerprint::grid(peer));
    let answer = match input.ask("trust it? y / n / fingerprint: ").await {
        InputEvent::Line(line) => line,
        // Ctrl-C at the line editor: the same as the signal it stands for.
        InputEvent::Interrupted => return Err(Error::Signalled("interrupted")),
        _ => return Ok(None),
    };
    let answer = answer.trim();
    let how = match answer.to_ascii_lowercase().as_str() {
        "y" | "yes" => Verified::FirstUse,
        "" | "n" | "no" => return Ok(None),
        _ => match fingerprint::parse(answer) {
            Ok(k) if k == *peer => {
                ui.status("the fingerprint matches.");
                Verified::Fingerprint
            }
            Ok(_) => {
                ui.warn("that fingerprint does NOT match the peer's key: refusing");
                return Ok(None);
            }
            Err(e) => {
                ui.warn(format_args!("not understood ({e}): refusing"));
                return Ok(None);
            }
        },
    };
    let default = format!("peer-{}", fingerprint::short(peer));
    for _ in 0..3 {
        let name = match input
            .ask(&format!("petname for this peer [{default}]: "))
            .await
        {
            InputEvent::Line(line) => line.trim().to_string(),
            InputEvent::Interrupted => return Err(Error::Signalled("interrupted")),
            _ => break,
        };
        if name.is_empty() {
            break;
        }
        match trust::validate_name(&name) {
            Ok(()) => return Ok(Some((how, Some(name)))),
            Err(e) => ui.warn(e),
        }
    }
    Ok(Some((how, Some(default))))
}

/// What changed its key: the peer we reached at an address, or the peer we dialled by name.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// A known address presented another key.
    Address(&'a str),
    /// The petname we dialled presented another key.
    Petname,
}

pub(super) fn key_changed_alarm(
    ui: &Ui,
    addr: &str,
    entry: &Entry,
    new: &PublicKey,
    config: &TrustConfig,
) {
    key_change_alarm(ui, Changed::Address(addr), entry, new, config);
}

/// The key-change alarm: what changed, both keys (as grids: compared digit by digit), and the
/// one command that undoes exactly what was remembered — forgetting the *address* when the key
/// at an address changed (the peer's own entry may still be right), the *petname* when the key
/// of the peer we dialled by name changed.
pub fn key_change_alarm(
    ui: &Ui,
    what: Changed<'_>,
    entry: &Entry,
    new: &PublicKey,
    config: &TrustConfig,
) {
    let name = crate::sanitize::line(&entry.name);
    let (who, forget, undo) = match what {
        Changed::Address(addr) => (
            format!("The peer at {addr}, known as {name:?}, presented a different key."),
            addr.to_string(),
            format!(
                "Only if they confirm a new key, forget this address for {name:?} (its entry \
                 stays) and dial again:"
            ),
        ),
        Changed::Petname => (
            format!("{name:?} answered with a different key than the one you know."),
            name.to_string(),
            format!(
                "Only if they confirm a new key, forget the old key of {name:?} and dial again:"
            ),
        ),
    };
    ui.alarm(&[
        "WARNING: THE PEER'S KEY HAS CHANGED. YOUR KEY AND NO MESSAGE WERE SENT.",
        &who,
        "Someone may be intercepting this connection (a man in the middle), or the peer may \
         have made a new identity. Ask them through another channel.",
    ]);
    ui.grid("known key:    ", &fingerprint::grid(&entry.key));
    ui.grid("presented key:", &fingerprint::grid(new));
    ui.alarm(&[
        &format!("(known since {}: {})", entry.when, entry.how.describe()),
        &undo,
        &format!("  {} forget {forget}", config.peers_command),
    ]);
}

/// The refusal for a petname whose key changed (not "does not match --peer": there was none).
pub fn petname_key_changed(entry: &Entry) -> Error {
    Error::PeerRefused(format!(
        "{} answered with a different key than the one you know; session aborted before your \
         key was sent",
        crate::sanitize::line(&entry.name)
    ))
}
