//! How the prompt and the draft are laid out in rows — pure, so the cursor position can be
//! tested for every kind of text.
//!
//! We wrap the draft ourselves, short of the last column, exactly as `ui` wraps messages:
//! the terminal never wraps on its own, so we always know how many rows the input takes and
//! where the cursor is (a wide character that does not fit moves whole to the next row), and
//! erasing the input before printing a message leaves nothing stale behind.

use crate::sanitize;
use unicode_width::UnicodeWidthChar;

/// The rows of the input area and where the cursor is in them.
#[derive(Debug, PartialEq, Eq)]
pub struct View {
    /// The rows, without line endings; none reaches the last column.
    pub rows: Vec<String>,
    /// The cursor: row index into `rows` and column.
    pub cursor: (usize, usize),
}

/// Columns that lines of the draft after the first (and wrapped rows) are indented by, so
/// the draft reads as one block beside the prompt.
const INDENT: usize = 2;

/// Lays out `prompt` then `text`, with the cursor before byte `cursor` of `text`, for a
/// terminal `columns` wide and at most `max_rows` high (rows around the cursor are kept, and
/// the first one says how many were left out above).
pub fn render(prompt: &str, text: &str, cursor: usize, columns: usize, max_rows: usize) -> View {
    let usable = columns.saturating_sub(1).max(1);
    // On a very narrow terminal every column counts.
    let indent = if usable >= 12 { INDENT } else { 0 };
    let mut rows = vec![String::new()];
    let mut col = 0;
    let mut at = None;
    let new_row = |rows: &mut Vec<String>, col: &mut usize| {
        rows.push(" ".repeat(indent));
        *col = indent;
    };
    let put = |rows: &mut Vec<String>, col: &mut usize, shown: &str| {
        for c in shown.chars() {
            let width = char_columns(c);
            // (A character wider than a whole row goes on one anyway.)
            if *col + width > usable && *col > indent {
                new_row(rows, col);
            }
            if let Some(row) = rows.last_mut() {
                row.push(c);
            }
            *col += width;
        }
    };
    put(&mut rows, &mut col, &sanitize::line(prompt));
    for (i, c) in text.char_indices() {
        if i == cursor {
            at = Some(cursor_at(&mut rows, &mut col, usable, indent, c));
        }
        match c {
            '\n' => new_row(&mut rows, &mut col),
            '\t' => put(&mut rows, &mut col, "    "),
            c => {
                let mut buf = [0; 4];
                put(
                    &mut rows,
                    &mut col,
                    &sanitize::line(c.encode_utf8(&mut buf)),
                );
            }
        }
    }
    let cursor = match at {
        Some(at) => at,
        None => {
            // At the end: after the last character, on a fresh row if this one is full.
            if col >= usable && col > indent {
                new_row(&mut rows, &mut col);
            }
            (rows.len() - 1, col)
        }
    };
    window(View { rows, cursor }, max_rows.max(1))
}

/// Where the cursor goes when it sits before `c`: where `c` will be drawn (a character that
/// does not fit starts the next row, so the cursor goes there too).
fn cursor_at(
    rows: &mut Vec<String>,
    col: &mut usize,
    usable: usize,
    indent: usize,
    c: char,
) -> (usize, usize) {
    let width = match c {
        '\n' => 0,
        '\t' => 1,
        c => {
            let mut buf = [0; 4];
            sanitize::line(c.encode_utf8(&mut buf))
                .chars()
                .next()
                .map_or(0, char_columns)
        }
    };
    if *col + width > usable && width > 0 && *col > indent {
        rows.push(" ".repeat(indent));
        *col = indent;
    }
    (rows.len() - 1, *col)
}

/// Keeps at most `max_rows` rows, the cursor's among them; when rows above are left out, the
/// first row kept says how many.
fn window(view: View, max_rows: usize) -> View {
    let View { rows, cursor } = view;
    if rows.len() <= max_rows {
        return View { rows, cursor };
    }
    if max_rows == 1 {
        let row = rows.into_iter().nth(cursor.0).unwrap_or_default();
        return View {
            rows: vec![row],
            cursor: (0, cursor.1),
        };
    }
    // The cursor's row is the last one shown, unless the draft's start fits.
    let start = (cursor.0 + 1).saturating_sub(max_rows);
    let mut kept: Vec<String> = rows.into_iter().skip(start).take(max_rows).collect();
    if start > 0 {
        kept[0] = format!("[{} more rows above]", start + 1);
    }
    View {
        rows: kept,
        cursor: (cursor.0 - start, cursor.1),
    }
}

/// Display width of text, counting East Asian ambiguous characters as wide: erring wide only
/// wraps a little early, erring narrow would let the terminal wrap for us.
pub fn text_columns(text: &str) -> usize {
    text.chars().map(char_columns).sum()
}

