//! The interactive trust prompt, answered through a real pseudo-terminal.

mod common;

use common::{Home, within};
use expectrl::process::unix::WaitStatus;
use expectrl::{Expect, Session};
use std::time::Duration;

/// Starts `schat dial` for `home` on a pseudo-terminal.
fn dial_on_terminal(home: &Home, port: u16, extra: &[&str]) -> expectrl::session::OsSession {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("--home")
        .arg(home.path())
        .args(["dial", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("NO_COLOR", "1");
    let mut session = Session::spawn(cmd).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(20)));
    session
}

fn exit_code(session: &expectrl::session::OsSession) -> Option<i32> {
    match session.get_process().wait().unwrap() {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

/// Types `text` and presses Enter, which a terminal sends as `\r` (`send_line`'s `\n` is Ctrl-J
/// to a line editor in raw mode).
fn type_line(t: &mut expectrl::session::OsSession, text: impl AsRef<str>) {
    t.send(format!("{}\r", text.as_ref())).unwrap();
}

/// Starts a blocking terminal conversation off the async runtime, at once (not when awaited).
fn on_terminal<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let task = tokio::task::spawn_blocking(f);
    async move { task.await.unwrap() }
}

#[tokio::test]
async fn answering_no_refuses_with_exit_3() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;
        let code = on_terminal(move || {
            let mut t = dial_on_terminal(&alice, port, &[]);
            t.expect("safety number:").unwrap();
            t.expect("trust it?").unwrap();
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            type_line(&mut t, "n");
            t.expect("did not accept").unwrap();
            let code = exit_code(&t);
            assert!(!alice.path().join("known_peers").exists());
            code
        })
        .await;
        assert_eq!(code, Some(3));
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

#[tokio::test]
async fn pasting_the_right_fingerprint_accepts_and_names_the_peer() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let fp = bob.fingerprint();
        let alice_home = alice.path().to_owned();
        let dialer = on_terminal(move || {
            let mut t = dial_on_terminal(&alice, port, &[]);
            t.expect("trust it?").unwrap();
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            // Pasted the way it is read out: grouped, upper case.
            let grouped: Vec<String> = fp
                .to_uppercase()
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            type_line(&mut t, grouped.join(" "));
            t.expect("the fingerprint matches").unwrap();
            t.expect("petname for this peer").unwrap();
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            type_line(&mut t, "bobby");
            t.expect("remembered as \"bobby\"").unwrap();
            t.expect("welcome").unwrap();
            type_line(&mut t, "typed on a terminal");
            (t, alice)
        })
        .await;
        assert_eq!(listener.said().await, "typed on a terminal");
        let (t, alice) = dialer;
        let code = on_terminal(move || {
            let mut t = t;
            type_line(&mut t, "quit");
            exit_code(&t)
        })
        .await;
        assert_eq!(code, Some(0));
        assert!(listener.exit().await.success());
        let stored = std::fs::read_to_string(alice_home.join("known_peers")).unwrap();
        assert!(
            stored.contains("bobby") && stored.contains("fingerprint"),
            "{stored}"
        );
        drop(alice);
    })
    .await
}

