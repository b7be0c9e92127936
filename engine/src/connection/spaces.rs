//! Per packet-number-space state: keys, the crypto stream (send with retransmission, receive
//! with reassembly), the ACK tracker and the next packet number. Sent packets live in the
//! connection's `LossDetector`, which covers all three spaces.

use crate::crypto::{Keys, Level};
use crate::error::{Error, TransportErrorCode};
use crate::recovery::{AckTracker, AckTrackerConfig, SpaceId};
use crate::streams::Reassembly;

/// Most out-of-order CRYPTO data buffered per space beyond the in-order point.
//= https://www.rfc-editor.org/rfc/rfc9000#section-7.5
//# Implementations MUST support buffering at least 4096 bytes of data
//# received in out-of-order CRYPTO frames.
pub const MAX_CRYPTO_BUFFER: u64 = 64 * 1024;

/// Most out-of-order CRYPTO data a server buffers before the client's address is validated
/// (such data may come from a spoofed address and costs a half-open connection memory; a
/// ClientHello is a few KiB). Held in blocks, this is at most 5 blocks (about 23 KB).
pub const MAX_CRYPTO_BUFFER_UNVALIDATED: u64 = 16 * 1024;

/// The crypto stream of one space, send side: every byte TLS wrote at this level (handshake
/// messages are small), how far new data was sent, and ranges to resend after a loss.
#[derive(Debug, Default)]
pub struct CryptoSend {
    data: Vec<u8>,
    sent: u64,
    retransmit: Vec<(u64, u64)>,
    /// Early resends done (see [`resend_early`](Self::resend_early)).
    early_resends: u8,
}

/// Most early resends of a crypto stream per connection (RFC 9002 §6.2.3: "for a limited
/// number of times per connection").
pub const MAX_EARLY_CRYPTO_RESENDS: u8 = 2;

impl CryptoSend {
    /// Appends bytes TLS wrote.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// Whether a CRYPTO frame is waiting.
    pub fn has_data(&self) -> bool {
        !self.retransmit.is_empty() || self.sent < self.data.len() as u64
    }

    /// Whether nothing was ever written here.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next chunk to send (resends first), at most `max` bytes: `(offset, bytes)`.
    pub fn next_chunk(&self, max: usize) -> Option<(u64, &[u8])> {
        let (off, end) = match self.retransmit.first() {
            Some(&(o, e)) => (o, e),
            None if self.sent < self.data.len() as u64 => (self.sent, self.data.len() as u64),
            None => return None,
        };
        let len = (end - off).min(max as u64) as usize;
        if len == 0 {
            return None;
        }
        let start = off as usize;
        Some((off, &self.data[start..start + len]))
    }

    /// Records that `len` bytes at `off` (from [`next_chunk`](Self::next_chunk)) went out.
    pub fn on_sent(&mut self, off: u64, len: u64) {
        if let Some(first) = self.retransmit.first_mut() {
            if first.0 == off {
                first.0 += len;
                if first.0 >= first.1 {
                    self.retransmit.remove(0);
                }
                return;
            }
        }
        self.sent = self.sent.max(off + len);
    }

    /// A CRYPTO frame carrying `off..off+len` was lost: send it again.
    pub fn on_lost(&mut self, off: u64, len: u64) {
        if len > 0 && !self.retransmit.contains(&(off, off + len)) {
            self.retransmit.push((off, off + len));
        }
    }

    /// The peer sent CRYPTO data again that it had sent before: it likely did not get what
    /// we sent in this space (or its RTT estimate is short). Queues everything sent so far
    /// for resending now rather than at the PTO, at most [`MAX_EARLY_CRYPTO_RESENDS`] times
    /// per connection; returns whether it did. Acknowledged data is resent too: a client
    /// that restarts its Initial state after a compatible version upgrade (picoquic 1.1)
    /// acknowledges the server's first upgraded Initial without using its ServerHello.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.3
    //# When a server receives an Initial packet containing duplicate CRYPTO data, it can
    //# assume the client did not receive all of the server's CRYPTO data sent in Initial
    //# packets, or the client's estimated RTT is too small.
    pub fn resend_early(&mut self) -> bool {
        if self.sent == 0 || self.early_resends >= MAX_EARLY_CRYPTO_RESENDS {
            return false;
        }
        self.early_resends += 1;
        self.resend_all();
        true
    }

