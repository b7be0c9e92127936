//! One perf run: opens the connections, each served by a [`PerfClient`] handler on the
//! client worker that owns it (or, for `--handshakes`, starts one chain of
//! [`HandshakeClient`]s per slot), samples the slots' counters until every slot is done (the
//! duration passed, the sizes moved, or Ctrl-C), then gathers the transport counters and CPU
//! times and prints the results and writes the report.

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use peregrine_engine::api::Endpoint;
use peregrine_engine::ConnectionStats;

use super::cpu;
use super::handlers::{Done, HandshakeClient, PerfClient, Report, Run, Work};
use super::live::Live;
use super::output::Outcome;
use super::protocol::{self, Pacer, IO_TIMEOUT};
use super::sample::{
    tick_for, Holdback, IntervalCutter, Sampler, Slot, StreamCounters, Tick, TickLog,
};
use super::series::{self, Kind, ReportFile};
use super::stop::Stop;
use super::{sum_stats, Args, Direction, Mode, Target};
use crate::config::Settings;
use crate::server::Server;

/// The JSON intervals' length without `--interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes "for ever" in duration mode (the run ends at the deadline).
const ENDLESS: u64 = 1 << 50;
/// Longest wait for the connections' handshakes before the run starts: 5 s, and 2 ms more
/// per connection (10,000 connections take seconds of handshakes).
fn connect_timeout(n: usize) -> Duration {
    Duration::from_secs(5) + Duration::from_millis(2) * n as u32
}

/// How often a wait for the handshakes looks at Ctrl-C.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Waits until `n` connections reported their handshake; the first failure, a timeout or
/// Ctrl-C (`stop`) is the run's error. Reports that are not about connecting are kept in
/// `other`.
fn wait_connected(
    reports: &Receiver<Report>,
    n: usize,
    addr: SocketAddr,
    stop: &Stop,
    other: &mut Vec<Report>,
) -> Result<(), String> {
    let until = Instant::now() + connect_timeout(n);
    let mut up = 0;
    while up < n {
        if stop.interrupted() {
            return Err(format!(
                "interrupted while connecting to {addr} ({up} of {n} connection(s) up); \
                 nothing was measured"
            ));
        }
        let left = until.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left.min(STOP_POLL)) {
            Ok(Report::Connected(Ok(()))) => up += 1,
            Ok(Report::Connected(Err(e))) => {
                return Err(format!("connecting to {addr}: {e}"));
            }
            Ok(r) => other.push(r),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {}
            Err(_) => {
                let t = crate::config::format_duration(connect_timeout(n));
                return Err(format!("connecting to {addr}: no handshake within {t}"));
            }
        }
    }
    Ok(())
}

/// Whether a thread of this process belongs to the in-process server (by the names the
/// engine and the server give their threads).
fn server_thread(name: &str) -> bool {
    name.starts_with("peregrine-s-") || name.starts_with("server-")
}

/// How a run ended.
pub struct Ended {
    /// By Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// The error, when the run failed after its results were printed.
    pub error: Option<String>,
}

