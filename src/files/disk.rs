//! A thread per file being sent or received, so the chat's runtime never waits on a disk.
//!
//! A sender's thread reads the file at the offset the receiver asked for, only as far as the
//! receiver's credit allows, and queues CHUNKs (then DONE) for the connection's writer. A
//! receiver's thread writes what arrives to the partial file, hashing as it goes, and at the
//! end checks the hash and gives the file its name. Each says how it went through `Note`s.

use super::offer::{Source, Stamp};
use super::store;
use crate::message::file::MAX_CHUNK;
use crate::message::{FileMessage, Message};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as sync_mpsc;
use tokio::sync::mpsc;

/// How often (in bytes) a receiving thread says how far it got.
const WRITTEN_EVERY: u64 = 1 << 20;

/// What a file's thread reports, by the transfer's local number.
#[derive(Debug, Clone)]
pub enum Note {
    /// `/send`'s files are hashed (or could not be).
    Prepared {
        paths: Vec<PathBuf>,
        result: Result<Vec<Source>, String>,
    },
    /// A receiving thread opened the partial file, which already holds `have` bytes.
    Opened { local: u32, have: u64 },
    /// A receiving thread wrote the file this far.
    Written { local: u32, total: u64 },
    /// The file checked out and is saved here.
    Saved { local: u32, path: PathBuf },
    /// Reading, writing or checking failed.
    Failed { local: u32, reason: String },
}

/// Where a file's thread reports: a channel shared by every transfer of a room, each report
/// tagged with its desk (one per member; the chat's has one).
#[derive(Clone)]
pub struct Reporter {
    pub tag: u64,
    pub tx: mpsc::UnboundedSender<(u64, Note)>,
}

impl Reporter {
    pub fn send(&self, note: Note) {
        let _ = self.tx.send((self.tag, note));
    }
}

