//! NEW_TOKEN tokens are valid across the workers of one `peregrine server` (issue 13): with
//! `--workers 2 --retry always`, a token one worker minted admits the client's next connection
//! on the other worker without a Retry.
//!
//! Which worker did what is read from the server's per-worker metrics around each connection
//! (checked, not assumed): one NEW_TOKEN token is minted per connection by the worker that
//! owns it (`peregrine_worker_new_tokens_sent_total{worker=..}`), and the worker that admits a
//! connection on a token counts it (`peregrine_worker_new_tokens_accepted_total{worker=..}`).
//! The worker a new connection lands on depends on its random first Destination Connection ID,
//! so the test connects until a connection lands on the other worker than the one before it
//! (at most 24 connections: the chance of missing is about 2^-23).

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, TokenStore};
use peregrine_engine::crypto::TlsClientConfig;

const T: Duration = Duration::from_secs(10);
const TRIES: usize = 24;

/// Per-worker values of the counters this test reads, indexed by worker.
#[derive(Clone, Debug, Default, PartialEq)]
struct Workers {
    retries: [f64; 2],
    sent: [f64; 2],
    accepted: [f64; 2],
    ignored: [f64; 2],
}

fn scrape(addr: &str) -> Workers {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let value = |name: &str, worker: usize| -> f64 {
        let label = format!("worker=\"{worker}\"");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .filter(|l| l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let per = |name: &str| [value(name, 0), value(name, 1)];
    Workers {
        retries: per("peregrine_worker_retries_total"),
        sent: per("peregrine_worker_new_tokens_sent_total"),
        accepted: per("peregrine_worker_new_tokens_accepted_total"),
        ignored: per("peregrine_worker_tokens_ignored_total"),
    }
}

/// The one worker whose counter `f` grew by exactly 1 (the others unchanged).
fn which(before: &Workers, after: &Workers, f: fn(&Workers) -> [f64; 2]) -> Option<usize> {
    let d: Vec<f64> = (0..2).map(|w| f(after)[w] - f(before)[w]).collect();
    match d[..] {
        [1.0, 0.0] => Some(0),
        [0.0, 1.0] => Some(1),
        _ => None,
    }
}

#[test]
fn a_token_minted_by_one_worker_is_accepted_by_the_other() {
    let server = support::start_server(
        "nt",
        &[("hello", b"hello".to_vec())],
        &["--workers", "2", "--retry", "always", "--metrics", "127.0.0.1:0"],
    )
    .unwrap();
    let metrics = server.metrics.clone().unwrap();
    let tls = TlsClientConfig::builder()
        .add_root_pem_file(server.cert())
        .unwrap()
        .alpn_protocols([&b"hq-interop"[..]])
        .build()
        .unwrap();
    let store = Arc::new(TokenStore::default());
    let mut config = ClientConfig::new(Arc::new(tls));
    config.token_store = Some(store.clone());
    let ep =
        Endpoint::bind("127.0.0.1:0".parse().unwrap(), EndpointConfig::client(config)).unwrap();
    let addr = server.addr.parse().unwrap();

    // The worker that minted the token the client holds.
    let mut minted_by: Option<usize> = None;
    let mut crossed = None;
    for i in 0..TRIES {
        let before = scrape(&metrics);
        let conn = ep.connect(addr, "localhost").unwrap().wait(T).expect("connected");
        let (s, mut r) = conn.open_bi_blocking(T).unwrap();
        s.write_fin(b"GET /hello\r\n".to_vec());
        assert_eq!(r.read_to_end_blocking(100, T).unwrap(), b"hello");
        // The NEW_TOKEN frame came with the server's first 1-RTT packets; wait for the store.
        let deadline = Instant::now() + T;
        while conn.stats().new_tokens_received == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = conn.stats();
        conn.close(0u32.into(), b"");
        assert_eq!(store.len("localhost"), 1, "connection {i}: the token it received is stored");
        // The server publishes its counters every turn: wait until this connection's token
        // shows.
        let mut after = scrape(&metrics);
        while after.sent.iter().sum::<f64>() < before.sent.iter().sum::<f64>() + 1.0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
            after = scrape(&metrics);
        }
        let owner = which(&before, &after, |w| w.sent).expect("one worker minted one token");
        let retried_by = which(&before, &after, |w| w.retries);
        let accepted_by = which(&before, &after, |w| w.accepted);
        eprintln!(
            "connection {i}: owned by worker {owner}, token used {} (minted by {minted_by:?}), \
             accepted by {accepted_by:?}, Retry {} (from {retried_by:?}); client saw retry {}",
            stats.new_token_used,
            after.retries.iter().sum::<f64>() - before.retries.iter().sum::<f64>(),
            stats.retry
        );
        assert_eq!(after.ignored, before.ignored, "no token was ignored");
        match minted_by {
            None => {
                // The first connection: no token yet, so a Retry (from whichever worker its
                // first Initial reached).
                assert!(!stats.new_token_used && stats.retry, "{stats:?}");
                assert!(retried_by.is_some(), "one Retry: {before:?} -> {after:?}");
                assert_eq!(accepted_by, None);
            }
            Some(m) => {
                // Every later connection carries the previous one's token: admitted on it by
                // the worker that owns the connection, with no Retry.
                assert!(stats.new_token_used && !stats.retry, "connection {i}: {stats:?}");
                assert_eq!(after.retries, before.retries, "connection {i}: no Retry");
                assert_eq!(accepted_by, Some(owner), "connection {i}: admitted by its owner");
                if owner != m {
                    crossed = Some((m, owner));
                }
            }
        }
        minted_by = Some(owner);
        if crossed.is_some() {
            break;
        }
    }
    let (m, a) = crossed.expect("within 24 connections one landed on the other worker");
    eprintln!("a token minted by worker {m} admitted a connection on worker {a}, no Retry");
}
