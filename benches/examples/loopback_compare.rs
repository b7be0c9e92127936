//! Side-by-side loopback throughput of the UDP and io_uring backends in one run: 1200-byte
//! datagrams with GSO + GRO and without, for every sender/receiver backend pair.
//!
//! `cargo run --release -p peregrine-benches --example loopback_compare [seconds] [rounds]`
//! (default 2 s per case, 1 round). Prints one line per case: verified datagrams/s, Gbit/s and
//! system calls per datagram (transmit + receive + wait, both sides).

use std::time::Duration;

use peregrine_datapath::loopback::{udp_loopback_throughput, Backend, LoopbackBenchConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let pairs = [
        (Backend::Udp, Backend::Udp),
        (Backend::Uring, Backend::Uring),
        (Backend::Uring, Backend::Udp),
        (Backend::Udp, Backend::Uring),
        (Backend::UringZc, Backend::Uring),
    ];
    println!(
        "{:<14} {:<8} {:>12} {:>9} {:>10} {:>8} {:>8} {:>8} {:>6}",
        "tx -> rx", "offload", "datagrams/s", "Gbit/s", "syscall/dg", "tx", "rx", "wait", "lost"
    );
    for round in 0..rounds {
        if rounds > 1 {
            println!("round {}", round + 1);
        }
        for (offload, on) in [("gso+gro", true), ("none", false)] {
            for (tx, rx) in pairs {
                let cfg = LoopbackBenchConfig {
                    gso: on,
                    gro: on,
                    duration: Duration::from_secs_f64(secs),
                    tx_backend: tx,
                    rx_backend: rx,
                    ..LoopbackBenchConfig::default()
                };
                match udp_loopback_throughput(&cfg) {
                    Ok(r) => println!(
                        "{:<14} {:<8} {:>12.0} {:>9.2} {:>10.4} {:>8} {:>8} {:>8} {:>6}",
                        format!("{tx} -> {rx}"),
                        offload,
                        r.packets_per_sec,
                        r.gbit_per_sec,
                        r.syscalls_per_datagram(),
                        r.tx_syscalls,
                        r.rx_syscalls,
                        r.poll_syscalls,
                        r.lost + r.corrupt,
                    ),
                    Err(e) => println!("{tx} -> {rx} {offload}: cannot run: {e}"),
                }
            }
        }
    }
}
