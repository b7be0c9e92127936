//! Tests of address validation tokens.

use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T: u64 = 1_700_000_000;

fn cid(b: &[u8]) -> ConnectionId {
    ConnectionId::new(b).unwrap()
}

fn remote() -> SocketAddr {
    "192.0.2.7:4433".parse().unwrap()
}

fn retry_token(key: &TokenKey, rng: &mut ChaCha20Rng) -> Vec<u8> {
    key.seal_retry(rng, remote(), &cid(&[1; 8]), &cid(&[2; 8]), T)
}

fn lifetimes() -> TokenLifetimes {
    TokenLifetimes::default()
}

#[test]
fn retry_token_round_trip() {
    let key = TokenKey::new(&[7; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let t = retry_token(&key, &mut rng);
    assert!(t.len() <= MAX_TOKEN_LEN);
    assert_eq!(
        key.validate(&t, remote(), &cid(&[2; 8]), T + 3, &lifetimes()),
        TokenValidation::Retry { orig_dst_cid: cid(&[1; 8]), retry_src_cid: cid(&[2; 8]) }
    );
    // The largest token: IPv6, two 20-octet IDs.
    let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let big = key.seal_retry(&mut rng, v6, &cid(&[3; 20]), &cid(&[4; 20]), T);
    assert_eq!(big.len(), MAX_TOKEN_LEN);
    assert!(matches!(
        key.validate(&big, v6, &cid(&[4; 20]), T, &lifetimes()),
        TokenValidation::Retry { .. }
    ));
}

#[test]
fn new_token_round_trip_and_uniqueness() {
    let key = TokenKey::new(&[7; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let a = key.seal_new_token(&mut rng, remote().ip(), T);
    let b = key.seal_new_token(&mut rng, remote().ip(), T);
    assert_ne!(a, b, "unique per issue");
    // Another port (a new connection) and any DCID are fine.
    let other_port: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let v = key.validate(&a, other_port, &cid(&[9; 8]), T + 3600, &lifetimes());
    assert_eq!(v, TokenValidation::NewToken);
    // The IP address is not readable in the token.
    assert!(!a.windows(4).any(|w| w == [192, 0, 2, 7]));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
//= type=test
//# For this design to work,
//# the token MUST be covered by integrity protection against
//# modification or falsification by clients.
#[test]
fn every_bit_flip_is_rejected() {
    let key = TokenKey::new(&[7; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let tokens = [retry_token(&key, &mut rng), key.seal_new_token(&mut rng, remote().ip(), T)];
    for t in tokens {
        for i in 0..t.len() {
            for bit in 0..8 {
                let mut bad = t.clone();
                bad[i] ^= 1 << bit;
                let v = key.validate(&bad, remote(), &cid(&[2; 8]), T, &lifetimes());
                assert!(
                    matches!(v, TokenValidation::InvalidRetry(_) | TokenValidation::Ignored(_)),
                    "byte {i} bit {bit}: {v:?}"
                );
            }
        }
        for len in 0..t.len() {
            let v = key.validate(&t[..len], remote(), &cid(&[2; 8]), T, &lifetimes());
            assert!(!matches!(v, TokenValidation::Retry { .. } | TokenValidation::NewToken));
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.4
//= type=test
//# Servers SHOULD ensure that
//# tokens sent in Retry packets are only accepted for a short time, as
//# they are returned immediately by clients.
#[test]
fn expiry() {
    let key = TokenKey::new(&[7; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let r = retry_token(&key, &mut rng);
    let n = key.seal_new_token(&mut rng, remote().ip(), T);
    let check = |t: &[u8], at| key.validate(t, remote(), &cid(&[2; 8]), at, &lifetimes());
    assert!(matches!(check(&r, T + 10), TokenValidation::Retry { .. }));
    assert_eq!(check(&r, T + 11), TokenValidation::InvalidRetry(TokenError::Expired));
    assert_eq!(check(&n, T + 24 * 3600), TokenValidation::NewToken);
    assert_eq!(check(&n, T + 24 * 3600 + 1), TokenValidation::Ignored(TokenError::Expired));
    // Issued in the future: tolerated within the clock skew, rejected beyond.
    assert_eq!(check(&n, T - 10), TokenValidation::NewToken);
    assert_eq!(check(&n, T - 11), TokenValidation::Ignored(TokenError::Expired));
    // Configurable lifetimes.
    let short =
        TokenLifetimes { retry: Duration::from_secs(2), new_token: Duration::from_secs(60) };
    assert!(matches!(
        key.validate(&r, remote(), &cid(&[2; 8]), T + 3, &short),
        TokenValidation::InvalidRetry(TokenError::Expired)
    ));
}

#[test]
fn wrong_address_or_cid() {
    let key = TokenKey::new(&[7; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let r = retry_token(&key, &mut rng);
    let n = key.seal_new_token(&mut rng, remote().ip(), T);
    let other_ip: SocketAddr = "192.0.2.8:4433".parse().unwrap();
    let other_port: SocketAddr = "192.0.2.7:4434".parse().unwrap();
    let dcid = cid(&[2; 8]);
    let mismatch = TokenError::AddressMismatch;
    assert_eq!(
        key.validate(&r, other_ip, &dcid, T, &lifetimes()),
        TokenValidation::InvalidRetry(mismatch)
    );
    assert_eq!(
        key.validate(&r, other_port, &dcid, T, &lifetimes()),
        TokenValidation::InvalidRetry(mismatch)
    );
    assert_eq!(
        key.validate(&n, other_ip, &dcid, T, &lifetimes()),
        TokenValidation::Ignored(mismatch)
    );
    assert_eq!(
        key.validate(&r, remote(), &cid(&[3; 8]), T, &lifetimes()),
        TokenValidation::InvalidRetry(TokenError::CidMismatch)
    );
    // An IPv4-mapped IPv6 address is the same client as its IPv4 form.
    let mapped: SocketAddr = "[::ffff:192.0.2.7]:4433".parse().unwrap();
    assert!(matches!(
        key.validate(&r, mapped, &dcid, T, &lifetimes()),
        TokenValidation::Retry { .. }
    ));
}

#[test]
fn shared_key_across_servers() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let server_a = TokenKey::new(&[7; 32]);
    let server_b = TokenKey::new(&[7; 32]);
    let other = TokenKey::new(&[8; 32]);
    let r = retry_token(&server_a, &mut rng);
    let n = server_a.seal_new_token(&mut rng, remote().ip(), T);
    let dcid = cid(&[2; 8]);
    assert!(matches!(
        server_b.validate(&r, remote(), &dcid, T, &lifetimes()),
        TokenValidation::Retry { .. }
    ));
    assert_eq!(server_b.validate(&n, remote(), &dcid, T, &lifetimes()), TokenValidation::NewToken);
    assert_eq!(
        other.validate(&r, remote(), &dcid, T, &lifetimes()),
        TokenValidation::InvalidRetry(TokenError::Unauthentic)
    );
    assert_eq!(
        other.validate(&n, remote(), &dcid, T, &lifetimes()),
        TokenValidation::Ignored(TokenError::Unauthentic)
    );
}

#[test]
fn empty_and_foreign_tokens() {
    let key = TokenKey::new(&[7; 32]);
    let dcid = cid(&[2; 8]);
    assert_eq!(key.validate(&[], remote(), &dcid, T, &lifetimes()), TokenValidation::None);
    assert_eq!(
        key.validate(b"\x09something", remote(), &dcid, T, &lifetimes()),
        TokenValidation::Ignored(TokenError::UnknownKind)
    );
    assert_eq!(
        key.validate(&[KIND_NEW_TOKEN; 400], remote(), &dcid, T, &lifetimes()),
        TokenValidation::Ignored(TokenError::Unauthentic)
    );
}

#[test]
fn wall_clock() {
    #[allow(clippy::disallowed_methods)]
    let base = Instant::now();
    let c = WallClock::new(base, T);
    assert_eq!(c.unix_secs(base), T);
    assert_eq!(c.unix_secs(base + Duration::from_millis(2500)), T + 2);
    assert_eq!(c.unix_secs(base.checked_sub(Duration::from_secs(5)).unwrap_or(base)), T);
}

/// A Retry token never validates as a NEW_TOKEN token and a NEW_TOKEN token never as a Retry
/// token, whatever the address, connection ID or time; changing the kind octet breaks the
/// seal (the kind is the AEAD's associated data).
//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
//= type=test
//# Information that
//# allows the server to distinguish between tokens from Retry and
//# NEW_TOKEN MAY be accessible to entities other than the server.
#[test]
fn retry_and_new_token_tokens_never_cross() {
    let key = TokenKey::new(&[7; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let r = retry_token(&key, &mut rng);
    let n = key.seal_new_token(&mut rng, remote().ip(), T);
    assert_eq!((r[0], n[0]), (KIND_RETRY, KIND_NEW_TOKEN));
    let other_port: SocketAddr = "192.0.2.7:9".parse().unwrap();
    for at in [T, T + 5, T + 3600] {
        for from in [remote(), other_port] {
            for dcid in [cid(&[2; 8]), cid(&[9; 16])] {
                let v = key.validate(&r, from, &dcid, at, &lifetimes());
                assert!(!matches!(v, TokenValidation::NewToken), "Retry token as NEW_TOKEN: {v:?}");
                let v = key.validate(&n, from, &dcid, at, &lifetimes());
                assert_eq!(v, TokenValidation::NewToken, "NEW_TOKEN token: {v:?}");
            }
        }
    }
    let (mut r2, mut n2) = (r.clone(), n.clone());
    (r2[0], n2[0]) = (KIND_NEW_TOKEN, KIND_RETRY);
    let dcid = cid(&[2; 8]);
    assert_eq!(
        key.validate(&r2, remote(), &dcid, T, &lifetimes()),
        TokenValidation::Ignored(TokenError::Unauthentic)
    );
    assert_eq!(
        key.validate(&n2, remote(), &dcid, T, &lifetimes()),
        TokenValidation::InvalidRetry(TokenError::Unauthentic)
    );
}
