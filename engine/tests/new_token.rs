//! NEW_TOKEN address validation (RFC 9000 §8.1.3) with whole endpoints on the simulated
//! network, on virtual time: the server gives each client a token once the handshake is
//! confirmed; the client's next connection to that server name carries it and skips the
//! Retry (and the anti-amplification limit); an expired, foreign or modified token is
//! ignored (the client gets a Retry, the connection succeeds), never a reason to close.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_datapath::sim::{Blackhole, LinkConfig};
use peregrine_engine::api::{Connection, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ConnectionStats, ServerConfig, TokenStore, TransportConfig};
use peregrine_engine::endpoint::RetryPolicy;
use peregrine_engine::sim::SimRuntime;
use peregrine_engine::worker::WorkerStats;

const SERVER: &str = "10.0.0.1:443";
const CLIENT: &str = "10.0.0.2:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn server_config(retry: RetryPolicy, key: u8) -> ServerConfig {
    let mut sc = support::server_config(TransportConfig::default());
    sc.retry = retry;
    sc.token_key = Some([key; 32]);
    sc
}

/// A client endpoint at `at` whose token store the test keeps.
fn client(rt: &mut SimRuntime, at: &str) -> (Endpoint, Arc<TokenStore>) {
    let store = Arc::new(TokenStore::default());
    let mut cc = support::client_config(TransportConfig::default());
    cc.token_store = Some(store.clone());
    (rt.endpoint(&[addr(at)], EndpointConfig::client(cc)).unwrap(), store)
}

/// Connects to `server`, waits for the NEW_TOKEN token of the connection to reach the store,
/// closes; returns the client's view of the connection.
fn connect(
    rt: &mut SimRuntime,
    client: &Endpoint,
    store: &TokenStore,
    server: SocketAddr,
) -> ConnectionStats {
    let held = store.len("localhost");
    let conn: Connection = rt
        .run_until(client.connect(server, "localhost").unwrap(), Duration::from_secs(4))
        .expect("handshake within 4 s of virtual time")
        .expect("connected");
    assert!(
        rt.wait_for(Duration::from_secs(1), || store.len("localhost") > held
            || conn.stats().new_tokens_received > 0),
        "a NEW_TOKEN frame arrived"
    );
    rt.run_for(Duration::from_millis(50));
    let stats = conn.stats();
    conn.close(0u32.into(), b"done");
    rt.run_for(Duration::from_millis(200));
    stats
}

fn server_stats(rt: &SimRuntime) -> WorkerStats {
    rt.worker_stats()[0].clone()
}

/// Under `--retry always`, the first connection pays the Retry round trip and receives a
/// token; the second carries it and is admitted at once: no second Retry.
//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
//= type=test
//# The server uses the NEW_TOKEN frame (Section 19.7) to provide the
//# client with an address validation token that can be used to validate
//# future connections.
#[test]
fn a_token_from_one_connection_skips_the_retry_of_the_next() {
    let mut rt = SimRuntime::new(41);
    let scfg = EndpointConfig::server(server_config(RetryPolicy::Always, 1));
    let server = rt.endpoint(&[addr(SERVER)], scfg).unwrap();
    let (client, store) = client(&mut rt, CLIENT);

    let first = connect(&mut rt, &client, &store, server.local_addr());
    let s = server_stats(&rt);
    println!(
        "first: retry {} token used {} tokens received {}; server: {} Retry, {} token sent",
        first.retry, first.new_token_used, first.new_tokens_received, s.retries, s.new_tokens_sent
    );
    assert!(first.retry && !first.new_token_used);
    assert_eq!(first.new_tokens_received, 1);
    assert_eq!((s.retries, s.new_tokens_sent, s.new_tokens_accepted), (1, 1, 0));
    assert_eq!(store.len("localhost"), 1);

    let second = connect(&mut rt, &client, &store, server.local_addr());
    let s = server_stats(&rt);
    println!(
        "second: retry {} token used {}; server: {} Retry, {} tokens accepted, {} sent",
        second.retry, second.new_token_used, s.retries, s.new_tokens_accepted, s.new_tokens_sent
    );
    assert!(second.new_token_used, "the second connection carried the token");
    assert!(!second.retry, "and was admitted without a Retry");
    assert_eq!((s.retries, s.new_tokens_accepted, s.tokens_ignored), (1, 1, 0));
    // The first token was used once and is gone; the second connection's own token is kept.
    assert_eq!(s.new_tokens_sent, 2);
    assert_eq!(store.len("localhost"), 1);
}

