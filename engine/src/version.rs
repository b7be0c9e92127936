//! QUIC version numbers.

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 0x0000_0001;

/// QUIC version 2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

/// Versions this endpoint speaks, in order of preference.
pub const SUPPORTED: [u32; 2] = [V1, V2];

/// True for versions of the form 0x?a?a?a?a, which RFC 9000 §15 reserves to exercise version
/// negotiation (never spoken, always negotiated away).
pub fn is_reserved(v: u32) -> bool {
    v & 0x0f0f_0f0f == 0x0a0a_0a0a
}

/// True when this endpoint speaks `v`.
pub fn is_supported(v: u32) -> bool {
    SUPPORTED.contains(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_pattern() {
        assert!(is_reserved(0x1a2a3a4a));
        assert!(is_reserved(0xfafafafa));
        assert!(!is_reserved(V1));
        assert!(!is_reserved(V2));
        assert!(is_supported(V2) && !is_supported(0xff00_001d));
    }
}
