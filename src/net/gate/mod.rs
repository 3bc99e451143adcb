//! Admission control before authentication: who may hold a handshake slot.
//!
//! Until a handshake finishes, a connection is anonymous and costs the listener a slot, a task
//! and a deadline. Without limits, a few dozen silent sockets renewed every few seconds hold
//! every slot and genuine peers are turned away. The rules, after OpenSSH's `MaxStartups` /
//! `PerSourcePenalties` and WireGuard's preference for the newcomer under load:
//!
//! - at most `per_source` handshakes at once from one source (an IPv4 address, or an IPv6
//!   /64: one host's worth of addresses); up to [`WAITING_PER_SOURCE`] more wait for a slot of
//!   their own source (unread, within the handshake deadline); beyond that a source is refused
//!   and *penalised*;
//! - when every slot is taken, a newcomer evicts the oldest pending handshake of the source
//!   with the most pending handshakes (then the highest penalty), as long as that source holds
//!   more than the newcomer's would; otherwise the newcomer is refused. One busy source can
//!   therefore never keep a quieter one out;
//! - what happens to a penalised source's connections is logged once per interval as a
//!   summary, not once per connection, so a flood cannot flood the log too;
//! - a source's handshakes that have started their first message but not finished it within
//!   [`GateLimits::stalled_after`] (a dialer writes message 1 whole: one that starts and stops
//!   stalls on purpose), or sent nothing at all within [`GateLimits::silent_after`] (longer:
//!   a real dialer on a busy machine may be slow to compute it), give way to a connection of
//!   the same source whose first message has already arrived: behind one NAT, stalled
//!   sockets of an attacker cannot keep out a dialer that shares its address. One that sent
//!   message 1 is never evicted so: its dialer did real work;
//! - the expensive step (message 1: an ML-KEM encapsulation and two X25519) is paced per
//!   source by a token bucket ([`GateLimits::rate`]): replaying a cached message 1 cannot make
//!   the listener burn a core.
//!
//! Pure bookkeeping: no sockets, no clock of its own (callers pass `now`), so it is tested
//! without a network. `H` is what the caller needs to stop an evicted handshake.

use crate::bucket::TokenBucket;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The limits a listener applies before authentication.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateLimits {
    /// Handshakes in progress at once, in all.
    pub max_pending: usize,
    /// Handshakes in progress at once from one source.
    pub per_source: usize,
    /// How often a penalised source's events are summarised in the log.
    pub report_every: Duration,
    /// A handshake pending this long is stale (a real one takes a few round trips): when every
    /// slot is taken, any newcomer may evict the stalest, so many sources holding one silent
    /// slot each cannot keep everyone out either.
    pub stale_after: Duration,
    /// A handshake that started its first message and has not finished it this long after it
    /// started is stalled: a connection of the same source whose first message is ready may
    /// take its place.
    pub stalled_after: Duration,
    /// Likewise for one that has sent nothing at all, after this (longer) time.
    pub silent_after: Duration,
    /// Handshakes one source may start per second (message 1 worked on), and at once.
    pub rate: HandshakeRate,
}

/// How many handshakes a source may make the listener compute: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandshakeRate {
    pub per_sec: f64,
    pub burst: f64,
}

/// The default pace per source: 20 handshakes a second, 40 at once (50 scripts behind one
/// address all get in within a second; a replayed message 1 costs at most 20 a second).
pub const DEFAULT_RATE: HandshakeRate = HandshakeRate {
    per_sec: 20.0,
    burst: 40.0,
};

/// A handshake gets no longer than this to make progress before it counts as stalled.
pub const STALLED_AFTER: Duration = Duration::from_secs(1);

/// How long a handshake may wait for its source's pace before it is refused instead (a debt
/// that would grow without end).
pub const RATE_PATIENCE: Duration = Duration::from_secs(2);

impl GateLimits {
    /// Connections that may wait for a slot, from all sources together.
    fn max_waiting(&self) -> usize {
        self.max_pending * 2
    }
}

/// Lines one source may cost the log per interval before it is summarised instead.
pub const LINES_PER_SOURCE: u32 = 10;

/// Handshakes from one address at once unless configured.
pub const DEFAULT_PER_SOURCE: usize = 8;

