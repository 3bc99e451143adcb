//! The accept loop: connections from every transport, admitted through the [`Gate`] before any
//! work is done for them, each handshaking in a task of its own.

use super::admit::{self};
use super::gate::{Admit, Gate, Source};
use super::iroh;
use super::stream::{Reader, Writer};
use super::{GateLimits, tcp};
use crate::error::{Error, Result};
use crate::session::room::Connection;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// How often the accept loop lets the gate summarise penalised sources.
const REPORT_TICK: Duration = Duration::from_secs(1);

/// A connection accepted on either transport, before its handshake.
enum Accepted {
    Tcp(TcpStream),
    Quic(::iroh::endpoint::Connection),
}

/// Aborts a task when dropped (the iroh accept task ends with the accept loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes iroh's incoming connections: each completes its QUIC handshake in its own task (a few
/// seconds at most, `max_pending` at once; when all are busy, a newcomer must first prove its
/// address with a QUIC retry, or is refused), then goes to the accept loop like an accepted
/// TCP socket, where the gate decides when it may open its stream and handshake.
fn accept_iroh(
    endpoint: Arc<iroh::P2p>,
    max_pending: usize,
    accepted: mpsc::Sender<(::iroh::endpoint::Connection, iroh::Origin)>,
) -> AbortOnDrop {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_pending.max(1)));
    AbortOnDrop(tokio::spawn(async move {
        while let Some(incoming) = endpoint.incoming().await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                if iroh::should_retry(&incoming) {
                    let _ = incoming.retry();
                } else {
                    incoming.refuse();
                }
                continue;
            };
            let accepted = accepted.clone();
            tokio::spawn(async move {
                // A connection that never completes is dropped quietly, like a TCP
                // connection that never completes.
                if let Ok(connection) = iroh::handshake(incoming).await {
                    let _ = accepted.send(connection).await;
                }
                drop(slot);
            });
        }
    }))
}

