//! Makes text a peer sent safe to print on a terminal.
//!
//! A peer controls every byte of its messages. Printed raw, an escape sequence could clear the
//! screen, rewrite earlier lines, set the window title, plant an OSC 8 hyperlink or write the
//! clipboard (OSC 52); bidi overrides can make text read differently than it is. So every
//! control character (C0, DEL, C1), every bidi control, every invisible format character
//! (Unicode's Cf category, the tag characters, the blank fillers) and the Unicode line/paragraph
//! separators are shown escaped — `\x1b`, `\u{202e}` — and never reach the terminal as such.
//! Neutralising ESC itself is enough to defuse every sequence that starts with it.

use std::borrow::Cow;
use std::fmt::Write;

/// Escapes everything unsafe, including newlines: one message becomes exactly one line.
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Escapes everything unsafe but keeps newlines, for multi-line display.
pub fn block(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn must_escape(c: char, keep_newlines: bool) -> bool {
    match c {
        '\t' => false,
        '\n' => !keep_newlines,
        // C0 controls, DEL, C1 controls (0x9b is a one-byte CSI on some terminals).
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        // Bidi marks, embeddings, overrides and isolates (Trojan Source, CVE-2021-42574).
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => true,
        // Line and paragraph separators: invisible line breaks.
        '\u{2028}' | '\u{2029}' => true,
        c => is_invisible(c),
    }
}

/// Invisible format characters (Unicode's Cf category, Unicode 16) and the blank "filler"
/// letters: they print as nothing, so text could hide, join or pad words with them (a name
/// with a zero-width space looks exactly like the name).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{0600}'..='\u{0605}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| must_escape(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !must_escape(c, keep_newlines) {
            out.push(c);
        } else if c == '\n' {
            out.push_str("\\n");
        } else if c == '\r' {
            out.push_str("\\r");
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched_and_not_copied() {
        for s in ["hello", "héllo wörld ✓ 日本語", "tab\tseparated", ""] {
            assert!(matches!(line(s), Cow::Borrowed(b) if b == s));
        }
    }

    #[test]
    fn escape_sequences_are_defused() {
        assert_eq!(line("\x1b[2J"), "\\x1b[2J");
        assert_eq!(line("\x1b]52;c;aGVsbG8=\x07"), "\\x1b]52;c;aGVsbG8=\\x07");
        assert_eq!(
            line("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"),
            "\\x1b]8;;http://evil\\x1b\\link\\x1b]8;;\\x1b\\"
        );
        assert_eq!(line("a\u{9b}31mb"), "a\\x9b31mb");
        assert_eq!(line("nul\0del\x7f"), "nul\\x00del\\x7f");
        assert_eq!(line("over\rwrite"), "over\\rwrite");
    }

    #[test]
    fn bidi_controls_are_shown() {
        assert_eq!(line("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(line("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(line("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn invisible_format_characters_are_shown() {
        for c in [
            '\u{200b}',
            '\u{feff}',
            '\u{2060}',
            '\u{2064}',
            '\u{206a}',
            '\u{206f}',
            '\u{3164}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{e007f}',
            '\u{600}',
            '\u{180e}',
            '\u{1d173}',
        ] {
            let text = format!("a{c}b");
            assert_eq!(line(&text), format!("a\\u{{{:04x}}}b", c as u32), "{c:?}");
        }
        assert_eq!(line("soft\u{ad}hyphen"), "soft\\xadhyphen");
        // Visible neighbours are left alone.
        for s in ["\u{2065}", "\u{2070}", "\u{e0080}", "é", "日本"] {
            assert!(matches!(line(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn newlines_depend_on_the_mode() {
        assert_eq!(line("one\ntwo"), "one\\ntwo");
        assert_eq!(block("one\ntwo\tx"), "one\ntwo\tx");
        assert_eq!(block("one\n\x1b[1mtwo"), "one\n\\x1b[1mtwo");
    }

    #[test]
    fn no_output_char_is_a_control_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        for c in line(&all).chars() {
            assert!(!must_escape(c, false), "{:?} survived", c);
        }
    }
}
