//! The measurement layer of `peregrine perf`: whatever drives the connections and streams
//! only bumps shared atomic counters ([`StreamCounters`], one per stream slot); a [`Sampler`]
//! on the main thread reads them, with each connection's transport counters, every
//! [`TICK`], into [`Tick`]s. Intervals for the text and JSON output are runs of ticks
//! ([`IntervalCutter`]) and the totals are the sums of the intervals, so every interval sum
//! adds up to the run's totals by construction; plots use the ticks ([`TickLog`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_engine::ConnectionStats;

/// How often the sampler reads the counters at most (the resolution of the report's plots).
pub const TICK: Duration = Duration::from_millis(100);

/// The tick for intervals of `interval`: [`TICK`] or less, dividing `interval` evenly, so
/// that interval boundaries fall on ticks.
pub fn tick_for(interval: Duration) -> Duration {
    let n = interval.as_nanos().div_ceil(TICK.as_nanos()).max(1);
    Duration::from_nanos((interval.as_nanos() / n) as u64)
}

/// What one stream slot has done so far. Written by the slot's driver, read by the sampler.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Payload bytes sent and acknowledged by the peer (upload, requests).
    pub sent: AtomicU64,
    /// Payload bytes received (download, responses).
    pub received: AtomicU64,
    /// Completed requests (`--rps`) or handshakes (`--handshakes`).
    pub requests: AtomicU64,
}

