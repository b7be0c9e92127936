//! The application threads of `peregrine stress`: seeded random API calls on shared
//! connections and streams, each bounded in time, with a tally of what happened.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_engine::api::{
    ConnError, Connection, Endpoint, RecvStream, RecvStreamError, SendStream, WriteCompletion,
    WriteStatus,
};
use peregrine_engine::CancelReason;
use peregrine_engine::VarInt;

/// Timeout of a blocking stream open (invariant 4: it must return by then).
pub const OPEN_TIMEOUT: Duration = Duration::from_millis(300);
/// Timeout of a handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of a blocking read or stream accept.
const POLL_TIMEOUT: Duration = Duration::from_millis(10);
/// How far past its timeout a blocking call may return before it counts as a hang (the
/// machine may be loaded; a real hang never returns).
pub const LATE: Duration = Duration::from_secs(2);
/// Longest a `close()` may take (it must never wait on I/O).
const CLOSE_LIMIT: Duration = Duration::from_millis(500);
/// Bounds on what one side keeps around.
const MAX_STREAMS: usize = 256;
const MAX_PENDING: usize = 4096;
/// Largest single write.
const MAX_WRITE: usize = 32 * 1024;
static ZEROS: [u8; MAX_WRITE] = [0; MAX_WRITE];

/// SplitMix64: small, seeded, good enough to pick operations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Handles one side keeps between operations.
#[derive(Default)]
pub struct World {
    /// Connections (established or closing).
    pub conns: Vec<Connection>,
    /// Sending halves.
    pub sends: Vec<SendStream>,
    /// Receiving halves.
    pub recvs: Vec<RecvStream>,
    /// Writes not yet seen complete.
    pub pending: Vec<WriteCompletion>,
}

/// One endpoint and its handles.
pub struct Side {
    /// "client" or "server".
    pub name: &'static str,
    /// The endpoint.
    pub ep: Endpoint,
    /// The peer's address (the client connects to it).
    pub peer: SocketAddr,
    /// Connections the client keeps at most.
    pub max_conns: usize,
    /// Handles shared by the side's threads (never locked across a blocking call).
    pub world: Mutex<World>,
    /// Violations seen while running.
    pub violations: Arc<Mutex<Vec<String>>>,
    /// When the endpoints' shutdowns begin (operations before it are counted apart).
    pub shutdown_at: Instant,
}

impl Side {
    fn is_client(&self) -> bool {
        self.name == "client"
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn violation(&self, v: String) {
        self.violations.lock().unwrap_or_else(|e| e.into_inner()).push(v);
    }
}

/// Operation names, indexed by [`Op`] (also what a hung thread was doing).
pub const OP_NAMES: [&str; 17] = [
    "connect",
    "accept_conn",
    "open_bi",
    "open_uni",
    "accept_bi",
    "accept_uni",
    "write",
    "write_fin",
    "finish",
    "reset",
    "stop",
    "read",
    "poll_completions",
    "close_conn",
    "drop_conn",
    "drop_stream",
    "sleep",
];

/// The tally of one thread: operation and outcome counts by name.
pub type Tally = BTreeMap<String, u64>;

fn count(t: &mut Tally, key: &str) {
    *t.entry(key.to_owned()).or_default() += 1;
}

/// Counts a completion seen by the application under `completion.*`.
pub fn count_status(t: &mut Tally, s: WriteStatus) {
    let key = match s {
        WriteStatus::Delivered => "completion.delivered",
        WriteStatus::Cancelled(CancelReason::Reset(_)) => "completion.cancelled.reset",
        WriteStatus::Cancelled(CancelReason::StopSending(_)) => "completion.cancelled.stop_sending",
        WriteStatus::Cancelled(CancelReason::ConnectionClosed) => {
            "completion.cancelled.connection_closed"
        }
        WriteStatus::Cancelled(CancelReason::IdleTimeout) => "completion.cancelled.idle_timeout",
        WriteStatus::Cancelled(CancelReason::EndpointDropped) => {
            "completion.cancelled.endpoint_dropped"
        }
        WriteStatus::Refused(_) => "completion.refused",
    };
    count(t, key);
}

fn take<T>(v: &mut Vec<T>, rng: &mut Rng) -> Option<T> {
    (!v.is_empty()).then(|| v.swap_remove(rng.below(v.len())))
}

fn conn_err(e: &ConnError) -> &'static str {
    match e {
        ConnError::TimedOut => "timed_out",
        ConnError::Connection(_) | ConnError::Closed => "conn_closed",
        ConnError::EndpointStopped | ConnError::ShuttingDown => "endpoint_gone",
        ConnError::StreamClosed => "stream_closed",
        ConnError::NotClient | ConnError::Setup(_) => "setup",
    }
}

