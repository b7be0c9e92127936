//! The receiving part of a stream (RFC 9000 §3.2): reassembly, final size, in-order reads, STOP_SENDING.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::flow::RecvFlow;
use super::reassembly::Reassembly;
use super::send::ClosedStream;
use crate::error::{Error, TransportErrorCode};

/// In-order pieces shorter than this are copied (appended to one growing buffer) instead of
/// kept as their own slice, so that many tiny frames cost their bytes, not a slice and an
/// allocation each.
const SMALL_SEGMENT: usize = 256;

/// In-order pieces kept as slices of the connection's receive arena before further ones are
/// copied: each slice pins its arena (64 KiB), so a peer that sends while the application does
/// not read pins at most this many arenas per stream.
const MAX_READY_SLICES: usize = 8;

/// Receiving-part states of RFC 9000 Figure 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvState {
    /// Receiving; final size unknown.
    Recv,
    /// FIN received: final size known, data still missing.
    SizeKnown,
    /// All data received, not all read.
    DataRecvd,
    /// RESET_STREAM received, not yet reported to the application.
    ResetRecvd,
    /// All data read (terminal).
    DataRead,
    /// Reset reported to the application (terminal).
    ResetRead,
}

/// Why a read returned no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Nothing to read yet; a `Readable` event follows when there is.
    #[error("no data available yet")]
    Blocked,
    /// The peer reset the stream with this application error code.
    #[error("stream reset by peer with code {0}")]
    Reset(u64),
    /// The stream is unknown, already fully read, stopped by us, or the connection is closed.
    #[error("stream closed")]
    Closed,
}

/// In-order data handed to the application without copying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvChunk {
    /// Stream offset of `data`.
    pub offset: u64,
    /// The bytes (empty when only the end of the stream is reported).
    pub data: Bytes,
    /// Whether the end of the stream was reached (nothing follows `data`).
    pub fin: bool,
}

fn changed_data() -> Error {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-2.2
    //# The data at a given offset MUST NOT change if it is sent
    //# multiple times; an endpoint MAY treat receipt of different data at
    //# the same offset within a stream as a connection error of type
    //# PROTOCOL_VIOLATION.
    Error::protocol_violation("stream data changed on retransmission")
}

fn final_size_error(reason: &'static str) -> Error {
    Error::new(TransportErrorCode::FINAL_SIZE_ERROR, reason)
}

/// The receiving part of one stream.
///
/// Memory is bounded by flow control: only bytes below the advertised limit are accepted and
/// only bytes at or above the read offset are kept, so at most one window is buffered. It
/// follows the bytes held, not the number of frames they came in: out-of-order bytes are
/// copied into blocks of the offset space ([`Reassembly`]), small in-order pieces into one
/// growing buffer, and at most [`MAX_READY_SLICES`] pieces stay slices of packet arenas; see
/// [`RecvPart::footprint`].
///
/// Choices where RFC 9000 leaves room:
/// - Retransmitted bytes that differ from bytes still buffered are a PROTOCOL_VIOLATION
///   (§2.2 MAY); bytes already read are no longer held and are not compared.
/// - A RESET_STREAM in "Recv" / "Size Known" discards buffered data at once and the next read
///   reports the reset (§3.2 MAY); in "Data Recvd" the reset is withheld and the data
///   delivered.
/// - Final size violations are FINAL_SIZE_ERROR while the stream is tracked; once a stream is
///   freed its final size is forgotten and late frames are ignored (§4.5 makes this optional).
/// - Offsets beyond 2^62-1 are FLOW_CONTROL_ERROR (§19.8 allows this or FRAME_ENCODING_ERROR).
#[derive(Debug)]
pub struct RecvPart {
    state: RecvState,
    /// Bytes delivered to the application or discarded, in order.
    read_offset: u64,
    /// Highest offset received: the stream's flow-control credit used.
    highest: u64,
    final_size: Option<u64>,
    /// In-order pieces: contiguous bytes from `read_offset`, oldest first, followed by
    /// `tail`. In-order data (the common case) goes here without touching `ooo`.
    ready: VecDeque<Bytes>,
    /// Small in-order pieces copied together; logically after `ready`.
    tail: BytesMut,
    /// End of the contiguous bytes in `ready` and `tail` (equals `read_offset` when both
    /// are empty).
    ready_end: u64,
    /// Out-of-order bytes, all beyond `ready_end` (bytes that become contiguous move to
    /// `ready`).
    ooo: Reassembly,
    buffered: u64,
    flow: RecvFlow,
    stopped: bool,
    stop: Option<u64>,
    stop_pending: bool,
    reset_code: Option<u64>,
    unreleased: u64,
}

