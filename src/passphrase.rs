//! Where passphrases come from: `--passphrase-file`, the `SCHAT_PASSPHRASE` environment
//! variable, or a prompt on the terminal (never the command line, where `ps` would show it).
//! Passphrases live in zeroizing buffers from the moment they are read. A passphrase file is
//! refused, like the keyfile, when group or others may access it.

use crate::error::{Error, Result};
use crate::keyfile::{Keyfile, KeyfileError, Passphrase};
use crate::keys::Identity;
use crate::ui::Ui;
use std::io::Read;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The environment variable scripts can use.
pub const ENV: &str = "SCHAT_PASSPHRASE";

/// Tries at the prompt before giving up.
const TRIES: usize = 3;

/// `SCHAT_PASSPHRASE` as it was when schat started (see [`take_from_env`]).
#[derive(Debug, Default)]
pub enum FromEnv {
    /// Not set.
    #[default]
    Unset,
    /// Set to this.
    Set(Passphrase),
    /// Set, but not UTF-8 (an error once a passphrase is needed).
    NotUtf8,
}

/// Takes `SCHAT_PASSPHRASE` out of the environment, wiping the bytes `/proc/PID/environ` shows
/// (see [`crate::hardening::take_env`]), so neither child processes nor other readers of /proc
/// see it later.
///
/// # Safety
///
/// No other thread may use the environment meanwhile: call it first thing in `main`.
pub unsafe fn take_from_env() -> FromEnv {
    // SAFETY: passed on to the caller.
    let Some(mut bytes) = (unsafe { crate::hardening::take_env(ENV) }) else {
        return FromEnv::Unset;
    };
    // Moves the buffer, without copying its contents, into a zeroizing String.
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => FromEnv::Set(Passphrase::new(Zeroizing::new(text))),
        Err(e) => {
            e.into_bytes().zeroize();
            FromEnv::NotUtf8
        }
    }
}

/// The non-interactive sources the user configured.
#[derive(Debug, Default)]
pub struct Sources {
    /// `--passphrase-file`.
    pub file: Option<PathBuf>,
    /// `SCHAT_PASSPHRASE`, taken from the environment at startup.
    pub env: FromEnv,
}

impl Sources {
    /// A passphrase given without a prompt: the file first, then the environment.
    pub fn given(&self) -> Result<Option<Passphrase>> {
        if let Some(path) = &self.file {
            return read_file(path).map(Some);
        }
        match &self.env {
            FromEnv::Unset => Ok(None),
            FromEnv::Set(p) => Ok(Some(p.duplicate())),
            FromEnv::NotUtf8 => Err(Error::Usage(format!("{ENV} is not valid UTF-8"))),
        }
    }
}

/// The most a passphrase file's first line may hold, in bytes.
const MAX_FILE_LINE: usize = 4096;

/// Reads a passphrase file: its first line, without the line ending. The bytes go into a
/// zeroizing buffer sized up front (no reallocation leaves copies behind).
pub fn read_file(path: &Path) -> Result<Passphrase> {
    let context = || format!("reading the passphrase file {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(context(), e))?;
    // Like the keyfile: refused when group or others may read or change it (fstat of the
    // handle we read, so the checked file is the read file).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::io(
                context(),
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "it has permissions {mode:04o}, which let other users read or change \
                         it; refusing to use it (fix with: chmod 600 {})",
                        path.display()
                    ),
                ),
            ));
        }
    }
    let mut buf = Zeroizing::new(vec![0u8; MAX_FILE_LINE + 1]);
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(context(), e)),
        }
    }
    let data = &buf[..filled];
    let line = match data.iter().position(|&b| b == b'\n') {
        Some(end) => &data[..end],
        None if filled > MAX_FILE_LINE => {
            return Err(Error::io(
                context(),
                invalid(format!("no line ending in the first {MAX_FILE_LINE} bytes")),
            ));
        }
        None => data,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line)
        .map_err(|_| Error::io(context(), invalid("not UTF-8 text".into())))?;
    let mut owned = Zeroizing::new(String::with_capacity(text.len()));
    owned.push_str(text);
    Ok(Passphrase::new(owned))
}

fn invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

/// Whether there is a terminal to ask (the controlling terminal, even if stdin is a pipe).
pub fn can_prompt() -> bool {
    std::fs::File::open("/dev/tty").is_ok()
}

/// Asks once on the terminal, without echo.
pub fn prompt(question: &str) -> Result<Passphrase> {
    read_hidden(question)
        .map(Passphrase::new)
        .map_err(|e| Error::io("reading the passphrase from the terminal", e))
}

