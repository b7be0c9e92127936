//! `peregrine server --metrics` held by idle TCP connections (issue 13): the metrics server
//! used to serve one connection at a time, so one idle connection delayed a scrape by ~2 s and
//! ~130 made `/metrics` time out. With 200 idle connections open (20 of them with half-sent
//! requests), a scrape must be answered in under 100 ms, the bound.
//!
//! The bound is checked on the fastest of five scrapes: on a machine shared with other builds,
//! any one scrape can lose its core for longer than 100 ms; a server held by idle connections
//! makes every scrape wait at least the 2 s request deadline of one of them, so the fastest of
//! five still fails then.

// A test driver: it reads the wall clock to time the scrapes.
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The bound on a scrape's answer.
const BOUND: Duration = Duration::from_millis(100);

/// One scrape: the whole answer and how long it took from connecting.
fn scrape(addr: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    (text, started.elapsed())
}

#[test]
fn two_hundred_idle_connections_do_not_delay_a_scrape() {
    let server = support::start_server("metrics", &[], &["--metrics", "127.0.0.1:0"]).unwrap();
    let addr = server.metrics.clone().unwrap();
    let (_, alone) = scrape(&addr);
    let mut idle = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).unwrap();
        if i % 10 == 0 {
            s.write_all(b"GET /metr").unwrap();
        }
        idle.push(s);
    }
    // The server has accepted them (they are in its backlog or its list either way).
    std::thread::sleep(Duration::from_millis(100));
    let mut times = Vec::new();
    for _ in 0..5 {
        let (text, took) = scrape(&addr);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("peregrine_connections_opened_total"), "{text}");
        times.push(took);
    }
    let fastest = times.iter().min().copied().unwrap();
    eprintln!(
        "scrape alone: {alone:?}; with 200 idle connections open: {times:?} (fastest {fastest:?})"
    );
    assert!(fastest < BOUND, "the fastest of 5 scrapes took {fastest:?} with 200 idle connections");
    // Every one is answered well before one idle connection's 2 s deadline would have passed.
    assert!(times.iter().all(|t| *t < Duration::from_secs(2)), "{times:?}");
    drop(idle);
}