impl RecvPart {
    /// A receiving part with a `window`-byte limit that may auto-tune up to `max_window`.
    pub fn new(window: u64, max_window: u64) -> Self {
        Self {
            state: RecvState::Recv,
            read_offset: 0,
            highest: 0,
            final_size: None,
            ready: VecDeque::new(),
            tail: BytesMut::new(),
            ready_end: 0,
            ooo: Reassembly::new(),
            buffered: 0,
            flow: RecvFlow::new(window, max_window),
            stopped: false,
            stop: None,
            stop_pending: false,
            reset_code: None,
            unreleased: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> RecvState {
        self.state
    }

    /// Stream-level receive credit.
    pub fn flow(&self) -> &RecvFlow {
        &self.flow
    }

    /// The final size, once known.
    pub fn final_size(&self) -> Option<u64> {
        self.final_size
    }

    /// Highest offset received so far (the stream-level credit the peer used).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Bytes buffered and not yet read.
    pub fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Memory this part holds for buffered data, in bytes: the in-order pieces (a slice of a
    /// packet arena counted as the bytes it shows; at most [`MAX_READY_SLICES`] of them pin
    /// an arena each), the copy buffer's capacity and the out-of-order blocks.
    pub fn footprint(&self) -> usize {
        let ready: usize = self.ready.iter().map(Bytes::len).sum();
        ready
            + self.ready.capacity() * std::mem::size_of::<Bytes>()
            + self.tail.capacity()
            + self.ooo.footprint()
    }

    /// Whether the application stopped reading (STOP_SENDING requested).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether this part needs nothing more: all data read, reset received, or stopped by
    /// the application with the final size known.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, RecvState::DataRead | RecvState::ResetRecvd | RecvState::ResetRead)
            || (self.stopped && self.final_size.is_some())
    }

    /// Whether a read would return something (data, the end of the stream, or a reset).
    pub fn is_readable(&self) -> bool {
        if self.stopped {
            return false;
        }
        match self.state {
            RecvState::ResetRecvd => true,
            RecvState::DataRead | RecvState::ResetRead => false,
            _ => {
                !self.ready.is_empty()
                    || !self.tail.is_empty()
                    || self.final_size == Some(self.read_offset)
            }
        }
    }

    /// Bytes read or discarded since the last call: connection-level credit to release.
    pub fn take_released(&mut self) -> u64 {
        std::mem::take(&mut self.unreleased)
    }

    fn release_to(&mut self, offset: u64) {
        if offset > self.read_offset {
            let n = offset - self.read_offset;
            self.read_offset = offset;
            self.ready_end = self.ready_end.max(offset);
            self.flow.on_consumed(n);
            self.unreleased += n;
        }
    }

    /// A STREAM frame for this stream. Returns how far it raised the highest received offset
    /// (to charge connection-level flow control).
    pub fn on_data(&mut self, offset: u64, data: Bytes, fin: bool) -> Result<u64, Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.8
        //# Receipt of a frame that exceeds this limit
        //# MUST be treated as a connection error of type FRAME_ENCODING_ERROR or
        //# FLOW_CONTROL_ERROR.
        let end =
            offset.checked_add(data.len() as u64).filter(|&e| e <= crate::varint::MAX).ok_or(
                Error::new(TransportErrorCode::FLOW_CONTROL_ERROR, "stream offset beyond 2^62-1"),
            )?;
        if let Some(fs) = self.final_size {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
            //# If a
            //# RESET_STREAM or STREAM frame is received indicating a change in the
            //# final size for the stream, an endpoint SHOULD respond with an error
            //# of type FINAL_SIZE_ERROR; see Section 11 for details on error
            //# handling.
            if fin && end != fs {
                return Err(final_size_error("STREAM frame changed the final size"));
            }
            //= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
            //# A receiver SHOULD treat receipt of data at or beyond the
            //# final size as an error of type FINAL_SIZE_ERROR, even after a stream
            //# is closed.
            if end > fs {
                return Err(final_size_error("data beyond the final size"));
            }
        }
        if fin && end < self.highest {
            return Err(final_size_error("final size below data already received"));
        }
        self.flow.check(end)?;
        let increase = end.saturating_sub(self.highest);
        self.highest = self.highest.max(end);
        self.flow.on_received(self.highest)?;
        if fin && self.final_size.is_none() {
            self.final_size = Some(end);
            //= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
            //# When a STREAM frame with a FIN bit is received, the final size of the
            //# stream is known; see Section 4.5.  The receiving part of the stream
            //# then enters the "Size Known" state.
            if self.state == RecvState::Recv {
                self.state = RecvState::SizeKnown;
            }
        }
        if !matches!(self.state, RecvState::Recv | RecvState::SizeKnown) {
            return Ok(increase);
        }
        if self.stopped {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-3.5
            //# STREAM frames received after sending a STOP_SENDING frame are still
            //# counted toward connection and stream flow control, even though these
            //# frames can be discarded upon receipt.
            self.release_to(self.highest);
            return Ok(increase);
        }
        self.insert(offset, data)?;
        if self.final_size.is_some_and(|fs| self.buffered == fs - self.read_offset) {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
            //# Once all data for the stream has been received, the receiving part
            //# enters the "Data Recvd" state.
            self.state = RecvState::DataRecvd;
        }
        Ok(increase)
    }

    /// Adds the parts of `data` (at `offset`) not yet held, comparing overlaps.
    fn insert(&mut self, offset: u64, data: Bytes) -> Result<(), Error> {
        let end = offset + data.len() as u64;
        let mut pos = offset.max(self.read_offset);
        if pos >= end {
            // Everything here was already read.
            return Ok(());
        }
        if pos < self.ready_end {
            // Overlaps in-order data still held: the bytes must be the same.
            let stop = self.ready_end.min(end);
            self.compare_ready(pos, &data[(pos - offset) as usize..(stop - offset) as usize])?;
            pos = stop;
        }
        if pos >= end {
            return Ok(());
        }
        if pos == self.ready_end {
            // In order up to the first byte held out of order (the common case: all of it).
            let stop = self.ooo.first_present(pos, end).unwrap_or(end);
            if stop == pos {
                return self.insert_ooo(offset, pos, &data);
            }
            let piece = data.slice((pos - offset) as usize..(stop - offset) as usize);
            self.buffered += piece.len() as u64;
            self.ready_end = stop;
            self.push_slice(pos, piece);
            pos = stop;
        }
        self.insert_ooo(offset, pos, &data)
    }

    /// Adds the bytes of `data` (at `offset`) from `pos` on to the out-of-order store, then
    /// moves what became contiguous to the in-order pieces.
    fn insert_ooo(&mut self, offset: u64, pos: u64, data: &[u8]) -> Result<(), Error> {
        if pos < offset + data.len() as u64 {
            let added = self
                .ooo
                .insert(pos, &data[(pos - offset) as usize..])
                .map_err(|_| changed_data())?;
            self.buffered += added;
        }
        // Out-of-order bytes that are now contiguous become ready.
        while let Some(piece) = self.ooo.take(self.ready_end) {
            self.ready_end += piece.len() as u64;
            if piece.len() < SMALL_SEGMENT {
                self.tail.extend_from_slice(&piece);
            } else {
                self.push_owned(piece);
            }
        }
        Ok(())
    }

    /// Appends an in-order slice of a packet arena that starts at `pos` (already counted in
    /// `ready_end` and `buffered`): copied when small or when enough slices are held already.
    fn push_slice(&mut self, pos: u64, piece: Bytes) {
        if pos > self.read_offset
            && (piece.len() < SMALL_SEGMENT || self.ready.len() >= MAX_READY_SLICES)
        {
            self.tail.extend_from_slice(&piece);
        } else {
            self.push_owned(piece);
        }
    }

    /// Appends an in-order piece after the copied ones.
    fn push_owned(&mut self, piece: Bytes) {
        self.flush_tail();
        self.ready.push_back(piece);
    }

    /// Moves the copied bytes to the end of `ready` (the buffer's spare room is kept for the
    /// next small pieces).
    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            self.ready.push_back(self.tail.split().freeze());
        }
    }

    /// Compares `theirs` (at stream offset `pos`, inside `read_offset..ready_end`) with the
    /// in-order bytes held there.
    fn compare_ready(&self, pos: u64, theirs: &[u8]) -> Result<(), Error> {
        let mut at = self.read_offset;
        let mut theirs = theirs;
        let mut pos = pos;
        for seg in self.ready.iter().map(|b| &b[..]).chain(std::iter::once(&self.tail[..])) {
            if theirs.is_empty() {
                break;
            }
            let seg_end = at + seg.len() as u64;
            if seg_end > pos {
                let n = ((seg_end - pos) as usize).min(theirs.len());
                let ours = &seg[(pos - at) as usize..(pos - at) as usize + n];
                if ours != &theirs[..n] {
                    return Err(changed_data());
                }
                theirs = &theirs[n..];
                pos += n as u64;
            }
            at = seg_end;
        }
        Ok(())
    }

    /// A RESET_STREAM frame for this stream. Returns how far it raised the highest received
    /// offset (to charge connection-level flow control).
    pub fn on_reset(&mut self, code: u64, final_size: u64) -> Result<u64, Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
        //# Once a final size for a stream is known, it cannot change.
        if self.final_size.is_some_and(|fs| fs != final_size) {
            return Err(final_size_error("RESET_STREAM changed the final size"));
        }
        if final_size < self.highest {
            return Err(final_size_error("RESET_STREAM final size below data received"));
        }
        self.flow.check(final_size)?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
        //# Receiving a RESET_STREAM frame in the "Recv" or "Size Known" state
        //# causes the stream to enter the "Reset Recvd" state.
        if !matches!(self.state, RecvState::Recv | RecvState::SizeKnown) {
            // Data Recvd: all data is here, deliver it and withhold the reset (RFC 9000 §3.2
            // allows either); later states: a duplicate.
            return Ok(0);
        }
        let increase = final_size - self.highest;
        self.highest = final_size;
        self.flow.on_received(final_size)?;
        self.final_size = Some(final_size);
        self.clear_buffers();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.5
        //# The receiver MUST use the final size of the stream to
        //# account for all bytes sent on the stream in its connection-level flow
        //# controller.
        self.release_to(final_size);
        self.state = RecvState::ResetRecvd;
        self.reset_code = Some(code);
        self.stop_pending = false;
        self.flow.cancel_update();
        Ok(increase)
    }

    /// Copies in-order data into `buf`. Returns `(bytes, fin)`: `fin` is true once the end
    /// of the stream is reached (after which reads return `(0, true)`).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<(usize, bool), ReadError> {
        self.check_readable()?;
        self.flush_tail();
        let mut n = 0;
        while n < buf.len() {
            let Some(seg) = self.ready.front_mut() else { break };
            let take = seg.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&seg[..take]);
            n += take;
            if take == seg.len() {
                self.ready.pop_front();
            } else {
                bytes::Buf::advance(seg, take);
            }
            self.buffered -= take as u64;
            self.release_to(self.read_offset + take as u64);
        }
        self.finish_read(n)
    }

    /// Takes the next in-order piece of at most `max` bytes without copying.
    pub fn read_chunk(&mut self, max: usize) -> Result<RecvChunk, ReadError> {
        self.check_readable()?;
        self.flush_tail();
        let offset = self.read_offset;
        let mut data = Bytes::new();
        if let Some(seg) = self.ready.front_mut() {
            data = if seg.len() <= max {
                self.ready.pop_front().unwrap_or_default()
            } else {
                seg.split_to(max)
            };
            self.buffered -= data.len() as u64;
            self.release_to(offset + data.len() as u64);
        }
        let (_, fin) = self.finish_read(data.len())?;
        Ok(RecvChunk { offset, data, fin })
    }

    /// Drops every buffered byte (reset or stop); the caller releases the credit.
    fn clear_buffers(&mut self) {
        self.ready = VecDeque::new();
        self.tail = BytesMut::new();
        self.ooo.clear();
        self.buffered = 0;
    }

    fn check_readable(&mut self) -> Result<(), ReadError> {
        match self.state {
            RecvState::ResetRecvd | RecvState::ResetRead => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
                //# Once the application receives the signal indicating that the stream
                //# was reset, the receiving part of the stream transitions to the "Reset
                //# Read" state, which is a terminal state.
                self.state = RecvState::ResetRead;
                Err(ReadError::Reset(self.reset_code.unwrap_or(0)))
            }
            _ if self.stopped => Err(ReadError::Closed),
            _ => Ok(()),
        }
    }

    fn finish_read(&mut self, n: usize) -> Result<(usize, bool), ReadError> {
        let fin = self.final_size == Some(self.read_offset);
        if fin {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
            //# Once stream data has been delivered, the stream
            //# enters the "Data Read" state, which is a terminal state.
            self.state = RecvState::DataRead;
        } else if n == 0 {
            return Err(ReadError::Blocked);
        }
        Ok((n, fin))
    }

    /// The application stops reading with `code`: buffered data is discarded, later data
    /// is dropped on arrival, and STOP_SENDING is queued if the peer may still be sending.
    pub fn stop(&mut self, code: u64) -> Result<(), ClosedStream> {
        if self.stopped || matches!(self.state, RecvState::DataRead | RecvState::ResetRead) {
            return Err(ClosedStream);
        }
        self.stopped = true;
        self.stop = Some(code);
        self.clear_buffers();
        self.release_to(self.highest.max(self.final_size.unwrap_or(0)));
        self.flow.cancel_update();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.5
        //# If the stream is in the "Recv" or "Size Known" state, the transport
        //# SHOULD signal this by sending a STOP_SENDING frame to prompt closure
        //# of the stream in the opposite direction.
        self.stop_pending = matches!(self.state, RecvState::Recv | RecvState::SizeKnown);
        Ok(())
    }

    /// The STOP_SENDING code to send, if one is due.
    pub fn poll_stop(&mut self) -> Option<u64> {
        if self.stop_pending() {
            self.stop_pending = false;
            self.stop
        } else {
            None
        }
    }

    /// Whether a STOP_SENDING is waiting to be sent.
    pub fn stop_pending(&self) -> bool {
        self.stop_pending && matches!(self.state, RecvState::Recv | RecvState::SizeKnown)
    }

    /// Our STOP_SENDING was lost: send it again while the peer may still be sending.
    pub fn on_stop_lost(&mut self) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.5
        //# An endpoint is expected to send another STOP_SENDING frame if a
        //# packet containing a previous STOP_SENDING is lost.
        if self.stopped && matches!(self.state, RecvState::Recv | RecvState::SizeKnown) {
            self.stop_pending = true;
        }
    }

    /// Whether a MAX_STREAM_DATA is due (only in "Recv", and not after STOP_SENDING).
    pub fn max_stream_data_due(&self) -> bool {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.3
        //# The receiver only sends MAX_STREAM_DATA frames in the "Recv" state.
        self.state == RecvState::Recv && !self.stopped && self.flow.update_due()
    }

    /// The new limit to send in MAX_STREAM_DATA, if due (auto-tuned with `now` and `rtt`).
    pub fn poll_max_stream_data(&mut self, now: Instant, rtt: Duration) -> Option<u64> {
        if self.max_stream_data_due() {
            self.flow.poll_update(now, rtt)
        } else {
            None
        }
    }

    /// Our MAX_STREAM_DATA carrying `max` was lost.
    pub fn on_max_stream_data_lost(&mut self, max: u64) {
        if self.state == RecvState::Recv && !self.stopped {
            self.flow.on_update_lost(max);
        }
    }
}

#[cfg(test)]
#[path = "tests/recv.rs"]
mod tests;