/// Asks `question` on the controlling terminal and reads one line, echoed (an answer, not a
/// secret).
pub fn read_line_on_terminal(question: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    tty.write_all(question.as_bytes())?;
    tty.flush()?;
    let mut line = String::new();
    std::io::BufReader::new(tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The longest answer [`read_hidden`] takes, in bytes.
pub const MAX_HIDDEN: usize = 4096;

/// Asks `question` on the controlling terminal and reads one line with echo off, into a buffer
/// allocated once at its full size and wiped when dropped: no copy of the answer is left in
/// freed memory (a growing `String` leaves one at every reallocation). The terminal's echo is
/// restored however this returns.
pub fn read_hidden(question: &str) -> std::io::Result<Zeroizing<String>> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid descriptor.
    let mut mode: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for as long as `tty` lives; `mode` is valid to write.
    if unsafe { libc::tcgetattr(fd, &mut mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    struct Restore(std::os::fd::RawFd, libc::termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: the descriptor outlives this guard (declared after `tty`).
            unsafe { libc::tcsetattr(self.0, libc::TCSANOW, &self.1) };
        }
    }
    let _restore = Restore(fd, mode);
    let mut hidden = mode;
    hidden.c_lflag &= !libc::ECHO;
    hidden.c_lflag |= libc::ECHONL;
    // SAFETY: as above.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &hidden) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    tty.write_all(question.as_bytes())?;
    tty.flush()?;
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_HIDDEN + 1));
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte)? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ if line.len() == MAX_HIDDEN => {
                byte.zeroize();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("longer than {MAX_HIDDEN} bytes"),
                ));
            }
            _ => line.push(byte[0]),
        }
    }
    byte.zeroize();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    // The bytes move into the String (no copy); what is not UTF-8 is wiped.
    match String::from_utf8(std::mem::take(&mut *line)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            Zeroizing::new(e.into_bytes());
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not valid UTF-8",
            ))
        }
    }
}

/// The identity in `keyfile`, unlocking it if it is protected: with the given passphrase if
/// there is one, else by asking on the terminal (three tries).
pub fn unlock(keyfile: &Keyfile, sources: &Sources, ui: &Ui, path: &Path) -> Result<Identity> {
    if !keyfile.is_protected() {
        return Ok(keyfile.unlock(None)?);
    }
    if let Some(given) = sources.given()? {
        return Ok(keyfile.unlock(Some(&given))?);
    }
    if !can_prompt() {
        return Err(KeyfileError::NeedsPassphrase {
            path: path.to_owned(),
        }
        .into());
    }
    let question = format!("passphrase for {}: ", path.display());
    for attempt in 1..=TRIES {
        let passphrase = prompt(&question)?;
        match keyfile.unlock(Some(&passphrase)) {
            Ok(identity) => return Ok(identity),
            Err(KeyfileError::WrongPassphrase { .. }) if attempt < TRIES => {
                ui.warn("wrong passphrase, try again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(KeyfileError::WrongPassphrase {
        path: path.to_owned(),
    }
    .into())
}

/// Asks for a new passphrase twice on the terminal. An empty answer means "no passphrase".
pub fn prompt_new(ui: &Ui) -> Result<Option<Passphrase>> {
    for _ in 0..TRIES {
        let first = prompt("new passphrase (empty for none): ")?;
        if first.is_empty() {
            return Ok(None);
        }
        let again = prompt("the same passphrase again: ")?;
        if first.expose() == again.expose() {
            return Ok(Some(first));
        }
        ui.warn("the two passphrases differ, try again");
    }
    Err(Error::Usage("the passphrases did not match".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_file_gives_its_first_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let long_line = format!("{}\n", "x".repeat(MAX_FILE_LINE));
        for (content, expected) in [
            ("pw\n", "pw"),
            ("pw", "pw"),
            ("pw\r\nsecond line\n", "pw"),
            ("\nsecond line\n", ""),
            ("", ""),
            ("héllo wörld\n", "héllo wörld"),
            (long_line.as_str(), &long_line[..MAX_FILE_LINE]),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_file(&path).unwrap().expose(), expected, "{content:?}");
        }
        // A first line too long to be a passphrase, and bytes that are not text.
        std::fs::write(&path, "x".repeat(MAX_FILE_LINE + 1)).unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains("no line ending"), "{err}");
        std::fs::write(&path, b"\xff\xfe\n").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains("not UTF-8"), "{err}");
    }
}
