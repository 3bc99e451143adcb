//! The line being typed, and what each key does to it — pure state, no terminal.
//!
//! The keys are the ones a shell (readline, zsh) has taught people: Ctrl-D deletes the
//! character under the cursor and ends the session only on an empty line, Ctrl-C clears a
//! line and ends the session only when there is nothing left to clear, Alt-Enter starts a new
//! line within the message. A bracketed paste is inserted as text (newlines included, so a
//! pasted block becomes one message); a paste of many lines asks first, since pasting the
//! wrong clipboard into a chat is a classic accident.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;

/// A paste of more lines than this asks before it is inserted (irssi asks above 5 as well).
pub const PASTE_CONFIRM_LINES: usize = 5;

/// History entries kept.
const HISTORY: usize = 500;

/// What the terminal layer must do after a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed on screen.
    None,
    /// The draft (or the prompt) changed: draw it again.
    Redraw,
    /// Enter: send this text (the draft is now empty).
    Submit(String),
    /// Ctrl-D on an empty line.
    Eof,
    /// Ctrl-C on an empty line.
    Interrupt,
    /// Ctrl-L.
    ClearScreen,
    /// The text would not fit in one message; the draft is unchanged.
    TooLong,
}

/// The draft, its cursor, the history, and a paste waiting for confirmation.
#[derive(Debug, Default)]
pub struct Draft {
    text: String,
    /// Byte offset into `text`, always on a character boundary.
    cursor: usize,
    /// Longest text a message can carry.
    limit: usize,
    history: Vec<String>,
    /// While browsing history: the entry shown, and the draft to come back to.
    browsing: Option<(usize, String)>,
    /// The last text cut (Ctrl-K, Ctrl-U, Ctrl-W, Ctrl-C), for Ctrl-Y.
    cut: String,
    /// A paste of many lines, waiting for y or n.
    paste: Option<String>,
}

