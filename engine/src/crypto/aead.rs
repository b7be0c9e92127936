//! AEAD packet protection (RFC 9001 §5.3) on aws-lc-rs: in-place seal and open, nonce = IV ^ pn.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::hkdf::HashAlg;
use super::CryptoError;

/// Length of the authentication tag of every QUIC AEAD (RFC 9001 §5.3).
pub const TAG_LEN: usize = 16;

/// Length of the AEAD nonce and of the packet protection IV.
pub const NONCE_LEN: usize = 12;

/// The AEAD algorithms QUIC packet protection uses (every TLS 1.3 suite but
/// TLS_AES_128_CCM_8_SHA256, which has no header protection scheme).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AEAD_AES_128_GCM (TLS_AES_128_GCM_SHA256); also protects Initial packets.
    Aes128Gcm,
    /// AEAD_AES_256_GCM (TLS_AES_256_GCM_SHA384).
    Aes256Gcm,
    /// AEAD_CHACHA20_POLY1305 (TLS_CHACHA20_POLY1305_SHA256).
    ChaCha20Poly1305,
}

/// Usage limits of one AEAD (RFC 9001 §6.6), in packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AeadLimits {
    /// Packets that may be sealed with one key before it must be retired by a key update.
    pub confidentiality: u64,
    /// Packets failing authentication, across all keys of a connection, before the connection
    /// must close with AEAD_LIMIT_REACHED.
    pub integrity: u64,
}

/// AES-GCM confidentiality limit: packets sealed per key (RFC 9001 §6.6).
pub const AES_GCM_CONFIDENTIALITY_LIMIT: u64 = 1 << 23;
/// AES-GCM integrity limit: forged packets per connection (RFC 9001 §6.6).
pub const AES_GCM_INTEGRITY_LIMIT: u64 = 1 << 52;
/// ChaCha20-Poly1305 confidentiality limit: none that a connection can reach (RFC 9001 §6.6
/// puts it above 2^62 packets), so `u64::MAX`.
pub const CHACHA20_CONFIDENTIALITY_LIMIT: u64 = u64::MAX;
/// ChaCha20-Poly1305 integrity limit: forged packets per connection (RFC 9001 §6.6).
pub const CHACHA20_INTEGRITY_LIMIT: u64 = 1 << 36;
/// AES-GCM confidentiality limit when no packet exceeds [`SMALL_PACKET_MAX`] bytes (RFC 9001
/// Appendix B.1.1).
pub const AES_GCM_SMALL_PACKET_CONFIDENTIALITY_LIMIT: u64 = 1 << 28;
/// AES-GCM integrity limit when no packet over [`SMALL_PACKET_MAX`] bytes is ever opened (RFC
/// 9001 Appendix B.1.2).
pub const AES_GCM_SMALL_PACKET_INTEGRITY_LIMIT: u64 = 1 << 57;

/// Largest packet size for which the higher "small packet" limits of RFC 9001 Appendix B apply.
pub const SMALL_PACKET_MAX: usize = 1 << 11;

impl Cipher {
    /// Every cipher, in this endpoint's default order of preference (AES-128-GCM first: it is
    /// the fastest with AES-NI/VAES and the one Initial packets use anyway).
    pub const ALL: [Cipher; 3] = [Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    /// AEAD key length in bytes (also the header protection key length).
    pub const fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => 32,
        }
    }

    /// The hash of the TLS 1.3 suite this AEAD belongs to.
    pub const fn hash(self) -> HashAlg {
        match self {
            Cipher::Aes256Gcm => HashAlg::Sha384,
            Cipher::Aes128Gcm | Cipher::ChaCha20Poly1305 => HashAlg::Sha256,
        }
    }

    /// The TLS 1.3 cipher suite this AEAD belongs to.
    pub const fn tls_suite(self) -> rustls::CipherSuite {
        match self {
            Cipher::Aes128Gcm => rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            Cipher::Aes256Gcm => rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            Cipher::ChaCha20Poly1305 => rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        }
    }

    /// The AEAD for a TLS 1.3 cipher suite, if QUIC can use it.
    pub fn from_tls_suite(suite: rustls::CipherSuite) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.tls_suite() == suite)
    }

    pub(crate) fn aead_alg(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
    //# For AEAD_AES_128_GCM and AEAD_AES_256_GCM, the confidentiality limit
    //# is 2^23 encrypted packets; see Appendix B.1.  For
    //# AEAD_CHACHA20_POLY1305, the confidentiality limit is greater than the
    //# number of possible packets (2^62) and so can be disregarded.
    //
    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
    //# For AEAD_AES_128_GCM and AEAD_AES_256_GCM, the integrity limit is
    //# 2^52 invalid packets; see Appendix B.1.  For AEAD_CHACHA20_POLY1305,
    //# the integrity limit is 2^36 invalid packets; see [AEBounds].
    /// The RFC 9001 §6.6 limits, valid for packets of any size (up to 2^16 bytes).
    pub const fn limits(self) -> AeadLimits {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes256Gcm => AeadLimits {
                confidentiality: AES_GCM_CONFIDENTIALITY_LIMIT,
                integrity: AES_GCM_INTEGRITY_LIMIT,
            },
            Cipher::ChaCha20Poly1305 => AeadLimits {
                confidentiality: CHACHA20_CONFIDENTIALITY_LIMIT,
                integrity: CHACHA20_INTEGRITY_LIMIT,
            },
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.6
    //# Endpoints that limit the size of packets MAY use higher
    //# confidentiality and integrity limits; see Appendix B for details.
    /// The limits for an endpoint that never seals nor attempts to open a packet larger than
    /// `max_packet_size` bytes: with at most [`SMALL_PACKET_MAX`] bytes AES-GCM may seal 2^28
    /// packets per key and reject 2^57 forgeries (RFC 9001 Appendix B.1); otherwise
    /// [`Cipher::limits`].
    pub const fn limits_for_max_packet_size(self, max_packet_size: usize) -> AeadLimits {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes256Gcm if max_packet_size <= SMALL_PACKET_MAX => {
                AeadLimits {
                    confidentiality: AES_GCM_SMALL_PACKET_CONFIDENTIALITY_LIMIT,
                    integrity: AES_GCM_SMALL_PACKET_INTEGRITY_LIMIT,
                }
            }
            _ => self.limits(),
        }
    }
}