/// A client with no token store (`token_store: None`) neither sends nor keeps tokens: every
/// connection gets a Retry.
#[test]
fn without_a_token_store_every_connection_is_retried() {
    let mut rt = SimRuntime::new(42);
    let scfg = EndpointConfig::server(server_config(RetryPolicy::Always, 1));
    let server = rt.endpoint(&[addr(SERVER)], scfg).unwrap();
    let mut cc = support::client_config(TransportConfig::default());
    cc.token_store = None;
    let client = rt.endpoint(&[addr(CLIENT)], EndpointConfig::client(cc)).unwrap();
    for _ in 0..2 {
        let conn = rt
            .run_until(client.connect(server.local_addr(), "localhost").unwrap(), T4)
            .unwrap()
            .unwrap();
        rt.run_for(Duration::from_millis(100));
        let st = conn.stats();
        assert!(st.retry && !st.new_token_used && st.new_tokens_received == 1, "{st:?}");
        conn.close(0u32.into(), b"");
        rt.run_for(Duration::from_millis(100));
    }
    assert_eq!(server_stats(&rt).retries, 2);
}

const T4: Duration = Duration::from_secs(4);

/// Tokens the server cannot use are ignored, as if absent: an expired one, one sealed by a
/// server with another key, one modified in its body, and one whose kind octet was changed to
/// read "Retry" (it no longer authenticates, and it is not sent to a Retry's connection ID).
/// Each time the client gets a Retry and connects; nothing closes with INVALID_TOKEN.
//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
//= type=test
//# If the token is invalid, then the
//# server SHOULD proceed as if the client did not have a validated
//# address, including potentially sending a Retry packet.
#[test]
fn expired_foreign_and_modified_tokens_lead_to_a_retry_not_a_close() {
    let mut rt = SimRuntime::new(43);
    let mut sc = server_config(RetryPolicy::Always, 1);
    sc.new_token_lifetime = Duration::from_secs(5);
    let server = rt.endpoint(&[addr(SERVER)], EndpointConfig::server(sc)).unwrap();
    // Another server for "localhost" with another token key.
    let other_cfg = EndpointConfig::server(server_config(RetryPolicy::Always, 2));
    let other = rt.endpoint(&[addr("10.0.0.3:443")], other_cfg).unwrap();
    let (client, store) = client(&mut rt, CLIENT);
    connect(&mut rt, &client, &store, server.local_addr());

    // Expired: 5 s lifetime, used 7 s later.
    rt.run_for(Duration::from_secs(7));
    let st = connect(&mut rt, &client, &store, server.local_addr());
    let s = server_stats(&rt);
    println!(
        "expired: token used {} retry {}; ignored {}",
        st.new_token_used, st.retry, s.tokens_ignored
    );
    assert!(st.new_token_used && st.retry, "{st:?}");
    assert_eq!((s.retries, s.tokens_ignored, s.new_tokens_accepted), (2, 1, 0));

    // Foreign: the token of `server` at `other` (same server name, another key).
    let st = connect(&mut rt, &client, &store, other.local_addr());
    let o = &rt.worker_stats()[1];
    println!(
        "foreign: token used {} retry {}; ignored {}",
        st.new_token_used, st.retry, o.tokens_ignored
    );
    assert!(st.new_token_used && st.retry, "{st:?}");
    assert_eq!((o.retries, o.tokens_ignored, o.invalid_retry_tokens), (1, 1, 0));

    // Modified: a fresh token of `server`, one body octet flipped; then its kind octet.
    connect(&mut rt, &client, &store, server.local_addr());
    let good = store.take("localhost").expect("a fresh token");
    store.clear();
    for (what, i, new) in [("body", good.len() / 2, good[good.len() / 2] ^ 1), ("kind", 0, 1)] {
        assert_ne!(good[i], new);
        let mut bad = good.clone();
        bad[i] = new;
        store.insert("localhost", &bad);
        let before = server_stats(&rt);
        let st = connect(&mut rt, &client, &store, server.local_addr());
        let s = server_stats(&rt);
        println!("modified {what}: token used {} retry {}", st.new_token_used, st.retry);
        assert!(st.new_token_used && st.retry, "{what}: {st:?}");
        assert_eq!(s.tokens_ignored - before.tokens_ignored, 1, "{what}");
        assert_eq!(s.invalid_retry_tokens, 0, "{what}: no INVALID_TOKEN close");
        store.clear();
    }
    // The unmodified token still works: the failures above came from the changes.
    store.insert("localhost", &good);
    let st = connect(&mut rt, &client, &store, server.local_addr());
    assert!(st.new_token_used && !st.retry, "{st:?}");
}

