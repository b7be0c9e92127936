//! The sending part of a stream (RFC 9000 §3.1): buffer of app writes, retransmission, FIN, reset, completions.

use std::collections::VecDeque;

use bytes::Bytes;

use super::flow::SendFlow;
use super::ranges::RangeSet;

/// Identifies one accepted write; its [`Completion`] carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(pub u64);

/// Why a write was cancelled instead of delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// We reset the stream with this application error code.
    Reset(u64),
    /// The peer sent STOP_SENDING with this application error code.
    StopSending(u64),
    /// The connection was closed (by either side).
    ConnectionClosed,
    /// The connection timed out while idle.
    IdleTimeout,
    /// The endpoint was dropped.
    EndpointDropped,
}

/// How an accepted write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteOutcome {
    /// Every byte (and the FIN, if the write carried it) was acknowledged by the peer.
    Delivered,
    /// The write will never be delivered.
    Cancelled(CancelReason),
}

/// The one completion event of an accepted write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The write.
    pub write: WriteId,
    /// How it ended.
    pub outcome: WriteOutcome,
}

/// Why a write was refused (a refused write has no completion).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The send buffer is full; a `Writable` event follows when space frees up.
    #[error("send buffer full")]
    Blocked,
    /// The stream was already finished (FIN written).
    #[error("stream already finished")]
    Finished,
    /// We reset the stream with this code.
    #[error("stream was reset with code {0}")]
    Reset(u64),
    /// The peer asked us to stop sending with this code.
    #[error("peer stopped the stream with code {0}")]
    Stopped(u64),
    /// A write with no data and no FIN.
    #[error("empty write without FIN")]
    Empty,
    /// The stream would exceed 2^62-1 bytes.
    #[error("stream length would exceed 2^62-1")]
    TooLarge,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// No such stream, it is already closed, or it has no sending part.
    #[error("unknown or closed stream")]
    UnknownStream,
}

/// The sending part is already closed: nothing to reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream is closed")]
pub struct ClosedStream;

/// Sending-part states of RFC 9000 Figure 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendState {
    /// Open, nothing sent yet.
    Ready,
    /// Sending data.
    Send,
    /// FIN sent; waiting for acknowledgements.
    DataSent,
    /// RESET_STREAM sent, not yet acknowledged.
    ResetSent,
    /// All data and the FIN acknowledged (terminal).
    DataRecvd,
    /// RESET_STREAM acknowledged (terminal).
    ResetRecvd,
}

/// A STREAM frame's payload the connection should send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamChunk {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes (a zero-copy slice of an app write); empty for a FIN-only frame.
    pub data: Bytes,
    /// Whether the frame carries the FIN bit.
    pub fin: bool,
}

