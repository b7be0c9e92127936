//! Retry Integrity Tag (RFC 9001 §5.8, RFC 9369 §3.3.3): compute and verify.

use std::sync::LazyLock;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};

use super::aead::TAG_LEN;
use super::{CryptoError, Version};

/// Longest connection ID.
const MAX_CID_LEN: usize = 20;

/// Retry pseudo-packets up to this size are assembled on the stack.
const STACK_PSEUDO_LEN: usize = 1 + MAX_CID_LEN + 1500;

//= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
//# *  The secret key, K, is 128 bits equal to
//#    0xbe0c690b9f66575a1d766b54e368c84e.
//#
//# *  The nonce, N, is 96 bits equal to 0x461599d35d632bf2239825bb.
/// The v1 Retry integrity key.
pub const RETRY_KEY_V1: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];
/// The v1 Retry integrity nonce.
pub const RETRY_NONCE_V1: [u8; 12] =
    [0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb];

//= https://www.rfc-editor.org/rfc/rfc9369#section-3.3.3
//# key = 0x8fb4b01b56ac48e260fbcbcead7ccc92
//# nonce = 0xd86969bc2d7c6d9990efb04a
/// The v2 Retry integrity key.
pub const RETRY_KEY_V2: [u8; 16] = [
    0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92,
];
/// The v2 Retry integrity nonce.
pub const RETRY_NONCE_V2: [u8; 12] =
    [0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a];

fn key(version: Version) -> &'static LessSafeKey {
    static V1: LazyLock<LessSafeKey> = LazyLock::new(|| make_key(&RETRY_KEY_V1));
    static V2: LazyLock<LessSafeKey> = LazyLock::new(|| make_key(&RETRY_KEY_V2));
    match version {
        Version::V1 => &V1,
        Version::V2 => &V2,
    }
}

fn make_key(k: &[u8; 16]) -> LessSafeKey {
    // A 16-byte key always fits AES-128-GCM: this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, k).expect("16-byte AES-128 key"))
}

fn nonce(version: Version) -> Nonce {
    Nonce::assume_unique_for_key(match version {
        Version::V1 => RETRY_NONCE_V1,
        Version::V2 => RETRY_NONCE_V2,
    })
}

/// Runs `f` on the Retry pseudo-packet: ODCID length, ODCID, then `retry_without_tag`.
fn with_pseudo_packet<R>(
    odcid: &[u8],
    retry_without_tag: &[u8],
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, CryptoError> {
    if odcid.len() > MAX_CID_LEN {
        return Err(CryptoError::InvalidKeyLength);
    }
    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
    //# The Retry Pseudo-Packet is not sent over the wire.  It is computed by
    //# taking the transmitted Retry packet, removing the Retry Integrity
    //# Tag, and prepending the two following fields:
    let len = 1 + odcid.len() + retry_without_tag.len();
    let fill = |buf: &mut [u8]| {
        buf[0] = odcid.len() as u8;
        buf[1..1 + odcid.len()].copy_from_slice(odcid);
        buf[1 + odcid.len()..].copy_from_slice(retry_without_tag);
    };
    if len <= STACK_PSEUDO_LEN {
        let mut buf = [0u8; STACK_PSEUDO_LEN];
        fill(&mut buf[..len]);
        Ok(f(&buf[..len]))
    } else {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        Ok(f(&buf))
    }
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
//# The Retry Integrity Tag is a 128-bit field that is computed as the
//# output of AEAD_AES_128_GCM [AEAD] used with the following inputs:
/// The Retry Integrity Tag for a Retry packet (given without its tag) sent in answer to an
/// Initial whose Destination Connection ID was `odcid`.
pub fn retry_integrity_tag(
    version: Version,
    odcid: &[u8],
    retry_without_tag: &[u8],
) -> Result<[u8; TAG_LEN], CryptoError> {
    let tag = with_pseudo_packet(odcid, retry_without_tag, |pseudo| {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
        //# *  The plaintext, P, is empty.
        key(version).seal_in_place_separate_tag(nonce(version), Aad::from(pseudo), &mut [])
    })?
    .map_err(|_| CryptoError::EncryptFailed)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Verifies the Retry Integrity Tag at the end of `retry_packet` (the whole Retry packet as
/// received) against `odcid`, the DCID of the client's first Initial. A packet shorter than the
/// tag, or a wrong tag, is [`CryptoError::DecryptFailed`]: the client discards it. The tag
/// comparison is constant-time (done by the AEAD).
pub fn verify_retry_integrity(
    version: Version,
    odcid: &[u8],
    retry_packet: &[u8],
) -> Result<(), CryptoError> {
    let split = retry_packet.len().checked_sub(TAG_LEN).ok_or(CryptoError::DecryptFailed)?;
    let (body, tag) = retry_packet.split_at(split);
    let mut tag_buf = [0u8; TAG_LEN];
    tag_buf.copy_from_slice(tag);
    with_pseudo_packet(odcid, body, |pseudo| {
        key(version)
            .open_in_place(nonce(version), Aad::from(pseudo), &mut tag_buf)
            .map(|_| ())
            .map_err(|_| CryptoError::DecryptFailed)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hkdf::{hkdf_expand_label, HashAlg};
    use crate::crypto::tests::hex;

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
    //= type=test
    //# The secret key and the nonce are values derived by calling HKDF-
    //# Expand-Label using
    //# 0xd9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e as
    //# the secret, with labels being "quic key" and "quic iv" (Section 5.1).
    #[test]
    fn fixed_keys_derive_from_published_secrets() {
        let cases = [
            (
                "d9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e",
                Version::V1,
                RETRY_KEY_V1,
                RETRY_NONCE_V1,
            ),
            (
                "c4dd2484d681aefa4ff4d69c2c20299984a765a5d3c31982f38fc74162155e9f",
                Version::V2,
                RETRY_KEY_V2,
                RETRY_NONCE_V2,
            ),
        ];
        for (secret, version, want_key, want_nonce) in cases {
            let secret = hex(secret);
            let mut k = [0u8; 16];
            let mut n = [0u8; 12];
            hkdf_expand_label(HashAlg::Sha256, &secret, version.labels().key, &[], &mut k).unwrap();
            hkdf_expand_label(HashAlg::Sha256, &secret, version.labels().iv, &[], &mut n).unwrap();
            assert_eq!((k, n), (want_key, want_nonce), "{version:?}");
        }
    }

    #[test]
    fn odd_inputs() {
        assert_eq!(
            verify_retry_integrity(Version::V1, &[1; 8], &[0; 15]),
            Err(CryptoError::DecryptFailed)
        );
        assert_eq!(
            retry_integrity_tag(Version::V1, &[0; 21], &[0xf0]),
            Err(CryptoError::InvalidKeyLength)
        );
        // A long (heap-assembled) pseudo-packet round-trips too.
        let mut retry = vec![0xf0u8; 3000];
        let tag = retry_integrity_tag(Version::V2, &[9; 20], &retry).unwrap();
        retry.extend_from_slice(&tag);
        assert_eq!(verify_retry_integrity(Version::V2, &[9; 20], &retry), Ok(()));
        assert!(verify_retry_integrity(Version::V1, &[9; 20], &retry).is_err());
        assert!(verify_retry_integrity(Version::V2, &[9; 19], &retry).is_err());
    }
}
