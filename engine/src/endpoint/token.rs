//! Address validation tokens (RFC 9000 §8.1.2-8.1.4): Retry and NEW_TOKEN tokens sealed with
//! AES-256-GCM under a static key that servers may share.
//!
//! Wire layout (`kind` is readable by anyone, as §8.1.3 allows, and authenticated):
//!
//! ```text
//! Token {
//!   Kind (8),                 // 1 = Retry, 2 = NEW_TOKEN; the AEAD's associated data
//!   Nonce (96),               // random, fresh for each token
//!   Sealed {                  // AES-256-GCM
//!     Issued (64),            // unix seconds
//!     Family (8), IP (32/128) // the client's IP address (IPv4-mapped IPv6 made canonical)
//!     [Port (16)]             // Retry only
//!     [ODCID Len (8), ODCID, Retry SCID Len (8), Retry SCID]  // Retry only
//!   },
//!   Tag (128),
//! }
//! ```
//!
//! Wall time: the core never reads the clock, so a [`WallClock`] built by the caller from one
//! (`Instant`, unix seconds) pair turns each `now: Instant` into unix seconds. Tokens therefore
//! survive restarts and validate on any server holding the same key whose clock agrees within
//! [`MAX_CLOCK_SKEW`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rand::RngCore;

use crate::cid::{ConnectionId, MAX_CID_LEN};
use crate::coding::{Reader, Writer};

/// Default lifetime of a Retry token.
pub const DEFAULT_RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// Default lifetime of a NEW_TOKEN token.
pub const DEFAULT_NEW_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How far in the future an issue time may lie (clocks of servers sharing a key differ).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10);

const KIND_RETRY: u8 = 1;
const KIND_NEW_TOKEN: u8 = 2;
const TAG_LEN: usize = 16;
/// Longest token this module writes (Retry with an IPv6 address and two 20-octet IDs).
pub const MAX_TOKEN_LEN: usize = 1 + NONCE_LEN + 8 + 1 + 16 + 2 + 2 * (1 + MAX_CID_LEN) + TAG_LEN;

/// Unix time from the caller's monotonic clock: `base_unix + (now - base_instant)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    base_instant: Instant,
    base_unix_secs: u64,
}

impl WallClock {
    /// The caller read both clocks at the same moment: `unix_secs` at `instant`.
    pub fn new(instant: Instant, unix_secs: u64) -> Self {
        Self { base_instant: instant, base_unix_secs: unix_secs }
    }

    /// Unix seconds at `now` (an `Instant` before the base counts as the base).
    pub fn unix_secs(&self, now: Instant) -> u64 {
        self.base_unix_secs
            .saturating_add(now.saturating_duration_since(self.base_instant).as_secs())
    }
}

/// The AES-256-GCM key address validation tokens are sealed with. Cloning shares the key.
#[derive(Clone)]
pub struct TokenKey {
    key: Arc<LessSafeKey>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// How long tokens stay valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// Retry tokens: short, since clients echo them at once. Default 10 s.
    pub retry: Duration,
    /// NEW_TOKEN tokens: used on later connections. Default 24 h.
    pub new_token: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self { retry: DEFAULT_RETRY_TOKEN_LIFETIME, new_token: DEFAULT_NEW_TOKEN_LIFETIME }
    }
}

/// What a server's router did with the tokens of new clients' Initials, and the Retries it
/// sent (each Initial counted once, retransmissions included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCounters {
    /// Retry packets sent.
    pub retries: u64,
    /// Initials whose Retry token validated the address.
    pub retry_tokens_accepted: u64,
    /// Initials whose NEW_TOKEN token validated the address (no Retry, no
    /// anti-amplification limit).
    pub new_tokens_accepted: u64,
    /// Initials whose token was ignored as if absent (expired, another address, another key,
    /// modified, not ours): the client was treated as unvalidated.
    pub tokens_ignored: u64,
    /// Initials refused with INVALID_TOKEN: an authentic Retry token that was expired or used
    /// from another address or connection ID.
    pub invalid_retry_tokens: u64,
}

/// Why a token did not validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not sealed under this key, or modified.
    #[error("token does not authenticate")]
    Unauthentic,
    /// The first octet is not a kind this server writes.
    #[error("unknown token kind")]
    UnknownKind,
    /// Authentic but its contents do not parse (cannot happen with tokens written here).
    #[error("malformed token contents")]
    Malformed,
    /// Older than its lifetime, or issued further in the future than the allowed clock skew.
    #[error("token expired")]
    Expired,
    /// Issued to another client address (IP and port for Retry, IP for NEW_TOKEN).
    #[error("token issued to another address")]
    AddressMismatch,
    /// A Retry token in an Initial whose Destination Connection ID is not the Retry's Source
    /// Connection ID.
    #[error("Retry token used with another connection ID")]
    CidMismatch,
}

