//! Datapath throughput over 127.0.0.1 with 1200-byte datagrams: GSO + GRO, GSO only, and
//! neither, on the UDP backend (group `udp_loopback_1200B`) and on the io_uring backend on both
//! sides (group `uring_loopback_1200B`, GSO + GRO and neither).
//!
//! Each iteration is one [`udp_loopback_throughput`] run of a fixed number of datagrams. The
//! time reported to criterion is the run's elapsed time scaled by datagrams / verified-received,
//! so the throughput criterion prints is the verified goodput even if a datagram was lost (with
//! the default flow control none is). Before measuring, one run per case prints its full
//! figures (datagrams/s, Gbit/s, loss, syscalls).

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peregrine_datapath::loopback::{udp_loopback_throughput, Backend, LoopbackBenchConfig};

const PAYLOAD: usize = 1200;

fn udp_loopback(c: &mut Criterion) {
    let cases = [
        ("gso_gro", true, true, 100_000u64),
        ("gso_only", true, false, 40_000),
        ("plain", false, false, 20_000),
    ];
    loopback_group(c, "udp_loopback_1200B", Backend::Udp, &cases);
}

fn uring_loopback(c: &mut Criterion) {
    let cases = [("gso_gro", true, true, 100_000u64), ("plain", false, false, 20_000)];
    loopback_group(c, "uring_loopback_1200B", Backend::Uring, &cases);
}

fn loopback_group(
    c: &mut Criterion,
    group: &str,
    backend: Backend,
    cases: &[(&str, bool, bool, u64)],
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for &(name, gso, gro, datagrams) in cases {
        let cfg = LoopbackBenchConfig {
            payload: PAYLOAD,
            gso,
            gro,
            datagrams,
            duration: Duration::from_secs(10),
            tx_backend: backend,
            rx_backend: backend,
            ..LoopbackBenchConfig::default()
        };
        match udp_loopback_throughput(&cfg) {
            Ok(r) => eprintln!("{group} {name}: {r}"),
            Err(e) => {
                eprintln!("{group} {name}: SKIPPED, cannot run: {e}");
                continue;
            }
        }
        g.throughput(Throughput::Bytes(datagrams * PAYLOAD as u64));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let r = udp_loopback_throughput(&cfg).expect("loopback run");
                    let scale = datagrams as f64 / r.received.max(1) as f64;
                    total += r.elapsed.mul_f64(scale.max(1.0));
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, udp_loopback, uring_loopback);
criterion_main!(benches);
