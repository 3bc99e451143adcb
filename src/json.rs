//! Just enough JSON output for `--json` events: flat objects of strings, booleans and nulls,
//! with every string escaped so that printing the line can never drive a terminal — control
//! characters, DEL, C1 controls, bidi controls and line separators all become `\uXXXX`.

use std::fmt::Write;

/// A JSON string literal for `text`, quotes included.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds one JSON object on one line.
#[derive(Debug, Default)]
pub struct Object {
    body: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object::default()
    }

    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&string(key));
        self.body.push(':');
    }

    /// Adds a string field.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.body.push_str(&string(value));
        self
    }

    /// Adds a string field, or `null`.
    pub fn opt_str(mut self, key: &str, value: Option<&str>) -> Self {
        self.key(key);
        match value {
            Some(v) => self.body.push_str(&string(v)),
            None => self.body.push_str("null"),
        }
        self
    }

    /// Adds a boolean field.
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.body.push_str(if value { "true" } else { "false" });
        self
    }

    /// Adds a field whose value is already JSON (e.g. a nested object).
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.body.push_str(json);
        self
    }

    /// The finished object.
    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_json_and_for_terminals() {
        assert_eq!(string("plain"), "\"plain\"");
        assert_eq!(string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(string("\x1b[2J\n\t\0"), "\"\\u001b[2J\\n\\t\\u0000\"");
        assert_eq!(string("x\u{202e}y\u{9b}"), "\"x\\u202ey\\u009b\"");
        assert_eq!(string("héllo ✓"), "\"héllo ✓\"");
    }

    #[test]
    fn objects_nest() {
        let inner = Object::new().str("k", "v").opt_str("n", None).finish();
        let outer = Object::new()
            .str("event", "x")
            .bool("b", true)
            .raw("inner", &inner)
            .finish();
        assert_eq!(
            outer,
            r#"{"event":"x","b":true,"inner":{"k":"v","n":null}}"#
        );
    }
}
