//! Reaching a peer behind NAT, in a lab of network namespaces built by each test (root
//! needed; without it, or without `ip`/`nft`, each test says why and skips):
//!
//! ```text
//! HA 10.99.1.2 ─ 10.99.1.1 RA (NAT) 198.18.1.2 ─ 198.18.1.1 ┐
//!                                                            PUB: "the internet"; the relay
//! HB 10.99.2.2 ─ 10.99.2.1 RB (NAT) 198.18.2.2 ─ 198.18.2.1 ┘ on 198.18.0.1 (TLS + QAD)
//! ```
//!
//! The listener runs in HA, the dialer in HB. Neither home can open a connection to the other
//! (PUB has no route to 10.99.0.0/16), so TCP fails and only iroh can connect them. The relay
//! has a certificate from a test CA that the endpoints are told to trust (`--relay-ca`), so
//! that it can tell each endpoint its public address (QAD), as a real relay does.
//!
//! Nothing leaves the lab: every address is inside the namespaces, which are deleted at the
//! end (also on failure).

mod common;

use common::{Home, Proc};
use schat::invite::Ticket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How the routers translate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Nat {
    /// One public port per inside socket, whatever the destination (most home routers):
    /// hole punching works.
    EndpointIndependent,
    /// A new random port per destination ("symmetric", many corporate and CGNAT boxes):
    /// iroh does not claim to punch through it.
    Symmetric,
}

/// One lab: five namespaces, deleted when dropped.
struct Lab {
    names: Vec<String>,
}

const ROLES: [&str; 5] = ["pub", "ra", "rb", "ha", "hb"];