    /// Queues everything for resending (after a Retry, or for a PTO probe with nothing new).
    pub fn resend_all(&mut self) {
        self.retransmit.clear();
        if !self.data.is_empty() {
            self.retransmit.push((0, self.data.len() as u64));
        }
    }
}

/// The crypto stream of one space, receive side: in-order delivery point and buffered
/// out-of-order bytes (in blocks, so memory follows the bytes' range, not the fragment count).
#[derive(Debug, Default)]
pub struct CryptoRecv {
    delivered: u64,
    pending: Reassembly,
}

impl CryptoRecv {
    /// Accepts a CRYPTO frame; in-order bytes are appended to `out` (for TLS). Data ending
    /// more than `limit` bytes beyond the in-order point is CRYPTO_BUFFER_EXCEEDED; bytes
    /// that differ from bytes held are a PROTOCOL_VIOLATION.
    pub fn on_frame(
        &mut self,
        offset: u64,
        data: &[u8],
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let end = offset + data.len() as u64;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-7.5
        //# If an endpoint does not expand its buffer, it MUST close
        //# the connection with a CRYPTO_BUFFER_EXCEEDED error code.
        if end > self.delivered + limit {
            return Err(Error::new(
                TransportErrorCode::CRYPTO_BUFFER_EXCEEDED,
                "CRYPTO data too far ahead",
            ));
        }
        if end <= self.delivered {
            return Ok(());
        }
        let mut pos = offset.max(self.delivered);
        if pos == self.delivered {
            let stop = self.pending.first_present(pos, end).unwrap_or(end);
            out.extend_from_slice(&data[(pos - offset) as usize..(stop - offset) as usize]);
            self.delivered = stop;
            pos = stop;
        }
        if pos < end {
            self.pending
                .insert(pos, &data[(pos - offset) as usize..])
                .map_err(|_| Error::protocol_violation("CRYPTO data changed on retransmission"))?;
        }
        // Bounded by the number of blocks held.
        while let Some(piece) = self.pending.take(self.delivered) {
            out.extend_from_slice(&piece);
            self.delivered += piece.len() as u64;
        }
        Ok(())
    }

    /// Whether every byte of `offset..offset+len` was delivered already (a duplicate).
    pub fn is_duplicate(&self, offset: u64, len: usize) -> bool {
        len > 0 && offset + len as u64 <= self.delivered
    }

    /// Memory held for out-of-order bytes, in bytes.
    pub fn footprint(&self) -> usize {
        self.pending.footprint()
    }
}

/// State of one packet number space.
#[derive(Debug)]
pub struct PacketSpace {
    /// Initial or Handshake keys (the Data space keeps its 1-RTT keys in the connection).
    pub keys: Option<Keys>,
    /// Keys were discarded: nothing is sent or accepted here any more.
    pub discarded: bool,
    /// Outgoing crypto stream.
    pub crypto_send: CryptoSend,
    /// Incoming crypto stream.
    pub crypto_recv: CryptoRecv,
    /// Receiver-side ACK state.
    pub acks: AckTracker,
    /// Next packet number to send.
    pub next_pn: u64,
    /// Probe packets owed after a PTO in this space.
    pub probes: u8,
    /// A PING is owed (probe with nothing else to send, or on demand).
    pub ping_pending: bool,
}

impl PacketSpace {
    /// A fresh space.
    pub fn new(id: SpaceId, acks: AckTrackerConfig) -> Self {
        Self {
            keys: None,
            discarded: false,
            crypto_send: CryptoSend::default(),
            crypto_recv: CryptoRecv::default(),
            acks: AckTracker::new(id, acks),
            next_pn: 0,
            probes: 0,
            ping_pending: false,
        }
    }

    /// Drops the keys (RFC 9001 §4.9).
    pub fn discard(&mut self) {
        self.keys = None;
        self.discarded = true;
        self.probes = 0;
        self.ping_pending = false;
    }
}

/// The TLS level whose CRYPTO data a space carries.
pub fn level_of(space: SpaceId) -> Level {
    match space {
        SpaceId::Initial => Level::Initial,
        SpaceId::Handshake => Level::Handshake,
        SpaceId::Data => Level::OneRtt,
    }
}

