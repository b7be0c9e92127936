//! Connection IDs: the ones we issue (NEW_CONNECTION_ID, RETIRE_CONNECTION_ID from the peer) and
//! the peer's (NEW_CONNECTION_ID from the peer, retire_prior_to, stateless reset tokens).

use crate::cid::{ConnectionId, ResetToken};
use crate::error::{Error, TransportErrorCode};
use crate::frame::NewConnectionId;

/// One connection ID we issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalCid {
    /// Sequence number.
    pub seq: u64,
    /// The ID.
    pub cid: ConnectionId,
    /// Its stateless reset token.
    pub token: ResetToken,
}

/// The connection IDs we issued and have not seen retired.
#[derive(Debug, Default)]
pub struct LocalCids {
    active: Vec<LocalCid>,
    next_seq: u64,
    /// NEW_CONNECTION_ID frames to send (by sequence number).
    pub to_send: Vec<u64>,
}

impl LocalCids {
    /// Registers the ID of sequence number 0 (the handshake's SCID).
    pub fn with_initial(cid: ConnectionId, token: ResetToken) -> Self {
        Self { active: vec![LocalCid { seq: 0, cid, token }], next_seq: 1, to_send: Vec::new() }
    }

    /// Adds a freshly generated ID and queues its NEW_CONNECTION_ID.
    pub fn issue(&mut self, cid: ConnectionId, token: ResetToken) -> LocalCid {
        let c = LocalCid { seq: self.next_seq, cid, token };
        self.next_seq += 1;
        self.active.push(c);
        self.to_send.push(c.seq);
        c
    }

    /// Number of IDs the peer may use now.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Whether `cid` is one of ours.
    pub fn contains(&self, cid: &ConnectionId) -> bool {
        self.active.iter().any(|c| c.cid == *cid)
    }

    /// The frame announcing `seq`, if it is still active.
    pub fn frame(&self, seq: u64) -> Option<NewConnectionId> {
        let c = self.active.iter().find(|c| c.seq == seq)?;
        Some(NewConnectionId {
            sequence: crate::VarInt::new(c.seq).ok()?,
            retire_prior_to: crate::VarInt::ZERO,
            id: c.cid,
            reset_token: c.token,
        })
    }

    /// The peer retired `seq`, carried in a packet sent to `packet_dcid`.
    pub fn retire(
        &mut self,
        seq: u64,
        packet_dcid: &ConnectionId,
    ) -> Result<Option<LocalCid>, Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.16
        //# Receipt of a RETIRE_CONNECTION_ID frame containing a sequence number
        //# greater than any previously sent to the peer MUST be treated as a
        //# connection error of type PROTOCOL_VIOLATION.
        if seq >= self.next_seq {
            return Err(Error::protocol_violation("RETIRE_CONNECTION_ID for an unissued ID"));
        }
        let Some(i) = self.active.iter().position(|c| c.seq == seq) else { return Ok(None) };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.16
        //# The sequence number specified in a RETIRE_CONNECTION_ID frame MUST
        //# NOT refer to the Destination Connection ID field of the packet in
        //# which the frame is contained.  The peer MAY treat this as a
        //# connection error of type PROTOCOL_VIOLATION.
        if self.active[i].cid == *packet_dcid {
            return Err(Error::protocol_violation("RETIRE_CONNECTION_ID of the packet's own DCID"));
        }
        self.to_send.retain(|&s| s != seq);
        Ok(Some(self.active.remove(i)))
    }
}

/// One connection ID the peer issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCid {
    /// Sequence number.
    pub seq: u64,
    /// The ID.
    pub cid: ConnectionId,
    /// Its stateless reset token, when known (for sequence number 0 only the server's, from
    /// its transport parameters).
    pub token: Option<ResetToken>,
}

/// The peer's connection IDs we may use, the one in use, and retirements to send.
#[derive(Debug)]
pub struct PeerCids {
    active: Vec<PeerCid>,
    current: usize,
    retire_prior_to: u64,
    limit: u64,
    /// RETIRE_CONNECTION_ID frames to send.
    pub to_retire: Vec<u64>,
}

impl PeerCids {
    /// Starts with the handshake ID (sequence number 0). `limit` is our
    /// active_connection_id_limit.
    pub fn new(cid: ConnectionId, limit: u64) -> Self {
        Self {
            active: vec![PeerCid { seq: 0, cid, token: None }],
            current: 0,
            retire_prior_to: 0,
            limit,
            to_retire: Vec::new(),
        }
    }

