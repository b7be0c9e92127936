//! HKDF-Extract and TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1) on aws-lc-rs, plus QUIC's labels.

use aws_lc_rs::hmac as lc;

use super::{CryptoError, Version};

/// Longest secret we handle: the output of SHA-384.
pub const MAX_SECRET_LEN: usize = 48;

/// Longest label (without the "tls13 " prefix) [`hkdf_expand_label`] accepts.
const MAX_LABEL_LEN: usize = 32;

/// Longest context [`hkdf_expand_label`] accepts (QUIC always uses an empty one).
const MAX_CONTEXT_LEN: usize = 64;

/// Size of the serialized `HkdfLabel` buffer.
const MAX_INFO_LEN: usize = 2 + 1 + 6 + MAX_LABEL_LEN + 1 + MAX_CONTEXT_LEN;

/// The hash function of a TLS 1.3 cipher suite, used by HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-256 (TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256, Initial secrets).
    Sha256,
    /// SHA-384 (TLS_AES_256_GCM_SHA384).
    Sha384,
}

impl HashAlg {
    /// Output length in bytes (the `Hash.length` of RFC 8446).
    pub const fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }

    fn hmac(self) -> lc::Algorithm {
        match self {
            HashAlg::Sha256 => lc::HMAC_SHA256,
            HashAlg::Sha384 => lc::HMAC_SHA384,
        }
    }
}

/// A traffic secret (32 or 48 bytes) and the hash it belongs to, stored inline.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; MAX_SECRET_LEN],
    hash: HashAlg,
}

impl Secret {
    /// Wraps `secret`, which must be exactly `hash.output_len()` bytes.
    pub fn new(hash: HashAlg, secret: &[u8]) -> Result<Self, CryptoError> {
        if secret.len() != hash.output_len() {
            return Err(CryptoError::InvalidKeyLength);
        }
        let mut bytes = [0; MAX_SECRET_LEN];
        bytes[..secret.len()].copy_from_slice(secret);
        Ok(Self { bytes, hash })
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.hash.output_len()]
    }

    /// The hash function.
    pub fn hash(&self) -> HashAlg {
        self.hash
    }

    /// `HKDF-Expand-Label(self, label, "", out.len())`.
    pub fn expand_label(&self, label: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        self.expander().expand_label(label, &[], out)
    }

    /// This secret as an [`Expander`], for several labels from one HMAC set-up.
    pub(crate) fn expander(&self) -> Expander {
        Expander::new(self.hash, self.as_bytes())
    }

    /// `HKDF-Expand-Label(self, label, "", Hash.length)` as a new secret of the same hash.
    pub fn derive(&self, label: &[u8]) -> Result<Secret, CryptoError> {
        let mut next = Secret { bytes: [0; MAX_SECRET_LEN], hash: self.hash };
        let n = self.hash.output_len();
        self.expand_label(label, &mut next.bytes[..n])?;
        Ok(next)
    }

    //= https://www.rfc-editor.org/rfc/rfc9001#section-6.1
    //# The endpoint creates a new write secret from the existing write
    //# secret as performed in Section 7.2 of [TLS13].  This uses the KDF
    //# function provided by TLS with a label of "quic ku".
    /// The next-generation secret for a key update: `HKDF-Expand-Label(self, "quic ku", "",
    /// Hash.length)` ("quicv2 ku" for QUIC v2).
    pub fn next_generation(&self, version: Version) -> Result<Secret, CryptoError> {
        self.derive(version.labels().ku)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Secret({:?}, ..)", self.hash)
    }
}

/// The HKDF labels a QUIC version uses to derive packet protection keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    /// AEAD key label ("quic key").
    pub key: &'static [u8],
    /// AEAD IV label ("quic iv").
    pub iv: &'static [u8],
    /// Header protection key label ("quic hp").
    pub hp: &'static [u8],
    /// Key update label ("quic ku").
    pub ku: &'static [u8],
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-5.1
//# The current encryption level secret and the label "quic key" are
//# input to the KDF to produce the AEAD key; the label "quic iv" is used
//# to derive the Initialization Vector (IV); see Section 5.3.  The
//# header protection key uses the "quic hp" label; see Section 5.4.
/// QUIC v1 labels.
pub const LABELS_V1: Labels =
    Labels { key: b"quic key", iv: b"quic iv", hp: b"quic hp", ku: b"quic ku" };

//= https://www.rfc-editor.org/rfc/rfc9369#section-3.3.2
//# The labels used in [QUIC-TLS] to derive packet protection keys
//# (Section 5.1), header protection keys (Section 5.4), Retry Integrity
//# Tag keys (Section 5.8), and key updates (Section 6.1) change from
//# "quic key" to "quicv2 key", from "quic iv" to "quicv2 iv", from "quic
//# hp" to "quicv2 hp", and from "quic ku" to "quicv2 ku" to meet the
//# guidance for new versions in Section 9.6 of that document.
/// QUIC v2 labels.
pub const LABELS_V2: Labels =
    Labels { key: b"quicv2 key", iv: b"quicv2 iv", hp: b"quicv2 hp", ku: b"quicv2 ku" };

