//! README.md and docs/ stay true to the binary:
//!
//! - every `schat …` command line in them parses (the subcommand and every flag exist);
//! - every sample marked `<!-- sample: NAME -->` (the fenced block right after the marker) is
//!   what the real binary prints today: each is produced by a scenario below, with fixed
//!   identities (tests/data/docs) so that fingerprints and safety numbers do not change, and
//!   only what varies from run to run (ports, times, rates, codes) normalised;
//! - every `-h` fits an 80×24 screen, and the examples in every help parse.
//!
//! After a deliberate change of what schat prints, `SCHAT_BLESS_DOCS=1 cargo test --test docs`
//! rewrites the samples in place (then read the diff).

mod common;

use common::term::{Term, shows};
use common::{Home, within};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BLESS: &str = "SCHAT_BLESS_DOCS";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

// ---------------------------------------------------------------------------------------------
// Command lines

/// A command line found in a document: where, and whether it was inline prose (`schat dial`
/// may name a command without its arguments there).
struct Found {
    place: String,
    words: Vec<String>,
    inline: bool,
}

/// The line with each `$(…)` replaced by a word, and the commands that were inside.
fn substitutions(line: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut inner = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let mut depth = 0;
        let mut end = rest.len();
        for (j, c) in rest[i + 1..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1 + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        inner.push(rest[i + 2..end].to_string());
        out.push_str("SUBSTITUTED");
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    (out, inner)
}

/// Splits a shell line into words: quotes kept together, comments dropped. Enough for the
/// lines these documents show.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                started = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '#' if !started => break,
            c if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The schat invocations in one shell line: each segment of a pipeline or list whose command
/// is `schat` (or `cargo run --release --`), without redirections; and those inside `$(…)`.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let (line, inner) = substitutions(line);
    let mut found: Vec<Vec<String>> = inner.iter().flat_map(|l| invocations(l)).collect();
    let mut segment: Vec<String> = Vec::new();
    let mut words = shell_words(&line);
    words.push("|".into());
    for word in words {
        if matches!(word.as_str(), "|" | "||" | "&&" | ";" | "&") {
            if let Some(args) = schat_args(&segment) {
                found.push(args);
            }
            segment.clear();
        } else {
            segment.push(word);
        }
    }
    found
}

/// The arguments after `schat` in one command, if it runs schat.
fn schat_args(words: &[String]) -> Option<Vec<String>> {
    let at = words.iter().enumerate().position(|(i, w)| {
        let next = words.get(i + 1).map(String::as_str);
        (w == "schat" || w.ends_with("/schat")) && next != Some("schat")
            || (w == "--" && i >= 3 && words[i - 3] == "cargo" && words[i - 2] == "run")
    })?;
    let mut args = Vec::new();
    let mut rest = words[at + 1..].iter();
    while let Some(word) = rest.next() {
        // Redirections: `>f`, `> f`, `2>>f`, `</dev/null`.
        let bare = word.trim_start_matches(|c: char| c.is_ascii_digit());
        if bare.starts_with('>') || bare.starts_with('<') {
            if matches!(bare, ">" | ">>" | "<") {
                rest.next();
            }
            continue;
        }
        args.push(word.clone());
    }
    Some(args)
}

/// Every schat command line in a Markdown text: in code blocks (but not in `text` samples,
/// which show output), and in inline code.
fn commands_in(name: &str, text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let mut fence: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let place = format!("{name}:{}", n + 1);
        let trimmed = line.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(lang.trim().to_string()),
            };
            continue;
        }
        match fence.as_deref() {
            Some("text") => continue,
            Some(_) => {
                let line = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
                let line = line.strip_prefix("ExecStart=").unwrap_or(line);
                for words in invocations(line) {
                    found.push(Found {
                        place: place.clone(),
                        words,
                        inline: false,
                    });
                }
            }
            None => {
                for (i, span) in line.split('`').enumerate() {
                    if i % 2 == 1 && span.starts_with("schat ") {
                        for words in invocations(span) {
                            found.push(Found {
                                place: place.clone(),
                                words,
                                inline: true,
                            });
                        }
                    }
                }
            }
        }
    }
    found
}