/// Picks the next operation; weights favour traffic over teardown.
fn pick(rng: &mut Rng, client: bool) -> usize {
    const WEIGHTS: [u32; 17] = [3, 3, 6, 4, 5, 4, 20, 4, 3, 3, 3, 20, 6, 2, 1, 2, 2];
    let total: u32 = WEIGHTS.iter().sum();
    let mut x = rng.below(total as usize) as u32;
    for (i, w) in WEIGHTS.iter().enumerate() {
        if x < *w {
            // The server never connects; the client never accepts connections.
            return match (i, client) {
                (0, false) => 1,
                (1, true) => 0,
                _ => i,
            };
        }
        x -= w;
    }
    OP_NAMES.len() - 1
}

/// Runs random operations on `side` until `deadline` or `max_ops`; `doing` holds the index of
/// the current operation (for the hang report). Returns the thread's tally.
pub fn run_thread(
    side: &Side,
    mut rng: Rng,
    deadline: Instant,
    max_ops: u64,
    doing: &AtomicUsize,
) -> Tally {
    let mut t = Tally::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ops = 0;
    while ops < max_ops && Instant::now() < deadline {
        ops += 1;
        let op = pick(&mut rng, side.is_client());
        doing.store(op, Ordering::Relaxed);
        count(&mut t, OP_NAMES[op]);
        if Instant::now() < side.shutdown_at {
            count(&mut t, "ops_before_shutdown");
        }
        match op {
            0 => connect(side, &mut t),
            1 => {
                if let Some(c) = side.ep.accept_blocking(Some(POLL_TIMEOUT)) {
                    count(&mut t, "accept_conn.ok");
                    side.world().conns.push(c);
                }
            }
            2 | 3 => open(side, &mut rng, &mut t, op == 2),
            4 | 5 => accept_stream(side, &mut rng, &mut t, op == 4),
            6..=8 => write(side, &mut rng, &mut t, op),
            9 => {
                let s = take(&mut side.world().sends, &mut rng);
                if let Some(s) = s {
                    s.reset(rng.below(8) as u64);
                    side.world().sends.push(s);
                }
            }
            10 => {
                let r = take(&mut side.world().recvs, &mut rng);
                if let Some(mut r) = r {
                    r.stop(rng.below(8) as u64);
                    side.world().recvs.push(r);
                }
            }
            11 => read(side, &mut rng, &mut t, &mut buf),
            12 => poll_completions(side, &mut rng, &mut t),
            13 => close(side, &mut rng, &mut t),
            14 => drop(take(&mut side.world().conns, &mut rng)),
            15 => {
                let mut w = side.world();
                if rng.below(2) == 0 {
                    drop(take(&mut w.sends, &mut rng));
                } else {
                    drop(take(&mut w.recvs, &mut rng));
                }
            }
            _ => std::thread::sleep(Duration::from_micros(rng.below(2000) as u64)),
        }
    }
    doing.store(usize::MAX, Ordering::Relaxed);
    t
}

fn connect(side: &Side, t: &mut Tally) {
    {
        // Ended connections make room for new ones (handles dropped: accounting must hold).
        let mut w = side.world();
        let before = w.conns.len();
        w.conns.retain(|c| c.close_reason().is_none());
        let pruned = before - w.conns.len();
        drop(w);
        for _ in 0..pruned {
            count(t, "connect.pruned_ended");
        }
    }
    if side.world().conns.len() >= side.max_conns {
        count(t, "connect.skipped_full");
        return;
    }
    let start = Instant::now();
    let r = side.ep.connect(side.peer, "localhost").and_then(|c| c.wait(CONNECT_TIMEOUT));
    let took = start.elapsed();
    if took > CONNECT_TIMEOUT + LATE {
        side.violation(format!(
            "{}: connect waited {took:?} (timeout {CONNECT_TIMEOUT:?})",
            side.name
        ));
    }
    match r {
        Ok(c) => {
            count(t, "connect.ok");
            side.world().conns.push(c);
        }
        Err(e) => count(t, &format!("connect.{}", conn_err(&e))),
    }
}

