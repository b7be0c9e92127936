//! One perf run: opens the connections, starts one thread per stream slot (or handshake
//! loop) that drives its requests and bumps its counters, samples the counters until every
//! slot is done (the duration passed, the sizes moved, or Ctrl-C), then gathers the
//! transport counters and CPU times and prints the results and writes the report.

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::io::IsTerminal;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use peregrine_engine::api::{Connection, Endpoint};
use peregrine_engine::connection::ConnectionStats;
use peregrine_engine::VarInt;

use super::cpu;
use super::live::Live;
use super::output::Outcome;
use super::protocol::{self, Pacer, RequestIo};
use super::sample::{
    tick_for, Holdback, IntervalCutter, Sampler, Slot, StreamCounters, Tick, TickLog,
};
use super::series::{self, Kind, ReportFile};
use super::stop::Stop;
use super::{handshakes, rps, sum_stats, Args, Direction, Mode, Target};
use crate::client;
use crate::config::Settings;
use crate::server::Server;

/// The JSON intervals' length without `--interval`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes "for ever" in duration mode (the run ends at the deadline).
const ENDLESS: u64 = 1 << 50;

/// What a slot's thread returns.
enum Done {
    Bulk(protocol::Moved),
    Requests(rps::RpsResult),
    Handshakes(Histogram<u64>),
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
    let mut conns: Vec<Connection> = Vec::new();
    if mode != Mode::Handshakes {
        for _ in 0..args.connections {
            conns.push(client::connect(ep, target.addr, &target.name, Duration::from_secs(5))?);
        }
    }
    let cpu0 = cpu::process_times();
    let server_cpu0 = cpu::threads_times(server_thread);
    let start = Instant::now();
    let deadline = (mode != Mode::Size).then(|| start + args.duration);
    let pacer = args.rate.map(|r| Arc::new(Pacer::new(r)));
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
    let mut slots = Vec::new();
    let mut jobs: Vec<JoinHandle<Result<Done, String>>> = Vec::new();
    let per_conn = match mode {
        Mode::Handshakes => 1,
        Mode::Duration(Direction::Both) => 2 * streams,
        _ => streams,
    };
    for c in 0..args.connections as usize {
        // Handshake mode has no connections of its own: each slot makes them.
        let conn = conns.get(c).cloned();
        for st in 0..per_conn {
            let (up, down) = sizes(st);
            let counters = Arc::new(StreamCounters::default());
            slots.push(Slot { conn: c, stream: st, counters: counters.clone() });
            let (stop, pacer) = (stop.clone(), pacer.clone());
            let ended = move || stop.interrupted() || deadline.is_some_and(|d| Instant::now() >= d);
            let job: Box<dyn FnOnce() -> Result<Done, String> + Send> = match mode {
                Mode::Handshakes => {
                    let (ep, addr, name) = (ep.clone(), target.addr, target.name.clone());
                    Box::new(move || {
                        handshakes::worker(&ep, addr, &name, &ended, &counters)
                            .map(Done::Handshakes)
                    })
                }
                Mode::Rps => {
                    let conn = conn.clone().ok_or("no connection")?;
                    Box::new(move || {
                        rps::worker(&conn, up, down, &ended, &counters, pacer.as_deref())
                            .map(Done::Requests)
                    })
                }
                _ => {
                    let conn = conn.clone().ok_or("no connection")?;
                    Box::new(move || {
                        let (send, mut recv) = conn
                            .open_bi_blocking(protocol::IO_TIMEOUT)
                            .map_err(|e| e.to_string())?;
                        let sent = |n| counters.add_sent(n);
                        let received = |n| counters.add_received(n);
                        let io = RequestIo {
                            stop: &ended,
                            sent: &sent,
                            received: &received,
                            pacer: pacer.as_deref(),
                        };
                        protocol::request(&send, &mut recv, up, down, &io).map(Done::Bulk)
                    })
                }
            };
            jobs.push(std::thread::spawn(job));
        }
    }
    let conn_stats = |conns: &[Connection]| -> Vec<ConnectionStats> {
        conns.iter().map(Connection::stats).collect()
    };
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
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let now = Instant::now();
        let done = jobs.iter().all(JoinHandle::is_finished);
        let at_deadline = !cut_at_deadline && deadline.is_some_and(|d| now >= d);
        if done {
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
    }
    let (last, intervals) = cutter.finish();
    live.last(last.as_ref());
    live.clear_progress();
    let mut errors = Vec::new();
    let mut latency: Option<Histogram<u64>> = None;
    let mut moved = protocol::Moved { complete: true, ..Default::default() };
    for j in jobs {
        let r = j.join().unwrap_or_else(|_| Err("a stream thread failed".into()));
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
    for c in &conns {
        c.close(VarInt::from_u32(0), b"done");
    }
    for c in &conns {
        c.wait_drained(Duration::from_secs(1));
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
