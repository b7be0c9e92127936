//! The server side of the router: new clients' Initials, address validation, Retry,
//! Version Negotiation and refusals.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use peregrine_datapath::Ecn;

use super::{
    respond, response, AcceptError, Accepted, AddressValidation, DatagramEvent, DropReason,
    IncomingClient, Response, ResponseDatagram, ResponseKind, RetryPolicy, Router, TokenError,
    TokenValidation, MIN_INITIAL_DCID_LEN,
};
use crate::cid::ConnectionId;
use crate::error::TransportErrorCode;
use crate::packet::{InvariantHeader, PartialDecode, PlainHeader, MIN_INITIAL_DATAGRAM_SIZE};

impl Router {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
    //# If a server receives a packet that indicates an unsupported version
    //# and if the packet is large enough to initiate a new connection for
    //# any supported version, the server SHOULD send a Version Negotiation
    //# packet as described in Section 6.1.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
    //# Servers MUST drop smaller packets that specify unsupported versions.
    pub(super) fn version_negotiation(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        inv: &InvariantHeader<'_>,
        len: usize,
    ) -> DatagramEvent {
        if self.config.server.is_none() {
            return DatagramEvent::Drop(DropReason::UnsupportedVersion);
        }
        if len < MIN_INITIAL_DATAGRAM_SIZE {
            return DatagramEvent::Drop(DropReason::UnsupportedVersionTooSmall);
        }
        if !self.response_limiter.try_acquire(now) {
            return DatagramEvent::Drop(DropReason::ResponseRateLimited);
        }
        match response::version_negotiation(inv, &self.config.versions, &mut self.rng) {
            Ok(bytes) => respond(ResponseKind::VersionNegotiation, remote, local_ip, bytes),
            Err(_) => DatagramEvent::Drop(DropReason::Malformed),
        }
    }

    /// A client's Initial for no known connection: validate its token, apply limits and the
    /// Retry policy.
    pub(super) fn new_initial(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Ecn,
        packet: &PartialDecode,
        datagram: &[u8],
    ) -> DatagramEvent {
        let Some(server) = &self.config.server else {
            return DatagramEvent::Drop(DropReason::NotServer);
        };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
        //# A server MUST discard an Initial packet that is carried in a UDP
        //# datagram with a payload that is smaller than the smallest allowed
        //# maximum datagram size of 1200 bytes.
        if datagram.len() < MIN_INITIAL_DATAGRAM_SIZE {
            return DatagramEvent::Drop(DropReason::InitialTooSmall);
        }
        let PlainHeader::Long { version, dst_cid, src_cid, .. } = *packet.header() else {
            return DatagramEvent::Drop(DropReason::Malformed);
        };
        let token = packet.token(datagram);
        let unix = self.clock.unix_secs(now);
        let mut checked =
            server.token_key.validate(token, remote, &dst_cid, unix, &server.lifetimes);
        // A token that does not open under our key may be a Retry token of ours (key changed)
        // or any server's NEW_TOKEN token whose first octet happens to read "Retry". Only an
        // Initial sent to a connection ID of ours (a Retry's Source Connection ID) can follow
        // one of our Retries: anything else proceeds as if it had no token (RFC 9000 §8.1.3),
        // as quinn does for every token it cannot open.
        if checked == TokenValidation::InvalidRetry(TokenError::Unauthentic)
            && (dst_cid.len() != self.config.cid_format.len()
                || self.config.cid_format.decode_worker(&dst_cid) != Some(self.config.worker))
        {
            checked = TokenValidation::Ignored(TokenError::Unauthentic);
        }
        match checked {
            TokenValidation::None => {}
            TokenValidation::Retry { .. } => self.tokens.retry_tokens_accepted += 1,
            TokenValidation::NewToken => self.tokens.new_tokens_accepted += 1,
            TokenValidation::Ignored(_) => self.tokens.tokens_ignored += 1,
            TokenValidation::InvalidRetry(_) => self.tokens.invalid_retry_tokens += 1,
        }
        let (orig_dst_cid, validation, ignored_token) = match checked {
            TokenValidation::None => (dst_cid, AddressValidation::None, None),
            TokenValidation::Retry { orig_dst_cid, retry_src_cid } => {
                (orig_dst_cid, AddressValidation::Retry { retry_src_cid }, None)
            }
            TokenValidation::NewToken => (dst_cid, AddressValidation::NewToken, None),
            //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
            //# If the token is invalid, then the
            //# server SHOULD proceed as if the client did not have a validated
            //# address, including potentially sending a Retry packet.
            TokenValidation::Ignored(e) => (dst_cid, AddressValidation::None, Some(e)),
            //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.2
            //# Instead, the
            //# server SHOULD immediately close (Section 10.2) the connection with an
            //# INVALID_TOKEN error.
            TokenValidation::InvalidRetry(_) => {
                if !self.response_limiter.try_acquire(now) {
                    return DatagramEvent::Drop(DropReason::ResponseRateLimited);
                }
                let code = TransportErrorCode::INVALID_TOKEN;
                return self.close(
                    ResponseKind::InvalidToken,
                    code,
                    version,
                    dst_cid,
                    src_cid,
                    remote,
                    local_ip,
                );
            }
        };
        // The client's own rule; quinn enforces it too. After a Retry the DCID is ours.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-7.2
        //# This
        //# Destination Connection ID MUST be at least 8 bytes in length.
        let retried = matches!(validation, AddressValidation::Retry { .. });
        if !retried && dst_cid.len() < MIN_INITIAL_DCID_LEN {
            return DatagramEvent::Drop(DropReason::InitialDcidTooShort);
        }
        if self.table.connections() >= server.max_connections {
            if !self.response_limiter.try_acquire(now) {
                return DatagramEvent::Drop(DropReason::ResponseRateLimited);
            }
            let code = TransportErrorCode::CONNECTION_REFUSED;
            return self.close(
                ResponseKind::Refused,
                code,
                version,
                dst_cid,
                src_cid,
                remote,
                local_ip,
            );
        }
        let full = self.table.handshakes() >= server.max_handshakes;
        let retry = match server.retry {
            RetryPolicy::Never => false,
            RetryPolicy::Always => true,
            RetryPolicy::AboveHandshakes(n) => self.table.handshakes() >= n || full,
        };
        if full && !retry && validation == AddressValidation::None {
            return DatagramEvent::Drop(DropReason::TooManyHandshakes);
        }
        let incoming = IncomingClient {
            received: now,
            remote,
            local_ip,
            ecn,
            version,
            dst_cid,
            src_cid,
            orig_dst_cid,
            validation,
            ignored_token,
        };
        if retry && validation == AddressValidation::None {
            if !self.response_limiter.try_acquire(now) {
                return DatagramEvent::Drop(DropReason::ResponseRateLimited);
            }
            return match self.retry(now, &incoming) {
                Some(r) => {
                    self.tokens.retries += 1;
                    DatagramEvent::Response(r)
                }
                None => DatagramEvent::Drop(DropReason::Malformed),
            };
        }
        DatagramEvent::NewConnection(incoming)
    }

