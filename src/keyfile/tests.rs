use super::seal::*;
use super::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

/// An unprotected identity from keyfile text.
fn parse(path: &Path, bytes: &[u8]) -> Result<Identity, KeyfileError> {
    Keyfile::parse(path, bytes)?.unlock(None)
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/identity");
    let id = Identity::generate().unwrap();
    write(&path, &id, false, Protection::None).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(path.parent().unwrap()), 0o700);
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.public(), id.public());
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("{PUBLIC_TAG}{}", id.public())));
    // No temp file is left behind.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    let first = Identity::generate().unwrap();
    write(&path, &first, false, Protection::None).unwrap();
    let second = Identity::generate().unwrap();
    assert!(matches!(
        write(&path, &second, false, Protection::None),
        Err(KeyfileError::Exists { .. })
    ));
    assert_eq!(load(&path).unwrap().public(), first.public());
    write(&path, &second, true, Protection::None).unwrap();
    assert_eq!(load(&path).unwrap().public(), second.public());
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn group_or_world_readable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    write(
        &path,
        &Identity::generate().unwrap(),
        false,
        Protection::None,
    )
    .unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, KeyfileError::TooOpen { mode: m, .. } if m == mode));
        let msg = err.to_string();
        assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    load(&path).unwrap();
}

#[test]
fn missing_file_and_directory_have_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, KeyfileError::NotFound { .. }));
    assert!(err.to_string().contains("schat keygen"));
    assert!(matches!(
        load(dir.path()).unwrap_err(),
        KeyfileError::NotAFile { .. }
    ));
}

fn parse_err(text: &str) -> (Option<usize>, String) {
    match parse(Path::new("k"), text.as_bytes()) {
        Err(KeyfileError::Malformed { line, reason, .. }) => (line, reason.to_string()),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn corrupt_files_are_reported_by_line_without_contents() {
    let id = Identity::generate().unwrap();
    let good = render(&id);
    let secret_hex = hex::encode(id.secret().expose());

    // Truncated: the secret line lost its last digits.
    let truncated = &good[..good.len() - 5];
    let (line, _) = parse_err(truncated);
    assert_eq!(line, Some(3));
    let msg = parse(Path::new("k"), truncated.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(!msg.contains(&secret_hex[..10]), "{msg}");

    // Cut before the secret line.
    let (line, reason) = parse_err(good.lines().take(2).collect::<Vec<_>>().join("\n").as_str());
    assert_eq!((line, reason.as_str()), (None, "no secret key line"));

    // A stray line.
    let (line, _) = parse_err(&format!("{}garbage here\n", good.as_str()));
    assert_eq!(line, Some(4));

    // Public key comment that does not match.
    let other = Identity::generate().unwrap();
    let swapped = good.replace(&id.public().to_hex(), &other.public().to_hex());
    let (line, reason) = parse_err(&swapped);
    assert_eq!(line, Some(2));
    assert!(reason.contains("does not match"));

    // Binary junk.
    let err = parse(Path::new("k"), &[b'#', b'\n', 0xff, 0xfe]).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");

    // Two secrets.
    let (line, _) = parse_err(&format!(
        "{}{}",
        good.as_str(),
        good.lines().nth(2).unwrap()
    ));
    assert_eq!(line, Some(4));
}

#[test]
fn public_comment_is_optional_and_crlf_is_accepted() {
    let id = Identity::generate().unwrap();
    let text = format!("{SECRET_TAG}{}\r\n", hex::encode(id.secret().expose()));
    assert_eq!(
        parse(Path::new("k"), text.as_bytes()).unwrap().public(),
        id.public()
    );
}

fn quick_kdf() -> KdfParams {
    KdfParams {
        memory_kib: KdfParams::MIN_MEMORY_KIB,
        passes: 1,
        lanes: 1,
    }
}

fn pass(text: &str) -> Passphrase {
    Passphrase::new(Zeroizing::new(text.to_string()))
}

#[test]
fn sealed_keyfile_round_trips_and_hides_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    let id = Identity::generate().unwrap();
    let secret = pass("correct horse battery staple");
    write(
        &path,
        &id,
        false,
        Protection::Passphrase(&secret, quick_kdf()),
    )
    .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&hex::encode(id.secret().expose())));
    assert!(text.contains(SEALED_TAG));
    let keyfile = Keyfile::read(&path).unwrap();
    assert!(keyfile.is_protected());
    // The public key needs no passphrase.
    assert_eq!(keyfile.public_key(), *id.public());
    assert!(matches!(
        keyfile.unlock(None),
        Err(KeyfileError::NeedsPassphrase { .. })
    ));
    assert!(matches!(
        keyfile.unlock(Some(&pass("wrong"))),
        Err(KeyfileError::WrongPassphrase { .. })
    ));
    let unlocked = keyfile.unlock(Some(&secret)).unwrap();
    assert_eq!(unlocked.public(), id.public());
    assert!(matches!(
        load(&path),
        Err(KeyfileError::NeedsPassphrase { .. })
    ));
}

