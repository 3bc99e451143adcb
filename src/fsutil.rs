//! Files that must never be seen half-written or by other users: the keyfile and known_peers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `dir` (and parents) as 0700 if missing; leaves an existing directory alone.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The directory a file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Writes `contents` to `path` through a fresh 0600 temp file in the same directory, synced
/// before it is moved into place, so readers see the old file or the new one, never a mix.
///
/// Without `overwrite`, an existing `path` is never replaced (error `AlreadyExists`), even one
/// created between our check and our write: the move is a hard link, which fails on an
/// existing name, unlike rename.
pub fn write_private_atomically(path: &Path, contents: &[u8], overwrite: bool) -> io::Result<()> {
    write_private_atomically_with(path, contents, overwrite, || Ok(()))
}

/// As [`write_private_atomically`], running `before_move` between writing the temp file and
/// moving it into place (tests use it to fail there and check that nothing is lost).
fn write_private_atomically_with(
    path: &Path,
    contents: &[u8],
    overwrite: bool,
    before_move: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    create_private_dir(&dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:08x}",
        name.as_deref().unwrap_or("file"),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_new_private(&tmp, contents)
        .and_then(|()| before_move())
        .and_then(|()| {
            if overwrite {
                fs::rename(&tmp, path)
            } else {
                link_new(&tmp, path)
            }
        });
    // After a rename the temp name is gone already; after a link or an error it must go.
    let _ = fs::remove_file(&tmp);
    result?;
    // Make the new directory entry durable too; not every platform can sync a directory.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `path` (which must not exist) as 0600 and writes and syncs `contents`.
pub fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn link_new(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        // Filesystems without hard links: check, then rename (a small race, but no other way).
        Err(_) if path.symlink_metadata().is_ok() => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => fs::rename(tmp, path),
    }
}

/// Takes an exclusive lock on `path` (created 0600 if needed), held until the file is dropped.
/// Serialises read-modify-write cycles between schat processes. Waits for as long as another
/// process holds it: call it off the async runtime (`spawn_blocking`), or use
/// [`lock_exclusive_within`].
///
/// A symbolic link at `path` is refused (`O_NOFOLLOW`): opening through it would create or lock
/// whatever file it points to.
pub fn lock_exclusive(path: &Path) -> io::Result<File> {
    let file = open_lock_file(path)?;
    file.lock()?;
    Ok(file)
}

/// As [`lock_exclusive`], giving up after `patience` with an error that says another process
/// holds the lock (a stuck schat, or a slow network-mounted home).
pub fn lock_exclusive_within(path: &Path, patience: std::time::Duration) -> io::Result<File> {
    let file = open_lock_file(path)?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "another process has held the lock {} for over {} s (another schat of \
                         this home?)",
                        path.display(),
                        patience.as_secs()
                    ),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Takes the lock if nobody holds it: `Ok(None)` when another process does. Never waits.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<File>> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Opens (creating, 0600) a lock file, refusing a symbolic link in its place.
fn open_lock_file(path: &Path) -> io::Result<File> {
    create_private_dir(&parent_dir(path))?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).map_err(|e| {
        // O_NOFOLLOW on a symbolic link fails with ELOOP ("too many levels of symbolic links").
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return io::Error::new(
                e.kind(),
                format!(
                    "the lock file {} is a symbolic link; refusing to follow it (remove it)",
                    path.display()
                ),
            );
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_before_the_move_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        write_private_atomically(&path, b"old", false).unwrap();
        let failed = write_private_atomically_with(&path, b"new", true, || {
            Err(io::Error::other("disk full (simulated)"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
        write_private_atomically(&path, b"new", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        fs::write(&target, b"keep me").unwrap();
        let lock = dir.path().join("lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = lock_exclusive(&lock).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"keep me");
        // Nor is a missing target created through a dangling link.
        let missing = dir.path().join("missing");
        let dangling = dir.path().join("lock2");
        std::os::unix::fs::symlink(&missing, &dangling).unwrap();
        assert!(lock_exclusive(&dangling).is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn lock_is_exclusive_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = lock_exclusive(&path).unwrap();
        let other = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(other.try_lock().is_err());
        assert!(try_lock_exclusive(&path).unwrap().is_none());
        let waited = lock_exclusive_within(&path, std::time::Duration::from_millis(100));
        assert_eq!(waited.unwrap_err().kind(), io::ErrorKind::TimedOut);
        drop(first);
        assert!(other.try_lock().is_ok());
        drop(other);
        assert!(try_lock_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn a_try_lock_refuses_symlinks_and_creates_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        fs::write(&target, b"keep me").unwrap();
        let lock = dir.path().join("lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        assert!(try_lock_exclusive(&lock).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"keep me");
        let fresh = dir.path().join("fresh.lock");
        let _held = try_lock_exclusive(&fresh).unwrap().unwrap();
        let mode = fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
