//! `peregrine stress`: random API calls from several threads against an in-process server, over
//! loopback UDP with seeded faults, then the DESIGN.md invariants and resource checks.
//!
//! A server and a client endpoint run in this process, each on a loopback UDP queue wrapped in
//! a [`FaultQueue`] (the simulated network's seeded link model on the wall clock: the workers
//! read the real clock, so they cannot run on the virtual-time `SimQueue`). Client and server
//! threads ([`ops`]) connect, accept, open and accept streams, write with completions, finish,
//! reset, stop, read, close connections with random codes, drop handles and sleep, until the
//! duration or an operation budget ends. Both endpoints shut down at the end of the duration, from
//! two threads at once, while the application threads go on calling for a little longer; then
//! [`check`] verifies:
//! every write completed exactly once and the counts agree, no duplicate completion or
//! accounting underflow, "drained" signalled exactly once, no live connection, every thread
//! finished in time, no blocking call overstayed its timeout, and every buffer was handed back
//! (at rest, and after the endpoints were dropped). Any violation exits non-zero with one line.

// A command, not the sans-IO core: it reads the wall clock for deadlines.
#![allow(clippy::disallowed_methods)]

pub mod check;
pub mod ops;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_datapath::fault::{FaultHandle, FaultQueue};
use peregrine_datapath::sim::{LinkConfig, LinkStats};
use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_engine::api::{Endpoint, EndpointConfig, EndpointStats};
use peregrine_engine::KeyLogTarget;
use peregrine_engine::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::{Dir, StreamsConfig};
use serde_json::{json, Value};

use crate::certs::{self, Trust};
use crate::config::parse_duration;
use crate::perf::parse_run_duration;
use check::{AppWrites, EndpointReport, Report};
use ops::{Rng, Side, Tally, World, LATE, OP_NAMES};

/// How long the application threads go on calling after the shutdowns began.
const SHUTDOWN_OVERLAP: Duration = Duration::from_millis(500);
/// How long after the deadline the application threads have to finish.
const JOIN_GRACE: Duration = Duration::from_secs(10);
/// Timeout given to each endpoint's graceful shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Budget for the remaining write completions after the shutdown.
const COMPLETION_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for a worker to go idle with no buffer lent after the shutdown.
const IDLE_WAIT: Duration = Duration::from_secs(3);
/// Streams of each type the peer may have open at once: small, so opens wait for credit.
const STREAM_LIMIT: u64 = 8;
/// Idle timeout of the connections (short, so idle timeouts happen under loss).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// `peregrine stress` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long the application threads run, e.g. 10s or 500ms (10ms..=24h).
    #[arg(long, value_parser = parse_run_duration, default_value = "10s")]
    duration: Duration,
    /// Client application threads (the server gets half as many, at least one).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Connections the client keeps open at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// Seed of the operations and of the faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most operations per thread.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_ops: u64,
    /// Probability that a datagram is lost (each direction).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probability that a datagram is held back 10 ms so later ones overtake it.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Probability that a datagram is delivered twice.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Probability that one bit of a datagram is flipped.
    #[arg(long, default_value_t = 0.0)]
    corrupt: f64,
    /// One-way delay added to every datagram (e.g. 5ms; 0 for none).
    #[arg(long, value_parser = parse_delay, default_value = "0")]
    delay: Duration,
    /// Stall the client's transmit (a backend that never drains) from the moment the
    /// shutdowns begin until they returned: they must still return within their timeout.
    #[arg(long)]
    stall_at_shutdown: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Parses a delay: `0` (none), or a duration like `5ms`, `10s` (at most 10s).
fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = parse_duration(s)?;
    if d > Duration::from_secs(10) {
        return Err(format!("'{s}' is too long a delay (at most 10s)"));
    }
    Ok(d)
}

/// One endpoint on a faulty loopback queue.
fn endpoint(
    config: EndpointConfig,
    link: &LinkConfig,
    seed: u64,
) -> Result<(Endpoint, FaultHandle), String> {
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let udp = UdpQueue::open(&UdpConfig::new(any)).map_err(|e| format!("UDP socket: {e}"))?;
    let q = FaultQueue::new(udp, link.clone(), seed).map_err(|e| format!("fault flags: {e}"))?;
    let h = q.handle();
    let ep = Endpoint::with_queues(vec![q], config).map_err(|e| format!("endpoint: {e}"))?;
    Ok((ep, h))
}

