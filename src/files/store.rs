//! The download folder: partial files, and putting a checked file in its place. Blocking: called
//! on a file's own thread, never on the async runtime.
//!
//! A partial file is named after the offer's hash (`.schat-<hash>.part`, at the top of the
//! download folder), so the same file offered again — in another session, under another name —
//! finds what already arrived and only the rest travels. Nothing in it is trusted: the whole
//! file is hashed again before it gets its name, and a part that does not check out is deleted.

use super::names;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How many numbered names (`name (1).ext` …) are tried before giving up.
const MAX_NUMBER: u32 = 999;

/// Where a partial file for `hash` lives in `dir`.
pub fn part_path(dir: &Path, hash: &[u8; 32]) -> PathBuf {
    dir.join(format!(".schat-{}.part", hex::encode(hash)))
}

/// Opens (or creates) the partial file for `hash`, private to us, never through a symlink, and
/// locks it (waiting for another writer of it to finish); returns it with how many bytes it
/// already holds. A part longer than the file is not ours to
/// trust: it starts again, empty.
pub fn open_part(dir: &Path, hash: &[u8; 32], size: u64) -> io::Result<(File, u64)> {
    use std::os::unix::fs::MetadataExt;
    let path = part_path(dir, hash);
    let (file, meta) = loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        // One writer per part: a transfer taken back after a cut waits here until the thread
        // of the cut one has written what it had and let go. Not for ever: the same file
        // arriving from someone else at once (another member, say, who may never send a
        // byte of it) must not hold this one without end.
        lock_within(&file, LOCK_WITHIN)?;
        // While we waited, the holder may have given the part its final name (and removed
        // this one): that inode is a saved file now, never to be written again. Open anew.
        let meta = file.metadata()?;
        match fs::symlink_metadata(&path) {
            Ok(now) if now.ino() == meta.ino() && now.dev() == meta.dev() => break (file, meta),
            Ok(_) | Err(_) => continue,
        }
    };
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let have = meta.len();
    if have > size {
        file.set_len(0)?;
        return Ok((file, 0));
    }
    Ok((file, have))
}

/// How long a partial file's writer waits for another to let go of it.
const LOCK_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Locks `file`, waiting at most `within` for whoever holds it.
fn lock_within(file: &File, within: std::time::Duration) -> io::Result<()> {
    let until = std::time::Instant::now() + within;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::other(
                    "the same file (by its hash) is arriving from someone else: send it again \
                     once that one is done",
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Deletes the partial file for `hash` (it did not check out, or was not wanted).
pub fn discard_part(dir: &Path, hash: &[u8; 32]) {
    let _ = fs::remove_file(part_path(dir, hash));
}

/// Gives the checked partial file for `hash` its name `components` under `dir`: folders are
/// created as needed (never through a symlink, never over a file), and the file never replaces
/// anything — it becomes `name (1).ext` and so on instead. Returns where it went.
pub fn finish(dir: &Path, hash: &[u8; 32], components: &[&str]) -> io::Result<PathBuf> {
    let part = part_path(dir, hash);
    let (name, folders) = components
        .split_last()
        .ok_or_else(|| io::Error::other("an empty name"))?;
    let mut at = dir.to_path_buf();
    for folder in folders {
        at.push(folder);
        folder_at(&at)?;
    }
    for n in 0..=MAX_NUMBER {
        let target = at.join(names::numbered(name, n));
        // A hard link is created only where nothing is, symlinks included: no overwrite, and
        // no window in which the name points at a half-written file.
        match fs::hard_link(&part, &target) {
            Ok(()) => {
                let _ = fs::remove_file(&part);
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} and {MAX_NUMBER} numbered names beside it are all taken",
        at.join(name).display()
    )))
}

/// Makes sure `at` is a folder (not a symlink to one), creating it if missing. The other files
/// of the same folder are saved by their own threads at the same time: one that loses the race
/// to create it looks again.
fn folder_at(at: &Path) -> io::Result<()> {
    let not_a_folder = || io::Error::other(format!("{} exists and is not a folder", at.display()));
    match fs::symlink_metadata(at) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(not_a_folder()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(at) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(at)?.is_dir() {
                    true => Ok(()),
                    false => Err(not_a_folder()),
                }
            }
            made => made,
        },
        Err(e) => Err(e),
    }
}