/// How often the log summarises a penalised source.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Where a connection comes from, for counting: an IPv4 address, an IPv6 /64, or — for an
/// iroh connection that arrives through a relay, whose IP is the relay's — the endpoint id the
/// relay vouches for (its first 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Ip(IpAddr),
    Relayed([u8; 8]),
}

impl Source {
    /// The source of a peer address (IPv4-mapped IPv6 counts as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Source::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The source of a relayed iroh connection from the endpoint `id`.
    pub fn relayed(id: &[u8; 32]) -> Self {
        let mut short = [0u8; 8];
        short.copy_from_slice(&id[..8]);
        Source::Relayed(short)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Source::Ip(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Source::Relayed(id) => write!(f, "iroh endpoint {} (relayed)", hex::encode(&id[..5])),
        }
    }
}

/// The gate's answer to a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<H> {
    /// It may handshake under this ticket number; `evicted` (if any) must be stopped now, and
    /// its source may have connections waiting for the slot it had.
    Admitted {
        ticket: u64,
        evicted: Option<(H, Source)>,
    },
    /// Its source has all its slots: hold it (without reading it) until one frees, then call
    /// [`Gate::resume`]; or [`Gate::abandon`] it when it has waited out the deadline.
    Wait,
    /// Close it at once. `log` is a line to show, if this source is not being summarised.
    Refused { log: Option<String> },
}

/// Connections from one source that may wait for a handshake slot of their own. (Many dialers
/// behind one address, or 50 scripts on one machine, connect at once; they queue instead of
/// being refused, and a flood from one address queues behind itself only.)
pub const WAITING_PER_SOURCE: usize = 64;

struct Pending<H> {
    source: Source,
    started: Instant,
    /// Whole handshake messages received.
    messages: u32,
    /// Its first bytes have arrived.
    started_sending: bool,
    handle: Option<H>,
}

#[derive(Default)]
struct SourceState {
    pending: usize,
    /// Lines logged one by one in this interval.
    lines: u32,
    /// Connections held until one of this source's slots frees.
    waiting: usize,
    /// Grows with every refusal and eviction, with a failed handshake once the source is
    /// penalised, and past [`LINES_PER_SOURCE`] logged lines; halves every interval.
    penalty: u32,
    /// Events not logged one by one since the last summary.
    suppressed: u64,
    /// Its pace of handshakes (created at its first).
    pace: Option<TokenBucket>,
}

impl SourceState {
    /// A penalised source is summarised instead of logged line by line.
    fn penalised(&self) -> bool {
        self.penalty > 0
    }
}

/// The pending handshakes and what each source has done lately.
pub struct Gate<H> {
    limits: GateLimits,
    pending: BTreeMap<u64, Pending<H>>,
    sources: HashMap<Source, SourceState>,
    next_ticket: u64,
    last_report: Option<Instant>,
}

impl<H> Gate<H> {
    /// An empty gate.
    pub fn new(limits: GateLimits) -> Self {
        Gate {
            limits,
            pending: BTreeMap::new(),
            sources: HashMap::new(),
            next_ticket: 0,
            last_report: None,
        }
    }

