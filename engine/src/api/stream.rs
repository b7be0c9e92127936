//! [`SendStream`] and [`RecvStream`]: the two halves of a stream, and [`WriteCompletion`],
//! the one completion of one write (DESIGN.md invariant 2).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use super::connection::Connection;
use super::sync::{block_on, Elapsed};
use super::{RecvStreamError, WriteAllError};
use crate::handoff::shared::{Completer, StreamShared, WriteSlot, WriteStatus};
use crate::handoff::{ConnOp, WakingCell};
use crate::streams::StreamId;

/// Size of the pieces [`SendStream::write_all`] cuts its data into.
const WRITE_ALL_CHUNK: usize = 256 * 1024;
/// Pieces of one `write_all` in flight (written, not yet acknowledged) at once.
const WRITE_ALL_WINDOW: usize = 16;
/// Below this many buffered bytes a paused stream asks the worker for more.
const RESUME_BELOW: usize = crate::worker::STREAM_RESUME_BELOW;

/// The sending half of a stream.
#[derive(Debug)]
pub struct SendStream {
    conn: Connection,
    stream: Arc<StreamShared>,
}

impl SendStream {
    pub(crate) fn new(conn: Connection, stream: Arc<StreamShared>) -> Self {
        Self { conn, stream }
    }

    /// The stream ID.
    pub fn id(&self) -> StreamId {
        self.stream.id
    }

    /// Writes `data` (zero-copy: the bytes are shared with the connection until
    /// acknowledged). The returned [`WriteCompletion`] resolves exactly once: delivered,
    /// cancelled (reset, stop-sending, close, idle timeout, endpoint drop) or refused.
    pub fn write(&self, data: impl Into<Bytes>) -> WriteCompletion {
        self.write_inner(data.into(), false)
    }

    /// Ends the stream (FIN); completes like a write.
    pub fn finish(&self) -> WriteCompletion {
        self.write_inner(Bytes::new(), true)
    }

    /// Writes `data` and FIN together.
    pub fn write_fin(&self, data: impl Into<Bytes>) -> WriteCompletion {
        self.write_inner(data.into(), true)
    }

    fn write_inner(&self, data: Bytes, fin: bool) -> WriteCompletion {
        let slot = Arc::new(WakingCell::new(None));
        let done = Completer::new(slot.clone(), self.conn.ctx.counters.clone());
        self.conn.post(ConnOp::Write { stream: self.stream.id, data, fin, done });
        WriteCompletion { slot }
    }

    /// Writes all of `data`, then returns once every byte was acknowledged; keeps up to
    /// 4 MiB in flight.
    pub async fn write_all(&self, data: impl Into<Bytes>) -> Result<(), WriteAllError> {
        let mut data: Bytes = data.into();
        let mut inflight = VecDeque::new();
        while !data.is_empty() {
            let piece = data.split_to(data.len().min(WRITE_ALL_CHUNK));
            inflight.push_back(self.write(piece));
            if inflight.len() >= WRITE_ALL_WINDOW {
                if let Some(w) = inflight.pop_front() {
                    check(w.await)?;
                }
            }
        }
        for w in inflight {
            check(w.await)?;
        }
        Ok(())
    }

    /// Blocking [`SendStream::write_all`].
    pub fn write_all_blocking(
        &self,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(), WriteAllError> {
        block_on(self.write_all(data), Some(timeout)).map_err(|_| WriteAllError::TimedOut)?
    }

    /// Sets the stream's send priority: among streams with data to send, the connection serves
    /// higher priorities first and round-robins within one priority (default 0). Takes effect
    /// for data not yet packetised; a finished or reset stream ignores it.
    pub fn set_priority(&self, priority: i32) {
        self.conn.post(ConnOp::Priority { stream: self.stream.id, priority });
    }

    /// Abandons the stream with `code` (RESET_STREAM): unfinished writes are cancelled.
    pub fn reset(&self, code: u64) {
        self.conn.post(ConnOp::Reset { stream: self.stream.id, code });
    }

    /// Resolves with the peer's code when it sent STOP_SENDING; `None` when everything we
    /// sent was acknowledged or the connection ended first.
    pub async fn stopped(&self) -> Option<u64> {
        let s = self.stream.clone();
        poll_fn(move |cx| {
            s.mail.poll(cx, |m| match m.stopped {
                Some(c) => Some(Some(c)),
                None if m.send_finished || m.closed.is_some() => Some(None),
                None => None,
            })
        })
        .await
    }
}

fn check(s: WriteStatus) -> Result<(), WriteAllError> {
    match s {
        WriteStatus::Delivered => Ok(()),
        other => Err(WriteAllError::Failed(other)),
    }
}

/// The completion of one write: resolves exactly once with its [`WriteStatus`].
#[derive(Debug)]
pub struct WriteCompletion {
    slot: Arc<WriteSlot>,
}

impl WriteCompletion {
    /// The status, if the write has completed.
    pub fn status(&self) -> Option<WriteStatus> {
        self.slot.with(|s| *s)
    }

