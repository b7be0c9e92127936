//! What to send next (control frames, scheduled STREAM data) and acknowledgement / loss feedback.

use std::time::{Duration, Instant};

use super::{ControlFrame, Dir, StreamEvent, StreamFrame, StreamId, Streams};

impl Streams {
    /// Whether [`Self::poll_control`] or [`Self::poll_stream_data`] may return something.
    pub fn wants_transmit(&self) -> bool {
        self.closed.is_none()
            && (!self.scheduler.is_empty()
                || !self.control.is_empty()
                || self.conn_recv.update_due()
                || self.conn_send.blocked_pending()
                || self.max_streams_pending.iter().any(|&p| p)
                || self.streams_blocked_pending.iter().any(|&p| p))
    }

    /// The next control frame to send. `now` and the smoothed `rtt` drive window auto-tuning
    /// of the MAX_DATA / MAX_STREAM_DATA values produced here.
    pub fn poll_control(&mut self, now: Instant, rtt: Duration) -> Option<ControlFrame> {
        if self.closed.is_some() {
            return None;
        }
        if let Some(max) = self.conn_recv.poll_update(now, rtt) {
            return Some(ControlFrame::MaxData(max));
        }
        while let Some(&id) = self.control.first() {
            if let Some(frame) = self.stream_control(id, now, rtt) {
                return Some(frame);
            }
            self.control.remove(&id);
            self.maybe_free(id);
        }
        for dir in [Dir::Bi, Dir::Uni] {
            let d = dir.index();
            if std::mem::take(&mut self.max_streams_pending[d]) {
                return Some(ControlFrame::MaxStreams { dir, max: self.max_remote[d] });
            }
        }
        if let Some(limit) = self.conn_send.poll_blocked() {
            return Some(ControlFrame::DataBlocked(limit));
        }
        for dir in [Dir::Bi, Dir::Uni] {
            let d = dir.index();
            if std::mem::take(&mut self.streams_blocked_pending[d])
                && self.next_local[d] >= self.peer_max_streams[d]
            {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-19.14
                //# A sender SHOULD send a STREAMS_BLOCKED frame (type=0x16 or 0x17) when
                //# it wishes to open a stream but is unable to do so due to the maximum
                //# stream limit set by its peer; see Section 19.11.
                return Some(ControlFrame::StreamsBlocked { dir, limit: self.peer_max_streams[d] });
            }
        }
        None
    }

    /// The next control frame owed for stream `id`, if any.
    fn stream_control(
        &mut self,
        id: StreamId,
        now: Instant,
        rtt: Duration,
    ) -> Option<ControlFrame> {
        let e = self.streams.get_mut(&id)?;
        if let Some(send) = e.send.as_mut() {
            if let Some((error_code, final_size)) = send.poll_reset() {
                return Some(ControlFrame::ResetStream { id, error_code, final_size });
            }
        }
        if let Some(recv) = e.recv.as_mut() {
            if let Some(error_code) = recv.poll_stop() {
                return Some(ControlFrame::StopSending { id, error_code });
            }
            let before = recv.flow().window();
            if let Some(max) = recv.poll_max_stream_data(now, rtt) {
                let window = recv.flow().window();
                if window > before {
                    // Keep the connection window ahead of the streams (as Chromium does).
                    self.conn_recv.ensure_window(window.saturating_add(window / 2));
                }
                return Some(ControlFrame::MaxStreamData { id, max });
            }
        }
        if let Some(send) = e.send.as_mut() {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-19.13
            //# A sender SHOULD send a STREAM_DATA_BLOCKED frame (type=0x15) when it
            //# wishes to send data but is unable to do so due to stream-level flow
            //# control.
            if let Some(limit) = send.flow_mut().poll_blocked() {
                return Some(ControlFrame::StreamDataBlocked { id, limit });
            }
        }
        None
    }

