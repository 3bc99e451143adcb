//! Secrets leave no copies in freed memory: an allocator that looks at every block as it is
//! freed counts the blocks that still hold a secret (Zeroizing wipes before freeing; a
//! `String` that grew, or a temporary copy, does not). The keyfile written and read back, a
//! spoken code parsed and read out, and a ticket with a secret decoded.

use schat::keys::Identity;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Watching;

static ARMED: AtomicBool = AtomicBool::new(false);
static LEAKS: AtomicUsize = AtomicUsize::new(0);
/// What to look for: a window of `WINDOW` bytes of any of the secrets' forms.
static mut NEEDLES: [[u8; 256]; 4] = [[0; 256]; 4];
static mut NEEDLE_LENS: [usize; 4] = [0; 4];
const WINDOW: usize = 16;

fn holds_a_secret(block: &[u8]) -> bool {
    // SAFETY: written only while ARMED is false, read only while it is true (one thread).
    let (needles, lens) = unsafe {
        (
            &*std::ptr::addr_of!(NEEDLES),
            &*std::ptr::addr_of!(NEEDLE_LENS),
        )
    };
    needles.iter().zip(lens).any(|(needle, &len)| {
        len >= WINDOW
            && needle[..len]
                .windows(WINDOW)
                .any(|w| block.windows(WINDOW).any(|b| b == w))
    })
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            ARMED.store(false, Ordering::Relaxed);
            // SAFETY: the block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds_a_secret(block) {
                LEAKS.fetch_add(1, Ordering::Relaxed);
            }
            ARMED.store(true, Ordering::Relaxed);
        }
        // SAFETY: passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f` with `needles` armed; the number of freed blocks that held one.
fn leaks(needles: &[&[u8]], f: impl FnOnce()) -> usize {
    assert!(needles.len() <= 4);
    // SAFETY: not armed, and this test binary runs one test.
    unsafe {
        for (i, n) in needles.iter().enumerate() {
            NEEDLES[i][..n.len()].copy_from_slice(n);
            NEEDLE_LENS[i] = n.len();
        }
    }
    LEAKS.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    f();
    ARMED.store(false, Ordering::Relaxed);
    // SAFETY: disarmed.
    unsafe {
        NEEDLE_LENS = [0; 4];
    }
    LEAKS.load(Ordering::Relaxed)
}

/// One test only: the allocator's needles are global (issue 31: the keyfile's secret hex in a
/// growing `format!`, a code's words lower-cased into a plain `String`, a ticket upper-cased).
#[test]
fn secrets_leave_no_copies_in_freed_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = 0xa0 ^ (i as u8 * 7);
    }
    let secret_hex = hex::encode(bytes);
    let identity = Identity::from_secret(schat::keys::SecretKey::from_bytes(
        zeroize::Zeroizing::new(bytes),
    ));
    let path = dir.path().join("identity");
    let found = leaks(&[secret_hex.as_bytes()], || {
        schat::keyfile::write(&path, &identity, false, schat::keyfile::Protection::None).unwrap();
        let _ = schat::keyfile::load(&path).unwrap();
    });
    assert_eq!(found, 0, "the keyfile's secret in freed memory");

    let code = schat::invite::code::Code::generate(427);
    let typed = format!("427 {}", code.words().replace('-', " ").to_uppercase());
    let words = code.words().to_string();
    let found = leaks(&[words.as_bytes()], || {
        let parsed = schat::invite::code::Code::parse(&typed).unwrap();
        let _ = parsed.spoken();
        let _ = schat::invite::code::Code::from_parts(427, parsed.words()).unwrap();
    });
    assert_eq!(found, 0, "a code's words in freed memory");

    let ticket = schat::invite::Ticket {
        key: *identity.public(),
        secret: Some(zeroize::Zeroizing::new(
            [0x5a; schat::invite::ticket::SECRET_LEN],
        )),
        expires: 2_000_000_000,
        name: "bob".into(),
        addrs: vec![schat::invite::TicketAddr::Ip([192, 0, 2, 1].into(), 12345)],
    };
    let text = ticket.encode();
    let upper = text.to_ascii_uppercase();
    // The secret's bytes, and the ticket text around them in both cases.
    let secret = [0x5a; schat::invite::ticket::SECRET_LEN];
    let pasted = format!("  {upper}  ");
    let found = leaks(&[&secret, text.as_bytes(), upper.as_bytes()], || {
        let decoded = schat::invite::Ticket::decode(&pasted).unwrap();
        assert!(decoded.secret.is_some());
    });
    assert_eq!(found, 0, "a ticket's secret in freed memory");
}
