//! The iroh transport end to end with the real binary, on loopback only: a `schat relay` on
//! 127.0.0.1, listeners and dialers whose iroh sockets bind 127.0.0.1, no port mapping, no
//! public relay, no address lookup. (Every `--p2p` run here passes `--p2p-bind 127.0.0.1:0
//! --no-portmap` and a local `--relay`, or dials a ticket naming the local relay; a test that
//! forgets is a bug.) Chat, pipe, pins, known peers, refusals and exit codes must behave
//! exactly as over TCP; tickets without TCP addresses force the iroh path.

mod common;

use common::{Home, Proc, within};
use schat::invite::{Ticket, TicketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Keeps iroh on loopback.
const LOCAL: [&str; 3] = ["--p2p-bind", "127.0.0.1:0", "--no-portmap"];

fn local() -> &'static [&'static str] {
    &LOCAL
}

/// `schat relay 127.0.0.1:0 --insecure-http` and its URL.
async fn relay(home: &Home, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["relay", "127.0.0.1:0", "--insecure-http"];
    args.extend_from_slice(extra);
    let mut relay = home.spawn(&args);
    let line = relay.stderr_until("use --relay").await;
    let url = line.rsplit(' ').next().unwrap().trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (relay, url)
}

/// A `listen --p2p` on loopback with the local relay; returns it and its ticket.
async fn p2p_listener(home: &Home, relay: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["listen", "127.0.0.1:0", "--p2p", "--relay", relay];
    args.extend_from_slice(local());
    args.extend_from_slice(extra);
    let mut proc = home.spawn(&args);
    let ticket = proc
        .stderr_until_any(|l| l.starts_with("schat:") && !l.contains(' '))
        .await;
    (proc, ticket)
}

/// The ticket without its TCP addresses: only iroh can reach the listener.
fn iroh_only(ticket: &str) -> String {
    let mut t = Ticket::decode(ticket).unwrap();
    t.addrs.retain(|a| !a.is_tcp());
    assert!(t.endpoint().is_some(), "no iroh address in {ticket}");
    t.encode()
}

/// `schat --home … dial TICKET` with iroh kept on loopback.
fn dial(home: &Home, ticket: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["dial", ticket];
    args.extend_from_slice(local());
    args.extend_from_slice(extra);
    home.spawn(&args)
}

/// SIGTERM, then its exit (a listener or relay at the end of a test).
async fn stop(proc: &mut Proc) {
    proc.signal("TERM");
    proc.exit().await;
}

fn known(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("known_peers")).unwrap_or_default()
}

#[tokio::test]
async fn chat_over_iroh_through_a_local_relay_then_dial_the_petname_again() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let guest_key = guest.fingerprint();
        let (mut room, ticket) =
            p2p_listener(&host, &url, &["--peer", &guest_key, "--name", "hosty"]).await;
        let ticket = iroh_only(&ticket);

        let started = Instant::now();
        let mut g = dial(&guest, &ticket, &[]);
        let path = g.stderr_until("path: ").await;
        assert!(path.contains("path: iroh"), "{path}");
        g.stderr_until("welcome").await;
        // /whois names the iroh endpoint as the host's address (it said "unknown").
        g.send("/whois").await;
        let whois = g.stderr_until("address:").await;
        assert!(whois.contains("iroh endpoint"), "{whois}");
        g.send("hello through the NAT").await;
        assert_eq!(room.said().await, "hello through the NAT");
        eprintln!("dial to first message over iroh: {:?}", started.elapsed());
        room.send("and back").await;
        assert_eq!(g.said().await, "and back");
        room.stderr_until("joined").await;
        g.send("quit").await;
        assert!(g.exit().await.success(), "{:#?}", g.stderr_seen);

        // The listener's key is remembered with the ticket (without secret) as its address…
        let peers = known(&guest);
        assert!(peers.contains("hosty"), "{peers}");
        assert!(peers.contains("schat:"), "{peers}");
        // …so the petname reaches it over iroh again, its key expected.
        let mut again =
            guest.spawn(&["dial", "hosty", "--p2p-bind", "127.0.0.1:0", "--no-portmap"]);
        let path = again.stderr_until("path: ").await;
        assert!(path.contains("iroh"), "{path}");
        again.stderr_until("welcome").await;
        again.send("second time").await;
        assert_eq!(room.said().await, "second time");
        again.close_stdin();
        assert!(again.exit().await.success(), "{:#?}", again.stderr_seen);

        stop(&mut room).await;
        relay.signal("TERM");
        assert!(relay.exit().await.success(), "{:#?}", relay.stderr_seen);
    })
    .await;
}