    /// The next STREAM frame that, encoded with a length field, takes at most `room` bytes
    /// (type, stream ID, offset, length and data). Streams are served by priority,
    /// round-robin within a priority, a quantum of bytes per turn
    /// ([`StreamsConfig::with_send_quantum`]).
    ///
    /// The header is sized for the chosen stream (its ID, its highest offset, the length
    /// field `room` needs), not for the largest possible header: a full packet carries its
    /// room's worth of data instead of ~17 bytes of padding.
    pub fn poll_stream_data(&mut self, room: usize) -> Option<StreamFrame> {
        if self.closed.is_some() {
            return None;
        }
        for _ in 0..self.scheduler.len() {
            let (id, prio) = self.scheduler.pop()?;
            let avail = self.conn_send.available();
            let Some(e) = self.streams.get_mut(&id) else { continue };
            e.queued = false;
            let Some(send) = e.send.as_mut() else { continue };
            let header = 1
                + crate::varint::size(id.into_inner())
                + crate::varint::size(send.end_offset())
                + crate::varint::size(room as u64);
            // Even a bare FIN needs its header: with less room than that the stream keeps its
            // turn (a FIN handed out regardless overran the packet into its AEAD tag).
            let Some(max_len) = room.checked_sub(header) else {
                if send.wants_send(avail) {
                    e.queued = true;
                    self.scheduler.push_front(id, prio);
                    return None;
                }
                self.maybe_schedule(id);
                continue;
            };
            //= https://www.rfc-editor.org/rfc/rfc9000#section-2.2
            //# An endpoint MUST NOT send data on any stream without ensuring that it
            //# is within the flow control limits set by its peer.
            match send.poll_transmit(max_len, avail) {
                Some((chunk, new_bytes)) => {
                    self.conn_send.consume(new_bytes);
                    // Deficit round-robin: the stream keeps its turn (the head of its level)
                    // until it has sent a quantum in it; then it goes behind the others.
                    e.turn = e.turn.saturating_add((chunk.data.len() as u64).max(1));
                    let keep = e.turn < self.config.send_quantum()
                        && send.wants_send(self.conn_send.available());
                    if keep {
                        e.queued = true;
                        self.scheduler.push_front(id, prio);
                    } else {
                        self.maybe_schedule(id);
                    }
                    return Some(StreamFrame {
                        id,
                        offset: chunk.offset,
                        data: chunk.data,
                        fin: chunk.fin,
                    });
                }
                None if send.wants_send(avail) => {
                    // The budget is too small for this stream's turn: keep its place.
                    e.queued = true;
                    self.scheduler.push_front(id, prio);
                    return None;
                }
                None => self.maybe_schedule(id),
            }
        }
        None
    }

    /// A STREAM frame we sent was acknowledged.
    pub fn on_stream_data_acked(&mut self, id: StreamId, offset: u64, len: u64, fin: bool) {
        let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) else { return };
        let finished = send.on_ack(offset, len, fin);
        self.drain_completions(id);
        if finished {
            self.events.push_back(StreamEvent::Finished { id });
        }
        self.after_send_change(id);
    }

    /// A STREAM frame we sent was declared lost: its data is queued for retransmission.
    pub fn on_stream_data_lost(&mut self, id: StreamId, offset: u64, len: u64, fin: bool) {
        let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) else { return };
        send.on_lost(offset, len, fin);
        self.maybe_schedule(id);
    }

    /// A control frame we sent was acknowledged.
    pub fn on_control_acked(&mut self, frame: &ControlFrame) {
        if let ControlFrame::ResetStream { id, .. } = *frame {
            if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                send.on_reset_acked();
                self.maybe_free(id);
            }
        }
    }

    /// A control frame we sent was declared lost: queue it again if it still matters.
    pub fn on_control_lost(&mut self, frame: &ControlFrame) {
        if self.closed.is_some() {
            return;
        }
        match *frame {
            ControlFrame::ResetStream { id, .. } => {
                if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                    send.on_reset_lost();
                    self.control.insert(id);
                }
            }
            ControlFrame::StopSending { id, .. } => {
                if let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) {
                    recv.on_stop_lost();
                    self.control.insert(id);
                }
            }
            ControlFrame::MaxData(max) => self.conn_recv.on_update_lost(max),
            ControlFrame::MaxStreamData { id, max } => {
                if let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) {
                    recv.on_max_stream_data_lost(max);
                    self.control.insert(id);
                }
            }
            ControlFrame::MaxStreams { dir, max } => {
                if max == self.max_remote[dir.index()] {
                    self.max_streams_pending[dir.index()] = true;
                }
            }
            ControlFrame::DataBlocked(limit) => self.conn_send.on_blocked_lost(limit),
            ControlFrame::StreamDataBlocked { id, limit } => {
                if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                    send.flow_mut().on_blocked_lost(limit);
                    self.control.insert(id);
                }
            }
            ControlFrame::StreamsBlocked { dir, limit } => {
                let d = dir.index();
                if limit == self.peer_max_streams[d] && self.next_local[d] >= limit {
                    self.streams_blocked_pending[d] = true;
                }
            }
        }
    }
}
