//! Single-connection goodput over loopback UDP, Peregrine server → Peregrine client against
//! quinn server → quinn client, in the same run with the same payload.
//!
//! `cargo run --release -p peregrine-benches --example goodput_vs_quinn [MiB] [rounds] [only]`
//! (default 500 MiB, 1 round; `only` = `peregrine` or `quinn` runs just that stack, for
//! profiling one of them). The server sends the payload on one unidirectional stream
//! (1 MiB shared chunks); the client counts bytes until FIN. Goodput = payload bits / time from
//! the stream opening to the client's FIN. Peregrine runs its UDP datapath (GSO/GRO where the
//! kernel has them) with 1472-byte datagrams, one worker per endpoint, the server's pinned to
//! core 0 and the client's to core 1 ("one core each side"); quinn runs out of the box on a
//! two-thread tokio runtime (GSO/GRO through quinn-udp, MTU discovery on). Prints Gbit/s for
//! each and the ratio.

// A benchmark measures wall-clock time: it reads the clock itself.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_engine::api::{block_on, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::crypto::{TlsClientConfig, TlsServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const ALPN: &[u8] = b"perf";
const CHUNK: usize = 1 << 20;
/// Writes kept in flight by the Peregrine sender (each completes when acknowledged).
const INFLIGHT: usize = 16;
const LIMIT: Duration = Duration::from_secs(120);

fn cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    (ck.cert.der().clone(), key)
}

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Peregrine → Peregrine: seconds to move `total` bytes. For A/B runs, the environment may
/// override the workers' most datagrams per GSO train (`PEREGRINE_GSO_SEGMENTS`), the
/// per-stream send buffer in bytes (`PEREGRINE_SEND_BUFFER`), the receive batch
/// (`PEREGRINE_RX_BATCH`) and pinning (`PEREGRINE_PIN=0`).
fn peregrine(total: usize, chunk: &Bytes) -> f64 {
    let gso: Option<usize> =
        std::env::var("PEREGRINE_GSO_SEGMENTS").ok().and_then(|v| v.parse().ok());
    let (c, k) = cert();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let transport = || {
        let mut t = TransportConfig::default().with_max_datagram_size(1472).unwrap();
        if let Some(b) = env("PEREGRINE_SEND_BUFFER") {
            let streams = peregrine_engine::streams::StreamsConfig::default();
            t = t.with_streams(streams.with_send_buffer(b).unwrap());
        }
        t
    };
    let mut sc = ServerConfig::new(Arc::new(
        TlsServerConfig::builder(vec![c.clone()], k).alpn_protocols([ALPN]).build().unwrap(),
    ));
    sc.transport = transport();
    let mut cc = ClientConfig::new(Arc::new(
        TlsClientConfig::builder()
            .add_root_certificate(c)
            .unwrap()
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    ));
    cc.transport = transport();
    let (mut se, mut ce) = (EndpointConfig::server(sc), EndpointConfig::client(cc));
    // One core each side: the server's worker on core 0, the client's on core 1 (the
    // application threads float). `PEREGRINE_PIN=0` leaves the workers unpinned.
    if env("PEREGRINE_PIN") != Some(0)
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
    {
        se.worker.cores = vec![Some(0)];
        ce.worker.cores = vec![Some(1)];
    }
    if let Some(n) = env("PEREGRINE_RX_BATCH") {
        se.worker.rx_batch = n as usize;
        ce.worker.rx_batch = n as usize;
    }
    if let Some(n) = gso {
        se.worker.max_gso_segments = n;
        ce.worker.max_gso_segments = n;
    }
    let server = Endpoint::bind(any(), se).unwrap();
    let client = Endpoint::bind(any(), ce).unwrap();
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(LIMIT).unwrap();
    let sconn = server.accept_blocking(Some(LIMIT)).expect("accepted");
    let chunk = chunk.clone();
    let sender = std::thread::spawn(move || {
        let send = sconn.open_uni_blocking(LIMIT).unwrap();
        let mut pending = std::collections::VecDeque::new();
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            left -= n;
            pending.push_back(if left == 0 {
                send.write_fin(chunk.slice(..n))
            } else {
                send.write(chunk.slice(..n))
            });
            if pending.len() >= INFLIGHT {
                let w: peregrine_engine::api::WriteCompletion = pending.pop_front().unwrap();
                assert!(w.wait(LIMIT).unwrap().was_accepted());
            }
        }
        for w in pending {
            assert!(w.wait(LIMIT).unwrap().was_accepted());
        }
        sconn
    });
    let mut recv = conn.accept_uni_blocking(LIMIT).unwrap();
    let start = Instant::now();
    let got = block_on(
        async {
            let mut got = 0usize;
            while let Some(b) = recv.read_chunk(usize::MAX).await.unwrap() {
                got += b.len();
            }
            got
        },
        Some(LIMIT),
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, total);
    let sconn = sender.join().unwrap();
    let st = sconn.stats();
    println!(
        "  peregrine sender: {} datagrams, {} lost, {} congestion events, pmtu {}, cwnd {}, \
         srtt {:?}",
        st.datagrams_sent, st.packets_lost, st.congestion_events, st.pmtu, st.cwnd, st.smoothed_rtt
    );
    for (side, ep) in [("server", &server), ("client", &client)] {
        for w in ep.stats().workers {
            let q = &w.queue;
            println!(
                "  {side} worker {}: {} iterations, rx {} datagrams in {} calls, tx {} datagrams \
                 in {} calls ({} buffers)",
                w.index,
                w.iterations,
                q.rx_datagrams,
                q.rx_calls,
                q.tx_datagrams,
                q.tx_calls,
                w.scheduler.transmits
            );
        }
    }
    conn.close(0u32.into(), b"");
    conn.wait_drained(Duration::from_secs(2));
    secs
}

