//! `peregrine server`: serves files over ALPN `hq-interop` and the perf protocol over ALPN
//! `perf` on the same endpoint until SIGINT or SIGTERM, then shuts down gracefully.
//!
//! Each connection's protocol is the ALPN it negotiated (`Connection::alpn`): on `hq-interop`
//! a stream carries `GET /path` and is answered with the file; on `perf` it starts with the
//! 8-byte response size. One thread per connection and one per stream (blocking API).

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_engine::api::{
    ConnError, Connection, Endpoint, EndpointConfig, RecvStream, SendStream,
};
use peregrine_engine::connection::{ConnectionStats, ServerConfig};
use peregrine_engine::crypto::TlsServerConfig;

use crate::certs;
use crate::config::{ConfigArgs, Settings};
use crate::endpoint::{self, Use};
use crate::metrics::endpoint::endpoint_metrics;
use crate::metrics::{process_metrics, Exposition, MetricsServer, Source};
use crate::perf::protocol::{self, Pipe, IO_TIMEOUT};
use crate::threads::ThreadCache;

/// Stream reset code: the requested file does not exist.
pub const CODE_NOT_FOUND: u64 = 0x1;
/// Stream reset code: the path leaves the served directory.
pub const CODE_FORBIDDEN: u64 = 0x2;
/// Stream reset code: the request is malformed, or no directory is served.
pub const CODE_BAD_REQUEST: u64 = 0x3;
/// Longest hq-interop request line.
const MAX_REQUEST: usize = 8 * 1024;

/// `peregrine server` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (port 0 picks one; the bound address is printed on stdout).
    #[arg(long, required_unless_present = "print_config")]
    listen: Option<SocketAddr>,
    /// Certificate chain, PEM.
    #[arg(long, required_unless_present = "print_config")]
    cert: Option<PathBuf>,
    /// Private key, PEM.
    #[arg(long, required_unless_present = "print_config")]
    key: Option<PathBuf>,
    /// Directory served over hq-interop.
    #[arg(long, required_unless_present = "print_config")]
    root: Option<PathBuf>,
    /// Check the effective settings, print them as TOML (accepted back by --config) and exit.
    #[arg(long)]
    print_config: bool,
    /// Endpoint settings (datapath, workers, cores, transport, observability).
    #[command(flatten)]
    settings: Box<ConfigArgs>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: &Args) -> Result<(), String> {
    let settings = args.settings.resolve()?;
    if args.print_config {
        // Only settings this server could run with are printed.
        endpoint::check(&settings, Use::Server)?;
        out!("{}", settings.to_toml());
        return Ok(());
    }
    let (Some(listen), Some(cert), Some(key), Some(root)) =
        (args.listen, &args.cert, &args.key, &args.root)
    else {
        return Err("--listen, --cert, --key and --root are required".into());
    };
    endpoint::check(&settings, Use::Server)?;
    let root = root.canonicalize().map_err(|e| format!("--root {}: {e}", root.display()))?;
    if !root.is_dir() {
        return Err(format!("--root {}: not a directory", root.display()));
    }
    let tls = certs::server_from_files(cert, key, endpoint::keylog(&settings))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    let server = Server::start(listen, tls, &settings, Some(root))?;
    let metrics = match settings.metrics_addr {
        Some(addr) => Some(server.serve_metrics(addr)?),
        None => None,
    };
    noteln!("listening on {}", server.local_addr());
    if let Some(m) = &metrics {
        noteln!("metrics on http://{}/metrics", m.local_addr());
    }
    endpoint::print_notes("server", &server.notes);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(m) = metrics {
        m.stop();
    }
    let report = server.stop(Duration::from_secs(3));
    eprintln!("peregrine: shut down ({report})");
    Ok(())
}

/// What the serving threads share.
struct Ctx {
    root: Option<PathBuf>,
    /// Threads serving connections and streams, reused across them.
    threads: ThreadCache,
    stop: AtomicBool,
    /// Stats of every connection that ended.
    finished: Mutex<Vec<ConnectionStats>>,
}

/// A running server: an endpoint and its accept thread.
pub struct Server {
    ep: Arc<Endpoint>,
    ctx: Arc<Ctx>,
    acceptor: JoinHandle<()>,
    /// What the datapath reported at start-up (print them).
    pub notes: Vec<String>,
}