    /// The limits it applies.
    pub fn limits(&self) -> &GateLimits {
        &self.limits
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decides about a new connection from `source`.
    pub fn admit(&mut self, source: Source, now: Instant) -> Admit<H> {
        let waiting_in_all: usize = self.sources.values().map(|s| s.waiting).sum();
        let state = self.sources.entry(source).or_default();
        // Over its cap, or others of its source already in line: wait behind them.
        if state.pending >= self.limits.per_source || state.waiting > 0 {
            if state.waiting < WAITING_PER_SOURCE && waiting_in_all < self.limits.max_waiting() {
                state.waiting += 1;
                return Admit::Wait;
            }
            state.penalty = state.penalty.saturating_add(1);
            state.suppressed += 1;
            return Admit::Refused { log: None };
        }
        self.admit_now(source, now)
    }

    /// A connection that waited (see [`Admit::Wait`]) tries again, now that a slot of its
    /// source is free.
    pub fn resume(&mut self, source: Source, now: Instant) -> Admit<H> {
        self.abandon(source);
        match self.sources.get(&source) {
            Some(state) if state.pending >= self.limits.per_source => {
                // Still full (another connection took the slot): back in line.
                if let Some(state) = self.sources.get_mut(&source) {
                    state.waiting += 1;
                }
                Admit::Wait
            }
            _ => self.admit_now(source, now),
        }
    }

    /// A waiting connection gave up (or waited out the deadline) and was closed.
    pub fn abandon(&mut self, source: Source) {
        if let Some(state) = self.sources.get_mut(&source) {
            state.waiting = state.waiting.saturating_sub(1);
        }
    }

    fn admit_now(&mut self, source: Source, now: Instant) -> Admit<H> {
        let state = self.sources.entry(source).or_default();
        let mut evicted = None;
        if self.pending.len() >= self.limits.max_pending {
            let newcomer_would_hold = state.pending + 1;
            let stale = self.stalest().filter(|ticket| {
                now.duration_since(self.pending[ticket].started) >= self.limits.stale_after
            });
            match self.victim() {
                Some(ticket)
                    if self.pending[&ticket].source != source
                        && self.sources[&self.pending[&ticket].source].pending
                            > newcomer_would_hold =>
                {
                    evicted = self.evict(ticket);
                }
                _ if stale.is_some() => evicted = stale.and_then(|ticket| self.evict(ticket)),
                _ => {
                    let max_pending = self.limits.max_pending;
                    let log = self.event(source, |s| {
                        format!(
                            "connection from {s}: closed at once ({max_pending} handshakes already in progress)"
                        )
                    });
                    return Admit::Refused { log };
                }
            }
        }
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.pending.insert(
            ticket,
            Pending {
                source,
                started: now,
                messages: 0,
                started_sending: false,
                handle: None,
            },
        );
        self.sources.entry(source).or_default().pending += 1;
        Admit::Admitted { ticket, evicted }
    }

    /// Remembers how to stop the handshake under `ticket` (once its task exists). If it has
    /// already finished, `handle` is dropped.
    pub fn attach(&mut self, ticket: u64, handle: H) {
        if let Some(p) = self.pending.get_mut(&ticket) {
            p.handle = Some(handle);
        }
    }

    /// A whole handshake message arrived for `ticket`: it is not stalled.
    pub fn progress(&mut self, ticket: u64) {
        if let Some(p) = self.pending.get_mut(&ticket) {
            p.messages += 1;
        }
    }

    /// The first bytes of the handshake under `ticket` arrived.
    pub fn started(&mut self, ticket: u64) {
        if let Some(p) = self.pending.get_mut(&ticket) {
            p.started_sending = true;
        }
    }

    /// Whether `source` holds a handshake whose first message has not come within
    /// `stalled_after`.
    pub fn stalled(&self, source: Source, now: Instant) -> bool {
        self.oldest_stalled(source, now).is_some()
    }

    fn oldest_stalled(&self, source: Source, now: Instant) -> Option<u64> {
        self.pending
            .iter()
            .filter(|(_, p)| {
                let limit = match p.started_sending {
                    true => self.limits.stalled_after,
                    false => self.limits.silent_after,
                };
                p.source == source && p.messages == 0 && now.duration_since(p.started) >= limit
            })
            .min_by_key(|(ticket, p)| (p.started, **ticket))
            .map(|(ticket, _)| *ticket)
    }

    /// A waiting connection of `source` whose first message has arrived takes the place of the
    /// source's oldest stalled handshake (which must be stopped: `evicted`). `Wait` when the
    /// source has none stalled.
    pub fn replace_stalled(&mut self, source: Source, now: Instant) -> Admit<H> {
        let Some(stalled) = self.oldest_stalled(source, now) else {
            return Admit::Wait;
        };
        self.abandon(source);
        let evicted = self.evict(stalled);
        match self.admit_now(source, now) {
            Admit::Admitted { ticket, .. } => Admit::Admitted { ticket, evicted },
            // (A slot was just freed: admit_now cannot refuse.)
            other => other,
        }
    }

    /// Message 1 of a handshake from `source` arrived: how long to wait before working on it,
    /// at the source's pace; `None` when the wait would be longer than [`RATE_PATIENCE`] (the
    /// connection is then closed, and the source penalised).
    pub fn pace(&mut self, source: Source, now: Instant) -> Option<Duration> {
        let rate = self.limits.rate;
        let state = self.sources.entry(source).or_default();
        let bucket = state
            .pace
            .get_or_insert_with(|| TokenBucket::new(rate.per_sec, rate.burst, now));
        let wait = bucket.take_within(1.0, RATE_PATIENCE, now);
        if wait.is_none() {
            // Summarised from now on (the task's failure line goes through `event`).
            state.penalty = state.penalty.saturating_add(1);
        }
        wait
    }

    /// The handshake under `ticket` is over (admitted, refused or failed): its slot is free.
    /// A failure counts against its source.
    pub fn finished(&mut self, ticket: u64, failed: bool) {
        let Some(p) = self.pending.remove(&ticket) else {
            return;
        };
        if let Some(state) = self.sources.get_mut(&p.source) {
            state.pending = state.pending.saturating_sub(1);
            if failed && state.penalised() {
                state.penalty = state.penalty.saturating_add(1);
            }
        }
    }

    /// A line about a connection from `source` (a failed handshake, a refusal): returned to be
    /// shown now, or `None` when the source is penalised and its events are being summarised.
    pub fn event(&mut self, source: Source, line: impl FnOnce(Source) -> String) -> Option<String> {
        let state = self.sources.entry(source).or_default();
        if state.penalised() || state.lines >= LINES_PER_SOURCE {
            // Summarised from now on: one source cannot flood the log, one line at a time
            // either.
            state.penalty = state.penalty.max(1);
            state.suppressed += 1;
            None
        } else {
            state.lines += 1;
            Some(line(source))
        }
    }

    /// Called regularly: once per interval, one summary line per source whose events were
    /// held back, and penalties decay. Returns nothing between intervals.
    pub fn report(&mut self, now: Instant) -> Vec<String> {
        let due = self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= self.limits.report_every);
        if !due {
            return Vec::new();
        }
        self.last_report = Some(now);
        let secs = self.limits.report_every.as_secs();
        let per_source = self.limits.per_source;
        let mut lines: Vec<(Source, String)> = Vec::new();
        self.sources.retain(|source, state| {
            if state.suppressed > 0 {
                lines.push((
                    *source,
                    format!(
                        "connections from {source}: {} refused, evicted or failed in the last {secs} s \
                         (too many at once; at most {per_source} handshakes per address)",
                        state.suppressed
                    ),
                ));
                state.suppressed = 0;
            }
            state.penalty /= 2;
            state.lines = 0;
            let pacing = state.pace.as_mut().is_some_and(|b| !b.is_full(now));
            state.pending > 0 || state.waiting > 0 || state.penalty > 0 || pacing
        });
        lines.sort();
        lines.into_iter().map(|(_, line)| line).collect()
    }