/// The space a TLS level's data goes to (0-RTT shares the Data space).
pub fn space_of(level: Level) -> SpaceId {
    match level {
        Level::Initial => SpaceId::Initial,
        Level::Handshake => SpaceId::Handshake,
        Level::ZeroRtt | Level::OneRtt => SpaceId::Data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_reassembly_in_any_order() {
        let msg: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut r = CryptoRecv::default();
        let mut out = Vec::new();
        let max = MAX_CRYPTO_BUFFER;
        r.on_frame(1000, &msg[1000..2000], max, &mut out).unwrap();
        r.on_frame(2000, &msg[2000..], max, &mut out).unwrap();
        assert!(out.is_empty());
        r.on_frame(0, &msg[..1200], max, &mut out).unwrap();
        assert_eq!(out, msg);
        // Old data is ignored.
        r.on_frame(0, &msg[..10], max, &mut out).unwrap();
        assert_eq!(out.len(), 3000);
        let far = r.on_frame(3000 + MAX_CRYPTO_BUFFER, &[1], max, &mut out).unwrap_err();
        assert_eq!(far.code, TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
        assert_eq!(r.footprint(), 0);
    }

    #[test]
    fn crypto_one_byte_fragments_cost_the_range_not_the_count() {
        let mut r = CryptoRecv::default();
        let mut out = Vec::new();
        let limit = MAX_CRYPTO_BUFFER_UNVALIDATED;
        for off in (1..limit).step_by(2) {
            r.on_frame(off, &[off as u8], limit, &mut out).unwrap();
        }
        assert!(out.is_empty());
        assert!(r.footprint() <= 5 * crate::streams::BLOCK_FOOTPRINT, "{}", r.footprint());
        let e = r.on_frame(limit, &[0], limit, &mut out).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
        let e = r.on_frame(3, &[0], limit, &mut out).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "changed retransmission");
        // Filling the gaps in order delivers everything and frees the blocks.
        for off in (0..limit).step_by(2) {
            r.on_frame(off, &[off as u8], limit, &mut out).unwrap();
        }
        assert_eq!(out.len() as u64, limit);
        assert!(out.iter().enumerate().all(|(i, &b)| b == i as u8));
        assert_eq!(r.footprint(), 0);
    }

    #[test]
    fn early_resend_needs_sent_data_and_is_limited() {
        let mut s = CryptoSend::default();
        s.push(&[7; 300]);
        assert!(!s.resend_early(), "nothing sent yet");
        let (off, len) = s.next_chunk(1000).map(|(o, d)| (o, d.len() as u64)).unwrap();
        s.on_sent(off, len);
        assert!(!s.has_data());
        for _ in 0..MAX_EARLY_CRYPTO_RESENDS {
            assert!(s.resend_early());
            assert_eq!(s.next_chunk(1000).map(|(o, d)| (o, d.len())), Some((0, 300)));
            s.on_sent(0, 300);
        }
        assert!(!s.resend_early(), "the limit per connection");
        assert!(!s.has_data());
        let mut r = CryptoRecv::default();
        let mut out = Vec::new();
        assert!(!r.is_duplicate(0, 10));
        r.on_frame(0, &[1; 10], MAX_CRYPTO_BUFFER, &mut out).unwrap();
        assert!(r.is_duplicate(0, 10) && r.is_duplicate(5, 5) && !r.is_duplicate(5, 6));
        assert!(!r.is_duplicate(10, 0), "an empty frame is no duplicate");
    }

    #[test]
    fn crypto_send_resends_lost_ranges_first() {
        let mut s = CryptoSend::default();
        s.push(&[7; 100]);
        let (off, d) = s.next_chunk(60).unwrap();
        assert_eq!((off, d.len()), (0, 60));
        s.on_sent(0, 60);
        let (off, d) = s.next_chunk(60).unwrap();
        assert_eq!((off, d.len()), (60, 40));
        s.on_sent(60, 40);
        assert!(!s.has_data());
        s.on_lost(0, 60);
        assert_eq!(s.next_chunk(1000).map(|(o, d)| (o, d.len())), Some((0, 60)));
        s.on_sent(0, 30);
        assert_eq!(s.next_chunk(1000).map(|(o, d)| (o, d.len())), Some((30, 30)));
        s.on_sent(30, 30);
        assert!(!s.has_data());
    }
}
