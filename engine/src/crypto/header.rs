//! Header protection (RFC 9001 §5.4): AES-ECB and ChaCha20 masks, apply/remove on raw packets.

use aws_lc_rs::aead::quic;

use super::aead::Cipher;
use super::CryptoError;

/// Bytes of ciphertext sampled for header protection (every QUIC cipher uses 16).
pub const SAMPLE_LEN: usize = 16;

/// Longest packet number encoding.
pub const MAX_PN_LEN: usize = 4;

/// The header protection mask function for one direction: the concrete aws-lc-rs
/// implementation behind every [`HeaderKey`].
pub struct HeaderProtector {
    key: quic::HeaderProtectionKey,
    cipher: Cipher,
}

impl HeaderProtector {
    /// A header protection key for `cipher` from `cipher.key_len()` raw bytes.
    pub fn new(cipher: Cipher, key: &[u8]) -> Result<Self, CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.3
        //# AEAD_AES_128_GCM and AEAD_AES_128_CCM use 128-bit AES in Electronic
        //# Codebook (ECB) mode.  AEAD_AES_256_GCM uses 256-bit AES in ECB mode.
        //
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.4
        //# When AEAD_CHACHA20_POLY1305 is in use, header protection uses the raw
        //# ChaCha20 function as defined in Section 2.4 of [CHACHA].
        let alg = match cipher {
            Cipher::Aes128Gcm => &quic::AES_128,
            Cipher::Aes256Gcm => &quic::AES_256,
            Cipher::ChaCha20Poly1305 => &quic::CHACHA20,
        };
        if key.len() != cipher.key_len() {
            return Err(CryptoError::InvalidKeyLength);
        }
        let key =
            quic::HeaderProtectionKey::new(alg, key).map_err(|_| CryptoError::InvalidKeyLength)?;
        Ok(Self { key, cipher })
    }

    /// The AEAD this key belongs to.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The 5-byte mask for a 16-byte ciphertext sample.
    #[inline]
    pub fn mask(&self, sample: &[u8]) -> Result<[u8; 5], CryptoError> {
        self.key.new_mask(sample).map_err(|_| CryptoError::PacketTooShort)
    }

    /// XORs the mask into the first byte and the packet number bytes. `unmask` says whether
    /// protection is being removed (the packet number length is then read after unmasking).
    /// Only the first `pn_length` bytes of `packet_number` change; the loop runs over the whole
    /// slice with a data-independent number of iterations.
    pub(crate) fn xor_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
        unmask: bool,
    ) -> Result<(), CryptoError> {
        if packet_number.len() > MAX_PN_LEN {
            return Err(CryptoError::PacketTooShort);
        }
        let mask = self.mask(sample)?;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.1
        //# pn_length = (packet[0] & 0x03) + 1
        //# if (packet[0] & 0x80) == 0x80:
        //#    # Long header: 4 bits masked
        //#    packet[0] ^= mask[0] & 0x0f
        //# else:
        //#    # Short header: 5 bits masked
        //#    packet[0] ^= mask[0] & 0x1f
        let bits = if *first & 0x80 == 0x80 { 0x0f } else { 0x1f };
        let first_mask = mask[0] & bits;
        let plain_first = if unmask { *first ^ first_mask } else { *first };
        let pn_len = usize::from(plain_first & 0x03) + 1;
        *first ^= first_mask;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.1
        //# packet[pn_offset:pn_offset+pn_length] ^= mask[1:1+pn_length]
        for (i, (b, m)) in packet_number.iter_mut().zip(&mask[1..]).enumerate() {
            let keep = 0u8.wrapping_sub(u8::from(i < pn_len));
            *b ^= m & keep;
        }
        Ok(())
    }
}

impl std::fmt::Debug for HeaderProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeaderProtector({:?}, ..)", self.cipher)
    }
}

/// The packet number field recovered by [`HeaderKey::unprotect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketNumberField {
    /// Encoded length, 1 to 4 bytes.
    pub len: usize,
    /// The truncated packet number as sent (decode it against the largest received).
    pub truncated: u32,
}

/// A header protection key for one direction, as the connection holds it: built from raw
/// bytes (Initial keys, tests) or handed over by TLS. It never changes on key update.
pub struct HeaderKey {
    inner: Box<dyn rustls::quic::HeaderProtectionKey>,
}