    /// The pending handshake that has waited longest.
    fn stalest(&self) -> Option<u64> {
        self.pending
            .iter()
            .min_by_key(|(ticket, p)| (p.started, **ticket))
            .map(|(ticket, _)| *ticket)
    }

    /// The pending handshake to give up first: from the source holding the most slots (then
    /// the most penalised), its oldest.
    fn victim(&self) -> Option<u64> {
        self.pending
            .iter()
            .max_by(|(ta, a), (tb, b)| {
                let (sa, sb) = (&self.sources[&a.source], &self.sources[&b.source]);
                (sa.pending, sa.penalty)
                    .cmp(&(sb.pending, sb.penalty))
                    // Older (smaller start time, then smaller ticket) wins the max.
                    .then(b.started.cmp(&a.started))
                    .then(tb.cmp(ta))
            })
            .map(|(ticket, _)| *ticket)
    }

    fn evict(&mut self, ticket: u64) -> Option<(H, Source)> {
        let p = self.pending.remove(&ticket)?;
        if let Some(state) = self.sources.get_mut(&p.source) {
            state.pending = state.pending.saturating_sub(1);
            state.penalty = state.penalty.saturating_add(1);
            state.suppressed += 1;
        }
        p.handle.map(|h| (h, p.source))
    }
}

#[cfg(test)]
mod tests;
