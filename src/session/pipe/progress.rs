//! The progress line and the byte counts people read: redrawn on stderr while a pipe runs.

use super::Counters;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// Redraws a progress line on stderr four times a second (if enabled). With the size of what
/// we send known, it shows how far along that is and the time left. Never returns.
pub(super) async fn progress(
    counters: &Counters,
    started: Instant,
    enabled: bool,
    total: Option<u64>,
) -> std::convert::Infallible {
    if !enabled {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let (sent, received) = counters.get();
        let moved = sent + received;
        let now = Instant::now();
        let rate = (moved - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (moved, now);
        let elapsed = started.elapsed().as_secs();
        let up = match total {
            Some(total) if total > 0 => {
                let done = sent.min(total);
                let percent = done as f64 * 100.0 / total as f64;
                // Time left at the average rate so far (steadier than the last quarter second).
                let average = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let left = match average > 0.0 {
                    true => clock(((total - done) as f64 / average) as u64),
                    false => "?".into(),
                };
                format!(
                    "{} of {} ({percent:.0}%, {left} left)",
                    size(sent),
                    size(total)
                )
            }
            _ => size(sent),
        };
        eprint!(
            "\r\x1b[Kschat: ↑ {up}  ↓ {}  {}/s  {}",
            size(received),
            size(rate as u64),
            clock(elapsed)
        );
        let _ = io::stderr().flush();
    }
}

/// `m:ss` (or `h:mm:ss`).
pub(super) fn clock(secs: u64) -> String {
    match secs >= 3600 {
        true => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        false => format!("{}:{:02}", secs / 60, secs % 60),
    }
}

/// A byte count for people: B, KiB, MiB, GiB.
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