fn transport() -> Result<TransportConfig, String> {
    let streams = StreamsConfig::default()
        .with_max_concurrent_streams(Dir::Bi, STREAM_LIMIT)
        .and_then(|s| s.with_max_concurrent_streams(Dir::Uni, STREAM_LIMIT))
        .map_err(|e| e.to_string())?;
    TransportConfig::default()
        .with_idle_timeout(Some(IDLE_TIMEOUT))
        .map(|t| t.with_streams(streams))
        .map_err(|e| e.to_string())
}

struct Spawned {
    name: String,
    doing: Arc<AtomicUsize>,
    handle: JoinHandle<Tally>,
}

fn spawn(side: &Arc<Side>, n: u32, seed: u64, deadline: Instant, max_ops: u64) -> Vec<Spawned> {
    (0..n)
        .filter_map(|i| {
            let name = format!("{}-{i}", side.name);
            let doing = Arc::new(AtomicUsize::new(usize::MAX));
            let (side, d) = (side.clone(), doing.clone());
            let rng = Rng::new(seed ^ u64::from(i).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || ops::run_thread(&side, rng, deadline, max_ops, &d))
                .ok()?;
            Some(Spawned { name, doing, handle })
        })
        .collect()
}

/// Joins the threads that finish before `until`; returns the merged tally and the hung ones.
fn join(threads: Vec<Spawned>, until: Instant) -> (Tally, Vec<String>) {
    while Instant::now() < until && threads.iter().any(|t| !t.handle.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut tally = Tally::new();
    let mut hung = Vec::new();
    for t in threads {
        if !t.handle.is_finished() {
            let op = t.doing.load(std::sync::atomic::Ordering::Relaxed);
            let op = OP_NAMES.get(op).copied().unwrap_or("between operations");
            hung.push(format!("{} in {op}", t.name));
            continue;
        }
        match t.handle.join() {
            Ok(t) => merge(&mut tally, t),
            Err(_) => hung.push(format!("{} panicked", t.name)),
        }
    }
    (tally, hung)
}

fn merge(into: &mut Tally, from: Tally) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// Waits for every write completion still pending on `side` (bounded); returns unresolved.
fn drain_pending(side: &Side, tally: &mut Tally, until: Instant) -> u64 {
    let pending = std::mem::take(&mut side.world.lock().unwrap_or_else(|e| e.into_inner()).pending);
    let mut unresolved = 0;
    for c in pending {
        let left = until.saturating_duration_since(Instant::now());
        match c.wait(left) {
            Ok(s) => ops::count_status(tally, s),
            Err(_) => unresolved += 1,
        }
    }
    unresolved
}

/// Waits until the queue's worker sleeps twice more with no buffer lent; the last count seen.
fn idle_buffers(h: &FaultHandle) -> Option<usize> {
    let start_waits = h.idle_outstanding().map_or(0, |(_, w)| w);
    let end = Instant::now() + IDLE_WAIT;
    let mut last = None;
    while Instant::now() < end {
        if let Some((n, w)) = h.idle_outstanding() {
            if w >= start_waits + 2 {
                last = Some(n);
                if n == 0 {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    last
}

/// Shuts an endpoint down (twice: the second must be a no-op), timing the first call.
/// `Ok((true, _))` when the graceful period ran out and connections were dropped; with the
/// time the first call took.
fn shutdown(side: &Side, violations: &mut Vec<String>) -> Result<(bool, Duration), String> {
    let start = Instant::now();
    let r = side.ep.shutdown(SHUTDOWN_TIMEOUT);
    let took = start.elapsed();
    if took > SHUTDOWN_TIMEOUT + LATE {
        violations.push(format!("{}: shutdown took {took:?}", side.name));
    }
    let again = side.ep.shutdown(Duration::from_secs(1));
    if r.is_ok() && again.is_err() {
        violations.push(format!("{}: a second shutdown failed: {again:?}", side.name));
    }
    r.map(|rep| (rep.forced, took)).map_err(|e| e.to_string())
}

/// Drops the side's handles and its endpoint; buffers of its queue still existing after.
fn teardown(side: Arc<Side>, h: &FaultHandle, violations: &mut Vec<String>) -> Option<usize> {
    *side.world.lock().unwrap_or_else(|e| e.into_inner()) = World::default();
    let name = side.name;
    let side = Arc::into_inner(side)?;
    let start = Instant::now();
    drop(side);
    let took = start.elapsed();
    if took > Duration::from_secs(1) + LATE {
        violations.push(format!("{name}: dropping the endpoint took {took:?}"));
    }
    Some(h.buffers_existing())
}

/// Runs the stress test and prints its summary; `Err` with the first violation.
pub fn run(args: &Args) -> Result<(), String> {
    let link = LinkConfig {
        loss: args.loss,
        reorder: args.reorder,
        duplicate: args.duplicate,
        corrupt: args.corrupt,
        delay: args.delay,
        ..LinkConfig::default()
    };
    link.validate().map_err(|e| format!("fault flags: {e}"))?;
    let cert = certs::generate()?;
    let mut sc = ServerConfig::new(certs::server_generated(&cert, KeyLogTarget::Disabled, false)?);
    sc.transport = transport()?;
    let mut cc = ClientConfig::new(certs::client(
        Trust::Cert(cert.cert.clone()),
        certs::ALPN_HQ,
        KeyLogTarget::Disabled,
    )?);
    cc.transport = transport()?;
    let (sep, sh) = endpoint(EndpointConfig::server(sc), &link, args.seed)?;
    let (cep, ch) = endpoint(EndpointConfig::client(cc), &link, args.seed ^ 0x5eed_5eed)?;
    let during = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let shutdown_at = start + args.duration;
    let side = |name, ep: Endpoint, peer, max_conns| {
        Arc::new(Side {
            name,
            ep,
            peer,
            max_conns,
            world: Mutex::new(World::default()),
            violations: during.clone(),
            shutdown_at,
        })
    };
    let (saddr, caddr) = (sep.local_addr(), cep.local_addr());
    let server = side("server", sep, caddr, usize::MAX);
    let client = side("client", cep, saddr, args.connections as usize);

    // The threads keep calling for a while after both shutdowns began: API calls race them.
    let deadline = shutdown_at + SHUTDOWN_OVERLAP;
    let server_threads = (args.threads / 2).max(1);
    let mut threads = spawn(&client, args.threads, args.seed, deadline, args.max_ops);
    threads.extend(spawn(&server, server_threads, !args.seed, deadline, args.max_ops));
    std::thread::sleep(shutdown_at.saturating_duration_since(Instant::now()));
    let mut post = Vec::new();
    let (mut post_server, mut post_client) = (Vec::new(), Vec::new());
    // Both endpoints shut down at once, each from its own thread.
    if args.stall_at_shutdown {
        ch.set_stalled(true);
    }
    let (shut_client, shut_server) = std::thread::scope(|sc| {
        let s = sc.spawn(|| shutdown(&server, &mut post_server));
        let c = shutdown(&client, &mut post_client);
        (c, s.join().unwrap_or_else(|_| Err("shutdown thread panicked".into())))
    });
    ch.set_stalled(false);
    let shut = [&shut_client, &shut_server].map(|r| r.as_ref().ok().copied());
    let (shut_client, shut_server) = (shut_client.map(|_| ()), shut_server.map(|_| ()));
    post.extend(post_client);
    post.extend(post_server);
    let (mut tally, hung_threads) = join(threads, deadline + JOIN_GRACE);
    let ran = start.elapsed();
    let until = Instant::now() + COMPLETION_WAIT;
    let unresolved =
        drain_pending(&client, &mut tally, until) + drain_pending(&server, &mut tally, until);
    let (cstats, sstats) = (client.ep.stats(), server.ep.stats());
    let (cidle, sidle) = (idle_buffers(&ch), idle_buffers(&sh));
    let cafter = teardown(client, &ch, &mut post);
    let safter = teardown(server, &sh, &mut post);

    let sum =
        |prefix: &str| tally.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum();
    let report = Report {
        endpoints: vec![
            EndpointReport {
                name: "client",
                stats: cstats,
                shutdown: shut_client,
                idle_buffers: cidle,
                buffers_after_drop: cafter,
            },
            EndpointReport {
                name: "server",
                stats: sstats,
                shutdown: shut_server,
                idle_buffers: sidle,
                buffers_after_drop: safter,
            },
        ],
        app: AppWrites {
            issued: tally.get("writes_issued").copied().unwrap_or(0),
            delivered: sum("completion.delivered"),
            cancelled: sum("completion.cancelled."),
            refused: sum("completion.refused"),
            unresolved,
        },
        hung_threads,
        during_run: {
            let mut v = std::mem::take(&mut *during.lock().unwrap_or_else(|e| e.into_inner()));
            v.extend(post);
            v
        },
    };
    let violations = check::violations(&report);
    let mut faults = ch.link_stats();
    faults.add(&sh.link_stats());
    let drops = ch.delay_line_drops() + sh.delay_line_drops();
    let stalled_sends = ch.stalled_sends() + sh.stalled_sends();
    let mut summary = summary(args, &tally, &report, &faults, drops, ran, &violations);
    for (e, f) in ["client", "server"].iter().zip(shut) {
        let (forced, took) = f.unwrap_or_default();
        summary["endpoints"][e]["shutdown_forced"] = Value::Bool(forced);
        summary["endpoints"][e]["shutdown_s"] = took.as_secs_f64().into();
    }
    summary["faults"]["stalled_sends"] = stalled_sends.into();
    if args.json {
        outln!("{summary}");
    } else {
        print_text(&summary);
    }
    match violations.first() {
        None => Ok(()),
        Some(first) if violations.len() == 1 => Err(format!("invariant violated: {first}")),
        Some(first) => {
            Err(format!("invariant violated: {first} (and {} more)", violations.len() - 1))
        }
    }
}

fn stats_json(s: &EndpointStats) -> Value {
    let sched = s.workers.iter().map(|w| &w.scheduler);
    let close_packets: u64 = sched.clone().map(|x| x.close_packets.iter().sum::<u64>()).sum();
    let close_skips: u64 = sched.clone().map(|x| x.close_skips).sum();
    let max_turns = sched.map(|x| x.max_turns_per_flush).max().unwrap_or(0);
    json!({
        "opened": s.opened, "closed": s.closed, "live_connections": s.live_connections,
        "drained_signals": s.drained_signals, "accounting_underflows": s.accounting_underflows,
        "writes": s.writes, "completions": s.completions,
        "duplicate_completions": s.duplicate_completions, "delivered": s.delivered,
        "cancelled": s.cancelled, "refused": s.refused, "close_packets": close_packets,
        "close_skips": close_skips, "max_turns_per_flush": max_turns,
    })
}

fn summary(
    args: &Args,
    tally: &Tally,
    r: &Report,
    f: &LinkStats,
    delay_line_drops: u64,
    ran: Duration,
    violations: &[String],
) -> Value {
    let ops: BTreeMap<&String, &u64> =
        tally.iter().filter(|(k, _)| !k.starts_with("completion.")).collect();
    let completions: BTreeMap<&str, &u64> =
        tally.iter().filter_map(|(k, v)| k.strip_prefix("completion.").map(|k| (k, v))).collect();
    let total_ops: u64 = OP_NAMES.iter().map(|n| tally.get(*n).copied().unwrap_or(0)).sum();
    let eps: serde_json::Map<String, Value> =
        r.endpoints.iter().map(|e| (e.name.to_owned(), stats_json(&e.stats))).collect();
    json!({
        "seed": args.seed,
        "ran_s": ran.as_secs_f64(),
        "threads": { "client": args.threads, "server": (args.threads / 2).max(1) },
        "connections": args.connections,
        "ops_total": total_ops,
        "ops_before_shutdown": tally.get("ops_before_shutdown").copied().unwrap_or(0),
        "ops": ops,
        "completions": completions,
        "writes": { "issued": r.app.issued, "unresolved": r.app.unresolved },
        "faults": {
            "datagrams": f.sent, "lost": f.lost_random + f.lost_burst, "duplicated": f.duplicated,
            "corrupted": f.corrupted, "reordered": f.reordered,
            "delay_line_drops": delay_line_drops,
        },
        "endpoints": eps,
        "violations": violations,
        "ok": violations.is_empty(),
    })
}

fn print_text(s: &Value) {
    let line = |v: &Value| {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    outln!(
        "stress: {:.1} s, seed {}, threads {}, {} operations ({} before the shutdowns)",
        s["ran_s"].as_f64().unwrap_or(0.0),
        s["seed"],
        line(&s["threads"]),
        s["ops_total"],
        s["ops_before_shutdown"]
    );
    outln!("ops: {}", line(&s["ops"]));
    outln!("completions: {}", line(&s["completions"]));
    outln!("faults: {}", line(&s["faults"]));
    for (name, e) in s["endpoints"].as_object().into_iter().flatten() {
        outln!("{name}: {}", line(e));
    }
    match s["violations"].as_array() {
        Some(v) if !v.is_empty() => {
            for x in v {
                outln!("VIOLATION: {}", x.as_str().unwrap_or_default());
            }
        }
        _ => outln!("invariants: all held"),
    }
}