#[tokio::test]
async fn a_pipe_over_iroh_is_byte_identical_both_ways() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        let (up, down) = (dir.path().join("up"), dir.path().join("down"));
        let mut rng_bytes = vec![0u8; 3 << 20];
        for (i, b) in rng_bytes.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2654435761) >> 13) as u8;
        }
        std::fs::write(&up, &rng_bytes).unwrap();
        std::fs::write(&down, &rng_bytes[..(1 << 20) + 7]).unwrap();
        let guest_key = guest.fingerprint();

        // Files on stdin and stdout, stderr read line by line.
        let spawn = |home: &Home, args: Vec<String>, input: &std::path::Path, output: &str| {
            tokio::process::Command::new(common::bin())
                .arg("--home")
                .arg(home.path())
                .args(args)
                .args(local())
                .stdin(std::fs::File::open(input).unwrap())
                .stdout(std::fs::File::create(dir.path().join(output)).unwrap())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        };
        let listen_args = [
            "listen",
            "127.0.0.1:0",
            "--pipe",
            "--p2p",
            "--relay",
            &url,
            "--peer",
            &guest_key,
        ];
        let mut l = spawn(
            &host,
            listen_args.map(String::from).to_vec(),
            &down,
            "got-up",
        );
        let mut l_err = BufReader::new(l.stderr.take().unwrap()).lines();
        let ticket = loop {
            let line = l_err
                .next_line()
                .await
                .unwrap()
                .expect("listener stopped early");
            if line.starts_with("schat:") && !line.contains(' ') {
                break iroh_only(&line);
            }
        };
        let dial_args = ["dial", &ticket, "--pipe"];
        let mut d = spawn(
            &guest,
            dial_args.map(String::from).to_vec(),
            &up,
            "got-down",
        );
        let mut d_err = String::new();
        d.stderr
            .take()
            .unwrap()
            .read_to_string(&mut d_err)
            .await
            .unwrap();
        assert!(d.wait().await.unwrap().success(), "{d_err}");
        let mut rest = Vec::new();
        while let Some(line) = l_err.next_line().await.unwrap() {
            rest.push(line);
        }
        assert!(l.wait().await.unwrap().success(), "{rest:#?}");
        assert!(d_err.contains("path: iroh"), "{d_err}");
        assert!(std::fs::read(dir.path().join("got-up")).unwrap() == std::fs::read(&up).unwrap());
        assert!(
            std::fs::read(dir.path().join("got-down")).unwrap() == std::fs::read(&down).unwrap()
        );
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn over_iroh_a_wrong_key_is_refused_before_our_identity_goes_out() {
    within(async {
        let (relay_home, host, guest, other) = (Home::new(), Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let (mut room, ticket) = p2p_listener(&host, &url, &["--allow", "anyone"]).await;
        // The listener's iroh address, with someone else's schat key: an impostor's ticket.
        let mut forged = Ticket::decode(&iroh_only(&ticket)).unwrap();
        let key: [u8; 32] = hex::decode(other.fingerprint())
            .unwrap()
            .try_into()
            .unwrap();
        forged.key = schat::keys::PublicKey::from_bytes(key);
        let mut g = dial(&guest, &forged.encode(), &[]);
        let status = g.exit().await;
        assert_eq!(status.code(), Some(3), "{:#?}", g.stderr_seen);
        assert!(
            g.stderr_text().contains("does not match") || g.stderr_text().contains("pin"),
            "{:#?}",
            g.stderr_seen
        );
        // The listener never admitted anyone.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !room.stderr_text().contains("joined"),
            "{:#?}",
            room.stderr_seen
        );
        stop(&mut room).await;
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn over_iroh_a_closed_listener_refuses_a_stranger_with_exit_4() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        // The default: known peers only. A ticket without a secret admits nobody.
        let mut room = host.spawn(&[
            "listen",
            "127.0.0.1:0",
            "--p2p",
            "--relay",
            &url,
            "--p2p-bind",
            "127.0.0.1:0",
            "--no-portmap",
        ]);
        let ticket = room
            .stderr_until_any(|l| l.starts_with("schat:") && !l.contains(' '))
            .await;
        let mut g = dial(&guest, &iroh_only(&ticket), &[]);
        assert_eq!(g.exit().await.code(), Some(4), "{:#?}", g.stderr_seen);
        room.stderr_until("refused").await;
        stop(&mut room).await;
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn an_invite_carries_the_iroh_address_of_a_running_p2p_listener() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let (mut room, _) = p2p_listener(&host, &url, &[]).await;
        let out = host.run(&["invite", "--addr", "127.0.0.1:9", "--name", "guest"]);
        assert!(out.status.success(), "{out:?}");
        let invite = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let decoded = Ticket::decode(&invite).unwrap();
        assert!(decoded.endpoint().is_some(), "{decoded:?}");
        assert!(decoded.secret.is_some());
        // Port 9 (discard) has no listener: the invite gets in over iroh, and is honoured.
        let mut g = dial(&guest, &invite, &[]);
        g.stderr_until("welcome").await;
        let joined = room.stderr_until("joined").await;
        assert!(joined.contains("verified by invite"), "{joined}");
        g.close_stdin();
        assert!(g.exit().await.success(), "{:#?}", g.stderr_seen);
        stop(&mut room).await;
        // The listener leaves no address behind once it has stopped.
        assert!(!host.path().join("p2p-address").exists());
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn tcp_wins_when_it_can_and_iroh_when_tcp_is_dead() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let (mut room, ticket) = p2p_listener(&host, &url, &["--allow", "anyone"]).await;
        let mut g = dial(&guest, &ticket, &[]);
        let path = g.stderr_until("path: ").await;
        assert!(path.contains("direct TCP"), "{path}");
        g.close_stdin();
        assert!(g.exit().await.success());

        // The same ticket with its TCP address pointing at a closed port: iroh carries it.
        let mut t = Ticket::decode(&ticket).unwrap();
        for a in t.addrs.iter_mut() {
            if let TicketAddr::Ip(_, port) = a {
                *port = 9;
            }
        }
        let mut g = dial(&guest, &t.encode(), &[]);
        let path = g.stderr_until("path: ").await;
        assert!(path.contains("iroh"), "{path}");
        g.close_stdin();
        assert!(g.exit().await.success(), "{:#?}", g.stderr_seen);
        // One session per dial at the listener: the losing path never got as far.
        room.stderr_until("joined").await;
        room.stderr_until("joined").await;
        stop(&mut room).await;
        assert_eq!(
            room.stderr_text().matches("joined").count(),
            2,
            "{:#?}",
            room.stderr_seen
        );
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn offline_nothing_hangs_a_dead_relay_is_reported_and_dialling_gives_up_in_time() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        // A relay URL where nothing listens (port 9): the listener still starts, says so,
        // and prints a ticket with its direct addresses, within a few seconds.
        let started = Instant::now();
        let (mut room, ticket) = p2p_listener(&host, "http://127.0.0.1:9/", &[]).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            room.stderr_text().contains("no connection to the relay"),
            "{:#?}",
            room.stderr_seen
        );
        room.signal("TERM");
        assert!(room.exit().await.success());

        // A ticket whose endpoint is gone: the dialer gives up after --timeout, exit 1.
        let started = Instant::now();
        let mut g = dial(&guest, &iroh_only(&ticket), &["--timeout", "3"]);
        assert_eq!(g.exit().await.code(), Some(1), "{:#?}", g.stderr_seen);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        assert!(g.stderr_text().contains("iroh"), "{:#?}", g.stderr_seen);
    })
    .await;
}

