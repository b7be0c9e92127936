//! draft-banks-quic-performance over the blocking stream API: the pipelined writer and the
//! client's one request (the server side is a handler: `crate::server::perf`).
//!
//! On each bidirectional stream the client sends the response size it wants as 8 bytes
//! (big-endian), then its upload, then FIN; the server drains the upload and answers with
//! that many bytes, then FIN.

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_engine::api::{block_on, RecvStream, SendStream, WriteCompletion, WriteStatus};

/// Size of each write.
pub const CHUNK: usize = 256 * 1024;
/// Writes in flight (written, not yet acknowledged) per stream.
const WINDOW: usize = 32;
/// Longest wait for one write completion or one read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A shared buffer of [`CHUNK`] bytes that every perf write slices (zero-copy).
pub fn payload() -> Bytes {
    static P: OnceLock<Bytes> = OnceLock::new();
    P.get_or_init(|| Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>())).clone()
}

/// Writes with up to [`WINDOW`] writes in flight, waiting on the oldest beyond that.
pub struct Pipe<'a> {
    send: &'a SendStream,
    inflight: VecDeque<(WriteCompletion, u64)>,
    delivered: Option<&'a dyn Fn(u64)>,
}

impl<'a> Pipe<'a> {
    /// A writer on `send` that reports the length of each write once the peer acknowledged
    /// it (its completion says `Delivered`) to `delivered`.
    pub fn counting(send: &'a SendStream, delivered: &'a dyn Fn(u64)) -> Self {
        Self { send, inflight: VecDeque::new(), delivered: Some(delivered) }
    }

    /// Queues `data`; fails when an earlier write was not delivered.
    pub fn push(&mut self, data: Bytes) -> Result<(), String> {
        let n = data.len() as u64;
        self.push_counted(data, n)
    }

    /// Queues `data` without reporting it as delivered payload (a protocol header).
    pub fn push_uncounted(&mut self, data: Bytes) -> Result<(), String> {
        self.push_counted(data, 0)
    }

    fn push_counted(&mut self, data: Bytes, n: u64) -> Result<(), String> {
        self.inflight.push_back((self.send.write(data), n));
        // Writes already acknowledged are counted now, not when the window fills.
        while let Some(status) = self.inflight.front().and_then(|(w, _)| w.status()) {
            let Some((_, n)) = self.inflight.pop_front() else { break };
            match status {
                WriteStatus::Delivered => self.count(n),
                other => return Err(format!("write ended as {other:?}")),
            }
        }
        while self.inflight.len() >= WINDOW {
            if let Some((w, n)) = self.inflight.pop_front() {
                self.wait(w, n)?;
            }
        }
        Ok(())
    }

    fn count(&self, n: u64) {
        if let Some(f) = self.delivered {
            f(n);
        }
    }

    /// Sends FIN and waits until everything was delivered.
    pub fn finish(mut self) -> Result<(), String> {
        self.inflight.push_back((self.send.finish(), 0));
        while let Some((w, n)) = self.inflight.pop_front() {
            self.wait(w, n)?;
        }
        Ok(())
    }

    fn wait(&self, w: WriteCompletion, n: u64) -> Result<(), String> {
        wait(w)?;
        self.count(n);
        Ok(())
    }
}

/// Spreads the client's sends over time: at most `rate` bits per second in total, shared by
/// every stream that sends through it (a token bucket without burst allowance: the n-th byte
/// leaves no earlier than n / rate after the start).
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    bytes_per_sec: f64,
    granted: AtomicU64,
}

impl Pacer {
    /// A pacer for `bits_per_sec` (> 0) starting now.
    pub fn new(bits_per_sec: u64) -> Self {
        Pacer {
            start: Instant::now(),
            bytes_per_sec: (bits_per_sec as f64 / 8.0).max(1.0),
            granted: AtomicU64::new(0),
        }
    }

    /// The write size that keeps each burst to about 10 ms of the rate (1200..=[`CHUNK`]).
    pub fn chunk(&self) -> usize {
        ((self.bytes_per_sec / 100.0) as usize).clamp(1200, CHUNK)
    }

