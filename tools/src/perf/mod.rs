//! `peregrine perf`: QUIC throughput with the perf protocol (draft-banks-quic-performance),
//! against an in-process server on 127.0.0.1 (certificate generated in memory) or, with
//! `--server`, against any perf server.
//!
//! Modes: duration (default: each stream downloads for `--duration`), or sizes (`--download`
//! and/or `--upload` bytes per stream, once). Prints goodput, packets/s, losses and CPU time.
//!
//! Settings (`--config FILE` and the per-key flags): the transport and datapath keys apply to
//! both the client endpoint and the in-process server. `workers` and `cores` size and pin the
//! in-process server; the client endpoint then has one unpinned worker. With `--server` there
//! is no local server, and `workers` / `cores` apply to the client endpoint. `--metrics-addr`
//! serves the counters of both endpoints (labelled `endpoint="server"` / `"client"`).

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

pub mod cpu;
pub mod handshakes;
pub mod protocol;
pub mod rps;
pub mod series;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::connection::{ClientConfig, ConnectionStats};
use peregrine_engine::VarInt;

use peregrine_engine::api::Endpoint;

use crate::certs::{self, Trust};
use crate::client;
use crate::config::{ConfigArgs, Datapath, Settings};
use crate::endpoint::{self, Use};
use crate::server::Server;

/// `peregrine perf` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Perf server HOST:PORT; without it an in-process server on 127.0.0.1 is used.
    #[arg(long)]
    server: Option<String>,
    /// CA certificate, PEM, for --server.
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<std::path::PathBuf>,
    /// Do not authenticate --server.
    #[arg(long)]
    insecure: bool,
    /// Bytes each stream downloads (K, M, G suffixes: powers of 1024).
    #[arg(long, value_parser = parse_size)]
    download: Option<u64>,
    /// Bytes each stream uploads.
    #[arg(long, value_parser = parse_size)]
    upload: Option<u64>,
    /// Download for this long per stream (e.g. 5s, 500ms) when no sizes are given.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    duration: Duration,
    /// Concurrent streams per connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    streams: u32,
    /// Connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    connections: u32,
    /// Request/response mode for --duration: each stream slot runs requests back to back,
    /// with latency percentiles.
    #[arg(long, conflicts_with_all = ["download", "upload"])]
    rps: bool,
    /// --rps: bytes uploaded per request.
    #[arg(long, value_parser = parse_size, default_value = "64")]
    request_size: u64,
    /// --rps: bytes downloaded per request.
    #[arg(long, value_parser = parse_size, default_value = "1K")]
    response_size: u64,
    /// Handshake mode for --duration: --connections threads connect and close back to back.
    #[arg(long, conflicts_with_all = ["download", "upload", "rps"])]
    handshakes: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Write throughput over time (and, with --rps, the latency distribution) to FILE.svg or
    /// FILE.html.
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
    /// Endpoint settings; see the command's description for which endpoint each applies to.
    #[command(flatten)]
    settings: Box<ConfigArgs>,
}

/// Parses `123`, `64K`, `10M`, `1G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
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

/// Parses `5s`, `500ms`, `2` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a duration (e.g. 5s, 500ms)");
    let d = if let Some(ms) = t.strip_suffix("ms") {
        Duration::from_millis(ms.parse().map_err(|_| bad())?)
    } else {
        let secs: f64 = t.strip_suffix('s').unwrap_or(t).parse().map_err(|_| bad())?;
        if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
            return Err(bad());
        }
        Duration::from_secs_f64(secs)
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

