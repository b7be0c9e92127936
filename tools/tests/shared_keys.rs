//! `--token-key-file` (issue 13): servers given the same key file accept each other's Retry
//! tokens and reset each other's connections; with different keys they do neither.
//!
//! A UDP relay in the test stands between a real client and two `peregrine server` processes:
//! both servers see the relay's one address (the address a Retry token is bound to), and the
//! relay decides which server the client's datagrams reach.

// A test driver: it reads the wall clock for its bounds.
#![allow(clippy::disallowed_methods)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::api::{Connection, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, TransportConfig};
use peregrine_engine::crypto::TlsClientConfig;
use support::ServerProc;

const T: Duration = Duration::from_secs(10);

/// A relay: the client's datagrams go to server A until the switch is set (by the test, or by
/// a Retry from A when `switch_on_retry`), then to server B; what either server sends goes back
/// to the client.
struct Relay {
    addr: SocketAddr,
    to_b: Arc<AtomicBool>,
    retries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(a: SocketAddr, b: SocketAddr, switch_on_retry: bool) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = sock.local_addr().unwrap();
        let to_b = Arc::new(AtomicBool::new(false));
        let retries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (to_b2, retries2, stop2) = (to_b.clone(), retries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut client: Option<SocketAddr> = None;
            let mut buf = vec![0u8; 65_536];
            // Bounded: until told to stop, at most 60 s.
            while !stop2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let d = &buf[..n];
                if from == a || from == b {
                    if from == a && is_retry(d) {
                        retries2.fetch_add(1, Ordering::Relaxed);
                        if switch_on_retry {
                            to_b2.store(true, Ordering::Relaxed);
                        }
                    }
                    if let Some(c) = client {
                        let _ = sock.send_to(d, c);
                    }
                } else {
                    client = Some(from);
                    let _ = sock.send_to(d, if to_b2.load(Ordering::Relaxed) { b } else { a });
                }
            }
        });
        Self { addr, to_b, retries, stop, thread: Some(thread) }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A QUIC v1 Retry packet: long header, version 1, type 3.
fn is_retry(d: &[u8]) -> bool {
    d.len() > 5 && d[0] & 0x80 != 0 && d[1..5] == [0, 0, 0, 1] && (d[0] >> 4) & 3 == 3
}

/// A key file of 64 hex digits made of `byte`.
fn key_file(dir: &Path, byte: u8) -> String {
    let p = dir.join(format!("key{byte}"));
    std::fs::write(&p, format!("{}\n", format!("{byte:02x}").repeat(32))).unwrap();
    p.to_string_lossy().into_owned()
}

/// A client trusting both servers' certificates, with a short idle timeout.
fn client(a: &ServerProc, b: &ServerProc) -> Endpoint {
    let tls = TlsClientConfig::builder()
        .add_root_pem_file(a.cert())
        .unwrap()
        .add_root_pem_file(b.cert())
        .unwrap()
        .alpn_protocols([&b"hq-interop"[..]])
        .build()
        .unwrap();
    let mut c = ClientConfig::new(Arc::new(tls));
    c.transport =
        TransportConfig::default().with_idle_timeout(Some(Duration::from_secs(2))).unwrap();
    Endpoint::bind("127.0.0.1:0".parse().unwrap(), EndpointConfig::client(c)).unwrap()
}

/// `GET /who`: which server answered.
fn who(conn: &Connection) -> Result<String, String> {
    let (s, mut r) = conn.open_bi_blocking(T).map_err(|e| e.to_string())?;
    s.write_fin(b"GET /who\r\n".to_vec());
    let b = r.read_to_end_blocking(100, T).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

fn server(tag: &str, who: &str, flags: &[&str]) -> ServerProc {
    support::start_server(tag, &[("who", who.as_bytes().to_vec())], flags).unwrap()
}

/// A Retry token minted by server A opens on server B when both read the same key file, and is
/// refused (INVALID_TOKEN) when B's key differs. Both servers retry every client, so B admits
/// the client only on the strength of A's token.
#[test]
fn retry_tokens_are_valid_across_servers_sharing_the_key() {
    let dir = support::temp_dir("tokens");
    let (k1, k2) = (key_file(&dir, 1), key_file(&dir, 2));
    let flags =
        |k: &str| vec!["--retry".to_owned(), "always".into(), "--token-key-file".into(), k.into()];
    let args = |v: &Vec<String>| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    for (same, kb) in [(true, &k1), (false, &k2)] {
        let fa = flags(&k1);
        let fb = flags(kb);
        let a = server("ta", "A", &fa.iter().map(String::as_str).collect::<Vec<_>>());
        let b = server("tb", "B", &fb.iter().map(String::as_str).collect::<Vec<_>>());
        let relay = Relay::start(a.addr.parse().unwrap(), b.addr.parse().unwrap(), true);
        let ep = client(&a, &b);
        let conn = ep.connect(relay.addr, "localhost").unwrap().wait(T);
        let retries = relay.retries.load(Ordering::Relaxed);
        eprintln!(
            "A {} / B {}: {retries} Retry from A, then B: {:?}",
            args(&fa),
            args(&fb),
            conn.as_ref().map(|_| "connected").map_err(|e| e.to_string())
        );
        assert_eq!(retries, 1, "A answered the first Initial with a Retry");
        assert!(relay.to_b.load(Ordering::Relaxed));
        if same {
            let conn = conn.expect("B accepts A's token");
            assert_eq!(who(&conn).unwrap(), "B", "the connection is with B");
        } else {
            let Err(err) = conn else { panic!("B accepted a token sealed with another key") };
            let err = err.to_string();
            assert!(err.contains("INVALID_TOKEN"), "{err}");
        }
    }
}

/// A server that never saw a connection resets it (RFC 9000 §10.3) when it shares the key file
/// with the server that had it: the client's connection ends with a stateless reset at once.
/// With another key the reset token does not match, the client ignores the reset, and the
/// connection ends by its 2 s idle timeout instead.
#[test]
fn stateless_resets_are_valid_across_servers_sharing_the_key() {
    let dir = support::temp_dir("resets");
    let (k1, k2) = (key_file(&dir, 1), key_file(&dir, 2));
    for (same, kb) in [(true, &k1), (false, &k2)] {
        let a = server("ra", "A", &["--retry", "never", "--token-key-file", &k1]);
        let b = server("rb", "B", &["--retry", "never", "--token-key-file", kb]);
        let relay = Relay::start(a.addr.parse().unwrap(), b.addr.parse().unwrap(), false);
        let ep = client(&a, &b);
        let conn = ep.connect(relay.addr, "localhost").unwrap().wait(T).unwrap();
        assert_eq!(who(&conn).unwrap(), "A");
        // A "loses" the connection: from now on its packets reach B, which never saw it.
        relay.to_b.store(true, Ordering::Relaxed);
        let outcome = who(&conn);
        let key = if same { "shared" } else { "different" };
        eprintln!("B's key {key}: the request after the switch: {outcome:?}");
        // The request fails with how the connection ended.
        let reason = outcome.expect_err("B cannot answer for A's connection");
        if same {
            assert!(reason.contains("stateless reset"), "{reason}");
        } else {
            assert!(reason.contains("idle timeout"), "{reason}");
        }
    }
}