impl Server {
    /// Binds `addr` with the datapath and transport `settings` ask for and starts accepting;
    /// `root` is the directory served over hq-interop.
    pub fn start(
        addr: SocketAddr,
        tls: Arc<TlsServerConfig>,
        settings: &Settings,
        root: Option<PathBuf>,
    ) -> Result<Self, String> {
        let mut server = ServerConfig::new(tls);
        server.transport = endpoint::transport(settings)?;
        let built = endpoint::build(settings, Use::Server, addr, EndpointConfig::server(server))?;
        let ep = Arc::new(built.endpoint);
        let ctx = Arc::new(Ctx {
            root,
            threads: ThreadCache::new("server-stream"),
            stop: AtomicBool::new(false),
            finished: Mutex::default(),
        });
        let (ep2, ctx2) = (ep.clone(), ctx.clone());
        let acceptor = std::thread::Builder::new()
            .name("server-accept".into())
            .spawn(move || accept_loop(&ep2, &ctx2))
            .map_err(|e| format!("spawning a thread: {e}"))?;
        Ok(Self { ep, ctx, acceptor, notes: built.notes })
    }

    /// The endpoint (for its counters).
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.ep
    }

    /// Serves the endpoint's counters and the process's in the Prometheus format on `addr`.
    pub fn serve_metrics(&self, addr: SocketAddr) -> Result<MetricsServer, String> {
        let ep = self.ep.clone();
        let threads = self.ctx.threads.clone();
        let source: Source = Arc::new(move || {
            let mut e = Exposition::new();
            endpoint_metrics(&mut e, "server", &ep.stats());
            let (live, idle) = (threads.threads() as f64, threads.idle() as f64);
            let help = "Application threads serving connections and streams.";
            e.gauge("peregrine_server_app_threads", help, &[("state", "all")], live);
            e.gauge("peregrine_server_app_threads", help, &[("state", "idle")], idle);
            process_metrics(&mut e);
            e.render()
        });
        MetricsServer::start(addr, source).map_err(|e| format!("--metrics-addr {addr}: {e}"))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.ep.local_addr()
    }

    /// Graceful shutdown within about `timeout`; a one-line summary.
    pub fn stop(self, timeout: Duration) -> String {
        self.ctx.stop.store(true, Ordering::Relaxed);
        let summary = match self.ep.shutdown(timeout) {
            Ok(r) => format!(
                "{} connection(s) live at shutdown{}",
                r.live_at_start,
                if r.forced { ", some dropped" } else { "" }
            ),
            Err(e) => e.to_string(),
        };
        join_bounded(vec![self.acceptor], timeout);
        summary
    }

    /// Stats of the connections that ended so far.
    pub fn finished_stats(&self) -> Vec<ConnectionStats> {
        self.ctx.finished.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Joins the threads that finish before `timeout`; detaches the others.
fn join_bounded(threads: Vec<JoinHandle<()>>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

fn accept_loop(ep: &Endpoint, ctx: &Arc<Ctx>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !ctx.stop.load(Ordering::Relaxed) {
        let Some(conn) = ep.accept_blocking(Some(Duration::from_millis(100))) else { continue };
        let ctx = ctx.clone();
        if let Ok(h) = std::thread::Builder::new()
            .name("server-conn".into())
            .spawn(move || serve_connection(conn, &ctx))
        {
            conns.push(h);
        }
        conns.retain(|h| !h.is_finished());
    }
    join_bounded(conns, Duration::from_secs(3));
}

/// The application protocol of a connection, from its ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Hq,
    Perf,
}

fn serve_connection(conn: Connection, ctx: &Arc<Ctx>) {
    let proto = match conn.alpn().as_deref() {
        Some(a) if a == certs::ALPN_HQ => Proto::Hq,
        Some(a) if a == certs::ALPN_PERF => Proto::Perf,
        // TLS only completes a handshake on an offered ALPN; anything else is a bug here.
        _ => {
            conn.close(peregrine_engine::VarInt::from_u32(0x3), b"unknown application protocol");
            return;
        }
    };
    // Each stream job holds a clone of `active`: the connection is done when only ours is left.
    let active = Arc::new(());
    loop {
        match conn.accept_bi_blocking(Duration::from_millis(200)) {
            Ok((send, recv)) => {
                let (c, token) = (ctx.clone(), active.clone());
                let job = Box::new(move || {
                    serve_stream(proto, send, recv, &c);
                    drop(token);
                });
                if let Err(e) = ctx.threads.spawn(job) {
                    tracing::warn!(%e, "no thread for a stream");
                }
            }
            Err(ConnError::TimedOut) => continue,
            Err(_) => break,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&active) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Ok(mut f) = ctx.finished.lock() {
        f.push(conn.stats());
    }
}

/// Reads the start of a stream and hands it to the connection's protocol.
fn serve_stream(proto: Proto, send: SendStream, mut recv: RecvStream, ctx: &Ctx) {
    let need = match proto {
        Proto::Hq => 4,
        Proto::Perf => 8,
    };
    let mut head = Vec::new();
    let mut fin = false;
    while head.len() < need {
        match protocol::read_chunk(&mut recv, IO_TIMEOUT) {
            Ok(Some(b)) => head.extend_from_slice(&b),
            Ok(None) => {
                fin = true;
                break;
            }
            Err(_) => return,
        }
    }
    match proto {
        Proto::Hq if head.starts_with(b"GET ") => {
            serve_hq(&send, &mut recv, head, fin, ctx.root.as_deref())
        }
        Proto::Perf if head.len() >= 8 => {
            let mut size = [0u8; 8];
            size.copy_from_slice(&head[..8]);
            if head.len() > 8 || !fin {
                // The rest of the first chunk is upload: drained with the rest.
                let _ = protocol::serve_stream(send, recv, u64::from_be_bytes(size));
            } else {
                let mut pipe = Pipe::new(&send);
                let _ = protocol::send_bytes(&mut pipe, u64::from_be_bytes(size), || false)
                    .and_then(|_| pipe.finish());
            }
        }
        _ => send.reset(CODE_BAD_REQUEST),
    }
}

/// Answers one hq-interop request whose first bytes are `head`.
fn serve_hq(
    send: &SendStream,
    recv: &mut RecvStream,
    mut head: Vec<u8>,
    fin: bool,
    root: Option<&Path>,
) {
    let mut fin = fin;
    while !fin && !head.contains(&b'\n') && head.len() <= MAX_REQUEST {
        match protocol::read_chunk(recv, IO_TIMEOUT) {
            Ok(Some(b)) => head.extend_from_slice(&b),
            Ok(None) => fin = true,
            Err(_) => return,
        }
    }
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let target = line.trim_end_matches('\r').trim_start_matches("GET ").trim();
    let path = match (root, target.is_empty() || line_end > MAX_REQUEST) {
        (Some(root), false) => resolve(root, target),
        _ => Err(CODE_BAD_REQUEST),
    };
    let path = match path {
        Ok(p) => p,
        Err(code) => {
            send.reset(code);
            recv.stop(code);
            return;
        }
    };
    if let Err(code) = send_file(send, &path) {
        send.reset(code);
    }
}

/// Maps a request target to a file under `root` (canonical), refusing any escape.
pub fn resolve(root: &Path, target: &str) -> Result<PathBuf, u64> {
    let target = target.split(['?', '#']).next().unwrap_or("");
    let rel = target.trim_start_matches('/');
    if rel.is_empty() {
        return Err(CODE_NOT_FOUND);
    }
    if !Path::new(rel).components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(CODE_FORBIDDEN);
    }
    let full = root.join(rel).canonicalize().map_err(|_| CODE_NOT_FOUND)?;
    if !full.starts_with(root) {
        return Err(CODE_FORBIDDEN);
    }
    if !full.is_file() {
        return Err(CODE_NOT_FOUND);
    }
    Ok(full)
}

fn send_file(send: &SendStream, path: &Path) -> Result<(), u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|_| CODE_NOT_FOUND)?;
    let mut pipe = Pipe::new(send);
    loop {
        let mut buf = vec![0u8; protocol::CHUNK];
        let n = f.read(&mut buf).map_err(|_| CODE_NOT_FOUND)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        // A failed write means the stream or connection is gone: nothing left to tell.
        if pipe.push(Bytes::from(buf)).is_err() {
            return Ok(());
        }
    }
    let _ = pipe.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes_and_missing_files() {
        let dir = std::env::temp_dir().join(format!("peregrine-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"x").unwrap();
        let root = dir.canonicalize().unwrap();
        assert_eq!(resolve(&root, "/sub/a.txt").unwrap(), root.join("sub/a.txt"));
        assert_eq!(resolve(&root, "/../etc/passwd"), Err(CODE_FORBIDDEN));
        assert_eq!(resolve(&root, "/sub/../../x"), Err(CODE_FORBIDDEN));
        assert_eq!(resolve(&root, "/nope"), Err(CODE_NOT_FOUND));
        assert_eq!(resolve(&root, "/sub"), Err(CODE_NOT_FOUND));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