/// How a transfer's pieces are put on the wire: as they are (to the peer at the other end of
/// the connection) unless the transfer has one of these — between room members, each piece
/// sealed for the member (PROTOCOL.md §4.14), on the reading thread.
pub trait Seal: Send + Sync {
    /// The most file data one piece may carry.
    fn max_data(&self) -> usize;
    /// `msg` (a CHUNK or DONE of transfer `id`), the transfer's `index`th piece, for the wire.
    fn seal(&self, id: u32, index: u32, msg: &Message<'_>) -> Result<Message<'static>, String>;
}

/// What a receiving thread is handed.
pub enum Piece {
    Data(Vec<u8>),
    /// Every byte has arrived: check and name the file.
    Done,
    /// Stop; keep the partial file (to resume) or delete it.
    Stop {
        keep: bool,
    },
}

/// The handle a sending thread is driven by.
pub struct Reading {
    /// New limits from the receiver's CREDITs.
    pub credit: sync_mpsc::Sender<u64>,
    /// Bytes queued so far (from the start of the file).
    pub queued: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where a sending thread's pieces go, and how they are wrapped.
pub struct Outlet {
    pub bulk: mpsc::Sender<Message<'static>>,
    pub seal: Option<Arc<dyn Seal>>,
}

/// Starts sending `source` as transfer `id` from `offset`, up to `limit` for now.
pub fn send(
    local: u32,
    id: u32,
    source: Source,
    offset: u64,
    limit: u64,
    outlet: Outlet,
    notes: Reporter,
) -> Reading {
    let (credit, credits) = sync_mpsc::channel();
    let queued = Arc::new(AtomicU64::new(offset));
    let stop = Arc::new(AtomicBool::new(false));
    let reading = Reading {
        credit,
        queued: queued.clone(),
        stop: stop.clone(),
    };
    let told = notes.clone();
    let run = move || {
        let result = read_loop(
            id, &source, offset, limit, &credits, &outlet, &queued, &stop,
        );
        if let Err(reason) = result
            && !stop.load(Ordering::Relaxed)
        {
            notes.send(Note::Failed { local, reason });
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("schat-file-read".into())
        .spawn(run)
    {
        let reason = format!("no thread to read it: {e}");
        told.send(Note::Failed { local, reason });
    }
    reading
}

#[allow(clippy::too_many_arguments)]
fn read_loop(
    id: u32,
    source: &Source,
    offset: u64,
    mut limit: u64,
    credits: &sync_mpsc::Receiver<u64>,
    outlet: &Outlet,
    queued: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), String> {
    let max_data = outlet.seal.as_ref().map_or(MAX_CHUNK, |s| s.max_data());
    let mut index = 0u32;
    // Sealed (between members) or as it is; `false` once the connection is gone.
    let mut put = |msg: Message<'static>| -> Result<bool, String> {
        let msg = match &outlet.seal {
            Some(seal) => seal.seal(id, index, &msg)?,
            None => msg,
        };
        index = index.wrapping_add(1);
        Ok(outlet.bulk.blocking_send(msg).is_ok())
    };
    let file = File::open(&source.disk).map_err(|e| format!("reading it failed: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("reading it failed: {e}"))?;
    if Stamp::of(&meta) != source.stamp {
        return Err("it changed since it was offered: send it again".into());
    }
    let mut at = offset;
    while at < source.size {
        while let Ok(more) = credits.try_recv() {
            limit = limit.max(more);
        }
        if at >= limit {
            match credits.recv() {
                Ok(more) => limit = limit.max(more),
                Err(_) => return Ok(()),
            }
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let want = (max_data as u64).min(limit - at).min(source.size - at) as usize;
        let mut data = vec![0u8; want];
        file.read_exact_at(&mut data, at)
            .map_err(|e| format!("reading it failed: {e}"))?;
        let chunk = Message::File(FileMessage::Chunk {
            id,
            offset: at,
            data: data.into(),
        });
        if !put(chunk)? {
            return Ok(());
        }
        at += want as u64;
        queued.store(at, Ordering::Relaxed);
    }
    let meta = file
        .metadata()
        .map_err(|e| format!("reading it failed: {e}"))?;
    if Stamp::of(&meta) != source.stamp {
        return Err("it changed while it was being sent: send it again".into());
    }
    put(Message::File(FileMessage::Done { id }))?;
    Ok(())
}

/// Where a received file goes.
pub struct Target {
    pub dir: PathBuf,
    pub hash: [u8; 32],
    pub size: u64,
    /// Its name under `dir`, checked by `names::components`.
    pub components: Vec<String>,
}

/// Starts receiving into `target`'s partial file: its first note says how much it already
/// holds (`Opened`), which is where the sender starts.
pub fn receive(local: u32, target: Target, notes: Reporter) -> sync_mpsc::Sender<Piece> {
    let (pieces, inbox) = sync_mpsc::channel();
    let told = notes.clone();
    let run = move || {
        let result = write_loop(local, &target, &inbox, &notes);
        let note = match result {
            Ok(Some(path)) => Note::Saved { local, path },
            Ok(None) => return,
            Err(reason) => Note::Failed { local, reason },
        };
        notes.send(note);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("schat-file-write".into())
        .spawn(run)
    {
        let reason = format!("no thread to write it: {e}");
        told.send(Note::Failed { local, reason });
    }
    pieces
}

fn write_loop(
    local: u32,
    target: &Target,
    inbox: &sync_mpsc::Receiver<Piece>,
    notes: &Reporter,
) -> Result<Option<PathBuf>, String> {
    let failed = |e: std::io::Error| format!("writing it failed: {e}");
    // The download folder is made when the first file comes (private, as a new Downloads is).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&target.dir)
        .map_err(|e| format!("making {} failed: {e}", target.dir.display()))?;
    let (mut file, have) =
        store::open_part(&target.dir, &target.hash, target.size).map_err(failed)?;
    notes.send(Note::Opened { local, have });
    // What is already there is hashed again, not trusted: the hash at the end covers it.
    let mut hasher = store::hash_prefix(&file, have).map_err(failed)?;
    file.seek(SeekFrom::Start(have)).map_err(failed)?;
    // (Unbuffered: each piece is a whole 64 KiB write already, and a buffer would copy it.)
    let (mut total, mut told) = (have, have);
    loop {
        match inbox.recv() {
            Ok(Piece::Data(data)) => {
                file.write_all(&data).map_err(failed)?;
                hasher.update(&data);
                total += data.len() as u64;
                if total - told >= WRITTEN_EVERY {
                    told = total;
                    notes.send(Note::Written { local, total });
                }
            }
            Ok(Piece::Done) => break,
            // The connection was cut (or we are leaving): what arrived stays, to resume.
            Ok(Piece::Stop { keep: true }) | Err(_) => {
                let _ = file.flush();
                return Ok(None);
            }
            // (Removed while still locked, so that no other writer takes it meanwhile.)
            Ok(Piece::Stop { keep: false }) => {
                store::discard_part(&target.dir, &target.hash);
                return Ok(None);
            }
        }
    }
    file.flush().map_err(failed)?;
    notes.send(Note::Written { local, total });
    // The part stays locked until it has its name (or is deleted): another writer of the same
    // hash waiting for it must never get hold of a file already checked and named.
    if total != target.size || *hasher.finalize().as_bytes() != target.hash {
        store::discard_part(&target.dir, &target.hash);
        return Err("it did not match the hash it was offered with (deleted)".into());
    }
    let parts: Vec<&str> = target.components.iter().map(String::as_str).collect();
    let named = store::finish(&target.dir, &target.hash, &parts);
    drop(file);
    named
        .map(Some)
        .map_err(|e| format!("saving it failed: {e}"))
}