/// Runs the benchmark and prints its results.
pub fn run(args: &Args) -> Result<(), String> {
    let settings = args.settings.resolve()?;
    if let Some(path) = &args.report {
        series::check_report_path(path)?;
        if args.handshakes {
            return Err("--report: not available with --handshakes".into());
        }
    }
    let client_use = if args.server.is_some() { Use::Server } else { Use::PerfClient };
    endpoint::check(&settings, client_use)?;
    let (addr, name, trust, local) = match &args.server {
        Some(s) => {
            let (host, port) = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("--server '{s}': expected HOST:PORT"))?;
            let trust = match (&args.ca, args.insecure) {
                (Some(p), _) => Trust::CaFile(p),
                (None, true) => Trust::Insecure,
                (None, false) => return Err("--server needs --ca PEM or --insecure".into()),
            };
            (client::resolve(host, port)?, host.to_owned(), trust, None)
        }
        None => {
            if settings.datapath == Datapath::Xdp {
                return Err("--datapath xdp: the in-process server listens on 127.0.0.1, which \
                            AF_XDP cannot serve; run `peregrine server` on the interface and \
                            give --server"
                    .into());
            }
            let g = certs::generate()?;
            let tls = certs::server_generated(&g, endpoint::keylog(&settings))?;
            let any = "127.0.0.1:0".parse().map_err(|_| "bad address".to_string())?;
            let server = Server::start(any, tls, &settings, None)?;
            (server.local_addr(), "localhost".into(), Trust::Cert(g.cert), Some(server))
        }
    };
    let tls = certs::client(trust, certs::ALPN_PERF, endpoint::keylog(&settings))?;
    let built = client::client_endpoint(addr, &settings, client_use, ClientConfig::new(tls))?;
    let ep = Arc::new(built.endpoint);
    let mut notes =
        local.as_ref().map(|s| endpoint::labelled("server", &s.notes)).unwrap_or_default();
    notes.extend(endpoint::labelled("client", &built.notes));
    if !args.json {
        for n in &notes {
            outln!("{n}");
        }
    }
    let metrics = match settings.metrics_addr {
        Some(m) => Some(series::serve_metrics(m, &ep, local.as_ref().map(|s| s.endpoint()))?),
        None => None,
    };
    if let Some(m) = &metrics {
        eprintln!("peregrine: metrics on http://{}/metrics", m.local_addr());
    }
    let result = run_with(args, &settings, &ep, addr, &name, local, notes);
    if let Some(m) = metrics {
        m.stop();
    }
    result
}