#[tokio::test]
async fn a_relay_with_an_allowlist_serves_only_listed_endpoints() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let endpoint = |home: &Home| {
            let out = home.run(&["fingerprint", "--endpoint"]);
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let (host_id, guest_id) = (endpoint(&host), endpoint(&guest));
        assert_eq!(host_id.len(), 64);
        assert_eq!(host_id, endpoint(&host), "the endpoint id is stable");
        let (mut relay, url) = relay(&relay_home, &["--allow-endpoint", &host_id]).await;
        // Listed: online at once.
        let (mut room, _) = p2p_listener(&host, &url, &[]).await;
        assert!(
            !room.stderr_text().contains("no connection to the relay"),
            "{:#?}",
            room.stderr_seen
        );
        stop(&mut room).await;
        // Not listed: the relay turns it away.
        let (mut other, _) = p2p_listener(&guest, &url, &[]).await;
        assert!(
            other.stderr_text().contains("no connection to the relay"),
            "{:#?}",
            other.stderr_seen
        );
        let _ = guest_id;
        stop(&mut other).await;
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn bad_p2p_options_are_usage_errors() {
    let home = Home::new();
    for args in [
        &["relay"][..],
        &[
            "relay",
            "127.0.0.1:0",
            "--allow-endpoint",
            "nope",
            "--insecure-http",
        ],
        &["listen", "127.0.0.1:0", "--relay", "http://127.0.0.1:1/"],
        &["listen", "127.0.0.1:0", "--p2p", "--relay", "ftp://x"],
        &["dial", "schat:aaaa"],
    ] {
        let out = home.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines().count() <= 3 && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn iroh_connections_that_never_open_a_stream_do_not_keep_a_genuine_dialer_out() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let (mut room, ticket) =
            p2p_listener(&host, &url, &["--allow", "anyone", "--max-handshakes", "4"]).await;
        let ticket = iroh_only(&ticket);
        let target = schat::net::iroh::target(&Ticket::decode(&ticket).unwrap().addrs)
            .unwrap()
            .unwrap();
        // An attacker (another address than the dialer's: 127.0.0.2), with twelve QUIC
        // connections that complete and then say nothing (no stream, no handshake message).
        let attacker = iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
            .relay_mode(iroh::RelayMode::Disabled)
            .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
            .clear_ip_transports()
            .bind_addr("127.0.0.2:0")
            .unwrap()
            .bind()
            .await
            .unwrap();
        let mut silent = Vec::new();
        for _ in 0..12 {
            if let Ok(Ok(conn)) = tokio::time::timeout(
                Duration::from_secs(2),
                attacker.connect(target.clone(), schat::net::iroh::ALPN),
            )
            .await
            {
                silent.push(conn);
            }
        }
        // The genuine dialer gets in well within its handshake deadline.
        let mut g = dial(&guest, &ticket, &[]);
        g.stderr_until("welcome").await;
        g.send("still reachable").await;
        assert_eq!(room.said().await, "still reachable");
        g.close_stdin();
        assert!(g.exit().await.success(), "{:#?}", g.stderr_seen);
        drop(silent);
        attacker.close().await;
        stop(&mut room).await;
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn a_once_listener_over_iroh_lets_its_last_frames_arrive_before_it_exits() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        for round in 0..3 {
            let (mut room, ticket) =
                p2p_listener(&host, &url, &["--allow", "anyone", "--once"]).await;
            // Says its line and leaves at once: the listener's WELCOME may still be on its
            // way when the room empties and the listener exits.
            let mut g = dial(&guest, &iroh_only(&ticket), &[]);
            g.send("hi").await;
            g.close_stdin();
            let status = g.exit().await;
            assert!(
                status.success(),
                "round {round}: {status:?} {:#?}",
                g.stderr_seen
            );
            assert!(room.exit().await.success(), "{:#?}", room.stderr_seen);
        }
        stop(&mut relay).await;
    })
    .await;
}

