//! Frames from the peer that concern streams: validation against roles, limits and states.

use bytes::Bytes;

use super::{Dir, Entry, StreamEvent, StreamId, Streams, MAX_STREAM_COUNT};
use crate::error::{Error, TransportErrorCode};

/// Which part of a stream a frame addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// STREAM, RESET_STREAM, STREAM_DATA_BLOCKED: the peer's sending, our receiving part.
    Recv,
    /// STOP_SENDING, MAX_STREAM_DATA: our sending part.
    Send,
}

impl Streams {
    /// Validates `id` for a frame addressing `part`, opening peer streams up to it (§3.2).
    /// `Ok(None)` means the stream existed but is already freed: ignore the frame.
    fn stream_for_frame(&mut self, id: StreamId, part: Part) -> Result<Option<&mut Entry>, Error> {
        match part {
            Part::Recv => id.check_recv(self.role)?,
            Part::Send => id.check_send(self.role)?,
        }
        let d = id.dir().index();
        if id.is_local(self.role) {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-19.5
            //# Receiving a STOP_SENDING frame for a
            //# locally initiated stream that has not yet been created MUST be
            //# treated as a connection error of type STREAM_STATE_ERROR.

            //= https://www.rfc-editor.org/rfc/rfc9000#section-19.10
            //# Receiving a MAX_STREAM_DATA frame for a locally
            //# initiated stream that has not yet been created MUST be treated as a
            //# connection error of type STREAM_STATE_ERROR.
            if id.index() >= self.next_local[d] {
                return Err(Error::new(
                    TransportErrorCode::STREAM_STATE_ERROR,
                    "frame for a locally initiated stream not yet created",
                ));
            }
            return Ok(self.streams.get_mut(&id));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
        //# An endpoint
        //# that receives a frame with a stream ID exceeding the limit it has
        //# sent MUST treat this as a connection error of type
        //# STREAM_LIMIT_ERROR; see Section 11 for details on error handling.
        if id.index() >= self.max_remote[d] {
            return Err(Error::new(
                TransportErrorCode::STREAM_LIMIT_ERROR,
                "peer exceeded the stream limit",
            ));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-3.2
        //# Before a stream is created, all streams of the same type with lower-
        //# numbered stream IDs MUST be created.
        while self.next_remote[d] <= id.index() {
            let Some(new) = StreamId::new(self.role.peer(), id.dir(), self.next_remote[d]) else {
                break;
            };
            self.next_remote[d] += 1;
            let entry = self.new_entry(new);
            self.streams.insert(new, entry);
            self.events.push_back(StreamEvent::Opened { id: new });
        }
        Ok(self.streams.get_mut(&id))
    }

    /// Checks that raising a stream's highest offset from `highest` to `end` stays within the
    /// connection limit (before the stream is touched).
    fn check_conn(&self, highest: u64, end: u64) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.9
        //# An
        //# endpoint MUST terminate a connection with an error of type
        //# FLOW_CONTROL_ERROR if it receives more data than the maximum data
        //# value that it has sent.
        self.conn_recv.check(self.conn_recv.received().saturating_add(end.saturating_sub(highest)))
    }

    /// Charges connection-level receive credit for `increase` new bytes of stream credit and
    /// releases what the stream read or discarded.
    fn charge(&mut self, increase: u64, released: u64) -> Result<(), Error> {
        self.conn_recv.on_received(self.conn_recv.received().saturating_add(increase))?;
        self.conn_recv.on_consumed(released);
        Ok(())
    }

    /// The highest offset received on `id`'s receiving part, after validating the frame.
    fn recv_highest(&mut self, id: StreamId) -> Result<Option<u64>, Error> {
        Ok(self
            .stream_for_frame(id, Part::Recv)?
            .and_then(|e| e.recv.as_ref())
            .map(|r| r.highest()))
    }

    /// A STREAM frame: `data` at `offset` on `id`, with the FIN bit `fin`. The error leaves
    /// `frame_type` unset for the connection to fill in.
    pub fn on_stream(
        &mut self,
        id: StreamId,
        offset: u64,
        data: Bytes,
        fin: bool,
    ) -> Result<(), Error> {
        if self.closed.is_some() {
            return Ok(());
        }
        let Some(highest) = self.recv_highest(id)? else { return Ok(()) };
        self.check_conn(highest, offset.saturating_add(data.len() as u64))?;
        let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) else {
            return Ok(());
        };
        let was_readable = recv.is_readable();
        let increase = recv.on_data(offset, data, fin)?;
        let now_readable = recv.is_readable();
        let released = recv.take_released();
        self.charge(increase, released)?;
        if now_readable && !was_readable {
            self.events.push_back(StreamEvent::Readable { id });
        }
        self.maybe_free(id);
        Ok(())
    }

