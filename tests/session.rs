//! Sessions over in-memory pipes: key pinning, refusals, and connections that end badly.

use schat::error::Error;
use schat::handshake::Established;
use schat::keys::Identity;
use schat::message::{Message, Mode};
use schat::session::input::{Input, InputEvent};
use schat::session::verify::{TrustConfig, TrustPolicy};
use schat::session::{self, Ended, Role, Settings};
use schat::signals::Interrupts;
use schat::trust::{Allow, Store};
use schat::ui::Ui;
use std::time::Duration;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf, duplex, split};
use tokio::sync::mpsc;

type Side = Established<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

/// `session::converse` with this file's pieces: a run's context (whose identity the session
/// does not use once the handshake is done) and the user's side.
async fn converse(
    established: Side,
    role: &Role,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> schat::error::Result<Ended> {
    let identity = Identity::generate().unwrap();
    let run = session::Run {
        identity: &identity,
        settings,
        ui,
    };
    let mut user = session::User { input, interrupts };
    session::converse(established, None, role, &run, &mut user, None).await
}

async fn within<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .expect("test timed out")
}

fn settings(pin: Option<&Identity>) -> Settings {
    // Each test gets its own known_peers (leaked temp dir: removed with the test process's
    // temp files by the OS, and tiny).
    let home = tempfile::tempdir().unwrap().keep();
    Settings {
        pin: pin.map(|id| *id.public()),
        handshake_timeout: Duration::from_secs(5),
        trust: TrustConfig {
            store: Store::in_home(&home),
            peers_command: "schat peers".into(),
        },
        keepalive: Duration::from_secs(30),
        resume_grace: None,
        pipe: None,
        name: String::new(),
        ticket: None,
        code: None,
        petname: None,
        files: Default::default(),
        send: Vec::new(),
    }
}

fn listener_role() -> Role {
    Role::Listener {
        welcome: "hi".into(),
        allow: Allow::Anyone,
    }
}

fn dialer_role() -> Role {
    Role::Dialer {
        addr: "test.invalid:1".into(),
        policy: TrustPolicy::AcceptNew,
    }
}

/// Both handshakes, with the given pins.
async fn pair(alice: &Identity, bob: &Identity) -> (Side, Side) {
    let (a, b) = duplex(4096);
    let (ar, aw) = split(a);
    let (br, bw) = split(b);
    let none = settings(None);
    let (mut i1, mut i2) = (Interrupts::none(), Interrupts::none());
    let cfg1 = listener_role();
    let (d, l) = tokio::join!(
        async {
            session::establish(ar, aw, alice, &dialer_role(), &none, &mut i1, |_| Ok(())).await
        },
        async { session::establish(br, bw, bob, &cfg1, &none, &mut i2, |_| Ok(())).await }
    );
    (d.unwrap().unwrap(), l.unwrap().unwrap())
}

/// Input that yields `lines`, then stays open (never EOF) until dropped.
fn scripted(lines: &[&str]) -> (Input, mpsc::Sender<InputEvent>) {
    let (tx, rx) = mpsc::channel(16);
    for l in lines {
        tx.try_send(InputEvent::Line((*l).into())).unwrap();
    }
    (Input::from_channel(rx), tx)
}

#[tokio::test]
async fn listener_pin_mismatch_refuses_before_any_message() {
    within(async {
        let (alice, bob, carol) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let (dialer, listener) = pair(&alice, &bob).await;
        let ui = Ui::plain();
        let (mut dial_in, _keep1) = scripted(&["secret plans"]);
        let (mut listen_in, _keep2) = scripted(&[]);
        let (mut i1, mut i2) = (Interrupts::none(), Interrupts::none());
        let cfg2 = settings(None);
        let cfg3 = listener_role();
        let cfg4 = settings(Some(&carol));
        let dialer_cfg = dialer_role();
        let (d, l) = tokio::join!(
            converse(dialer, &dialer_cfg, &cfg2, &mut dial_in, &ui, &mut i1),
            // The listener expects carol, gets alice.
            converse(listener, &cfg3, &cfg4, &mut listen_in, &ui, &mut i2),
        );
        let err = l.unwrap_err();
        assert!(matches!(err, Error::PeerRefused(_)), "{err:?}");
        assert_eq!(err.exit_code(), 3);
        let text = err.to_string();
        assert!(text.contains(&schat::fingerprint::grouped(carol.public())));
        assert!(text.contains(&schat::fingerprint::grouped(alice.public())));
        // The dialer learns it was refused, with the reason, and is not told it succeeded.
        let derr = d.unwrap_err();
        assert!(matches!(derr, Error::RefusedByPeer(_)), "{derr:?}");
        assert!(derr.to_string().contains("not accepted"), "{derr}");
    })
    .await
}

#[tokio::test]
async fn dialer_pin_mismatch_refuses_and_shows_nothing() {
    within(async {
        let (alice, bob, carol) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let (dialer, mut listener) = pair(&alice, &bob).await;
        let ui = Ui::plain();
        let (mut dial_in, _keep) = scripted(&["must never be sent"]);
        // The listener side is driven by hand to see exactly what arrives.
        let peer_view = async {
            listener
                .send
                .send(&Message::Welcome("w".into()))
                .await
                .unwrap();
            listener
                .send
                .send(&Message::Text("must never be shown".into()))
                .await
                .unwrap();
            let mut got = Vec::new();
            while let Ok(Some(m)) = listener.recv.recv().await {
                got.push(m.into_owned());
            }
            got
        };
        let mut i1 = Interrupts::none();
        let cfg5 = settings(Some(&carol));
        let dialer_cfg = dialer_role();
        let (d, got) = tokio::join!(
            converse(dialer, &dialer_cfg, &cfg5, &mut dial_in, &ui, &mut i1),
            peer_view
        );
        assert!(matches!(d, Err(Error::PeerRefused(_))));
        assert_eq!(got.len(), 1, "only a QUIT reaches the peer: {got:?}");
        assert!(matches!(&got[0], Message::Quit(_)));
    })
    .await
}

