//! Files handed over inside a chat (PROTOCOL.md §4.13): offered with their BLAKE3 hash,
//! written only once accepted, checked before they get their name, resumed by hash.
//!
//! - [`transfers`]: every transfer of a chat, both ways — the protocol's rules, the local
//!   numbers people use (`/accept 2`), flow control; what to send and what to tell.
//! - [`offer`]: what `/send PATH…` offers (folders walked, every file hashed).
//! - `disk`: a thread per file being read or written, so the runtime never waits on a disk.
//! - [`store`]: the download folder — partial files named by hash, no overwrite, no symlinks.
//! - [`names`]: which peer names may become files here, and `name (1).ext`.
//!
//! The wire format is [`crate::message::file`]'s; the chat loop (`session::chat::files`)
//! connects these to the connection and the screen.

mod disk;
pub mod names;
pub mod offer;
pub mod store;
pub mod transfers;

pub use disk::{Note, Reporter, Seal};
pub use transfers::{Event, Policy, Progress, Transfers, Way};

/// A size as people read it: `512 B`, `1.5 KiB`, `20.0 MiB`, `1.0 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The platform's download folder (`~/Downloads` where it has no other), if there is one.
pub fn default_download_dir() -> Option<std::path::PathBuf> {
    dirs::download_dir().or_else(|| dirs::home_dir().map(|h| h.join("Downloads")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(super::size(0), "0 B");
        assert_eq!(super::size(1023), "1023 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(1 << 30), "1.0 GiB");
    }
}