/// One direction's AEAD packet protection key and IV: the concrete aws-lc-rs implementation
/// behind every [`super::PacketKey`], at every encryption level.
pub struct AeadKey {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    cipher: Cipher,
}

impl AeadKey {
    /// A key for `cipher` from raw key bytes (`cipher.key_len()` long) and a 12-byte IV.
    pub fn new(cipher: Cipher, key: &[u8], iv: &[u8]) -> Result<Self, CryptoError> {
        let iv: [u8; NONCE_LEN] = iv.try_into().map_err(|_| CryptoError::InvalidKeyLength)?;
        if key.len() != cipher.key_len() {
            return Err(CryptoError::InvalidKeyLength);
        }
        let key =
            UnboundKey::new(cipher.aead_alg(), key).map_err(|_| CryptoError::InvalidKeyLength)?;
        Ok(Self { key: LessSafeKey::new(key), iv, cipher })
    }

    /// The AEAD.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.3
    //# The 62 bits of the
    //# reconstructed QUIC packet number in network byte order are left-
    //# padded with zeros to the size of the IV.  The exclusive OR of the
    //# padded packet number and the IV forms the AEAD nonce.
    /// The nonce for packet number `pn`.
    #[inline]
    pub fn nonce(&self, pn: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, p) in nonce[NONCE_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        nonce
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.3
    //# The associated data, A, for the AEAD is the contents of the QUIC
    //# header, starting from the first byte of either the short or long
    //# header, up to and including the unprotected packet number.
    /// Encrypts `payload` in place with `header` as associated data; returns the tag.
    #[inline]
    pub fn seal_separate_tag(
        &self,
        pn: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let nonce = Nonce::assume_unique_for_key(self.nonce(pn));
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), payload)
            .map_err(|_| CryptoError::EncryptFailed)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `payload_and_tag` in place with `header` as associated data; returns the
    /// plaintext length (the plaintext is `payload_and_tag[..len]`).
    #[inline]
    pub fn open(
        &self,
        pn: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if payload_and_tag.len() < TAG_LEN {
            return Err(CryptoError::PacketTooShort);
        }
        let nonce = Nonce::assume_unique_for_key(self.nonce(pn));
        self.key
            .open_in_place(nonce, Aad::from(header), payload_and_tag)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError::DecryptFailed)
    }
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AeadKey({:?}, ..)", self.cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_lengths() {
        assert_eq!(Cipher::Aes128Gcm.limits().confidentiality, 1 << 23);
        assert_eq!(Cipher::Aes256Gcm.limits().integrity, 1 << 52);
        assert_eq!(Cipher::ChaCha20Poly1305.limits().integrity, 1 << 36);
        assert_eq!(Cipher::Aes128Gcm.limits_for_max_packet_size(1500).confidentiality, 1 << 28);
        assert_eq!(Cipher::Aes128Gcm.limits_for_max_packet_size(9000), Cipher::Aes128Gcm.limits());
        assert_eq!(
            Cipher::ChaCha20Poly1305.limits_for_max_packet_size(1200),
            Cipher::ChaCha20Poly1305.limits()
        );
        assert_eq!(
            Cipher::from_tls_suite(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
            Some(Cipher::Aes256Gcm)
        );
        assert_eq!(Cipher::from_tls_suite(rustls::CipherSuite::TLS13_AES_128_CCM_8_SHA256), None);
        assert!(AeadKey::new(Cipher::Aes128Gcm, &[0; 32], &[0; 12]).is_err());
        assert!(AeadKey::new(Cipher::Aes128Gcm, &[0; 16], &[0; 11]).is_err());
    }

    #[test]
    fn open_rejects_short_input_and_tampering() {
        let k = AeadKey::new(Cipher::ChaCha20Poly1305, &[3; 32], &[9; 12]).unwrap();
        assert_eq!(k.open(1, b"hdr", &mut [0u8; 15]), Err(CryptoError::PacketTooShort));
        let mut buf = *b"hello, world";
        let tag = k.seal_separate_tag(7, b"hdr", &mut buf).unwrap();
        let mut ct = buf.to_vec();
        ct.extend_from_slice(&tag);
        let mut ok = ct.clone();
        assert_eq!(k.open(7, b"hdr", &mut ok), Ok(12));
        assert_eq!(&ok[..12], b"hello, world");
        assert_eq!(k.open(8, b"hdr", &mut ct.clone()), Err(CryptoError::DecryptFailed));
        assert_eq!(k.open(7, b"hdR", &mut ct.clone()), Err(CryptoError::DecryptFailed));
        ct[3] ^= 1;
        assert_eq!(k.open(7, b"hdr", &mut ct), Err(CryptoError::DecryptFailed));
    }
}
