//! Which names from a peer may become files here, and the names given instead of overwriting.
//! Pure.
//!
//! A peer's path is untrusted: it could climb out of the download folder (`..`, `/etc/…`),
//! name a device (`NUL`, `COM1`), hide in control or bidi characters, or be long enough to
//! fail halfway. Such a path is refused whole, with the reason, rather than "fixed": a quietly
//! changed name is one the user did not agree to.

/// The most folders deep an offered path may go.
pub const MAX_DEPTH: usize = 16;

/// The longest name of one component, in bytes (what most file systems allow).
pub const MAX_COMPONENT: usize = 255;

/// Splits an offered path into components that are safe to create inside the download
/// folder, or says why it is not.
pub fn components(path: &str) -> Result<Vec<&str>, &'static str> {
    if path.starts_with('/') {
        return Err("it is an absolute path");
    }
    // Partial files live under this prefix at the top of the folder.
    if path.starts_with(".schat-") {
        return Err("it is named like one of schat's partial files");
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return Err("it is more than 16 folders deep");
    }
    for part in &parts {
        check(part)?;
    }
    Ok(parts)
}

/// One component of a path.
fn check(name: &str) -> Result<(), &'static str> {
    match name {
        "" => return Err("it has an empty name (or a doubled or final '/')"),
        "." | ".." => return Err("it climbs out of its folder ('.' or '..')"),
        _ => {}
    }
    if name.len() > MAX_COMPONENT {
        return Err("a name in it is longer than 255 bytes");
    }
    if name.chars().any(forbidden) {
        return Err("it contains control characters, a backslash or a ':'");
    }
    // Windows treats these as devices, with any extension; refused everywhere, so a folder
    // sent on never turns into one.
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let device = matches!(
        stem.to_ascii_uppercase().as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || matches!(stem.as_bytes(), [a, b, c, d]
        if (matches!([a.to_ascii_uppercase(), b.to_ascii_uppercase(), c.to_ascii_uppercase()],
            [b'C', b'O', b'M'] | [b'L', b'P', b'T']))
            && d.is_ascii_digit());
    if device {
        return Err("it names a device (CON, NUL, COM1, …)");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("a name in it ends with a dot or a space");
    }
    Ok(())
}

/// Characters no offered name may hold: controls (C0, DEL, C1), bidi and line controls that
/// would make a name read as another on screen, and separators of other systems.
fn forbidden(c: char) -> bool {
    c.is_control()
        || crate::sanitize::is_invisible(c)
        || matches!(
            c,
            '\\' | ':'
                | '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{feff}'
        )
}

/// `name` with ` (n)` before its extension: `report.pdf` → `report (1).pdf`, `a.tar.gz` →
/// `a (1).tar.gz`, `.bashrc` → `.bashrc (1)`. `n == 0` is the name itself.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    let lower = name.to_ascii_lowercase();
    let double = [".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst"]
        .iter()
        .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len());
    let split = match double {
        Some(ext) => Some(name.len() - ext.len()),
        // A leading dot is part of the name, not an extension.
        None => name.rfind('.').filter(|&i| i > 0),
    };
    match split {
        Some(i) => format!("{} ({n}){}", &name[..i], &name[i..]),
        None => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths_split_into_components() {
        assert_eq!(components("a.txt"), Ok(vec!["a.txt"]));
        assert_eq!(
            components("photos/2024/é ✓.jpg"),
            Ok(vec!["photos", "2024", "é ✓.jpg"])
        );
        assert_eq!(components(".hidden"), Ok(vec![".hidden"]));
    }

    #[test]
    fn path_tricks_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "",
            "..",
            "a\\..\\b",
            "C:x",
            "bell\x07",
            "line\nbreak",
            "esc\x1b[2J",
            "del\x7f",
            "c1\u{9b}",
            "rtl\u{202e}gpj.exe",
            "NUL",
            "nul.txt",
            "COM1",
            "lpt9.log",
            "con .txt",
            "trailing.",
            "trailing ",
        ] {
            assert!(components(bad).is_err(), "{bad:?}");
        }
        assert!(components(&"a".repeat(256)).is_err());
        assert!(components(&["a"; 17].join("/")).is_err());
        assert!(components(&["a"; 16].join("/")).is_ok());
        assert!(components("COM10").is_ok() && components("console").is_ok());
        // Multi-byte characters where a device name's letters would be: not a device, and no
        // panic (a byte slice once cut one in half).
        for fine in ["Noë", "abé", "éé", "COMé", "ñul.txt"] {
            assert!(components(fine).is_ok(), "{fine:?}");
        }
        for hidden in ["a\u{2060}b", "soft\u{ad}hyphen", "tag\u{e0041}"] {
            assert!(components(hidden).is_err(), "{hidden:?}");
        }
        assert!(components(".schat-0123.part").is_err());
    }

    #[test]
    fn numbering_goes_before_the_extension() {
        assert_eq!(numbered("report.pdf", 0), "report.pdf");
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("a.tar.gz", 2), "a (2).tar.gz");
        assert_eq!(numbered("README", 3), "README (3)");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
        assert_eq!(numbered(".tar.gz", 1), ".tar (1).gz");
    }
}
