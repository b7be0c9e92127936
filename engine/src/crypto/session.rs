//! [`LimitBoundStore`]: a server's single-use session store whose tickets remember the
//! transport limits they were issued under, so that a resumption under lower limits does not
//! get 0-RTT accepted (RFC 9000 §7.4.1).
//!
//! rustls's QUIC server has no API to put QUIC data in its tickets (`set_resumption_data`
//! exists only for TLS over TCP) and decides on early data while it reads the ClientHello,
//! before the connection could look at the resumed session. So each server connection that
//! allows 0-RTT gets its own view of the shared store: on `put` it appends its limits to the
//! stored session, on `take` it compares the stored limits with its own and, when one of its
//! own is lower, answers "no such session". The handshake is then a full one and 0-RTT is
//! rejected; the ticket is single-use either way.

use std::sync::Arc;

use rustls::server::StoresServerSessions;

/// Bytes of one stamped limit.
const LIMIT_LEN: usize = 8;

/// One connection's view of the shared server session store (see the module documentation).
#[derive(Debug)]
pub(crate) struct LimitBoundStore {
    inner: Arc<dyn StoresServerSessions>,
    /// This connection's limits; a session stamped with a larger value at any position is
    /// not resumed.
    limits: Vec<u64>,
}

impl LimitBoundStore {
    /// A view of `inner` for a connection advertising `limits` (a fixed order of values
    /// that must not shrink between the ticket's connection and this one).
    pub(crate) fn new(inner: Arc<dyn StoresServerSessions>, limits: Vec<u64>) -> Self {
        Self { inner, limits }
    }

    /// Splits a stored value into the rustls session and the stamped limits.
    fn unstamp(&self, mut value: Vec<u8>) -> Option<(Vec<u8>, Vec<u64>)> {
        let n = self.limits.len() * LIMIT_LEN;
        let at = value.len().checked_sub(n)?;
        let limits = value[at..]
            .chunks_exact(LIMIT_LEN)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect();
        value.truncate(at);
        Some((value, limits))
    }
}

impl StoresServerSessions for LimitBoundStore {
    fn put(&self, key: Vec<u8>, mut value: Vec<u8>) -> bool {
        for l in &self.limits {
            value.extend_from_slice(&l.to_be_bytes());
        }
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (value, stamped) = self.unstamp(self.inner.get(key)?)?;
        self.fits(&stamped).then_some(value)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (value, stamped) = self.unstamp(self.inner.take(key)?)?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-7.4.1
        //# A server MUST reject 0-RTT data if the restored values for transport
        //# parameters cannot be supported.
        self.fits(&stamped).then_some(value)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

impl LimitBoundStore {
    /// Whether none of this connection's limits is below the stamped one.
    fn fits(&self, stamped: &[u64]) -> bool {
        stamped.len() == self.limits.len() && stamped.iter().zip(&self.limits).all(|(s, l)| l >= s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_resumes_only_under_limits_at_least_as_large() {
        let shared: Arc<dyn StoresServerSessions> =
            rustls::server::ServerSessionMemoryCache::new(16);
        let issuer = LimitBoundStore::new(shared.clone(), vec![100, 8]);
        assert!(issuer.put(b"k1".to_vec(), b"session".to_vec()));
        assert!(issuer.put(b"k2".to_vec(), b"other".to_vec()));
        // Same or larger limits: resumes, once.
        let larger = LimitBoundStore::new(shared.clone(), vec![100, 9]);
        assert_eq!(larger.get(b"k1"), Some(b"session".to_vec()));
        assert_eq!(larger.take(b"k1"), Some(b"session".to_vec()));
        assert_eq!(larger.take(b"k1"), None, "single-use");
        // One limit lower: no resumption, and the session is gone.
        let smaller = LimitBoundStore::new(shared.clone(), vec![99, 100]);
        assert_eq!(smaller.take(b"k2"), None);
        assert_eq!(larger.take(b"k2"), None);
        // A value without a stamp of the right size is not resumed.
        shared.put(b"k3".to_vec(), vec![1, 2]);
        assert_eq!(larger.take(b"k3"), None);
    }
}
