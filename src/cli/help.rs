//! What `-h`, `--help`, the man pages and the completions say beyond the options themselves:
//! the first steps, each command's examples, the exit codes; and `schat completions` and
//! `schat manpages`, generated from the same clap definitions so that they cannot drift.
//!
//! `-h` is a screen (80×24, checked by tests/docs.rs): a summary, the options most runs need,
//! and examples. `--help` has every option, grouped, with the details and the exit codes.

use crate::error::{Error, Result};
use std::path::Path;

/// `schat -h` and `--help`: what it is, then the five commands a first chat needs.
pub(super) const TOP_TEMPLATE: &str = "\
{about-with-newline}
First steps (see each command's -h for examples):
  schat keygen                      create your identity
  schat fingerprint                 show it, to send to your peer
  schat peers add FINGERPRINT NAME  let that peer into your rooms
  schat listen                      wait for admitted peers on port 12345
  schat dial HOST                   connect to a listener

{usage-heading} {usage}

{all-args}{after-help}";

/// Said after the options in every `--help` that runs a session.
macro_rules! exit_codes {
    () => {
        "\
Exit status:
  0  the session ended cleanly (a QUIT without a reason), nothing sent was
     turned away, the peer confirmed showing every line (when it sends
     receipts), and a pipe's peer confirmed writing everything out
  1  error: network, protocol, keyfile, a connection cut without QUIT and
     not resumed within --resume-grace, a silent peer, a peer that aborted (a QUIT with a reason), lines the peer
     never confirmed, a signal while a question waited, or a pipe stopped by
     Ctrl-C or a signal
  2  usage error
  3  you refused the peer's key: it did not match --peer, it changed since
     you last saw this address, or it is unknown (or, with --trust strict,
     new at this address)
  4  the peer turned you away: it refused your key, the room was full, it
     never welcomed you, nobody answered your knock, or it runs the other
     mode (chat against --pipe)"
    };
}

/// `listen -h`'s examples; `--help` has more, and the exit codes.
macro_rules! listen_examples {
    () => {
        "\
Examples:
  schat listen                        wait on port 12345 for admitted peers
  schat listen --p2p                  reachable behind NAT too: prints a ticket
  schat listen --pipe --peer alice >file        receive a file from alice"
    };
}
pub(super) const LISTEN_EXAMPLES: &str = listen_examples!();
pub(super) const LISTEN_LONG: &str = concat!(
    listen_examples!(),
    "
  schat listen 127.0.0.1:0 --once     any free port on loopback; exit after one
  schat listen --json </dev/null      a service: JSON events until a signal
  schat listen --accept-files ~/in    save every file offered into ~/in, unasked

",
    exit_codes!()
);

macro_rules! dial_examples {
    () => {
        "\
Examples:
  schat dial 192.168.1.20             port 12345; asks about a key it never saw
  schat dial bob                      a known peer, at its stored addresses
  schat dial -                        paste a ticket from `schat invite`
  tar c dir | schat dial bob --pipe   send a directory (bob: listen --pipe)"
    };
}
/// `schat --help`'s last words: where the guides are, the environment, the exit codes.
pub(super) const TOP_LONG: &str = concat!(
    "Guides: the docs/ directory beside README.md; man pages: schat manpages DIR

Environment:
  SCHAT_HOME            the home directory (--home)
  SCHAT_PASSPHRASE      the keyfile's passphrase (taken out of the environment)
  SCHAT_NO_AES=1        stay on ChaCha20-Poly1305 even with AES instructions
  SCHAT_LOG=iroh=debug  iroh's logs on stderr (never keys or content)
  NO_COLOR=1            no colours at a terminal

",
    exit_codes!()
);

pub(super) const DIAL_EXAMPLES: &str = dial_examples!();
pub(super) const DIAL_LONG: &str = concat!(
    dial_examples!(),
    "
  schat dial bob --send a.pdf --send pics/   offer them, leave once delivered

",
    exit_codes!()
);

pub(super) const SEND_EXAMPLES: &str = "\
Examples:
  schat send report.pdf --to bob      dial bob (a known peer) and offer it
  schat send pics/ --to 10.0.0.7      a folder, to a listener at that address
  schat send a.iso                    wait on port 12345 for the receiver to dial
  schat send a.iso --p2p              …or behind NAT: prints a ticket for it";

pub(super) const RECEIVE_EXAMPLES: &str = "\
Examples:
  schat receive --from bob            dial bob, save what it sends in Downloads
  schat receive --into ~/in           wait on port 12345 for the sender to dial
  schat receive --from - --into .     paste the sender's ticket (send --p2p)";

pub(super) const KEYGEN_EXAMPLES: &str = "\
Examples:
  schat keygen                        asks for a passphrase (empty for none)
  schat --home /tmp/alice keygen --no-passphrase";

pub(super) const FINGERPRINT_EXAMPLES: &str = "\
Examples:
  schat fingerprint                   grouped, to read out
  schat fingerprint --raw             64 hex digits, for scripts";

pub(super) const PEERS_EXAMPLES: &str = "\
Examples:
  schat peers list
  schat peers add FINGERPRINT alice   admit alice's key (64 hex digits)
  schat peers verify alice            compare the safety number, record it
  schat peers revoke alice            keep her key, stop letting her in";

pub(super) const INVITE_EXAMPLES: &str = "\
Examples:
  schat invite --name bob --as alice  a ticket; bob runs `schat dial -`, pastes it
  schat invite --code                 a code to read out; `schat dial HOST --code -`
  schat invite --list";

pub(super) const PASSWD_EXAMPLES: &str = "\
Examples:
  schat passwd                        asks for the current and the new passphrase
  schat passwd --no-passphrase        store the key unprotected";

pub(super) const RELAY_EXAMPLES: &str = "\
Examples:
  schat relay --acme-domain relay.example.org --acme-contact you@example.org
  schat relay [::]:443 --tls-cert fullchain.pem --tls-key privkey.pem
  schat relay 127.0.0.1:3340 --insecure-http        tests and closed LANs only";

pub(super) const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  schat completions bash > ~/.local/share/bash-completion/completions/schat
  schat completions zsh > ~/.zfunc/_schat
  schat completions fish > ~/.config/fish/completions/schat.fish";

pub(super) const MANPAGES_EXAMPLES: &str = "\
Examples:
  schat manpages ~/.local/share/man/man1   then: man schat-listen";

/// `schat completions SHELL`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = <super::Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "schat", &mut script);
    super::out_bytes(&script)
}

/// `schat manpages DIR`: `schat.1` and a page per command (`schat-listen.1`, and
/// `schat-peers-add.1` for the commands under `peers`), written into DIR (created if need
/// be). Prints the files it wrote.
pub(super) fn manpages(dir: &Path) -> Result<()> {
    let mut command = <super::Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    // Gives each command its full name (schat-peers-add) and usage line (schat peers add).
    command.build();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    write_pages(command, dir)
}

/// Writes the page of `command` and of each command under it, naming each file written.
fn write_pages(command: clap::Command, dir: &Path) -> Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|e| Error::io("rendering a man page", e))?;
    let path = dir.join(man.get_filename());
    std::fs::write(&path, page).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    super::out(path.display())?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir)?;
    }
    Ok(())
}
