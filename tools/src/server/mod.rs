//! `peregrine server`: serves files over ALPN `hq-interop` and the perf protocol over ALPN
//! `perf` on the same endpoint until SIGINT or SIGTERM, then shuts down gracefully.
//!
//! Per-core all the way up: each worker accepts its own connections and serves them itself.
//! A [`service`] on every worker gives each connection the handler of the ALPN it negotiated
//! ([`hq`]: `GET /path` answered with the file; [`perf`]: the 8-byte response size, the
//! upload, the response), and the handlers run on that worker's thread: no thread per
//! connection or stream, no accept loop, no lock per request. Responses are paced by what the
//! peer may receive, and files are read as their streams drain.

pub mod hq;
pub mod perf;
pub mod rx_report;
pub mod service;

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::TlsServerConfig;
use peregrine_engine::{ConnectionStats, ServerConfig};

use crate::certs;
use crate::config::{ConfigArgs, Settings};
use crate::endpoint::{self, Use};
use crate::metrics::endpoint::endpoint_metrics;
use crate::metrics::{process_metrics, Exposition, MetricsServer, Source};
pub use service::{accumulate, ServerState};

/// Stream reset code: the requested file does not exist.
pub const CODE_NOT_FOUND: u64 = 0x1;
/// Stream reset code: the path leaves the served directory.
pub const CODE_FORBIDDEN: u64 = 0x2;
/// Stream reset code: the request is malformed, or no directory is served.
pub const CODE_BAD_REQUEST: u64 = 0x3;
/// Longest hq-interop request line.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// `peregrine server` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (port 0 picks one; the bound address is printed on stdout).
    #[arg(long, required_unless_present = "print_config")]
    listen: Option<SocketAddr>,
    /// Certificate chain, PEM.
    #[arg(long, required_unless_present_any = ["print_config", "self_signed"])]
    cert: Option<PathBuf>,
    /// Private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, required_unless_present_any = ["print_config", "self_signed"])]
    key: Option<PathBuf>,
    /// Directory served over hq-interop; without it file requests are refused (perf only).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Quick start without --cert/--key: a certificate generated at start-up for localhost,
    /// 127.0.0.1, ::1 and the --listen address; its SHA-256 fingerprint is printed.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    self_signed: bool,
    /// With --self-signed: write the certificate (PEM) to FILE, for the clients' --ca.
    #[arg(long, value_name = "FILE", requires = "self_signed")]
    cert_out: Option<PathBuf>,
    /// Move clients that offer this QUIC version (v1 or v2) to it (compatible version
    /// negotiation, RFC 9368): a v1 client offering v2 is answered in v2 without a round trip.
    /// Without it a connection stays in the client's version.
    #[arg(long, value_name = "VERSION", value_parser = crate::client::parse_quic_version)]
    prefer_version: Option<u32>,
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
    let Some(listen) = args.listen else {
        return Err("--listen is required".into());
    };
    endpoint::check(&settings, Use::Server)?;
    let root = match &args.root {
        Some(root) => {
            let r = root.canonicalize().map_err(|e| format!("--root {}: {e}", root.display()))?;
            if !r.is_dir() {
                return Err(format!("--root {}: not a directory", root.display()));
            }
            Some(r)
        }
        None => None,
    };
    let keylog = endpoint::keylog(&settings);
    let (tls, self_signed) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            (certs::server_from_files(cert, key, keylog, settings.early_data)?, None)
        }
        _ => certs::self_signed(listen, args.cert_out.as_deref(), keylog, settings.early_data)?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    let server = Server::start_preferring(listen, tls, &settings, root, args.prefer_version)?;
    let metrics = match settings.metrics_addr {
        Some(addr) => Some(server.serve_metrics(addr)?),
        None => None,
    };
    noteln!("listening on {}", server.local_addr());
    if let Some(note) = self_signed {
        noteln!("{note}");
    }
    if let Some(m) = &metrics {
        noteln!("metrics on http://{}/metrics", m.local_addr());
    }
    endpoint::print_notes("server", &server.notes);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut rx_report = rx_report::RxReport::default();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let stats = server.ep.stats();
        for line in rx_report.check(&rx_report::sum(stats.workers.iter().map(|w| &w.queue))) {
            eprintln!("{line}");
        }
    }
    if let Some(m) = metrics {
        m.stop();
    }
    let report = server.stop(Duration::from_secs(3));
    eprintln!("peregrine: shut down ({report})");
    Ok(())
}

