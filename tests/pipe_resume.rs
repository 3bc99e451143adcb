//! A pipe survives its connection (PROTOCOL.md §4.12): cut, blackholed or never restored,
//! through a proxy on loopback. What comes out is the other side's input byte for byte, or the
//! exit status says it is not.
//!
//! The inputs are pipes the test writes to, so a transfer cannot end before the test says:
//! every cut falls while the session is alive, wherever in the stream it lands.

mod common;

use common::pipe::{Files, PipeProc};
use common::proxy::Proxy;
use common::{Home, within};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

/// A pipe listener pinned to the dialer's key and a dialer through a proxy, both with their
/// stdin open for the test to write.
struct Pair {
    listener: PipeProc,
    dialer: PipeProc,
    to_listener: ChildStdin,
    /// (None when the dialer reads a file.)
    to_dialer: Option<ChildStdin>,
    proxy: Proxy,
    files: Files,
    _homes: [Home; 2],
}

async fn pair(listen_args: &[&str], dial_args: &[&str]) -> Pair {
    pair_with(listen_args, dial_args, None).await
}

/// As [`pair`]; with `Some(len)`, the dialer's stdin is a file of `len` random bytes (the
/// pair's file `in`) instead of a pipe the test writes to.
async fn pair_with(listen_args: &[&str], dial_args: &[&str], file: Option<usize>) -> Pair {
    let (alice, bob) = (Home::new(), Home::new());
    let files = Files::new();
    let input = match file {
        Some(len) => common::pipe::stdin_from(&files.random("in", len)),
        None => Stdio::piped(),
    };
    let key = alice.fingerprint();
    let mut args = vec!["listen", "127.0.0.1:0", "--pipe", "--peer", &key, "--quiet"];
    args.extend_from_slice(listen_args);
    let mut listener = PipeProc::spawn(&bob, &args, Stdio::piped(), &files.path("l.out"));
    let line = listener.stderr_until("listening on").await;
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(port).await;
    let addr = format!("127.0.0.1:{}", proxy.port);
    let mut args = vec!["dial", &addr, "--pipe", "--trust", "accept-new", "--quiet"];
    args.extend_from_slice(dial_args);
    let mut dialer = PipeProc::spawn(&alice, &args, input, &files.path("d.out"));
    let to_listener = listener.child.stdin.take().unwrap();
    let to_dialer = dialer.child.stdin.take();
    dialer.stderr_until("secure session established").await;
    listener.stderr_until("secure session established").await;
    Pair {
        listener,
        dialer,
        to_listener,
        to_dialer,
        proxy,
        files,
        _homes: [alice, bob],
    }
}

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::fill(&mut data[..]);
    data
}

impl Pair {
    /// Writes `len` fresh random bytes to each side's stdin, in the background (a full pipe
    /// must not hold the test up while the network is away); returns them.
    async fn feed(&mut self, len: usize, up: &mut Vec<u8>, down: &mut Vec<u8>) {
        let (a, b) = (random(len), random(len));
        up.extend_from_slice(&a);
        down.extend_from_slice(&b);
        let to_dialer = self.to_dialer.as_mut().unwrap();
        let to_listener = &mut self.to_listener;
        let (x, y) = tokio::join!(to_dialer.write_all(&a), to_listener.write_all(&b));
        x.unwrap();
        y.unwrap();
    }

    /// Ends both inputs and checks both exit 0 with each other's bytes as output.
    async fn finish(mut self, up: &[u8], down: &[u8]) {
        drop(self.to_dialer);
        drop(self.to_listener);
        let status = self.dialer.exit().await;
        assert!(status.success(), "dialer: {}", self.dialer.stderr_text());
        let status = self.listener.exit().await;
        assert!(
            status.success(),
            "listener: {}",
            self.listener.stderr_text()
        );
        let got_up = std::fs::read(self.files.path("l.out")).unwrap();
        let got_down = std::fs::read(self.files.path("d.out")).unwrap();
        assert!(
            got_up == up,
            "listener's output: {} of {} bytes, or different",
            got_up.len(),
            up.len()
        );
        assert!(
            got_down == down,
            "dialer's output: {} of {} bytes, or different",
            got_down.len(),
            down.len()
        );
    }
}

/// Twenty cuts while megabytes move both ways: each side's output is the other's input,
/// byte for byte, and both exit 0.
#[tokio::test]
async fn twenty_cuts_mid_transfer_lose_and_repeat_no_byte() {
    within(async {
        let mut p = pair(&[], &[]).await;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            // (The feeding runs beside the cut: the bytes are on their way when it lands.)
            let (len, proxy) = (1 << 20, &p.proxy);
            let feeding = async {
                let (a, b) = (random(len), random(len));
                let to_dialer = p.to_dialer.as_mut().unwrap();
                let (x, y) = tokio::join!(to_dialer.write_all(&a), p.to_listener.write_all(&b));
                x.unwrap();
                y.unwrap();
                (a, b)
            };
            let cutting = async {
                tokio::task::yield_now().await;
                proxy.cut();
            };
            let ((a, b), ()) = tokio::join!(feeding, cutting);
            up.extend_from_slice(&a);
            down.extend_from_slice(&b);
            p.dialer.stderr_until("reconnected").await;
        }
        p.feed(1 << 20, &mut up, &mut down).await;
        p.finish(&up, &down).await;
    })
    .await
}

