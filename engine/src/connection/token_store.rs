//! The client's store of address validation tokens from NEW_TOKEN frames (RFC 9000 §8.1.3):
//! in memory, keyed by server name, bounded, each token handed out once.
//!
//! A [`ClientConfig`](super::ClientConfig) holds one in an `Arc`; every connection started
//! with that configuration (on any worker of the endpoint) takes a token for its server name
//! when it starts, and stores the tokens the server sends it. The store is a plain mutex: it
//! is touched once when a connection starts and once per NEW_TOKEN frame, never held across
//! anything else.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Default most server names a [`TokenStore`] keeps tokens for.
pub const DEFAULT_TOKEN_STORE_SERVERS: usize = 256;
/// Default most tokens kept per server name.
pub const DEFAULT_TOKENS_PER_SERVER: usize = 2;
/// Longest token stored; longer ones are dropped. An Initial must also carry the ClientHello
/// in 1200 bytes, so servers keep tokens far shorter (Peregrine's are 38 or 50 bytes).
pub const MAX_STORED_TOKEN_LEN: usize = 512;

/// Tokens from NEW_TOKEN frames, per server name. At most `servers` names (the least recently
/// stored-to name is dropped first) and `per_server` tokens each (the oldest dropped first),
/// each at most [`MAX_STORED_TOKEN_LEN`] bytes: at most about 256 KiB with the defaults.
///
/// [`TokenStore::take`] removes the token it returns: a token is used for one connection
/// attempt only, as RFC 9000 §8.1.3 asks, so that connections cannot be linked by it.
#[derive(Debug)]
pub struct TokenStore {
    servers: usize,
    per_server: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Tokens per name, oldest first, with the stamp of the last store to that name.
    by_name: HashMap<Box<str>, (u64, VecDeque<Vec<u8>>)>,
    stamp: u64,
}

impl Default for TokenStore {
    /// [`DEFAULT_TOKEN_STORE_SERVERS`] names, [`DEFAULT_TOKENS_PER_SERVER`] tokens each.
    fn default() -> Self {
        Self::new(DEFAULT_TOKEN_STORE_SERVERS, DEFAULT_TOKENS_PER_SERVER)
    }
}

impl TokenStore {
    /// A store for at most `servers` server names and `per_server` tokens each (0: store
    /// nothing).
    pub fn new(servers: usize, per_server: usize) -> Self {
        Self { servers, per_server, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is consistent after every statement: a panic elsewhere cannot corrupt it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `token` (from a NEW_TOKEN frame of a connection to `server_name`) for a later
    /// connection. Empty and over-long tokens are ignored, and so is a token already held (a
    /// NEW_TOKEN frame resent after a spurious loss must not be used twice).
    pub fn insert(&self, server_name: &str, token: &[u8]) {
        if self.servers == 0
            || self.per_server == 0
            || token.is_empty()
            || token.len() > MAX_STORED_TOKEN_LEN
        {
            return;
        }
        let mut g = self.lock();
        g.stamp += 1;
        let stamp = g.stamp;
        if !g.by_name.contains_key(server_name) && g.by_name.len() >= self.servers {
            let oldest = g.by_name.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                g.by_name.remove(&k);
            }
        }
        let entry = g.by_name.entry(server_name.into()).or_default();
        entry.0 = stamp;
        if entry.1.iter().any(|t| t == token) {
            return;
        }
        if entry.1.len() >= self.per_server {
            entry.1.pop_front();
        }
        entry.1.push_back(token.to_vec());
    }

    /// Takes the most recent token for `server_name` (the one most likely to be valid, RFC
    /// 9000 §8.1.3); it is removed, so no later connection uses it again.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
    //# A client SHOULD NOT reuse a token from a NEW_TOKEN frame for
    //# different connection attempts.
    pub fn take(&self, server_name: &str) -> Option<Vec<u8>> {
        let mut g = self.lock();
        let tokens = &mut g.by_name.get_mut(server_name)?.1;
        let t = tokens.pop_back();
        if tokens.is_empty() {
            g.by_name.remove(server_name);
        }
        t
    }

    /// Tokens held for `server_name`.
    pub fn len(&self, server_name: &str) -> usize {
        self.lock().by_name.get(server_name).map_or(0, |(_, t)| t.len())
    }

    /// Whether no token is held for any server.
    pub fn is_empty(&self) -> bool {
        self.lock().by_name.is_empty()
    }

    /// Forgets every token (a client that wants to break continuity with its servers).
    pub fn clear(&self) {
        self.lock().by_name.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_is_taken_once_newest_first() {
        let s = TokenStore::default();
        s.insert("a", b"t1");
        s.insert("a", b"t2");
        s.insert("a", b"t2");
        assert_eq!(s.len("a"), 2, "a duplicate is not kept twice");
        assert_eq!(s.take("a").as_deref(), Some(&b"t2"[..]));
        assert_eq!(s.take("a").as_deref(), Some(&b"t1"[..]));
        assert_eq!(s.take("a"), None, "never handed out twice");
        assert!(s.is_empty());
        assert_eq!(s.take("b"), None);
    }

    #[test]
    fn bounded_per_server_by_names_and_by_length() {
        let s = TokenStore::new(2, 2);
        for t in [b"1", b"2", b"3"] {
            s.insert("a", t);
        }
        assert_eq!(s.len("a"), 2, "the oldest token dropped");
        assert_eq!(s.take("a").as_deref(), Some(&b"3"[..]));
        s.insert("a", b"4");
        s.insert("b", b"5");
        s.insert("c", b"6");
        // "a" was stored to least recently: dropped to make room for "c".
        assert_eq!((s.len("a"), s.len("b"), s.len("c")), (0, 1, 1));
        s.insert("b", &[7; MAX_STORED_TOKEN_LEN + 1]);
        s.insert("b", &[]);
        assert_eq!(s.len("b"), 1, "over-long and empty tokens ignored");
        let none = TokenStore::new(0, 2);
        none.insert("a", b"1");
        assert!(none.is_empty());
        s.clear();
        assert!(s.is_empty());
    }
}