/// A running server: an endpoint whose workers serve their own connections.
pub struct Server {
    ep: Arc<Endpoint>,
    state: Arc<ServerState>,
    /// What the datapath reported at start-up (print them).
    pub notes: Vec<String>,
}

impl Server {
    /// Binds `addr` with the datapath and transport `settings` ask for and starts serving;
    /// `root` is the directory served over hq-interop.
    pub fn start(
        addr: SocketAddr,
        tls: Arc<TlsServerConfig>,
        settings: &Settings,
        root: Option<PathBuf>,
    ) -> Result<Self, String> {
        Self::start_preferring(addr, tls, settings, root, None)
    }

    /// [`Server::start`] moving clients that offer `preferred` to that QUIC version.
    pub fn start_preferring(
        addr: SocketAddr,
        tls: Arc<TlsServerConfig>,
        settings: &Settings,
        root: Option<PathBuf>,
        preferred: Option<u32>,
    ) -> Result<Self, String> {
        let mut server = ServerConfig::new(tls);
        server.preferred_version = preferred;
        server.transport = endpoint::transport(settings)?;
        endpoint::admission(settings, &mut server)?;
        if let Some(pa) = settings.preferred_address {
            // The server must receive there: the same port on a wildcard address, or that
            // very address.
            let reachable = pa.port() == addr.port()
                && (addr.ip().is_unspecified() || addr.ip() == pa.ip())
                && pa.is_ipv4() == addr.is_ipv4();
            if !reachable {
                return Err(format!(
                    "--preferred-address {pa}: the server listens on {addr}, so it would not \
                     receive there; listen on {}:{} (same family, same port)",
                    if addr.is_ipv4() { "0.0.0.0" } else { "[::]" },
                    pa.port()
                ));
            }
            server.preferred_address = Some(pa);
        }
        let state = ServerState::new(root, settings.workers as usize);
        let config = EndpointConfig::server(server).with_service(state.factory());
        let built = endpoint::build(settings, Use::Server, addr, config)?;
        Ok(Self { ep: Arc::new(built.endpoint), state, notes: built.notes })
    }

    /// The endpoint (for its counters).
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.ep
    }

    /// Serves the endpoint's counters and the process's in the Prometheus format on `addr`.
    pub fn serve_metrics(&self, addr: SocketAddr) -> Result<MetricsServer, String> {
        let ep = self.ep.clone();
        let state = self.state.clone();
        let source: Source = Arc::new(move || {
            let mut e = Exposition::new();
            endpoint_metrics(&mut e, "server", &ep.stats());
            let t = state.totals();
            e.counter(
                "peregrine_server_requests_total",
                "Requests answered (perf streams, hq-interop files).",
                &[],
                t.requests as f64,
            );
            e.counter(
                "peregrine_server_response_bytes_total",
                "Response bytes written by the server's handlers.",
                &[],
                t.response_bytes as f64,
            );
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
        match self.ep.shutdown(timeout) {
            Ok(r) => format!(
                "{} connection(s) live at shutdown{}",
                r.live_at_start,
                if r.forced { ", some dropped" } else { "" }
            ),
            Err(e) => e.to_string(),
        }
    }

    /// Counters of the connections that ended so far, summed.
    pub fn finished_stats(&self) -> ConnectionStats {
        self.state.finished()
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