#[tokio::test]
async fn pasting_a_wrong_fingerprint_refuses() {
    within(async {
        let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;
        let wrong = carol.fingerprint();
        let code = on_terminal(move || {
            let mut t = dial_on_terminal(&alice, port, &[]);
            t.expect("trust it?").unwrap();
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            type_line(&mut t, &wrong);
            t.expect("does NOT match").unwrap();
            exit_code(&t)
        })
        .await;
        assert_eq!(code, Some(3));
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_half_typed_line_survives_an_incoming_message() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let terminal = on_terminal(move || {
            let mut t = dial_on_terminal(&alice, port, &["--trust", "accept-new"]);
            t.expect("welcome").unwrap();
            t.send("hello wo").unwrap();
            t.expect("hello wo").unwrap();
            tx.send(()).unwrap(); // now the peer speaks
            t.expect("incoming while you type").unwrap();
            // The prompt with the half line is drawn again below the message.
            t.expect("> hello wo").unwrap();
            type_line(&mut t, "rld");
            t.expect("<you> hello world").unwrap();
            (t, alice)
        });
        tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap();
        listener.send("incoming while you type").await;
        let (t, _alice) = terminal.await;
        assert_eq!(listener.said().await, "hello world");
        let code = on_terminal(move || {
            let mut t = t;
            type_line(&mut t, "/quit");
            exit_code(&t)
        })
        .await;
        assert_eq!(code, Some(0));
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn arrow_up_recalls_history_and_peer_escapes_are_shown_not_run() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let terminal = on_terminal(move || {
            let mut t = dial_on_terminal(&alice, port, &["--trust", "accept-new"]);
            t.expect("welcome").unwrap();
            type_line(&mut t, "say it twice");
            t.expect("<you> say it twice").unwrap();
            t.send("\x1b[A").unwrap(); // arrow up
            t.send("\r").unwrap();
            tx.send(()).unwrap();
            // What the peer sent arrives escaped: a visible backslash, never an ESC byte.
            t.expect("\\x1b[2J\\x1b]52;c;aGk=\\x07 \\u{202e}rtl \\x00")
                .unwrap();
            type_line(&mut t, "quit");
            exit_code(&t)
        });
        assert_eq!(listener.said().await, "say it twice");
        assert_eq!(listener.said().await, "say it twice");
        tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap();
        listener
            .send("\x1b[2J\x1b]52;c;aGk=\x07 \u{202e}rtl \0")
            .await;
        assert_eq!(terminal.await, Some(0));
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn ctrl_c_clears_then_leaves_cleanly_and_restores_the_terminal() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let home = alice.path().to_owned();
        on_terminal(move || {
            // A shell notes the terminal settings, runs schat, then compares the settings.
            let script = format!(
                "before=$(stty -g); {} --home {} dial 127.0.0.1:{port} --trust accept-new; \
                 echo \"exit=$?\"; if [ \"$(stty -g)\" = \"$before\" ]; then echo restored; \
                 else echo CHANGED; stty -a; fi",
                common::bin(),
                home.display()
            );
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", &script]);
            let mut t = Session::spawn(cmd).unwrap();
            t.set_expect_timeout(Some(Duration::from_secs(20)));
            t.expect("welcome").unwrap();
            t.send("half a line").unwrap();
            // Ctrl-C clears the line, as in a shell; on the empty line it quits.
            t.send("\x03").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            t.send("\x03").unwrap();
            t.expect("exit=0").unwrap();
            let rest = t.expect(expectrl::Eof).unwrap();
            let rest = String::from_utf8_lossy(rest.as_bytes()).to_string();
            assert!(
                rest.contains("restored"),
                "terminal settings changed: {rest}"
            );
            drop(alice);
        })
        .await;
        assert!(listener.exit().await.success());
        assert!(listener.stderr_text().contains(" left"));
        assert!(
            listener.stdout_seen.is_empty(),
            "the half line was never sent"
        );
    })
    .await
}

