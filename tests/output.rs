//! What schat prints for scripts and programs: `--json` events, escaping of hostile peer text in
//! every mode, and clear, bounded failures when dialling goes wrong.

mod common;

use common::{Home, within};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test]
async fn json_events_parse_and_carry_the_fields() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob
            .listen(&["--once", "--json", "--welcome", "hi bots"])
            .await;
        let mut dialer = alice.dial(port, &["--json"]);

        let connected = event(&dialer.stdout_line().await);
        assert_eq!(connected["event"], "connected");
        assert_eq!(connected["peer"]["fingerprint"], bob.fingerprint());
        assert!(connected["peer"]["petname"].is_string()); // accept-new named it
        assert_eq!(connected["safety_number"].as_str().unwrap().len(), 71);
        assert!(connected["time"].is_string());
        let welcome = event(&dialer.stdout_line().await);
        assert_eq!(welcome["event"], "welcome");
        assert_eq!(welcome["text"], "hi bots");

        let on_listener = event(&listener.stdout_line().await);
        assert_eq!(on_listener["event"], "connected");
        assert_eq!(on_listener["peer"]["fingerprint"], alice.fingerprint());
        assert_eq!(on_listener["peer"]["petname"], Value::Null);
        assert!(
            on_listener["address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );

        let hostile = "\x1b[2J\x1b]52;c;aGk=\x07 \u{202e}rtl \0end";
        dialer.send(hostile).await;
        dialer.send("/me waves").await;
        let raw = listener.stdout_line().await;
        // Escaped in the raw line: nothing a terminal would act on…
        assert!(
            raw.contains("\\u001b[2J") && raw.contains("\\u202e") && raw.contains("\\u0000"),
            "{raw}"
        );
        assert!(!raw.contains('\x1b') && !raw.contains('\u{202e}'));
        // …and exact once parsed.
        let msg = event(&raw);
        assert_eq!(msg["event"], "message");
        assert_eq!(msg["text"], hostile);
        assert_eq!(msg["from"]["fingerprint"], alice.fingerprint());
        assert_eq!(msg["action"], false);
        let action = event(&listener.stdout_line().await);
        assert_eq!(action["text"], "waves");
        assert_eq!(action["action"], true);

        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        let left = event(&listener.stdout_line().await);
        assert_eq!(left["event"], "left");
        assert_eq!(left["peer"]["fingerprint"], alice.fingerprint());
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn errors_are_json_events_too() {
    within(async {
        let home = Home::new();
        let port = free_port();
        let mut dialer = home.dial(port, &["--json"]);
        let e = event(&dialer.stdout_line().await);
        assert_eq!(e["event"], "error");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("nothing is listening"),
            "{e}"
        );
        assert_eq!(dialer.exit().await.code(), Some(1));
    })
    .await
}

/// A port with nothing listening on it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn dialling_a_closed_port_fails_at_once_with_refused() {
    within(async {
        let home = Home::new();
        let started = Instant::now();
        let mut dialer = home.dial(free_port(), &["--timeout", "3"]);
        assert_eq!(dialer.exit().await.code(), Some(1));
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = dialer.stderr_text();
        assert!(err.contains("nothing is listening at"), "{err}");
    })
    .await
}

#[tokio::test]
async fn dialling_an_echo_server_says_it_is_not_a_schat_listener() {
    within(async {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let started = Instant::now();
        let mut dialer = Home::new().dial(port, &["--timeout", "3"]);
        assert_eq!(dialer.exit().await.code(), Some(1));
        assert!(started.elapsed() < Duration::from_secs(4));
        let err = dialer.stderr_text();
        assert!(err.contains("not a schat peer"), "{err}");
        assert!(err.contains("echoed"), "{err}");
    })
    .await
}

#[tokio::test]
async fn dialling_an_address_that_never_answers_times_out() {
    within(async {
        // A listener with a zero backlog that never accepts: once its queue holds one
        // connection, the kernel drops further SYNs, so a connect gets no answer at all.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let silent = socket.listen(0).unwrap();
        let addr = silent.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..2 {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                fillers.push(s);
            }
        }
        let started = Instant::now();
        let mut dialer = Home::new().dial(addr.port(), &["--timeout", "2"]);
        assert_eq!(dialer.exit().await.code(), Some(1));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
            "{took:?}"
        );
        let err = dialer.stderr_text();
        assert!(err.contains("within 2 s"), "{err}");
        drop((silent, fillers));
    })
    .await
}

#[tokio::test]
async fn a_listener_that_accepts_but_never_speaks_hits_the_handshake_deadline() {
    within(async {
        let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = mute.local_addr().unwrap().port();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = mute.accept().await {
                held.push(s);
            }
        });
        let mut dialer = Home::new().dial(port, &["--timeout", "1"]);
        assert_eq!(dialer.exit().await.code(), Some(1));
        let err = dialer.stderr_text();
        assert!(err.contains("the handshake timed out after 1 s"), "{err}");
        holder.abort();
    })
    .await
}

/// `left` events say how the peer left (quit, cut, refused, timeout, error) and the text that
/// goes with it, on the host and on a dialer.
#[tokio::test]
async fn left_events_carry_a_reason_code() {
    within(async {
        let (host, alice, bob) = (Home::new(), Home::new(), Home::new());
        // (A member whose connection drops keeps its place for a second only.)
        let (mut room, port) = host.listen(&["--json", "--resume-grace", "1"]).await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        a.send("quit").await;
        assert!(a.exit().await.success());
        let left = loop {
            let e = event(&room.stdout_line().await);
            if e["event"] == "left" {
                break e;
            }
        };
        assert_eq!(left["reason"], "quit", "{left}");
        assert_eq!(left["text"], "", "{left}");

        let mut b = bob.dial(port, &["--json"]);
        loop {
            if event(&b.stdout_line().await)["event"] == "welcome" {
                break;
            }
        }
        b.signal("KILL");
        b.exit().await;
        let left = loop {
            let e = event(&room.stdout_line().await);
            if e["event"] == "left" {
                break e;
            }
        };
        assert_eq!(left["reason"], "cut", "{left}");
        assert!(left["text"].as_str().unwrap().contains("cut"), "{left}");

        // A dialer sees its host vanish the same way (when it does not dial again).
        let mut c = alice.dial(port, &["--json", "--no-reconnect"]);
        loop {
            if event(&c.stdout_line().await)["event"] == "welcome" {
                break;
            }
        }
        room.signal("KILL");
        room.exit().await;
        let left = loop {
            let e = event(&c.stdout_line().await);
            if e["event"] == "left" {
                break e;
            }
        };
        assert_eq!(left["reason"], "cut", "{left}");
        assert_eq!(c.exit().await.code(), Some(1));
    })
    .await
}
