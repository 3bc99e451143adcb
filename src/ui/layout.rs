//! Rows for the terminal, laid out by us: wrapped short of the last column, continuation rows
//! behind a blank margin, long runs of blanks shown as a count. Pure.

use crate::editor::view::char_columns;

/// Columns of `HH:MM`.
pub const STAMP_COLS: usize = 5;

/// Runs of blanks longer than this are shown as a count: padding is how text is pushed to
/// where it would look like something else.
const MAX_BLANKS: usize = 8;

/// Lays out rows: `head` (`head_cols` wide) and a space, then `body`, wrapped so that no row
/// reaches the last column — the head too, when it is long (a long name). Continuation rows
/// (wraps and the body's own line breaks) start with a blank margin. `head` and `body` must
/// already be sanitized; escape sequences we added ourselves (colour) take no columns. Tabs
/// become spaces and long runs of blanks are collapsed.
pub fn layout(head: &str, head_cols: usize, body: &str, columns: usize, blanks: Blanks) -> String {
    let usable = columns.saturating_sub(1).max(4);
    let indent = (head_cols + 1).min(usable / 3);
    let mut out = String::with_capacity(head.len() + body.len() + 16);
    let mut col = 0;
    let body = body.replace('\t', "    ");
    let body = match blanks {
        Blanks::Collapse => collapse_blanks(&body),
        Blanks::Keep => std::borrow::Cow::Borrowed(body.as_str()),
    };
    for (i, line) in body.split('\n').enumerate() {
        if i == 0 {
            put(&mut out, &mut col, head, usable, indent);
            put(&mut out, &mut col, " ", usable, indent);
        } else {
            new_row(&mut out, &mut col, indent);
        }
        put(&mut out, &mut col, line, usable, indent);
    }
    out.push('\n');
    out
}

fn new_row(out: &mut String, col: &mut usize, indent: usize) {
    out.push('\n');
    out.push_str(&" ".repeat(indent));
    *col = indent;
}

/// Appends `text` at column `col`, wrapping at word boundaries: a word that does not fit on
/// the row starts a continuation row, so digit groups, `[key]` labels and words people read
/// aloud are never cut; only a word longer than a whole row is, wherever the row ends. Blanks
/// where a row breaks are dropped (the margin replaces them).
fn put(out: &mut String, col: &mut usize, text: &str, usable: usize, indent: usize) {
    let mut rest = text;
    while !rest.is_empty() {
        let (token, blank) = next_token(rest);
        rest = &rest[token.len()..];
        let width = token_columns(token);
        if blank {
            // Only blanks that fit; at the end of a row they would only push the next word.
            for c in token.chars() {
                if *col < usable {
                    out.push(c);
                    *col += 1;
                }
            }
            continue;
        }
        // (A word longer than a whole row is cut where it stands: a new row would not hold
        // it either.)
        if *col + width > usable && *col > indent && width <= usable - indent {
            // The blanks before it belong to the row that ends here.
            while out.ends_with(' ') {
                out.pop();
            }
            new_row(out, col, indent);
        }
        if *col + width <= usable {
            copy(out, col, token);
            continue;
        }
        // Longer than a whole row: cut where the row ends, and go on on the next.
        put_chars(out, col, token, usable, indent);
    }
}

/// The next word (a run of non-blanks, our own colour sequences inside it) or run of blanks
/// at the start of `text`; `true` for blanks.
fn next_token(text: &str) -> (&str, bool) {
    let blank = text.starts_with(' ');
    let end = text
        .char_indices()
        .find(|&(_, c)| (c == ' ') != blank)
        .map_or(text.len(), |(i, _)| i);
    (&text[..end], blank)
}

/// Columns a token takes: our colour sequences take none.
fn token_columns(token: &str) -> usize {
    let mut cols = 0;
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        cols += char_columns(c);
    }
    cols
}

/// Copies a token that fits on the row.
fn copy(out: &mut String, col: &mut usize, token: &str) {
    out.push_str(token);
    *col += token_columns(token);
}

/// Copies a token character by character, starting a continuation row wherever the next
/// character would reach the last usable column.
fn put_chars(out: &mut String, col: &mut usize, text: &str, usable: usize, indent: usize) {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // One of our own colour sequences (peer text has none left): copy it whole.
            out.push(c);
            for d in chars.by_ref() {
                out.push(d);
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        let width = char_columns(c);
        if *col + width > usable && *col > indent {
            new_row(out, col, indent);
        }
        out.push(c);
        *col += width;
    }
}

/// Whether [`layout`] collapses long runs of blanks (always, for text from a peer).
#[derive(Clone, Copy)]
pub enum Blanks {
    Collapse,
    Keep,
}