/// The outcome of checking the token of a client Initial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenValidation {
    /// The Initial carried no token.
    None,
    /// A valid Retry token: the address is validated.
    Retry {
        /// The Destination Connection ID of the client's first Initial.
        orig_dst_cid: ConnectionId,
        /// The Source Connection ID of the Retry (the Initial's Destination Connection ID).
        retry_src_cid: ConnectionId,
    },
    /// A valid NEW_TOKEN token: the address is validated.
    NewToken,
    /// A token that claims to come from a Retry but is not valid: close with INVALID_TOKEN
    /// (RFC 9000 §8.1.2), since the client will not accept a second Retry.
    InvalidRetry(TokenError),
    /// Any other unusable token (a NEW_TOKEN token expired, from another address or another
    /// key; an unknown kind): proceed as if there were no token (RFC 9000 §8.1.3).
    Ignored(TokenError),
}

impl TokenKey {
    /// A key from 32 secret octets, which must come from a cryptographically secure source.
    /// Servers that share them accept each other's tokens.
    pub fn new(secret: &[u8; 32]) -> Self {
        // A 32-octet key always fits AES-256-GCM.
        let key = UnboundKey::new(&AES_256_GCM, secret).expect("32-octet AES-256 key");
        Self { key: Arc::new(LessSafeKey::new(key)) }
    }

    /// A Retry token for a client at `remote` whose first Initial had Destination Connection
    /// ID `orig_dst_cid`, answered by a Retry with Source Connection ID `retry_src_cid`.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
    //# Tokens
    //# sent in Retry packets SHOULD include information that allows the
    //# server to verify that the source IP address and port in client
    //# packets remain constant.
    pub fn seal_retry(
        &self,
        rng: &mut impl RngCore,
        remote: SocketAddr,
        orig_dst_cid: &ConnectionId,
        retry_src_cid: &ConnectionId,
        issued_unix_secs: u64,
    ) -> Vec<u8> {
        self.seal(rng, KIND_RETRY, |w| {
            w.put_u64(issued_unix_secs)?;
            put_ip(w, remote.ip())?;
            w.put_u16(remote.port())?;
            w.put_u8(orig_dst_cid.len() as u8)?;
            w.put_slice(orig_dst_cid)?;
            w.put_u8(retry_src_cid.len() as u8)?;
            w.put_slice(retry_src_cid)
        })
    }