impl HeaderKey {
    /// A key for `cipher` from raw bytes.
    pub fn new(cipher: Cipher, key: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self { inner: Box::new(HeaderProtector::new(cipher, key)?) })
    }

    /// Wraps a key produced by this crate's rustls crypto provider (see `provider.rs`).
    pub(crate) fn from_rustls(inner: Box<dyn rustls::quic::HeaderProtectionKey>) -> Self {
        Self { inner }
    }

    /// Where the sample starts, checked against the packet length.
    fn sample_range(
        packet_len: usize,
        pn_offset: usize,
    ) -> Result<std::ops::Range<usize>, CryptoError> {
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2
        //# sample_offset = pn_offset + 4
        //#
        //# sample = packet[sample_offset..sample_offset+sample_length]
        let start = pn_offset.checked_add(MAX_PN_LEN).ok_or(CryptoError::PacketTooShort)?;
        let end = start + SAMPLE_LEN;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2
        //# An endpoint MUST discard packets that are not long enough to contain
        //# a complete sample.
        if end > packet_len || pn_offset == 0 {
            return Err(CryptoError::PacketTooShort);
        }
        Ok(start..end)
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.1
    //# Header protection is applied after packet protection is applied (see
    //# Section 5.3).
    /// Applies header protection to a sealed packet whose unprotected packet number field starts
    /// at `pn_offset` (its length is read from the first byte's two low bits).
    pub fn protect(&self, packet: &mut [u8], pn_offset: usize) -> Result<(), CryptoError> {
        let sample_at = Self::sample_range(packet.len(), pn_offset)?;
        let mut sample = [0u8; SAMPLE_LEN];
        sample.copy_from_slice(&packet[sample_at]);
        let pn_len = usize::from(packet[0] & 0x03) + 1;
        let (head, rest) = packet.split_at_mut(pn_offset);
        self.inner
            .encrypt_in_place(&sample, &mut head[0], &mut rest[..pn_len])
            .map_err(|_| CryptoError::PacketTooShort)
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.3
    //# When processing packets,
    //# an endpoint first removes the header protection.
    /// Removes header protection from a received packet whose packet number field starts at
    /// `pn_offset` (as reported by the packet parser). `packet` must be this packet only (for a
    /// long header, up to the end its Length field gives), so that the sample is checked against
    /// its real end. The first byte and the packet number bytes are unmasked in place; the bytes
    /// after the real packet number stay untouched.
    pub fn unprotect(
        &self,
        packet: &mut [u8],
        pn_offset: usize,
    ) -> Result<PacketNumberField, CryptoError> {
        let sample_at = Self::sample_range(packet.len(), pn_offset)?;
        let mut sample = [0u8; SAMPLE_LEN];
        sample.copy_from_slice(&packet[sample_at]);
        let (head, rest) = packet.split_at_mut(pn_offset);
        let pn_field = &mut rest[..MAX_PN_LEN];
        self.inner
            .decrypt_in_place(&sample, &mut head[0], pn_field)
            .map_err(|_| CryptoError::PacketTooShort)?;
        let len = usize::from(head[0] & 0x03) + 1;
        let truncated = pn_field[..len].iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        Ok(PacketNumberField { len, truncated })
    }

    /// Bytes of ciphertext sampled.
    pub fn sample_len(&self) -> usize {
        self.inner.sample_len()
    }
}

impl std::fmt::Debug for HeaderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2
    //= type=test
    //# An endpoint MUST discard packets that are not long enough to contain
    //# a complete sample.
    #[test]
    fn short_packets_are_errors_not_panics() {
        let hp = HeaderKey::new(Cipher::Aes128Gcm, &[1; 16]).unwrap();
        for len in 0..25 {
            let mut p = vec![0x41u8; len];
            // pn_offset 1 needs 1 + 4 + 16 = 21 bytes.
            let r = hp.unprotect(&mut p, 1);
            assert_eq!(r.is_ok(), len >= 21, "len {len}");
            assert_eq!(hp.protect(&mut vec![0x41u8; len], 1).is_ok(), len >= 21);
        }
        assert_eq!(hp.unprotect(&mut [0u8; 64], usize::MAX), Err(CryptoError::PacketTooShort));
        assert_eq!(hp.unprotect(&mut [0u8; 64], 0), Err(CryptoError::PacketTooShort));
        assert!(HeaderKey::new(Cipher::ChaCha20Poly1305, &[0; 16]).is_err());
    }

    proptest::proptest! {
        /// Arbitrary bytes and offsets: an error or a result, never a panic; and a successful
        /// unprotect is undone by protect.
        #[test]
        fn never_panics(mut p in proptest::collection::vec(proptest::num::u8::ANY, 0..80), pn_offset in 0usize..90) {
            let hp = HeaderKey::new(Cipher::ChaCha20Poly1305, &[9; 32]).unwrap();
            let orig = p.clone();
            if let Ok(f) = hp.unprotect(&mut p, pn_offset) {
                proptest::prop_assert!((1..=4).contains(&f.len));
                hp.protect(&mut p, pn_offset).unwrap();
                proptest::prop_assert_eq!(p, orig);
            } else {
                proptest::prop_assert_eq!(p, orig);
            }
        }
    }

    #[test]
    fn round_trip_every_cipher_and_pn_len() {
        for cipher in Cipher::ALL {
            let hp = HeaderKey::new(cipher, &vec![0x5a; cipher.key_len()]).unwrap();
            for (first, pn_offset) in [(0xc0u8, 18usize), (0x40, 9)] {
                for pn_len in 1..=4usize {
                    let mut p: Vec<u8> = (0..64u8).collect();
                    p[0] = first | (pn_len as u8 - 1);
                    let orig = p.clone();
                    hp.protect(&mut p, pn_offset).unwrap();
                    // Bytes past the packet number are never touched, nor the header form
                    // bit, the fixed bit (and for short headers the spin bit).
                    assert_eq!(p[pn_offset + pn_len..], orig[pn_offset + pn_len..]);
                    assert_eq!(p[1..pn_offset], orig[1..pn_offset]);
                    let fixed = if first & 0x80 != 0 { 0xf0 } else { 0xe0 };
                    assert_eq!(p[0] & fixed, orig[0] & fixed);
                    let f = hp.unprotect(&mut p, pn_offset).unwrap();
                    assert_eq!(p, orig, "{cipher:?} pn_len {pn_len}");
                    assert_eq!(f.len, pn_len);
                    let want = orig[pn_offset..pn_offset + pn_len]
                        .iter()
                        .fold(0u32, |a, b| (a << 8) | u32::from(*b));
                    assert_eq!(f.truncated, want);
                }
            }
        }
    }
}
