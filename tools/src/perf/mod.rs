//! `peregrine perf`: QUIC throughput with the perf protocol (draft-banks-quic-performance),
//! against an in-process server on 127.0.0.1 (certificate generated in memory) or, with
//! `--server`, against any perf server.
//!
//! Modes: duration (default: each stream downloads for `--duration`; `--direction up|both`),
//! sizes (`--download` and/or `--upload` bytes per stream, once), requests (`--rps`) and
//! handshakes (`--handshakes`). The drivers (`drive`, `protocol`, `rps`, `handshakes`) bump
//! shared counters; `sample` turns them into intervals and totals; `output` prints text or
//! iperf3-like JSON, `live` the progress and interval lines, `series` the `--report` charts.
//! Ctrl-C (`stop`) ends the run early with its results.
//!
//! Settings (`--config FILE` and the per-key flags): the transport and datapath keys apply to
//! both the client endpoint and the in-process server. `workers` and `cores` size and pin the
//! in-process server; the client endpoint then has one unpinned worker. With `--server` there
//! is no local server, `workers` / `cores` apply to the client endpoint, and the server-only
//! keys (`retry`, `max-handshakes`, `token-key-file`) are refused rather than ignored. `--metrics-addr`
//! serves the counters of both endpoints (labelled `endpoint="server"` / `"client"`).

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

pub mod cpu;
pub mod datagrams;
mod drive;
mod handlers;
mod live;
mod output;
pub mod protocol;
pub mod rps;
pub mod sample;
pub mod series;
mod stop;

use std::sync::Arc;
use std::time::Duration;

use peregrine_engine::{ClientConfig, ConnectionStats};

use crate::certs::{self, Trust};
use crate::client;
use crate::config::{parse_size, ConfigArgs, Datapath, Settings};
use crate::endpoint::{self, Use};
use crate::server::Server;

/// Which way the payload flows in duration mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// The server sends, the client receives (download; iperf3's `-R`).
    Down,
    /// The client sends, the server receives (upload).
    Up,
    /// Both at once on every stream (iperf3's `--bidir`).
    Both,
}

/// `peregrine perf` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Perf server HOST:PORT (any draft-banks perf server: peregrine, quinn, s2n-quic,
    /// MsQuic secnetperf); without it an in-process server on 127.0.0.1 is used.
    #[arg(long, short = 'c')]
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
    /// Run for this long when no sizes are given: 10ms..=24h, e.g. 5s, 1m.
    #[arg(long, short = 't', value_parser = parse_run_duration, default_value = "5s")]
    duration: Duration,
    /// Duration mode: which way the payload flows [default: down].
    #[arg(long, value_enum, conflicts_with_all = ["reverse", "bidir"])]
    direction: Option<Direction>,
    /// The server sends (iperf3's -R): the same as --direction down, perf's default.
    #[arg(long, short = 'R', conflicts_with = "bidir")]
    reverse: bool,
    /// Both directions at once (iperf3's --bidir): the same as --direction both.
    #[arg(long)]
    bidir: bool,
    /// Concurrent streams per connection (iperf3's -P).
    #[arg(long, short = 'P', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    streams: u32,
    /// Connections (each served by a handler on a client worker: no thread of its own).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,
    /// Request/response mode for --duration: each stream slot runs requests back to back,
    /// with latency percentiles.
    #[arg(long, conflicts_with_all = ["download", "upload", "direction", "reverse", "bidir"])]
    rps: bool,
    /// --rps: bytes uploaded per request.
    #[arg(long, value_parser = parse_size, default_value = "64")]
    request_size: u64,
    /// --rps: bytes downloaded per request.
    #[arg(long, value_parser = parse_size, default_value = "1K")]
    response_size: u64,
    /// Handshake mode for --duration: --connections slots connect and close back to back.
    #[arg(long, conflicts_with_all = ["download", "upload", "rps", "direction", "reverse", "bidir"])]
    handshakes: bool,
    /// --datagrams: payload bytes of each datagram, 24..=65535 (at most what the connection
    /// carries) [default: 1200].
    #[arg(long, value_parser = clap::value_parser!(u16).range(24..), requires = "datagrams")]
    datagram_size: Option<u16>,
    /// Cap what the client sends (uploads, --rps requests, --datagrams) at RATE bits per
    /// second in total, e.g. 500M or 2G (decimal, as iperf3's -b); measures latency under a
    /// given load.
    #[arg(long, short = 'b', visible_alias = "bitrate", value_parser = parse_rate)]
    rate: Option<u64>,
    /// Interval of the per-interval results: printed as they happen in text output, and the
    /// length of each `intervals` entry in JSON; 100ms..=1h [JSON default: 1s].
    #[arg(long, short = 'i', value_parser = parse_interval)]
    interval: Option<Duration>,
    /// Print one JSON object instead of text (iperf3-like: start, intervals, end; on failure
    /// `{"error": "..."}`).
    #[arg(long, short = 'J')]
    json: bool,
    /// Write plots to FILE.html (a page with the SVG charts and the summary) or FILE.svg:
    /// throughput per connection over time; with --rps requests/s and the latency
    /// distribution; with --handshakes handshakes/s and the handshake latency distribution.
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
    /// QUIC versions of the client's connections.
    #[command(flatten)]
    versions: client::VersionArgs,
    /// Endpoint settings; see the command's description for which endpoint each applies to.
    #[command(flatten)]
    settings: Box<ConfigArgs>,
}