    /// A Retry answering `incoming`, with a fresh token; `None` when the client already
    /// followed a Retry (a second one is forbidden) or this router is not a server.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.2
    //# In response to processing an Initial packet containing a token that
    //# was provided in a Retry packet, a server cannot send another Retry
    //# packet; it can only refuse the connection or permit it to proceed.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.1
    //# A server MUST NOT send more than one Retry
    //# packet in response to a single UDP datagram.
    pub fn retry(&mut self, now: Instant, incoming: &IncomingClient) -> Option<Response> {
        if matches!(incoming.validation, AddressValidation::Retry { .. }) {
            return None;
        }
        self.config.server.as_ref()?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.1
        //# This value MUST NOT be equal to the Destination
        //# Connection ID field of the packet sent by the client.
        let retry_scid = self.fresh_cid(Some(&incoming.dst_cid)).ok()?;
        let server = self.config.server.as_ref()?;
        let unix = self.clock.unix_secs(now);
        let token = server.token_key.seal_retry(
            &mut self.rng,
            incoming.remote,
            &incoming.dst_cid,
            &retry_scid,
            unix,
        );
        let bytes = response::retry(
            incoming.version,
            &incoming.src_cid,
            &retry_scid,
            &incoming.dst_cid,
            &token,
            &mut self.rng,
        )
        .ok()?;
        Some(Response {
            kind: ResponseKind::Retry,
            transmit: ResponseDatagram::new(incoming.remote, incoming.local_ip, bytes),
        })
    }

    /// An Initial with CONNECTION_CLOSE (CONNECTION_REFUSED) refusing `incoming`, for a caller
    /// that declines a [`DatagramEvent::NewConnection`]; `None` only for an unknown version.
    pub fn refuse(&mut self, incoming: &IncomingClient) -> Option<Response> {
        let code = TransportErrorCode::CONNECTION_REFUSED;
        match self.close(
            ResponseKind::Refused,
            code,
            incoming.version,
            incoming.dst_cid,
            incoming.src_cid,
            incoming.remote,
            incoming.local_ip,
        ) {
            DatagramEvent::Response(r) => Some(r),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn close(
        &mut self,
        kind: ResponseKind,
        code: TransportErrorCode,
        version: u32,
        initial_dcid: ConnectionId,
        client_scid: ConnectionId,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
    ) -> DatagramEvent {
        let Ok(local_cid) = self.fresh_cid(Some(&initial_dcid)) else {
            return DatagramEvent::Drop(DropReason::Malformed);
        };
        match response::initial_close(version, &initial_dcid, &client_scid, &local_cid, code) {
            Ok(bytes) => respond(kind, remote, local_ip, bytes),
            Err(_) => DatagramEvent::Drop(DropReason::Malformed),
        }
    }

    /// Registers the connection the caller created for `incoming` (after
    /// [`DatagramEvent::NewConnection`]): routes the client's Initial and 0-RTT packets that
    /// still carry its chosen DCID, issues the connection's first local connection ID and
    /// counts it as a handshake in progress. Call it before handling the next datagram, or a
    /// retransmitted Initial is reported as new again.
    pub fn accept(&mut self, incoming: &IncomingClient) -> Result<Accepted, AcceptError> {
        let server = self.config.server.as_ref().ok_or(AcceptError::NotServer)?;
        if self.table.connections() >= server.max_connections {
            return Err(AcceptError::TooManyConnections);
        }
        if self.table.get_initial(&incoming.dst_cid, incoming.remote).is_some() {
            return Err(AcceptError::AlreadyAccepted);
        }
        let local_cid = self.fresh_cid(Some(&incoming.dst_cid))?;
        let handle = self.alloc_handle();
        self.table.insert_connection(handle, true);
        self.table.insert_initial(handle, incoming.dst_cid, incoming.remote)?;
        self.table.insert_cid(handle, local_cid)?;
        Ok(Accepted { handle, local_cid, reset_token: self.config.reset_key.token(&local_cid) })
    }
}
