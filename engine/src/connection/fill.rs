//! Filling a 1-RTT packet after its ACK: CRYPTO frames, then HANDSHAKE_DONE, path and
//! connection-ID frames, NEW_TOKEN, stream-manager control frames and stream data (`send.rs` builds
//! the packet around them).

use std::time::Instant;

use super::send::room;
use super::sent::Retx;
use super::Connection;
use crate::coding::Writer;
use crate::crypto::TAG_LEN;
use crate::frame::{
    Crypto, DataBlocked, FrameType, HandshakeDone, MaxData, MaxStreamData, MaxStreams, NewToken,
    PacketSummary, PathChallenge, PathResponse, ResetStream, RetireConnectionId, StopSending,
    Stream, StreamDataBlocked, StreamDir, StreamsBlocked,
};
use crate::recovery::SpaceId;
use crate::streams::{ControlFrame, Dir};
use crate::varint::VarInt;

/// Fewest bytes worth a STREAM frame: a smallest header (type, one-byte stream ID, length)
/// and one data byte.
const MIN_STREAM_FRAME: usize = 4;
/// Most bytes a stream-manager control frame takes (type and three varints).
const MAX_CONTROL_FRAME: usize = 25;

fn vi(v: u64) -> VarInt {
    VarInt::new(v).unwrap_or(VarInt::MAX)
}

/// Bytes a STREAM frame may take: everything but the AEAD tag (see `write_data_frames`).
fn stream_room(w: &Writer<'_>) -> usize {
    w.remaining().saturating_sub(TAG_LEN)
}

fn frame_dir(d: Dir) -> StreamDir {
    match d {
        Dir::Bi => StreamDir::Bidi,
        Dir::Uni => StreamDir::Uni,
    }
}

/// Encodes a stream-manager control frame.
fn encode_control(c: &ControlFrame, w: &mut Writer<'_>) -> Result<FrameType, ()> {
    let r = match *c {
        ControlFrame::ResetStream { id, error_code, final_size } => ResetStream {
            stream_id: vi(id.into_inner()),
            error_code: vi(error_code),
            final_size: vi(final_size),
        }
        .encode(w)
        .map(|_| FrameType::RESET_STREAM),
        ControlFrame::StopSending { id, error_code } => {
            StopSending { stream_id: vi(id.into_inner()), error_code: vi(error_code) }
                .encode(w)
                .map(|_| FrameType::STOP_SENDING)
        }
        ControlFrame::MaxData(max) => {
            MaxData { max_data: vi(max) }.encode(w).map(|_| FrameType::MAX_DATA)
        }
        ControlFrame::MaxStreamData { id, max } => {
            MaxStreamData { stream_id: vi(id.into_inner()), max_data: vi(max) }
                .encode(w)
                .map(|_| FrameType::MAX_STREAM_DATA)
        }
        ControlFrame::MaxStreams { dir, max } => {
            MaxStreams { dir: frame_dir(dir), max_streams: vi(max) }
                .encode(w)
                .map(|_| FrameType::MAX_STREAMS_BIDI)
        }
        ControlFrame::DataBlocked(limit) => {
            DataBlocked { limit: vi(limit) }.encode(w).map(|_| FrameType::DATA_BLOCKED)
        }
        ControlFrame::StreamDataBlocked { id, limit } => {
            StreamDataBlocked { stream_id: vi(id.into_inner()), limit: vi(limit) }
                .encode(w)
                .map(|_| FrameType::STREAM_DATA_BLOCKED)
        }
        ControlFrame::StreamsBlocked { dir, limit } => {
            StreamsBlocked { dir: frame_dir(dir), limit: vi(limit) }
                .encode(w)
                .map(|_| FrameType::STREAMS_BLOCKED_BIDI)
        }
    };
    r.map_err(|_| ())
}

impl Connection {
    /// CRYPTO frames: lost ranges first, then new data.
    pub(super) fn write_crypto(
        &mut self,
        space: SpaceId,
        w: &mut Writer<'_>,
        items: &mut Vec<Retx>,
        summary: &mut PacketSummary,
    ) {
        let cs = &mut self.spaces[space.index()].crypto_send;
        // Each pass sends at least one byte or stops.
        for _ in 0..64 {
            let Some((off, _)) = cs.next_chunk(usize::MAX) else { return };
            let Some(max) = Crypto::max_data_len(vi(off), room(w)) else { return };
            if max == 0 {
                return;
            }
            let Some((off, data)) = cs.next_chunk(max) else { return };
            let n = data.len() as u64;
            if (Crypto { offset: vi(off), data }).encode(w).is_err() {
                return;
            }
            cs.on_sent(off, n);
            items.push(Retx::Crypto { offset: off, len: n });
            summary.on_frame(FrameType::CRYPTO);
        }
    }