/// Runs the benchmark against `target` on `ep`, prints the results and writes `report`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    args: &Args,
    settings: &Settings,
    ep: &Arc<Endpoint>,
    target: &Target,
    local: Option<Server>,
    notes: Vec<String>,
    stop: &Stop,
    report: Option<ReportFile>,
) -> Result<Ended, String> {
    let mode = Mode::of(args);
    let started = SystemTime::now();
    let pacer = args.rate.map(|r| Arc::new(Pacer::new(r)));
    let (tx, reports) = mpsc::channel();
    let run = Run::new(args.connections as usize, stop.clone(), pacer, tx);
    // Bytes each slot uploads and downloads. The perf protocol answers a stream only after
    // its upload ended, so --bidir runs --streams download streams and as many upload
    // streams side by side on each connection (as iperf3 --bidir does).
    let streams = args.streams as usize;
    let sizes = |st: usize| match mode {
        Mode::Size => (args.upload.unwrap_or(0), args.download.unwrap_or(0)),
        Mode::Duration(Direction::Down) => (0, ENDLESS),
        Mode::Duration(Direction::Up) => (ENDLESS, 0),
        Mode::Duration(Direction::Both) if st < streams => (0, ENDLESS),
        Mode::Duration(Direction::Both) => (ENDLESS, 0),
        Mode::Rps => (args.request_size, args.response_size),
        Mode::Handshakes => (0, 0),
    };
    let per_conn = match mode {
        Mode::Handshakes => 1,
        Mode::Duration(Direction::Both) => 2 * streams,
        _ => streams,
    };
    let mut slots = Vec::new();
    let mut stats = Vec::new();
    // Each connection is served by a handler on the client worker that owns it: no thread
    // per connection or stream.
    for c in 0..args.connections as usize {
        let mut mine = Vec::new();
        for st in 0..per_conn {
            let (up, down) = sizes(st);
            let counters = Arc::new(StreamCounters::default());
            let work = match mode {
                Mode::Rps => Work::Requests { up, down },
                _ => Work::Bulk { up, down },
            };
            mine.push((slots.len(), work, counters.clone()));
            slots.push(Slot { conn: c, stream: st, counters });
        }
        if mode == Mode::Handshakes {
            continue;
        }
        let cell = Arc::new(Mutex::new(ConnectionStats::default()));
        stats.push(cell.clone());
        let handler = PerfClient::new(run.clone(), cell, mine)?;
        ep.connect_with(target.addr, &target.name, Box::new(handler))
            .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
    }
    let mut early = Vec::new();
    wait_connected(&reports, stats.len(), target.addr, stop, &mut early)?;
    let cpu0 = cpu::process_times();
    let server_cpu0 = cpu::threads_times(server_thread);
    let start = Instant::now();
    let deadline = (mode != Mode::Size).then(|| start + args.duration);
    run.start(deadline);
    if mode == Mode::Handshakes {
        let name: Arc<str> = target.name.as_str().into();
        for (i, slot) in slots.iter().enumerate() {
            let (run, ep, counters) = (run.clone(), ep.clone(), slot.counters.clone());
            HandshakeClient::start(i, run, ep, target.addr, name.clone(), counters)?;
        }
    }
    let conn_stats = |cells: &[Arc<Mutex<ConnectionStats>>]| -> Vec<ConnectionStats> {
        cells.iter().map(|c| c.lock().map(|s| *s).unwrap_or_default()).collect()
    };
    let conns = stats;
    let interval = args.interval.unwrap_or(DEFAULT_INTERVAL);
    let tick = tick_for(interval);
    let mut sampler = Sampler::new(start, tick, slots.clone(), conn_stats(&conns));
    let mut cutter = IntervalCutter::new(interval);
    let mut log = TickLog::default();
    let what = match mode {
        Mode::Rps => Some("requests"),
        Mode::Handshakes => Some("handshakes"),
        _ => None,
    };
    let progress = std::io::stderr().is_terminal() && !args.json;
    let mut live = Live::new(
        progress,
        args.interval.is_some() && !args.json,
        what,
        &slots,
        args.connections as usize,
    );
    let mut cut_at_deadline = false;
    let mut hold = Holdback::default();
    let mut take = |t: Tick, cutter: &mut IntervalCutter, live: &mut Live| {
        let closed = cutter.push(&t).cloned();
        live.tick(&t, closed.as_ref());
        log.push(t);
    };
    let mut results: Vec<Option<Result<Done, String>>> = slots.iter().map(|_| None).collect();
    let mut ended = 0;
    let mut closed = 0;
    // Past the deadline, a slot has the no-progress timeout and a little more to end.
    let give_up = deadline.map(|d| d + IO_TIMEOUT + Duration::from_secs(5));
    loop {
        let now = Instant::now();
        for r in early.drain(..).chain(reports.try_iter()) {
            match r {
                Report::Slot { slot, result } => {
                    if results[slot].replace(result).is_none() {
                        ended += 1;
                    }
                }
                Report::Closed => closed += 1,
                Report::Connected(_) => {}
            }
        }
        let at_deadline = !cut_at_deadline && deadline.is_some_and(|d| now >= d);
        if ended == slots.len() || give_up.is_some_and(|g| now >= g) {
            for t in hold.finish(sampler.cut(now, &conn_stats(&conns))) {
                take(t, &mut cutter, &mut live);
            }
            break;
        }
        if at_deadline || sampler.due(now) {
            cut_at_deadline |= at_deadline;
            if let Some(t) = sampler.cut(now, &conn_stats(&conns)).and_then(|t| hold.push(t)) {
                take(t, &mut cutter, &mut live);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (last, intervals) = cutter.finish();
    live.last(last.as_ref());
    live.clear_progress();
    let mut errors = Vec::new();
    let mut latency: Option<Histogram<u64>> = None;
    let mut moved = protocol::Moved { complete: true, ..Default::default() };
    for r in results {
        let r = r.unwrap_or_else(|| Err("the slot did not end".into()));
        let h = match r {
            Ok(Done::Bulk(m)) => {
                moved.up += m.up;
                moved.down += m.down;
                moved.complete &= m.complete;
                None
            }
            Ok(Done::Requests(r)) => Some(r.latency_us),
            Ok(Done::Handshakes(h)) => Some(h),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if let Some(h) = h {
            match &mut latency {
                Some(all) => all.add(&h).map_err(|e| e.to_string())?,
                None => latency = Some(h),
            }
        }
    }
    let client_conns = conn_stats(&conns);
    let threads = cpu::threads();
    let server_cpu = local.as_ref().map(|_| cpu::threads_times(server_thread).since(server_cpu0));
    let all_cpu = cpu::process_times().since(cpu0);
    let client_cpu = match server_cpu {
        Some(s) => all_cpu.since(s),
        None => all_cpu,
    };
    // Each connection closed itself after its last slot; wait (briefly) until they are gone.
    let until = Instant::now() + Duration::from_secs(1);
    while closed < conns.len() && Instant::now() < until {
        if let Ok(Report::Closed) = reports.recv_timeout(Duration::from_millis(10)) {
            closed += 1;
        }
    }
    let client_workers = ep.stats().workers.len();
    let server_workers = local.as_ref().map(|s| s.endpoint().stats().workers.len());
    // Workers the kernel pinned as --cores asked (local server, or the client with --server).
    let pinned_ep = local.as_ref().map_or(ep, |s| s.endpoint());
    let pinned = pinned_ep.stats().workers.iter().filter(|w| w.pinned == Some(true)).count();
    let server = local.map(|s| {
        std::thread::sleep(Duration::from_millis(50));
        let st = s.finished_stats();
        s.stop(Duration::from_secs(2));
        st
    });
    let interrupted = stop.interrupted();
    let total_streams = slots.len() as u64;
    let mut error = errors
        .first()
        .map(|e| format!("{} of {} streams failed; first: {e}", errors.len(), total_streams));
    let want = sizes(0).1 * total_streams;
    if error.is_none() && mode == Mode::Size && !interrupted && moved.down != want {
        error = Some(format!("received {} bytes, expected {want}", moved.down));
    }
    let outcome = Outcome {
        args,
        settings,
        mode,
        started,
        target: args.server.clone().unwrap_or_else(|| target.addr.to_string()),
        remote: target.addr,
        in_process: target.in_process,
        notes,
        workers: (client_workers, server_workers, pinned),
        slots: slots.iter().map(|s| (s.conn, s.stream)).collect(),
        connections: args.connections as usize,
        intervals,
        interval,
        latency,
        client: (mode != Mode::Handshakes).then(|| sum_stats(client_conns.iter().copied())),
        client_conns,
        server,
        client_cpu,
        server_cpu,
        threads,
        interrupted,
        error: error.clone(),
    };
    outcome.print();
    if let Some(file) = report {
        let kind = match mode {
            Mode::Rps => Kind::Rps,
            Mode::Handshakes => Kind::Handshakes,
            _ => Kind::Bulk,
        };
        let charts = series::charts(&kind, &slots, &log.ticks, args.connections as usize);
        let notes = vec![
            super::settings_note(args, settings),
            format!(
                "each step is one {} ms sample of the counters; bytes sent count once the peer \
                 acknowledged them, bytes received once read",
                tick.as_millis()
            ),
        ];
        let r =
            series::report(&kind, charts, outcome.latency.as_ref(), outcome.summary_lines(), notes);
        let path = file.path().display().to_string();
        file.write(&r)?;
        if !args.json {
            outln!("report written to {path}");
        }
    }
    Ok(Ended { interrupted, error })
}
