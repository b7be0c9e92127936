//! HKDF for rustls built on aws-lc-rs HMAC keys whose padded-key state is computed once.
//!
//! rustls's aws-lc-rs provider expands every TLS 1.3 label with a one-shot `HKDF_expand`, which
//! starts a fresh HMAC (hashing the key's inner and outer pad blocks) on every call. A secret is
//! expanded several times (a QUIC traffic secret gives a key, an IV, a header protection key and
//! the next generation's secret), so a handshake pays about 120 HMAC set-ups for about 40 short
//! expansions. Here the expander holds an [`aws_lc_rs::hmac::Key`], whose pad states are hashed
//! once when the key is made; each expansion clones that state and hashes only its own blocks
//! (one inner and one outer block for a label). The output is HKDF's (RFC 5869), byte for byte:
//! rustls's generic [`HkdfUsingHmac`] does the HKDF arithmetic, this module only supplies HMAC.

use aws_lc_rs::hmac as lc;
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::HkdfUsingHmac;

/// HMAC on aws-lc-rs for one hash function.
#[derive(Debug)]
pub struct AwsLcHmac(lc::Algorithm);

/// HMAC-SHA256.
pub static HMAC_SHA256: AwsLcHmac = AwsLcHmac(lc::HMAC_SHA256);
/// HMAC-SHA384.
pub static HMAC_SHA384: AwsLcHmac = AwsLcHmac(lc::HMAC_SHA384);

/// HKDF-SHA256 for TLS 1.3 suites whose hash is SHA-256.
pub static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
/// HKDF-SHA384 for TLS_AES_256_GCM_SHA384.
pub static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);

impl Hmac for AwsLcHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        Box::new(PrecomputedKey(lc::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }

    fn fips(&self) -> bool {
        aws_lc_rs::try_fips_mode().is_ok()
    }
}

/// An HMAC key with its pad states already hashed.
struct PrecomputedKey(lc::Key);

impl Key for PrecomputedKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut ctx = lc::Context::with_key(&self.0);
        ctx.update(first);
        for m in middle {
            ctx.update(m);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::hex;
    use rustls::crypto::tls13::Hkdf;

    /// RFC 5869 Appendix A.1 (SHA-256, basic test case).
    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let expander = HKDF_SHA256.extract_from_secret(Some(&salt), &ikm);
        let mut okm = [0u8; 42];
        expander.expand_slice(&[&info], &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
                 34007208d5b887185865")
        );
    }

    /// The same output as aws-lc-rs's one-shot HKDF (what rustls's provider uses), for both
    /// hashes, several secrets, infos split across slices, and lengths up to three blocks.
    #[test]
    fn matches_one_shot_hkdf() {
        use aws_lc_rs::hkdf;
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        for (ours, theirs) in [(&HKDF_SHA256, hkdf::HKDF_SHA256), (&HKDF_SHA384, hkdf::HKDF_SHA384)]
        {
            for seed in 0u8..4 {
                let secret: Vec<u8> = (0..48).map(|i| i ^ seed.wrapping_mul(37)).collect();
                let salt: Vec<u8> = (0..20).map(|i| i + seed).collect();
                let info_a = [seed; 7];
                let info_b = b"tls13 quic key";
                for len in [12usize, 16, 32, 48, 100] {
                    let mut a = vec![0u8; len];
                    ours.extract_from_secret(Some(&salt), &secret)
                        .expand_slice(&[&info_a, info_b], &mut a)
                        .unwrap();
                    let mut b = vec![0u8; len];
                    hkdf::Salt::new(theirs, &salt)
                        .extract(&secret)
                        .expand(&[&info_a, info_b], Len(len))
                        .unwrap()
                        .fill(&mut b)
                        .unwrap();
                    assert_eq!(a, b, "seed {seed} len {len}");
                }
            }
        }
    }
}