#[tokio::test]
async fn invites_carry_the_address_of_the_listener_that_runs_not_of_one_that_stopped() {
    within(async {
        let (relay_home, host) = (Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let invite_has_iroh = |host: &Home| {
            let out = host.run(&["invite", "--addr", "127.0.0.1:9"]);
            assert!(out.status.success(), "{out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            Ticket::decode(text.trim()).unwrap().endpoint().is_some()
        };
        let (mut first, _) = p2p_listener(&host, &url, &[]).await;
        // A second listener of the same home leaves its address alone, and stopping it does
        // not take the first one's away.
        let (mut second, _) = p2p_listener(&host, &url, &[]).await;
        assert!(
            second
                .stderr_text()
                .contains("will not include this address"),
            "{:#?}",
            second.stderr_seen
        );
        stop(&mut second).await;
        assert!(invite_has_iroh(&host));
        // A listener killed outright leaves its file behind: invites no longer use it.
        first.signal("KILL");
        first.exit().await;
        assert!(host.path().join("p2p-address").exists());
        assert!(!invite_has_iroh(&host));
        // The lock is private like every other lock of the home…
        use std::os::unix::fs::PermissionsExt;
        let lock = host.path().join("p2p-address.lock");
        let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "p2p-address.lock is {mode:o}");
        // …and a symbolic link in its place is refused, its target untouched (issue 24).
        std::fs::remove_file(&lock).unwrap();
        let target = host.path().join("elsewhere");
        std::fs::write(&target, b"not a lock").unwrap();
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let (mut third, _) = p2p_listener(&host, &url, &[]).await;
        assert!(
            third.stderr_text().contains("symbolic link"),
            "{:#?}",
            third.stderr_seen
        );
        stop(&mut third).await;
        assert_eq!(std::fs::read(&target).unwrap(), b"not a lock");
        stop(&mut relay).await;
    })
    .await;
}

/// Over iroh (the async pipe engine), Ctrl-C stops a pipe mid-transfer with exit 1, and the
/// listener hears from its QUIT that the transfer failed. (Signals used to be ignored for the
/// whole transfer.)
#[tokio::test]
async fn over_iroh_ctrl_c_stops_a_pipe_and_the_peer_hears_it_failed() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let guest_key = guest.fingerprint();
        let (mut listener, ticket) =
            p2p_listener(&host, &url, &["--pipe", "--peer", &guest_key]).await;
        let mut dialer = dial(&guest, &iroh_only(&ticket), &["--pipe"]);
        dialer.stderr_until("secure session established").await;
        dialer.send("some bytes, and more to come").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        dialer.signal("INT");
        assert_eq!(
            dialer.exit().await.code(),
            Some(1),
            "{}",
            dialer.stderr_text()
        );
        assert!(
            dialer
                .stderr_text()
                .contains("interrupted: the pipe stopped before the transfer finished"),
            "{}",
            dialer.stderr_text()
        );
        assert_eq!(
            listener.exit().await.code(),
            Some(1),
            "{}",
            listener.stderr_text()
        );
        assert!(
            listener.stderr_text().contains("aborted: interrupted"),
            "{}",
            listener.stderr_text()
        );
        stop(&mut relay).await;
    })
    .await;
}

