//! What `/send PATH…` offers: each file under the paths, with the name the peer will see and
//! its BLAKE3 hash. Blocking (it reads every byte): run on a thread of its own.

use super::names;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The most files one `/send` offers (a folder with more is refused, not cut short).
pub const MAX_FILES: usize = 10_000;

/// One file to offer.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it is here.
    pub disk: PathBuf,
    /// The name the peer sees: relative, `/`-separated (a folder's files keep the folder's
    /// name in front).
    pub wire: String,
    pub size: u64,
    pub hash: [u8; 32],
    /// What it looked like when hashed: a file changed since then is not sent as it was
    /// offered.
    pub stamp: Stamp,
}

/// A file's identity and version, as the file system tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Every file under `paths` (files, and folders walked without following symlinks), hashed.
/// Fails whole, saying which path and why, before anything is offered.
pub fn prepare(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut found = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
            .and_then(|n| n.into_string().ok())
            .ok_or_else(|| format!("{}: its name is not UTF-8 text", path.display()))?;
        if meta.is_dir() {
            walk(path, &base, &mut found)?;
        } else if meta.is_file() {
            found.push((path.clone(), base));
        } else {
            return Err(format!("{}: not a file or a folder", path.display()));
        }
        if found.len() > MAX_FILES {
            return Err(format!("more than {MAX_FILES} files: send fewer at once"));
        }
    }
    if found.is_empty() {
        return Err("no files there to send (an empty folder?)".into());
    }
    let mut sources = Vec::with_capacity(found.len());
    for (disk, wire) in found {
        names::components(&wire)
            .map_err(|why| format!("{}: the peer would refuse this name: {why}", disk.display()))?;
        let (hash, meta) = hash_file(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
        sources.push(Source {
            disk,
            wire,
            size: meta.len(),
            hash,
            stamp: Stamp::of(&meta),
        });
    }
    Ok(sources)
}

/// Files under `dir`, named `prefix/…`; symlinks are skipped (they could lead anywhere).
fn walk(dir: &Path, prefix: &str, found: &mut Vec<(PathBuf, String)>) -> Result<(), String> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| format!("{}: a name in it is not UTF-8 text", dir.join(n).display()))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        let wire = format!("{prefix}/{name}");
        if kind.is_dir() {
            walk(&entry.path(), &wire, found)?;
        } else if kind.is_file() {
            found.push((entry.path(), wire));
        }
        if found.len() > MAX_FILES {
            return Err(format!("more than {MAX_FILES} files: send fewer at once"));
        }
    }
    Ok(())
}

/// The BLAKE3 hash of a file, and its metadata as it was read.
pub fn hash_file(path: &Path) -> io::Result<([u8; 32], fs::Metadata)> {
    let mut file = fs::File::open(path)?;
    let before = file.metadata()?;
    let mut hasher = blake3::Hasher::new();
    // Large reads, each hashed on every core: the offer waits for this.
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update_rayon(&buf[..n]);
    }
    let after = file.metadata()?;
    if Stamp::of(&before) != Stamp::of(&after) {
        return Err(io::Error::other("it changed while it was being read"));
    }
    Ok((*hasher.finalize().as_bytes(), after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_in_order_and_named_under_their_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("pics");
        fs::create_dir_all(top.join("b")).unwrap();
        fs::write(top.join("z.txt"), b"z").unwrap();
        fs::write(top.join("b/a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("link")).unwrap();
        let lone = dir.path().join("one.bin");
        fs::write(&lone, b"").unwrap();
        let got = prepare(&[top, lone]).unwrap();
        let names: Vec<_> = got.iter().map(|s| s.wire.as_str()).collect();
        assert_eq!(names, ["pics/b/a.txt", "pics/z.txt", "one.bin"]);
        assert_eq!(got[0].hash, *blake3::hash(b"a").as_bytes());
        assert_eq!(got[2].size, 0);
    }

    #[test]
    fn what_cannot_be_sent_is_said_before_anything_goes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepare(&[dir.path().join("missing")]).is_err());
        assert!(
            prepare(&[dir.path().to_path_buf()]).is_err(),
            "empty folder"
        );
        fs::write(dir.path().join("a:b"), b"x").unwrap();
        let e = prepare(&[dir.path().join("a:b")]).unwrap_err();
        assert!(e.contains("refuse"), "{e}");
    }
}
