//! What a typed line means: a chat message or a `/command`. Pure parsing.

/// One typed line, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// Send this text.
    Say(&'a str),
    /// `quit`, `/quit`: leave.
    Quit,
    /// `/verify`: show the safety number.
    Verify,
    /// `/help`: list the commands.
    Help,
    /// A `/word` we do not know (not sent: probably a typo).
    Unknown(&'a str),
}

/// The help text for the commands.
pub const HELP: &str = "\
commands: /quit (or quit, Ctrl-D, Ctrl-C) leave · /verify show the safety number · /help this \
text · //text sends a line that starts with /";

/// Interprets a line typed by the user.
pub fn parse(line: &str) -> Command<'_> {
    if line == "quit" {
        return Command::Quit;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line);
    };
    if rest.starts_with('/') {
        return Command::Say(rest);
    }
    let word = rest.split_whitespace().next().unwrap_or("");
    match word {
        "quit" | "exit" => Command::Quit,
        "verify" => Command::Verify,
        "help" | "?" => Command::Help,
        _ => Command::Unknown(word),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_commands() {
        assert_eq!(parse("hello"), Command::Say("hello"));
        assert_eq!(parse(""), Command::Say(""));
        assert_eq!(parse("quit"), Command::Quit);
        assert_eq!(parse("quit now"), Command::Say("quit now"));
        assert_eq!(parse("/quit"), Command::Quit);
        assert_eq!(parse("/verify"), Command::Verify);
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("//etc/passwd"), Command::Say("/etc/passwd"));
        assert_eq!(parse("/frobnicate x"), Command::Unknown("frobnicate"));
        assert_eq!(parse("/"), Command::Unknown(""));
    }
}