impl StreamCounters {
    /// Adds `n` acknowledged bytes sent.
    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` bytes received.
    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one completed request or handshake.
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn load(&self) -> Moved {
        Moved {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}

/// Byte and request counts (totals or one interval's differences).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// Payload bytes sent and acknowledged.
    pub sent: u64,
    /// Payload bytes received.
    pub received: u64,
    /// Completed requests or handshakes.
    pub requests: u64,
}

impl Moved {
    fn minus(self, o: Moved) -> Moved {
        Moved {
            sent: self.sent.saturating_sub(o.sent),
            received: self.received.saturating_sub(o.received),
            requests: self.requests.saturating_sub(o.requests),
        }
    }

    /// Adds `o` to `self`.
    pub fn add(&mut self, o: Moved) {
        self.sent += o.sent;
        self.received += o.received;
        self.requests += o.requests;
    }

    /// Payload bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.sent + self.received
    }
}

/// One stream slot: which connection it belongs to, its index there, and its counters.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Connection index (0-based, in the order they were opened).
    pub conn: usize,
    /// Stream slot index within the connection.
    pub stream: usize,
    /// The counters its driver bumps.
    pub counters: Arc<StreamCounters>,
}

/// Transport counters of one connection over a tick (differences), with the gauges at its end.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConnDelta {
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// QUIC packets received.
    pub packets_received: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Stream bytes retransmitted.
    pub bytes_retransmitted: u64,
    /// PTO expirations.
    pub pto_count: u64,
    /// Congestion window at the end, bytes.
    pub cwnd: u64,
    /// Smoothed RTT at the end, milliseconds.
    pub rtt_ms: f64,
}

impl ConnDelta {
    fn between(now: &ConnectionStats, before: &ConnectionStats) -> Self {
        ConnDelta {
            packets_sent: now.packets_sent.saturating_sub(before.packets_sent),
            packets_received: now.packets_received.saturating_sub(before.packets_received),
            packets_lost: now.packets_lost.saturating_sub(before.packets_lost),
            bytes_retransmitted: now
                .stream_bytes_retransmitted
                .saturating_sub(before.stream_bytes_retransmitted),
            pto_count: now.pto_count.saturating_sub(before.pto_count),
            cwnd: now.cwnd,
            rtt_ms: now.smoothed_rtt.as_secs_f64() * 1000.0,
        }
    }

    /// Adds the counters of a later tick `o`; the gauges become `o`'s.
    pub fn add(&mut self, o: &ConnDelta) {
        self.packets_sent += o.packets_sent;
        self.packets_received += o.packets_received;
        self.packets_lost += o.packets_lost;
        self.bytes_retransmitted += o.bytes_retransmitted;
        self.pto_count += o.pto_count;
        self.cwnd = o.cwnd;
        self.rtt_ms = o.rtt_ms;
    }
}

/// What happened between two samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Start, seconds since the run started.
    pub start: f64,
    /// End, seconds since the run started.
    pub end: f64,
    /// Per stream slot, in [`Sampler`] slot order.
    pub streams: Vec<Moved>,
    /// Per connection, in connection order (empty where connections are not sampled).
    pub conns: Vec<ConnDelta>,
}

impl Tick {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }

    /// All slots together.
    pub fn sum(&self) -> Moved {
        let mut m = Moved::default();
        for s in &self.streams {
            m.add(*s);
        }
        m
    }
}

/// Reads the counters of every slot (and connection) into [`Tick`]s.
pub struct Sampler {
    start: Instant,
    last: Instant,
    tick: Duration,
    next: Instant,
    slots: Vec<Slot>,
    prev: Vec<Moved>,
    prev_conns: Vec<ConnectionStats>,
}

impl Sampler {
    /// A sampler of `slots` whose time 0 is `start`, due every `tick` (on the multiples of
    /// `tick` after `start`); `conns` are the connections' counters at `start`.
    pub fn new(
        start: Instant,
        tick: Duration,
        slots: Vec<Slot>,
        conns: Vec<ConnectionStats>,
    ) -> Self {
        let prev = vec![Moved::default(); slots.len()];
        Sampler { start, last: start, tick, next: start + tick, slots, prev, prev_conns: conns }
    }

    /// Whether a tick is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Closes a tick at `now` with the connections' current counters `conns`; `None` for a
    /// zero-length tick.
    pub fn cut(&mut self, now: Instant, conns: &[ConnectionStats]) -> Option<Tick> {
        if now <= self.last {
            return None;
        }
        let secs = |t: Instant| t.saturating_duration_since(self.start).as_secs_f64();
        let now_m: Vec<Moved> = self.slots.iter().map(|s| s.counters.load()).collect();
        let streams = now_m.iter().zip(&self.prev).map(|(n, p)| n.minus(*p)).collect();
        let zero = ConnectionStats::default();
        let deltas = conns
            .iter()
            .enumerate()
            .map(|(i, c)| ConnDelta::between(c, self.prev_conns.get(i).unwrap_or(&zero)))
            .collect();
        let tick = Tick { start: secs(self.last), end: secs(now), streams, conns: deltas };
        self.prev = now_m;
        self.prev_conns = conns.to_vec();
        self.last = now;
        while self.next <= now {
            self.next += self.tick;
        }
        Some(tick)
    }
}

/// Ticks kept for plotting, at most [`MAX_TICKS`]: past that, neighbours are merged in
/// pairs (a long run is plotted at a coarser resolution, with the same totals).
#[derive(Debug, Default)]
pub struct TickLog {
    /// The ticks, in time order.
    pub ticks: Vec<Tick>,
}

/// Most ticks a [`TickLog`] keeps.
pub const MAX_TICKS: usize = 2048;

impl TickLog {
    /// Adds a tick.
    pub fn push(&mut self, t: Tick) {
        self.ticks.push(t);
        if self.ticks.len() > MAX_TICKS {
            let old = std::mem::take(&mut self.ticks);
            for pair in old.chunks(2) {
                let mut a = pair[0].clone();
                if let Some(b) = pair.get(1) {
                    merge(&mut a, b);
                }
                self.ticks.push(a);
            }
        }
    }
}

/// Groups ticks into intervals of about `period`: an interval closes with the first tick that
/// reaches its boundary (within 2 ms of polling jitter).
#[derive(Debug)]
pub struct IntervalCutter {
    period: f64,
    boundary: f64,
    cur: Option<Tick>,
    /// The closed intervals.
    pub done: Vec<Tick>,
}

impl IntervalCutter {
    /// A cutter for `period`.
    pub fn new(period: Duration) -> Self {
        let p = period.as_secs_f64().max(1e-3);
        IntervalCutter { period: p, boundary: p, cur: None, done: Vec::new() }
    }

    /// Adds the next tick; the interval it closes, if any.
    pub fn push(&mut self, t: &Tick) -> Option<&Tick> {
        let c = self.cur.get_or_insert_with(|| Tick {
            start: t.start,
            end: t.start,
            streams: vec![Moved::default(); t.streams.len()],
            conns: vec![ConnDelta::default(); t.conns.len()],
        });
        merge(c, t);
        if t.end + 0.002 < self.boundary {
            return None;
        }
        while self.boundary <= t.end + 0.002 {
            self.boundary += self.period;
        }
        self.done.extend(self.cur.take());
        self.done.last()
    }

    /// Closes the last interval (possibly shorter than the period); the interval it closed,
    /// if any, and then all of them.
    pub fn finish(mut self) -> (Option<Tick>, Vec<Tick>) {
        let last = self.cur.take();
        self.done.extend(last.clone());
        (last, self.done)
    }
}

/// Groups `ticks` into intervals of about `period` (see [`IntervalCutter`]).
#[cfg(test)]
pub fn intervals(ticks: &[Tick], period: Duration) -> Vec<Tick> {
    let mut c = IntervalCutter::new(period);
    for t in ticks {
        c.push(t);
    }
    c.finish().1
}

/// Holds the newest tick back by one, so that the last tick of a run, when much shorter than
/// the one before it (the moments between the end of the run and the final read), is merged
/// into that one instead of showing as a spike or a drop that measured nothing.
#[derive(Debug, Default)]
pub struct Holdback {
    held: Option<Tick>,
}

impl Holdback {
    /// Takes tick `t`; the one it releases.
    pub fn push(&mut self, t: Tick) -> Option<Tick> {
        self.held.replace(t)
    }

    /// Takes the final tick `t` (if any); the ticks to release, in order.
    pub fn finish(mut self, t: Option<Tick>) -> Vec<Tick> {
        match (self.held.take(), t) {
            (Some(mut h), Some(t)) if t.seconds() < h.seconds() / 2.0 => {
                merge(&mut h, &t);
                vec![h]
            }
            (h, t) => h.into_iter().chain(t).collect(),
        }
    }
}

/// Every slot's totals over `intervals`.
pub fn totals(intervals: &[Tick], slots: usize) -> Vec<Moved> {
    let mut t = vec![Moved::default(); slots];
    for i in intervals {
        for (acc, m) in t.iter_mut().zip(&i.streams) {
            acc.add(*m);
        }
    }
    t
}

/// Adds tick `t` (which follows `into`) to `into`.
pub fn merge(into: &mut Tick, t: &Tick) {
    into.end = t.end;
    for (a, m) in into.streams.iter_mut().zip(&t.streams) {
        a.add(*m);
    }
    if into.conns.len() < t.conns.len() {
        into.conns.resize(t.conns.len(), ConnDelta::default());
    }
    for (a, c) in into.conns.iter_mut().zip(&t.conns) {
        a.add(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(start: f64, end: f64, bytes: &[u64]) -> Tick {
        Tick {
            start,
            end,
            streams: bytes.iter().map(|&b| Moved { received: b, ..Moved::default() }).collect(),
            conns: vec![ConnDelta { packets_lost: 1, ..ConnDelta::default() }],
        }
    }

    #[test]
    fn intervals_group_ticks_and_keep_the_sums() {
        let ticks: Vec<Tick> =
            (0..25).map(|i| tick(i as f64 * 0.1, (i + 1) as f64 * 0.1, &[i, 2 * i])).collect();
        let iv = intervals(&ticks, Duration::from_secs(1));
        assert_eq!(iv.len(), 3, "1 s, 1 s and a 0.5 s tail");
        assert!((iv[0].end - 1.0).abs() < 1e-9 && (iv[1].end - 2.0).abs() < 1e-9);
        assert!((iv[2].seconds() - 0.5).abs() < 1e-9);
        let total: u64 = iv.iter().map(|t| t.sum().received).sum();
        let expected: u64 = ticks.iter().map(|t| t.sum().received).sum();
        assert_eq!(total, expected);
        assert_eq!(iv[0].streams[1].received, 2 * (0..10).sum::<u64>());
        assert_eq!(iv[0].conns[0].packets_lost, 10);
        assert_eq!(tick_for(Duration::from_secs(1)), TICK);
        assert_eq!(tick_for(Duration::from_millis(150)), Duration::from_millis(75));
        assert_eq!(tick_for(Duration::from_millis(100)), TICK);
    }

    #[test]
    fn a_short_last_tick_joins_the_one_before() {
        let mut h = Holdback::default();
        assert!(h.push(tick(0.0, 0.1, &[5])).is_none());
        let released = h.push(tick(0.1, 0.2, &[5])).unwrap();
        assert_eq!(released.end, 0.1);
        let rest = h.finish(Some(tick(0.2, 0.21, &[1])));
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].end, rest[0].sum().received), (0.21, 6));
        let mut h = Holdback::default();
        h.push(tick(0.0, 0.1, &[5]));
        assert_eq!(h.finish(Some(tick(0.1, 0.16, &[1]))).len(), 2, "not much shorter: kept");
    }

    #[test]
    fn sampler_cuts_differences_of_the_counters() {
        let t0 = Instant::now();
        let c = Arc::new(StreamCounters::default());
        let slot = Slot { conn: 0, stream: 0, counters: c.clone() };
        let mut s = Sampler::new(t0, TICK, vec![slot], vec![ConnectionStats::default()]);
        assert!(!s.due(t0 + Duration::from_millis(99)) && s.due(t0 + TICK));
        c.add_received(100);
        c.add_sent(7);
        let st = ConnectionStats { packets_lost: 3, pto_count: 1, ..Default::default() };
        let a = s.cut(t0 + Duration::from_millis(100), &[st]).unwrap();
        c.add_received(50);
        c.add_request();
        let b = s.cut(t0 + Duration::from_millis(200), &[st]).unwrap();
        assert!(s.cut(t0 + Duration::from_millis(200), &[st]).is_none(), "zero length");
        assert_eq!(a.streams[0], Moved { sent: 7, received: 100, requests: 0 });
        assert_eq!(b.streams[0], Moved { sent: 0, received: 50, requests: 1 });
        assert_eq!((a.conns[0].packets_lost, b.conns[0].packets_lost), (3, 0));
        assert_eq!(totals(&[a, b], 1)[0], Moved { sent: 7, received: 150, requests: 1 });
    }

    #[test]
    fn tick_log_halves_its_resolution_and_keeps_the_sums() {
        let mut log = TickLog::default();
        for i in 0..(MAX_TICKS as u64 + 1) {
            log.push(tick(i as f64, i as f64 + 1.0, &[1]));
        }
        assert_eq!(log.ticks.len(), MAX_TICKS / 2 + 1);
        assert_eq!(totals(&log.ticks, 1)[0].received, MAX_TICKS as u64 + 1);
        assert!((log.ticks[0].seconds() - 2.0).abs() < 1e-9);
    }
}