/// Parses `--rate`: bits per second with an optional decimal suffix, `k`, `M`, `G`
/// (`500M` = 500,000,000 bit/s), as iperf3's `-b`.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let mul: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1_000,
        "m" | "M" => 1_000_000,
        "g" | "G" => 1_000_000_000,
        _ => return Err(format!("'{s}' is not a rate in bits/s (e.g. 500M, 2G)")),
    };
    let n: u64 =
        num.parse().map_err(|_| format!("'{s}' is not a rate in bits/s (e.g. 500M, 2G)"))?;
    match n.checked_mul(mul) {
        Some(r) if r >= 8_000 => Ok(r),
        Some(_) => Err(format!("'{s}' is below 8k bits/s")),
        None => Err(format!("'{s}' is too large")),
    }
}

/// Parses `--interval`: 100ms..=1h.
fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration_in(s, Duration::from_millis(100), Duration::from_secs(3600))
}

/// Parses a run length for `--duration`: `500ms`, `5s`, `1m`, `1h` (10ms..=24h).
pub fn parse_run_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration_in(s, Duration::from_millis(10), Duration::from_secs(86_400))
}

/// Runs the benchmark and prints its results; with `--json`, a failure is also printed as
/// `{"error": "..."}` on stdout.
pub fn run(args: &Args) -> Result<(), String> {
    if datagram_mode(args) {
        let others = args.rps
            || args.handshakes
            || args.download.is_some()
            || args.upload.is_some()
            || args.direction.is_some()
            || args.reverse
            || args.bidir
            || args.connections != 1
            || args.streams != 1;
        if others {
            return Err("--datagrams runs one connection on its own: not with --rps, \
                        --handshakes, --download, --upload, --direction, -R, --bidir, \
                        --connections or --streams"
                .into());
        }
    }
    let both = Mode::of(args) == Mode::Duration(Direction::Both);
    let slots = u64::from(args.connections) * u64::from(args.streams) * (1 + u64::from(both));
    if slots > MAX_SLOTS {
        return Err(format!(
            "--connections x --streams{} is {slots}, more than {MAX_SLOTS} stream slots",
            if both { " x 2 (both directions)" } else { "" }
        ));
    }
    let mut printed = false;
    let r = run_inner(args, &mut printed);
    if let (Err(e), true, false) = (&r, args.json, printed) {
        outln!("{}", serde_json::json!({ "error": e }));
    }
    r
}

/// Datagram mode (`--datagrams` or `--datagrams on` on the command line; the config key
/// in a file only enables DATAGRAM frames): one connection sends unreliable DATAGRAM frames
/// (RFC 9221) at `--rate` (default 10M), each echoed by the server (which needs datagrams
/// on; the in-process server has them); the report gives sent, received, lost, goodput and
/// jitter (`datagrams`).
fn datagram_mode(args: &Args) -> bool {
    args.settings.datagrams.as_deref().is_some_and(|v| crate::config::parse_switch(v) == Ok(true))
}

/// Most stream slots (connections x streams, twice with --bidir) one run drives: each has
/// its counters and its column in the report.
const MAX_SLOTS: u64 = 65_536;

/// What the run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bulk transfer for a duration.
    Duration(Direction),
    /// Bulk transfer of given sizes.
    Size,
    /// Requests back to back.
    Rps,
    /// Handshakes back to back.
    Handshakes,
}

