//! The rustls crypto provider: aws-lc-rs TLS 1.3 suites whose QUIC keys are this crate's types.
//!
//! rustls hands QUIC keys out as `Box<dyn rustls::quic::PacketKey>` built by the suite's
//! `quic::Algorithm`. Our suites carry [`QuicAlgorithm`], so every key rustls builds (Handshake,
//! 0-RTT, 1-RTT and every key-update generation) is an [`AeadKey`] / [`HeaderProtector`]: the
//! same in-place code that protects Initial packets and that the RFC test vectors check.

use std::sync::Arc;

use rustls::crypto::cipher::{AeadKey as RustlsAeadKey, Iv};
use rustls::crypto::tls13::Hkdf;
use rustls::crypto::CryptoProvider;
use rustls::quic;
use rustls::{CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};

use super::aead::{AeadKey, Cipher, TAG_LEN};
use super::header::HeaderProtector;
use super::hmac::{HKDF_SHA256, HKDF_SHA384};

/// rustls's QUIC key factory for one AEAD, producing this crate's key types.
#[derive(Debug)]
pub struct QuicAlgorithm(Cipher);

static ALG_AES_128_GCM: QuicAlgorithm = QuicAlgorithm(Cipher::Aes128Gcm);
static ALG_AES_256_GCM: QuicAlgorithm = QuicAlgorithm(Cipher::Aes256Gcm);
static ALG_CHACHA20: QuicAlgorithm = QuicAlgorithm(Cipher::ChaCha20Poly1305);

impl quic::Algorithm for QuicAlgorithm {
    fn packet_key(&self, key: RustlsAeadKey, iv: Iv) -> Box<dyn quic::PacketKey> {
        // rustls derives exactly `aead_key_len()` key bytes and a 12-byte IV, so this cannot
        // fail (not peer input: a failure would be a bug in the key schedule).
        Box::new(AeadKey::new(self.0, key.as_ref(), iv.as_ref()).expect("rustls key length"))
    }

    fn header_protection_key(&self, key: RustlsAeadKey) -> Box<dyn quic::HeaderProtectionKey> {
        Box::new(HeaderProtector::new(self.0, key.as_ref()).expect("rustls key length"))
    }

    fn aead_key_len(&self) -> usize {
        self.0.key_len()
    }
}

impl quic::PacketKey for AeadKey {
    fn encrypt_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<quic::Tag, rustls::Error> {
        let tag = self
            .seal_separate_tag(packet_number, header, payload)
            .map_err(|_| rustls::Error::EncryptError)?;
        Ok(quic::Tag::from(&tag[..]))
    }

    fn decrypt_in_place<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a [u8], rustls::Error> {
        let n =
            self.open(packet_number, header, payload).map_err(|_| rustls::Error::DecryptError)?;
        Ok(&payload[..n])
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn confidentiality_limit(&self) -> u64 {
        self.cipher().limits().confidentiality
    }

    fn integrity_limit(&self) -> u64 {
        self.cipher().limits().integrity
    }
}

impl quic::HeaderProtectionKey for HeaderProtector {
    fn encrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), rustls::Error> {
        self.xor_in_place(sample, first, packet_number, false).map_err(|_| {
            rustls::Error::General("header protection: bad sample or packet number".into())
        })
    }

    fn decrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), rustls::Error> {
        self.xor_in_place(sample, first, packet_number, true).map_err(|_| {
            rustls::Error::General("header protection: bad sample or packet number".into())
        })
    }

    fn sample_len(&self) -> usize {
        super::header::SAMPLE_LEN
    }
}

/// The `&'static Tls13CipherSuite` of rustls's aws-lc-rs provider for `suite`.
const fn aws_lc_suite(suite: SupportedCipherSuite) -> &'static Tls13CipherSuite {
    match suite {
        SupportedCipherSuite::Tls13(s) => s,
        // Evaluated at compile time: a TLS 1.2 suite here fails the build.
        SupportedCipherSuite::Tls12(_) => panic!("not a TLS 1.3 suite"),
    }
}

/// rustls's aws-lc-rs suite with our QUIC algorithm and our HKDF (the same function on
/// precomputed HMAC keys: [`super::hmac`]) swapped in (hash and the TLS record AEAD stay
/// rustls's own; QUIC never uses the latter).
const fn with_quic(
    base: &'static Tls13CipherSuite,
    hkdf: &'static dyn Hkdf,
    quic: &'static QuicAlgorithm,
) -> Tls13CipherSuite {
    Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: base.common.suite,
            hash_provider: base.common.hash_provider,
            confidentiality_limit: base.common.confidentiality_limit,
        },
        hkdf_provider: hkdf,
        aead_alg: base.aead_alg,
        quic: Some(quic),
    }
}

static SUITE_AES_128_GCM: Tls13CipherSuite = with_quic(
    aws_lc_suite(rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256),
    &HKDF_SHA256,
    &ALG_AES_128_GCM,
);
static SUITE_AES_256_GCM: Tls13CipherSuite = with_quic(
    aws_lc_suite(rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384),
    &HKDF_SHA384,
    &ALG_AES_256_GCM,
);
static SUITE_CHACHA20: Tls13CipherSuite = with_quic(
    aws_lc_suite(rustls::crypto::aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256),
    &HKDF_SHA256,
    &ALG_CHACHA20,
);

/// The TLS 1.3 cipher suite for `cipher`, with this crate's QUIC key types.
pub fn tls13_suite(cipher: Cipher) -> SupportedCipherSuite {
    SupportedCipherSuite::Tls13(match cipher {
        Cipher::Aes128Gcm => &SUITE_AES_128_GCM,
        Cipher::Aes256Gcm => &SUITE_AES_256_GCM,
        Cipher::ChaCha20Poly1305 => &SUITE_CHACHA20,
    })
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-5.3
//# A cipher suite MUST NOT be
//# negotiated unless a header protection scheme is defined for the
//# cipher suite.
/// A rustls crypto provider on aws-lc-rs offering exactly `ciphers` (TLS 1.3 only, in that order
/// of preference), whose QUIC keys are this crate's. Key exchange groups, signature algorithms,
/// randomness and key loading are rustls's aws-lc-rs defaults (key exchange: X25519, P-256,
/// P-384, then X25519MLKEM768; the hybrid is last because rustls's `prefer-post-quantum` feature
/// is off in this workspace, which keeps the ClientHello within one Initial packet).
pub fn crypto_provider(ciphers: &[Cipher]) -> CryptoProvider {
    CryptoProvider {
        cipher_suites: ciphers.iter().map(|c| tls13_suite(*c)).collect(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    }
}

/// [`crypto_provider`] behind an `Arc`, as rustls configs take it.
pub fn crypto_provider_arc(ciphers: &[Cipher]) -> Arc<CryptoProvider> {
    Arc::new(crypto_provider(ciphers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_carry_our_algorithm() {
        let p = crypto_provider(&Cipher::ALL);
        assert_eq!(p.cipher_suites.len(), 3);
        for (s, c) in p.cipher_suites.iter().zip(Cipher::ALL) {
            assert_eq!(s.suite(), c.tls_suite());
            let t = s.tls13().unwrap();
            assert_eq!(t.quic.unwrap().aead_key_len(), c.key_len());
        }
        // The provider is usable by rustls (the `quic` field makes the suites QUIC-capable).
        assert!(p.kx_groups.len() >= 2);
    }
}
