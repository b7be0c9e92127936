//! Stateless responses a router sends without a connection: Version Negotiation, Retry, and an
//! Initial carrying CONNECTION_CLOSE (CONNECTION_REFUSED or INVALID_TOKEN).

use rand::RngCore;

use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::crypto::{self, initial_keys, Side, TAG_LEN};
use crate::error::TransportErrorCode;
use crate::frame::ConnectionClose;
use crate::packet::{
    write_version_negotiation_response, InvariantHeader, LongHeader, LongType, PacketBuilder,
    RetryHeader, TruncatedPn, RETRY_INTEGRITY_TAG_LEN,
};

/// Room for any response built here (a Retry with two 20-octet IDs and the longest token, a
/// Version Negotiation packet echoing 255-octet IDs, or a small close).
const MAX_RESPONSE_LEN: usize = 1200;

/// Why a response could not be built. Only local conditions: a packet this endpoint already
/// parsed always gets its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The version has no packet protection here (cannot happen for configured versions).
    #[error("no packet protection for this version")]
    Version,
    /// Encoding failed (an oversized ID or token).
    #[error("response does not fit")]
    Encode,
}

/// A Version Negotiation packet answering `received` and listing `versions`.
pub fn version_negotiation(
    received: &InvariantHeader<'_>,
    versions: &[u32],
    rng: &mut impl RngCore,
) -> Result<Vec<u8>, ResponseError> {
    let mut buf = vec![0u8; 7 + 2 * 255 + 4 * versions.len()];
    let mut w = Writer::new(&mut buf);
    let unused = (rng.next_u32() & 0x7f) as u8;
    let range = write_version_negotiation_response(&mut w, unused, received, versions)
        .map_err(|_| ResponseError::Encode)?;
    buf.truncate(range.end);
    Ok(buf)
}

/// A Retry packet to a client whose Initial had Source Connection ID `client_scid` and
/// Destination Connection ID `orig_dst_cid`, directing it to `retry_scid` with `token`, with
/// its integrity tag computed by the crypto layer.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.1
//# The server populates the Destination Connection ID with the
//# connection ID that the client included in the Source Connection ID of
//# the Initial packet.
pub fn retry(
    version: u32,
    client_scid: &ConnectionId,
    retry_scid: &ConnectionId,
    orig_dst_cid: &ConnectionId,
    token: &[u8],
    rng: &mut impl RngCore,
) -> Result<Vec<u8>, ResponseError> {
    let v = crypto::Version::from_wire(version).ok_or(ResponseError::Version)?;
    let mut buf = [0u8; MAX_RESPONSE_LEN];
    let mut w = Writer::new(&mut buf);
    let header = RetryHeader {
        version,
        dst_cid: *client_scid,
        src_cid: *retry_scid,
        token,
        unused_bits: (rng.next_u32() & 0x0f) as u8,
    };
    let range = header.write(&mut w).map_err(|_| ResponseError::Encode)?;
    let tag = crypto::retry_integrity_tag(v, orig_dst_cid, &w.written()[range])
        .map_err(|_| ResponseError::Encode)?;
    let tag: [u8; RETRY_INTEGRITY_TAG_LEN] = tag;
    w.put_slice(&tag).map_err(|_| ResponseError::Encode)?;
    Ok(w.written().to_vec())
}

/// A server Initial packet carrying only CONNECTION_CLOSE with `code`, protected with the
/// Initial keys of `initial_dcid` (the Destination Connection ID of the client's Initial),
/// sent to `client_scid` from `local_cid`.
///
/// The frame is not ack-eliciting, so the datagram needs no padding to 1200 octets
/// (RFC 9000 §14.1), and it is far smaller than the 1200-octet Initial it answers.
//= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
//# If a server refuses to accept a new connection, it SHOULD send an
//# Initial packet containing a CONNECTION_CLOSE frame with error code
//# CONNECTION_REFUSED.
pub fn initial_close(
    version: u32,
    initial_dcid: &ConnectionId,
    client_scid: &ConnectionId,
    local_cid: &ConnectionId,
    code: TransportErrorCode,
) -> Result<Vec<u8>, ResponseError> {
    let v = crypto::Version::from_wire(version).ok_or(ResponseError::Version)?;
    let keys = initial_keys(v, initial_dcid, Side::Server).map_err(|_| ResponseError::Version)?;
    let mut buf = [0u8; MAX_RESPONSE_LEN];
    let mut w = Writer::new(&mut buf);
    let pn = 0;
    let header = LongHeader {
        ty: LongType::Initial,
        version,
        dst_cid: *client_scid,
        src_cid: *local_cid,
        token: &[],
        pn: TruncatedPn::truncate(pn, 1),
        grease_quic_bit: false,
    };
    let b = PacketBuilder::long(&mut w, &header).map_err(|_| ResponseError::Encode)?;
    ConnectionClose::transport(code, None, &[])
        .encode(&mut w)
        .map_err(|_| ResponseError::Encode)?;
    let layout = b.finish(&mut w, TAG_LEN).map_err(|_| ResponseError::Encode)?;
    let packet = &mut w.written_mut()[layout.range()];
    keys.local
        .packet
        .seal_in_place(pn, packet, layout.header_len)
        .map_err(|_| ResponseError::Encode)?;
    keys.local.header.protect(packet, layout.pn_offset).map_err(|_| ResponseError::Encode)?;
    Ok(w.written().to_vec())
}
