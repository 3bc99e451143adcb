//! The real `schat` on a pseudo-terminal, its output fed to a terminal emulator model
//! (`vt100`), so tests assert on what the screen *shows*, not on bytes.

use super::Home;
use expectrl::Session;
use expectrl::process::unix::WaitStatus;
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any single wait on the screen may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The real `schat` on a pseudo-terminal of `rows` × `cols`, with a terminal model of that size.
/// Called with every chunk of terminal output.
pub type Tap = Box<dyn FnMut(&[u8])>;

pub struct Term {
    pub session: expectrl::session::OsSession,
    pub parser: vt100::Parser,
    pub output: mpsc::Receiver<Vec<u8>>,
    pub keys: mpsc::Sender<Vec<u8>>,
    pub cols: u16,
    /// Whether the program's side of the terminal has closed.
    pub closed: bool,
    /// Total bytes the program wrote to the terminal.
    pub bytes: usize,
    /// Everything written (while `recording`).
    pub record: Vec<u8>,
    pub recording: bool,
    /// Called with every chunk of output (for scanning the whole stream).
    pub tap: Option<Tap>,
}

impl Term {
    pub fn spawn(home: &Home, args: &[&str], rows: u16, cols: u16, scrollback: usize) -> Term {
        let mut cmd = std::process::Command::new(super::bin());
        cmd.arg("--home").arg(home.path()).args(args);
        Term::spawn_command(cmd, rows, cols, scrollback)
    }