impl Draft {
    /// An empty draft for messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Draft {
            limit,
            ..Draft::default()
        }
    }

    /// The text typed so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor's byte offset in [`Draft::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Takes the draft out (text and cursor), leaving it empty.
    pub fn take(&mut self) -> (String, usize) {
        self.browsing = None;
        let cursor = std::mem::take(&mut self.cursor);
        (std::mem::take(&mut self.text), cursor)
    }

    /// Puts back a draft [`Draft::take`] took, if nothing was typed since.
    pub fn restore(&mut self, text: String, cursor: usize) {
        if self.text.is_empty() && text.is_char_boundary(cursor) {
            self.text = text;
            self.cursor = cursor;
        }
    }

    /// A paste waiting for confirmation: its line count and size, for the question.
    pub fn pending_paste(&self) -> Option<(usize, usize)> {
        self.paste
            .as_ref()
            .map(|p| (p.split('\n').count(), p.len()))
    }

    /// Applies one key.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if self.paste.is_some() {
            return self.answer_paste(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Enter if alt => self.insert("\n"),
            KeyCode::Enter => {
                let text = std::mem::take(&mut self.text);
                self.cursor = 0;
                self.browsing = None;
                if !text.trim().is_empty() && self.history.last() != Some(&text) {
                    if self.history.len() == HISTORY {
                        self.history.remove(0);
                    }
                    self.history.push(text.clone());
                }
                Action::Submit(text)
            }
            KeyCode::Char('d') if ctrl => {
                if self.text.is_empty() {
                    Action::Eof
                } else {
                    self.delete_forward()
                }
            }
            KeyCode::Char('c') if ctrl => {
                if self.text.is_empty() {
                    Action::Interrupt
                } else {
                    self.cut = std::mem::take(&mut self.text);
                    self.cursor = 0;
                    self.browsing = None;
                    Action::Redraw
                }
            }
            KeyCode::Char('l') if ctrl => Action::ClearScreen,
            KeyCode::Char('a') if ctrl => self.move_to(self.line_start()),
            KeyCode::Char('e') if ctrl => self.move_to(self.line_end()),
            KeyCode::Char('b') if ctrl => self.move_to(self.prev_char()),
            KeyCode::Char('f') if ctrl => self.move_to(self.next_char()),
            KeyCode::Char('b') if alt => self.move_to(self.prev_word()),
            KeyCode::Char('f') if alt => self.move_to(self.next_word()),
            KeyCode::Char('u') if ctrl => self.cut_range(self.line_start(), self.cursor),
            KeyCode::Char('k') if ctrl => self.cut_range(self.cursor, self.line_end()),
            KeyCode::Char('w') if ctrl => self.cut_range(self.prev_word(), self.cursor),
            KeyCode::Backspace if alt || ctrl => self.cut_range(self.prev_word(), self.cursor),
            KeyCode::Char('y') if ctrl => {
                let cut = self.cut.clone();
                self.insert(&cut)
            }
            KeyCode::Char('p') if ctrl => self.up(),
            KeyCode::Char('n') if ctrl => self.down(),
            KeyCode::Char(_) if ctrl || alt => Action::None,
            KeyCode::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            KeyCode::Tab => self.insert("\t"),
            KeyCode::Backspace => {
                let start = self.prev_char();
                self.remove(start, self.cursor)
            }
            KeyCode::Delete => self.delete_forward(),
            KeyCode::Left if ctrl || alt => self.move_to(self.prev_word()),
            KeyCode::Right if ctrl || alt => self.move_to(self.next_word()),
            KeyCode::Left => self.move_to(self.prev_char()),
            KeyCode::Right => self.move_to(self.next_char()),
            KeyCode::Home => self.move_to(self.line_start()),
            KeyCode::End => self.move_to(self.line_end()),
            KeyCode::Up => self.up(),
            KeyCode::Down => self.down(),
            _ => Action::None,
        }
    }

    /// A bracketed paste: inserted at the cursor (line endings made `\n`), or held for a yes
    /// or no when it has more than [`PASTE_CONFIRM_LINES`] lines.
    pub fn paste(&mut self, text: &str) -> Action {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        // Text copied whole from a terminal or an editor ends with its line break: it is the
        // end of what was copied, not a blank last line to send.
        let text = text.trim_end_matches('\n').to_string();
        if self.text.len() + text.len() > self.limit {
            return Action::TooLong;
        }
        if text.split('\n').count() > PASTE_CONFIRM_LINES {
            self.paste = Some(text);
            return Action::Redraw;
        }
        self.insert(&text)
    }

    fn answer_paste(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('y' | 'Y') if !ctrl => {
                let paste = self.paste.take().unwrap_or_default();
                self.insert(&paste);
                Action::Redraw
            }
            KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                self.paste = None;
                Action::Redraw
            }
            KeyCode::Char('c') if ctrl => {
                self.paste = None;
                Action::Redraw
            }
            _ => Action::None,
        }
    }

    fn insert(&mut self, s: &str) -> Action {
        if s.is_empty() {
            return Action::None;
        }
        if self.text.len() + s.len() > self.limit {
            return Action::TooLong;
        }
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
        Action::Redraw
    }

    fn remove(&mut self, start: usize, end: usize) -> Action {
        if start >= end {
            return Action::None;
        }
        self.text.replace_range(start..end, "");
        self.cursor = start;
        Action::Redraw
    }

    fn cut_range(&mut self, start: usize, end: usize) -> Action {
        if start >= end {
            return Action::None;
        }
        self.cut = self.text[start..end].to_string();
        self.remove(start, end)
    }

    fn delete_forward(&mut self) -> Action {
        let end = self.next_char();
        self.remove(self.cursor, end)
    }

    fn move_to(&mut self, to: usize) -> Action {
        if to == self.cursor {
            return Action::None;
        }
        self.cursor = to;
        Action::Redraw
    }

    /// The start of the character before the cursor, as people see characters: a grapheme
    /// cluster (e + a combining accent, an emoji with its selector or modifiers) is one.
    fn prev_char(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    /// The end of the character after the cursor (see [`Draft::prev_char`]).
    fn next_char(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    /// The start of the word before the cursor (readline's backward-word).
    fn prev_word(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(|c: char| !c.is_alphanumeric());
        trimmed
            .rfind(|c: char| !c.is_alphanumeric())
            .map_or(0, |i| {
                i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
            })
    }

    /// The end of the word after the cursor (readline's forward-word).
    fn next_word(&self) -> usize {
        let after = &self.text[self.cursor..];
        let skipped = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .len();
        let rest = &after[skipped..];
        let word = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        self.cursor + skipped + word
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i)
    }

    /// Up: to the line above within a multi-line draft, else the previous history entry.
    fn up(&mut self) -> Action {
        let start = self.line_start();
        if start > 0 {
            let column = self.text[start..self.cursor].chars().count();
            let above = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
            return self.move_to(nth_char(&self.text, above, start - 1, column));
        }
        let index = match &self.browsing {
            Some((0, _)) => return Action::None,
            Some((i, _)) => i - 1,
            None if self.history.is_empty() => return Action::None,
            None => self.history.len() - 1,
        };
        let stash = match self.browsing.take() {
            Some((_, stash)) => stash,
            None => self.text.clone(),
        };
        self.browsing = Some((index, stash));
        self.text = self.history[index].clone();
        self.cursor = self.text.len();
        Action::Redraw
    }

    /// Down: to the line below within a multi-line draft, else the next history entry (and
    /// past the newest, back to the draft that was being typed).
    fn down(&mut self) -> Action {
        let end = self.line_end();
        if end < self.text.len() {
            let column = self.text[self.line_start()..self.cursor].chars().count();
            let below_end = self.text[end + 1..]
                .find('\n')
                .map_or(self.text.len(), |i| end + 1 + i);
            return self.move_to(nth_char(&self.text, end + 1, below_end, column));
        }
        let Some((index, stash)) = self.browsing.take() else {
            return Action::None;
        };
        if index + 1 < self.history.len() {
            self.text = self.history[index + 1].clone();
            self.browsing = Some((index + 1, stash));
        } else {
            self.text = stash;
        }
        self.cursor = self.text.len();
        Action::Redraw
    }
}