impl Mode {
    fn of(args: &Args) -> Mode {
        if args.handshakes {
            Mode::Handshakes
        } else if args.rps {
            Mode::Rps
        } else if args.download.is_some() || args.upload.is_some() {
            Mode::Size
        } else if args.bidir {
            Mode::Duration(Direction::Both)
        } else {
            Mode::Duration(args.direction.unwrap_or(Direction::Down))
        }
    }

    /// The `mode` name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Duration(_) => "duration",
            Mode::Size => "size",
            Mode::Rps => "rps",
            Mode::Handshakes => "handshakes",
        }
    }
}

/// Runs the benchmark; `printed` is set once the results (which carry any later error) are
/// out.
fn run_inner(args: &Args, printed: &mut bool) -> Result<(), String> {
    let mut settings = args.settings.resolve()?;
    if datagram_mode(args) {
        // Both endpoints: the client's, and the in-process server's; unless set, queues deep
        // enough that bursts at the target rate measure the path, not the queue bound.
        settings.datagrams = true;
        let default = crate::config::DEFAULT_DATAGRAM_QUEUE as u32;
        if args.settings.datagram_queue.is_none() && settings.datagram_queue == default {
            settings.datagram_queue = datagrams::PERF_QUEUE;
        }
    }
    // Checked (and created) before anything runs, so that a bad path costs no benchmark.
    let report = match &args.report {
        Some(path) => Some(series::ReportFile::create(path)?),
        None => None,
    };
    let client_use = if args.server.is_some() { Use::PerfRemote } else { Use::PerfClient };
    endpoint::check(&settings, client_use)?;
    let stop = stop::install()?;
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
            // (`--datapath xdp` was refused by the check above: AF_XDP cannot serve the
            // in-process server on 127.0.0.1.)
            let g = certs::generate()?;
            let tls =
                certs::server_generated(&g, endpoint::keylog(&settings), settings.early_data)?;
            let any = "127.0.0.1:0".parse().map_err(|_| "bad address".to_string())?;
            let server = Server::start(any, tls, &settings, None)?;
            (server.local_addr(), "localhost".into(), Trust::Cert(g.cert), Some(server))
        }
    };
    let tls = certs::client(trust, certs::ALPN_PERF, endpoint::keylog(&settings))?;
    let config = args.versions.apply(ClientConfig::new(tls))?;
    let built = client::client_endpoint(addr, &settings, client_use, config)?;
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
    let target = Target { addr, name, in_process: local.is_some() };
    let result = if datagram_mode(args) {
        datagrams::run(args, &settings, &ep, &target, &notes, &stop)
    } else {
        drive::run(args, &settings, &ep, &target, local, notes, &stop, report)
    }
    .map_err(|e| certs::explain(e, args.ca.as_deref(), &target.name));
    if let Some(m) = metrics {
        m.stop();
    }
    let ended = match result {
        Ok(ended) => ended,
        // Ctrl-C before anything was measured (while connecting): the error, and 130 as
        // for any interrupted run.
        Err(e) if stop.interrupted() => {
            if args.json {
                outln!("{}", serde_json::json!({ "error": e }));
            }
            eprintln!("peregrine: {e}");
            std::process::exit(130);
        }
        Err(e) => return Err(e),
    };
    *printed = true;
    if let Some(e) = ended.error {
        return Err(e);
    }
    if ended.interrupted {
        eprintln!("peregrine: interrupted; the results above cover the run until then");
        std::process::exit(130);
    }
    Ok(())
}

/// The server the run talks to.
pub struct Target {
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// The name it is authenticated as.
    pub name: String,
    /// Whether it is the in-process server.
    pub in_process: bool,
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

/// The sum of several connections' counters (gauges: the first connection's).
pub fn sum_stats(it: impl Iterator<Item = ConnectionStats>) -> ConnectionStats {
    let mut t = ConnectionStats::default();
    for s in it {
        if t.congestion.is_empty() {
            t.smoothed_rtt = s.smoothed_rtt;
            t.min_rtt = s.min_rtt;
            t.cwnd = s.cwnd;
        }
        crate::server::accumulate(&mut t, &s);
        t.bytes_sent += s.bytes_sent;
        t.bytes_received += s.bytes_received;
        t.key_updates += s.key_updates;
    }
    t
}
