//! Criterion micro-benchmarks of schat's hot paths, in memory: sealing and opening transport
//! messages of chat and bulk sizes, a whole handshake (classical XX, and schat/2's hybrid), and
//! framing.
//!
//! `cargo bench --bench crypto`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use schat::frame;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{PATTERN, PROLOGUE, noise_builder};
use std::hint::black_box;

fn keypair() -> snow::Keypair {
    snow::Builder::new(PATTERN.parse().unwrap())
        .generate_keypair()
        .unwrap()
}

/// Both transport states of a finished handshake, built with schat's Noise configuration.
fn session() -> (snow::TransportState, snow::TransportState) {
    let (a, b) = (keypair(), keypair());
    let mut i = noise_builder(&a.private, PROLOGUE)
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut r = noise_builder(&b.private, PROLOGUE)
        .unwrap()
        .build_responder()
        .unwrap();
    let (mut buf, mut out) = (vec![0u8; 65535], vec![0u8; 65535]);
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    let n = r.write_message(&[], &mut buf).unwrap();
    i.read_message(&buf[..n], &mut out).unwrap();
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    (
        i.into_transport_mode().unwrap(),
        r.into_transport_mode().unwrap(),
    )
}

fn seal_and_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    for size in [64usize, 1024, 65519] {
        let (mut tx, _) = session();
        let plain = vec![0x42u8; size];
        let mut out = vec![0u8; 65535];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| tx.write_message(black_box(&plain), &mut out).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    for size in [64usize, 1024, 65519] {
        // Open needs a fresh ciphertext per nonce: seal a batch up front, open it in order, and
        // start a new session when the batch runs out (outside the measurement).
        let plain = vec![0x42u8; size];
        let mut out = vec![0u8; 65535];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter_custom(|iters| {
                let (mut tx, mut rx) = session();
                let mut wire = vec![0u8; 65535];
                let mut elapsed = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let n = tx.write_message(&plain, &mut wire).unwrap();
                    let start = std::time::Instant::now();
                    black_box(rx.read_message(&wire[..n], &mut out).unwrap());
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let (a, b) = (keypair(), keypair());
    c.bench_function("xx_handshake_in_memory", |bench| {
        let (mut buf, mut out) = (vec![0u8; 65535], vec![0u8; 65535]);
        bench.iter(|| {
            let mut i = noise_builder(&a.private, PROLOGUE)
                .unwrap()
                .build_initiator()
                .unwrap();
            let mut r = noise_builder(&b.private, PROLOGUE)
                .unwrap()
                .build_responder()
                .unwrap();
            let n = i.write_message(&[], &mut buf).unwrap();
            r.read_message(&buf[..n], &mut out).unwrap();
            let n = r.write_message(&[], &mut buf).unwrap();
            i.read_message(&buf[..n], &mut out).unwrap();
            let n = i.write_message(&[], &mut buf).unwrap();
            r.read_message(&buf[..n], &mut out).unwrap();
            black_box((i.into_transport_mode(), r.into_transport_mode()))
        })
    });
    // The same with schat/2's post-quantum part: the ratio of the two is the KEM's cost.
    let (alice, bob) = (
        schat::keys::Identity::generate().unwrap(),
        schat::keys::Identity::generate().unwrap(),
    );
    c.bench_function("schat2_handshake_in_memory", |bench| {
        use schat::handshake::core::{Initiator, Randomness, Responder};
        bench.iter(|| {
            let (i, m1) = Initiator::start(&alice, &Randomness::default()).unwrap();
            let r = Responder::read_message_1(&bob, &Randomness::default(), &m1).unwrap();
            let (r, m2) = r.write_message_2().unwrap();
            let (i, _) = i.read_message_2(&m2).unwrap();
            let (i, m3) = i.write_message_3().unwrap();
            black_box((i, r.read_message_3(&m3).unwrap()))
        })
    });
}

fn framing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("framing");
    for size in [64usize, 65535] {
        let body = vec![7u8; size];
        // 64 frames per iteration, written to memory and read back.
        group.throughput(Throughput::Bytes(64 * size as u64));
        group.bench_with_input(
            BenchmarkId::new("write_then_read_64", size),
            &size,
            |b, _| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut wire = Vec::with_capacity(64 * (size + 2));
                        let mut writer = FrameWriter::new(&mut wire);
                        for _ in 0..64 {
                            writer.write_frame(&body).await.unwrap();
                        }
                        let mut reader = FrameReader::new(&wire[..]);
                        let mut total = 0;
                        while let Some(f) = reader.read_frame().await.unwrap() {
                            total += f.len();
                        }
                        black_box(total)
                    })
                })
            },
        );
    }
    group.bench_function("parse_header", |b| {
        let wire = [0xffu8, 0xef, 1, 2, 3];
        b.iter(|| black_box(frame::parse(black_box(&wire))))
    });
    group.finish();
}

criterion_group!(benches, seal_and_open, handshake, framing);
criterion_main!(benches);