    /// Waits until `n` more bytes may leave, or until `stop` says so (then `false`).
    pub fn wait(&self, n: u64, stop: &dyn Fn() -> bool) -> bool {
        let total = self.granted.fetch_add(n, Ordering::Relaxed) + n;
        let due = self.start + Duration::from_secs_f64(total as f64 / self.bytes_per_sec);
        loop {
            if stop() {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
        }
    }
}

fn wait(w: WriteCompletion) -> Result<(), String> {
    match w.wait(IO_TIMEOUT) {
        Ok(WriteStatus::Delivered) => Ok(()),
        Ok(other) => Err(format!("write ended as {other:?}")),
        Err(_) => Err("write timed out".into()),
    }
}

/// Sends `n` bytes of [`payload`] on `pipe`, stopping early when `stop` says so, at most as
/// fast as `pacer` allows (when given).
pub fn send_paced(
    pipe: &mut Pipe<'_>,
    n: u64,
    stop: &dyn Fn() -> bool,
    pacer: Option<&Pacer>,
) -> Result<u64, String> {
    let p = payload();
    let chunk = pacer.map_or(CHUNK, Pacer::chunk) as u64;
    let mut left = n;
    while left > 0 && !stop() {
        let k = left.min(chunk) as usize;
        if let Some(pacer) = pacer {
            if !pacer.wait(k as u64, stop) {
                break;
            }
        }
        pipe.push(p.slice(..k))?;
        left -= k as u64;
    }
    Ok(n - left)
}

/// The next piece of `recv`; `None` at FIN.
pub fn read_chunk(recv: &mut RecvStream, timeout: Duration) -> Result<Option<Bytes>, String> {
    match block_on(recv.read_chunk(usize::MAX), Some(timeout)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("read timed out".into()),
    }
}

/// What one client request moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moved {
    /// Bytes uploaded (acknowledged by the server).
    pub up: u64,
    /// Bytes downloaded.
    pub down: u64,
    /// Whether the whole response (FIN) arrived.
    pub complete: bool,
}

/// How the client sends and where it counts.
pub struct RequestIo<'a> {
    /// True once the request should end (deadline passed or the run was interrupted); the
    /// stream is then stopped and what moved so far is returned.
    pub stop: &'a dyn Fn() -> bool,
    /// Called with each uploaded write's length once the server acknowledged it.
    pub sent: &'a dyn Fn(u64),
    /// Called with each received chunk's length.
    pub received: &'a dyn Fn(u64),
    /// The send-rate cap (`--rate`), if any.
    pub pacer: Option<&'a Pacer>,
}

/// Client side of one perf request: uploads `up` bytes, asks for `down` bytes, reads them
/// until FIN or until `io.stop` (then stops the stream).
pub fn request(
    send: &SendStream,
    recv: &mut RecvStream,
    up: u64,
    down: u64,
    io: &RequestIo<'_>,
) -> Result<Moved, String> {
    let mut moved = Moved::default();
    {
        let mut pipe = Pipe::counting(send, io.sent);
        // The 8-byte header is protocol, not payload: not counted.
        pipe.push_uncounted(Bytes::copy_from_slice(&down.to_be_bytes()))?;
        moved.up = send_paced(&mut pipe, up, io.stop, io.pacer)?;
        pipe.finish()?;
    }
    let mut last_data = Instant::now();
    loop {
        if (io.stop)() {
            recv.stop(0);
            return Ok(moved);
        }
        match read_chunk(recv, Duration::from_millis(100)) {
            Ok(Some(b)) => {
                moved.down += b.len() as u64;
                (io.received)(b.len() as u64);
                last_data = Instant::now();
            }
            Ok(None) => {
                moved.complete = true;
                return Ok(moved);
            }
            Err(e) if e == "read timed out" && last_data.elapsed() < IO_TIMEOUT => continue,
            Err(e) => return Err(e),
        }
    }
}