fn open(side: &Side, rng: &mut Rng, t: &mut Tally, bi: bool) {
    let conn = {
        let w = side.world();
        if w.conns.is_empty() || w.sends.len() >= MAX_STREAMS {
            return;
        }
        w.conns[rng.below(w.conns.len())].clone()
    };
    let name = if bi { "open_bi" } else { "open_uni" };
    let start = Instant::now();
    let r = if bi {
        conn.open_bi_blocking(OPEN_TIMEOUT).map(|(s, r)| (s, Some(r)))
    } else {
        conn.open_uni_blocking(OPEN_TIMEOUT).map(|s| (s, None))
    };
    let took = start.elapsed();
    // DESIGN.md invariant 4: opening a stream never waits forever.
    if took > OPEN_TIMEOUT + LATE {
        side.violation(format!("{}: {name} waited {took:?} (timeout {OPEN_TIMEOUT:?})", side.name));
    }
    match r {
        Ok((s, r)) => {
            count(t, &format!("{name}.ok"));
            let mut w = side.world();
            w.sends.push(s);
            w.recvs.extend(r);
        }
        Err(e) => count(t, &format!("{name}.{}", conn_err(&e))),
    }
}

fn accept_stream(side: &Side, rng: &mut Rng, t: &mut Tally, bi: bool) {
    let conn = {
        let w = side.world();
        if w.conns.is_empty() || w.recvs.len() >= MAX_STREAMS {
            return;
        }
        w.conns[rng.below(w.conns.len())].clone()
    };
    if bi {
        if let Ok((s, r)) = conn.accept_bi_blocking(POLL_TIMEOUT) {
            count(t, "accept_bi.ok");
            let mut w = side.world();
            w.sends.push(s);
            w.recvs.push(r);
        }
    } else if let Ok(r) = conn.accept_uni_blocking(POLL_TIMEOUT) {
        count(t, "accept_uni.ok");
        side.world().recvs.push(r);
    }
}

fn write(side: &Side, rng: &mut Rng, t: &mut Tally, op: usize) {
    let s = {
        let mut w = side.world();
        if w.pending.len() >= MAX_PENDING {
            drop(w);
            return poll_completions(side, rng, t);
        }
        take(&mut w.sends, rng)
    };
    let Some(s) = s else { return };
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(1400) + 1,
        _ => rng.below(MAX_WRITE) + 1,
    };
    let data = Bytes::from_static(&ZEROS[..len]);
    let c = match op {
        6 => s.write(if len == 0 { Bytes::from_static(&ZEROS[..1]) } else { data }),
        7 => s.write_fin(data),
        _ => s.finish(),
    };
    count(t, "writes_issued");
    let mut w = side.world();
    w.pending.push(c);
    w.sends.push(s);
}

fn read(side: &Side, rng: &mut Rng, t: &mut Tally, buf: &mut [u8]) {
    let r = take(&mut side.world().recvs, rng);
    let Some(mut r) = r else { return };
    for _ in 0..8 {
        match r.read_blocking(buf, POLL_TIMEOUT) {
            Ok(Some(_)) => count(t, "read.data"),
            Ok(None) => return count(t, "read.fin"),
            Err(RecvStreamError::Reset(_)) => return count(t, "read.reset"),
            Err(RecvStreamError::TimedOut) => {
                count(t, "read.timed_out");
                break;
            }
            Err(RecvStreamError::Closed(_) | RecvStreamError::TooLong) => {
                return count(t, "read.closed")
            }
        }
    }
    side.world().recvs.push(r);
}

fn poll_completions(side: &Side, rng: &mut Rng, t: &mut Tally) {
    let mut done = Vec::new();
    let oldest = {
        let mut w = side.world();
        w.pending.retain(|c| match c.status() {
            Some(s) => {
                done.push(s);
                false
            }
            None => true,
        });
        (w.pending.len() > MAX_PENDING / 2 || rng.below(8) == 0)
            .then(|| (!w.pending.is_empty()).then(|| w.pending.swap_remove(0)))
            .flatten()
    };
    for s in done {
        count_status(t, s);
    }
    if let Some(c) = oldest {
        // A bounded wait on one write; unfinished, it goes back.
        match block_on_status(&c, Duration::from_millis(20)) {
            Some(s) => count_status(t, s),
            None => side.world().pending.push(c),
        }
    }
}

fn block_on_status(c: &WriteCompletion, timeout: Duration) -> Option<WriteStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(s) = c.status() {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn close(side: &Side, rng: &mut Rng, t: &mut Tally) {
    let c = take(&mut side.world().conns, rng);
    let Some(c) = c else { return };
    let code = VarInt::from_u32(rng.below(16) as u32);
    let start = Instant::now();
    c.close(code, b"stress");
    let took = start.elapsed();
    // DESIGN.md invariant 5: close never waits on blocked I/O.
    if took > CLOSE_LIMIT {
        side.violation(format!("{}: close() took {took:?}", side.name));
    }
    count(t, "close_conn.done");
    if rng.below(2) == 0 {
        // Keep it: later calls on a closed connection must fail cleanly.
        side.world().conns.push(c);
    }
}
