//! Runs the real `schat` binary for end-to-end tests: temp homes, piped stdio, loopback with
//! port 0, and a deadline on every wait.
#![allow(dead_code)]

pub mod load;
pub mod pipe;
pub mod proxy;
pub mod raw;
pub mod term;

#[allow(unused_imports)]
pub use load::{connect_from, loopback_source};

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The binary under test. `SCHAT_TEST_BIN` runs the same tests against another build, e.g.
/// an older commit's, to check that a regression test fails there.
pub fn bin() -> String {
    std::env::var("SCHAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_schat").into())
}

/// A temporary `--home` with its own identity.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    /// A home whose identity has been created with `schat keygen`.
    pub fn new() -> Self {
        let home = Home::empty();
        let out = home.run(&["keygen"]);
        assert!(out.status.success(), "keygen failed: {out:?}");
        home
    }

    /// A home with nothing in it yet.
    pub fn empty() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("identity")
    }

    /// Runs a short command to completion (with a deadline).
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut child = std::process::Command::new(bin())
            .arg("--home")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("schat {args:?} did not finish");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The fingerprint as 64 hex digits.
    pub fn fingerprint(&self) -> String {
        let out = self.run(&["fingerprint", "--raw"]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Starts `schat --home HOME args…` with piped stdio.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        Proc::spawn(self.path(), args)
    }

    /// Starts a listener on 127.0.0.1 port 0 and waits until it reports its port. Tests dial
    /// it with fresh identities, so unless `extra` says who may come in (`--allow`, `--peer`)
    /// it admits anyone (`--allow anyone`; the real default admits known peers only).
    pub async fn listen(&self, extra: &[&str]) -> (Proc, u16) {
        let mut args = vec!["listen", "127.0.0.1:0"];
        if !extra.iter().any(|a| *a == "--allow" || *a == "--peer") {
            args.extend_from_slice(&["--allow", "anyone"]);
        }
        args.extend_from_slice(extra);
        let mut proc = self.spawn(&args);
        let line = proc.stderr_until("listening on 127.0.0.1:").await;
        let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        (proc, port)
    }

    /// Starts a dialer to 127.0.0.1:port. Tests have no terminal to answer the trust prompt,
    /// so unless `extra` says otherwise the dialer runs with `--trust accept-new`.
    pub fn dial(&self, port: u16, extra: &[&str]) -> Proc {
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["dial", addr.as_str()];
        if !extra.contains(&"--trust") {
            args.extend_from_slice(&["--trust", "accept-new"]);
        }
        args.extend_from_slice(extra);
        self.spawn(&args)
    }
}

/// A running schat process.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every stderr line seen so far (for assertions and failure messages).
    pub stderr_seen: Vec<String>,
    pub stdout_seen: Vec<String>,
}