#[test]
fn swapping_the_public_key_line_of_a_sealed_file_is_detected() {
    let id = Identity::generate().unwrap();
    let other = Identity::generate().unwrap();
    let secret = pass("pw");
    let text = render_sealed(&id, &secret, quick_kdf()).unwrap();
    let swapped = text.replace(&id.public().to_hex(), &other.public().to_hex());
    let keyfile = Keyfile::parse(Path::new("k"), swapped.as_bytes()).unwrap();
    // `fingerprint` would show the swapped key, but nothing can use it.
    assert!(matches!(
        keyfile.unlock(Some(&secret)),
        Err(KeyfileError::WrongPassphrase { .. })
    ));
}

#[test]
fn absurd_kdf_costs_are_refused_before_any_work() {
    let id = Identity::generate().unwrap();
    let text = render_sealed(&id, &pass("pw"), quick_kdf()).unwrap();
    let m = format!("m={}", KdfParams::MIN_MEMORY_KIB);
    for (bad, why) in [
        ("m=4194304 t=1 p=1", "unreasonably high"),
        ("m=8192 t=1000000 p=1", "unreasonably high"),
        ("m=1048576 t=10 p=1", "unreasonably high"),
        ("m=8192 t=1 p=255", "unreasonably high"),
        ("m=1024 t=1 p=1", "too weak"),
        ("m=8192 t=0 p=1", "at least 1"),
        ("m=lots t=1 p=1", "not a number"),
    ] {
        let hostile = text.replace(&format!("{m} t=1 p=1"), bad);
        let started = std::time::Instant::now();
        let (line, reason) = match Keyfile::parse(Path::new("k"), hostile.as_bytes()) {
            Err(KeyfileError::Malformed { line, reason, .. }) => (line, reason),
            other => panic!("{bad}: expected a refusal, got {other:?}"),
        };
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert_eq!(line, Some(3), "{bad}");
        assert!(reason.contains(why), "{bad}: {reason}");
    }
}

#[test]
fn sealed_files_without_a_public_line_or_with_bad_fields_are_refused() {
    let id = Identity::generate().unwrap();
    let text = render_sealed(&id, &pass("pw"), quick_kdf()).unwrap();
    let no_public: String = text
        .lines()
        .filter(|l| !l.starts_with(PUBLIC_TAG))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(Keyfile::parse(Path::new("k"), no_public.as_bytes()).is_err());
    let cut = text.replace("nonce=", "nonse=");
    assert!(Keyfile::parse(Path::new("k"), cut.as_bytes()).is_err());
    let other_kdf = text.replace("argon2id", "scrypt");
    assert!(Keyfile::parse(Path::new("k"), other_kdf.as_bytes()).is_err());
}

/// Seals `id` as PROTOCOL.md §8 says, with `header` (the KDF fields as they will appear
/// in the file) as the last part of the associated data. Independent of `render_sealed`.
fn seal_as_spec(id: &Identity, passphrase: &Passphrase, kdf: KdfParams, header: &str) -> String {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let (salt, nonce) = ([7u8; SALT_LEN], [9u8; NONCE_LEN]);
    let key = kdf.derive(passphrase, &salt).unwrap();
    let cipher = chacha20poly1305::ChaCha20Poly1305::new((&*key).into());
    let mut aad = b"schat-key-v1".to_vec();
    aad.extend_from_slice(id.public().as_bytes());
    aad.extend_from_slice(header.as_bytes());
    let sealed = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: id.secret().expose(),
                aad: &aad,
            },
        )
        .unwrap();
    format!(
        "{PUBLIC_TAG}{}\n{SEALED_TAG}{header} salt={} nonce={} key={}\n",
        id.public(),
        hex::encode(salt),
        hex::encode(nonce),
        hex::encode(sealed)
    )
}

