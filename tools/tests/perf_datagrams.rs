//! `peregrine perf --datagrams`: on loopback against the in-process server every datagram
//! comes back (received + lost = sent, lost 0 at a modest rate); through a relay on loopback
//! that drops every 10th datagram from the server, losses are counted and still add up;
//! against a server without `--datagrams on` the run fails with one line saying so.

// The relay bounds its life with the wall clock (termination only).
#![allow(clippy::disallowed_methods)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{one_error_line, peregrine, start_server};

const LIMIT: Duration = Duration::from_secs(60);

fn perf_json(args: &[&str]) -> Value {
    let mut all = vec!["perf", "--datagrams", "--json"];
    all.extend_from_slice(args);
    let out = peregrine(&all, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "perf {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn n(v: &Value, k: &str) -> u64 {
    v["end"]["datagrams"][k].as_u64().unwrap_or_else(|| panic!("end.datagrams.{k} in {v}"))
}

fn f(v: &Value, k: &str) -> f64 {
    v["end"]["datagrams"][k].as_f64().unwrap_or_else(|| panic!("end.datagrams.{k} in {v}"))
}

#[test]
fn loopback_in_process_every_datagram_comes_back() {
    // 2 Mbit/s of 500-byte datagrams for 1 s: ~500 datagrams, far below what loopback and
    // the queues carry.
    let v = perf_json(&["--duration", "1s", "--rate", "2M", "--datagram-size", "500"]);
    assert_eq!(v["start"]["test_start"]["mode"], "datagrams");
    assert_eq!(v["start"]["test_start"]["datagram_size"], 500);
    let (sent, received, lost) = (n(&v, "sent"), n(&v, "received"), n(&v, "lost"));
    assert!((300..=600).contains(&sent), "about 500 sent at 2 Mbit/s for 1 s: {sent}");
    assert_eq!(received + lost, sent);
    assert_eq!(lost, 0, "loopback loses nothing at this rate: {v}");
    assert_eq!(n(&v, "server_received"), sent, "the last echo carries the server's count");
    assert_eq!((n(&v, "duplicates"), n(&v, "malformed")), (0, 0));
    assert_eq!(n(&v, "bytes_received"), sent * 500);
    assert!(f(&v, "goodput_bits_per_second") > 0.0);
    assert!(f(&v, "jitter_ms") >= 0.0 && f(&v, "rtt_mean_ms") > 0.0);

    // The text output says the same.
    let out = peregrine(&["perf", "--datagrams", "-t", "500ms", "--rate", "1M"], LIMIT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("datagrams: ") && text.contains(" lost (0.00%)"), "{text}");
    assert!(text.contains("jitter"), "{text}");
}

/// A UDP relay on 127.0.0.1 between clients and `server` that drops every 10th datagram
/// from the server after the first 40 (the handshake goes through). Stops when `stop` is set
/// or after `LIMIT`.
fn lossy_relay(server: SocketAddr, stop: Arc<AtomicBool>, dropped: Arc<AtomicU64>) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server).unwrap();
    for s in [&front, &back] {
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    }
    let addr = front.local_addr().unwrap();
    std::thread::spawn(move || {
        let until = Instant::now() + LIMIT;
        let mut client = None;
        let mut buf = vec![0u8; 65536];
        let mut from_server = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            while let Ok((len, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                let _ = back.send(&buf[..len]);
            }
            while let Ok(len) = back.recv(&mut buf) {
                from_server += 1;
                if from_server > 40 && from_server % 10 == 0 {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(c) = client {
                    let _ = front.send_to(&buf[..len], c);
                }
            }
        }
    });
    addr
}

#[test]
fn losses_through_a_lossy_relay_are_counted() {
    let server = start_server("perf-datagrams-loss", &[], &["--datagrams", "on"]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let target: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let relay = lossy_relay(target, stop.clone(), dropped.clone());
    let relay = relay.to_string();
    let v = perf_json(&["--server", &relay, "--insecure", "-t", "1s", "--rate", "2M"]);
    stop.store(true, Ordering::Relaxed);
    let (sent, received, lost) = (n(&v, "sent"), n(&v, "received"), n(&v, "lost"));
    println!("sent {sent}, received {received}, lost {lost}; relay dropped {dropped:?}");
    assert!(sent > 100, "{v}");
    assert_eq!(received + lost, sent);
    assert!(lost > 0, "the relay dropped datagrams: {v}");
    assert!(received > sent / 2, "most come back: {v}");
    assert!(f(&v, "lost_percent") > 0.0);
    // Never retransmitted: at most what the relay dropped, as each dropped UDP datagram held
    // one or more echoes.
    assert!(lost <= dropped.load(Ordering::Relaxed) * 64, "{lost} lost");
}

#[test]
fn a_server_without_datagrams_is_refused_in_one_line() {
    let server = start_server("perf-datagrams-off", &[], &[]).unwrap();
    let addr = format!("127.0.0.1:{}", server.port());
    let out =
        peregrine(&["perf", "--datagrams", "--server", &addr, "--insecure", "-t", "1s"], LIMIT);
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(line.contains("does not accept DATAGRAM frames"), "{line}");
    assert!(line.contains("--datagrams on"), "{line}");
    // The mode runs alone.
    let out = peregrine(&["perf", "--datagrams", "--rps", "-t", "1s"], LIMIT);
    assert!(!out.status.success());
    assert!(one_error_line(&out).contains("--datagrams runs one connection"));
}
