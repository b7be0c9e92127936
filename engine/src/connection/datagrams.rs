//! Unreliable datagrams (RFC 9221): DATAGRAM frames, negotiated by max_datagram_frame_size,
//! with one bounded queue each way.
//!
//! - Sending: [`Connection::send_datagram`] queues a payload once the peer's transport
//!   parameters are known and it advertised max_datagram_frame_size; the send path puts queued
//!   datagrams in 1-RTT packets before stream data, as congestion and pacing allow. A DATAGRAM
//!   frame is ack-eliciting and counted in flight but never retransmitted: a lost one is gone.
//! - Receiving: each DATAGRAM frame's payload is copied into the receive queue, read with
//!   [`Connection::recv_datagram`]. A frame larger than our max_datagram_frame_size, or any
//!   frame when we did not advertise it, is a PROTOCOL_VIOLATION.
//! - Overflow: each queue holds at most `TransportConfig::with_datagrams`'s `queue` datagrams;
//!   when full, the *oldest* queued datagram is dropped to make room (the newest data is the
//!   most useful for the real-time traffic datagrams carry) and counted in
//!   `ConnectionStats::datagram_frames_dropped`. Memory held is thus at most `queue` times the
//!   frame size limit per direction.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Connection;
use crate::error::Error;
use crate::frame::Datagram;

/// Default datagrams held in each direction's queue.
pub const DEFAULT_DATAGRAM_QUEUE: usize = 64;

/// Bytes a 1-RTT packet spends besides its frames, at most: header (1 + 20-byte CID + 4-byte
/// packet number) and AEAD tag.
const MAX_PACKET_OVERHEAD: usize = 1 + 20 + 4 + 16;

/// Why [`Connection::send_datagram`] refused a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// The peer's transport parameters are not known yet (the handshake is not complete).
    #[error("the handshake is not complete")]
    NotReady,
    /// We did not enable DATAGRAM frames (`TransportConfig::with_datagrams`).
    #[error("DATAGRAM frames are not enabled locally")]
    Disabled,
    /// The peer did not advertise max_datagram_frame_size (RFC 9221 §3: we must not send
    /// it DATAGRAM frames).
    #[error("the peer does not accept DATAGRAM frames")]
    UnsupportedByPeer,
    /// Larger than [`Connection::max_datagram_payload`].
    #[error("datagram larger than {max} bytes")]
    TooLarge {
        /// The largest payload accepted now.
        max: usize,
    },
    /// The connection is closing or closed.
    #[error("connection closed")]
    Closed,
}

/// The two queues.
#[derive(Debug, Default)]
pub(super) struct Datagrams {
    pub(super) send: VecDeque<Bytes>,
    pub(super) recv: VecDeque<Bytes>,
}

impl Connection {
    /// The largest datagram payload [`Connection::send_datagram`] accepts now: within the
    /// peer's max_datagram_frame_size and one packet of the current path MTU; `None` before
    /// the peer's parameters are known or when DATAGRAM was not negotiated both ways.
    pub fn max_datagram_payload(&self) -> Option<usize> {
        self.config.max_datagram_frame_size?;
        let peer = self.peer_params.as_ref()?.max_datagram_frame_size?.into_inner() as usize;
        // Frame type and a length of up to 2 bytes (payloads stay under 16384 here).
        let by_peer = peer.saturating_sub(3);
        let by_path = (self.path.mds as usize).saturating_sub(MAX_PACKET_OVERHEAD + 3);
        Some(by_peer.min(by_path).min(16383))
    }