#[test]
fn the_kdf_header_is_authenticated_as_written() {
    let id = Identity::generate().unwrap();
    let secret = pass("pw");
    let unlock =
        |text: &str| Keyfile::parse(Path::new("k"), text.as_bytes())?.unlock(Some(&secret));
    // Written with a leading zero and sealed that way: the header as written is the AAD.
    let zero = seal_as_spec(&id, &secret, quick_kdf(), "argon2id m=08192 t=1 p=1");
    assert_eq!(unlock(&zero).unwrap().public(), id.public());
    // The same parameters respelled after sealing: the header no longer authenticates.
    let written = render_sealed(&id, &secret, quick_kdf()).unwrap();
    assert_eq!(unlock(&written).unwrap().public(), id.public());
    let respelled = written.replace("m=8192 t=1 p=1", "m=08192 t=1 p=01");
    assert!(matches!(
        unlock(&respelled),
        Err(KeyfileError::WrongPassphrase { .. })
    ));
}

#[test]
fn sealed_fields_must_come_in_order_with_single_spaces() {
    let id = Identity::generate().unwrap();
    let secret = pass("pw");
    let text = render_sealed(&id, &secret, quick_kdf()).unwrap();
    for edited in [
        text.replace("m=8192 t=1 p=1", "t=1 m=8192 p=1"),
        text.replace("m=8192 t=1", "m=8192  t=1"),
        text.replace("argon2id m=", "argon2id\tm="),
        text.replace(" salt=", " nonce=000000000000000000000000 salt="),
        text.replace("p=1 salt", "p=+1 salt"),
    ] {
        match Keyfile::parse(Path::new("k"), edited.as_bytes()) {
            Err(KeyfileError::Malformed { line, .. }) => assert_eq!(line, Some(3), "{edited}"),
            other => panic!("{edited}: expected Malformed, got {other:?}"),
        }
    }
}

/// The test vector in PROTOCOL.md §8: RFC 7748's first secret key, sealed with a fixed salt
/// and nonce.
#[test]
fn the_protocol_test_vector() {
    let vector = include_str!("../../tests/data/keyfile-vector.txt");
    let protocol = include_str!("../../PROTOCOL.md");
    for line in vector.lines() {
        assert!(protocol.contains(line), "PROTOCOL.md must show {line}");
    }
    let passphrase = pass("correct horse battery staple");
    let keyfile = Keyfile::parse(Path::new("vector"), vector.as_bytes()).unwrap();
    let id = keyfile.unlock(Some(&passphrase)).unwrap();
    assert_eq!(
        hex::encode(id.secret().expose()),
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    );
    assert_eq!(
        id.public().to_hex(),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    // Writing is deterministic given the salt and nonce.
    let salt: [u8; SALT_LEN] = core::array::from_fn(|i| i as u8);
    let nonce: [u8; NONCE_LEN] = core::array::from_fn(|i| i as u8);
    assert_eq!(
        render_sealed_with(&id, &passphrase, quick_kdf(), &salt, &nonce).unwrap(),
        vector
    );
    // The associated data, in the three parts PROTOCOL.md lists.
    let Secret::Sealed(sealed) = &keyfile.secret else {
        panic!("the vector is sealed")
    };
    let parts = [
        "73636861742d6b65792d7631",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        "6172676f6e326964206d3d3831393220743d3120703d31",
    ];
    for part in parts {
        assert!(protocol.contains(part), "PROTOCOL.md must show {part}");
    }
    assert_eq!(
        hex::encode(sealing_aad(&keyfile.public_key(), &sealed.header)),
        parts.concat()
    );
}

#[test]
fn passphrase_debug_is_redacted() {
    assert_eq!(format!("{:?}", pass("hunter2")), "Passphrase(<redacted>)");
}

#[test]
fn oversized_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    write(
        &path,
        &Identity::generate().unwrap(),
        false,
        Protection::None,
    )
    .unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&vec![b'#'; 20_000]).unwrap();
    assert!(load(&path).unwrap_err().to_string().contains("too large"));
}