    /// Blocks until the write completes, at most `timeout`.
    pub fn wait(self, timeout: Duration) -> Result<WriteStatus, Elapsed> {
        block_on(self, Some(timeout))
    }
}

impl Future for WriteCompletion {
    type Output = WriteStatus;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WriteStatus> {
        self.slot.poll(cx, |s| *s)
    }
}

/// The receiving half of a stream.
#[derive(Debug)]
pub struct RecvStream {
    conn: Connection,
    stream: Arc<StreamShared>,
    stopped: bool,
}

impl RecvStream {
    pub(crate) fn new(conn: Connection, stream: Arc<StreamShared>) -> Self {
        Self { conn, stream, stopped: false }
    }

    /// The stream ID.
    pub fn id(&self) -> StreamId {
        self.stream.id
    }

    /// Takes the next piece of data (at most `max` bytes); `Ok(None)` at the end of the stream.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, RecvStreamError> {
        let s = self.stream.clone();
        let max = max.max(1);
        let (r, resume) = poll_fn(move |cx| {
            s.mail.poll(cx, |m| {
                if let Some(front) = m.chunks.front_mut() {
                    let piece = if front.len() <= max {
                        m.chunks.pop_front().unwrap_or_default()
                    } else {
                        front.split_to(max)
                    };
                    m.buffered -= piece.len();
                    let resume = m.paused && m.buffered < RESUME_BELOW;
                    if resume {
                        m.paused = false;
                    }
                    return Some((Ok(Some(piece)), resume));
                }
                if m.fin {
                    return Some((Ok(None), false));
                }
                if let Some(code) = m.reset {
                    return Some((Err(RecvStreamError::Reset(code)), false));
                }
                m.closed.clone().map(|e| (Err(RecvStreamError::Closed(e)), false))
            })
        })
        .await;
        if resume {
            self.conn.post(ConnOp::ReadMore { stream: self.stream.id });
        }
        r
    }

    /// Reads into `buf`: the number of bytes, or `Ok(None)` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvStreamError> {
        match self.read_chunk(buf.len()).await? {
            Some(b) => {
                buf[..b.len()].copy_from_slice(&b);
                Ok(Some(b.len()))
            }
            None => Ok(None),
        }
    }

    /// Reads the rest of the stream, failing with [`RecvStreamError::TooLong`] beyond `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, RecvStreamError> {
        let mut out = Vec::new();
        while let Some(b) = self.read_chunk(usize::MAX).await? {
            if out.len() + b.len() > limit {
                return Err(RecvStreamError::TooLong);
            }
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    /// Blocking [`RecvStream::read`].
    pub fn read_blocking(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<Option<usize>, RecvStreamError> {
        block_on(self.read(buf), Some(timeout)).map_err(|_| RecvStreamError::TimedOut)?
    }

    /// Blocking [`RecvStream::read_to_end`].
    pub fn read_to_end_blocking(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, RecvStreamError> {
        block_on(self.read_to_end(limit), Some(timeout)).map_err(|_| RecvStreamError::TimedOut)?
    }

    /// Stops reading with `code` (STOP_SENDING): buffered and future data are discarded.
    pub fn stop(&mut self, code: u64) {
        if !self.stopped {
            self.stopped = true;
            self.conn.post(ConnOp::Stop { stream: self.stream.id, code });
        }
    }
}
