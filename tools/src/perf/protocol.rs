//! draft-banks-quic-performance over the blocking stream API: the pipelined writer both sides
//! use, the server's stream handler, and the client's one request.
//!
//! On each bidirectional stream the client sends the response size it wants as 8 bytes
//! (big-endian), then its upload, then FIN; the server drains the upload and answers with
//! that many bytes, then FIN.

// A command, not the sans-IO core: it reads the wall clock for deadlines and rates.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
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
    inflight: VecDeque<WriteCompletion>,
}

impl<'a> Pipe<'a> {
    /// A writer on `send`.
    pub fn new(send: &'a SendStream) -> Self {
        Self { send, inflight: VecDeque::new() }
    }

    /// Queues `data`; fails when an earlier write was not delivered.
    pub fn push(&mut self, data: Bytes) -> Result<(), String> {
        self.inflight.push_back(self.send.write(data));
        while self.inflight.len() >= WINDOW {
            if let Some(w) = self.inflight.pop_front() {
                wait(w)?;
            }
        }
        Ok(())
    }

    /// Sends FIN and waits until everything was delivered.
    pub fn finish(mut self) -> Result<(), String> {
        self.inflight.push_back(self.send.finish());
        while let Some(w) = self.inflight.pop_front() {
            wait(w)?;
        }
        Ok(())
    }
}

fn wait(w: WriteCompletion) -> Result<(), String> {
    match w.wait(IO_TIMEOUT) {
        Ok(WriteStatus::Delivered) => Ok(()),
        Ok(other) => Err(format!("write ended as {other:?}")),
        Err(_) => Err("write timed out".into()),
    }
}

/// Sends `n` bytes of [`payload`] on `pipe`, stopping early when `stop` says so.
pub fn send_bytes(pipe: &mut Pipe<'_>, n: u64, stop: impl Fn() -> bool) -> Result<u64, String> {
    let p = payload();
    let mut left = n;
    while left > 0 && !stop() {
        let k = left.min(CHUNK as u64) as usize;
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

/// Reads and discards the rest of `recv`; the byte count.
pub fn drain(recv: &mut RecvStream) -> Result<u64, String> {
    let mut n = 0;
    while let Some(b) = read_chunk(recv, IO_TIMEOUT)? {
        n += b.len() as u64;
    }
    Ok(n)
}

/// Server side of one perf stream whose 8-byte header was already read as `size`.
pub fn serve_stream(send: SendStream, mut recv: RecvStream, size: u64) -> Result<(), String> {
    drain(&mut recv)?;
    let mut pipe = Pipe::new(&send);
    send_bytes(&mut pipe, size, || false)?;
    pipe.finish()
}

/// What one client request moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moved {
    /// Bytes uploaded.
    pub up: u64,
    /// Bytes downloaded.
    pub down: u64,
    /// Whether the whole response (FIN) arrived.
    pub complete: bool,
}

/// Client side of one perf request: uploads `up` bytes, asks for `down` bytes, reads them
/// until FIN or `deadline` (then stops the stream), counting received bytes in `count`.
pub fn request(
    send: &SendStream,
    recv: &mut RecvStream,
    up: u64,
    down: u64,
    deadline: Option<Instant>,
    count: &dyn Fn(u64),
) -> Result<Moved, String> {
    let past = || deadline.is_some_and(|d| Instant::now() >= d);
    let mut pipe = Pipe::new(send);
    pipe.push(Bytes::copy_from_slice(&down.to_be_bytes()))?;
    let sent = send_bytes(&mut pipe, up, past)?;
    pipe.finish()?;
    let mut moved = Moved { up: sent, down: 0, complete: false };
    let mut last_data = Instant::now();
    loop {
        if past() {
            recv.stop(0);
            return Ok(moved);
        }
        match read_chunk(recv, Duration::from_millis(100)) {
            Ok(Some(b)) => {
                moved.down += b.len() as u64;
                count(b.len() as u64);
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
