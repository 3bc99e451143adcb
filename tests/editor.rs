//! The line editor, judged by what the screen shows: the real dialer runs on a pseudo-terminal,
//! its output goes through a terminal model (`vt100`), and keys arrive as a terminal sends
//! them. Each test is one complaint from issue 13: keys that must behave as in a shell, no
//! stale rows after a wrapped send, an exact cursor on wide characters, prompts that stay,
//! pastes that become one message, and a redraw on resize.

mod common;

use common::term::{Term, prompt, shows};
use common::{Home, Proc, within};

/// A listener (plain mode, `--once`) and a dialer on a `rows` × `cols` terminal, connected.
async fn chat(rows: u16, cols: u16) -> (Proc, Term, Home, Home) {
    let (alice, bob) = (Home::new(), Home::new());
    let (listener, port) = bob.listen(&["--once"]).await;
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::spawn(
        &alice,
        &["dial", &addr, "--trust", "accept-new"],
        rows,
        cols,
        200,
    );
    tokio::task::block_in_place(|| t.until("the welcome", |s| shows(s, "welcome")));
    (listener, t, alice, bob)
}

/// Leaves with `/quit` and checks that both sides end cleanly.
async fn finish(mut listener: Proc, mut t: Term) {
    t.type_line("/quit");
    let code = tokio::task::block_in_place(|| t.exit_code());
    assert_eq!(code, Some(0), "the screen:\n{}", t.all_rows().join("\n"));
    assert!(listener.exit().await.success());
}

