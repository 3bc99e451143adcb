//! Pipe-mode processes for end-to-end tests: stdin and stdout on files, stderr read line by
//! line, and files of random bytes to send.

use super::{WAIT, bin};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::Home;

/// A pipe-mode schat with stdin and stdout connected to files, stderr captured.
pub struct PipeProc {
    pub child: Child,
    pub stderr: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
}

impl PipeProc {
    pub fn spawn(home: &Home, args: &[&str], input: Stdio, output: &Path) -> Self {
        Self::spawn_with_env(home, args, input, output, &[])
    }

    pub fn spawn_with_env(
        home: &Home,
        args: &[&str],
        input: Stdio,
        output: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(bin())
            .arg("--home")
            .arg(home.path())
            .args(args)
            .envs(env.iter().copied())
            .stdin(input)
            .stdout(File::create(output).unwrap())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, stderr) = tokio::sync::mpsc::unbounded_channel();
        let err = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
        PipeProc {
            child,
            stderr,
            seen: Vec::new(),
        }
    }

    pub async fn stderr_until(&mut self, needle: &str) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.stderr.recv()).await {
                Ok(Some(l)) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                _ => panic!("no {needle:?} on stderr: {:#?}", self.seen),
            }
        }
    }

    pub async fn exit(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("did not exit")
            .unwrap();
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_secs(5), self.stderr.recv()).await
        {
            self.seen.push(l);
        }
        status
    }

    pub fn stderr_text(&self) -> String {
        self.seen.join("\n")
    }
}

pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn random(&self, name: &str, len: usize) -> PathBuf {
        let mut data = vec![0u8; len];
        rand::fill(&mut data[..]);
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

pub fn stdin_from(path: &Path) -> Stdio {
    Stdio::from(File::open(path).unwrap())
}