    /// The ID to send to.
    pub fn current(&self) -> ConnectionId {
        self.active.get(self.current).map(|c| c.cid).unwrap_or_default()
    }

    /// The sequence number of the ID in use.
    pub fn current_seq(&self) -> u64 {
        self.active.get(self.current).map_or(0, |c| c.seq)
    }

    /// An ID of the peer's we have not sent to (not the current one, none of `exclude`): the
    /// lowest such sequence number.
    pub fn spare(&self, exclude: &[u64]) -> Option<u64> {
        let cur = self.current_seq();
        self.active.iter().map(|c| c.seq).find(|s| *s != cur && !exclude.contains(s))
    }

    /// Whether the ID of sequence number `seq` is active.
    pub fn has_seq(&self, seq: u64) -> bool {
        self.active.iter().any(|c| c.seq == seq)
    }

    /// Sends to the ID of sequence number `seq` from now on; false when it is not active.
    pub fn use_seq(&mut self, seq: u64) -> bool {
        match self.active.iter().position(|c| c.seq == seq) {
            Some(i) => {
                self.current = i;
                true
            }
            None => false,
        }
    }

    /// Stops using the ID of sequence number `seq` and retires it (RETIRE_CONNECTION_ID).
    /// The ID in use cannot be retired this way.
    pub fn retire_seq(&mut self, seq: u64) {
        if seq == self.current_seq() {
            return;
        }
        let Some(i) = self.active.iter().position(|c| c.seq == seq) else { return };
        let current_cid = self.current();
        self.active.remove(i);
        self.current = self.active.iter().position(|c| c.cid == current_cid).unwrap_or(0);
        if !self.to_retire.contains(&seq) {
            self.to_retire.push(seq);
        }
    }

    /// Replaces the handshake ID (the client learns the server's chosen ID, or a Retry's).
    pub fn set_initial(&mut self, cid: ConnectionId) {
        if let Some(c) = self.active.iter_mut().find(|c| c.seq == 0) {
            c.cid = cid;
        }
    }

    /// The stateless reset token of sequence number 0 (the server's transport parameter).
    pub fn set_initial_token(&mut self, token: ResetToken) {
        if let Some(c) = self.active.iter_mut().find(|c| c.seq == 0) {
            c.token = Some(token);
        }
    }