    /// A NEW_TOKEN token for a client at `ip`. Each one is unique (random nonce) and reveals
    /// nothing to observers (sealed).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
    //# Tokens sent in NEW_TOKEN frames MUST include information that allows
    //# the server to verify that the client IP address has not changed from
    //# when the token was issued.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
    //# A token issued with NEW_TOKEN MUST NOT include information that would
    //# allow values to be linked by an observer to the connection on which
    //# it was issued.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
    //# A server MUST ensure that every NEW_TOKEN frame it sends
    //# is unique across all clients, with the exception of those sent to
    //# repair losses of previously sent NEW_TOKEN frames.
    pub fn seal_new_token(
        &self,
        rng: &mut impl RngCore,
        ip: IpAddr,
        issued_unix_secs: u64,
    ) -> Vec<u8> {
        self.seal(rng, KIND_NEW_TOKEN, |w| {
            w.put_u64(issued_unix_secs)?;
            put_ip(w, ip)
        })
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
    //# An address validation token MUST be difficult to guess.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
    //# For this design to work,
    //# the token MUST be covered by integrity protection against
    //# modification or falsification by clients.
    fn seal(
        &self,
        rng: &mut impl RngCore,
        kind: u8,
        body: impl FnOnce(&mut Writer<'_>) -> Result<(), crate::coding::BufferFull>,
    ) -> Vec<u8> {
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let plain_len = {
            let mut w = Writer::new(&mut buf);
            // MAX_TOKEN_LEN holds the largest body: writing cannot run out of room.
            body(&mut w).expect("token body fits");
            w.len()
        };
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain_len + TAG_LEN);
        out.push(kind);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf[..plain_len]);
        let mut sealed = out.split_off(1 + NONCE_LEN);
        // Sealing fails only for inputs of gigabytes.
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([kind]),
                &mut sealed,
            )
            .expect("AES-GCM seal of a short token");
        out.extend_from_slice(&sealed);
        out
    }

    /// Checks the token of a client Initial received from `remote` with Destination Connection
    /// ID `dst_cid`, at unix time `now_unix_secs`.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
    //# When a server receives an Initial packet with an address validation
    //# token, it MUST attempt to validate the token, unless it has already
    //# completed address validation.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
    //# To protect against such attacks, servers MUST ensure that
    //# replay of tokens is prevented or limited.
    // Replay is limited, not prevented: every token is bound to the client's IP address (and
    // port, for Retry) and expires; Retry tokens after seconds. NEW_TOKEN tokens are not
    // single-use (RFC 9000 §8.1.4 SHOULD NOT accept multiple times: not done, it needs shared
    // state across servers).
    pub fn validate(
        &self,
        token: &[u8],
        remote: SocketAddr,
        dst_cid: &ConnectionId,
        now_unix_secs: u64,
        lifetimes: &TokenLifetimes,
    ) -> TokenValidation {
        let Some(&kind) = token.first() else { return TokenValidation::None };
        let fail = |e| match kind {
            KIND_RETRY => TokenValidation::InvalidRetry(e),
            _ => TokenValidation::Ignored(e),
        };
        if kind != KIND_RETRY && kind != KIND_NEW_TOKEN {
            return TokenValidation::Ignored(TokenError::UnknownKind);
        }
        if token.len() < 1 + NONCE_LEN + TAG_LEN || token.len() > MAX_TOKEN_LEN {
            return fail(TokenError::Unauthentic);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&token[1..1 + NONCE_LEN]);
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let sealed = &mut buf[..token.len() - 1 - NONCE_LEN];
        sealed.copy_from_slice(&token[1 + NONCE_LEN..]);
        let nonce = Nonce::assume_unique_for_key(nonce);
        let Ok(plain) = self.key.open_in_place(nonce, Aad::from([kind]), sealed) else {
            return fail(TokenError::Unauthentic);
        };
        let mut r = Reader::new(plain);
        let parsed = read_body(&mut r, kind);
        let Some((issued, ip, retry)) = parsed.filter(|_| r.is_empty()) else {
            return fail(TokenError::Malformed);
        };
        let lifetime = if kind == KIND_RETRY { lifetimes.retry } else { lifetimes.new_token };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
        //# Thus, a token SHOULD have an
        //# expiration time, which could be either an explicit expiration time or
        //# an issued timestamp that can be used to dynamically calculate the
        //# expiration time.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
        //# Servers SHOULD ensure that
        //# tokens sent in Retry packets are only accepted for a short time, as
        //# they are returned immediately by clients.
        let expired = now_unix_secs > issued.saturating_add(lifetime.as_secs())
            || issued > now_unix_secs.saturating_add(MAX_CLOCK_SKEW.as_secs());
        if expired {
            return fail(TokenError::Expired);
        }
        // A NEW_TOKEN token from another IP address validates nothing, so the connection keeps
        // the anti-amplification limit.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
        //# If the client IP address has changed, the
        //# server MUST adhere to the anti-amplification limit; see Section 8.
        if ip != remote.ip().to_canonical() {
            return fail(TokenError::AddressMismatch);
        }
        match retry {
            None => TokenValidation::NewToken,
            Some((port, _, _)) if port != remote.port() => fail(TokenError::AddressMismatch),
            Some((_, _, retry_src_cid)) if retry_src_cid != *dst_cid => {
                fail(TokenError::CidMismatch)
            }
            Some((_, orig_dst_cid, retry_src_cid)) => {
                TokenValidation::Retry { orig_dst_cid, retry_src_cid }
            }
        }
    }
}

type RetryFields = (u16, ConnectionId, ConnectionId);

fn read_body(r: &mut Reader<'_>, kind: u8) -> Option<(u64, IpAddr, Option<RetryFields>)> {
    let issued = r.u64().ok()?;
    let ip = match r.u8().ok()? {
        4 => IpAddr::from(r.array::<4>().ok()?),
        6 => IpAddr::from(r.array::<16>().ok()?),
        _ => return None,
    };
    if kind != KIND_RETRY {
        return Some((issued, ip, None));
    }
    let port = r.u16().ok()?;
    let mut cid = || {
        let len = r.u8().ok()?;
        ConnectionId::new(r.bytes(usize::from(len)).ok()?).ok()
    };
    let odcid = cid()?;
    let rscid = cid()?;
    Some((issued, ip, Some((port, odcid, rscid))))
}

fn put_ip(w: &mut Writer<'_>, ip: IpAddr) -> Result<(), crate::coding::BufferFull> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            w.put_u8(4)?;
            w.put_slice(&v4.octets())
        }
        IpAddr::V6(v6) => {
            w.put_u8(6)?;
            w.put_slice(&v6.octets())
        }
    }
}

#[cfg(test)]
#[path = "tests/token.rs"]
mod tests;
