//! Time from `schat dial` to the first message at the listener: over TCP, and over iroh
//! through a local relay (the ticket stripped of TCP and direct UDP addresses, so the session
//! starts relayed, as behind two NATs). The real binary on loopback; medians of ROUNDS
//! alternating dials. `cargo bench --bench p2p` (benches/compare.sh runs it too).

use schat::invite::Ticket;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;

fn schat(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_schat"));
    cmd.arg("--home").arg(home);
    cmd
}

/// Lines of a child's pipe, as they come.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn until(rx: &mpsc::Receiver<String>, wanted: impl Fn(&str) -> bool) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no such line in time");
        if wanted(&line) {
            return line;
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing to filter here.
    let dir = tempfile::tempdir().unwrap();
    let home = |name: &str| {
        let path = dir.path().join(name);
        let out = schat(&path).arg("keygen").output().unwrap();
        assert!(out.status.success());
        path
    };
    let (relay_home, host, guest) = (home("r"), home("host"), home("guest"));
    let mut relay = schat(&relay_home)
        .args(["relay", "127.0.0.1:0", "--insecure-http"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let relay_err = lines(relay.stderr.take().unwrap());
    let _relay = Killed(relay);
    let url = until(&relay_err, |l| l.contains("use --relay"))
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let mut listener = schat(&host)
        .args([
            "listen",
            "127.0.0.1:0",
            "--allow",
            "anyone",
            "--p2p",
            "--relay",
            &url,
        ])
        .args(["--p2p-bind", "127.0.0.1:0", "--no-portmap"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = lines(listener.stdout.take().unwrap());
    let told = lines(listener.stderr.take().unwrap());
    let _listener = Killed(listener);
    let ticket = until(&told, |l| l.starts_with("schat:") && !l.contains(' '));
    let parsed = Ticket::decode(&ticket).unwrap();
    let tcp = parsed.tcp_addrs().next().unwrap().to_string();
    let mut relayed = parsed.clone();
    relayed.addrs.retain(|a| {
        matches!(
            a,
            schat::invite::TicketAddr::Endpoint(_) | schat::invite::TicketAddr::Relay(_)
        )
    });
    let relayed = relayed.encode();
    let key = hex::encode(parsed.key.as_bytes());

    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (i, args) in [
            vec!["dial", tcp.as_str(), "--peer", key.as_str()],
            vec![
                "dial",
                relayed.as_str(),
                "--p2p-bind",
                "127.0.0.1:0",
                "--no-portmap",
            ],
        ]
        .iter()
        .enumerate()
        {
            let text = format!("round {round} way {i}");
            let started = Instant::now();
            let mut dialer = schat(&guest)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = dialer.stdin.take().unwrap();
            writeln!(stdin, "{text}").unwrap();
            until(&said, |l| l.ends_with(&text));
            times[i].push(started.elapsed());
            drop(stdin);
            let _ = dialer.wait();
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (tcp_ms, relay_ms) = (median(&mut times[0]), median(&mut times[1]));
    println!("| dial → first message at the listener (median of {ROUNDS}) | ms | × TCP |");
    println!("|---|---|---|");
    println!(
        "| over TCP (loopback) | {:.1} | 1.00 |",
        tcp_ms.as_secs_f64() * 1e3
    );
    println!(
        "| over iroh, through the relay (loopback) | {:.1} | {:.2} |",
        relay_ms.as_secs_f64() * 1e3,
        relay_ms.as_secs_f64() / tcp_ms.as_secs_f64()
    );
}
