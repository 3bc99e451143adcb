//! The large room load test: 500 dialers (in-process clients) each send 20 messages through a
//! real `schat listen`; every message must reach the host exactly once; then all leave. Prints
//! the time and the host's peak RSS. (tests/room.rs runs the same with 50 dialers in CI.)
//!
//! `cargo bench --bench room_load` (or `-- PEERS MESSAGES` for other sizes). With `at-once`
//! (`-- 100 20 at-once`) each dialer closes its socket right after its QUIT, without reading
//! what the host sent (the departure case: nothing it said may be lost); the run is repeated 5
//! times and each run's delivered/expected is printed. With `fan-out` (`-- 100 20 fan-out`)
//! every member is in the room before anyone sends, and the host's fan-out (messages relayed
//! per second, host CPU per relayed message) is measured over 3 runs.

#[path = "../tests/common/load.rs"]
mod load;

fn main() {
    let args: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let peers = args.first().copied().unwrap_or(500);
    let per_peer = args.get(1).copied().unwrap_or(20);
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "schat"])
        .status()
        .expect("cargo build");
    assert!(status.success());
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/schat");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let at_once = std::env::args().any(|a| a == "at-once");
    if at_once {
        for round in 1..=5 {
            let report = runtime.block_on(load::run(bin, peers, per_peer, load::Leave::AtOnce));
            println!(
                "run {round}: {peers} dialers × {per_peer} then QUIT and close at once: \
                 {}/{} delivered to the host, {} duplicates, {} called slow, {:.2} s",
                report.delivered_to_host,
                report.messages_sent,
                report.duplicates,
                report.called_slow,
                report.elapsed.as_secs_f64()
            );
            assert_eq!(report.delivered_to_host, report.messages_sent);
        }
        return;
    }
    if std::env::args().any(|a| a == "fan-out") {
        // Every member in the room first; then each sends, and the host relays each message
        // to every other member. Timed from all-in to all-received.
        for round in 1..=3 {
            let report =
                runtime.block_on(load::run(bin, peers, per_peer, load::Leave::AfterFanOut));
            let (took, cpu) = report.fan_out.unwrap();
            let relays = (peers * (peers - 1) * per_peer) as f64;
            println!(
                "run {round}: {peers} members × {per_peer} messages, each relayed to {} others: \
                 {relays:.0} relays in {:.3} s = {:.0} relayed messages/s at the host; host CPU \
                 {cpu:.3} s = {:.2} µs per relayed message",
                peers - 1,
                took.as_secs_f64(),
                relays / took.as_secs_f64(),
                cpu * 1e6 / relays
            );
        }
        return;
    }
    let report = runtime.block_on(load::run(bin, peers, per_peer, load::Leave::Politely));
    println!(
        "{} dialers × {} messages: {} sent, {} delivered to the host, {} duplicates",
        report.peers, per_peer, report.messages_sent, report.delivered_to_host, report.duplicates
    );
    println!(
        "relays received by the dialers: {} ({:.0} per dialer)",
        report.relays_received,
        report.relays_received as f64 / report.peers as f64
    );
    println!(
        "time: {:.2} s; host peak RSS: {:.1} MiB",
        report.elapsed.as_secs_f64(),
        report.host_peak_rss_kib as f64 / 1024.0
    );
    println!(
        "host CPU {:.2} s in all; {:.1} KiB of host peak RSS per member",
        report.host_cpu_s,
        report.host_peak_rss_kib as f64 / report.peers as f64
    );
    assert_eq!(report.delivered_to_host, report.messages_sent);
    assert_eq!(report.duplicates, 0);
}
