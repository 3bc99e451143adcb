//! What a typed line means: a chat message or a `/command`. Pure parsing.

/// One typed line, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// Send this text.
    Say(&'a str),
    /// `quit`, `/quit`: leave.
    Quit,
    /// `/verify [NAME]`: show the safety number (with NAME, in a room).
    Verify(Option<&'a str>),
    /// `/whois [NAME]`: who the peer is and how it is verified.
    Whois(Option<&'a str>),
    /// `/msg NAME TEXT`: to one room member only.
    Msg(&'a str, &'a str),
    /// `/name MEMBER PETNAME`: the host names a member in known_peers.
    Name(&'a str, &'a str),
    /// `/who`: the room's members.
    Who,
    /// `/nick NAME`: announce a display name (`/nick` alone: withdraw it).
    Nick(&'a str),
    /// `/me ACTION`: an action ("* alice waves").
    Me(&'a str),
    /// `/clear`: clear the screen.
    Clear,
    /// `/help`: list the commands.
    Help,
    /// A file command (`/send`, `/accept`…): the files' desk handles them all.
    File(FileCommand<'a>),
    /// A `/word` we do not know (not sent: probably a typo).
    Unknown(&'a str),
}

/// What is typed about files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCommand<'a> {
    /// `/send PATH…`: offer files or folders (quotes and `\ ` keep spaces; `~/` is home).
    Send(Vec<String>),
    /// `/sendto NAME PATH…`: offered to one member of the room.
    SendTo(&'a str, Vec<String>),
    /// `/accept [N]`: save offer N, or every offer waiting.
    Accept(Option<u32>),
    /// `/reject [N]`: decline offer N, or every offer waiting.
    Reject(Option<u32>),
    /// `/cancel N`: stop transfer N, either way.
    Cancel(u32),
    /// `/transfers`: list the file transfers.
    Transfers,
}

/// The help text for the commands.
pub const HELP: &[&str] = &[
    "commands:",
    "  /quit             leave (also: quit; Ctrl-D or Ctrl-C on an empty line)",
    "  /verify [NAME]    show the safety number, to read aloud",
    "  /whois [NAME]     who a peer is: fingerprint, address, how verified",
    "  /me ACTION        an action: * you wave",
    "  /clear            clear the screen",
    "  /help             this list",
    "  //text            send a line that starts with /",
    "  /send PATH...     offer files or folders (quote names with spaces; a room: all)",
    "  /accept [N]       save offer N (without N: every offer waiting)",
    "  /reject [N]       decline offer N (without N: every offer waiting)",
    "  /transfers        list file transfers, both ways",
    "  /cancel N         stop transfer N (the peer hears why)",
    "  /who              who is in the room (a member asks the host)",
    "  /nick [NAME]      your display name, shown beside your key (none: no name)",
    "in a room:",
    "  /msg NAME TEXT    to one member only (NAME: as /who shows it, or its 12 digits)",
    "  /sendto NAME ...  offer files to one member",
    "  /name NAME PET    (the host) remember a member as PET in known_peers",
];

/// A member named as the screen shows it, then the rest: one word, or a label with its key in
/// brackets (`Bob? [0f87acac33f8] hello`: the name is `Bob? [0f87acac33f8]`).
fn target(arg: &str) -> Option<(&str, &str)> {
    let (first, rest) = arg.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('[')
        && let Some(end) = inner.find(']')
        && inner[..end].chars().all(|c| c.is_ascii_hexdigit())
    {
        // `first [digits]` is one name: the label as shown.
        let name_len = arg.len() - rest.len() + 1 + end + 1;
        let (name, text) = arg.split_at(name_len);
        return Some((name, text.trim_start()));
    }
    Some((first, rest))
}

/// A transfer's number, as `3` or `#3`.
fn number(arg: &str) -> Option<u32> {
    arg.strip_prefix('#').unwrap_or(arg).parse().ok()
}

/// Words as a shell splits them, simply: blanks separate, `'…'` and `"…"` keep them, a
/// backslash keeps the next character; `~/` at the start is the home folder. `None` when a
/// quote is left open.
fn words(arg: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let (mut word, mut started, mut quote) = (String::new(), false, None);
    let mut chars = arg.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\\') => {
                word.push(chars.next()?);
                started = true;
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if started {
        words.push(word);
    }
    let home = dirs::home_dir();
    Some(
        words
            .into_iter()
            .map(|w| match (w.strip_prefix("~/"), &home) {
                (Some(rest), Some(home)) => home.join(rest).display().to_string(),
                _ => w,
            })
            .collect(),
    )
}

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
    // Split at the first whitespace character, never at a byte count taken from another part of
    // the string (that once sliced inside a multi-byte character: "/\té" panicked).
    let rest = rest.trim_start();
    let (word, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim();
    let optional = (!arg.is_empty()).then_some(arg);
    match word {
        "quit" | "exit" => Command::Quit,
        "verify" => Command::Verify(optional),
        "whois" => Command::Whois(optional),
        "who" => Command::Who,
        "msg" => match target(arg) {
            Some((name, text)) if !text.trim().is_empty() => Command::Msg(name, text.trim_start()),
            _ => Command::Unknown("msg"),
        },
        "name" => match target(arg) {
            Some((member, petname)) if !petname.trim().is_empty() => {
                Command::Name(member, petname.trim())
            }
            _ => Command::Unknown("name"),
        },
        "clear" => Command::Clear,
        "nick" => Command::Nick(arg),
        "me" => match optional {
            Some(action) => Command::Me(action),
            None => Command::Unknown("me"),
        },
        "help" | "?" => Command::Help,
        "send" => match words(arg) {
            Some(paths) if !paths.is_empty() => Command::File(FileCommand::Send(paths)),
            _ => Command::Unknown("send"),
        },
        "sendto" => match target(arg).map(|(name, rest)| (name, words(rest))) {
            Some((name, Some(paths))) if !paths.is_empty() => {
                Command::File(FileCommand::SendTo(name, paths))
            }
            _ => Command::Unknown("sendto"),
        },
        "accept" | "reject" => match (optional.map(number), word) {
            (Some(None), _) => Command::Unknown(word),
            (n, "accept") => Command::File(FileCommand::Accept(n.flatten())),
            (n, _) => Command::File(FileCommand::Reject(n.flatten())),
        },
        "cancel" => match optional.and_then(number) {
            Some(n) => Command::File(FileCommand::Cancel(n)),
            None => Command::Unknown("cancel"),
        },
        "transfers" => Command::File(FileCommand::Transfers),
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
        assert_eq!(parse("/verify"), Command::Verify(None));
        assert_eq!(parse("/verify bob"), Command::Verify(Some("bob")));
        assert_eq!(
            parse("/msg bob hello there"),
            Command::Msg("bob", "hello there")
        );
        assert_eq!(parse("/msg bob"), Command::Unknown("msg"));
        assert_eq!(
            parse("/msg Bob? [0f87acac33f8] psst"),
            Command::Msg("Bob? [0f87acac33f8]", "psst")
        );
        assert_eq!(parse("/msg Bob [x] hi"), Command::Msg("Bob", "[x] hi"));
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/name 3f2a bob"), Command::Name("3f2a", "bob"));
        assert_eq!(parse("/name bob"), Command::Unknown("name"));
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("//etc/passwd"), Command::Say("/etc/passwd"));
        assert_eq!(parse("/frobnicate x"), Command::Unknown("frobnicate"));
        assert_eq!(parse("/"), Command::Unknown(""));
        assert_eq!(parse("/me waves"), Command::Me("waves"));
        assert_eq!(parse("/me"), Command::Unknown("me"));
        assert_eq!(parse("/whois"), Command::Whois(None));
        assert_eq!(parse("/clear"), Command::Clear);
        assert_eq!(parse("/nick Ana María"), Command::Nick("Ana María"));
        assert_eq!(parse("/nick"), Command::Nick(""));
        assert_eq!(
            parse(r#"/send a.txt "my file.pdf" b\ c 'd"e'"#),
            Command::File(FileCommand::Send(vec![
                "a.txt".into(),
                "my file.pdf".into(),
                "b c".into(),
                "d\"e".into()
            ]))
        );
        assert_eq!(parse("/send"), Command::Unknown("send"));
        assert_eq!(parse("/send 'open"), Command::Unknown("send"));
        assert_eq!(parse("/accept"), Command::File(FileCommand::Accept(None)));
        assert_eq!(
            parse("/accept #3"),
            Command::File(FileCommand::Accept(Some(3)))
        );
        assert_eq!(
            parse("/reject 2"),
            Command::File(FileCommand::Reject(Some(2)))
        );
        assert_eq!(parse("/reject x"), Command::Unknown("reject"));
        assert_eq!(parse("/cancel 4"), Command::File(FileCommand::Cancel(4)));
        assert_eq!(parse("/cancel"), Command::Unknown("cancel"));
        assert_eq!(parse("/transfers"), Command::File(FileCommand::Transfers));
        assert_eq!(
            parse("/sendto bob a.txt 'b c'"),
            Command::File(FileCommand::SendTo(
                "bob",
                vec!["a.txt".into(), "b c".into()]
            ))
        );
        assert_eq!(parse("/sendto bob"), Command::Unknown("sendto"));
    }

    /// Whitespace before a multi-byte character once made `parse` slice inside that character.
    #[test]
    fn whitespace_then_multibyte_characters_do_not_panic() {
        assert_eq!(parse("/\té"), Command::Unknown("é"));
        assert_eq!(parse("/ é"), Command::Unknown("é"));
        assert_eq!(parse("/ é x"), Command::Unknown("é"));
        assert_eq!(parse("/\u{3000}é"), Command::Unknown("é"));
        assert_eq!(parse("/msg\u{3000}bob hi"), Command::Msg("bob", "hi"));
        assert_eq!(parse("/msg bob\u{3000}héllo"), Command::Msg("bob", "héllo"));
        assert_eq!(parse("/verify\u{3000}bøb"), Command::Verify(Some("bøb")));
        assert_eq!(parse("/ verify bob"), Command::Verify(Some("bob")));
        assert_eq!(parse("/me\u{3000}waves"), Command::Me("waves"));
        assert_eq!(parse("/ "), Command::Unknown(""));
    }
}
