//! Crypto tests: RFC 9001 / RFC 9369 vectors, key update, and in-memory TLS handshakes.

/// Decodes hex, ignoring whitespace (RFC hex dumps are pasted as-is).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

mod handshake;
mod key_update;
mod vectors;