    /// Whether the last 16 bytes of a datagram match a reset token of any of the peer's IDs.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
    //# An endpoint detects a potential Stateless Reset using the trailing 16
    //# bytes of the UDP datagram.
    pub fn is_stateless_reset(&self, datagram: &[u8]) -> bool {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
        //# Endpoints MUST discard packets that are too small to be valid QUIC
        //# packets.
        if datagram.len() < 21 {
            return false;
        }
        let tail = &datagram[datagram.len() - 16..];
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
        //# When comparing a datagram to stateless reset token values, endpoints
        //# MUST perform the comparison without leaking information about the
        //# value of the token.
        self.active
            .iter()
            .filter_map(|c| c.token)
            .any(|t| t.0.iter().zip(tail).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
    }

    /// Number of the peer's IDs held (tests).
    #[cfg(test)]
    pub fn active_count_for_tests(&self) -> usize {
        self.active.len()
    }

    /// A NEW_CONNECTION_ID frame from the peer.
    pub fn on_new_cid(&mut self, f: &NewConnectionId) -> Result<(), Error> {
        let seq = f.sequence.into_inner();
        let rpt = f.retire_prior_to.into_inner();
        if let Some(c) = self.active.iter().find(|c| c.seq == seq) {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
            //# If an endpoint receives a NEW_CONNECTION_ID frame that repeats a
            //# previously issued connection ID with a different Stateless Reset
            //# Token field value or a different Sequence Number field value, or if a
            //# sequence number is used for different connection IDs, the endpoint
            //# MAY treat that receipt as a connection error of type
            //# PROTOCOL_VIOLATION.
            if c.cid != f.id || c.token.is_some_and(|t| t != f.reset_token) {
                return Err(Error::protocol_violation("sequence number reused for another ID"));
            }
            return Ok(());
        }
        if self.active.iter().any(|c| c.cid == f.id) {
            return Err(Error::protocol_violation("connection ID repeated with a new sequence"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
        //# An endpoint that receives a NEW_CONNECTION_ID frame with a sequence
        //# number smaller than the Retire Prior To field of a previously
        //# received NEW_CONNECTION_ID frame MUST send a corresponding
        //# RETIRE_CONNECTION_ID frame that retires the newly received connection
        //# ID, unless it has already done so for that sequence number.
        if seq < self.retire_prior_to {
            if !self.to_retire.contains(&seq) {
                self.to_retire.push(seq);
            }
            return Ok(());
        }
        let current_cid = self.current();
        self.active.push(PeerCid { seq, cid: f.id, token: Some(f.reset_token) });
        if rpt > self.retire_prior_to {
            self.retire_prior_to = rpt;
            //= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.2
            //# Upon receipt of an increased Retire Prior To field, the peer MUST
            //# stop using the corresponding connection IDs and retire them with
            //# RETIRE_CONNECTION_ID frames before adding the newly provided
            //# connection ID to the set of active connection IDs.
            for c in self.active.iter().filter(|c| c.seq < rpt) {
                if !self.to_retire.contains(&c.seq) {
                    self.to_retire.push(c.seq);
                }
            }
            self.active.retain(|c| c.seq >= rpt);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.1
        //# After processing a NEW_CONNECTION_ID frame and
        //# adding and retiring active connection IDs, if the number of active
        //# connection IDs exceeds the value advertised in its
        //# active_connection_id_limit transport parameter, an endpoint MUST
        //# close the connection with an error of type CONNECTION_ID_LIMIT_ERROR.
        if self.active.len() as u64 > self.limit {
            return Err(Error::new(
                TransportErrorCode::CONNECTION_ID_LIMIT_ERROR,
                "peer exceeded active_connection_id_limit",
            ));
        }
        self.active.sort_by_key(|c| c.seq);
        self.current = self.active.iter().position(|c| c.cid == current_cid).unwrap_or(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VarInt;

    fn ncid(seq: u64, rpt: u64, b: u8) -> NewConnectionId {
        NewConnectionId {
            sequence: VarInt::new(seq).unwrap(),
            retire_prior_to: VarInt::new(rpt).unwrap(),
            id: ConnectionId::new(&[b; 8]).unwrap(),
            reset_token: ResetToken([b; 16]),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.1
    //= type=test
    //# After processing a NEW_CONNECTION_ID frame and
    //# adding and retiring active connection IDs, if the number of active
    //# connection IDs exceeds the value advertised in its
    //# active_connection_id_limit transport parameter, an endpoint MUST
    //# close the connection with an error of type CONNECTION_ID_LIMIT_ERROR.
    #[test]
    fn limit_and_retire_prior_to() {
        let mut p = PeerCids::new(ConnectionId::new(&[0; 8]).unwrap(), 2);
        p.on_new_cid(&ncid(1, 0, 1)).unwrap();
        // Repeats are fine.
        p.on_new_cid(&ncid(1, 0, 1)).unwrap();
        let e = p.on_new_cid(&ncid(2, 0, 2)).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
        let mut p = PeerCids::new(ConnectionId::new(&[0; 8]).unwrap(), 2);
        p.on_new_cid(&ncid(1, 0, 1)).unwrap();
        p.on_new_cid(&ncid(2, 2, 2)).unwrap();
        assert_eq!(p.to_retire, vec![0, 1]);
        assert_eq!(p.current(), ConnectionId::new(&[2; 8]).unwrap());
        assert!(p.is_stateless_reset(&[[0x40u8; 10].as_slice(), &[2u8; 16]].concat()));
        assert!(!p.is_stateless_reset(&[[0x40u8; 10].as_slice(), &[1u8; 16]].concat()));
        // A late ID below retire_prior_to is retired at once.
        let mut late = ncid(1, 0, 9);
        late.id = ConnectionId::new(&[9; 8]).unwrap();
        p.to_retire.clear();
        p.on_new_cid(&late).unwrap();
        assert_eq!(p.to_retire, vec![1]);
    }

    #[test]
    fn local_retire_rules() {
        let c0 = ConnectionId::new(&[0; 8]).unwrap();
        let mut l = LocalCids::with_initial(c0, ResetToken([0; 16]));
        let c1 = l.issue(ConnectionId::new(&[1; 8]).unwrap(), ResetToken([1; 16]));
        assert_eq!(l.to_send, vec![1]);
        assert_eq!(l.retire(5, &c0).unwrap_err().code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(l.retire(0, &c0).unwrap_err().code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(l.retire(0, &c1.cid).unwrap().map(|c| c.seq), Some(0));
        assert_eq!(l.active_count(), 1);
        assert_eq!(l.retire(0, &c1.cid).unwrap(), None);
    }
}