/// A valid endpoint id nobody uses: Ed25519's base point.
const ED25519_BASE: [u8; 32] = {
    let mut b = [0x66; 32];
    b[0] = 0x58;
    b
};

/// A ticket is text anyone can write: its relay must be an https origin (or plain http on
/// loopback), or the dialer would send requests to any host, port and path it names. Refused
/// in one line, before anything is dialled (issue 24: `GET /relay?z=1` went out).
#[tokio::test]
async fn a_tickets_relay_with_a_path_and_query_is_refused_before_anything_is_dialled() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = trap.local_addr().unwrap().port();
        let key = schat::fingerprint::parse(&host.fingerprint()).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/x/y?z=1#frag"),
            format!("https://user@127.0.0.1:{port}/"),
        ] {
            let ticket = Ticket {
                key,
                secret: None,
                expires: 0,
                name: String::new(),
                addrs: vec![
                    TicketAddr::Endpoint(ED25519_BASE),
                    TicketAddr::Relay(url.clone()),
                ],
            }
            .encode();
            let mut d = dial(&guest, &ticket, &[]);
            let status = d.exit().await;
            assert_eq!(status.code(), Some(2), "{url}: {}", d.stderr_text());
            assert!(
                d.stderr_text().contains("nothing was dialled"),
                "{url}: {}",
                d.stderr_text()
            );
        }
        let knocked = tokio::time::timeout(Duration::from_millis(300), trap.accept()).await;
        assert!(knocked.is_err(), "the relay in the ticket was contacted");
    })
    .await;
}

