//! A draft-banks-quic-performance peer on s2n-quic (ALPN `perf`), the counterpart of the quinn
//! peer (`benches/examples/quinn_perf.rs`) for side-by-side runs (scripts/bench_peers.sh):
//!
//! ```sh
//! s2n-perf server --listen 127.0.0.1:4433 --cert C.pem --key K.pem [--max-mtu 9000]
//!     [--congestion bbr|cubic] [--threads 2]
//! s2n-perf client --server 127.0.0.1:4433 --ca C.pem [--download N] [--upload N]
//!     [--streams N] [--max-mtu 9000] [--congestion bbr|cubic] [--threads 2] [--json]
//! ```
//!
//! On each bidirectional stream the client sends the response size it wants as 8 bytes
//! (big-endian), then its upload, then FIN; the server drains the upload and answers with that
//! many bytes, then FIN. The defaults are those of s2n-quic's own perf server (`s2n-quic-qns
//! perf server`): the crate's default limits, a maximum MTU of 9000 bytes probed from 1280,
//! BBR, s2n-tls. The server prints `listening on ADDR`, serves until SIGINT/SIGTERM and then
//! prints its counters as one JSON line; the client's `--json` prints one object with the keys
//! of `peregrine perf --json` and `quinn_perf client --json`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use s2n_quic::client::Connect;
use s2n_quic::provider::congestion_controller::{Bbr, Cubic};
use s2n_quic::provider::io;
use s2n_quic::provider::tls::default as tls;
use s2n_quic::stream::{ReceiveStream, SendStream};
use s2n_quic::{Client, Connection, Server};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

/// The perf protocol's ALPN.
const ALPN: &str = "perf";
/// Size of the shared payload buffer every write slices.
const CHUNK: usize = 256 * 1024;
/// s2n-quic's perf server: the first MTU it uses before probing.
const INITIAL_MTU: u16 = 1280;

/// A draft-banks-quic-performance peer on s2n-quic.
#[derive(Parser, Debug)]
#[command(name = "s2n-perf")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Congestion {
    Bbr,
    Cubic,
}

#[derive(clap::Args, Debug)]
struct Transport {
    /// Largest UDP payload probed for (s2n-quic's perf default 9000).
    #[arg(long, default_value_t = 9000)]
    max_mtu: u16,
    /// Congestion controller (s2n-quic's perf default BBR).
    #[arg(long, value_enum, default_value_t = Congestion::Bbr)]
    congestion: Congestion,
    /// tokio worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the perf protocol until SIGINT/SIGTERM.
    Server {
        /// Address to listen on (port 0 picks one; printed on stdout).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Certificate chain, PEM.
        #[arg(long)]
        cert: PathBuf,
        /// Private key, PEM.
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        transport: Transport,
    },
    /// Download and/or upload against a perf server.
    Client {
        /// Perf server HOST:PORT.
        #[arg(long)]
        server: String,
        /// CA certificate, PEM.
        #[arg(long)]
        ca: PathBuf,
        /// Bytes each stream downloads (K, M, G suffixes: powers of 1024).
        #[arg(long, value_parser = parse_size, default_value = "0")]
        download: u64,
        /// Bytes each stream uploads.
        #[arg(long, value_parser = parse_size, default_value = "0")]
        upload: u64,
        /// Concurrent streams.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        streams: u32,
        #[command(flatten)]
        transport: Transport,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Server { transport, .. } | Cmd::Client { transport, .. } => transport.threads,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(threads))
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("tokio runtime: {e}").into()));
    if let Err(e) = rt.block_on(run(cli)) {
        fail(e);
    }
}

fn fail(e: Error) -> ! {
    eprintln!("s2n-perf: {e}");
    std::process::exit(1);
}

/// Parses `123`, `64K`, `10M`, `1G` (powers of 1024), like `peregrine perf`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 1048576, 64K, 10M, 1G)"))
}

fn payload() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Server { listen, cert, key, transport } => {
            serve(listen, &cert, &key, &transport).await
        }
        Cmd::Client { server, ca, download, upload, streams, transport, json } => {
            let addr = resolve(&server)?;
            let host = server.rsplit_once(':').map_or("localhost", |(h, _)| h);
            let host = host.trim_matches(['[', ']']);
            let name = if host.parse::<std::net::IpAddr>().is_ok() { "localhost" } else { host };
            let r = client(addr, name, &ca, download, upload, streams, &transport).await?;
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            let total = r.up + r.down;
            if json {
                let v = serde_json::json!({
                    "implementation": "s2n-quic",
                    "mode": "sizes",
                    "connections": 1,
                    "streams": streams,
                    "elapsed_s": secs,
                    "bytes_uploaded": r.up,
                    "bytes_downloaded": r.down,
                    "bytes_total": total,
                    "goodput_gbps": total as f64 * 8.0 / secs / 1e9,
                });
                println!("{v}");
            } else {
                println!(
                    "s2n-quic perf: {streams} stream(s), {secs:.2} s, up {} down {} bytes, \
                     goodput {:.3} Gbit/s",
                    r.up,
                    r.down,
                    total as f64 * 8.0 / secs / 1e9
                );
            }
            Ok(())
        }
    }
}

