//! hq-interop on both stacks: `GET /<size>/<seed>\r\n` on a bidi stream with FIN, answered
//! with `size` bytes of a seeded pattern and FIN. Bodies are checked by length and FNV-1a.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use peregrine_engine::api::{ConnError, Connection};
use peregrine_engine::connection::ConnectionError;

/// The request for a body of `size` bytes drawn from `seed`.
pub fn request(size: usize, seed: u8) -> Vec<u8> {
    format!("GET /{size}/{seed}\r\n").into_bytes()
}

/// Parses a request into (size, seed); `None` when malformed.
pub fn parse(req: &[u8]) -> Option<(usize, u8)> {
    let s = std::str::from_utf8(req).ok()?;
    let path = s.strip_prefix("GET /")?.strip_suffix("\r\n")?;
    let (size, seed) = path.split_once('/')?;
    Some((size.parse().ok()?, seed.parse().ok()?))
}

/// The body served for (size, seed).
pub fn body(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed ^ (i >> 8) as u8)).collect()
}

/// FNV-1a 64 of `data`.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Largest request accepted.
const MAX_REQUEST: usize = 256;

/// Serves hq-interop on a Peregrine connection until it closes; counts well-formed requests
/// (the client checks the bodies) and returns the close reason.
pub async fn serve_peregrine(conn: Connection, served: Arc<AtomicUsize>) -> ConnError {
    loop {
        match conn.accept_bi().await {
            Ok((send, mut recv)) => {
                let served = served.clone();
                tokio::spawn(async move {
                    let Ok(req) = recv.read_to_end(MAX_REQUEST).await else { return };
                    let Some((size, seed)) = parse(&req) else {
                        send.reset(1);
                        return;
                    };
                    served.fetch_add(1, Ordering::Relaxed);
                    if send.write_all(body(size, seed)).await.is_ok() {
                        let _ = send.finish().await;
                    }
                });
            }
            Err(e) => return e,
        }
    }
}

/// Serves hq-interop on a quinn connection until it closes; returns the close reason.
pub async fn serve_quinn(
    conn: quinn::Connection,
    served: Arc<AtomicUsize>,
) -> quinn::ConnectionError {
    loop {
        match conn.accept_bi().await {
            Ok((mut send, mut recv)) => {
                let served = served.clone();
                tokio::spawn(async move {
                    let Ok(req) = recv.read_to_end(MAX_REQUEST).await else { return };
                    let Some((size, seed)) = parse(&req) else {
                        let _ = send.reset(1u32.into());
                        return;
                    };
                    served.fetch_add(1, Ordering::Relaxed);
                    if send.write_all(&body(size, seed)).await.is_ok() {
                        let _ = send.finish();
                    }
                });
            }
            Err(e) => return e,
        }
    }
}

/// Fetches (size, seed) with a Peregrine client connection; returns the body.
pub async fn fetch_peregrine(conn: &Connection, size: usize, seed: u8) -> Vec<u8> {
    let (send, mut recv) = conn.open_bi().await.expect("open_bi");
    let st = send.write_fin(request(size, seed)).await;
    assert!(st.was_accepted(), "request write ended as {st:?}");
    recv.read_to_end(size + 1).await.expect("read body")
}

/// Fetches (size, seed) with a quinn client connection; returns the body.
pub async fn fetch_quinn(conn: &quinn::Connection, size: usize, seed: u8) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(&request(size, seed)).await.expect("write request");
    send.finish().expect("finish request");
    recv.read_to_end(size + 1).await.expect("read body")
}

/// Asserts `got` is byte-exact (length and checksum, then content) for (size, seed).
pub fn check_body(got: &[u8], size: usize, seed: u8) {
    assert_eq!(got.len(), size, "body length for /{size}/{seed}");
    let want = body(size, seed);
    assert_eq!(fnv(got), fnv(&want), "body checksum for /{size}/{seed}");
    assert!(got == want.as_slice(), "body bytes for /{size}/{seed}");
}

/// True when a Peregrine close reason is the peer's application close with `code`.
pub fn peregrine_app_close(e: &ConnError, code: u64) -> bool {
    matches!(e, ConnError::Connection(ConnectionError::ApplicationClosed { code: c, .. }) if *c == code)
}

/// True when a quinn close reason is the peer's application close with `code`.
pub fn quinn_app_close(e: &quinn::ConnectionError, code: u32) -> bool {
    matches!(e, quinn::ConnectionError::ApplicationClosed(a) if a.error_code == quinn::VarInt::from_u32(code))
}
