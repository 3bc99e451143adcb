//! ChaCha20-Poly1305 implementations side by side, sealing and opening in place at the sizes
//! schat uses (a 64 B chat line, 1 KiB, a full 65,519-byte pipe frame): ring (schat's, through
//! snow's `ring-accelerated` resolver), aws-lc-rs, RustCrypto's chacha20poly1305 0.10 and
//! 0.11, and OpenSSL's libcrypto. Which one a snow `CryptoResolver` should use is decided by these figures on the
//! machine at hand: `cargo bench --manifest-path benches/aead/Cargo.toml --target-dir target`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const SIZES: [usize; 3] = [64, 1024, 65519];
const KEY: [u8; 32] = [7; 32];

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("chacha20poly1305 seal");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];

        // ring's ChaCha20-Poly1305 (schat's before the switch), and its AES-256-GCM: not a
        // ChaCha20-Poly1305, but what schat switches to where both ends have AES instructions
        // (PROTOCOL.md §4.9), and what socat and TLS 1.3 use by default.
        for (name, algorithm) in [
            ("ring", &ring::aead::CHACHA20_POLY1305),
            ("ring-aes-256-gcm", &ring::aead::AES_256_GCM),
        ] {
            let key =
                ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(algorithm, &KEY).unwrap());
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                let mut n = 0u64;
                b.iter(|| {
                    n += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&n.to_le_bytes());
                    let tag = key
                        .seal_in_place_separate_tag(
                            ring::aead::Nonce::assume_unique_for_key(nonce),
                            ring::aead::Aad::empty(),
                            &mut buf,
                        )
                        .unwrap();
                    let _ = black_box(tag);
                })
            });
        }

        let aws_key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::CHACHA20_POLY1305, &KEY).unwrap(),
        );
        group.bench_with_input(BenchmarkId::new("aws-lc-rs", size), &size, |b, _| {
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&n.to_le_bytes());
                let tag = aws_key
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                        aws_lc_rs::aead::Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
                let _ = black_box(tag);
            })
        });

        {
            use chacha20poly1305::aead::{AeadInPlace, KeyInit};
            let cipher = chacha20poly1305::ChaCha20Poly1305::new(&KEY.into());
            group.bench_with_input(BenchmarkId::new("rustcrypto-0.10", size), &size, |b, _| {
                let mut n = 0u64;
                b.iter(|| {
                    n += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&n.to_le_bytes());
                    let tag = cipher
                        .encrypt_in_place_detached(&nonce.into(), b"", &mut buf)
                        .unwrap();
                    let _ = black_box(tag);
                })
            });
        }
        {
            use chacha20poly1305_011::aead::{AeadInOut, KeyInit};
            let cipher = chacha20poly1305_011::ChaCha20Poly1305::new(&KEY.into());
            group.bench_with_input(BenchmarkId::new("rustcrypto-0.11", size), &size, |b, _| {
                let mut n = 0u64;
                b.iter(|| {
                    n += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&n.to_le_bytes());
                    let tag = cipher
                        .encrypt_inout_detached(&nonce.into(), b"", buf.as_mut_slice().into())
                        .unwrap();
                    let _ = black_box(tag);
                })
            });
        }
        {
            // One context for the key; each message only sets its nonce (what a snow `Cipher`
            // would keep), sealing in place.
            use openssl::cipher::Cipher;
            use openssl::cipher_ctx::CipherCtx;
            let mut ctx = CipherCtx::new().unwrap();
            ctx.encrypt_init(Some(Cipher::chacha20_poly1305()), Some(&KEY), None)
                .unwrap();
            let mut tag = [0u8; 16];
            group.bench_with_input(BenchmarkId::new("openssl", size), &size, |b, _| {
                let mut n = 0u64;
                b.iter(|| {
                    n += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&n.to_le_bytes());
                    ctx.encrypt_init(None, None, Some(&nonce)).unwrap();
                    ctx.cipher_update_inplace(&mut buf, size).unwrap();
                    ctx.cipher_final(&mut []).unwrap();
                    ctx.tag(&mut tag).unwrap();
                    black_box(&tag);
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = seal
}
criterion_main!(benches);