fn lines(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Proc {
    pub fn spawn(home: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.arg("--home").arg(home).args(args);
        Self::from_command(cmd)
    }

    /// Starts a prepared command with piped stdio.
    pub fn from_command(mut cmd: Command) -> Self {
        let mut child = cmd
            .env_remove("NO_COLOR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Proc {
            child,
            stdin,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            stdout_seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Types a line.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Writes raw bytes to stdin.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Takes stdin, to write it from another task (a writer that may block).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin closed")
    }

    /// Closes stdin (Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line.
    pub async fn stdout_line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.stdout.recv()).await {
            Ok(Some(line)) => {
                self.stdout_seen.push(line.clone());
                line
            }
            Ok(None) => panic!("stdout closed; stderr so far: {:#?}", self.stderr_seen),
            Err(_) => panic!(
                "no stdout line in time; stderr so far: {:#?}",
                self.stderr_seen
            ),
        }
    }

    /// The text of the next chat message in plain mode (`LABEL: text` on stdout).
    pub async fn said(&mut self) -> String {
        let line = self.stdout_line().await;
        match line.split_once(": ") {
            Some((_, text)) => text.to_string(),
            None => panic!("not a `LABEL: text` line: {line:?}"),
        }
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    pub async fn stderr_until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!("stderr closed before {needle:?}: {:#?}", self.stderr_seen),
                Err(_) => panic!("no {needle:?} on stderr in time: {:#?}", self.stderr_seen),
            }
        }
    }

    /// Reads stderr until a line satisfies `wanted`; returns that line.
    pub async fn stderr_until_any(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    self.stderr_seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("stderr closed: {:#?}", self.stderr_seen),
                Err(_) => panic!("no matching stderr line in time: {:#?}", self.stderr_seen),
            }
        }
    }

    /// Waits for the process to exit, then collects the rest of its output.
    pub async fn exit(&mut self) -> ExitStatus {
        let status = match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "process did not exit in time; stderr: {:#?}",
                    self.stderr_seen
                );
            }
        };
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(5), self.stderr.recv()).await
        {
            self.stderr_seen.push(line);
        }
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(5), self.stdout.recv()).await
        {
            self.stdout_seen.push(line);
        }
        status
    }

    /// Everything written to stderr so far, joined.
    pub fn stderr_text(&self) -> String {
        self.stderr_seen.join("\n")
    }

    /// Sends a signal by name (INT, TERM, KILL).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }
}

/// Runs an async test body under an overall deadline.
pub async fn within<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(90), test)
        .await
        .expect("test timed out")
}

/// Busy loops, one per core, for as long as it lives: tests of races that only show on a
/// loaded machine run beside it (CI's two cores are often busy with other test binaries).
pub struct CpuHog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuHog {
    pub fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        CpuHog { stop, threads }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A `--json` line as a value (a test fails on anything else).
pub fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Reads JSON events until one satisfies `want`; returns it.
pub async fn event_where(
    p: &mut Proc,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    loop {
        let v = json(&p.stdout_line().await);
        if want(&v) {
            return v;
        }
    }
}

/// Bytes that do not compress or repeat (xorshift), the same for the same seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every file under `dir`, by its path relative to `dir` (hidden ones included).
pub fn files_in(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(
        root: &Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Whether `needle` is anywhere in the memory of process `pid` (its readable mappings).
/// `None` when this user may not read it.
pub fn memory_holds(pid: u32, needle: &[u8]) -> Option<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return Some(true);
        }
    }
    Some(false)
}

/// A room: a host (with `--json` and `host_args`) and a member for each of `members` (with
/// `--json` and those arguments), each in, and every pair of members' session up.
pub async fn room_of(
    host_args: &[&str],
    members: &[&[&str]],
) -> (Home, Proc, u16, Vec<(Home, Proc)>) {
    let host = Home::new();
    let mut args = vec!["--json"];
    args.extend_from_slice(host_args);
    let (room, port) = host.listen(&args).await;
    let ports = vec![port; members.len()];
    let joined = members_of(&ports, members).await;
    (host, room, port, joined)
}

/// Members (with `--json` and their arguments) dialling a room at `ports` (one each: a port
/// may be a proxy's), each in, and every pair's session up (each has said "end to end with"
/// for all the others).
pub async fn members_of(ports: &[u16], members: &[&[&str]]) -> Vec<(Home, Proc)> {
    let mut joined = Vec::new();
    for (port, member_args) in ports.iter().zip(members) {
        let home = Home::new();
        let mut args = vec!["--json"];
        args.extend_from_slice(member_args);
        let mut p = home.dial(*port, &args);
        event_where(&mut p, |v| v["event"] == "welcome").await;
        joined.push((home, p));
    }
    for (_, p) in &mut joined {
        let mut open = 0;
        while open + 1 < members.len() {
            let line = p.stderr_until_any(|l| l.contains("end to end with")).await;
            open += line.matches(", ").count() + 1;
        }
    }
    joined
}

/// The next `message` event.
pub async fn next_message(p: &mut Proc) -> serde_json::Value {
    event_where(p, |v| v["event"] == "message").await
}
