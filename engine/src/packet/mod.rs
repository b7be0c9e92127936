//! QUIC packets: headers, packet numbers, coalesced datagrams, Retry and Version Negotiation.
//!
//! Receiving is two-stage, as in quinn's `PartialDecode`:
//! 1. [`PartialDecode::new`] reads the fields that are not header-protected from the front of a
//!    datagram (form, version, connection IDs, token, Length), and returns where the packet
//!    number starts (`pn_offset`) and where the packet ends. [`Coalesced`] repeats this over a
//!    datagram, handing out each packet as its own `&mut [u8]`.
//! 2. The crypto layer removes header protection in place; then [`PartialDecode::finish`] reads
//!    the packet number length, the truncated packet number, the key phase and the reserved bits.
//!    After the AEAD opens the payload, [`DecodedHeader::check_reserved_bits`] is the one check
//!    here that yields a connection error (PROTOCOL_VIOLATION).
//!
//! Every [`PacketDecodeError`] means "drop the packet (or the rest of the datagram) silently":
//! RFC 9000 never asks an endpoint to close a connection over an unparseable header, since such a
//! packet is unauthenticated and may come from anyone.
//!
//! Sending writes in place into a datapath-owned buffer: [`PacketBuilder::long`] or
//! [`PacketBuilder::short`] writes the header (reserving the Length field), the caller writes
//! frames, [`PacketBuilder::finish`] pads for the header-protection sample, reserves the AEAD tag
//! and patches Length, and the crypto layer seals and protects the header in place using the
//! returned [`PacketLayout`].

mod builder;
pub mod fuzz;
mod header;
mod invariant;
pub mod number;
mod retry;
mod version_negotiation;

mod coalesced;

#[cfg(test)]
mod tests;

pub use builder::{LongHeader, PacketBuilder, PacketLayout, ShortHeader};
pub use coalesced::{Coalesced, CoalescedPacket};
pub use header::{DecodedHeader, PartialDecode, PlainHeader};
pub use invariant::InvariantHeader;
pub use number::TruncatedPn;
pub use retry::{RetryHeader, RetryPacket, RETRY_INTEGRITY_TAG_LEN};
pub use version_negotiation::{
    write_version_negotiation, write_version_negotiation_response, VersionNegotiation,
};

use crate::coding::BufferFull;
use crate::version;

/// Header Form bit: 1 for long headers (RFC 9000 §17.2).
pub const LONG_HEADER_FORM: u8 = 0x80;
/// Fixed Bit (the "QUIC bit", RFC 9287).
pub const FIXED_BIT: u8 = 0x40;
/// Latency spin bit of a short header (RFC 9000 §17.4).
pub const SPIN_BIT: u8 = 0x20;
/// Key Phase bit of a short header.
pub const KEY_PHASE_BIT: u8 = 0x04;
/// Reserved bits of a long header (must be 0 after removing protection).
pub const LONG_RESERVED_BITS: u8 = 0x0c;
/// Reserved bits of a short header (must be 0 after removing protection).
pub const SHORT_RESERVED_BITS: u8 = 0x18;
/// First-byte bits covered by header protection in a long header (RFC 9001 §5.4.1).
pub const LONG_HP_MASK: u8 = 0x0f;
/// First-byte bits covered by header protection in a short header (RFC 9001 §5.4.1).
pub const SHORT_HP_MASK: u8 = 0x1f;
/// Packet Number Length bits.
pub const PN_LEN_MASK: u8 = 0x03;
/// Size of the header-protection sample (every v1/v2 cipher suite, RFC 9001 §5.4.2).
pub const HP_SAMPLE_LEN: usize = 16;
/// Offset of the sample from the start of the Packet Number field (RFC 9001 §5.4.2).
pub const HP_SAMPLE_OFFSET: usize = 4;
/// Smallest UDP payload that may carry an Initial packet (RFC 9000 §14.1).
pub const MIN_INITIAL_DATAGRAM_SIZE: usize = 1200;

/// The type of a long-header packet. The wire bits differ between QUIC v1 and v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LongType {
    /// Initial (Initial packet number space).
    Initial,
    /// 0-RTT (application data space).
    ZeroRtt,
    /// Handshake (Handshake space).
    Handshake,
    /// Retry (no packet number).
    Retry,
}

impl LongType {
    /// The type encoded in `bits` (the 0x30 bits of the first byte, shifted down) for `version`,
    /// or `None` when the version is not one whose packet types are known here.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
    //# Long Packet Type:  The next two bits (those with a mask of 0x30) of
    //# byte 0 contain a packet type.  Packet types are listed in Table 5.
    //= https://www.rfc-editor.org/rfc/rfc9369#section-3.2
    //# All version 2 Long Header packet types are different. The Type
    //# field values are:
    //# Initial: 0b01
    //# 0-RTT: 0b10
    //# Handshake: 0b11
    //# Retry: 0b00
    pub fn from_bits(version: u32, bits: u8) -> Option<Self> {
        const V1: [LongType; 4] =
            [LongType::Initial, LongType::ZeroRtt, LongType::Handshake, LongType::Retry];
        const V2: [LongType; 4] =
            [LongType::Retry, LongType::Initial, LongType::ZeroRtt, LongType::Handshake];
        let table = match version {
            version::V1 => &V1,
            version::V2 => &V2,
            _ => return None,
        };
        Some(table[usize::from(bits & 0x03)])
    }

    /// The two type bits (not shifted) for `version`, or `None` for an unknown version. A
    /// reserved version (0x?a?a?a?a, RFC 9000 §15) is written with v1's bits: a client offers
    /// one only to draw a Version Negotiation packet, and no server parses it.
    pub fn to_bits(self, version: u32) -> Option<u8> {
        let v1 = match self {
            LongType::Initial => 0,
            LongType::ZeroRtt => 1,
            LongType::Handshake => 2,
            LongType::Retry => 3,
        };
        match version {
            version::V1 => Some(v1),
            version::V2 => Some((v1 + 1) & 0x03),
            v if version::is_reserved(v) => Some(v1),
            _ => None,
        }
    }
}

/// Why a datagram (or one packet of it) is not a packet this endpoint can process.
///
/// Every variant means: drop silently (RFC 9000 §5.2, §12.2, §17). None of them is a connection
/// error; the only header check that is one is [`DecodedHeader::check_reserved_bits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketDecodeError {
    /// A long header with a version this endpoint does not speak. A server may answer with a
    /// Version Negotiation packet built from [`InvariantHeader`] (RFC 9000 §6.1, only for
    /// datagrams of at least 1200 bytes); a client drops it.
    #[error("unsupported QUIC version {0:#010x}")]
    UnsupportedVersion(u32),
    /// Malformed, truncated or otherwise invalid for this version: drop. A datagram rejected
    /// this way may still be a Stateless Reset: the endpoint checks its last 16 bytes against
    /// known reset tokens (RFC 9000 §10.3.1) regardless.
    #[error("invalid packet: {0}")]
    Invalid(&'static str),
    /// A coalesced packet whose Destination Connection ID differs from the first packet's in the
    /// same datagram: ignore it (RFC 9000 §12.2); later packets are still processed.
    #[error("coalesced packet with a different destination connection ID")]
    DcidMismatch,
}

/// Why a header could not be written. Both are local conditions, never peer input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The output buffer has no room.
    #[error("output buffer full")]
    BufferFull,
    /// The header asked for is not valid (a caller bug), with the reason.
    #[error("invalid header: {0}")]
    Invalid(&'static str),
}

impl From<BufferFull> for EncodeError {
    fn from(_: BufferFull) -> Self {
        EncodeError::BufferFull
    }
}