/// quinn → quinn: seconds to move `total` bytes.
fn quinn_run(total: usize, chunk: &Bytes) -> f64 {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let chunk = chunk.clone();
    rt.block_on(async move {
        let (c, k) = cert();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut stls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![c.clone()], k)
            .unwrap();
        stls.alpn_protocols = vec![ALPN.to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(c).unwrap();
        let mut ctls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        ctls.alpn_protocols = vec![ALPN.to_vec()];
        let scfg = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(stls).unwrap(),
        ));
        let server = quinn::Endpoint::server(scfg, any()).unwrap();
        let mut client = quinn::Endpoint::client(any()).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(ctls).unwrap(),
        )));
        let addr = server.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let mut send = conn.open_uni().await.unwrap();
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                left -= n;
                send.write_chunk(chunk.slice(..n)).await.unwrap();
            }
            send.finish().unwrap();
            let _ = conn.closed().await;
        });
        let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let start = Instant::now();
        let mut got = 0usize;
        while let Some(b) = recv.read_chunk(usize::MAX, true).await.unwrap() {
            got += b.bytes.len();
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(got, total);
        conn.close(0u32.into(), b"");
        let _ = tokio::time::timeout(Duration::from_secs(2), serving).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), client.wait_idle()).await;
        secs
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let only = args.next();
    let (run_p, run_q) = match only.as_deref() {
        None => (true, true),
        Some("peregrine") => (true, false),
        Some("quinn") => (false, true),
        Some(other) => {
            eprintln!("goodput_vs_quinn: unknown stack {other:?} (peregrine or quinn)");
            std::process::exit(2);
        }
    };
    let total = mib << 20;
    let chunk = Bytes::from((0..CHUNK).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    let gbps = |secs: f64| total as f64 * 8.0 / secs / 1e9;
    println!("payload {mib} MiB on one stream, one connection, loopback UDP");
    for round in 1..=rounds {
        if !(run_p && run_q) {
            let (name, secs) = if run_p {
                ("peregrine", peregrine(total, &chunk))
            } else {
                ("quinn", quinn_run(total, &chunk))
            };
            println!("round {round}: {name} {:.2} Gbit/s", gbps(secs));
            continue;
        }
        let p = gbps(peregrine(total, &chunk));
        let q = gbps(quinn_run(total, &chunk));
        println!(
            "round {round}: peregrine {p:.2} Gbit/s   quinn {q:.2} Gbit/s   ratio peregrine/quinn {:.2}",
            p / q
        );
    }
}