impl Lab {
    /// Builds the lab, or says why it cannot be built here (then the test skips).
    fn build(nat: Nat) -> Result<Lab, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (network namespaces need it; CI runs as root)".into());
        }
        for tool in ["ip", "nft"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                return Err(format!(
                    "`{tool}` is not installed (.ci/run installs nftables)"
                ));
            }
        }
        let suffix = format!("{:08x}", rand_u32());
        let lab = Lab {
            names: ROLES
                .iter()
                .map(|r| format!("schat-{r}-{suffix}"))
                .collect(),
        };
        for name in &lab.names {
            if !run("ip", &["netns", "add", name]) {
                return Err("`ip netns add` failed (no CAP_SYS_ADMIN here?)".into());
            }
        }
        // From here on, a failure is a bug in the lab, not a machine that cannot run it.
        if let Err(why) = lab.wire(nat) {
            panic!("building the NAT lab: {why}");
        }
        Ok(lab)
    }

    fn ns(&self, role: &str) -> &str {
        &self.names[ROLES.iter().position(|r| *r == role).unwrap()]
    }

    /// Runs `ip -n NS args…` (or another command inside NS), failing the build if it fails.
    fn ip(&self, role: &str, args: &str) -> Result<(), String> {
        let ns = self.ns(role);
        let mut full = vec!["-n", ns];
        full.extend(args.split_whitespace());
        match run("ip", &full) {
            true => Ok(()),
            false => Err(format!("ip -n {role} {args} failed")),
        }
    }

    fn exec(&self, role: &str, cmd: &[&str]) -> Result<(), String> {
        let mut full = vec!["netns", "exec", self.ns(role)];
        full.extend_from_slice(cmd);
        match run("ip", &full) {
            true => Ok(()),
            false => Err(format!("in {role}: {cmd:?} failed")),
        }
    }

    fn wire(&self, nat: Nat) -> Result<(), String> {
        let (ra, rb, public) = (self.ns("ra"), self.ns("rb"), self.ns("pub"));
        // Every veth is created inside a namespace, its peer moved straight into another: the
        // machine's own interfaces are never touched.
        self.ip(
            "ha",
            &format!("link add eth0 type veth peer name lan netns {ra}"),
        )?;
        self.ip(
            "hb",
            &format!("link add eth0 type veth peer name lan netns {rb}"),
        )?;
        self.ip(
            "ra",
            &format!("link add wan type veth peer name a netns {public}"),
        )?;
        self.ip(
            "rb",
            &format!("link add wan type veth peer name b netns {public}"),
        )?;
        for (role, cmds) in [
            (
                "ha",
                vec!["addr add 10.99.1.2/24 dev eth0", "link set dev eth0 up"],
            ),
            (
                "hb",
                vec!["addr add 10.99.2.2/24 dev eth0", "link set dev eth0 up"],
            ),
            (
                "ra",
                vec![
                    "addr add 10.99.1.1/24 dev lan",
                    "addr add 198.18.1.2/24 dev wan",
                    "link set dev lan up",
                    "link set dev wan up",
                ],
            ),
            (
                "rb",
                vec![
                    "addr add 10.99.2.1/24 dev lan",
                    "addr add 198.18.2.2/24 dev wan",
                    "link set dev lan up",
                    "link set dev wan up",
                ],
            ),
            (
                "pub",
                vec![
                    "addr add 198.18.1.1/24 dev a",
                    "addr add 198.18.2.1/24 dev b",
                    "addr add 198.18.0.1/32 dev lo",
                    "link set dev a up",
                    "link set dev b up",
                ],
            ),
        ] {
            self.ip(role, "link set dev lo up")?;
            for cmd in cmds {
                self.ip(role, cmd)?;
            }
        }
        self.ip("ha", "route add default via 10.99.1.1")?;
        self.ip("hb", "route add default via 10.99.2.1")?;
        self.ip("ra", "route add default via 198.18.1.1")?;
        self.ip("rb", "route add default via 198.18.2.1")?;
        for role in ["pub", "ra", "rb"] {
            self.exec(role, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        }
        let masquerade = match nat {
            Nat::EndpointIndependent => "masquerade",
            Nat::Symmetric => "masquerade random",
        };
        // Like a home router: unsolicited packets from outside are dropped, also those for the
        // router itself. (Dropped there, they leave no conntrack entry behind — one would take
        // the port a hole being punched needs.)
        let rules = format!(
            "table ip lab {{
               chain nat_out {{ type nat hook postrouting priority 100; policy accept;
                             oifname \"wan\" {masquerade}; }}
               chain forwarding {{ type filter hook forward priority 0; policy drop;
                            iifname \"lan\" oifname \"wan\" accept;
                            ct state established,related accept; }}
               chain inbound {{ type filter hook input priority 0; policy accept;
                                iifname \"wan\" ct state new drop; }}
             }}"
        );
        for role in ["ra", "rb"] {
            self.nft(role, &rules)?;
        }
        Ok(())
    }

    fn nft(&self, role: &str, rules: &str) -> Result<(), String> {
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        std::fs::write(file.path(), rules).map_err(|e| e.to_string())?;
        let path = file.path().to_str().unwrap().to_string();
        self.exec(role, &["nft", "-f", &path])
    }

    /// No UDP between the two routers' public addresses: hole punching is impossible, the
    /// relay (PUB itself, not forwarded) still works.
    fn drop_udp_between_homes(&self) {
        let rules = "table ip block {
               chain forwarding { type filter hook forward priority -10; policy accept;
                           ip saddr 198.18.1.2 ip daddr 198.18.2.2 meta l4proto udp drop;
                           ip saddr 198.18.2.2 ip daddr 198.18.1.2 meta l4proto udp drop; }
             }";
        self.nft("pub", rules).unwrap();
    }

    /// `schat --home HOME args…` inside the namespace of `role`.
    fn spawn(&self, role: &str, home: &Path, args: &[&str]) -> Proc {
        let mut cmd = tokio::process::Command::new("ip");
        if let Ok(log) = std::env::var("NAT_LAB_LOG") {
            cmd.env("SCHAT_LOG", log);
        }
        cmd.args(["netns", "exec", self.ns(role), &common::bin(), "--home"])
            .arg(home)
            .args(args);
        Proc::from_command(cmd)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.names {
            // Processes still inside die with their namespace's last reference; kill them
            // first so nothing lingers.
            let _ = Command::new("ip")
                .args(["netns", "pids", name])
                .output()
                .map(|out| {
                    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-KILL", pid]).status();
                    }
                });
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    rand::fill(&mut b);
    u32::from_le_bytes(b)
}

/// A test CA and a certificate for 198.18.0.1 signed by it, as PEM files.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["198.18.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let (ca_path, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("relay.pem"),
        dir.path().join("relay.key"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    Certs {
        _dir: dir,
        ca: ca_path,
        cert,
        key,
    }
}

/// The lab's cases run one at a time: hole punching is about timing, and two cores are few.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A lab with the relay in PUB, a listener in HA and a dialer in HB that have exchanged a
/// message both ways.
struct Session {
    relay: Proc,
    listener: Proc,
    dialer: Proc,
    _homes: [Home; 3],
    _certs: Certs,
    /// Last: deleted after the processes are gone.
    lab: Lab,
}

async fn session(nat: Nat, block_udp: bool) -> Option<Session> {
    let lab = match Lab::build(nat) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("SKIPPED: the NAT lab cannot be built here: {why}");
            return None;
        }
    };
    if block_udp {
        lab.drop_udp_between_homes();
    }
    let certs = certs();
    let homes = [Home::new(), Home::new(), Home::new()];
    let (ca, cert, key) = (
        certs.ca.to_str().unwrap(),
        certs.cert.to_str().unwrap(),
        certs.key.to_str().unwrap(),
    );
    let mut relay = lab.spawn(
        "pub",
        homes[0].path(),
        &[
            "relay",
            "198.18.0.1:443",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    relay.stderr_until("QUIC address discovery").await;
    let dialer_key = homes[2].fingerprint();
    let endpoint = [
        "--relay",
        "https://198.18.0.1/",
        "--relay-ca",
        ca,
        "--no-portmap",
    ];
    let mut args = vec!["listen", "0.0.0.0:0", "--p2p", "--peer", &dialer_key];
    args.extend_from_slice(&endpoint);
    let mut listener = lab.spawn("ha", homes[1].path(), &args);
    let ticket = listener
        .stderr_until_any(|l| l.starts_with("schat:") && !l.contains(' '))
        .await;
    assert!(
        !listener
            .stderr_text()
            .contains("no connection to the relay"),
        "{:#?}",
        listener.stderr_seen
    );
    let parsed = Ticket::decode(&ticket).unwrap();
    eprintln!("ticket addresses: {:?}", parsed.addrs);
    let started = Instant::now();
    let mut args = vec!["dial", &ticket];
    args.extend_from_slice(&endpoint);
    let mut dialer = lab.spawn("hb", homes[2].path(), &args);
    dialer.stderr_until("welcome").await;
    dialer.send("hello from behind NAT B").await;
    assert_eq!(listener.said().await, "hello from behind NAT B");
    listener.send("hello from behind NAT A").await;
    assert_eq!(dialer.said().await, "hello from behind NAT A");
    eprintln!(
        "{nat:?}: first message both ways after {:?}",
        started.elapsed()
    );
    Some(Session {
        relay,
        listener,
        dialer,
        _homes: homes,
        _certs: certs,
        lab,
    })
}

/// Waits up to `within` for the dialer to report a direct path; whether it did.
async fn direct_within(dialer: &mut Proc, within: Duration) -> bool {
    let found = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("path") && l.contains("direct UDP"))
    };
    if found(&dialer.stderr_seen) {
        return true;
    }
    tokio::time::timeout(
        within,
        dialer.stderr_until_any(|l| l.contains("path") && l.contains("direct UDP")),
    )
    .await
    .is_ok()
}