/// Replaces each run of more than [`MAX_BLANKS`] spaces with a visible count.
fn collapse_blanks(text: &str) -> std::borrow::Cow<'_, str> {
    let limit = " ".repeat(MAX_BLANKS + 1);
    if !text.contains(&limit) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut run = 0usize;
    let flush = |out: &mut String, run: usize| {
        if run > MAX_BLANKS {
            out.push_str(&format!(" [{run} spaces] "));
        } else {
            out.push_str(&" ".repeat(run));
        }
    };
    for c in text.chars() {
        if c == ' ' {
            run += 1;
            continue;
        }
        flush(&mut out, run);
        run = 0;
        out.push(c);
    }
    flush(&mut out, run);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::view::text_columns;
    use crate::ui::{DIM, RESET};

    fn rows(text: &str) -> Vec<String> {
        text.trim_end_matches('\n')
            .split('\n')
            .map(String::from)
            .collect()
    }

    #[test]
    fn no_row_reaches_the_last_column_and_continuations_have_a_margin() {
        let body = format!("{}-- peer: alice (safety number compared)", " ".repeat(75));
        let out = layout("12:00 <bob>", 11, &body, 40, Blanks::Collapse);
        for (i, row) in rows(&out).iter().enumerate() {
            assert!(text_columns(row) < 40, "{row:?}");
            if i > 0 {
                assert!(row.starts_with("            "), "{row:?}");
            }
        }
        assert!(out.contains("[75 spaces]"));
    }

    #[test]
    fn a_head_longer_than_the_row_is_wrapped_too() {
        let head = format!("12:00 <{} via {}>", "a".repeat(30), "b".repeat(30));
        let out = layout(&head, head.len(), "hi", 40, Blanks::Collapse);
        let rows = rows(&out);
        assert!(rows.len() >= 2, "{rows:?}");
        for (i, row) in rows.iter().enumerate() {
            assert!(text_columns(row) < 40, "{row:?}");
            if i > 0 {
                assert!(row.starts_with("  "), "{row:?}");
            }
        }
        assert!(rows.last().unwrap().ends_with("hi"));
    }

    #[test]
    fn wide_characters_are_measured() {
        let out = layout("h", 1, &"日".repeat(30), 21, Blanks::Collapse);
        for row in rows(&out) {
            assert!(text_columns(&row) < 21, "{row:?}");
        }
    }

    #[test]
    fn emoji_with_the_presentation_selector_count_two_columns() {
        assert_eq!(text_columns("\u{2764}\u{fe0f}"), 2);
        let out = layout("h", 1, &"\u{2764}\u{fe0f}".repeat(40), 40, Blanks::Collapse);
        for row in rows(&out) {
            assert!(text_columns(&row) < 40, "{row:?}");
        }
    }

    #[test]
    fn our_colour_sequences_take_no_columns() {
        let painted = format!("{DIM}{}{RESET}", "x".repeat(10));
        let out = layout("h", 1, &painted, 20, Blanks::Collapse);
        assert_eq!(rows(&out).len(), 1, "{out:?}");
    }

    #[test]
    fn blank_runs_are_collapsed_short_ones_kept() {
        assert_eq!(collapse_blanks("a        b"), "a        b");
        assert_eq!(collapse_blanks("a         b"), "a [9 spaces] b");
    }

    #[test]
    fn words_wrap_whole_and_only_a_word_longer_than_a_row_is_cut() {
        let safety = "safety number: 44758 16735 97887 52457 61911 84017 20356 11122";
        for cols in 30..80 {
            let out = layout("12:00 --", 8, safety, cols, Blanks::Collapse);
            for row in rows(&out) {
                assert!(text_columns(&row) < cols, "{cols}: {row:?}");
                for word in row.split(' ').filter(|w| !w.is_empty()) {
                    assert!(
                        safety.split(' ').any(|w| w == word) || word == "12:00" || word == "--",
                        "{cols}: a word was cut: {word:?} in {out:?}"
                    );
                }
            }
        }
        // A label in brackets stays whole, in a long head too.
        let head = "12:00 <Frank [a79f7352d8bd] via Gina [35abc65a7cf8]>";
        let out = layout(head, head.len(), "hi", 45, Blanks::Collapse);
        assert!(out.contains("[35abc65a7cf8]>"), "{out:?}");
        // Only what no row can hold is cut.
        let out = layout("h", 1, &"x".repeat(50), 21, Blanks::Collapse);
        for row in rows(&out) {
            assert!(text_columns(&row) < 21, "{row:?}");
        }
    }
}