/// Hashes the first `len` bytes of `file` (a part being resumed), to carry on from there.
pub fn hash_prefix(file: &File, len: u64) -> io::Result<blake3::Hasher> {
    use std::io::{Read, Seek, SeekFrom};
    let mut hasher = blake3::Hasher::new();
    let mut file = file;
    file.seek(SeekFrom::Start(0))?;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the partial file shrank",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_file_never_replaces_anything() {
        let dir = tempfile::tempdir().unwrap();
        let hash = [7u8; 32];
        for _ in 0..3 {
            let (file, have) = open_part(dir.path(), &hash, 10).unwrap();
            assert_eq!(have, 0);
            drop(file);
            fs::write(part_path(dir.path(), &hash), b"hello").unwrap();
            finish(dir.path(), &hash, &["a", "b.txt"]).unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b (1).txt", "b (2).txt", "b.txt"]);
        assert!(!part_path(dir.path(), &hash).exists());
    }

    /// The files of one folder are saved by their own threads, at once: the one that finds a
    /// folder missing may lose the race to create it, and that is no failure.
    #[test]
    fn files_of_one_new_folder_finish_at_the_same_time() {
        const FILES: u8 = 8;
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let start = std::sync::Barrier::new(FILES.into());
            std::thread::scope(|s| {
                for i in 0..FILES {
                    let (dir, start) = (dir.path(), &start);
                    s.spawn(move || {
                        let hash = [i; 32];
                        fs::write(part_path(dir, &hash), [i]).unwrap();
                        let name = format!("{i}.txt");
                        start.wait();
                        finish(dir, &hash, &["pics", "deep", &name]).unwrap();
                    });
                }
            });
            let saved = fs::read_dir(dir.path().join("pics/deep")).unwrap().count();
            assert_eq!(saved, usize::from(FILES));
        }
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), dir.path().join("x")).unwrap();
        let hash = [1u8; 32];
        fs::write(part_path(dir.path(), &hash), b"data").unwrap();
        assert!(finish(dir.path(), &hash, &["sub", "f"]).is_err());
        // A symlink where the file would go is a name taken, not a way out.
        let put = finish(dir.path(), &hash, &["x"]).unwrap();
        assert_eq!(put, dir.path().join("x (1)"));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // Nor is a part file reached through one.
        let evil = [2u8; 32];
        std::os::unix::fs::symlink(outside.path().join("p"), part_path(dir.path(), &evil)).unwrap();
        assert!(open_part(dir.path(), &evil, 5).is_err());
    }

    #[test]
    fn a_part_held_by_another_writer_is_waited_for_only_so_long() {
        let dir = tempfile::tempdir().unwrap();
        let hash = [5u8; 32];
        let (held, _) = open_part(dir.path(), &hash, 10).unwrap();
        let file = File::open(part_path(dir.path(), &hash)).unwrap();
        let why = lock_within(&file, std::time::Duration::from_millis(200)).unwrap_err();
        assert!(
            why.to_string().contains("arriving from someone else"),
            "{why}"
        );
        drop(held);
        lock_within(&file, std::time::Duration::from_millis(200)).unwrap();
    }

    #[test]
    fn a_part_longer_than_the_file_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let hash = [3u8; 32];
        fs::write(part_path(dir.path(), &hash), b"0123456789").unwrap();
        assert_eq!(open_part(dir.path(), &hash, 20).unwrap().1, 10);
        assert_eq!(open_part(dir.path(), &hash, 5).unwrap().1, 0);
    }
}
