//! A UDP relay that adds a fixed one-way delay each way, for benchmarks on kernels without
//! `tc netem` (scripts/bench_lossy.sh). One client at a time: datagrams arriving on `--listen`
//! go to `--upstream` from one upstream socket after `--delay`; datagrams from the upstream go
//! back, after `--delay`, to the address that last sent on `--listen`.
//!
//! ```text
//! udp_delay --listen 127.0.0.1:0 --upstream 10.203.0.2:4433 --delay-ms 10 [--max-seconds 600]
//! ```
//!
//! Prints `listening on ADDR` once bound. Bounded: it exits after `--max-seconds` (default 600)
//! and holds at most 65 536 datagrams per direction (more are dropped and counted on stderr at
//! exit). The delay is a user-space sleep (polls every 100 µs): a loaded machine adds
//! scheduling jitter on top of it.

// A benchmark tool outside the sans-IO core: it reads the clock to hold datagrams.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most datagrams held per direction.
const MAX_HELD: usize = 65_536;
/// Longest sleep between looks at the sockets.
const POLL: Duration = Duration::from_micros(100);

/// Where a direction sends its datagrams.
#[derive(Clone)]
enum Dest {
    /// Through a connected socket.
    Connected(Arc<UdpSocket>),
    /// To the client's latest address, through the listening socket.
    Client(Arc<UdpSocket>, Arc<Mutex<Option<SocketAddr>>>),
}

/// One direction: receive on `rx`, hold each datagram for `delay`, send to `dest`. When
/// `learn` is set, the source of each datagram received becomes the client address.
fn pump(
    rx: Arc<UdpSocket>,
    dest: Dest,
    learn: Option<Arc<Mutex<Option<SocketAddr>>>>,
    delay: Duration,
    end: Instant,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, d) = held.pop_front().expect("front checked");
            let _ = match &dest {
                Dest::Connected(s) => s.send(&d),
                Dest::Client(s, addr) => match *addr.lock().expect("lock") {
                    Some(a) => s.send_to(&d, a),
                    None => Ok(0),
                },
            };
        }
        // Drain what arrived (non-blocking), then sleep until the next datagram is due or a
        // short poll interval passes (nanosleep: finer than a socket timeout's jiffies).
        let mut got = false;
        for _ in 0..256 {
            match rx.recv_from(&mut buf) {
                Ok((n, from)) => {
                    got = true;
                    if let Some(l) = &learn {
                        *l.lock().expect("lock") = Some(from);
                    }
                    if held.len() < MAX_HELD {
                        held.push_back((Instant::now() + delay, buf[..n].to_vec()));
                    } else {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    break
                }
                Err(e) => {
                    eprintln!("udp_delay: receive failed: {e}");
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        if !got {
            let wait = held
                .front()
                .map_or(POLL, |(due, _)| due.saturating_duration_since(Instant::now()))
                .min(POLL);
            std::thread::sleep(wait);
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: udp_delay --listen ADDR --upstream ADDR --delay-ms MS [--max-seconds S] \
         [--bind-upstream ADDR]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut upstream, mut delay_ms, mut max_s, mut bind_up) =
        (None, None, None, 600u64, "0.0.0.0:0".to_string());
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(v),
            "--upstream" => upstream = Some(v),
            "--delay-ms" => delay_ms = v.parse::<u64>().ok(),
            "--max-seconds" => max_s = v.parse().unwrap_or_else(|_| usage()),
            "--bind-upstream" => bind_up = v,
            _ => usage(),
        }
    }
    let (Some(listen), Some(upstream), Some(delay_ms)) = (listen, upstream, delay_ms) else {
        usage()
    };
    if delay_ms > 10_000 || max_s == 0 || max_s > 86_400 {
        eprintln!("udp_delay: --delay-ms is 0..=10000, --max-seconds 1..=86400");
        std::process::exit(2);
    }
    let front = Arc::new(UdpSocket::bind(&listen).unwrap_or_else(|e| {
        eprintln!("udp_delay: bind {listen}: {e}");
        std::process::exit(1)
    }));
    let back = Arc::new(UdpSocket::bind(&bind_up).unwrap_or_else(|e| {
        eprintln!("udp_delay: bind {bind_up}: {e}");
        std::process::exit(1)
    }));
    back.connect(&upstream).unwrap_or_else(|e| {
        eprintln!("udp_delay: upstream {upstream}: {e}");
        std::process::exit(1)
    });
    for s in [&front, &back] {
        s.set_nonblocking(true).expect("non-blocking socket");
    }
    println!("listening on {}", front.local_addr().expect("bound"));
    let delay = Duration::from_millis(delay_ms);
    let end = Instant::now() + Duration::from_secs(max_s);
    let stop = Arc::new(AtomicBool::new(false));
    let client = Arc::new(Mutex::new(None));
    let dropped = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let up = {
        let (f, b, c, s, d) =
            (front.clone(), back.clone(), client.clone(), stop.clone(), dropped[0].clone());
        std::thread::spawn(move || pump(f, Dest::Connected(b), Some(c), delay, end, s, d))
    };
    let down = {
        let (f, b, s, d) = (front, back, stop.clone(), dropped[1].clone());
        std::thread::spawn(move || pump(b, Dest::Client(f, client), None, delay, end, s, d))
    };
    let _ = up.join();
    stop.store(true, Ordering::Relaxed);
    let _ = down.join();
    let [u, d] = dropped.map(|d| d.load(Ordering::Relaxed));
    if u + d > 0 {
        eprintln!("udp_delay: dropped {u} datagrams upstream and {d} downstream (queue full)");
    }
}