/// A client whose address the server validated with a NEW_TOKEN token gets the server's
/// whole first flight and its probes even when nothing more comes from it; without a token
/// the server stops at three times the bytes it received (RFC 9000 §8). The client's
/// packets after its first Initial are dropped on the way, so the server's handshake cannot
/// complete and only its own probes flow until its handshake timeout.
//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
//= type=test
//# If the validation succeeds, the server SHOULD then allow
//# the handshake to proceed.
#[test]
fn a_token_lifts_the_anti_amplification_limit() {
    let mut sent = Vec::new();
    for with_token in [false, true] {
        let mut rt = SimRuntime::new(44);
        let path = LinkConfig { delay: Duration::from_millis(10), ..LinkConfig::default() };
        rt.network().set_path(addr(SERVER), addr(CLIENT), path.clone()).unwrap();
        let scfg = EndpointConfig::server(server_config(RetryPolicy::Never, 1));
        let server = rt.endpoint(&[addr(SERVER)], scfg).unwrap();
        let (client, store) = client(&mut rt, CLIENT);
        connect(&mut rt, &client, &store, server.local_addr());
        if !with_token {
            store.clear();
        }
        rt.run_for(Duration::from_secs(1));
        let before_tx = server_stats(&rt).queue.tx_bytes;
        let before_rx = server_stats(&rt).queue.rx_bytes;
        let connecting = client.connect(server.local_addr(), "localhost").unwrap();
        // The client's first datagram leaves now; everything it sends after is dropped.
        let start = rt.now() + Duration::from_millis(1);
        let cut = LinkConfig {
            blackholes: vec![Blackhole { start, end: start + Duration::from_secs(60) }],
            ..path
        };
        rt.network().set_link(addr(CLIENT), addr(SERVER), cut).unwrap();
        // The client completes its side (it needs nothing more from the server); the
        // server never sees its Finished and probes until its handshake timeout (5 s).
        let _ = rt.run_until(connecting, Duration::from_secs(1));
        rt.run_for(Duration::from_secs(7));
        let dropped = rt.network().link_stats(addr(CLIENT), addr(SERVER)).dropped_blackhole;
        assert!(dropped > 0, "the client's later packets were dropped");
        let s = server_stats(&rt);
        let (tx, rx) = (s.queue.tx_bytes - before_tx, s.queue.rx_bytes - before_rx);
        println!(
            "token {with_token}: server received {rx} bytes, sent {tx} ({:.1}x); token accepted {}",
            tx as f64 / rx as f64,
            s.new_tokens_accepted
        );
        assert_eq!(s.new_tokens_accepted, u64::from(with_token));
        sent.push((tx, rx));
    }
    let ((tx0, rx0), (tx1, rx1)) = (sent[0], sent[1]);
    assert!(tx0 <= 3 * rx0, "without a token the limit holds: {tx0} > 3 x {rx0}");
    assert!(tx1 > 3 * rx1, "with a token the server probes past 3x: {tx1} <= 3 x {rx1}");
}
