//! Packets per second and CPU per packet of the UDP and AF_XDP datapaths on a veth pair
//! (root; two network namespaces made by `scripts/netns.sh`). Run it through
//! `scripts/bench_datapaths.sh`, or:
//!
//! ```text
//! cargo run --release -p peregrine-datapath --example bench_datapaths -- [SECS] [SIZE]
//! ```
//!
//! Two directions, each for `udp`, `xdp generic` and `xdp native` on side a:
//! - **rx**: side b blasts SIZE-byte datagrams with a GSO UDP queue; side a receives.
//! - **tx**: side a sends SIZE-byte datagrams (16-segment trains); side b receives with GRO.
//!
//! Columns: datagrams per second handled by side a; system calls (or ring kicks) per datagram on
//! side a; CPU time of side a's thread per datagram (`getrusage(RUSAGE_THREAD)`, user + system);
//! CPU time of the whole process per datagram (both ends, including softirq work the kernel
//! bills to whichever thread was running). On veth the "wire" is a memcpy in the kernel, so the
//! figures that carry over to a real NIC are the per-datagram CPU and syscall costs, not the
//! absolute rates.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_datapath::xdp::{XdpConfig, XdpMode, XdpQueue};
use peregrine_datapath::{Queue, RxBatch, TxBatch};