    /// 1-RTT frames after CRYPTO: HANDSHAKE_DONE, PATH_RESPONSE, connection IDs, stream
    /// control frames, stream data.
    pub(super) fn write_data_frames(
        &mut self,
        now: Instant,
        w: &mut Writer<'_>,
        items: &mut Vec<Retx>,
        summary: &mut PacketSummary,
    ) -> bool {
        let mut path_frame = false;
        if self.handshake_done_pending && room(w) >= 1 && HandshakeDone.encode(w).is_ok() {
            self.handshake_done_pending = false;
            items.push(Retx::HandshakeDone);
            summary.on_frame(FrameType::HANDSHAKE_DONE);
        }
        if let Some(data) = self.path.response {
            let f = PathResponse { data };
            if room(w) >= 9 && f.encode(w).is_ok() {
                self.path.response = None;
                summary.on_frame(FrameType::PATH_RESPONSE);
                path_frame = true;
            }
        }
        if let (true, Some(data)) = (self.path.challenge_pending, self.path.challenge) {
            let f = PathChallenge { data };
            if room(w) >= 9 && f.encode(w).is_ok() {
                self.path.challenge_pending = false;
                items.push(Retx::PathChallenge(data));
                summary.on_frame(FrameType::PATH_CHALLENGE);
                path_frame = true;
            }
        }
        while let Some(&seq) = self.local_cids.to_send.first() {
            let Some(f) = self.local_cids.frame(seq) else {
                self.local_cids.to_send.remove(0);
                continue;
            };
            if room(w) < f.encoded_len() || f.encode(w).is_err() {
                break;
            }
            self.local_cids.to_send.remove(0);
            items.push(Retx::NewCid(seq));
            summary.on_frame(FrameType::NEW_CONNECTION_ID);
        }
        while let Some(&seq) = self.peer_cids.to_retire.first() {
            let f = RetireConnectionId { sequence: vi(seq) };
            if room(w) < f.encoded_len() || f.encode(w).is_err() {
                break;
            }
            self.peer_cids.to_retire.remove(0);
            items.push(Retx::RetireCid(seq));
            summary.on_frame(FrameType::RETIRE_CONNECTION_ID);
        }
        let zero_rtt = self.sends_zero_rtt();
        if !self.handshake_complete && !zero_rtt {
            return path_frame;
        }
        if let (false, true, Some(token)) =
            (zero_rtt, self.token_out_pending, self.token_out.as_deref())
        {
            let f = NewToken { token };
            if room(w) >= f.encoded_len() && f.encode(w).is_ok() {
                self.token_out_pending = false;
                items.push(Retx::NewToken);
                summary.on_frame(FrameType::NEW_TOKEN);
            }
        }
        if !zero_rtt && room(w) >= MAX_CONTROL_FRAME {
            if let Some(seq) = self.write_ack_frequency(now, w) {
                items.push(Retx::AckFrequency(seq));
                summary.on_frame(FrameType::ACK_FREQUENCY);
            }
        }
        let srtt = self.loss.rtt().smoothed();
        while room(w) >= MAX_CONTROL_FRAME {
            let Some(c) = self.streams.poll_control(now, srtt) else { break };
            match encode_control(&c, w) {
                Ok(ty) => {
                    items.push(Retx::Control(c));
                    summary.on_frame(ty);
                }
                Err(()) => {
                    self.streams.on_control_lost(&c);
                    break;
                }
            }
        }
        if !zero_rtt && self.has_datagrams_to_send() {
            let r = room(w);
            if self.write_datagrams(w, r) > 0 {
                summary.on_frame(FrameType::DATAGRAM_LEN);
            }
        }
        // A STREAM frame is at least 3 bytes (type, ID, length) and the packet number at
        // least 1: together the 4 bytes the header-protection sample needs before it, so no
        // trailer is kept for `PacketBuilder::finish`'s sample padding; only the tag.
        while stream_room(w) > MIN_STREAM_FRAME {
            let Some(f) = self.streams.poll_stream_data(stream_room(w)) else {
                break;
            };
            let frame = Stream {
                stream_id: vi(f.id.into_inner()),
                offset: vi(f.offset),
                data: &f.data,
                fin: f.fin,
                has_length: true,
            };
            let len = f.data.len() as u64;
            if frame.encode(w).is_err() {
                self.streams.on_stream_data_lost(f.id, f.offset, len, f.fin);
                break;
            }
            self.stats.stream_bytes_sent += len;
            items.push(Retx::Stream { id: f.id, offset: f.offset, len, fin: f.fin });
            summary.on_frame(frame.frame_type());
        }
        path_frame
    }
}
