//! Passphrase-protected identities, end to end: keygen, fingerprint without the passphrase,
//! unlocking from a file, the environment or a terminal prompt, passwd, and hostile keyfiles.

mod common;

use common::{Home, bin, within};
use expectrl::process::unix::WaitStatus;
use expectrl::{Expect, Session};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cheap KDF settings so tests stay fast (the default takes ~0.5 s per unlock).
const QUICK: [&str; 4] = ["--kdf-mib", "8", "--kdf-passes", "1"];

/// A passphrase file, private (0600) as schat requires.
fn write_secret(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn run(home: &Home, args: &[&str], env: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--home").arg(home.path()).args(args);
    match env {
        Some(v) => cmd.env("SCHAT_PASSPHRASE", v),
        None => cmd.env_remove("SCHAT_PASSPHRASE"),
    };
    cmd.stdin(std::process::Stdio::null()).output().unwrap()
}

fn err(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A home whose identity is protected by `pass`.
fn protected_home(pass: &str) -> (Home, PathBuf) {
    let home = Home::empty();
    std::fs::create_dir_all(home.path()).unwrap();
    let pf = write_secret(home.path(), "pass.txt", &format!("{pass}\n"));
    let mut args = vec!["--passphrase-file", pf.to_str().unwrap(), "keygen"];
    args.extend_from_slice(&QUICK);
    let out = run(&home, &args, None);
    assert!(out.status.success(), "{}", err(&out));
    (home, pf)
}

#[test]
fn protected_keygen_hides_the_secret_and_fingerprint_needs_no_passphrase() {
    let (home, _) = protected_home("correct horse");
    let text = std::fs::read_to_string(home.identity()).unwrap();
    assert!(
        text.contains("SCHAT-ENCRYPTED-KEY-1 argon2id m=8192 t=1 p=1"),
        "{text}"
    );
    assert!(!text.contains("SCHAT-SECRET-KEY"), "{text}");
    // fingerprint works with no passphrase anywhere.
    let out = run(&home, &["fingerprint", "--raw"], None);
    assert!(out.status.success(), "{}", err(&out));
    let fp = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(fp.trim()));
    // Without a passphrase and without a terminal, using the key is a clear error.
    let out = run(&home, &["dial", "127.0.0.1:1"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("protected by a passphrase"),
        "{}",
        err(&out)
    );
}

/// Like the keyfile, a passphrase file is refused when group or others may access it.
#[test]
fn a_passphrase_file_others_can_access_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (home, pass) = protected_home("private");
    let p = pass.to_str().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run(
            &home,
            &["--passphrase-file", p, "dial", "127.0.0.1:1"],
            None,
        );
        assert_eq!(out.status.code(), Some(1), "{mode:o}: {}", err(&out));
        assert!(err(&out).contains(&format!("{mode:04o}")), "{}", err(&out));
        assert!(err(&out).contains("chmod 600"), "{}", err(&out));
        assert!(!err(&out).contains("nothing is listening"), "{}", err(&out));
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run(
            &home,
            &["--passphrase-file", p, "dial", "127.0.0.1:1"],
            None,
        );
        // Unlocked: it got as far as connecting.
        assert!(err(&out).contains("nothing is listening"), "{}", err(&out));
    }
}

#[test]
fn a_wrong_passphrase_fails_cleanly() {
    let (home, _) = protected_home("right");
    let wrong = write_secret(home.path(), "wrong.txt", "wrong\n");
    for (args, env) in [
        (
            vec![
                "--passphrase-file",
                wrong.to_str().unwrap(),
                "dial",
                "127.0.0.1:1",
            ],
            None,
        ),
        (vec!["dial", "127.0.0.1:1"], Some("also wrong")),
    ] {
        let out = run(&home, &args, env);
        assert_eq!(out.status.code(), Some(1));
        let e = err(&out);
        assert!(e.contains("wrong passphrase or corrupted keyfile"), "{e}");
        assert!(!e.contains("wrong\n") && !e.contains("also wrong"), "{e}");
    }
}