/// A signal, or Ctrl-C, while the trust question waits ends the dial at once: exit 1, the key
/// not remembered, nothing sent (the listener never sees it join). Chat (the line editor: Ctrl-C
/// is a key, SIGTERM a signal) and pipe (the question on /dev/tty in cooked mode: Ctrl-C is
/// SIGINT). Issue 31: the signal was held until the question was answered, then acted.
#[tokio::test]
async fn a_signal_at_the_trust_question_ends_the_dial_and_remembers_nothing() {
    within(async {
        for (how, pipe) in [
            ("TERM", false),
            ("ctrl-c", false),
            ("ctrl-c", true),
            ("TERM", true),
        ] {
            let (alice, bob) = (Home::new(), Home::new());
            let alice_key = alice.fingerprint();
            let listen_extra: Vec<&str> = if pipe {
                vec!["--pipe", "--peer", &alice_key]
            } else {
                vec![]
            };
            let (mut listener, port) = bob.listen(&listen_extra).await;
            let dial_extra: &[&str] = if pipe { &["--pipe"] } else { &[] };
            let dial_extra: Vec<String> = dial_extra.iter().map(|s| s.to_string()).collect();
            let alice_home = alice.path().to_path_buf();
            let (code, took) = on_terminal(move || {
                let args: Vec<&str> = dial_extra.iter().map(String::as_str).collect();
                let mut t = dial_on_terminal(&alice, port, &args);
                t.expect("trust it?").unwrap();
                std::thread::sleep(Duration::from_millis(600));
                let started = std::time::Instant::now();
                match how {
                    "TERM" => {
                        let pid = t.get_process().pid().as_raw().to_string();
                        assert!(
                            std::process::Command::new("kill")
                                .args(["-TERM", &pid])
                                .status()
                                .unwrap()
                                .success()
                        );
                    }
                    _ => t.send("\x03").unwrap(),
                }
                let said = t.expect(expectrl::Eof).unwrap();
                let took = started.elapsed();
                // (Long lines are wrapped: compare without the blanks.)
                let said: Vec<u8> = said
                    .before()
                    .iter()
                    .chain(said.as_bytes())
                    .copied()
                    .collect();
                let said: String = String::from_utf8_lossy(&said)
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                assert!(said.contains("nothingwassentorremembered"), "{said}");
                (exit_code(&t), took)
            })
            .await;
            let case = format!("{how}, pipe {pipe}");
            assert_eq!(code, Some(1), "{case}");
            assert!(took < Duration::from_secs(5), "{case}: took {took:?}");
            let known = std::fs::read_to_string(alice_home.join("known_peers")).unwrap_or_default();
            assert!(!known.contains(&bob.fingerprint()), "{case}: {known}");
            listener.signal("INT");
            listener.exit().await;
            let log = listener.stderr_text();
            assert!(!log.contains("joined ("), "{case}: {log}");
            assert!(listener.stdout_seen.is_empty(), "{case}: {log}");
        }
    })
    .await
}

/// `keygen --force` never throws an identity away without a word (issue 26): it shows the old
/// fingerprint and what replacing it means, asks at a terminal (anything but "yes" keeps it),
/// and keeps the old keyfile as a 0600 copy, saying where.
#[tokio::test]
async fn keygen_force_asks_shows_the_old_key_and_keeps_a_copy() {
    within(async {
        let home = Home::new();
        let old_fp = home.fingerprint();
        let old_file = std::fs::read(home.identity()).unwrap();
        let dir = home.path().to_path_buf();
        // At a terminal: "no" keeps everything.
        on_terminal(move || {
            let mut cmd = std::process::Command::new(common::bin());
            cmd.arg("--home")
                .arg(&dir)
                .args(["keygen", "--force", "--no-passphrase"]);
            let mut t = Session::spawn(cmd).unwrap();
            t.set_expect_timeout(Some(Duration::from_secs(20)));
            t.expect("replace it?").unwrap();
            type_line(&mut t, "no");
            t.expect("unchanged").unwrap();
            assert_eq!(exit_code(&t), Some(2));
        })
        .await;
        assert_eq!(home.fingerprint(), old_fp);
        // Without a terminal (a script that said --force): replaced, the old one kept.
        let out = home.run(&["keygen", "--force", "--no-passphrase"]);
        assert!(out.status.success(), "{out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        let grouped: String = old_fp
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(said.contains(&grouped), "{said}");
        assert!(said.contains("key-change alarm"), "{said}");
        assert_ne!(home.fingerprint(), old_fp);
        let kept: Vec<_> = std::fs::read_dir(home.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("identity.old-")
            })
            .collect();
        assert_eq!(kept.len(), 1, "{said}");
        assert!(said.contains(&kept[0].display().to_string()), "{said}");
        assert_eq!(std::fs::read(&kept[0]).unwrap(), old_file);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    })
    .await
}