/// Accepts connections for ever, each handshaking in its own task, admitted through the
/// [`Gate`]: per-address caps, eviction of the busiest source's oldest handshake when full,
/// stalled handshakes giving way to ready ones of their own address, a pace per address, and
/// one log line per penalised source per interval (see [`gate`]).
pub(super) async fn accept_loop(
    listener: &TcpListener,
    endpoint: Option<Arc<iroh::P2p>>,
    accepting: Arc<admit::Accepting>,
    limits: GateLimits,
    reports: mpsc::Sender<Connection<Reader, Writer>>,
) -> std::convert::Infallible {
    let gate = Arc::new(Mutex::new(Gate::<AbortHandle>::new(limits)));
    let mut tick = tokio::time::interval(REPORT_TICK);
    // How often connections waiting behind a stalled handshake of their own address are
    // looked at: a ready one gets in within this.
    let mut promote = tokio::time::interval(PROMOTE_EVERY);
    // Connections held (unread) until a slot of their own source frees; handshake tasks say
    // which source they freed.
    let mut waiting: HashMap<Source, VecDeque<Held>> = HashMap::new();
    let (freed_tx, mut freed) = mpsc::unbounded_channel::<Source>();
    let patience = accepting.settings.handshake_timeout;
    let (quic_tx, mut quic) = mpsc::channel(limits.max_pending.max(1));
    let _iroh = endpoint
        .clone()
        .map(|e| accept_iroh(e, limits.max_pending, quic_tx));
    let start = Starter {
        gate: gate.clone(),
        accepting,
        endpoint,
        reports: reports.clone(),
        freed: freed_tx.clone(),
    };
    loop {
        let now = std::time::Instant::now();
        let decisions: Vec<(Held, Admit<AbortHandle>)> = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let source = Source::of(from.ip());
                    let decision = lock(&gate).admit(source, now);
                    let from = from.to_string();
                    vec![(Held { stream: Accepted::Tcp(stream), from, source, since: now }, decision)]
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, then go on.
                    let line = format!("accepting a connection failed: {e}");
                    let _ = reports.send(Connection::Failed(line)).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some((connection, origin)) = quic.recv() => {
                // Relayed connections all come from the relay's IP: counted by the endpoint
                // id the relay vouches for instead.
                let source = match origin.ip {
                    Some(ip) => Source::of(ip),
                    None => Source::relayed(&origin.id),
                };
                let decision = lock(&gate).admit(source, now);
                let stream = Accepted::Quic(connection);
                vec![(Held { stream, from: origin.label, source, since: now }, decision)]
            }
            Some(source) = freed.recv() => {
                let Some(held) = waiting.get_mut(&source).and_then(VecDeque::pop_front) else {
                    continue;
                };
                let decision = lock(&gate).resume(source, now);
                vec![(held, decision)]
            }
            _ = promote.tick() => promote_ready(&mut waiting, &gate, now),
            _ = tick.tick() => {
                let mut lines = expire(&mut waiting, &gate, patience, now);
                lines.extend(lock(&gate).report(now));
                for line in lines {
                    let _ = reports.send(Connection::Failed(line)).await;
                }
                continue;
            }
        };
        for (held, decision) in decisions {
            let ticket = match decision {
                Admit::Wait => {
                    // In line behind its source's earlier connections (a resumed one goes first).
                    let queue = waiting.entry(held.source).or_default();
                    if held.since < now {
                        queue.push_front(held);
                    } else {
                        queue.push_back(held);
                    }
                    continue;
                }
                Admit::Refused { log } => {
                    drop(held);
                    if let Some(line) = log {
                        let _ = reports.send(Connection::Failed(line)).await;
                    }
                    continue;
                }
                Admit::Admitted { ticket, evicted } => {
                    if let Some((handshake, from)) = evicted {
                        handshake.abort();
                        // Its slot went to the newcomer, but its source may be below its cap now.
                        let _ = freed_tx.send(from);
                    }
                    ticket
                }
            };
            let task = start.handshake(held, ticket);
            // If the handshake is already over, its slot is free and this does nothing.
            lock(&gate).attach(ticket, task);
        }
    }
}

/// How often waiting connections are checked against stalled handshakes of their address.
const PROMOTE_EVERY: Duration = Duration::from_millis(100);

/// Connections waiting behind a stalled handshake of their own address whose first message has
/// arrived (a real dialer's, sent at once) take the stalled one's place, oldest ready first.
fn promote_ready(
    waiting: &mut HashMap<Source, VecDeque<Held>>,
    gate: &Mutex<Gate<AbortHandle>>,
    now: std::time::Instant,
) -> Vec<(Held, Admit<AbortHandle>)> {
    let mut promoted = Vec::new();
    let mut gate = lock(gate);
    for (source, queue) in waiting.iter_mut() {
        while gate.stalled(*source, now) {
            let Some(i) = queue.iter().position(Held::first_message_arrived) else {
                break;
            };
            let Some(held) = queue.remove(i) else { break };
            let decision = gate.replace_stalled(*source, now);
            promoted.push((held, decision));
        }
    }
    waiting.retain(|_, queue| !queue.is_empty());
    promoted
}

/// Starts the handshake task of an admitted connection.
struct Starter {
    gate: Arc<Mutex<Gate<AbortHandle>>>,
    accepting: Arc<admit::Accepting>,
    endpoint: Option<Arc<iroh::P2p>>,
    reports: mpsc::Sender<Connection<Reader, Writer>>,
    freed: mpsc::UnboundedSender<Source>,
}