#[tokio::test]
async fn the_right_passphrase_from_a_file_or_the_environment_unlocks_both_sides() {
    within(async {
        let (bob, bob_pass) = protected_home("bob's secret");
        let (alice, _) = protected_home("alice's secret");
        let mut listener = common::Proc::spawn(
            bob.path(),
            &[
                "--passphrase-file",
                bob_pass.to_str().unwrap(),
                "listen",
                "127.0.0.1:0",
                "--once",
                "--allow",
                "anyone",
            ],
        );
        let line = listener.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        // The dialer's passphrase comes from the environment.
        let mut dialer = {
            let mut cmd = tokio::process::Command::new(bin());
            cmd.arg("--home")
                .arg(alice.path())
                .args([
                    "dial",
                    &format!("127.0.0.1:{port}"),
                    "--trust",
                    "accept-new",
                ])
                .env("SCHAT_PASSPHRASE", "alice's secret");
            common::Proc::from_command(cmd)
        };
        dialer.stderr_until("welcome").await;
        dialer.send("unlocked both ways").await;
        assert_eq!(listener.said().await, "unlocked both ways");
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}

#[test]
fn passwd_changes_adds_and_removes_protection() {
    let (home, old) = protected_home("old pass");
    let fp = String::from_utf8(run(&home, &["fingerprint", "--raw"], None).stdout).unwrap();
    let new = write_secret(home.path(), "new.txt", "new pass\n");
    let (o, n) = (old.to_str().unwrap(), new.to_str().unwrap());

    // Change.
    let mut args = vec!["--passphrase-file", o, "passwd", "--new-passphrase-file", n];
    args.extend_from_slice(&QUICK);
    let out = run(&home, &args, None);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(
        run(
            &home,
            &["--passphrase-file", o, "dial", "127.0.0.1:1"],
            None
        )
        .status
        .code(),
        Some(1)
    );
    let with_new = run(
        &home,
        &["--passphrase-file", n, "dial", "127.0.0.1:1"],
        None,
    );
    assert!(
        err(&with_new).contains("nothing is listening"),
        "{}",
        err(&with_new)
    );

    // Remove: the key is stored in the clear, same identity.
    let out = run(
        &home,
        &["--passphrase-file", n, "passwd", "--no-passphrase"],
        None,
    );
    assert!(out.status.success(), "{}", err(&out));
    let text = std::fs::read_to_string(home.identity()).unwrap();
    assert!(text.contains("SCHAT-SECRET-KEY-1"));
    let out = run(&home, &["dial", "127.0.0.1:1"], None);
    assert!(err(&out).contains("nothing is listening"), "{}", err(&out));

    // Add protection to the unprotected file (the new passphrase comes from a file or a
    // prompt; the environment variable only ever gives the current one).
    let mut args = vec!["passwd", "--new-passphrase-file", n];
    args.extend_from_slice(&QUICK);
    assert!(run(&home, &args, None).status.success());
    assert!(
        std::fs::read_to_string(home.identity())
            .unwrap()
            .contains("SCHAT-ENCRYPTED-KEY-1")
    );
    let after = String::from_utf8(run(&home, &["fingerprint", "--raw"], None).stdout).unwrap();
    assert_eq!(after, fp, "the identity itself never changes");
    // With no terminal and no new passphrase given, passwd refuses to guess.
    let out = run(&home, &["--passphrase-file", n, "passwd"], None);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
}

#[test]
fn a_failed_passwd_leaves_the_old_file_untouched() {
    let (home, _) = protected_home("the pass");
    let before = std::fs::read(home.identity()).unwrap();
    let wrong = write_secret(home.path(), "wrong.txt", "nope\n");
    let new = write_secret(home.path(), "new.txt", "new\n");
    let out = run(
        &home,
        &[
            "--passphrase-file",
            wrong.to_str().unwrap(),
            "passwd",
            "--new-passphrase-file",
            new.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(home.identity()).unwrap(), before);
    let missing = home.path().join("no-such-file");
    let out = run(
        &home,
        &["passwd", "--new-passphrase-file", missing.to_str().unwrap()],
        Some("the pass"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(home.identity()).unwrap(), before);
    // No temp files left beside it.
    let names: Vec<String> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
}

#[test]
fn an_absurd_kdf_cost_in_the_file_is_refused_quickly() {
    let (home, pass) = protected_home("pw");
    let text = std::fs::read_to_string(home.identity()).unwrap();
    for absurd in ["m=4194304 t=1 p=1", "m=8192 t=4000000000 p=1"] {
        std::fs::write(home.identity(), text.replace("m=8192 t=1 p=1", absurd)).unwrap();
        let started = Instant::now();
        let out = run(
            &home,
            &[
                "--passphrase-file",
                pass.to_str().unwrap(),
                "dial",
                "127.0.0.1:1",
            ],
            None,
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(out.status.code(), Some(1));
        assert!(err(&out).contains("unreasonably high"), "{}", err(&out));
        assert!(err(&out).contains("line 3"), "{}", err(&out));
    }
}

#[tokio::test]
async fn prompts_on_a_terminal_for_keygen_and_unlock() {
    within(async {
        let home = Home::empty();
        let listener_home = Home::new();
        let (mut listener, port) = listener_home.listen(&["--once"]).await;
        let path = home.path().to_owned();
        let code = tokio::task::spawn_blocking(move || {
            let keygen = |args: &[&str]| {
                let mut cmd = std::process::Command::new(bin());
                cmd.arg("--home").arg(&path).args(args);
                let mut s = Session::spawn(cmd).unwrap();
                s.set_expect_timeout(Some(Duration::from_secs(20)));
                s
            };
            let mut args = vec!["keygen"];
            args.extend_from_slice(&QUICK);
            let mut t = keygen(&args);
            t.expect("new passphrase").unwrap();
            t.send_line("typed secret").unwrap();
            t.expect("the same passphrase again").unwrap();
            t.send_line("typed secret").unwrap();
            t.expect(expectrl::Regex(r"protected\s+by\s+a\s+passphrase"))
                .unwrap();
            let text = std::fs::read_to_string(path.join("identity")).unwrap();
            assert!(text.contains("SCHAT-ENCRYPTED-KEY-1"));
            // Unlocking: one wrong try, then the right one.
            let mut t = keygen(&[
                "dial",
                &format!("127.0.0.1:{port}"),
                "--trust",
                "accept-new",
            ]);
            t.expect("passphrase for").unwrap();
            t.send_line("not it").unwrap();
            t.expect("wrong passphrase, try again").unwrap();
            t.expect("passphrase for").unwrap();
            t.send_line("typed secret").unwrap();
            t.expect("welcome").unwrap();
            t.send("quit\r").unwrap();
            match t.get_process().wait().unwrap() {
                WaitStatus::Exited(_, code) => code,
                other => panic!("{other:?}"),
            }
        })
        .await
        .unwrap();
        assert_eq!(code, 0);
        assert!(listener.exit().await.success());
    })
    .await
}

/// The user the listener runs as in the test below, and that reads its /proc files: ourselves,
/// or `nobody` when we are root (root reads any process's /proc files, dumpable or not).
fn unprivileged_uid() -> Option<u32> {
    // SAFETY: geteuid cannot fail and touches no memory.
    (unsafe { libc::geteuid() } == 0).then_some(65534)
}

#[tokio::test]
async fn the_passphrase_leaves_the_environment_and_the_process_is_not_dumpable() {
    within(async {
        let secret = "env-secret-7f3a9c1e";
        let (home, _) = protected_home(secret);
        let user = unprivileged_uid();
        if let Some(uid) = user {
            for entry in std::fs::read_dir(home.path()).unwrap() {
                std::os::unix::fs::chown(entry.unwrap().path(), Some(uid), Some(uid)).unwrap();
            }
            std::os::unix::fs::chown(home.path(), Some(uid), Some(uid)).unwrap();
        }
        let mut listener = {
            let mut cmd = tokio::process::Command::new(bin());
            cmd.arg("--home")
                .arg(home.path())
                .args(["listen", "127.0.0.1:0"])
                .env("SCHAT_PASSPHRASE", secret);
            if let Some(uid) = user {
                cmd.uid(uid).gid(uid);
            }
            common::Proc::from_command(cmd)
        };
        // Unlocked with the passphrase from the environment, and still running.
        listener.stderr_until("listening on 127.0.0.1:").await;
        let environ = format!("/proc/{}/environ", listener.pid());
        // What /proc shows of the environment no longer holds the passphrase (as far as this
        // test may read it).
        if let Ok(bytes) = std::fs::read(&environ) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the passphrase is still in {environ}"
            );
        }
        // Non-dumpable: another process of the same user can no longer read its environment
        // (nor its memory), and no core dump is written.
        let mut cat = std::process::Command::new("cat");
        cat.arg(&environ);
        if let Some(uid) = user {
            use std::os::unix::process::CommandExt;
            cat.uid(uid).gid(uid);
        }
        let out = cat.output().unwrap();
        assert!(
            !out.status.success(),
            "{environ} is readable by its user: the process is dumpable"
        );
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(why.contains("Permission denied"), "{why}");
        listener.signal("TERM");
        listener.exit().await;
    })
    .await
}
