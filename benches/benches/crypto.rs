//! Packet protection speed: AEAD seal/open of 1200-byte packets per cipher (bytes/s), header
//! protection masks per second, and per-connection key setup (Initial keys, Retry tag).
//!
//! Sealing and opening go through [`PacketKey`], the handle the connection uses for every
//! encryption level (aws-lc-rs underneath, in place, no allocation per packet).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use peregrine_engine::crypto::header::HeaderProtector;
use peregrine_engine::crypto::{
    initial_keys, retry_integrity_tag, AeadKey, AeadLimits, Cipher, HashAlg, HeaderKey, OneRttKeys,
    PacketKey, Secret, Side, Version, TAG_LEN,
};

/// Packet size on the wire: a short header with an 8-byte DCID and a 4-byte packet number,
/// payload, tag.
const PACKET: usize = 1200;
const HEADER: usize = 1 + 8 + 4;

fn name(c: Cipher) -> &'static str {
    match c {
        Cipher::Aes128Gcm => "aes128gcm",
        Cipher::Aes256Gcm => "aes256gcm",
        Cipher::ChaCha20Poly1305 => "chacha20poly1305",
    }
}

fn packet_key(c: Cipher) -> PacketKey {
    PacketKey::new(c, &vec![0x42; c.key_len()], &[7; 12]).unwrap()
}

fn plain_packet() -> Vec<u8> {
    let mut p = vec![0u8; PACKET];
    p[0] = 0x43;
    for (i, b) in p[HEADER..PACKET - TAG_LEN].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

fn short<'a>(
    c: &'a mut Criterion,
    group: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(group);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g
}

fn seal(c: &mut Criterion) {
    let mut g = short(c, "seal_1200B");
    g.throughput(Throughput::Bytes(PACKET as u64));
    for cipher in Cipher::ALL {
        let key = packet_key(cipher);
        let mut p = plain_packet();
        let mut pn = 0u64;
        g.bench_function(name(cipher), |b| {
            b.iter(|| {
                pn += 1;
                key.seal_in_place(pn, &mut p, HEADER).unwrap();
            })
        });
    }
    // The same AES-128-GCM seal without the connection's handle (no vtable call), and through
    // the 1-RTT key-phase state machine (Key Phase bit, counters): the handle's cost.
    let aead = AeadKey::new(Cipher::Aes128Gcm, &[0x42; 16], &[7; 12]).unwrap();
    let mut p = plain_packet();
    let mut pn = 0u64;
    g.bench_function("aes128gcm_direct", |b| {
        b.iter(|| {
            pn += 1;
            let (header, rest) = p.split_at_mut(HEADER);
            let (payload, tag) = rest.split_at_mut(PACKET - HEADER - TAG_LEN);
            tag.copy_from_slice(&aead.seal_separate_tag(pn, header, payload).unwrap());
        })
    });
    let secret = Secret::new(HashAlg::Sha256, &[0x42; 32]).unwrap();
    let mut one_rtt =
        OneRttKeys::from_secrets(Cipher::Aes128Gcm, Version::V1, &secret, &secret).unwrap();
    one_rtt.set_limits(AeadLimits { confidentiality: u64::MAX, integrity: 1 << 52 });
    let mut p = plain_packet();
    let mut pn = 0u64;
    g.bench_function("aes128gcm_onertt", |b| {
        b.iter(|| {
            pn += 1;
            one_rtt.seal(pn, &mut p, HEADER).unwrap();
        })
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = short(c, "open_1200B");
    g.throughput(Throughput::Bytes(PACKET as u64));
    for cipher in Cipher::ALL {
        let key = packet_key(cipher);
        let mut sealed = plain_packet();
        key.seal_in_place(9, &mut sealed, HEADER).unwrap();
        g.bench_function(name(cipher), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |p| key.open_in_place(9, p, HEADER).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn header_protection(c: &mut Criterion) {
    let mut g = short(c, "header_mask");
    g.throughput(Throughput::Elements(1));
    for cipher in Cipher::ALL {
        let hp = HeaderProtector::new(cipher, &vec![0x11; cipher.key_len()]).unwrap();
        let mut sample = [0x5au8; 16];
        g.bench_function(name(cipher), |b| {
            b.iter(|| {
                sample[0] = sample[0].wrapping_add(1);
                hp.mask(&sample).unwrap()
            })
        });
    }
    g.finish();

    // Apply and remove on a packet through the connection's handle (mask + bounds checks).
    let mut g = short(c, "header_protect_unprotect");
    g.throughput(Throughput::Elements(1));
    for cipher in Cipher::ALL {
        let hp = HeaderKey::new(cipher, &vec![0x11; cipher.key_len()]).unwrap();
        let mut p = plain_packet();
        g.bench_function(name(cipher), |b| {
            b.iter(|| {
                hp.protect(&mut p, 9).unwrap();
                hp.unprotect(&mut p, 9).unwrap()
            })
        });
    }
    g.finish();
}

fn connection_setup(c: &mut Criterion) {
    let mut g = short(c, "per_connection");
    g.throughput(Throughput::Elements(1));
    let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    g.bench_function("initial_keys_server", |b| {
        b.iter(|| initial_keys(Version::V1, &dcid, Side::Server).unwrap())
    });
    let retry = [0xf0u8; 60];
    g.bench_function("retry_integrity_tag", |b| {
        b.iter(|| retry_integrity_tag(Version::V1, &dcid, &retry).unwrap())
    });
    g.finish();
}

criterion_group!(benches, seal, open, header_protection, connection_setup);
criterion_main!(benches);