/// `row` (plain text, no colours) made safe and cut to `width` columns, with `…` where it was
/// cut: a row that must stay one row.
pub fn cut(row: &str, width: usize) -> String {
    let row = sanitize::line(row);
    if text_columns(&row) <= width {
        return row.into_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in row.chars() {
        let w = char_columns(c);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// The columns `row` takes on screen: its text without our colour sequences.
pub fn visible_columns(row: &str) -> usize {
    let mut plain = String::with_capacity(row.len());
    let mut chars = row.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: parameters up to a final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    text_columns(&plain)
}

/// Display width of one character (see [`text_columns`]).
pub fn char_columns(c: char) -> usize {
    match c {
        // The emoji presentation selector turns a 1-column symbol (❤) into a 2-column emoji
        // (❤️) on most terminals; counting it as a column keeps the estimate from falling short.
        '\u{fe0f}' => 1,
        c => c.width_cjk().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_row_with_the_cursor_where_it_is() {
        let v = render("> ", "hello", 5, 80, 10);
        assert_eq!(v.rows, ["> hello"]);
        assert_eq!(v.cursor, (0, 7));
        let v = render("> ", "hello", 1, 80, 10);
        assert_eq!(v.cursor, (0, 3));
    }

    #[test]
    fn long_text_wraps_short_of_the_last_column_with_an_indent() {
        let text = "x".repeat(30);
        let v = render("> ", &text, 30, 20, 10);
        assert!(v.rows.iter().all(|r| text_columns(r) < 20), "{:?}", v.rows);
        assert_eq!(v.rows[0], format!("> {}", "x".repeat(17)));
        assert_eq!(v.rows[1], format!("  {}", "x".repeat(13)));
        assert_eq!(v.cursor, (1, 15));
    }

    #[test]
    fn a_full_last_row_puts_the_cursor_on_a_fresh_row() {
        let v = render("> ", &"x".repeat(17), 17, 20, 10);
        assert_eq!(v.rows.len(), 2);
        assert_eq!(v.cursor, (1, 2));
    }

    #[test]
    fn wide_characters_never_straddle_rows_and_the_cursor_follows_them() {
        // 19 usable columns: "> " then 8 wide characters (16), the 9th does not fit in 1.
        let text = "日".repeat(12);
        let v = render("> ", &text, 8 * "日".len(), 20, 10);
        assert_eq!(v.rows[0], format!("> {}", "日".repeat(8)));
        assert_eq!(text_columns(&v.rows[0]), 18);
        assert_eq!(
            v.cursor,
            (1, 2),
            "the cursor sits on the 9th, on the next row"
        );
        let v = render("> ", &text, 7 * "日".len(), 20, 10);
        assert_eq!(v.cursor, (0, 16));
        let v = render("> ", &text, text.len(), 20, 10);
        assert_eq!(v.cursor, (1, 10));
    }

    #[test]
    fn a_very_narrow_terminal_gets_rows_that_fit_without_a_margin() {
        let v = render("> ", "abcdefghijklmnopqrstuvwxyz", 26, 10, 20);
        assert!(v.rows.iter().all(|r| text_columns(r) < 10), "{:?}", v.rows);
        assert_eq!(v.rows[1], "hijklmnop");
        assert_eq!(v.cursor, (3, 1));
    }

    #[test]
    fn newlines_start_indented_rows() {
        let v = render("> ", "one\ntwo", 7, 80, 10);
        assert_eq!(v.rows, ["> one", "  two"]);
        assert_eq!(v.cursor, (1, 5));
        let v = render("> ", "one\ntwo", 3, 80, 10);
        assert_eq!(v.cursor, (0, 5), "before the newline: end of the first row");
    }

    #[test]
    fn control_characters_are_shown_escaped_and_measured_so() {
        let v = render("> ", "a\x1bb", 3, 80, 10);
        assert_eq!(v.rows, ["> a\\x1bb"]);
        assert_eq!(v.cursor, (0, 8));
    }

    #[test]
    fn a_draft_taller_than_the_screen_shows_the_rows_around_the_cursor() {
        let text = "line\n".repeat(30);
        let v = render("> ", &text, text.len(), 40, 5);
        assert_eq!(v.rows.len(), 5);
        assert_eq!(v.rows[0], "[27 more rows above]");
        assert_eq!(v.cursor, (4, 2));
        let v = render("> ", &text, 0, 40, 5);
        assert_eq!(v.rows.len(), 5);
        assert_eq!(v.rows[0], "> line");
        assert_eq!(v.cursor, (0, 2));
        let v = render("> ", &text, 0, 40, 1);
        assert_eq!(v.rows, ["> line"]);
    }
}
