//! The routing table: connection IDs, client-chosen Initial IDs and peer reset tokens to handles.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;

use super::reset::match_stateless_reset;
use super::ConnectionHandle;
use crate::cid::{ConnectionId, ResetToken};

/// Why a table change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The handle is not (or no longer) registered.
    #[error("unknown connection handle")]
    UnknownConnection,
    /// The connection ID already routes to a connection (this one or another).
    #[error("connection ID already in use")]
    CidInUse,
}

#[derive(Debug, Default)]
struct Meta {
    cids: Vec<ConnectionId>,
    initial: Option<(ConnectionId, SocketAddr)>,
    peer_resets: Vec<(SocketAddr, ResetToken)>,
    handshaking: bool,
}

/// Every entry routes to a registered handle, and each handle's [`Meta`] lists exactly the
/// entries that route to it, so removing a connection removes all of them.
#[derive(Debug, Default)]
pub(super) struct Table {
    conns: HashMap<ConnectionHandle, Meta>,
    by_cid: HashMap<ConnectionId, ConnectionHandle>,
    by_initial: HashMap<(ConnectionId, SocketAddr), ConnectionHandle>,
    peer_resets: HashMap<SocketAddr, Vec<(ResetToken, ConnectionHandle)>>,
    handshakes: usize,
    /// The last connection ID found in `by_cid` and its handle: a busy connection's
    /// datagrams all carry the same ID, so most lookups skip hashing. `by_cid` keeps its
    /// keyed (SipHash) hasher for the IDs peers choose. Cleared whenever an ID leaves
    /// `by_cid` (retired, or its connection removed), so a hit is always in `by_cid`.
    last_cid: Cell<Option<(ConnectionId, ConnectionHandle)>>,
}

impl Table {
    pub(super) fn insert_connection(&mut self, h: ConnectionHandle, handshaking: bool) {
        let meta = Meta { handshaking, ..Meta::default() };
        if self.conns.insert(h, meta).is_none() && handshaking {
            self.handshakes += 1;
        }
    }

    pub(super) fn contains(&self, h: ConnectionHandle) -> bool {
        self.conns.contains_key(&h)
    }

    pub(super) fn contains_cid(&self, cid: &ConnectionId) -> bool {
        self.by_cid.contains_key(cid)
    }

    pub(super) fn get_cid(&self, cid: &[u8]) -> Option<ConnectionHandle> {
        let cid = ConnectionId::new(cid).ok()?;
        if let Some((last, h)) = self.last_cid.get() {
            if last == cid {
                return Some(h);
            }
        }
        let h = self.by_cid.get(&cid).copied()?;
        self.last_cid.set(Some((cid, h)));
        Some(h)
    }

    pub(super) fn get_initial(
        &self,
        dcid: &ConnectionId,
        remote: SocketAddr,
    ) -> Option<ConnectionHandle> {
        self.by_initial.get(&(*dcid, remote)).copied()
    }

    pub(super) fn insert_cid(
        &mut self,
        h: ConnectionHandle,
        cid: ConnectionId,
    ) -> Result<(), TableError> {
        let meta = self.conns.get_mut(&h).ok_or(TableError::UnknownConnection)?;
        if self.by_cid.contains_key(&cid) {
            return Err(TableError::CidInUse);
        }
        self.by_cid.insert(cid, h);
        meta.cids.push(cid);
        Ok(())
    }

    pub(super) fn retire_cid(&mut self, h: ConnectionHandle, cid: &ConnectionId) -> bool {
        let Some(meta) = self.conns.get_mut(&h) else { return false };
        if self.by_cid.get(cid) != Some(&h) {
            return false;
        }
        self.by_cid.remove(cid);
        self.last_cid.set(None);
        meta.cids.retain(|c| c != cid);
        true
    }