/// A blackhole (nothing forwarded, nothing closed, as a dead path is) for 30 s, long enough
/// for both keepalives to give up on the connection and for the dialer's attempts to hang,
/// then restored: the transfer resumes and completes.
#[tokio::test]
async fn a_blackhole_then_the_network_back_completes_the_transfer() {
    within(async {
        let mut p = pair(&["--keepalive", "1"], &["--keepalive", "1"]).await;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        p.feed(4 << 20, &mut up, &mut down).await;
        p.proxy.blackhole(true);
        let restore = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        p.dialer.stderr_until("connection lost").await;
        p.listener.stderr_until("connection lost").await;
        // (Both sides write on meanwhile: their input waits in the window or in the pipe.)
        let writing = {
            let extra = random(1 << 20);
            up.extend_from_slice(&extra);
            let mut to_dialer = p.to_dialer.take().unwrap();
            tokio::spawn(async move {
                to_dialer.write_all(&extra).await.unwrap();
                to_dialer
            })
        };
        tokio::time::sleep_until(restore).await;
        p.proxy.blackhole(false);
        p.dialer.stderr_until("reconnected").await;
        p.to_dialer = Some(writing.await.unwrap());
        p.finish(&up, &down).await;
    })
    .await
}

/// The network never comes back: both sides give up after the grace period, exit 1, and say
/// the output is incomplete.
#[tokio::test]
async fn a_cut_never_restored_fails_both_sides_after_the_grace_period() {
    within(async {
        let mut p = pair(&["--resume-grace", "3"], &["--resume-grace", "3"]).await;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        p.feed(1 << 20, &mut up, &mut down).await;
        p.proxy.refuse(true);
        p.proxy.cut();
        p.dialer.stderr_until("reconnecting").await;
        let status = p.dialer.exit().await;
        assert_eq!(status.code(), Some(1), "{}", p.dialer.stderr_text());
        let status = p.listener.exit().await;
        assert_eq!(status.code(), Some(1), "{}", p.listener.stderr_text());
        for side in [&p.dialer, &p.listener] {
            let text = side.stderr_text();
            assert!(text.contains("not resumed"), "{text}");
            assert!(text.contains("output is incomplete"), "{text}");
        }
    })
    .await
}

/// A dialer that does not resume (`--no-reconnect`): a cut ends the pipe at once on both
/// sides, as before resuming existed; the listener does not wait for it.
#[tokio::test]
async fn without_both_offers_a_cut_ends_the_pipe_at_once() {
    within(async {
        let mut p = pair(&[], &["--no-reconnect"]).await;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        p.feed(1 << 20, &mut up, &mut down).await;
        p.proxy.cut();
        assert_eq!(p.dialer.exit().await.code(), Some(1));
        assert_eq!(p.listener.exit().await.code(), Some(1));
        let text = p.listener.stderr_text();
        assert!(!text.contains("waiting up to"), "{text}");
    })
    .await
}

/// While a listener keeps its pipe for the dialer, a stranger's connection is turned away and
/// the real dialer still comes back.
#[tokio::test]
async fn a_stranger_cannot_take_a_kept_pipe() {
    within(async {
        let mut p = pair(&[], &[]).await;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        p.feed(1 << 20, &mut up, &mut down).await;
        p.proxy.refuse(true);
        p.proxy.cut();
        p.listener.stderr_until("waiting up to").await;
        // Mallory dials the listener directly (not through the proxy) and says RESUME.
        let line = p
            .listener
            .seen
            .iter()
            .find(|l| l.contains("listening on"))
            .unwrap()
            .clone();
        let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        if let Some(mut raw) = common::raw::Raw::initiate(stream).await {
            let mut body = vec![7u8; 32];
            body.extend_from_slice(&0u64.to_be_bytes());
            raw.send(0x14, &body).await;
            raw.drain().await;
        }
        p.listener.stderr_until("refused").await;
        p.proxy.refuse(false);
        p.dialer.stderr_until("reconnected").await;
        p.feed(1 << 20, &mut up, &mut down).await;
        p.finish(&up, &down).await;
    })
    .await
}