/// The serialized `HkdfLabel` structure of RFC 8446 §7.1, in a stack buffer: returns the buffer
/// and the number of bytes used.
pub(crate) fn hkdf_label(
    out_len: usize,
    label: &[u8],
    context: &[u8],
) -> Result<([u8; MAX_INFO_LEN], usize), CryptoError> {
    let out_len = u16::try_from(out_len).map_err(|_| CryptoError::InvalidKeyLength)?;
    if label.len() > MAX_LABEL_LEN || context.len() > MAX_CONTEXT_LEN {
        return Err(CryptoError::InvalidKeyLength);
    }
    let mut info = [0u8; MAX_INFO_LEN];
    let mut n = 0;
    for part in [
        &out_len.to_be_bytes()[..],
        &[(6 + label.len()) as u8],
        b"tls13 ",
        label,
        &[context.len() as u8],
        context,
    ] {
        info[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    Ok((info, n))
}

/// An HKDF pseudorandom key ready for `HKDF-Expand-Label`, as an HMAC key whose pad states are
/// hashed once (see [`super::hmac`]): a secret expanded for a key, an IV and a header protection
/// key pays for one HMAC set-up, not three.
pub(crate) struct Expander {
    key: lc::Key,
    hash: HashAlg,
}

impl Expander {
    /// The expander for pseudorandom key `prk` (a traffic secret or an HKDF-Extract output).
    pub(crate) fn new(hash: HashAlg, prk: &[u8]) -> Self {
        Self { key: lc::Key::new(hash.hmac(), prk), hash }
    }

    /// `HKDF-Expand-Label(prk, label, context, out.len())` (RFC 8446 §7.1, RFC 5869 §2.3).
    pub(crate) fn expand_label(
        &self,
        label: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        let hash_len = self.hash.output_len();
        if out.len() > 255 * hash_len {
            return Err(CryptoError::InvalidKeyLength);
        }
        let (info, n) = hkdf_label(out.len(), label, context)?;
        // T(i) = HMAC(PRK, T(i-1) | info | i), T(0) empty; the output is T(1) | T(2) | ...
        let mut prev = [0u8; MAX_SECRET_LEN];
        let mut prev_len = 0;
        for (i, chunk) in out.chunks_mut(hash_len).enumerate() {
            let mut ctx = lc::Context::with_key(&self.key);
            ctx.update(&prev[..prev_len]);
            ctx.update(&info[..n]);
            ctx.update(&[(i + 1) as u8]);
            let t = ctx.sign();
            prev[..hash_len].copy_from_slice(t.as_ref());
            prev_len = hash_len;
            chunk.copy_from_slice(&t.as_ref()[..chunk.len()]);
        }
        Ok(())
    }
}

/// TLS 1.3 `HKDF-Expand-Label(secret, label, context, out.len())` (RFC 8446 §7.1); `label` is
/// given without the "tls13 " prefix.
pub fn hkdf_expand_label(
    hash: HashAlg,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    // The secret is a pseudorandom key (a TLS traffic secret or an HKDF-Extract output): expanding
    // from it directly is what RFC 8446 specifies.
    Expander::new(hash, secret).expand_label(label, context, out)
}

/// `HKDF-Extract(salt, ikm)` = `HMAC(salt, ikm)` (RFC 5869 §2.2), ready for expansion.
pub(crate) fn hkdf_extract(hash: HashAlg, salt: &[u8], ikm: &[u8]) -> Expander {
    let prk = lc::sign(&lc::Key::new(hash.hmac(), salt), ikm);
    Expander::new(hash, prk.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::hex;

    //= https://www.rfc-editor.org/rfc/rfc9001#appendix-A.1
    //= type=test
    //# The labels generated during the execution of the HKDF-Expand-Label
    //# function (that is, HkdfLabel.label) and part of the value given to
    //# the HKDF-Expand function in order to produce its output are:
    #[test]
    fn hkdf_label_bytes_v1() {
        let cases: [(usize, &[u8], &str); 5] = [
            (32, b"client in", "00200f746c73313320636c69656e7420696e00"),
            (32, b"server in", "00200f746c7331332073657276657220696e00"),
            (16, b"quic key", "00100e746c7331332071756963206b657900"),
            (12, b"quic iv", "000c0d746c733133207175696320697600"),
            (16, b"quic hp", "00100d746c733133207175696320687000"),
        ];
        for (len, label, want) in cases {
            let (info, n) = hkdf_label(len, label, &[]).unwrap();
            assert_eq!(info[..n], hex(want)[..], "{}", String::from_utf8_lossy(label));
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9369#appendix-A.1
    //= type=test
    //# The labels generated during the execution of the HKDF-Expand-Label
    //# function (that is, HkdfLabel.label) and part of the value given to
    //# the HKDF-Expand function in order to produce its output are:
    #[test]
    fn hkdf_label_bytes_v2() {
        let cases: [(usize, &[u8], &str); 3] = [
            (16, LABELS_V2.key, "001010746c73313320717569637632206b657900"),
            (12, LABELS_V2.iv, "000c0f746c7331332071756963763220697600"),
            (16, LABELS_V2.hp, "00100f746c7331332071756963763220687000"),
        ];
        for (len, label, want) in cases {
            let (info, n) = hkdf_label(len, label, &[]).unwrap();
            assert_eq!(info[..n], hex(want)[..]);
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(Secret::new(HashAlg::Sha256, &[0; 31]), Err(CryptoError::InvalidKeyLength));
        assert!(Secret::new(HashAlg::Sha384, &[0; 48]).is_ok());
        let mut out = [0u8; 16];
        assert!(hkdf_expand_label(HashAlg::Sha256, &[1; 32], &[b'x'; 33], &[], &mut out).is_err());
        // More than 255 * HashLen bytes cannot be expanded.
        let mut big = vec![0u8; 255 * 32 + 1];
        assert!(hkdf_expand_label(HashAlg::Sha256, &[1; 32], b"quic key", &[], &mut big).is_err());
        assert_eq!(
            format!("{:?}", Secret::new(HashAlg::Sha256, &[7; 32]).unwrap()),
            "Secret(Sha256, ..)"
        );
    }
}