    /// As [`Term::spawn`], for any command (a shell that redirects some of schat's stdio).
    pub fn spawn_command(
        cmd: std::process::Command,
        rows: u16,
        cols: u16,
        scrollback: usize,
    ) -> Term {
        // The terminal has its size before the program prints anything: a shell sets it, then
        // becomes the program. (Setting it from here after the spawn raced the program's first
        // lines on a busy machine: they were laid out for another width.)
        let mut sized = std::process::Command::new("sh");
        sized
            .arg("-c")
            .arg(format!(
                "stty rows {rows} cols {cols} && exec \"$0\" \"$@\""
            ))
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env("NO_COLOR", "1");
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => sized.env(key, value),
                None => sized.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            sized.current_dir(dir);
        }
        let mut session = Session::spawn(sized).unwrap();
        session
            .get_process_mut()
            .set_window_size(cols, rows)
            .unwrap();
        // A reader thread drains the terminal all the time (a terminal nobody reads blocks
        // the program), and a writer thread types, so typing never blocks the test.
        let mut reading = session.get_process().get_raw_handle().unwrap();
        let mut typing = session.get_process().get_raw_handle().unwrap();
        let (out_tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reading.read(&mut buf) {
                    Ok(0) | Err(_) => return, // EIO once the program has exited
                    Ok(n) => {
                        if out_tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let (keys, keys_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for bytes in keys_rx {
                if typing.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        Term {
            session,
            parser: vt100::Parser::new(rows, cols, scrollback),
            output,
            keys,
            cols,
            closed: false,
            bytes: 0,
            record: Vec::new(),
            recording: false,
            tap: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.session.get_process().pid().as_raw() as u32
    }

    /// Types `text` and presses Enter (`\r` at a terminal in raw mode).
    pub fn type_line(&self, text: &str) {
        self.keys.send(format!("{text}\r").into_bytes()).unwrap();
    }

    /// Presses keys: raw bytes as a terminal sends them (`\x03` is Ctrl-C).
    pub fn press(&self, keys: &str) {
        self.keys.send(keys.as_bytes().to_vec()).unwrap();
    }

    /// Pastes `text` the way a terminal with bracketed paste does.
    pub fn paste(&self, text: &str) {
        self.press(&format!("\x1b[200~{text}\x1b[201~"));
    }

    /// Resizes the terminal (the program gets SIGWINCH) and the model with it.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        self.session
            .get_process_mut()
            .set_window_size(cols, rows)
            .unwrap();
        self.parser.screen_mut().set_size(rows, cols);
        self.cols = cols;
    }

    /// Whether the program is still running.
    pub fn alive(&self) -> bool {
        matches!(
            self.session.get_process().status(),
            Ok(WaitStatus::StillAlive)
        )
    }

    /// Lets output settle: feeds whatever comes within `ms` milliseconds.
    pub fn settle(&mut self, ms: u64) {
        self.pump(Duration::from_millis(ms));
    }

    /// The screen's rows, right-trimmed.
    pub fn rows(&self) -> Vec<String> {
        let screen = self.parser.screen();
        screen
            .rows(0, self.cols)
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len();
        self.parser.process(chunk);
        if self.recording {
            self.record.extend_from_slice(chunk);
        }
        if let Some(tap) = self.tap.as_mut() {
            tap(chunk);
        }
    }

    /// Feeds whatever the program writes within `wait` to the terminal model.
    pub fn pump(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.feed(&chunk),
                Err(mpsc::RecvTimeoutError::Timeout) => return,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
            // Take everything already waiting before looking at the clock again.
            while Instant::now() < deadline
                && let Ok(chunk) = self.output.try_recv()
            {
                self.feed(&chunk);
            }
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    /// Feeds output until the screen satisfies `done`, or fails after [`WAIT`].
    pub fn until(&mut self, what: &str, done: impl Fn(&vt100::Screen) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self.parser.screen()) {
            if Instant::now() > deadline || self.closed {
                panic!(
                    "the screen never showed {what}; it shows:\n{}",
                    self.all_rows().join("\n")
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }

    /// Every row: the scrollback (oldest first), then the screen.
    pub fn all_rows(&mut self) -> Vec<String> {
        let screen = self.parser.screen_mut();
        let height = usize::from(screen.size().0);
        let cols = self.cols;
        screen.set_scrollback(usize::MAX);
        let kept = screen.scrollback(); // rows of scrollback held
        let mut rows = vec![String::new(); kept + height];
        let mut offset = kept;
        loop {
            screen.set_scrollback(offset);
            for (i, row) in screen.rows(0, cols).enumerate() {
                rows[kept - offset + i] = row;
            }
            if offset == 0 {
                break;
            }
            offset = offset.saturating_sub(height);
        }
        screen.set_scrollback(0);
        rows
    }

    /// A listener's port, from its `listening on 127.0.0.1:PORT` line (waited for).
    pub fn listening_port(&mut self) -> u16 {
        const LINE: &str = "listening on 127.0.0.1:";
        self.until("the address", |s| shows(s, LINE));
        let text = self.parser.screen().contents();
        let at = text.find(LINE).unwrap() + LINE.len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }

    /// Waits (draining the terminal) for the program to exit; its exit code.
    pub fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.session.get_process().status() {
                Ok(WaitStatus::StillAlive) => {}
                Ok(WaitStatus::Exited(_, code)) => return Some(code),
                Ok(_) | Err(_) => return None,
            }
            assert!(Instant::now() < deadline, "schat did not exit in time");
            self.pump(Duration::from_millis(20));
        }
    }
}

/// The editor's prompt row (the lowest row starting with `>`), trimmed.
pub fn prompt(screen: &vt100::Screen) -> Option<String> {
    let cols = screen.size().1;
    screen
        .rows(0, cols)
        .filter(|r| r.starts_with('>'))
        .last()
        .map(|r| r.trim_end().to_string())
}

pub fn shows(screen: &vt100::Screen, text: &str) -> bool {
    screen.contents().contains(text)
}

pub fn digits(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

/// `HH:MM` at the very start of a row.
pub fn stamped(row: &str) -> bool {
    let b = row.as_bytes();
    b.len() >= 6 && digits(&b[..2]) && b[2] == b':' && digits(&b[3..5]) && b[5] == b' '
}

/// A row that begins the way only schat's own status and warning rows may begin.
pub fn looks_like_status(row: &str) -> bool {
    row.starts_with("--")
        || row.starts_with("!!")
        || (stamped(row) && (row[6..].starts_with("--") || row[6..].starts_with("!!")))
}

/// The first row of a chat message: `HH:MM <name> ...`.
pub fn message_head(row: &str) -> bool {
    stamped(row) && row[6..].starts_with('<')
}