    /// A RESET_STREAM frame for `id`.
    pub fn on_reset_stream(
        &mut self,
        id: StreamId,
        error_code: u64,
        final_size: u64,
    ) -> Result<(), Error> {
        if self.closed.is_some() {
            return Ok(());
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.4
        //# An endpoint that receives a RESET_STREAM frame for a send-only stream
        //# MUST terminate the connection with error STREAM_STATE_ERROR.
        let Some(highest) = self.recv_highest(id)? else { return Ok(()) };
        self.check_conn(highest, final_size)?;
        let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) else {
            return Ok(());
        };
        let before = recv.state();
        let increase = recv.on_reset(error_code, final_size)?;
        let reset_now = recv.state() != before && !recv.is_stopped();
        let released = recv.take_released();
        self.charge(increase, released)?;
        if reset_now {
            self.events.push_back(StreamEvent::Reset { id, error_code });
        }
        self.maybe_free(id);
        Ok(())
    }

    /// A STOP_SENDING frame for `id`: our sending part is reset with the peer's code.
    pub fn on_stop_sending(&mut self, id: StreamId, error_code: u64) -> Result<(), Error> {
        if self.closed.is_some() {
            return Ok(());
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.5
        //# An
        //# endpoint that receives a STOP_SENDING frame for a receive-only stream
        //# MUST terminate the connection with error STREAM_STATE_ERROR.
        let Some(send) = self.stream_for_frame(id, Part::Send)?.and_then(|e| e.send.as_mut())
        else {
            return Ok(());
        };
        if send.on_stop_sending(error_code) {
            self.events.push_back(StreamEvent::Stopped { id, error_code });
            self.control.insert(id);
        }
        self.after_send_change(id);
        Ok(())
    }

    /// A MAX_DATA frame.
    pub fn on_max_data(&mut self, max: u64) {
        if self.conn_send.on_max(max) {
            self.wake_conn_blocked();
            self.wake_room_waiters();
        }
    }

    /// A MAX_STREAM_DATA frame for `id`.
    pub fn on_max_stream_data(&mut self, id: StreamId, max: u64) -> Result<(), Error> {
        if self.closed.is_some() {
            return Ok(());
        }
        let Some(send) = self.stream_for_frame(id, Part::Send)?.and_then(|e| e.send.as_mut())
        else {
            return Ok(());
        };
        if send.flow_mut().on_max(max) {
            if send.on_credit() {
                self.after_send_change(id);
            } else {
                self.maybe_schedule(id);
            }
        }
        Ok(())
    }

    /// A MAX_STREAMS frame for streams of type `dir`.
    pub fn on_max_streams(&mut self, dir: Dir, max: u64) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.11
        //# Receipt of a frame that
        //# permits opening of a stream larger than this limit MUST be treated
        //# as a connection error of type FRAME_ENCODING_ERROR.
        if max > MAX_STREAM_COUNT {
            return Err(Error::frame_encoding("MAX_STREAMS above 2^60"));
        }
        self.raise_peer_max_streams(dir, max);
        Ok(())
    }

    /// A DATA_BLOCKED frame: informational (we never wait for it before granting credit).
    pub fn on_data_blocked(&mut self, limit: u64) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.2
        //# Therefore, a receiver MUST NOT wait for a
        //# STREAM_DATA_BLOCKED or DATA_BLOCKED frame before sending a
        //# MAX_STREAM_DATA or MAX_DATA frame; doing so could result in the
        //# sender being blocked for the rest of the connection.
        tracing::trace!(
            limit,
            our_max = self.conn_recv.max(),
            "peer is blocked on connection credit"
        );
    }

    /// A STREAM_DATA_BLOCKED frame for `id` (opens the stream if new; otherwise informational).
    pub fn on_stream_data_blocked(&mut self, id: StreamId, limit: u64) -> Result<(), Error> {
        if self.closed.is_some() {
            return Ok(());
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.13
        //# An endpoint that receives a STREAM_DATA_BLOCKED frame for a send-only
        //# stream MUST terminate the connection with error STREAM_STATE_ERROR.
        self.stream_for_frame(id, Part::Recv)?;
        tracing::trace!(%id, limit, "peer is blocked on stream credit");
        Ok(())
    }

    /// A STREAMS_BLOCKED frame for `dir`: informational.
    pub fn on_streams_blocked(&mut self, dir: Dir, limit: u64) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.14
        //# Receipt of a frame that encodes a larger
        //# stream ID MUST be treated as a connection error of type
        //# STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR.
        if limit > MAX_STREAM_COUNT {
            return Err(Error::frame_encoding("STREAMS_BLOCKED above 2^60"));
        }
        tracing::trace!(?dir, limit, "peer is blocked on stream count");
        Ok(())
    }
}