    pub(super) fn insert_initial(
        &mut self,
        h: ConnectionHandle,
        dcid: ConnectionId,
        remote: SocketAddr,
    ) -> Result<(), TableError> {
        let meta = self.conns.get_mut(&h).ok_or(TableError::UnknownConnection)?;
        if self.by_initial.contains_key(&(dcid, remote)) {
            return Err(TableError::CidInUse);
        }
        if let Some(old) = meta.initial.replace((dcid, remote)) {
            self.by_initial.remove(&old);
        }
        self.by_initial.insert((dcid, remote), h);
        Ok(())
    }

    pub(super) fn remove_initial(&mut self, h: ConnectionHandle) {
        if let Some(old) = self.conns.get_mut(&h).and_then(|m| m.initial.take()) {
            self.by_initial.remove(&old);
        }
    }

    /// Marks the handshake of `h` finished; true the first time.
    pub(super) fn handshake_done(&mut self, h: ConnectionHandle) -> bool {
        match self.conns.get_mut(&h) {
            Some(meta) if meta.handshaking => {
                meta.handshaking = false;
                self.handshakes -= 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn add_peer_reset(
        &mut self,
        h: ConnectionHandle,
        remote: SocketAddr,
        token: ResetToken,
    ) -> Result<(), TableError> {
        let meta = self.conns.get_mut(&h).ok_or(TableError::UnknownConnection)?;
        if meta.peer_resets.contains(&(remote, token)) {
            return Ok(());
        }
        meta.peer_resets.push((remote, token));
        self.peer_resets.entry(remote).or_default().push((token, h));
        Ok(())
    }

    pub(super) fn remove_peer_reset(&mut self, h: ConnectionHandle, token: &ResetToken) {
        let Some(meta) = self.conns.get_mut(&h) else { return };
        let mut removed = Vec::new();
        meta.peer_resets.retain(|(addr, t)| {
            let hit = t == token;
            if hit {
                removed.push(*addr);
            }
            !hit
        });
        for addr in removed {
            Self::unlink_reset(&mut self.peer_resets, addr, token, h);
        }
    }

    fn unlink_reset(
        map: &mut HashMap<SocketAddr, Vec<(ResetToken, ConnectionHandle)>>,
        addr: SocketAddr,
        token: &ResetToken,
        h: ConnectionHandle,
    ) {
        if let Some(list) = map.get_mut(&addr) {
            list.retain(|(t, owner)| !(t == token && *owner == h));
            if list.is_empty() {
                map.remove(&addr);
            }
        }
    }

    /// The connection whose peer reset token `datagram` from `remote` ends in.
    pub(super) fn match_reset(
        &self,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> Option<ConnectionHandle> {
        match_stateless_reset(datagram, self.peer_resets.get(&remote)?)
    }

    /// Removes `h` and every entry routing to it; false when it was not registered.
    pub(super) fn remove(&mut self, h: ConnectionHandle) -> bool {
        let Some(meta) = self.conns.remove(&h) else { return false };
        self.last_cid.set(None);
        for cid in &meta.cids {
            self.by_cid.remove(cid);
        }
        if let Some(initial) = meta.initial {
            self.by_initial.remove(&initial);
        }
        for (addr, token) in &meta.peer_resets {
            Self::unlink_reset(&mut self.peer_resets, *addr, token, h);
        }
        if meta.handshaking {
            self.handshakes -= 1;
        }
        true
    }

    pub(super) fn connections(&self) -> usize {
        self.conns.len()
    }

    pub(super) fn handshakes(&self) -> usize {
        self.handshakes
    }

    pub(super) fn cids(&self) -> usize {
        self.by_cid.len()
    }

    pub(super) fn initial_cids(&self) -> usize {
        self.by_initial.len()
    }

    pub(super) fn peer_reset_tokens(&self) -> usize {
        self.peer_resets.values().map(Vec::len).sum()
    }

    pub(super) fn cids_of(&self, h: ConnectionHandle) -> &[ConnectionId] {
        self.conns.get(&h).map_or(&[], |m| &m.cids)
    }
}