fn script() -> String {
    format!("{}/../scripts/netns.sh", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `f` on a thread inside network namespace `ns` and returns its result.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).expect("namespace file");
            // SAFETY: `file` is an open namespace file; setns changes only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// CPU time (user + system) of the calling thread, or of the process with `RUSAGE_SELF`.
fn cpu(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Side {
    datagrams: u64,
    calls: u64,
    thread_cpu: Duration,
}

/// Receives for `secs`, returning datagrams, receive calls and thread CPU.
fn receive(q: &mut dyn Queue, secs: f64, stop: &AtomicBool) -> Side {
    let mut rx = RxBatch::new(64);
    let (c0, s0) = (cpu(libc::RUSAGE_THREAD), q.stats());
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if q.recv(&mut rx).unwrap_or(0) == 0 {
            let _ = q.wait(Some(Duration::from_millis(1)), false);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let s = q.stats();
    Side {
        datagrams: s.rx_datagrams - s0.rx_datagrams,
        calls: s.rx_calls - s0.rx_calls,
        thread_cpu: cpu(libc::RUSAGE_THREAD) - c0,
    }
}

/// Sends SIZE-byte datagrams in 16-segment trains to `dst` until `stop`.
fn blast(q: &mut dyn Queue, dst: SocketAddr, size: usize, stop: &AtomicBool) -> Side {
    let segs = if q.capabilities().gso { 16.min(q.capabilities().max_gso_segments) } else { 1 };
    let data = vec![0x5au8; size * segs];
    let mut batch = TxBatch::new();
    let (c0, s0) = (cpu(libc::RUSAGE_THREAD), q.stats());
    let end = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        while batch.len() < 32 {
            let Some(mut b) = q.alloc_tx() else { break };
            b.extend_from_slice(&data);
            b.meta.dst = dst;
            b.meta.segment_size = (segs > 1).then_some(size);
            batch.push(b);
        }
        if q.send(&mut batch).unwrap_or(0) == 0 {
            let _ = q.wait(Some(Duration::from_millis(1)), true);
        }
    }
    batch.drain().for_each(drop);
    let s = q.stats();
    Side {
        datagrams: s.tx_datagrams - s0.tx_datagrams,
        calls: s.tx_calls - s0.tx_calls,
        thread_cpu: cpu(libc::RUSAGE_THREAD) - c0,
    }
}

/// Side a: the queue under test.
enum A {
    Udp(Box<UdpQueue>),
    Xdp(Box<XdpQueue>),
}

impl A {
    fn queue(&mut self) -> &mut dyn Queue {
        match self {
            A::Udp(q) => q.as_mut(),
            A::Xdp(q) => q.as_mut(),
        }
    }
}

fn open_a(kind: &str, ns: &str, ifname: &str) -> A {
    let ifname = ifname.to_string();
    let kind = kind.to_string();
    in_ns(ns, move || {
        let bind: SocketAddr = "0.0.0.0:0".parse().unwrap();
        match kind.as_str() {
            "udp" => A::Udp(Box::new(UdpQueue::open(&UdpConfig::new(bind)).expect("udp queue"))),
            mode => {
                let mode: XdpMode = mode.parse().unwrap();
                let cfg = XdpConfig::new(&ifname, bind).with_mode(mode);
                A::Xdp(Box::new(XdpQueue::open(&cfg).expect("xdp queue")))
            }
        }
    })
}

fn row(label: &str, a: &Side, secs: f64, process_cpu: Duration, delivered: u64) {
    let n = a.datagrams.max(1) as f64;
    println!(
        "| {label:<16} | {:>10.0} | {:>10.0} | {:>8.3} | {:>8.2} | {:>9.2} |",
        a.datagrams as f64 / secs,
        delivered as f64 / secs,
        a.calls as f64 / n,
        a.thread_cpu.as_nanos() as f64 / n,
        process_cpu.as_nanos() as f64 / n,
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1200);
    let name = format!("bd{}", std::process::id() % 10_000_000);
    let out = Command::new(script()).args(["up", &name]).output().expect("netns.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ns_a, ns_b, if_a) = (format!("{name}a"), format!("{name}b"), format!("{name}a0"));
    let (ip_a, ip_b) = ("10.203.0.1", "10.203.0.2");
    // Everything is torn down even if a run panics.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(script()).args(["down", &self.0]).output();
        }
    }
    let _down = Down(name.clone());

    println!("veth pair, {size}-byte UDP payloads, {secs} s per run");
    println!(
        "| {:<16} | {:>10} | {:>10} | {:>8} | {:>8} | {:>9} |",
        "side a", "a dgram/s", "peer dg/s", "calls/dg", "a ns/dg", "all ns/dg"
    );
    println!("|{:-<18}|{:-<12}|{:-<12}|{:-<10}|{:-<10}|{:-<11}|", "", "", "", "", "", "");
    let mut notes = Vec::new();
    for dir in ["rx", "tx"] {
        for kind in ["udp", "generic", "native"] {
            let mut a = open_a(kind, &ns_a, &if_a);
            let mut b: Box<dyn Queue> = in_ns(&ns_b, || {
                Box::new(UdpQueue::open(&UdpConfig::new("0.0.0.0:0".parse().unwrap())).unwrap())
            });
            let stop = Arc::new(AtomicBool::new(false));
            let p0 = cpu(libc::RUSAGE_SELF);
            let (side_a, peer) = std::thread::scope(|s| {
                if dir == "rx" {
                    let dst: SocketAddr =
                        format!("{ip_a}:{}", a.queue().local_addr().port()).parse().unwrap();
                    let st = Arc::clone(&stop);
                    let tx = s.spawn(move || blast(b.as_mut(), dst, size, &st));
                    let ra = receive(a.queue(), secs, &stop);
                    let tb = tx.join().unwrap();
                    (ra, tb.datagrams)
                } else {
                    let dst: SocketAddr =
                        format!("{ip_b}:{}", b.local_addr().port()).parse().unwrap();
                    let st = Arc::clone(&stop);
                    let rx = s.spawn(move || receive(b.as_mut(), secs, &st));
                    let ta = blast(a.queue(), dst, size, &stop);
                    let rb = rx.join().unwrap();
                    (ta, rb.datagrams)
                }
            });
            let process = cpu(libc::RUSAGE_SELF) - p0;
            row(&format!("{dir} {kind}"), &side_a, secs, process, peer);
            if let A::Xdp(q) = &a {
                notes.push(format!("{dir} {kind}: {:?}", q.xdp_stats()));
            }
        }
    }
    println!("(rx rows: 'peer dg/s' is what side b offered; tx rows: what side b received)");
    for n in notes {
        println!("{n}");
    }
}