fn resolve(server: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> =
        server.to_socket_addrs().map_err(|e| format!("--server '{server}': {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("--server '{server}': no address").into())
}

fn io_provider(addr: SocketAddr, t: &Transport) -> Result<io::Default> {
    Ok(io::Default::builder()
        .with_receive_address(addr)?
        .with_initial_mtu(INITIAL_MTU.min(t.max_mtu))?
        .with_max_mtu(t.max_mtu)?
        .build()?)
}

#[derive(Default)]
struct Counters {
    streams: AtomicU64,
    streams_failed: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

async fn serve(listen: SocketAddr, cert: &Path, key: &Path, t: &Transport) -> Result<()> {
    let tls = tls::Server::builder()
        .with_certificate(cert, key)?
        .with_application_protocols([ALPN].iter())?
        .build()?;
    let builder = Server::builder().with_tls(tls)?.with_io(io_provider(listen, t)?)?;
    let mut server = match t.congestion {
        Congestion::Bbr => builder.with_congestion_controller(Bbr::default())?.start()?,
        Congestion::Cubic => builder.with_congestion_controller(Cubic::default())?.start()?,
    };
    println!("listening on {}", server.local_addr()?);
    let counters = Arc::new(Counters::default());
    let data = payload();
    let accept = {
        let counters = counters.clone();
        async move {
            while let Some(conn) = server.accept().await {
                tokio::spawn(serve_connection(conn, counters.clone(), data.clone()));
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = accept => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let c = &counters;
    println!(
        "{}",
        serde_json::json!({
            "implementation": "s2n-quic",
            "streams": c.streams.load(Ordering::Relaxed),
            "streams_failed": c.streams_failed.load(Ordering::Relaxed),
            "bytes_received": c.bytes_received.load(Ordering::Relaxed),
            "bytes_sent": c.bytes_sent.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

async fn serve_connection(mut conn: Connection, counters: Arc<Counters>, data: Bytes) {
    while let Ok(Some(stream)) = conn.accept_bidirectional_stream().await {
        let counters = counters.clone();
        let data = data.clone();
        tokio::spawn(async move {
            counters.streams.fetch_add(1, Ordering::Relaxed);
            let (mut rx, tx) = stream.split();
            let r = async {
                // A stream closed before its 8-byte size is ignored (draft §2.3.1).
                let size = read_size(&mut rx, &counters).await?;
                let (a, b) = tokio::join!(drain(rx, &counters), send(tx, size, &data, &counters));
                a.and(b)
            };
            if r.await.is_err() {
                counters.streams_failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Reads the 8-byte response size; bytes after it count as upload.
async fn read_size(rx: &mut ReceiveStream, c: &Counters) -> Result<u64> {
    let mut size = [0u8; 8];
    let mut have = 0;
    while have < 8 {
        let chunk = rx.receive().await?.ok_or("stream ended before its 8-byte size")?;
        let n = chunk.len().min(8 - have);
        size[have..have + n].copy_from_slice(&chunk[..n]);
        have += n;
        c.bytes_received.fetch_add((chunk.len() - n) as u64, Ordering::Relaxed);
    }
    Ok(u64::from_be_bytes(size))
}

async fn drain(mut rx: ReceiveStream, c: &Counters) -> Result<u64> {
    let mut chunks: [Bytes; 64] = std::array::from_fn(|_| Bytes::new());
    let mut total = 0u64;
    loop {
        let (n, open) = rx.receive_vectored(&mut chunks).await?;
        let got: u64 = chunks[..n].iter().map(|b| b.len() as u64).sum();
        chunks[..n].iter_mut().for_each(|b| *b = Bytes::new());
        total += got;
        c.bytes_received.fetch_add(got, Ordering::Relaxed);
        if !open {
            return Ok(total);
        }
    }
}

async fn send(mut tx: SendStream, mut left: u64, data: &Bytes, c: &Counters) -> Result<u64> {
    let total = left;
    while left > 0 {
        let n = (left as usize).min(data.len());
        tx.send(data.slice(..n)).await?;
        left -= n as u64;
        c.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    tx.finish()?;
    Ok(total)
}

struct ClientResult {
    up: u64,
    down: u64,
    elapsed: Duration,
}

async fn client(
    addr: SocketAddr,
    name: &str,
    ca: &Path,
    download: u64,
    upload: u64,
    streams: u32,
    t: &Transport,
) -> Result<ClientResult> {
    let tls = tls::Client::builder()
        .with_certificate(ca)?
        .with_application_protocols([ALPN].iter())?
        .build()?;
    let local: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let builder = Client::builder().with_tls(tls)?.with_io(io_provider(local, t)?)?;
    let client = match t.congestion {
        Congestion::Bbr => builder.with_congestion_controller(Bbr::default())?.start()?,
        Congestion::Cubic => builder.with_congestion_controller(Cubic::default())?.start()?,
    };
    let mut conn = client.connect(Connect::new(addr).with_server_name(name)).await?;
    conn.keep_alive(true)?;
    let counters = Arc::new(Counters::default());
    let data = payload();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let stream = conn.open_bidirectional_stream().await?;
        let (rx, mut tx) = stream.split();
        let counters = counters.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let up = async {
                tx.send(Bytes::copy_from_slice(&download.to_be_bytes())).await?;
                send(tx, upload, &data, &counters).await
            };
            let (u, d) = tokio::join!(up, drain(rx, &counters));
            let d = d?;
            if d != download {
                return Err(format!("downloaded {d} bytes of {download}").into());
            }
            Ok::<_, Error>((u?, d))
        }));
    }
    let (mut up, mut down) = (0, 0);
    for t in tasks {
        let (u, d) = t.await??;
        up += u;
        down += d;
    }
    let elapsed = start.elapsed();
    conn.close(0u32.into());
    Ok(ClientResult { up, down, elapsed })
}