#[derive(Debug)]
struct Chunk {
    offset: u64,
    data: Bytes,
    id: WriteId,
    fin: bool,
    done: bool,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// The sending part of one stream.
#[derive(Debug)]
pub struct SendPart {
    state: SendState,
    /// Unfinished writes, contiguous and in offset order.
    chunks: VecDeque<Chunk>,
    write_offset: u64,
    fin_written: bool,
    fin_pending: bool,
    fin_acked: bool,
    /// Highest offset ever transmitted: the flow-control credit consumed.
    sent: u64,
    retransmit: RangeSet,
    acked: RangeSet,
    flow: SendFlow,
    reset: Option<(u64, u64)>,
    reset_pending: bool,
    stop_code: Option<u64>,
    closed: Option<CancelReason>,
    buffer_limit: u64,
    write_blocked: bool,
    writable: bool,
    completions: VecDeque<Completion>,
}

impl SendPart {
    /// A stream the peer lets us send `max_data` bytes on, buffering up to `buffer_limit`
    /// unacknowledged bytes (a single larger write is accepted into an empty buffer).
    pub fn new(max_data: u64, buffer_limit: u64) -> Self {
        Self {
            state: SendState::Ready,
            chunks: VecDeque::new(),
            write_offset: 0,
            fin_written: false,
            fin_pending: false,
            fin_acked: false,
            sent: 0,
            retransmit: RangeSet::new(),
            acked: RangeSet::new(),
            flow: SendFlow::new(max_data),
            reset: None,
            reset_pending: false,
            stop_code: None,
            closed: None,
            buffer_limit,
            write_blocked: false,
            writable: false,
            completions: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> SendState {
        self.state
    }

    /// Stream-level send credit.
    pub fn flow(&self) -> &SendFlow {
        &self.flow
    }

    /// Stream-level send credit, mutable (MAX_STREAM_DATA, STREAM_DATA_BLOCKED).
    pub fn flow_mut(&mut self) -> &mut SendFlow {
        &mut self.flow
    }

    /// The offset after the last byte written: every STREAM frame of this stream starts at
    /// or below it.
    pub fn end_offset(&self) -> u64 {
        self.write_offset
    }

    /// Bytes written and not yet acknowledged in order.
    pub fn buffered(&self) -> u64 {
        self.write_offset - self.chunks.front().map_or(self.write_offset, |c| c.offset)
    }

    fn sending(&self) -> bool {
        self.closed.is_none()
            && matches!(self.state, SendState::Ready | SendState::Send | SendState::DataSent)
    }

    /// Whether the sending part is finished for good (all acked, reset acked, or cancelled).
    pub fn is_terminal(&self) -> bool {
        self.closed.is_some() || matches!(self.state, SendState::DataRecvd | SendState::ResetRecvd)
    }

    /// Accepts a write of `data` (plus FIN when `fin`) under id `id`. Exactly one
    /// [`Completion`] for `id` will follow; a refused write has none.
    pub fn write(&mut self, id: WriteId, data: Bytes, fin: bool) -> Result<(), WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        if let Some(code) = self.stop_code {
            return Err(WriteError::Stopped(code));
        }
        if let Some((code, _)) = self.reset {
            return Err(WriteError::Reset(code));
        }
        if self.fin_written {
            return Err(WriteError::Finished);
        }
        if data.is_empty() && !fin {
            return Err(WriteError::Empty);
        }
        let len = data.len() as u64;
        let end = self.write_offset.checked_add(len).filter(|&e| e <= crate::varint::MAX);
        let Some(end) = end else {
            return Err(WriteError::TooLarge);
        };
        let buffered = self.buffered();
        if buffered > 0 && buffered.saturating_add(len) > self.buffer_limit {
            self.write_blocked = true;
            return Err(WriteError::Blocked);
        }
        self.chunks.push_back(Chunk { offset: self.write_offset, data, id, fin, done: false });
        self.write_offset = end;
        if fin {
            self.fin_written = true;
            self.fin_pending = true;
        }
        Ok(())
    }

    /// Whether [`Self::poll_transmit`] would return a frame given `conn_credit` bytes of
    /// connection-level credit (and a non-zero size budget).
    pub fn wants_send(&self, conn_credit: u64) -> bool {
        self.sending()
            && (!self.retransmit.is_empty()
                || (self.fin_pending && self.sent == self.write_offset)
                || (self.sent < self.write_offset && self.flow.available() > 0 && conn_credit > 0))
    }

    /// Whether new data waits only for connection-level credit.
    pub fn blocked_by_connection(&self) -> bool {
        self.sending() && self.sent < self.write_offset && self.flow.available() > 0
    }

    /// Records a STREAM_DATA_BLOCKED signal when new data waits for stream credit.
    pub fn note_blocked(&mut self) {
        if self.sending() && self.sent < self.write_offset {
            self.flow.on_blocked();
        }
    }

    /// The next STREAM frame payload of at most `max_len` data bytes: lost data first, then
    /// new data within stream credit and `conn_credit`, then a FIN-only frame. Also returns
    /// how much new credit the frame consumes (to charge the connection).
    pub fn poll_transmit(
        &mut self,
        max_len: usize,
        conn_credit: u64,
    ) -> Option<(StreamChunk, u64)> {
        if !self.sending() {
            return None;
        }
        let max_len = max_len as u64;
        if let (Some(r), true) = (self.retransmit.first(), max_len > 0) {
            let end = r.end.min(r.start + max_len);
            let Some(data) = self.gather(r.start, end) else {
                // Unreachable by construction (lost ranges are never below the buffer).
                self.retransmit.remove(r);
                return None;
            };
            self.retransmit.remove(r.start..end);
            let fin = self.take_fin(end);
            return Some((StreamChunk { offset: r.start, data, fin }, 0));
        }
        if self.sent < self.write_offset {
            let n = (self.write_offset - self.sent)
                .min(self.flow.available())
                .min(conn_credit)
                .min(max_len);
            if n == 0 {
                if self.flow.available() == 0 {
                    self.flow.on_blocked();
                }
                return None;
            }
            let start = self.sent;
            let data = self.gather(start, start + n)?;
            self.sent += n;
            self.flow.consume(n);
            if self.state == SendState::Ready {
                self.state = SendState::Send;
            }
            let fin = self.take_fin(self.sent);
            return Some((StreamChunk { offset: start, data, fin }, n));
        }
        if self.fin_pending && self.sent == self.write_offset {
            let fin = self.take_fin(self.sent);
            return Some((StreamChunk { offset: self.sent, data: Bytes::new(), fin }, 0));
        }
        None
    }

    /// The buffered bytes `start..end`: a zero-copy slice when one write holds them all,
    /// else a copy gathered across writes (at most one frame's worth), so that small writes
    /// still fill frames. `None` if the range is not buffered.
    fn gather(&self, start: u64, end: u64) -> Option<Bytes> {
        let idx = self.chunks.partition_point(|c| c.end() <= start);
        let first = self.chunks.get(idx)?;
        if first.offset > start {
            return None;
        }
        if end <= first.end() {
            return Some(
                first.data.slice((start - first.offset) as usize..(end - first.offset) as usize),
            );
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        for c in self.chunks.range(idx..) {
            if c.offset >= end {
                break;
            }
            let from = start.max(c.offset) - c.offset;
            let to = end.min(c.end()) - c.offset;
            out.extend_from_slice(&c.data[from as usize..to as usize]);
        }
        (out.len() as u64 == end - start).then(|| Bytes::from(out))
    }

    /// Whether a frame ending at `end` carries the FIN; if so, records it as sent.
    fn take_fin(&mut self, end: u64) -> bool {
        if self.fin_pending && end == self.write_offset && self.sent == self.write_offset {
            self.fin_pending = false;
            //= https://www.rfc-editor.org/rfc/rfc9000#section-3.1
            //# After the application indicates that all stream data has been sent
            //# and a STREAM frame containing the FIN bit is sent, the sending part
            //# of the stream enters the "Data Sent" state.
            if matches!(self.state, SendState::Ready | SendState::Send) {
                self.state = SendState::DataSent;
            }
            true
        } else {
            false
        }
    }

    /// A STREAM frame we sent (`offset`, `len`, `fin`) was acknowledged. Returns true when
    /// this completed the stream (all data and FIN acknowledged: "Data Recvd").
    pub fn on_ack(&mut self, offset: u64, len: u64, fin: bool) -> bool {
        if !self.sending() {
            return false;
        }
        let end = offset.saturating_add(len).min(self.sent);
        let base = self.chunks.front().map_or(self.write_offset, |c| c.offset);
        self.acked.insert(offset.max(base)..end);
        self.retransmit.remove(offset..end);
        if fin && self.fin_written {
            self.fin_acked = true;
            self.fin_pending = false;
        }
        let first = self.chunks.partition_point(|c| c.end() < offset);
        for i in first..self.chunks.len() {
            if self.chunks[i].offset > end {
                break;
            }
            self.check_done(i);
        }
        if fin && !self.chunks.is_empty() {
            self.check_done(self.chunks.len() - 1);
        }
        while self.chunks.front().is_some_and(|c| c.done) {
            let c = self.chunks.pop_front().expect("front exists");
            self.acked.remove(0..c.end());
        }
        if self.write_blocked && self.buffered() < self.buffer_limit {
            self.write_blocked = false;
            self.writable = true;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.1
        //# Once all stream data has been successfully acknowledged, the sending
        //# part of the stream enters the "Data Recvd" state, which is a terminal
        //# state.
        if self.state == SendState::DataSent && self.fin_acked && self.chunks.is_empty() {
            self.state = SendState::DataRecvd;
            return true;
        }
        false
    }

    fn check_done(&mut self, i: usize) {
        let c = &self.chunks[i];
        if !c.done && self.acked.contains(c.offset..c.end()) && (!c.fin || self.fin_acked) {
            let id = c.id;
            self.chunks[i].done = true;
            self.completions.push_back(Completion { write: id, outcome: WriteOutcome::Delivered });
        }
    }

    /// A STREAM frame we sent was declared lost: queue its unacknowledged bytes (and FIN).
    pub fn on_lost(&mut self, offset: u64, len: u64, fin: bool) {
        if !self.sending() {
            return;
        }
        let base = self.chunks.front().map_or(self.write_offset, |c| c.offset);
        let r = offset.max(base)..offset.saturating_add(len).min(self.sent);
        if r.start < r.end {
            self.retransmit.insert(r.clone());
            let acked: Vec<_> =
                self.acked.iter().filter(|a| a.start < r.end && a.end > r.start).collect();
            for a in acked {
                self.retransmit.remove(a);
            }
        }
        if fin && self.fin_written && !self.fin_acked {
            self.fin_pending = true;
        }
    }

    /// Resets the stream on the application's request: cancels every unfinished write and
    /// queues RESET_STREAM with `code` and the final size.
    pub fn reset(&mut self, code: u64) -> Result<(), ClosedStream> {
        if self.do_reset(code, CancelReason::Reset(code)) {
            Ok(())
        } else {
            Err(ClosedStream)
        }
    }

    fn do_reset(&mut self, code: u64, reason: CancelReason) -> bool {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.1
        //# From any state that is one of "Ready", "Send", or "Data Sent", an
        //# application can signal that it wishes to abandon transmission of
        //# stream data.
        if !self.sending() {
            return false;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
        //# More generally, this is one higher
        //# than the offset of the byte with the largest offset sent on the
        //# stream, or zero if no bytes were sent.
        self.reset = Some((code, self.sent));
        self.reset_pending = true;
        self.state = SendState::ResetSent;
        self.cancel_chunks(reason);
        true
    }

    fn cancel_chunks(&mut self, reason: CancelReason) {
        for c in self.chunks.drain(..) {
            if !c.done {
                let outcome = WriteOutcome::Cancelled(reason);
                self.completions.push_back(Completion { write: c.id, outcome });
            }
        }
        self.retransmit = RangeSet::new();
        self.acked = RangeSet::new();
        self.fin_pending = false;
        self.write_blocked = false;
    }

    /// The peer sent STOP_SENDING with `code`. Returns true when this reset the stream.
    pub fn on_stop_sending(&mut self, code: u64) -> bool {
        if self.stop_code.is_none() && self.reset.is_none() {
            self.stop_code = Some(code);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.5
        //# An endpoint that receives a STOP_SENDING frame
        //# MUST send a RESET_STREAM frame if the stream is in the "Ready" or
        //# "Send" state.

        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.5
        //# An endpoint SHOULD copy the error code from the STOP_SENDING frame to
        //# the RESET_STREAM frame it sends, but it can use any application error
        //# code.
        // "Data Sent" too: we reset at once rather than wait for outstanding data.
        self.do_reset(code, CancelReason::StopSending(code))
    }

    /// The RESET_STREAM to send, as `(error code, final size)`, if one is due.
    pub fn poll_reset(&mut self) -> Option<(u64, u64)> {
        if self.reset_pending && self.state == SendState::ResetSent && self.closed.is_none() {
            self.reset_pending = false;
            self.reset
        } else {
            None
        }
    }

    /// Whether a RESET_STREAM is waiting to be sent.
    pub fn reset_pending(&self) -> bool {
        self.reset_pending && self.state == SendState::ResetSent && self.closed.is_none()
    }

    /// Our RESET_STREAM was acknowledged ("Reset Recvd", terminal).
    pub fn on_reset_acked(&mut self) {
        if self.state == SendState::ResetSent {
            self.state = SendState::ResetRecvd;
            self.reset_pending = false;
        }
    }

    /// Our RESET_STREAM was lost: send it again.
    pub fn on_reset_lost(&mut self) {
        if self.state == SendState::ResetSent {
            self.reset_pending = true;
        }
    }

    /// Cancels every unfinished write with `reason` (connection close, idle timeout,
    /// endpoint drop); the stream sends nothing more.
    pub fn cancel_all(&mut self, reason: CancelReason) {
        if self.closed.is_none() {
            self.cancel_chunks(reason);
            self.closed = Some(reason);
            self.reset_pending = false;
        }
    }

    /// The next completion event, oldest first.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// The most unacknowledged bytes buffered before writes return `Blocked`.
    pub fn buffer_limit(&self) -> u64 {
        self.buffer_limit
    }

    /// Changes the buffer limit; a write blocked under the old limit is reported writable
    /// (once) when the buffer is below the new one. Returns whether that happened.
    pub fn set_buffer_limit(&mut self, limit: u64) -> bool {
        self.buffer_limit = limit.max(1);
        if self.write_blocked && self.buffered() < self.buffer_limit {
            self.write_blocked = false;
            self.writable = true;
            return true;
        }
        false
    }

    /// Bytes a writer may queue now: what the buffer limit leaves, and no more than `slack`
    /// bytes past the peer's stream credit (MAX_STREAM_DATA), so that what waits here for a
    /// peer that grants nothing stays bounded by what it advertised. At 0 the stream
    /// remembers that a writer waits: a [`super::StreamEvent::Writable`] follows when an
    /// acknowledgment frees buffer space or the peer raises its credit.
    pub fn room(&mut self, slack: u64) -> u64 {
        if !self.sending() || self.fin_written || self.stop_code.is_some() {
            return 0;
        }
        let buffered = self.buffered();
        let buffer_room = self.buffer_limit.saturating_sub(buffered);
        let credit_room = self.flow.max().saturating_add(slack).saturating_sub(self.write_offset);
        let room = buffer_room.min(credit_room);
        if room == 0 {
            self.write_blocked = true;
        }
        room
    }

    /// The peer raised this stream's credit: a writer held back by [`Self::room`] may go on
    /// (reported once). Returns whether that happened.
    pub fn on_credit(&mut self) -> bool {
        if self.write_blocked && self.buffered() < self.buffer_limit {
            self.write_blocked = false;
            self.writable = true;
            return true;
        }
        false
    }

    /// Whether a blocked write may now succeed (reported once per blocked write).
    pub fn take_writable(&mut self) -> bool {
        std::mem::take(&mut self.writable)
    }
}

#[cfg(test)]
#[path = "tests/send.rs"]
mod tests;