fn run_with(
    args: &Args,
    settings: &Settings,
    ep: &Arc<Endpoint>,
    addr: std::net::SocketAddr,
    name: &str,
    local: Option<Server>,
    notes: Vec<String>,
) -> Result<(), String> {
    if args.handshakes {
        let r = handshakes::run(ep, addr, name, args.connections, args.duration, args.json);
        if let Some(s) = local {
            s.stop(Duration::from_secs(2));
        }
        return r;
    }
    let mut conns = Vec::new();
    for _ in 0..args.connections {
        conns.push(client::connect(ep, addr, name, Duration::from_secs(5))?);
    }
    let (up, down, deadline_after) = match (args.upload, args.download) {
        (None, None) => (0, 1u64 << 50, Some(args.duration)),
        (u, d) => (u.unwrap_or(0), d.unwrap_or(0), None),
    };
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = deadline_after.map(|d| start + d);
    let cpu_before = cpu::process_cpu();
    let mut jobs = Vec::new();
    for conn in &conns {
        for _ in 0..args.streams {
            let conn = conn.clone();
            let received = received.clone();
            let rps = args.rps.then_some((args.request_size, args.response_size));
            jobs.push(std::thread::spawn(move || -> Result<rps::RpsResult, String> {
                if let (Some((req, resp)), Some(d)) = (rps, deadline) {
                    return rps::worker(&conn, req, resp, d, &received);
                }
                let (send, mut recv) =
                    conn.open_bi_blocking(protocol::IO_TIMEOUT).map_err(|e| e.to_string())?;
                let count = |n| {
                    received.fetch_add(n, Ordering::Relaxed);
                };
                let moved = protocol::request(&send, &mut recv, up, down, deadline, &count)?;
                Ok(rps::RpsResult { moved, requests: 1, latency_us: rps::histogram()? })
            }));
        }
    }
    let live = std::io::stderr().is_terminal() && !args.json;
    let mut last = (Instant::now(), 0u64);
    let mut recorder = series::Recorder::new(start);
    while !jobs.iter().all(|j| j.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        recorder.poll(&received, &conns);
        if live && last.0.elapsed() >= Duration::from_secs(1) {
            let now = received.load(Ordering::Relaxed);
            let rate = (now - last.1) as f64 * 8.0 / last.0.elapsed().as_secs_f64() / 1e9;
            eprint!("\r  {:>8.3} Gbit/s  {:>10} MiB received", rate, now >> 20);
            last = (Instant::now(), now);
        }
    }
    recorder.finish(&received, &conns);
    if live {
        eprintln!();
    }
    let mut total = protocol::Moved { complete: true, ..Default::default() };
    let mut errors = Vec::new();
    let mut latency = rps::histogram()?;
    let mut requests = 0;
    for j in jobs {
        match j.join() {
            Ok(Ok(r)) => {
                let m = r.moved;
                requests += r.requests;
                let _ = latency.add(&r.latency_us);
                total.up += m.up;
                total.down += m.down;
                total.complete &= m.complete || deadline.is_some();
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a stream thread failed".into()),
        }
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu::process_cpu().saturating_sub(cpu_before);
    let client_stats = sum_stats(conns.iter().map(|c| c.stats()));
    for c in &conns {
        c.close(VarInt::from_u32(0), b"done");
    }
    for c in &conns {
        c.wait_drained(Duration::from_secs(1));
    }
    let threads = cpu::threads();
    let client_workers = ep.stats().workers.len();
    let server_workers = local.as_ref().map(|s| s.endpoint().stats().workers.len());
    // Workers the kernel pinned as --cores asked (local server, or the client with --server).
    let pinned_ep = local.as_ref().map_or(ep, |s| s.endpoint());
    let pinned = pinned_ep.stats().workers.iter().filter(|w| w.pinned == Some(true)).count();
    let server_stats = local.map(|s| {
        std::thread::sleep(Duration::from_millis(50));
        let st = sum_stats(s.finished_stats().into_iter());
        s.stop(Duration::from_secs(2));
        st
    });
    if let Some(e) = errors.first() {
        return Err(format!(
            "{} of {} streams failed; first: {e}",
            errors.len(),
            args.streams * args.connections
        ));
    }
    if down > 0
        && deadline.is_none()
        && total.down != down * u64::from(args.streams * args.connections)
    {
        return Err(format!(
            "received {} bytes, expected {}",
            total.down,
            down * u64::from(args.streams * args.connections)
        ));
    }
    if let Some(path) = &args.report {
        let lat = args.rps.then_some(&latency);
        series::write_report(path, &recorder, lat, &settings_note(args, settings))?;
    }
    let report = Report {
        args,
        settings,
        notes,
        client_workers,
        server_workers,
        pinned,
        elapsed,
        total,
        requests,
        latency: args.rps.then_some(latency),
        client: client_stats,
        server: server_stats,
        cpu: cpu_used,
        threads,
    };
    report.print();
    Ok(())
}

/// One line naming the run's knobs, for the report's notes.
fn settings_note(args: &Args, s: &Settings) -> String {
    format!(
        "{} connection(s) x {} stream(s); datapath {}, {} worker(s), congestion {}, pacing {}, \
         gso {}, gro {}, mtu {}, stream window {}",
        args.connections,
        args.streams,
        datapath_name(s.datapath),
        s.workers,
        s.congestion.name(),
        if s.pacing { "on" } else { "off" },
        if s.gso { "on" } else { "off" },
        if s.gro { "on" } else { "off" },
        s.mtu,
        crate::config::format_size(s.stream_window)
    )
}

fn datapath_name(d: Datapath) -> &'static str {
    match d {
        Datapath::Udp => "udp",
        Datapath::Uring => "uring",
        Datapath::Xdp => "xdp",
    }
}

fn sum_stats(it: impl Iterator<Item = ConnectionStats>) -> ConnectionStats {
    let mut t = ConnectionStats::default();
    for s in it {
        if t.congestion.is_empty() {
            t.congestion = s.congestion;
        }
        t.packets_sent += s.packets_sent;
        t.packets_received += s.packets_received;
        t.packets_lost += s.packets_lost;
        t.stream_bytes_retransmitted += s.stream_bytes_retransmitted;
        t.datagrams_sent += s.datagrams_sent;
        t.datagrams_received += s.datagrams_received;
        t.congestion_events += s.congestion_events;
        t.pto_count += s.pto_count;
    }
    t
}

/// The numbers of one run.
struct Report<'a> {
    args: &'a Args,
    settings: &'a Settings,
    /// What the datapaths reported at start-up.
    notes: Vec<String>,
    client_workers: usize,
    server_workers: Option<usize>,
    pinned: usize,
    elapsed: Duration,
    total: protocol::Moved,
    requests: u64,
    latency: Option<hdrhistogram::Histogram<u64>>,
    client: ConnectionStats,
    server: Option<ConnectionStats>,
    cpu: Duration,
    threads: Vec<cpu::ThreadCpu>,
}