    /// Queues `data` to go out in a DATAGRAM frame (RFC 9221): unreliable, never
    /// retransmitted. When the queue is full the oldest queued datagram is dropped (see the
    /// module documentation).
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), DatagramError> {
        if !self.close.is_open() {
            return Err(DatagramError::Closed);
        }
        if self.peer_params.is_none() {
            return Err(DatagramError::NotReady);
        }
        if self.config.max_datagram_frame_size.is_none() {
            return Err(DatagramError::Disabled);
        }
        let max = self.max_datagram_payload().ok_or(DatagramError::UnsupportedByPeer)?;
        if data.len() > max {
            return Err(DatagramError::TooLarge { max });
        }
        if self.datagrams.send.len() >= self.config.datagram_queue {
            self.datagrams.send.pop_front();
            self.stats.datagram_frames_dropped += 1;
        }
        self.datagrams.send.push_back(data);
        self.transmit_interest = true;
        Ok(())
    }

    /// The oldest received datagram not read yet. [`Event::DatagramReceived`] announces a
    /// datagram that arrived while the queue was empty: read until `None` to be told again.
    ///
    /// [`Event::DatagramReceived`]: super::Event::DatagramReceived
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams.recv.pop_front()
    }

    /// Datagrams received and not read yet.
    pub fn datagrams_received_queued(&self) -> usize {
        self.datagrams.recv.len()
    }

    /// Most datagrams each queue holds (`TransportConfig::with_datagrams`'s `queue`).
    pub fn datagram_queue_capacity(&self) -> usize {
        self.config.datagram_queue
    }

    /// Whether we advertised max_datagram_frame_size, and (once the peer's transport
    /// parameters are known) whether the peer did.
    pub fn datagram_support(&self) -> (bool, Option<bool>) {
        let peer = self.peer_params.as_ref().map(|p| p.max_datagram_frame_size.is_some());
        (self.config.max_datagram_frame_size.is_some(), peer)
    }

    /// Datagrams waiting to be sent.
    pub fn datagrams_queued(&self) -> usize {
        self.datagrams.send.len()
    }

    /// Whether queued datagrams may go out now (the handshake is complete).
    pub(super) fn has_datagrams_to_send(&self) -> bool {
        self.handshake_complete && !self.datagrams.send.is_empty()
    }

    /// A DATAGRAM frame arrived (1-RTT or 0-RTT).
    pub(super) fn on_datagram_frame(&mut self, f: &Datagram<'_>) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9221#section-3
        //# An endpoint that receives a DATAGRAM frame when it has not indicated
        //# support via the transport parameter MUST terminate the connection
        //# with an error of type PROTOCOL_VIOLATION.
        let Some(max) = self.config.max_datagram_frame_size else {
            return Err(Error::protocol_violation("DATAGRAM not negotiated"));
        };
        //= https://www.rfc-editor.org/rfc/rfc9221#section-3
        //# An endpoint that receives a DATAGRAM frame that is larger than the
        //# value it sent in its max_datagram_frame_size transport parameter
        //# MUST terminate the connection with an error of type PROTOCOL_VIOLATION.
        if f.encoded_len() as u64 > max {
            return Err(Error::protocol_violation("DATAGRAM frame above max_datagram_frame_size"));
        }
        if self.datagrams.recv.is_empty() {
            self.events.push_back(super::Event::DatagramReceived);
        }
        if self.datagrams.recv.len() >= self.config.datagram_queue {
            self.datagrams.recv.pop_front();
            self.stats.datagram_frames_dropped += 1;
        }
        self.datagrams.recv.push_back(Bytes::copy_from_slice(f.data));
        self.stats.datagram_frames_received += 1;
        Ok(())
    }

    /// Writes queued datagrams that fit in `room` bytes of the packet being built; returns
    /// how many were written. One that does not fit waits for the next packet.
    pub(super) fn write_datagrams(
        &mut self,
        w: &mut crate::coding::Writer<'_>,
        room: usize,
    ) -> usize {
        let mut n = 0;
        let mut left = room;
        let mds = self.path.mds as usize;
        while let Some(d) = self.datagrams.send.front() {
            let f = Datagram { data: d, has_length: true };
            let len = f.encoded_len();
            if len + MAX_PACKET_OVERHEAD > mds {
                // The path MTU fell below it after it was queued: it can never go out.
                self.datagrams.send.pop_front();
                self.stats.datagram_frames_dropped += 1;
                continue;
            }
            if len > left || f.encode(w).is_err() {
                break;
            }
            left -= len;
            self.datagrams.send.pop_front();
            self.stats.datagram_frames_sent += 1;
            n += 1;
        }
        n
    }
}