/// The rows of the input area: from the lowest row starting with `>` to the end of the screen.
fn input_rows(t: &Term) -> Vec<String> {
    let rows = t.rows();
    let start = rows.iter().rposition(|r| r.starts_with('>')).unwrap_or(0);
    rows[start..]
        .iter()
        .filter(|r| !r.is_empty())
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_line_leaves_no_stale_rows_when_sent() {
    within(async {
        let (mut listener, mut t, _a, _b) = chat(24, 40).await;
        // 110 columns of text: three rows of input at 40 columns.
        let text = format!("START{}END", "x".repeat(102));
        t.type_line(&text);
        assert_eq!(listener.said().await, text);
        tokio::task::block_in_place(|| {
            t.until("the echo", |s| shows(s, "<you> START"));
            t.settle(300);
        });
        let screen = t.rows().join("\n");
        // The echo wraps too: join the rows (margins trimmed) before counting.
        let joined: String = t.rows().iter().map(|r| r.trim()).collect();
        assert_eq!(
            joined.matches("START").count(),
            1,
            "one copy (the echo), no stale input rows:\n{screen}"
        );
        assert_eq!(joined.matches("END").count(), 1, "{screen}");
        assert_eq!(prompt(t.parser.screen()).as_deref(), Some(">"), "{screen}");
        finish(listener, t).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_is_exact_on_wrapped_wide_characters() {
    within(async {
        let (listener, mut t, _a, _b) = chat(24, 40).await;
        // 30 wide characters (60 columns). 39 usable columns: "> " and 18 characters on the
        // first row (the 19th would need columns 38–39), 12 on the second after its margin.
        t.press(&"日本語".repeat(10));
        tokio::task::block_in_place(|| {
            t.until("the draft", |s| s.contents().matches('語').count() == 10);
            t.settle(200);
        });
        let rows = input_rows(&t);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0], format!("> {}", "日本語".repeat(6)));
        let (prompt_row, _) = {
            let all = t.rows();
            (
                all.iter().rposition(|r| r.starts_with('>')).unwrap() as u16,
                (),
            )
        };
        assert_eq!(
            t.parser.screen().cursor_position(),
            (prompt_row + 1, 2 + 12 * 2),
            "after the last character"
        );
        // Back 13 characters: before the 18th, on the first row, at column 2 + 17 × 2.
        t.press(&"\x1b[D".repeat(13));
        tokio::task::block_in_place(|| {
            t.until("the cursor to move", |s| {
                s.cursor_position() == (prompt_row, 36)
            })
        });
        // Typing goes exactly there.
        t.press("X");
        tokio::task::block_in_place(|| {
            t.until("the X", |s| {
                s.cell(prompt_row, 36).map(|c| c.contents()) == Some("X")
            })
        });
        // Ctrl-C clears the draft (a second one would leave); then quit.
        t.press("\x03");
        finish(listener, t).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_and_ctrl_c_edit_a_line_and_end_only_an_empty_one() {
    within(async {
        let (mut listener, mut t, _a, _b) = chat(24, 60).await;
        t.press("abc");
        tokio::task::block_in_place(|| t.until("abc", |s| prompt(s).as_deref() == Some("> abc")));
        // Ctrl-A, Ctrl-D: the character under the cursor goes; the session stays.
        t.press("\x01\x04");
        tokio::task::block_in_place(|| t.until("bc", |s| prompt(s).as_deref() == Some("> bc")));
        // Ctrl-C on a non-empty line clears it.
        t.press("\x03");
        tokio::task::block_in_place(|| {
            t.until("an empty prompt", |s| prompt(s).as_deref() == Some(">"));
            t.settle(300);
        });
        assert!(
            t.alive(),
            "Ctrl-C on a non-empty line must not end the session"
        );
        // Ctrl-Y brings the cleared text back; it can still be sent.
        t.press("\x19\r");
        assert_eq!(listener.said().await, "bc");
        // Ctrl-D on the empty line leaves, cleanly.
        t.press("\x04");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_draft_stays_on_screen_when_the_peer_leaves() {
    within(async {
        let (mut listener, mut t, _a, _b) = chat(12, 60).await;
        t.press("a thought worth keeping");
        tokio::task::block_in_place(|| t.until("the draft", |s| shows(s, "worth keeping")));
        // Taller than the screen: all of it must be left, not the rows that fit.
        let lines: Vec<String> = (1..=30).map(|i| format!("line {i:02}")).collect();
        t.press("\x1b\r");
        t.paste(&lines.join("\n"));
        tokio::task::block_in_place(|| {
            t.until("the paste question", |s| shows(s, "paste 30 lines"));
            t.press("y");
            t.until("the tall draft", |s| shows(s, "line 30"));
        });
        listener.send("/quit").await;
        let code = tokio::task::block_in_place(|| t.exit_code());
        tokio::task::block_in_place(|| t.settle(200));
        let rows = t.all_rows();
        let screen = rows.join("\n");
        assert!(
            screen.contains("> a thought worth keeping"),
            "the draft is gone:\n{screen}"
        );
        for line in &lines {
            assert!(
                rows.iter().any(|r| r.trim() == line),
                "{line} of the draft is gone:\n{screen}"
            );
        }
        assert!(screen.contains("was not sent"), "{screen}");
        assert_eq!(code, Some(0), "{screen}");
        listener.exit().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_prompts_stay_on_screen_and_a_pasted_fingerprint_shows_whole() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (listener, port) = bob.listen(&["--once"]).await;
        let fp = bob.fingerprint();
        let addr = format!("127.0.0.1:{port}");
        // Narrower than the question and the fingerprint together.
        let mut t = Term::spawn(&alice, &["dial", &addr], 30, 40, 200);
        tokio::task::block_in_place(|| {
            t.until("the question", |s| shows(s, "trust it?"));
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            t.paste(&fp);
            // All 64 digits are on screen while it is being answered (wrapped, not cut).
            t.until("the whole fingerprint in the input", |s| {
                let rows: Vec<String> = s.rows(0, 40).collect();
                let Some(at) = rows.iter().rposition(|r| r.starts_with("trust it?")) else {
                    return false;
                };
                let joined: String = rows[at..].concat().split_whitespace().collect();
                joined.contains(&fp)
            });
            t.press("\r");
            t.until("the petname question", |s| {
                shows(s, "petname for this peer")
            });
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            t.type_line("bobby");
            t.until("the welcome", |s| shows(s, "welcome"));
            t.settle(200);
        });
        let rows = t.all_rows();
        let screen = rows.join("\n");
        assert!(
            screen.contains("trust it?"),
            "the answered question is gone:\n{screen}"
        );
        let at = rows
            .iter()
            .position(|r| r.starts_with("petname for this peer"))
            .expect("the answered petname question");
        let answered = format!("{}{}", rows[at], rows[at + 1].trim());
        assert!(
            answered.ends_with("]: bobby"),
            "the petname question and its answer:\n{screen}"
        );
        // The answered fingerprint, its rows joined, is whole.
        let at = rows
            .iter()
            .position(|r| r.starts_with("trust it?"))
            .unwrap();
        let answer: String = rows[at..]
            .iter()
            .take(6)
            .flat_map(|r| r.split_whitespace())
            .collect();
        assert!(answer.contains(&fp), "{screen}");
        finish(listener, t).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_block_and_alt_enter_make_one_multi_line_message() {
    within(async {
        let (mut listener, mut t, _a, _b) = chat(30, 60).await;
        t.paste("line one\nline two\r\nline three");
        tokio::task::block_in_place(|| {
            t.until("three rows of draft", |s| {
                shows(s, "> line one") && shows(s, "  line three")
            })
        });
        t.press("\r");
        // Plain mode shows one message per line, its newlines escaped.
        assert_eq!(listener.said().await, "line one\\nline two\\nline three");
        tokio::task::block_in_place(|| {
            t.until("the echo, lines indented under it", |s| {
                let rows: Vec<String> = s.rows(0, 60).collect();
                rows.iter().any(|r| r.contains("<you> line one"))
                    && rows
                        .iter()
                        .any(|r| r.starts_with("  ") && r.trim() == "line two")
            })
        });

        // Alt-Enter (ESC CR) starts a new line within the message.
        t.press("first\x1b\rsecond\r");
        assert_eq!(listener.said().await, "first\\nsecond");

        // More than five lines: asked first; n discards, y inserts.
        let block: Vec<String> = (1..=8).map(|i| format!("pasted {i}")).collect();
        t.paste(&block.join("\n"));
        tokio::task::block_in_place(|| t.until("the question", |s| shows(s, "paste 8 lines")));
        t.press("n");
        tokio::task::block_in_place(|| {
            t.until("an empty prompt", |s| prompt(s).as_deref() == Some(">"))
        });
        t.paste(&block.join("\n"));
        tokio::task::block_in_place(|| {
            t.until("the question again", |s| shows(s, "paste 8 lines"))
        });
        t.press("y");
        tokio::task::block_in_place(|| t.until("the draft", |s| shows(s, "> pasted 1")));
        t.press("\r");
        assert_eq!(listener.said().await, block.join("\\n"));
        finish(listener, t).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_redraws_the_draft_for_the_new_width() {
    within(async {
        let (mut listener, mut t, _a, _b) = chat(24, 80).await;
        let text = format!("RESIZE{}", "r".repeat(94));
        t.press(&text);
        tokio::task::block_in_place(|| {
            t.until("the draft", |s| s.contents().matches('r').count() >= 94)
        });
        t.resize(24, 30);
        tokio::task::block_in_place(|| {
            t.until("the draft in rows of 30", |s| {
                let rows: Vec<String> = s.rows(0, 30).collect();
                let start = rows.iter().rposition(|r| r.starts_with("> RESIZE"));
                start.is_some_and(|i| rows[i + 1..].iter().filter(|r| r.contains('r')).count() >= 3)
            });
            t.settle(200);
        });
        let rows = input_rows(&t);
        let shown: String = rows.concat().split_whitespace().collect();
        assert_eq!(shown, format!(">{text}"), "{rows:?}");
        assert!(rows.iter().all(|r| r.chars().count() < 30), "{rows:?}");
        // The cursor is after the last character.
        let (row, col) = t.parser.screen().cursor_position();
        let last = t.rows()[usize::from(row)].clone();
        assert_eq!(usize::from(col), last.chars().count(), "{last:?}");
        t.press("\r");
        assert_eq!(listener.said().await, text);
        finish(listener, t).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_shows_as_an_action_on_both_sides_and_help_is_a_list() {
    within(async {
        let (mut listener, mut t, _a, _b) = chat(40, 80).await;
        t.type_line("/me waves");
        assert_eq!(listener.said().await, "/me waves");
        listener.send("/me nods").await;
        t.type_line("/help");
        tokio::task::block_in_place(|| {
            t.until("both actions and the help", |s| {
                shows(s, "* you waves") && shows(s, "nods") && shows(s, "/quit")
            });
            t.settle(200);
        });
        let rows = t.rows();
        assert!(
            rows.iter()
                .any(|r| r.contains("* peer-") && r.ends_with(" nods")),
            "{rows:#?}"
        );
        // /help: one command per row, descriptions aligned.
        let commands: Vec<&String> = rows.iter().filter(|r| r.contains("  /")).collect();
        assert!(commands.len() >= 8, "{rows:#?}");
        let column = |r: &str| {
            let at = r.find("  /").unwrap() + 2;
            let after = &r[at..];
            at + after.find("  ").unwrap() + after[after.find("  ").unwrap()..].len()
                - after[after.find("  ").unwrap()..].trim_start().len()
        };
        let first = column(commands[0]);
        assert!(commands.iter().all(|r| column(r) == first), "{commands:#?}");
        finish(listener, t).await;
    })
    .await
}

/// A knock must not take what the host had half-typed as its answer: the question starts
/// empty, and the draft comes back once it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knock_never_takes_the_half_typed_line_as_its_answer() {
    within(async {
        let (host, stranger) = (Home::new(), Home::new());
        let mut t = Term::spawn(&host, &["listen", "127.0.0.1:0"], 30, 100, 200);
        let port: u16 = tokio::task::block_in_place(|| t.listening_port());
        t.press("sure");
        tokio::task::block_in_place(|| {
            t.until("the draft", |s| prompt(s).as_deref() == Some("> sure"))
        });
        let mut d = stranger.dial(port, &["--trust", "accept-new"]);
        tokio::task::block_in_place(|| {
            t.until("the knock's question", |s| shows(s, "y / n / y NAME"));
            // A "y" and Enter in flight as the question appears are not an answer.
            t.press("y\r");
            t.settle(100);
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            t.settle(200);
        });
        let question = t
            .rows()
            .into_iter()
            .rfind(|r| r.contains("y / n / y NAME"))
            .unwrap();
        assert!(
            question.ends_with("y NAME:"),
            "the draft became the answer: {question:?}"
        );
        // Enter on the empty answer refuses; the draft is back.
        t.press("\r");
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        tokio::task::block_in_place(|| {
            t.until("the draft back", |s| prompt(s).as_deref() == Some("> sure"))
        });
        assert!(
            !shows(t.parser.screen(), "joined"),
            "admitted by keys in flight"
        );
        let known = std::fs::read_to_string(host.path().join("known_peers")).unwrap_or_default();
        assert!(!known.contains(&stranger.fingerprint()), "{known}");
        t.press("\x03\x03");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
    })
    .await
}
