//! Fuzz entry points: one per packet decoder, each taking arbitrary bytes.
//!
//! They never panic on any input unless an internal invariant of the decoders is broken (the
//! `assert!`s below are what a fuzzer looks for). Where a decoder needs a parameter, the first
//! input byte supplies it.

use super::{
    Coalesced, InvariantHeader, PacketDecodeError, PartialDecode, RetryPacket, VersionNegotiation,
};
use crate::cid::MAX_CID_LEN;

/// Splits off the configuration byte: (local CID length 0..=20, peer may grease, datagram).
fn config(data: &[u8]) -> (usize, bool, &[u8]) {
    match data.split_first() {
        Some((&c, rest)) => (usize::from(c & 0x7f) % (MAX_CID_LEN + 1), c & 0x80 != 0, rest),
        None => (0, false, data),
    }
}

/// [`InvariantHeader::parse`]; the first byte gives the short-header CID length.
pub fn invariant(data: &[u8]) -> Result<(), PacketDecodeError> {
    let (cid_len, _, datagram) = config(data);
    let h = InvariantHeader::parse(datagram, cid_len)?;
    assert!(h.dst_cid().len() < datagram.len());
    Ok(())
}

/// Stage 1 ([`PartialDecode::new`]) then stage 2 ([`PartialDecode::finish`], as if header
/// protection were already removed) on the first packet of a datagram. The first byte gives
/// the local CID length (low 7 bits, mod 21) and whether greasing is allowed (high bit).
pub fn partial_decode(data: &[u8]) -> Result<(), PacketDecodeError> {
    let (cid_len, grease, datagram) = config(data);
    let (pd, rest) = PartialDecode::new(datagram, cid_len, grease)?;
    assert_eq!(pd.len() + rest.len(), datagram.len());
    let packet = &datagram[..pd.len()];
    let _ = pd.token(packet);
    let Some(pn_offset) = pd.pn_offset() else {
        return Ok(());
    };
    assert!(pn_offset < pd.len());
    let d = pd.finish(packet)?;
    assert!(d.header_len <= pd.len());
    let _ = d.packet_number(Some(u64::from(d.pn.value()) * 3));
    let _ = d.check_reserved_bits();
    Ok(())
}

/// [`Coalesced`] over a copy of the datagram, running stage 2 on each packet; returns how many
/// packets parsed. The first byte is the configuration byte of [`partial_decode`].
pub fn coalesced(data: &[u8]) -> Result<usize, PacketDecodeError> {
    let (cid_len, grease, datagram) = config(data);
    let mut copy = datagram.to_vec();
    let total = copy.len();
    let mut ok = 0;
    let mut covered = 0;
    let mut first_err = None;
    for item in Coalesced::new(&mut copy, cid_len, grease) {
        match item {
            Ok(p) => {
                // Skipped packets (DcidMismatch) leave gaps; packets never overlap.
                assert!(p.offset >= covered);
                assert_eq!(p.bytes.len(), p.header.len());
                covered = p.offset + p.bytes.len();
                if p.header.is_protected() {
                    let _ = p.header.finish(p.bytes);
                }
                ok += 1;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        assert!(covered <= total);
    }
    match (ok, first_err) {
        (0, Some(e)) => Err(e),
        _ => Ok(ok),
    }
}

/// [`RetryPacket::parse`] on the whole input.
pub fn retry(data: &[u8]) -> Result<(), PacketDecodeError> {
    let r = RetryPacket::parse(data)?;
    assert!(!r.token.is_empty());
    assert_eq!(r.without_tag.len() + r.integrity_tag.len(), data.len());
    Ok(())
}

/// [`VersionNegotiation::parse`] on the whole input.
pub fn version_negotiation(data: &[u8]) -> Result<(), PacketDecodeError> {
    let vn = VersionNegotiation::parse(data)?;
    let n = vn.versions().count();
    assert!(n >= 1);
    assert_eq!(7 + vn.dst_cid.len() + vn.src_cid.len() + 4 * n, data.len());
    Ok(())
}
