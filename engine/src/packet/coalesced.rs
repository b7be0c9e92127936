//! Splitting a datagram into its coalesced packets (RFC 9000 §12.2).

use super::{PacketDecodeError, PartialDecode, PlainHeader};
use crate::cid::ConnectionId;

/// Iterates the packets of one received datagram, handing each out as its own mutable slice so
/// the crypto layer can remove protection in place.
///
/// Stopping rules: a packet that fails stage 1 yields its error and ends the iteration (its end
/// is unknown, so nothing after it can be found); a short header, Retry or Version Negotiation
/// packet runs to the end of the datagram; a later packet whose Destination Connection ID
/// differs from the first packet's yields [`PacketDecodeError::DcidMismatch`] and is skipped
/// (its Length is known, so the packets after it are still returned).
///
/// Each packet is independent: when one cannot be decrypted, the caller MUST still process the
/// ones after it (RFC 9000 §12.2).
#[derive(Debug)]
pub struct Coalesced<'a> {
    rest: &'a mut [u8],
    offset: usize,
    local_cid_len: usize,
    peer_may_grease: bool,
    first_dcid: Option<ConnectionId>,
}

/// One packet of a datagram.
#[derive(Debug)]
pub struct CoalescedPacket<'a> {
    /// The stage-1 parse of the packet.
    pub header: PartialDecode,
    /// Offset of the packet within the datagram.
    pub offset: usize,
    /// The packet's bytes (header and protected payload).
    pub bytes: &'a mut [u8],
}

impl<'a> Coalesced<'a> {
    /// Iterates the packets of `datagram`; see [`PartialDecode::new`] for the parameters.
    pub fn new(datagram: &'a mut [u8], local_cid_len: usize, peer_may_grease: bool) -> Self {
        Self { rest: datagram, offset: 0, local_cid_len, peer_may_grease, first_dcid: None }
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
}

impl<'a> Iterator for Coalesced<'a> {
    type Item = Result<CoalescedPacket<'a>, PacketDecodeError>;

    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
    //# Receivers MUST be able to
    //# process coalesced packets.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
    //# Receivers
    //# SHOULD ignore any subsequent packets with a different Destination
    //# Connection ID than the first packet in the datagram.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
    //# Retry packets (Section 17.2.5), Version Negotiation packets
    //# (Section 17.2.1), and packets with a short header (Section 17.3) do
    //# not contain a Length field and so cannot be followed by other packets
    //# in the same UDP datagram.
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = PartialDecode::new(self.rest, self.local_cid_len, self.peer_may_grease);
        let header = match parsed {
            Ok((header, _)) => header,
            Err(e) => {
                self.offset += self.rest.len();
                self.rest = &mut [];
                return Some(Err(e));
            }
        };
        let rest = std::mem::take(&mut self.rest);
        let (bytes, rest) = rest.split_at_mut(header.len());
        self.rest = rest;
        let offset = self.offset;
        self.offset += bytes.len();
        match self.first_dcid {
            None => self.first_dcid = Some(*header.dst_cid()),
            Some(first) if first != *header.dst_cid() => {
                return Some(Err(PacketDecodeError::DcidMismatch))
            }
            Some(_) => {}
        }
        if offset > 0
            && matches!(
                header.header(),
                PlainHeader::Retry { .. } | PlainHeader::VersionNegotiation { .. }
            )
        {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
            //# Note also that there is no situation where
            //# a Retry or Version Negotiation packet is coalesced with another
            //# packet.
            return Some(Err(PacketDecodeError::Invalid("Retry or VN after another packet")));
        }
        Some(Ok(CoalescedPacket { header, offset, bytes }))
    }
}

impl std::iter::FusedIterator for Coalesced<'_> {}
