//! Who the peer of a session is, as far as we know (its key, how we name it, how it was
//! verified), and where known peers are kept.

use crate::fingerprint;
use crate::keys::PublicKey;
use crate::safety::SafetyNumber;
use crate::trust::{Entry, Store};
use crate::ui::Speaker;

/// Who the peer is, as far as we know, once we have decided to talk to it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's static key.
    pub key: PublicKey,
    /// How to show it: its petname, or `unverified <short fingerprint>`.
    pub label: String,
    /// Its known_peers entry, if any.
    pub entry: Option<Entry>,
    /// Both keys' safety number, computed when first wanted: 5,200 hashes per key is the
    /// dearest thing a stranger can make a listener do, so a connection that never joins
    /// never pays for it.
    safety: std::sync::OnceLock<SafetyNumber>,
    /// Our key, for the safety number.
    local: PublicKey,
    /// The network address it connected from or was dialled at.
    pub address: Option<String>,
    /// The invite it redeemed to get in, if it did (its id).
    pub invite: Option<String>,
}

impl PeerInfo {
    pub(crate) fn new(key: PublicKey, local: &PublicKey, entry: Option<Entry>) -> Self {
        let label = match &entry {
            Some(e) => e.name.clone(),
            None => format!("unverified {}", fingerprint::short(&key)),
        };
        PeerInfo {
            key,
            label,
            entry,
            safety: std::sync::OnceLock::new(),
            local: *local,
            address: None,
            invite: None,
        }
    }

    /// Both keys' safety number.
    pub fn safety(&self) -> &SafetyNumber {
        self.safety
            .get_or_init(|| SafetyNumber::new(&self.local, &self.key))
    }

    /// How the UI names this peer.
    pub fn speaker(&self) -> Speaker<'_> {
        Speaker {
            label: &self.label,
            key: &self.key,
            petname: self.entry.as_ref().map(|e| e.name.as_str()),
            name: None,
        }
    }

    /// Our own key (the other half of the safety number).
    pub fn local(&self) -> &PublicKey {
        &self.local
    }

    /// `/whois`: everything we know about the peer.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!("peer:          {}", self.label),
            format!("fingerprint:   {}", fingerprint::grouped(&self.key)),
            format!(
                "address:       {}",
                self.address.as_deref().unwrap_or("unknown")
            ),
        ];
        lines.push(match &self.entry {
            Some(e) => format!("verification:  {} ({})", e.how.describe(), e.when),
            None => "verification:  none (not in known_peers)".into(),
        });
        lines.push(format!("safety number: {}", self.safety()));
        lines
    }

    /// One line on how this peer is verified.
    pub fn trust_line(&self) -> String {
        match &self.entry {
            Some(e) => format!("{} ({}, {})", e.name, e.how.describe(), e.when),
            None => format!("{} (not in known_peers)", self.label),
        }
    }
}

/// Where known peers live and how to tell the user to edit them.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The known_peers store.
    pub store: Store,
    /// How to invoke `schat peers` for this home (e.g. `schat --home /x peers`).
    pub peers_command: String,
}

impl TrustConfig {
    /// The pending invites of the same home.
    pub fn invites(&self) -> crate::invite::Invites {
        crate::invite::Invites::in_home(&crate::fsutil::parent_dir(self.store.path()))
    }
}