/// The offset of the `n`th character of `text[start..end]`, or `end` if it is shorter.
fn nth_char(text: &str, start: usize, end: usize, n: usize) -> usize {
    text[start..end]
        .char_indices()
        .nth(n)
        .map_or(end, |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(text: &str) -> Draft {
        let mut d = Draft::new(1000);
        for c in text.chars() {
            d.key(key(KeyCode::Char(c)));
        }
        d
    }

    #[test]
    fn ctrl_d_deletes_under_the_cursor_and_ends_only_an_empty_line() {
        let mut d = typed("abc");
        d.key(key(KeyCode::Home));
        assert_eq!(d.key(ctrl('d')), Action::Redraw);
        assert_eq!(d.text(), "bc");
        d.key(key(KeyCode::End));
        assert_eq!(d.key(ctrl('d')), Action::None, "nothing under the cursor");
        assert_eq!(d.text(), "bc");
        d.key(ctrl('u'));
        assert_eq!(d.key(ctrl('d')), Action::Eof);
    }

    #[test]
    fn ctrl_c_clears_then_interrupts_and_the_cleared_line_can_be_yanked() {
        let mut d = typed("half a thought");
        assert_eq!(d.key(ctrl('c')), Action::Redraw);
        assert_eq!(d.text(), "");
        assert_eq!(d.key(ctrl('y')), Action::Redraw);
        assert_eq!(d.text(), "half a thought");
        d.key(ctrl('c'));
        assert_eq!(d.key(ctrl('c')), Action::Interrupt);
    }

    #[test]
    fn enter_submits_and_alt_enter_inserts_a_newline() {
        let mut d = typed("one");
        assert_eq!(
            d.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)),
            Action::Redraw
        );
        for c in "two".chars() {
            d.key(key(KeyCode::Char(c)));
        }
        assert_eq!(
            d.key(key(KeyCode::Enter)),
            Action::Submit("one\ntwo".into())
        );
        assert_eq!((d.text(), d.cursor()), ("", 0));
    }

    #[test]
    fn editing_keys_work_on_multibyte_text() {
        let mut d = typed("日本語 text");
        d.key(ctrl('a'));
        d.key(key(KeyCode::Right));
        assert_eq!(d.cursor(), "日".len());
        d.key(key(KeyCode::Delete));
        assert_eq!(d.text(), "日語 text");
        d.key(key(KeyCode::Backspace));
        assert_eq!(d.text(), "語 text");
        d.key(ctrl('e'));
        d.key(ctrl('w'));
        assert_eq!(d.text(), "語 ");
        d.key(KeyEvent::new(KeyCode::Char('b'), KeyModifiers::ALT));
        assert_eq!(d.cursor(), 0);
        d.key(KeyEvent::new(KeyCode::Char('f'), KeyModifiers::ALT));
        assert_eq!(d.cursor(), "語".len());
        d.key(ctrl('k'));
        assert_eq!(d.text(), "語");
    }

    #[test]
    fn cursor_keys_and_backspace_take_whole_characters_as_people_see_them() {
        // e + combining acute, and a heart with its emoji selector.
        let mut d = Draft::new(100);
        d.paste("cafe\u{301} a\u{2764}\u{fe0f}b");
        // A trailing line break is the end of what was copied, not a blank last line.
        let mut copied = Draft::new(1000);
        copied.paste("two\nlines\n");
        assert_eq!(copied.text(), "two\nlines");
        d.key(key(KeyCode::Left)); // before b
        d.key(key(KeyCode::Left)); // before the heart, not inside it
        d.key(key(KeyCode::Char('Z')));
        assert_eq!(d.text(), "cafe\u{301} aZ\u{2764}\u{fe0f}b");
        d.key(ctrl('a'));
        for _ in 0..4 {
            d.key(key(KeyCode::Right));
        }
        assert_eq!(
            d.cursor(),
            "cafe\u{301}".len(),
            "past the accented e at once"
        );
        d.key(key(KeyCode::Backspace));
        assert_eq!(d.text(), "caf aZ\u{2764}\u{fe0f}b");
    }

    #[test]
    fn a_draft_can_be_set_aside_and_given_back() {
        let mut d = typed("sure");
        let saved = d.take();
        assert_eq!(d.text(), "");
        d.restore(saved.0.clone(), saved.1);
        assert_eq!((d.text(), d.cursor()), ("sure", 4));
        let mut d = typed("new");
        d.restore(saved.0, saved.1);
        assert_eq!(d.text(), "new", "never over something typed since");
    }

    #[test]
    fn history_browses_and_returns_to_the_draft() {
        let mut d = typed("first");
        d.key(key(KeyCode::Enter));
        for c in "second".chars() {
            d.key(key(KeyCode::Char(c)));
        }
        d.key(key(KeyCode::Enter));
        for c in "draft".chars() {
            d.key(key(KeyCode::Char(c)));
        }
        d.key(key(KeyCode::Up));
        assert_eq!(d.text(), "second");
        d.key(key(KeyCode::Up));
        assert_eq!(d.text(), "first");
        assert_eq!(d.key(key(KeyCode::Up)), Action::None);
        d.key(key(KeyCode::Down));
        d.key(key(KeyCode::Down));
        assert_eq!(d.text(), "draft");
    }

    #[test]
    fn up_and_down_move_between_the_lines_of_a_draft() {
        let mut d = Draft::new(100);
        d.paste("abc\nde");
        assert_eq!(d.cursor(), 6);
        d.key(key(KeyCode::Up));
        assert_eq!(d.cursor(), 2, "same column on the line above");
        d.key(key(KeyCode::Down));
        assert_eq!(d.cursor(), 6);
    }

    #[test]
    fn a_long_paste_waits_for_yes_or_no() {
        let mut d = Draft::new(1000);
        let block = format!("{}l", "l\n".repeat(PASTE_CONFIRM_LINES));
        assert_eq!(d.paste(&block), Action::Redraw);
        assert_eq!(
            d.pending_paste(),
            Some((PASTE_CONFIRM_LINES + 1, block.len()))
        );
        assert_eq!(d.text(), "", "not inserted yet");
        assert_eq!(
            d.key(key(KeyCode::Enter)),
            Action::None,
            "keys wait for the answer"
        );
        d.key(key(KeyCode::Char('y')));
        assert_eq!(d.text(), block);
        assert_eq!(d.pending_paste(), None);

        let mut d = Draft::new(1000);
        d.paste(&block);
        d.key(key(KeyCode::Char('n')));
        assert_eq!((d.text(), d.pending_paste()), ("", None));
    }

    #[test]
    fn pasted_line_endings_become_newlines_and_short_pastes_go_straight_in() {
        let mut d = Draft::new(100);
        assert_eq!(d.paste("a\r\nb\rc"), Action::Redraw);
        assert_eq!(d.text(), "a\nb\nc");
    }

    #[test]
    fn nothing_beyond_the_limit_is_taken() {
        let mut d = Draft::new(4);
        assert_eq!(d.paste("abcde"), Action::TooLong);
        assert_eq!(d.paste("abcd"), Action::Redraw);
        assert_eq!(d.key(key(KeyCode::Char('x'))), Action::TooLong);
        assert_eq!(d.text(), "abcd");
    }
}
