//! An Initial flood against `peregrine server` (issue 13): 20,000 valid client Initials (each a
//! real ClientHello with its own Destination Connection ID, as a hostile client's stack would
//! send them and never follow up) at a few thousand a second over loopback, while a
//! legitimate client connects and fetches a file every 200 ms. Every legitimate handshake must
//! succeed and the server process's peak resident memory (VmHWM, read from /proc) must stay
//! under 128 MB. Before the Retry policy, the handshake timeout and the half-open cap, each
//! flooding Initial held ~30 KB for the 30 s idle timeout (602 MB for 20,000).

// A test driver: it reads the wall clock for its bounds and pacing.
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, Connection, RandomCidGenerator};
use peregrine_engine::crypto::TlsClientConfig;
use support::ServerProc;

const T: Duration = Duration::from_secs(15);
/// Initials in the flood.
const FLOOD: usize = 20_000;
/// Initials sent back to back, then a pause of [`PAUSE`]: about 5,000 a second (the issue's
/// attack sent 20,000 in 10 s), slow enough that loopback delivers nearly all of them.
const BURST: usize = 20;
const PAUSE: Duration = Duration::from_millis(4);
/// The bound the issue sets on the server under the flood.
const MEMORY_BOUND: u64 = 128 << 20;

/// A client TLS configuration trusting `server`'s certificate, speaking hq-interop.
fn client_tls(server: &ServerProc) -> Arc<TlsClientConfig> {
    let tls = TlsClientConfig::builder()
        .add_root_pem_file(server.cert())
        .unwrap()
        .alpn_protocols([&b"hq-interop"[..]])
        .build()
        .unwrap();
    Arc::new(tls)
}

/// The flood: `FLOOD` first datagrams of sans-IO client connections (a padded Initial with a
/// ClientHello), each connection with its own random DCID, dropped after its first datagram.
/// Built once per test process (the datagrams do not depend on the server's address).
fn flood_initials(server: &ServerProc) -> &'static [Vec<u8>] {
    static INITIALS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    INITIALS.get_or_init(|| {
        let cfg = ClientConfig::new(client_tls(server));
        let now = Instant::now();
        let to: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let mut buf = vec![0u8; 65_536];
        (0..FLOOD as u64)
            .map(|i| {
                let cids = Box::new(RandomCidGenerator::new(8, i));
                let mut c =
                    Connection::client_seeded(&cfg, now, to, "localhost", cids, i + 1).unwrap();
                let t = c.poll_transmit(now, &mut buf, 1).expect("a client's first Initial");
                assert!(t.len >= 1200, "an Initial datagram is padded: {}", t.len);
                buf[..t.len].to_vec()
            })
            .collect()
    })
}

/// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// The sum of the samples of the metric `name` (every label set) on the server's /metrics.
fn metric(addr: &str, name: &str) -> f64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one flood run measured.
#[derive(Debug)]
struct Outcome {
    legit_ok: usize,
    legit_failed: Vec<String>,
    rss_before: u64,
    peak: u64,
    rss_after: u64,
    received: f64,
    opened: f64,
    stateless: f64,
    seconds: f64,
}