async fn end(mut s: Session) {
    s.dialer.send("quit").await;
    assert!(
        s.dialer.exit().await.success(),
        "{:#?}",
        s.dialer.stderr_seen
    );
    s.listener.signal("TERM");
    s.listener.exit().await;
    let _ = s.relay.child.start_kill();
    drop(s.lab);
}

#[tokio::test]
async fn a_behind_endpoint_independent_nats_hole_punching_gives_a_direct_path() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut s) = session(Nat::EndpointIndependent, false).await else {
        return;
    };
    let started = Instant::now();
    assert!(
        direct_within(&mut s.dialer, Duration::from_secs(15)).await,
        "no direct path: {:#?}",
        s.dialer.stderr_seen
    );
    eprintln!("direct path after {:?}", started.elapsed());
    let paths: Vec<&String> = s
        .dialer
        .stderr_seen
        .iter()
        .filter(|l| l.contains("path"))
        .collect();
    eprintln!("the dialer's path lines: {paths:#?}");
    s.dialer.send("over the punched hole").await;
    assert_eq!(s.listener.said().await, "over the punched hole");
    end(s).await;
}

#[tokio::test]
async fn b_with_udp_between_the_homes_dropped_the_relay_carries_the_session() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut s) = session(Nat::EndpointIndependent, true).await else {
        return;
    };
    assert!(
        !direct_within(&mut s.dialer, Duration::from_secs(5)).await,
        "a direct path through a blocked link? {:#?}",
        s.dialer.stderr_seen
    );
    let path = s
        .dialer
        .stderr_seen
        .iter()
        .find(|l| l.contains("path: "))
        .cloned()
        .unwrap_or_default();
    assert!(path.contains("relayed"), "{:#?}", s.dialer.stderr_seen);
    for i in 0..20 {
        s.dialer.send(&format!("relayed {i}")).await;
    }
    for i in 0..20 {
        assert_eq!(s.listener.said().await, format!("relayed {i}"));
    }
    end(s).await;
}

#[tokio::test]
async fn c_the_relay_killed_on_a_direct_path_the_session_survives() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut s) = session(Nat::EndpointIndependent, false).await else {
        return;
    };
    assert!(
        direct_within(&mut s.dialer, Duration::from_secs(15)).await,
        "no direct path: {:#?}",
        s.dialer.stderr_seen
    );
    s.relay.signal("KILL");
    s.relay.exit().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.dialer.send("the relay is gone").await;
    assert_eq!(s.listener.said().await, "the relay is gone");
    s.listener.send("still here").await;
    assert_eq!(s.dialer.said().await, "still here");
    // Known defect, not hidden: with the relay gone, the dialer's exit after `quit` now and
    // then waits for its last frames' acknowledgement far longer than it should (seen 1 run
    // in ~5; see the closing note of issue 15). What this case checks is that the session
    // survives, which it does; the ending is checked by the other cases.
    let _ = s.dialer.child.start_kill();
    let _ = s.dialer.child.wait().await;
    s.listener.signal("TERM");
    s.listener.exit().await;
    drop(s.lab);
}

#[tokio::test]
async fn symmetric_nats_are_relayed_not_punched() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut s) = session(Nat::Symmetric, false).await else {
        return;
    };
    // iroh does not claim to punch through symmetric NATs on both sides: what matters is
    // that the session works (through the relay). Which path it got is reported.
    let direct = direct_within(&mut s.dialer, Duration::from_secs(8)).await;
    eprintln!("symmetric NATs: direct path = {direct}");
    s.dialer.send("across two symmetric NATs").await;
    assert_eq!(s.listener.said().await, "across two symmetric NATs");
    end(s).await;
}
