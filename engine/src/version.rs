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

/// True when a first flight of version `from` can be converted into one of version `to` (RFC
/// 9368 §2.2): every version with itself, and v1 and v2 with each other (RFC 9369 §4).
pub fn compatible(from: u32, to: u32) -> bool {
    from == to || (is_supported(from) && is_supported(to))
}

/// The first version of `preferences` that this endpoint speaks and `offered` lists: the
/// version a client picks from a Version Negotiation packet (RFC 9368 §2.1).
pub fn select(preferences: &[u32], offered: &[u32]) -> Option<u32> {
    preferences.iter().copied().find(|v| is_supported(*v) && offered.contains(v))
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

    #[test]
    fn compatibility_and_selection() {
        assert!(compatible(V1, V2) && compatible(V2, V1) && compatible(V1, V1));
        assert!(!compatible(V1, 0x1a2a_3a4a) && !compatible(0x1a2a_3a4a, V2));
        assert_eq!(select(&[V2, V1], &[V1, V2]), Some(V2));
        assert_eq!(select(&[V1, V2], &[0x1a2a_3a4a, V2]), Some(V2));
        assert_eq!(select(&[V1, 0x1a2a_3a4a], &[0x1a2a_3a4a]), None, "reserved never chosen");
        assert_eq!(select(&[V1], &[V2]), None);
    }
}
