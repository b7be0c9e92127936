//! Stateless reset (RFC 9000 §10.3): tokens from a static key, reset datagrams, detection.
//!
//! Tokens are HMAC-SHA256(static key, connection ID) truncated to 16 octets: any server that
//! shares the key (from configuration) and receives a packet for a connection ID it issued can
//! reset that connection after losing its state. Sending is rate limited by a token bucket
//! driven by the caller's `now`.

use std::time::Instant;

use aws_lc_rs::{constant_time, hmac};
use rand::{Rng, RngCore};

use crate::cid::ResetToken;
use crate::packet::FIXED_BIT;

/// Length of a stateless reset token.
pub const RESET_TOKEN_LEN: usize = 16;

/// Smallest Stateless Reset: one octet with the two fixed bits, 38 unpredictable bits (so 5
/// octets before the token), then the token.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# For the Stateless Reset
//# to appear as a valid QUIC packet, the Unpredictable Bits field needs
//# to include at least 38 bits of data (or 5 bytes, less the two fixed
//# bits).
pub const MIN_STATELESS_RESET_LEN: usize = 5 + RESET_TOKEN_LEN;

/// Resets at least this long do not stand out from short-header packets by their size alone
/// (RFC 9000 §10.3.3: "smaller than 41 bytes might be identifiable").
pub const IDEAL_MIN_STATELESS_RESET_LEN: usize = 42;

/// Largest Stateless Reset sent, whatever the size of the packet that triggered it.
pub const MAX_STATELESS_RESET_LEN: usize = 1200;

/// Default burst of stateless resets a worker may send at once.
pub const DEFAULT_RESET_BURST: u32 = 64;
/// Default sustained rate of stateless resets per worker, per second.
pub const DEFAULT_RESETS_PER_SECOND: u32 = 64;

/// The static key stateless reset tokens are derived from. Servers that share it (through
/// configuration) compute the same token for the same connection ID.
#[derive(Clone)]
pub struct ResetKey {
    key: hmac::Key,
}

impl std::fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetKey(..)")
    }
}

impl ResetKey {
    /// A key from 32 secret octets, which must come from a cryptographically secure source.
    pub fn new(secret: &[u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// The stateless reset token of `cid`.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.2
    //# The stateless reset token MUST be difficult to guess.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.2
    //# An endpoint could use HMAC [RFC2104] (for
    //# example, HMAC(static_key, connection_id)) or the HMAC-based Key
    //# Derivation Function (HKDF) [RFC5869] (for example, using the static
    //# key as input keying material, with the connection ID as salt).  The
    //# output of this function is truncated to 16 bytes to produce the
    //# stateless reset token for that connection.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.2
    //# The same stateless reset token MUST NOT be used for multiple
    //# connection IDs.
    // Distinct IDs give distinct tokens except with HMAC-collision probability (2^-128).
    pub fn token(&self, cid: &[u8]) -> ResetToken {
        let tag = hmac::sign(&self.key, cid);
        let mut t = [0u8; RESET_TOKEN_LEN];
        t.copy_from_slice(&tag.as_ref()[..RESET_TOKEN_LEN]);
        ResetToken(t)
    }
}

/// Size of the Stateless Reset to send in answer to a `trigger_len`-octet datagram, or `None`
/// when the trigger is too small to answer: a reset must be smaller than its trigger and at
/// least [`MIN_STATELESS_RESET_LEN`] long, so triggers of 21 octets or less get nothing.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.3
//# An endpoint MUST ensure that every Stateless Reset that it sends is
//# smaller than the packet that triggered it, unless it maintains state
//# sufficient to prevent looping.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# An endpoint MUST NOT send a Stateless Reset that is three times or
//# more larger than the packet it receives to avoid being used for
//# amplification.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# An
//# endpoint that sends a Stateless Reset in response to a packet that is
//# 43 bytes or shorter SHOULD send a Stateless Reset that is one byte
//# shorter than the packet it responds to.
pub fn stateless_reset_len(trigger_len: usize, rng: &mut impl RngCore) -> Option<usize> {
    let max = trigger_len.checked_sub(1)?.min(MAX_STATELESS_RESET_LEN);
    if max < MIN_STATELESS_RESET_LEN {
        return None;
    }
    if trigger_len <= 43 || max <= IDEAL_MIN_STATELESS_RESET_LEN {
        return Some(max);
    }
    Some(rng.gen_range(IDEAL_MIN_STATELESS_RESET_LEN..=max))
}

/// A Stateless Reset answering a `trigger_len`-octet datagram: a short-header-looking first
/// octet, random octets, then `token`. `None` when the trigger is too small
/// ([`stateless_reset_len`]).
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# Endpoints MUST send Stateless Resets formatted as a packet with a
//# short header.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# The remainder of the first byte
//# and an arbitrary number of bytes following it are set to values that
//# SHOULD be indistinguishable from random.
pub fn stateless_reset(
    token: &ResetToken,
    trigger_len: usize,
    rng: &mut impl RngCore,
) -> Option<Vec<u8>> {
    let len = stateless_reset_len(trigger_len, rng)?;
    let mut out = vec![0u8; len];
    let split = len - RESET_TOKEN_LEN;
    rng.fill_bytes(&mut out[..split]);
    // Fixed Bits (2) = 1: header form 0 (short), fixed bit 1.
    out[0] = FIXED_BIT | (out[0] & 0x3f);
    out[split..].copy_from_slice(&token.0);
    Some(out)
}

/// The trailing 16 octets of `datagram` when it is long enough to be a Stateless Reset.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# Endpoints MUST discard packets that are too small to be valid QUIC
//# packets.
pub fn trailing_token(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.len() < MIN_STATELESS_RESET_LEN {
        return None;
    }
    Some(&datagram[datagram.len() - RESET_TOKEN_LEN..])
}

/// The value paired with the token that `datagram` ends in, if any: every candidate is
/// compared in constant time and all of them are compared, whichever matches.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
//# When comparing a datagram to stateless reset token values, endpoints
//# MUST perform the comparison without leaking information about the
//# value of the token.
//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//# However, endpoints MUST treat any packet ending in a
//# valid stateless reset token as a Stateless Reset, as other QUIC
//# versions might allow the use of a long header.
pub fn match_stateless_reset<'t, T: Copy + 't>(
    datagram: &[u8],
    candidates: impl IntoIterator<Item = &'t (ResetToken, T)>,
) -> Option<T> {
    let tail = trailing_token(datagram)?;
    let mut found = None;
    for (token, value) in candidates {
        if constant_time::verify_slices_are_equal(tail, &token.0).is_ok() && found.is_none() {
            found = Some(*value);
        }
    }
    found
}

/// A token bucket: `burst` sends at once, refilled at `per_second`, on the caller's clock.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    burst: u32,
    per_second: u32,
    /// Credit in billionths of a send.
    credit: u128,
    last: Option<Instant>,
}

const UNIT: u128 = 1_000_000_000;

impl RateLimiter {
    /// A full bucket of `burst` sends refilled at `per_second`. A burst of 0 never allows a
    /// send.
    pub fn new(burst: u32, per_second: u32) -> Self {
        Self { burst, per_second, credit: u128::from(burst) * UNIT, last: None }
    }