impl Report<'_> {
    fn mode(&self) -> &'static str {
        match (self.args.rps, self.args.download.is_none() && self.args.upload.is_none()) {
            (true, _) => "rps",
            (false, true) => "duration",
            (false, false) => "size",
        }
    }

    fn print(&self) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let bytes = self.total.up + self.total.down;
        let gbps = bytes as f64 * 8.0 / secs / 1e9;
        let c = &self.client;
        let rx_pps = c.packets_received as f64 / secs;
        let tx_pps = c.packets_sent as f64 / secs;
        let s = self.server.unwrap_or_default();
        if self.args.json {
            let threads: Vec<_> = self
                .threads
                .iter()
                .map(|t| serde_json::json!({"name": t.name, "cpu_s": t.cpu.as_secs_f64()}))
                .collect();
            let mut v = serde_json::json!({
                "mode": self.mode(),
                "datapath": datapath_name(self.settings.datapath),
                "congestion": c.congestion,
                "server_congestion": self.server.map(|s| s.congestion),
                "pacing": self.settings.pacing,
                "client_workers": self.client_workers,
                "server_workers": self.server_workers,
                "datapath_notes": self.notes,
                "workers_pinned": self.pinned,
                "connections": self.args.connections,
                "streams": self.args.streams,
                "elapsed_s": secs,
                "bytes_uploaded": self.total.up,
                "bytes_downloaded": self.total.down,
                "bytes_total": bytes,
                "goodput_gbps": gbps,
                "client_packets_sent": c.packets_sent,
                "client_packets_received": c.packets_received,
                "client_rx_pps": rx_pps,
                "client_tx_pps": tx_pps,
                "client_packets_lost": c.packets_lost,
                "client_bytes_retransmitted": c.stream_bytes_retransmitted,
                "server_packets_sent": self.server.map(|s| s.packets_sent),
                "server_packets_lost": self.server.map(|s| s.packets_lost),
                "server_bytes_retransmitted": self.server.map(|s| s.stream_bytes_retransmitted),
                "process_cpu_s": self.cpu.as_secs_f64(),
                "threads": threads,
            });
            if let Some(h) = &self.latency {
                v["requests"] = self.requests.into();
                v["requests_per_s"] = (self.requests as f64 / secs).into();
                for (k, us) in rps::percentiles(h) {
                    v[format!("latency_{k}_us")] = us.into();
                }
            }
            outln!("{v}");
            return;
        }
        outln!(
            "perf: {} connection(s) x {} stream(s), {:.2} s",
            self.args.connections,
            self.args.streams,
            secs
        );
        outln!(
            "  setup     datapath {}, congestion {}, pacing {}, client workers {}{}",
            datapath_name(self.settings.datapath),
            c.congestion,
            if self.settings.pacing { "on" } else { "off" },
            self.client_workers,
            self.server_workers.map(|n| format!(", server workers {n}")).unwrap_or_default()
        );
        outln!(
            "  moved     {} bytes (up {}, down {})  goodput {:.3} Gbit/s",
            bytes,
            self.total.up,
            self.total.down,
            gbps
        );
        if let Some(h) = &self.latency {
            let p: Vec<String> =
                rps::percentiles(h).iter().map(|(k, us)| format!("{k} {us} us")).collect();
            outln!(
                "  requests  {} ({:.0}/s)  {}",
                self.requests,
                self.requests as f64 / secs,
                p.join(", ")
            );
        }
        outln!(
            "  client    rx {rx_pps:.0} pkt/s, tx {tx_pps:.0} pkt/s, lost {}, retransmitted {} B",
            c.packets_lost,
            c.stream_bytes_retransmitted
        );
        if self.server.is_some() {
            outln!(
                "  server    sent {} pkts, lost {}, retransmitted {} B, PTOs {}",
                s.packets_sent,
                s.packets_lost,
                s.stream_bytes_retransmitted,
                s.pto_count
            );
        }
        outln!(
            "  cpu       {:.2} s process ({:.0}% of wall)",
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() / secs * 100.0
        );
        for t in self.threads.iter().filter(|t| t.cpu >= Duration::from_millis(10)).take(8) {
            outln!("    {:<16} {:.2} s", t.name, t.cpu.as_secs_f64());
        }
    }
}