/// `schat relay --qad-port` on another port than 7842 says that endpoints will not ask there
/// (issue 24: hole punching silently lost its address discovery).
#[tokio::test]
async fn a_relay_on_another_qad_port_says_endpoints_will_not_ask_there() {
    within(async {
        use rcgen::{CertificateParams, KeyPair};
        let home = Home::new();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (home.path().join("relay.pem"), home.path().join("relay.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port().to_string();
        drop(udp);
        let mut relay = home.spawn(&[
            "relay",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
            "--qad-port",
            &port,
        ]);
        let line = relay.stderr_until("QUIC address discovery on udp").await;
        assert!(line.ends_with(&format!(":{port}")), "{line}");
        relay
            .stderr_until("ask for QUIC address discovery on udp port 7842 only")
            .await;
        stop(&mut relay).await;
    })
    .await;
}

/// A pipe dialled over TCP whose TCP path dies for good resumes over iroh (the dialer tries
/// the ticket's routes again, TCP then iroh): what was said before and after arrives once,
/// in order, and both sides end cleanly. The second connection runs the async engine, the
/// first the threaded one.
#[tokio::test]
async fn a_pipe_whose_tcp_path_dies_resumes_over_iroh() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let key = guest.fingerprint();
        let (mut listener, ticket) =
            p2p_listener(&host, &url, &["--pipe", "--peer", &key, "--quiet"]).await;
        // The ticket's TCP address goes through a proxy the test can cut.
        let mut t = Ticket::decode(&ticket).unwrap();
        let port = t
            .addrs
            .iter()
            .find_map(|a| match a {
                TicketAddr::Ip(_, port) => Some(*port),
                _ => None,
            })
            .unwrap();
        let proxy = common::proxy::Proxy::start(port).await;
        t.addrs.retain(|a| !a.is_tcp());
        t.addrs
            .insert(0, TicketAddr::Ip([127, 0, 0, 1].into(), proxy.port));
        let mut g = dial(&guest, &t.encode(), &["--pipe", "--quiet"]);
        let path = g.stderr_until("path: ").await;
        assert!(path.contains("direct TCP"), "{path}");
        g.send("before the cut").await;
        listener.send("host before").await;
        assert_eq!(listener.stdout_line().await, "before the cut");
        assert_eq!(g.stdout_line().await, "host before");
        proxy.refuse(true);
        proxy.cut();
        g.stderr_until("reconnected").await;
        g.send("after the cut").await;
        listener.send("host after").await;
        assert_eq!(listener.stdout_line().await, "after the cut");
        assert_eq!(g.stdout_line().await, "host after");
        g.close_stdin();
        listener.close_stdin();
        assert!(g.exit().await.success(), "{:#?}", g.stderr_seen);
        assert!(
            listener.exit().await.success(),
            "{:#?}",
            listener.stderr_seen
        );
        assert_eq!(listener.stdout_seen.len(), 2, "{:?}", listener.stdout_seen);
        assert_eq!(g.stdout_seen.len(), 2, "{:?}", g.stdout_seen);
        stop(&mut relay).await;
    })
    .await;
}

/// A file offered over iroh (a ticket with no TCP address), saved whole and checked.
#[tokio::test]
async fn a_file_goes_over_iroh_with_a_ticket() {
    within(async {
        let (relay_home, host, guest) = (Home::new(), Home::new(), Home::new());
        let (mut relay, url) = relay(&relay_home, &[]).await;
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let body: Vec<u8> = (0..(5u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let file = src.path().join("over-iroh.bin");
        std::fs::write(&file, &body).unwrap();
        let dl_arg = dl.path().to_str().unwrap();
        let (mut l, ticket) = p2p_listener(
            &host,
            &url,
            &["--allow", "anyone", "--accept-files", dl_arg],
        )
        .await;
        let mut d = dial(
            &guest,
            &iroh_only(&ticket),
            &["--trust", "accept-new", "--send", file.to_str().unwrap()],
        );
        assert!(d.exit().await.success(), "{:#?}", d.stderr_seen);
        assert!(
            d.stderr_text()
                .contains("over-iroh.bin (5.0 MiB) delivered")
        );
        assert_eq!(
            std::fs::read(dl.path().join("over-iroh.bin")).unwrap(),
            body
        );
        stop(&mut l).await;
        stop(&mut relay).await;
    })
    .await
}