    /// Takes one send from the bucket at `now`; false when it is empty.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.3
    //# An endpoint can remember the number of Stateless Resets that it has
    //# sent and stop generating new Stateless Resets once a limit is
    //# reached.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let cap = u128::from(self.burst) * UNIT;
            let refill = elapsed.saturating_mul(u128::from(self.per_second));
            self.credit = self.credit.saturating_add(refill).min(cap);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.credit >= UNIT {
            self.credit -= UNIT;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use std::time::Duration;

    #[test]
    fn token_is_stable_and_key_dependent() {
        let a = ResetKey::new(&[1; 32]);
        let a2 = ResetKey::new(&[1; 32]);
        let b = ResetKey::new(&[2; 32]);
        let cid = [0xc0, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(a.token(&cid), a2.token(&cid), "same key, same token (another server)");
        assert_ne!(a.token(&cid), b.token(&cid), "key-dependent");
        assert_ne!(a.token(&cid), a.token(&cid[..7]), "CID-dependent");
        // HMAC-SHA256 of RFC 4231 test case 2 ("Jefe"), truncated: checks the construction.
        let jefe = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let full = hmac::sign(&jefe, b"what do ya want for nothing?");
        assert_eq!(&full.as_ref()[..4], &[0x5b, 0xdc, 0xc1, 0x46]);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.3
    //= type=test
    //# An endpoint MUST ensure that every Stateless Reset that it sends is
    //# smaller than the packet that triggered it, unless it maintains state
    //# sufficient to prevent looping.
    #[test]
    fn reset_sizes() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let token = ResetToken([0xee; 16]);
        for trigger in 0..=21 {
            assert_eq!(stateless_reset(&token, trigger, &mut rng), None, "{trigger}");
        }
        for trigger in 22..=43 {
            let r = stateless_reset(&token, trigger, &mut rng).unwrap();
            assert_eq!(r.len(), trigger - 1, "one byte shorter");
        }
        let mut seen = std::collections::HashSet::new();
        for trigger in (44..3000).step_by(7) {
            let r = stateless_reset(&token, trigger, &mut rng).unwrap();
            assert!(r.len() < trigger && r.len() >= IDEAL_MIN_STATELESS_RESET_LEN);
            assert!(r.len() <= MAX_STATELESS_RESET_LEN);
            assert_eq!(r[0] & 0xc0, 0x40, "short header, fixed bit set");
            assert_eq!(&r[r.len() - 16..], &token.0);
            seen.insert(r.len());
        }
        assert!(seen.len() > 50, "sizes vary");
    }

    #[test]
    fn detection() {
        let t1 = ResetToken([1; 16]);
        let t2 = ResetToken([2; 16]);
        let candidates = [(t1, 10usize), (t2, 20usize)];
        let mut d = vec![0x41; 30];
        d[14..].copy_from_slice(&t2.0);
        assert_eq!(match_stateless_reset(&d, &candidates), Some(20));
        d[29] ^= 1;
        assert_eq!(match_stateless_reset(&d, &candidates), None);
        // Too short to be a packet, even though it ends in the token.
        assert_eq!(match_stateless_reset(&t1.0, &candidates), None);
        let mut long = vec![0xc3; 1200];
        long[1184..].copy_from_slice(&t1.0);
        assert_eq!(match_stateless_reset(&long, &candidates), Some(10), "long header too");
    }

    #[test]
    fn rate_limiter() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut l = RateLimiter::new(3, 10);
        assert!((0..3).all(|_| l.try_acquire(t0)));
        assert!(!l.try_acquire(t0), "burst spent");
        assert!(!l.try_acquire(t0 + Duration::from_millis(50)));
        assert!(l.try_acquire(t0 + Duration::from_millis(100)), "one per 100 ms");
        assert!(!l.try_acquire(t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| l.try_acquire(later)).count(), 3);
        // Time going backwards neither refills nor panics.
        assert!(!l.try_acquire(t0));
        let mut off = RateLimiter::new(0, 1000);
        assert!(!off.try_acquire(later));
    }
}