/// A peer's counts are checked (PROTOCOL.md §4.12): an ACK counting more than was sent, or an
/// ACK on a connection that does not resume, ends the pipe as the peer's protocol error.
#[tokio::test]
async fn false_counts_from_the_peer_end_the_pipe() {
    within(async {
        let files = Files::new();
        for (offer, ack, why) in [
            (true, 5u64, "more bytes than were sent"),
            (false, 0, "does not resume"),
        ] {
            let bob = Home::new();
            let mut listener = PipeProc::spawn(
                &bob,
                &["listen", "127.0.0.1:0", "--pipe", "--allow", "anyone"],
                Stdio::null(),
                &files.path("l.out"),
            );
            let line = listener.stderr_until("listening on").await;
            let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let mut raw = common::raw::Raw::initiate(stream).await.unwrap();
            if offer {
                raw.send(0x83, &[]).await;
            }
            raw.send(0x0a, &[0x02]).await;
            raw.send(0x13, &ack.to_be_bytes()).await;
            raw.drain().await;
            assert_eq!(listener.exit().await.code(), Some(1));
            let text = listener.stderr_text();
            assert!(text.contains("ACK") && text.contains(why), "{text}");
            assert!(!text.contains("waiting up to"), "{text}");
        }
    })
    .await
}

/// A regular file as stdin is read again for what the peer missed, not kept in memory: the
/// listener is stopped once bytes flow (48 MiB cannot all have gone through, the rest fills
/// the sockets) and the connection cut; the output is still the file, byte for byte.
#[tokio::test]
async fn a_file_on_stdin_is_read_again_after_a_cut() {
    within(async {
        let mut p = pair_with(&[], &[], Some(48 << 20)).await;
        // Once bytes arrive the file is on its way; stopped, the listener takes no more.
        while std::fs::metadata(p.files.path("l.out")).unwrap().len() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let pid = p.listener.child.id().unwrap() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        p.proxy.cut();
        p.dialer.stderr_until("connection lost").await;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        p.dialer.stderr_until("reconnected").await;
        let input = std::fs::read(p.files.path("in")).unwrap();
        p.finish(&input, &[]).await;
    })
    .await
}

/// A listener that keeps no pipe (it was restarted) answers a dialer's RESUME `gone:` and goes
/// on listening with its input whole; the dialer exits 1 (what it sent before was taken by
/// the old listener: not 4, "nothing taken"), and a new dial gets the whole input.
#[tokio::test]
async fn a_restarted_listener_says_gone_and_keeps_its_input() {
    within(async {
        let mut p = pair(&[], &[]).await;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        p.feed(1 << 20, &mut up, &mut down).await;
        let line = p
            .listener
            .seen
            .iter()
            .find(|l| l.contains("listening on"))
            .unwrap()
            .clone();
        let addr = line.rsplit(' ').next().unwrap().to_string();
        p.listener.child.start_kill().unwrap();
        p.listener.exit().await;
        p.dialer.stderr_until("reconnecting").await;
        // The same address, another listener of the same home and key, with its own input.
        let home = &p._homes[1];
        let input = p.files.random("second", 100_000);
        let key = p._homes[0].fingerprint();
        let args = ["listen", &addr, "--pipe", "--peer", &key, "--quiet"];
        let out = p.files.path("second.out");
        let mut second = PipeProc::spawn(home, &args, common::pipe::stdin_from(&input), &out);
        second.stderr_until("listening on").await;
        let status = p.dialer.exit().await;
        assert_eq!(status.code(), Some(1), "{}", p.dialer.stderr_text());
        assert!(
            p.dialer.stderr_text().contains("gone:"),
            "{}",
            p.dialer.stderr_text()
        );
        second.stderr_until("refused a resume").await;
        // A new dial gets everything the second listener had.
        let port = p.proxy.port;
        let addr = format!("127.0.0.1:{port}");
        let args = ["dial", &addr, "--pipe", "--trust", "accept-new", "--quiet"];
        let d_out = p.files.path("new.out");
        let mut dialer = PipeProc::spawn(&p._homes[0], &args, Stdio::null(), &d_out);
        assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
        assert!(second.exit().await.success(), "{}", second.stderr_text());
        assert!(std::fs::read(&d_out).unwrap() == std::fs::read(&input).unwrap());
    })
    .await
}

/// A regular file changed while its pipe was cut cannot give back what was sent: the resume
/// fails on the sender (exit 1, saying so) and the receiver hears it at once (exit 1), rather
/// than waiting out the grace period or taking the new bytes for the old.
#[tokio::test]
async fn a_file_changed_during_a_cut_fails_the_resume_on_both_sides() {
    within(async {
        let mut p = pair_with(&[], &[], Some(4 << 20)).await;
        p.proxy.refuse(true);
        p.proxy.cut();
        p.dialer.stderr_until("connection lost").await;
        // Changed in place (same length), while nobody can reconnect.
        std::fs::write(p.files.path("in"), vec![0u8; 4 << 20]).unwrap();
        p.proxy.refuse(false);
        assert_eq!(
            p.dialer.exit().await.code(),
            Some(1),
            "{}",
            p.dialer.stderr_text()
        );
        let text = p.dialer.stderr_text();
        assert!(text.contains("changed"), "{text}");
        assert_eq!(
            p.listener.exit().await.code(),
            Some(1),
            "{}",
            p.listener.stderr_text()
        );
        let text = p.listener.stderr_text();
        assert!(text.contains("aborted"), "{text}");
    })
    .await
}