/// Starts a server with `flags`, floods it while a legitimate client connects and fetches a
/// file every 200 ms, and reports.
fn flood_run(tag: &str, flags: &[&str]) -> Outcome {
    let extra = [flags, &["--metrics", "127.0.0.1:0"]].concat();
    let server = support::start_server(tag, &[("f", b"hello".to_vec())], &extra).unwrap();
    let pid = server.child.id();
    let addr: SocketAddr = server.addr.parse().unwrap();
    let metrics = server.metrics.clone().unwrap();
    let initials = flood_initials(&server);
    let legit = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        EndpointConfig::client(ClientConfig::new(client_tls(&server))),
    )
    .unwrap();
    let fetch = move |ep: &Endpoint| -> Result<Vec<u8>, String> {
        let c = ep.connect(addr, "localhost").map_err(|e| e.to_string())?;
        let c = c.wait(T).map_err(|e| e.to_string())?;
        let (s, mut r) = c.open_bi_blocking(T).map_err(|e| e.to_string())?;
        s.write_fin(b"GET /f\r\n".to_vec());
        r.read_to_end_blocking(100, T).map_err(|e| e.to_string())
    };
    // Warm up (TLS, allocator arenas) before the baseline.
    assert_eq!(fetch(&legit).unwrap(), b"hello");
    let rss_before = status_bytes(pid, "VmRSS");

    let started = Instant::now();
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let legit_thread = {
        let flooding = flooding.clone();
        std::thread::spawn(move || {
            let mut results = Vec::new();
            // At most 100 attempts: one every 200 ms while the flood lasts, at least 10.
            while results.len() < 100
                && (results.len() < 10 || flooding.load(std::sync::atomic::Ordering::Relaxed))
            {
                results.push(fetch(&legit).map(|b| assert_eq!(b, b"hello")));
                std::thread::sleep(Duration::from_millis(200));
            }
            results
        })
    };
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut sent = 0;
    for burst in initials.chunks(BURST) {
        for d in burst {
            // A full socket buffer drops the datagram, as a kernel would; keep the count.
            if sock.send_to(d, addr).is_ok() {
                sent += 1;
            }
        }
        // Nothing reads what the server answers (a blind attacker); drain it so the
        // attacker's own buffer does not matter.
        let mut scratch = [0u8; 2048];
        while sock.recv_from(&mut scratch).is_ok() {}
        std::thread::sleep(PAUSE);
        assert!(started.elapsed() < Duration::from_secs(60), "the flood is bounded in time");
    }
    let seconds = started.elapsed().as_secs_f64();
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let results = legit_thread.join().unwrap();
    // Let the server finish what it received.
    std::thread::sleep(Duration::from_millis(500));
    let outcome = Outcome {
        legit_ok: results.iter().filter(|r| r.is_ok()).count(),
        legit_failed: results.into_iter().filter_map(Result::err).collect(),
        rss_before,
        peak: status_bytes(pid, "VmHWM"),
        rss_after: status_bytes(pid, "VmRSS"),
        received: metric(&metrics, "peregrine_datapath_rx_datagrams_total"),
        opened: metric(&metrics, "peregrine_connections_opened_total"),
        stateless: metric(&metrics, "peregrine_worker_stateless_responses_total"),
        seconds,
    };
    eprintln!(
        "{tag} {flags:?}: {sent} flood Initials in {:.1} s; server received {} datagrams, \
         opened {} connections, sent {} stateless responses; legitimate fetches {} ok, {} failed \
         {:?}; server RSS {} MiB before, peak (VmHWM) {} MiB, {} MiB after",
        outcome.seconds,
        outcome.received,
        outcome.opened,
        outcome.stateless,
        outcome.legit_ok,
        outcome.legit_failed.len(),
        outcome.legit_failed,
        outcome.rss_before >> 20,
        outcome.peak >> 20,
        outcome.rss_after >> 20,
    );
    assert!(sent >= FLOOD * 9 / 10, "the flood was sent: {sent} of {FLOOD}");
    outcome
}

/// The flood with `--retry auto` and with the default settings (which are `--retry auto`,
/// 1024 half-open connections per worker, a 5 s handshake timeout): run one after the other,
/// so that the two servers do not share the two cores.
#[test]
fn initial_flood_leaves_legitimate_handshakes_and_memory_bounded() {
    for (tag, flags) in [("auto", &["--retry", "auto"][..]), ("default", &[][..])] {
        let o = flood_run(tag, flags);
        // The flood reached the server (else the bounds below prove nothing).
        assert!(o.received >= (FLOOD * 3 / 4) as f64, "{tag}: only {} received", o.received);
        assert!(o.legit_ok >= 10, "{tag}: {o:?}");
        assert!(o.legit_failed.is_empty(), "{tag}: legitimate handshakes failed: {o:?}");
        assert!(
            o.peak < MEMORY_BOUND,
            "{tag}: server peak RSS {} MiB under a {FLOOD}-Initial flood",
            o.peak >> 20
        );
        // Retry took over: far fewer connections than flooding Initials.
        assert!(o.opened < (FLOOD / 4) as f64, "{tag}: {} connections for the flood", o.opened);
    }
}

/// The control, without the defences (no Retry, no half-open cap worth the name, handshake
/// timeout as long as the idle timeout), to show what the bound above catches. Ignored by
/// default: it makes the server hold several hundred MB. Run it with
/// `cargo test --release -p peregrine --test flood -- --ignored`.
#[test]
#[ignore]
fn initial_flood_without_the_defences_exceeds_the_bound() {
    let o = flood_run(
        "control",
        &["--retry", "never", "--max-handshakes", "1048576", "--handshake-timeout", "30s"],
    );
    assert!(o.peak >= MEMORY_BOUND, "the control stayed under the bound: {o:?}");
}
