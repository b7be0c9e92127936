//! Connection IDs and stateless reset tokens.

use std::fmt;

/// Longest connection ID QUIC v1 allows (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;

/// A connection ID of 0 to 20 bytes, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

/// A connection ID longer than 20 bytes was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidTooLong;

impl fmt::Display for CidTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection ID longer than 20 bytes")
    }
}

impl std::error::Error for CidTooLong {}

impl ConnectionId {
    /// The zero-length connection ID.
    pub const EMPTY: ConnectionId = ConnectionId { len: 0, bytes: [0; MAX_CID_LEN] };

    /// Copies `b` (0 to 20 bytes).
    pub fn new(b: &[u8]) -> Result<Self, CidTooLong> {
        if b.len() > MAX_CID_LEN {
            return Err(CidTooLong);
        }
        let mut bytes = [0; MAX_CID_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self { len: b.len() as u8, bytes })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for the zero-length connection ID.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl std::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A 16-byte stateless reset token (RFC 9000 §10.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResetToken(pub [u8; 16]);

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResetToken(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_bounds() {
        assert_eq!(ConnectionId::new(&[1, 2, 3]).unwrap().as_bytes(), &[1, 2, 3]);
        assert!(ConnectionId::new(&[0; 20]).is_ok());
        assert_eq!(ConnectionId::new(&[0; 21]), Err(CidTooLong));
        assert!(ConnectionId::EMPTY.is_empty());
        assert_eq!(format!("{:?}", ConnectionId::new(&[0xab, 1]).unwrap()), "Cid(ab01)");
        assert_ne!(ConnectionId::new(&[0]).unwrap(), ConnectionId::new(&[0, 0]).unwrap());
    }
}