#[tokio::test]
async fn matching_pins_chat_and_quit_cleanly() {
    within(async {
        let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (dialer, listener) = pair(&alice, &bob).await;
        let ui = Ui::plain();
        let (mut dial_in, keep) = scripted(&["quit"]);
        let (mut listen_in, _keep2) = scripted(&[]);
        let (mut i1, mut i2) = (Interrupts::none(), Interrupts::none());
        let cfg6 = settings(Some(&bob));
        let cfg7 = listener_role();
        let cfg8 = settings(Some(&alice));
        let dialer_cfg = dialer_role();
        let (d, l) = tokio::join!(
            converse(dialer, &dialer_cfg, &cfg6, &mut dial_in, &ui, &mut i1),
            converse(listener, &cfg7, &cfg8, &mut listen_in, &ui, &mut i2),
        );
        drop(keep);
        assert_eq!(d.unwrap(), Ended::LocalQuit);
        assert_eq!(l.unwrap(), Ended::PeerQuit);
    })
    .await
}

#[tokio::test]
async fn a_peer_that_vanishes_without_quit_is_reported_as_cut() {
    within(async {
        let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (dialer, listener) = pair(&alice, &bob).await;
        drop(dialer); // gone, no QUIT
        let (mut input, _keep) = scripted(&[]);
        let result = converse(
            listener,
            &listener_role(),
            &settings(None),
            &mut input,
            &Ui::plain(),
            &mut Interrupts::none(),
        )
        .await;
        assert!(matches!(result, Err(Error::ConnectionCut)), "{result:?}");
        assert_ne!(Error::ConnectionCut.exit_code(), 0);
    })
    .await
}

#[tokio::test]
async fn a_dialer_that_gets_text_before_welcome_ends_with_a_protocol_error() {
    within(async {
        let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (dialer, mut listener) = pair(&alice, &bob).await;
        listener
            .send
            .send(&Message::Text("no welcome".into()))
            .await
            .unwrap();
        let (mut input, _keep) = scripted(&[]);
        let result = converse(
            dialer,
            &dialer_role(),
            &settings(None),
            &mut input,
            &Ui::plain(),
            &mut Interrupts::none(),
        )
        .await;
        assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    })
    .await
}

#[tokio::test]
async fn a_silent_peer_hits_the_handshake_deadline() {
    within(async {
        let bob = Identity::generate().unwrap();
        let (_a, b) = duplex(4096);
        let (br, bw) = split(b);
        let quick = Settings {
            pin: None,
            handshake_timeout: Duration::from_millis(200),
            ..settings(None)
        };
        let started = std::time::Instant::now();
        let result = session::establish(
            br,
            bw,
            &bob,
            &listener_role(),
            &quick,
            &mut Interrupts::none(),
            |_| Ok(()),
        )
        .await;
        assert!(matches!(result, Err(Error::Timeout(..))));
        assert!(started.elapsed() < Duration::from_secs(2));
    })
    .await
}

fn quick_keepalive(pin: Option<&Identity>) -> Settings {
    Settings {
        keepalive: Duration::from_millis(100),
        ..settings(pin)
    }
}

#[tokio::test]
async fn a_peer_that_falls_silent_is_declared_gone_after_three_intervals() {
    within(async {
        let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (dialer, mut listener) = pair(&alice, &bob).await;
        // The listener says hello, then never sends another byte (and never answers PINGs).
        for opening in [
            Message::hello(Mode::Chat, ""),
            Message::Welcome("hi".into()),
        ] {
            listener.send.send(&opening).await.unwrap();
        }
        let (mut input, _keep) = scripted(&[]);
        let started = std::time::Instant::now();
        let result = converse(
            dialer,
            &dialer_role(),
            &quick_keepalive(None),
            &mut input,
            &Ui::plain(),
            &mut Interrupts::none(),
        )
        .await;
        let took = started.elapsed();
        assert!(matches!(result, Err(Error::PeerSilent(_))), "{result:?}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // It did try: two PINGs went out before giving up.
        let mut pings = 0;
        while let Ok(Some(m)) = listener.recv.recv().await {
            if matches!(m, Message::Ping(_)) {
                pings += 1;
            }
        }
        assert_eq!(pings, 2);
        drop(listener);
    })
    .await
}

#[tokio::test]
async fn an_idle_but_alive_peer_answers_pings_and_stays_connected() {
    within(async {
        let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (dialer, listener) = pair(&alice, &bob).await;
        let ui = Ui::plain();
        let (mut dial_in, dial_keys) = scripted(&[]);
        let (mut listen_in, _keep) = scripted(&[]);
        let dialer_cfg = dialer_role();
        let (cfg_d, cfg_l, role_l) = (
            quick_keepalive(None),
            quick_keepalive(None),
            listener_role(),
        );
        let (mut i1, mut i2) = (Interrupts::none(), Interrupts::none());
        // Ten keepalive intervals of silence from both users, then the dialer quits.
        let later = async {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            dial_keys
                .send(InputEvent::Line("quit".into()))
                .await
                .unwrap();
        };
        let (d, l, ()) = tokio::join!(
            converse(dialer, &dialer_cfg, &cfg_d, &mut dial_in, &ui, &mut i1),
            converse(listener, &role_l, &cfg_l, &mut listen_in, &ui, &mut i2),
            later
        );
        assert_eq!(d.unwrap(), Ended::LocalQuit);
        assert_eq!(l.unwrap(), Ended::PeerQuit);
    })
    .await
}
