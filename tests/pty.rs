//! The interactive trust prompt, answered through a real pseudo-terminal.

mod common;

use common::{Home, within};
use expectrl::process::unix::WaitStatus;
use expectrl::{Expect, Session};
use std::time::Duration;

/// Starts `schat dial` for `home` on a pseudo-terminal.
fn dial_on_terminal(home: &Home, port: u16) -> expectrl::session::OsSession {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("--home")
        .arg(home.path())
        .args(["dial", &format!("127.0.0.1:{port}")])
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

/// Runs a blocking terminal conversation off the async runtime.
async fn on_terminal<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn answering_no_refuses_with_exit_3() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;
        let code = on_terminal(move || {
            let mut t = dial_on_terminal(&alice, port);
            t.expect("safety number:").unwrap();
            t.expect("trust this peer?").unwrap();
            t.send_line("n").unwrap();
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
            let mut t = dial_on_terminal(&alice, port);
            t.expect("trust this peer?").unwrap();
            // Pasted the way it is read out: grouped, upper case.
            let grouped: Vec<String> = fp
                .to_uppercase()
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            t.send_line(grouped.join(" ")).unwrap();
            t.expect("the fingerprint matches").unwrap();
            t.expect("petname for this peer").unwrap();
            t.send_line("bobby").unwrap();
            t.expect("remembered as \"bobby\"").unwrap();
            t.expect("welcome").unwrap();
            t.send_line("typed on a terminal").unwrap();
            (t, alice)
        })
        .await;
        assert_eq!(listener.stdout_line().await, "typed on a terminal");
        let (t, alice) = dialer;
        let code = on_terminal(move || {
            let mut t = t;
            t.send_line("quit").unwrap();
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
            let mut t = dial_on_terminal(&alice, port);
            t.expect("trust this peer?").unwrap();
            t.send_line(&wrong).unwrap();
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