/// Whether schat's own parser accepts the words. Placeholder values (FINGERPRINT, SECS) may
/// fail their value checks; unknown subcommands or flags, conflicts and missing arguments may
/// not (except that prose may name a command without its arguments).
fn parses(words: &[String], inline: bool) -> Result<(), String> {
    use clap::Parser;
    use clap::error::ErrorKind::*;
    let argv = std::iter::once("schat".to_string()).chain(words.iter().cloned());
    match schat::cli::Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            InvalidValue | ValueValidation | DisplayHelp | DisplayVersion => Ok(()),
            MissingRequiredArgument | DisplayHelpOnMissingArgumentOrSubcommand if inline => Ok(()),
            _ => Err(e.to_string()),
        },
    }
}

#[test]
fn every_schat_command_in_the_docs_parses() {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        for found in commands_in(&name, &text) {
            count += 1;
            if let Err(e) = parses(&found.words, found.inline) {
                failures.push(format!(
                    "{}: schat {}\n{e}",
                    found.place,
                    found.words.join(" ")
                ));
            }
        }
    }
    assert!(
        count > 60,
        "only {count} command lines found: is the scan broken?"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The scan finds what a reader would call a command, and nothing else.
#[test]
fn the_command_scan_reads_shell_lines_as_a_shell_would() {
    let found = commands_in(
        "t",
        "```sh\n\
         tar c dir | schat dial 1.2.3.4 --pipe --peer bob  # a comment\n\
         schat --home /tmp/bob peers add \"$(schat --home /tmp/a fingerprint --raw)\" alice\n\
         sudo -u schat schat --home /var/lib/schat listen >>log 2>&1 </dev/null &\n\
         ```\n\
         ```text\nschat frobnicate\n```\n\
         run `schat dial` or `schat:abc`, or `cargo run --release -- keygen`\n",
    );
    let got: Vec<String> = found.iter().map(|f| f.words.join(" ")).collect();
    assert_eq!(
        got,
        [
            "dial 1.2.3.4 --pipe --peer bob",
            "--home /tmp/a fingerprint --raw",
            "--home /tmp/bob peers add SUBSTITUTED alice",
            "--home /var/lib/schat listen",
            "dial",
        ]
    );
    assert!(parses(&shell_words("dial 1.2.3.4 --frobnicate"), false).is_err());
    assert!(parses(&shell_words("frobnicate"), true).is_err());
    assert!(parses(&shell_words("dial"), true).is_ok());
    assert!(parses(&shell_words("dial"), false).is_err());
    assert!(parses(&shell_words("peers add FINGERPRINT bob"), false).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Help

/// The subcommands (and `peers`'s), as argument lists.
fn every_command() -> Vec<Vec<String>> {
    use clap::CommandFactory;
    let top = schat::cli::Cli::command();
    let mut all = vec![vec![]];
    for sub in top.get_subcommands() {
        all.push(vec![sub.get_name().to_string()]);
        for subsub in sub.get_subcommands() {
            all.push(vec![
                sub.get_name().to_string(),
                subsub.get_name().to_string(),
            ]);
        }
    }
    all
}

fn help(args: &[String], flag: &str) -> String {
    let out = std::process::Command::new(common::bin())
        .args(args)
        .arg(flag)
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} {flag}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_short_help_fits_a_screen_and_every_example_parses() {
    for args in every_command() {
        let short = help(&args, "-h");
        let rows = short.lines().count();
        // The top level lists every command as well as the first steps; the commands' own
        // pages must fit a screen with the prompt below them.
        let limit = if args.is_empty() { 30 } else { 23 };
        assert!(
            rows <= limit,
            "schat {} -h is {rows} rows:\n{short}",
            args.join(" ")
        );
        for text in [short, help(&args, "--help")] {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "schat {args:?}: {line:?}");
                let trimmed = line.trim_start();
                if trimmed.starts_with("schat ") || trimmed.contains("| schat ") {
                    // An example's comment is set off by two spaces or more.
                    let line = trimmed.split("  ").next().unwrap();
                    for words in invocations(line) {
                        parses(&words, false).unwrap_or_else(|e| {
                            panic!("the example {line:?} in schat {args:?}'s help: {e}")
                        });
                    }
                }
            }
        }
    }
    // The first thing `schat -h` says is what schat is, then the first steps.
    let top = help(&[], "-h");
    assert!(top.starts_with("End-to-end encrypted chat"), "{top}");
    assert!(
        top.find("First steps").unwrap() < top.find("Commands:").unwrap(),
        "{top}"
    );
}

#[test]
fn man_pages_and_completions_are_generated_from_the_same_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("manpages")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "schat.1",
        "schat-listen.1",
        "schat-dial.1",
        "schat-peers-add.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.starts_with(".ie"), "{page}: {text}");
    }
    let listen = std::fs::read_to_string(dir.path().join("schat-listen.1")).unwrap();
    assert!(
        listen.contains("knock") && listen.contains("Exit status"),
        "{listen}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(common::bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("max-handshakes-per-address") && script.contains("manpages"),
            "{shell}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Samples

/// A `<!-- sample: NAME -->` marker's block: where its text starts and ends in the file.
struct Block {
    file: PathBuf,
    name: String,
    start: usize,
    end: usize,
}

fn blocks(file: &Path, text: &str) -> Vec<Block> {
    // At the start of a line (prose may mention the marker).
    const MARK: &str = "\n<!-- sample: ";
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find(MARK) {
        let i = at + i;
        let name_end = text[i..].find(" -->").unwrap() + i;
        let name = text[i + MARK.len()..name_end].to_string();
        let fence = text[name_end..].find("```text\n").unwrap() + name_end;
        assert_eq!(
            text[name_end + 4..fence].trim(),
            "",
            "{}: the sample {name} must be followed by a ```text block",
            file.display()
        );
        let start = fence + "```text\n".len();
        let end = text[start..].find("```").unwrap() + start;
        found.push(Block {
            file: file.to_path_buf(),
            name,
            start,
            end,
        });
        at = end;
    }
    found
}

/// A home holding one of the fixed identities, at `/tmp/WHO` and six random characters
/// (shown as `/tmp/WHO`).
fn home_of(who: &str) -> Home {
    let home = Home {
        dir: tempfile::Builder::new().prefix(who).tempdir().unwrap(),
    };
    let path = home.identity();
    std::fs::copy(
        repo().join(format!("tests/data/docs/{who}.identity")),
        &path,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    home
}

/// What varies from run to run, made constant: the ports a test was given, the homes'
/// random names, the clock.
#[derive(Default)]
struct Normal {
    ports: Vec<(u16, &'static str)>,
    homes: Vec<(String, String)>,
}

impl Normal {
    fn new(ports: Vec<(u16, &'static str)>, homes: &[&Home]) -> Self {
        let homes = homes
            .iter()
            .map(|h| {
                let path = h.path().display().to_string();
                // /tmp/aliceXXXXXX is shown as /tmp/alice.
                let shown = path[..path.len() - 6].to_string();
                (path, shown)
            })
            .collect();
        Normal { ports, homes }
    }

    fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (path, shown) in &self.homes {
            text = text.replace(path, shown);
        }
        for (port, shown) in &self.ports {
            text = text.replace(&format!(":{port}"), &format!(":{shown}"));
        }
        let text = sources_hidden(&text);
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(&normal_line(line));
            out.push('\n');
        }
        out
    }
}

/// Times of day at the start of a screen row, RFC 3339 times, and JSON `"time"` fields.
fn normal_line(line: &str) -> String {
    let mut line = line.to_string();
    let b = line.as_bytes();
    if b.len() >= 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
    {
        line.replace_range(..5, "12:00");
    }
    // 2026-12-07T12:34:56Z (and with fractions of a second, as JSON times have).
    let mut out = String::new();
    let mut rest = line.as_str();
    while let Some(i) = find_timestamp(rest) {
        out.push_str(&rest[..i]);
        out.push_str("2026-12-07T12:00:00Z");
        let tail = &rest[i + 19..];
        let tail = tail.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
        rest = tail.strip_prefix('Z').unwrap_or(tail);
    }
    out.push_str(rest);
    out
}

fn find_timestamp(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(18)).find(|&i| {
        let d = |j: usize| b[i + j].is_ascii_digit();
        d(0) && d(1)
            && d(2)
            && d(3)
            && b[i + 4] == b'-'
            && d(5)
            && d(6)
            && b[i + 7] == b'-'
            && d(8)
            && d(9)
            && b[i + 10] == b'T'
            && d(11)
            && d(12)
            && b[i + 13] == b':'
            && d(14)
            && d(15)
            && b[i + 16] == b':'
            && d(17)
            && d(18)
    })
}

/// A screen as a reader sees it: the rows that hold something, without the line that only
/// appears when connecting takes longer than 0.7 s (it does on a busy machine).
fn screen(t: &mut Term) -> String {
    let rows = t.all_rows();
    let mut rows: Vec<String> = rows
        .into_iter()
        .map(|r| r.trim_end().to_string())
        .filter(|r| !r.contains("-- connecting to "))
        .collect();
    while rows.last().is_some_and(String::is_empty) {
        rows.pop();
    }
    while rows.first().is_some_and(String::is_empty) {
        rows.remove(0);
    }
    rows.join("\n")
}

/// Waits past a question's first half second, in which keys are taken for typing, not as
/// the answer (schat's guard against an answer typed before the question was seen).
fn past_the_question_guard() {
    std::thread::sleep(Duration::from_millis(600));
}

fn block_in_place<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

type Samples = BTreeMap<&'static str, String>;

/// `schat keygen`, with the new key shown as Alice's (keys are random; the output's shape is
/// what the sample shows).
fn keygen(samples: &mut Samples) {
    let home = Home::empty();
    let out = home.run(&["keygen", "--no-passphrase"]);
    assert!(out.status.success(), "{out:?}");
    let new = home.fingerprint();
    let alice = std::fs::read_to_string(repo().join("tests/data/docs/alice.identity")).unwrap();
    let alice = alice
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let mut text = String::from("$ schat keygen --no-passphrase\n");
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    // The key's forms: 64 digits, rows of four groups (a grid or one line), the short label.
    text = text.replace(&new, &alice);
    for (row_new, row_alice) in new.as_bytes().chunks(16).zip(alice.as_bytes().chunks(16)) {
        let group = |row: &[u8]| {
            row.chunks(4)
                .map(|g| std::str::from_utf8(g).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        };
        text = text.replace(&group(row_new), &group(row_alice));
    }
    text = text.replace(&new[..12], &alice[..12]);
    text = text.replace(
        &home.path().display().to_string(),
        "/home/alice/.config/schat",
    );
    samples.insert("keygen", Normal::default().apply(&text));
}

/// Bob listens with Alice admitted; Alice dials him for the first time at a terminal, trusts
/// his key, names him, and they say hello. Then her `peers list`, and the alarm when the key
/// at a known address changes.
async fn first_chat(samples: &mut Samples) {
    let (alice, bob, carol) = (home_of("alice"), home_of("bob"), home_of("carol"));
    let added = bob.run(&["peers", "add", &alice.fingerprint(), "alice"]);
    assert!(added.status.success(), "{added:?}");
    let mut b = Term::spawn(&bob, &["listen", "127.0.0.1:0"], 40, 80, 1000);
    let port = block_in_place(|| b.listening_port());
    let normal = Normal::new(vec![(port, "12345")], &[&alice, &bob]);
    let addr = format!("127.0.0.1:{port}");
    let mut a = Term::spawn(&alice, &["dial", &addr], 40, 80, 1000);
    block_in_place(|| {
        a.until("the trust question", |s| shows(s, "trust it?"));
        past_the_question_guard();
        a.type_line("y");
        a.until("the petname question", |s| shows(s, "petname"));
        past_the_question_guard();
        a.type_line("bob");
        a.until("the welcome", |s| shows(s, "welcome:"));
        b.until("alice's arrival", |s| shows(s, "joined"));
        a.type_line("hi Bob!");
        b.until("alice's words", |s| shows(s, "hi Bob!"));
        b.type_line("hi Alice, welcome");
        a.until("bob's words", |s| shows(s, "hi Alice, welcome"));
    });
    let alice_screen = block_in_place(|| {
        a.settle(200);
        screen(&mut a)
    });
    let bob_screen = block_in_place(|| {
        b.settle(200);
        screen(&mut b)
    });
    let (a_home, b_home) = (alice.path().display(), bob.path().display());
    samples.insert(
        "first-dial",
        normal.apply(&format!(
            "$ schat --home {a_home} dial {addr}\n{alice_screen}"
        )),
    );
    samples.insert(
        "first-chat-bob",
        normal.apply(&format!(
            "$ schat --home {b_home} listen {addr}\n{bob_screen}"
        )),
    );
    block_in_place(|| {
        a.type_line("/quit");
        assert_eq!(a.exit_code(), Some(0));
        b.type_line("/quit");
        assert_eq!(b.exit_code(), Some(0));
    });

    let list = alice.run(&["peers", "list"]);
    assert!(list.status.success(), "{list:?}");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    samples.insert(
        "peers-list",
        normal.apply(&format!("$ schat --home {a_home} peers list\n{list}")),
    );

    // Bob's address now answers with another key: Carol's listener, where Alice knows Bob.
    let (mut other, other_port) = carol.listen(&[]).await;
    let moved = alice.run(&["peers", "forget", "bob"]);
    assert!(moved.status.success(), "{moved:?}");
    let other_addr = format!("127.0.0.1:{other_port}");
    let added = alice.run(&[
        "peers",
        "add",
        &bob.fingerprint(),
        "bob",
        "--addr",
        &other_addr,
        "--no-admit",
    ]);
    assert!(added.status.success(), "{added:?}");
    let mut a = Term::spawn(&alice, &["dial", "bob"], 40, 80, 1000);
    let code = block_in_place(|| {
        a.until("the alarm", |s| shows(s, "peers forget bob"));
        a.exit_code()
    });
    assert_eq!(code, Some(3));
    let alarm = block_in_place(|| screen(&mut a));
    let normal = Normal::new(vec![(other_port, "12345")], &[&alice, &bob, &carol]);
    samples.insert(
        "key-change-alarm",
        normal.apply(&format!("$ schat --home {a_home} dial bob\n{alarm}")),
    );
    other.signal("INT");
    other.exit().await;
}

/// Alice hosts a room; Bob (admitted) and Carol (a stranger, who knocks) join; a few words.
async fn room(samples: &mut Samples) {
    let (alice, bob, carol) = (home_of("alice"), home_of("bob"), home_of("carol"));
    let added = alice.run(&["peers", "add", &bob.fingerprint(), "bob"]);
    assert!(added.status.success(), "{added:?}");
    let mut host = Term::spawn(
        &alice,
        &["listen", "127.0.0.1:0", "--name", "Alice"],
        40,
        80,
        1000,
    );
    let port = block_in_place(|| host.listening_port());
    let normal = Normal::new(vec![(port, "12345")], &[&alice, &bob, &carol]);
    let mut b = bob.dial(port, &["--name", "Bob"]);
    b.stderr_until("welcome").await;
    block_in_place(|| host.until("bob's arrival", |s| shows(s, "joined")));
    let mut c = carol.dial(port, &["--name", "Carol"]);
    let knock = block_in_place(|| {
        host.until("the knock", |s| shows(s, "y / n / y NAME"));
        host.settle(200);
        screen(&mut host)
    });
    samples.insert(
        "knock",
        normal.apply(&format!("$ schat listen --name Alice\n{knock}")),
    );
    block_in_place(|| {
        past_the_question_guard();
        host.type_line("y carol");
    });
    c.stderr_until("welcome").await;
    block_in_place(|| host.until("carol's arrival", |s| shows(s, "(2 in the room)")));
    b.send("hi Alice, hi Carol").await;
    block_in_place(|| host.until("bob's words", |s| shows(s, "hi Alice, hi Carol")));
    c.send("/me waves").await;
    block_in_place(|| host.until("carol's wave", |s| shows(s, "waves")));
    block_in_place(|| {
        host.type_line("welcome, both of you");
        host.type_line("/msg bob your invite is ready");
        host.until("the private message", |s| shows(s, "your invite is ready"));
    });
    c.said().await; // Bob's words
    c.said().await; // Alice's welcome
    b.said().await;
    b.said().await;
    b.send("/nick Robert").await;
    block_in_place(|| host.until("bob's new name", |s| shows(s, "calls itself Robert")));
    let room = block_in_place(|| {
        host.settle(200);
        screen(&mut host)
    });
    samples.insert(
        "room-host",
        normal.apply(&format!("$ schat listen --name Alice\n{room}")),
    );
    for p in [&mut b, &mut c] {
        p.send("quit").await;
        assert_eq!(p.exit().await.code(), Some(0));
    }
    block_in_place(|| {
        host.type_line("/quit");
        assert_eq!(host.exit_code(), Some(0));
    });
}

/// Plain lines and JSON events: a dialer that sends a line and leaves.
async fn scripting(samples: &mut Samples) {
    let (alice, bob) = (home_of("alice"), home_of("bob"));
    let added = bob.run(&["peers", "add", &alice.fingerprint(), "alice"]);
    assert!(added.status.success());
    let added = alice.run(&["peers", "add", &bob.fingerprint(), "bob", "--no-admit"]);
    assert!(added.status.success());

    let (mut listener, port) = bob.listen(&["--once", "--allow", "known"]).await;
    let mut dialer = alice.dial(port, &["--peer", "bob"]);
    // The line goes once the room is open: otherwise the end of input and the room's first
    // words would race on the dialer's stderr (both orders are right; a sample needs one).
    dialer.stderr_until("nobody else is here").await;
    dialer.send("build done").await;
    dialer.close_stdin();
    assert_eq!(
        dialer.exit().await.code(),
        Some(0),
        "{}",
        dialer.stderr_text()
    );
    assert_eq!(
        listener.exit().await.code(),
        Some(0),
        "{}",
        listener.stderr_text()
    );
    let normal = Normal::new(vec![(port, "12345")], &[&alice, &bob]);
    let text = format!(
        "$ echo \"build done\" | schat dial 127.0.0.1:{port} --peer bob    # Alice: stderr\n{}\n\
         $ schat listen 127.0.0.1:{port} --once                        # Bob: stdout\n{}\n\
         # Bob: stderr\n{}",
        dialer.stderr_seen.join("\n"),
        listener.stdout_seen.join("\n"),
        listener.stderr_text(),
    );
    samples.insert("plain-lines", normal.apply(&text));

    let (mut listener, port) = bob.listen(&["--once", "--allow", "known", "--json"]).await;
    let mut dialer = alice.dial(port, &["--peer", "bob"]);
    dialer.send("hi").await;
    dialer.close_stdin();
    assert_eq!(
        dialer.exit().await.code(),
        Some(0),
        "{}",
        dialer.stderr_text()
    );
    assert_eq!(
        listener.exit().await.code(),
        Some(0),
        "{}",
        listener.stderr_text()
    );
    let normal = Normal::new(vec![(port, "12345")], &[&alice, &bob]);
    let text = format!(
        "$ schat listen 127.0.0.1:{port} --once --json\n{}",
        listener.stdout_seen.join("\n")
    );
    samples.insert("json-events", normal.apply(&text));
}

/// A dialer's own port is the kernel's pick: shown as 40404.
fn sources_hidden(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    const FROM: &str = "127.0.0.1:";
    while let Some(i) = rest.find(FROM) {
        let after = &rest[i + FROM.len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..i + FROM.len()]);
        let port: u32 = after[..digits].parse().unwrap_or(0);
        // Ports the kernel hands out for outgoing connections (ip_local_port_range).
        if port >= 32768 && digits > 0 && !after[..digits].starts_with("12345") {
            out.push_str("40404");
        } else {
            out.push_str(&after[..digits]);
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// A pipe of 4 MiB: what each side says on stderr, rates and times normalised.
async fn pipe(samples: &mut Samples) {
    let (alice, bob) = (home_of("alice"), home_of("bob"));
    let (mut receiver, port) = bob
        .listen(&["--pipe", "--peer", &alice.fingerprint()])
        .await;
    let mut sender = alice.dial(port, &["--pipe", "--peer", &bob.fingerprint()]);
    let mut input = sender.take_stdin();
    use tokio::io::AsyncWriteExt;
    input.write_all(&vec![7u8; 4 << 20]).await.unwrap();
    drop(input);
    // The receiver sends nothing back: its input ends at once, as `< /dev/null` would.
    receiver.close_stdin();
    assert_eq!(
        sender.exit().await.code(),
        Some(0),
        "{}",
        sender.stderr_text()
    );
    assert_eq!(
        receiver.exit().await.code(),
        Some(0),
        "{}",
        receiver.stderr_text()
    );
    let normal = Normal::new(vec![(port, "12345")], &[&alice, &bob]);
    let text = format!(
        "$ schat listen 127.0.0.1:{port} --pipe --peer alice > file < /dev/null\n{}\n\
         $ schat dial 127.0.0.1:{port} --pipe --peer bob < file\n{}",
        receiver.stderr_text(),
        sender.stderr_text()
    );
    samples.insert("pipe-summary", rates_hidden(&normal.apply(&text)));
}

/// Rates and durations vary: a number before a rate unit (`MiB/s`) or a seconds unit (`s`)
/// is shown as a fixed figure.
fn rates_hidden(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let mut shown: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        for (i, word) in words.iter().enumerate() {
            let next = words.get(i + 1).copied().unwrap_or("");
            let unit = next.trim_end_matches([',', ')', ';']);
            let digits = word.trim_start_matches('(');
            let number = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                && digits.chars().any(|c| c.is_ascii_digit());
            if number && unit.ends_with("/s") {
                shown[i] = word.replace(digits, "987.6");
            } else if number && unit == "s" {
                shown[i] = word.replace(digits, "0.1");
            }
        }
        out.push_str(&shown.join(" "));
        out.push('\n');
    }
    out
}

/// `schat invite --code` at a terminal: the code is random; its shape is what the sample
/// shows.
fn invite_code(samples: &mut Samples) {
    let alice = home_of("alice");
    let args = ["invite", "--code", "--addr", "192.168.1.20:12345"];
    let mut t = Term::spawn(&alice, &args, 24, 80, 100);
    block_in_place(|| {
        t.until("the code", |s| shows(s, "three wrong tries"));
        assert_eq!(t.exit_code(), Some(0));
    });
    let text = format!(
        "$ schat {}\n{}",
        args.join(" "),
        block_in_place(|| screen(&mut t))
    );
    let codes: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter(|w| {
            let parts: Vec<&str> = w.split('-').collect();
            parts.len() == 6
                && parts[0].chars().all(|c| c.is_ascii_digit())
                && parts[1..]
                    .iter()
                    .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        })
        .map(str::to_string)
        .collect();
    assert!(!codes.is_empty(), "no code in {text}");
    let mut text = text;
    for code in codes {
        text = text.replace(&code, "427-absurd-aftermath-acme-alkali-adult");
    }
    // The revoke hint names the code's number.
    let number = text
        .split("--revoke ")
        .nth(1)
        .and_then(|t| t.split('`').next())
        .unwrap_or_default()
        .to_string();
    if !number.is_empty() {
        text = text.replace(&format!("--revoke {number}`"), "--revoke 427`");
    }
    samples.insert("invite-code", Normal::default().apply(&text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_samples_in_the_docs_are_what_schat_prints() {
    let mut samples = Samples::new();
    within(async {
        keygen(&mut samples);
        first_chat(&mut samples).await;
        room(&mut samples).await;
        scripting(&mut samples).await;
        pipe(&mut samples).await;
        invite_code(&mut samples);
    })
    .await;

    let bless = std::env::var_os(BLESS).is_some();
    let mut used = std::collections::BTreeSet::new();
    let mut stale = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut blessed = text.clone();
        // From the last block back, so that earlier offsets stay good while rewriting.
        for block in blocks(&file, &text).into_iter().rev() {
            let Some(wanted) = samples.get(block.name.as_str()) else {
                panic!(
                    "{}: no scenario makes the sample {:?}",
                    file.display(),
                    block.name
                );
            };
            used.insert(block.name.clone());
            let shown = &text[block.start..block.end];
            if shown != wanted.as_str() {
                stale.push(format!(
                    "{} shows the sample {:?} as\n{shown}\nbut schat prints\n{wanted}",
                    block.file.display(),
                    block.name
                ));
                blessed.replace_range(block.start..block.end, wanted);
            }
        }
        if bless && blessed != text {
            std::fs::write(&file, blessed).unwrap();
        }
    }
    let unused: Vec<_> = samples.keys().filter(|k| !used.contains(**k)).collect();
    assert!(unused.is_empty(), "samples no document shows: {unused:?}");
    assert!(
        bless || stale.is_empty(),
        "{}\n\n(after a deliberate change: {BLESS}=1 cargo test --test docs)",
        stale.join("\n\n")
    );
}