impl Starter {
    fn handshake(&self, held: Held, ticket: u64) -> AbortHandle {
        let Held {
            stream,
            from,
            source,
            ..
        } = held;
        let accepting = self.accepting.clone();
        let (reports, gate, freed) = (self.reports.clone(), self.gate.clone(), self.freed.clone());
        let endpoint = self.endpoint.clone();
        let task = tokio::spawn(async move {
            let settings = &accepting.settings;
            let streams = match (stream, &endpoint) {
                (Accepted::Tcp(stream), _) => {
                    tcp::configure(&stream, settings.keepalive);
                    let (reader, writer) = stream.into_split();
                    Ok((Reader::Tcp(reader), Writer::Tcp(writer)))
                }
                (Accepted::Quic(connection), Some(endpoint)) => {
                    iroh::accept_stream(connection, settings.handshake_timeout, endpoint).await
                }
                (Accepted::Quic(_), None) => Err(Error::Internal("no iroh endpoint".into())),
            };
            let report = match streams {
                Ok((reader, writer)) => {
                    let watch = GateWatch {
                        gate: &gate,
                        ticket,
                        source,
                    };
                    let source = source.to_string();
                    admit::handshake_and_admit(reader, writer, &from, &source, &accepting, &watch)
                        .await
                }
                Err(e) => Connection::Failed(format!("connection from {from}: {e}")),
            };
            let report = {
                let mut gate = lock(&gate);
                gate.finished(ticket, matches!(report, Connection::Failed(_)));
                match report {
                    Connection::Failed(line) => {
                        gate.event(source, |_| line).map(Connection::Failed)
                    }
                    arrived => Some(arrived),
                }
            };
            let _ = freed.send(source);
            if let Some(report) = report {
                let _ = reports.send(report).await;
            }
        });
        task.abort_handle()
    }
}

/// A handshake's progress and pace, reported to the gate.
struct GateWatch<'a> {
    gate: &'a Mutex<Gate<AbortHandle>>,
    ticket: u64,
    source: Source,
}

impl crate::handshake::Watch for GateWatch<'_> {
    fn arrived(&self, n: u8) -> Result<Duration> {
        let now = std::time::Instant::now();
        let mut gate = lock(self.gate);
        match n {
            0 => gate.started(self.ticket),
            _ => gate.progress(self.ticket),
        }
        if n != 1 {
            return Ok(Duration::ZERO);
        }
        gate.pace(self.source, now).ok_or_else(|| {
            Error::Network(format!(
                "closed: more than {} handshakes a second from this address",
                gate.limits().rate.per_sec
            ))
        })
    }
}

/// A connection waiting for a handshake slot of its source.
struct Held {
    stream: Accepted,
    from: String,
    source: Source,
    since: std::time::Instant,
}

impl Held {
    /// Whether its whole first handshake message is waiting to be read (only TCP can tell).
    fn first_message_arrived(&self) -> bool {
        match &self.stream {
            Accepted::Tcp(stream) => tcp::frame_arrived(stream, crate::handshake::MESSAGE_LENS[0]),
            Accepted::Quic(_) => false,
        }
    }
}

/// Closes the held connections that have waited `patience`; lines to log (or none, for a
/// source being summarised).
fn expire(
    waiting: &mut HashMap<Source, VecDeque<Held>>,
    gate: &Mutex<Gate<AbortHandle>>,
    patience: Duration,
    now: std::time::Instant,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut gate = lock(gate);
    for queue in waiting.values_mut() {
        while queue
            .front()
            .is_some_and(|h| now.duration_since(h.since) >= patience)
        {
            if let Some(held) = queue.pop_front() {
                gate.abandon(held.source);
                let from = &held.from;
                lines.extend(gate.event(held.source, |_| {
                    format!(
                        "connection from {from}: closed after waiting {} s for a handshake slot",
                        patience.as_secs()
                    )
                }));
            }
        }
    }
    waiting.retain(|_, queue| !queue.is_empty());
    lines
}

/// The gate's lock. Its critical sections never panic, but a poisoned lock must not stop the
/// listener either: the bookkeeping inside stays consistent between calls.
fn lock<H>(gate: &Mutex<Gate<H>>) -> MutexGuard<'_, Gate<H>> {
    gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
