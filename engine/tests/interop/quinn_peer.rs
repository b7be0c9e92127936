//! quinn-proto (an independent QUIC implementation) as a [`SansIo`] / [`Peer`]: one `Endpoint`
//! with at most one `Connection`, its endpoint events routed back and forth.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir, EcnCodepoint,
    Endpoint, EndpointConfig, Event, HashedConnectionIdGenerator, ReadError, ServerConfig,
    StreamId, Transmit, VarInt, WriteError,
};

use peregrine_datapath::{Ecn, TxBuffer};

use crate::app::{Ended, Peer, StreamError};
use crate::driver::SansIo;

/// Most events drained in one pump (a runaway guard).
const MAX_EVENTS: usize = 10_000;

/// Upper bound of quinn-proto's UDP payload size (its MTU discovery stays below 1500).
const MAX_SEGMENT: usize = 1500;

/// A quinn-proto endpoint holding one connection.
pub struct QuinnPeer {
    endpoint: Endpoint,
    /// The endpoint's configuration (its stateless-reset key survives a [`QuinnPeer::restart`]).
    endpoint_config: Arc<EndpointConfig>,
    server_config: Option<Arc<ServerConfig>>,
    local: SocketAddr,
    conn: Option<(ConnectionHandle, Connection)>,
    /// Transmits the endpoint produced itself (stateless resets, refusals, ...).
    responses: VecDeque<(Transmit, Vec<u8>)>,
    scratch: Vec<u8>,
    connected: bool,
    lost: Option<ConnectionError>,
    /// Server: answer an Initial from an unvalidated address with a Retry.
    retry: bool,
    /// Server: why the last connection attempt could not be accepted (what the peer's attempt
    /// ended with while no connection exists).
    refused: Option<ConnectionError>,
    /// Every connection event seen, in order (stream events included).
    pub events: Vec<String>,
}

impl QuinnPeer {
    fn new(local: SocketAddr, seed: u8, server: Option<ServerConfig>) -> Self {
        let mut config = EndpointConfig::default();
        config.rng_seed(Some([seed; 32]));
        // A fixed CID-validation key, so a restarted endpoint still recognises its old CIDs
        // as its own (and answers them with stateless resets).
        let cid_key = u64::from(seed) * 0x9e37_79b9;
        config.cid_generator(move || Box::new(HashedConnectionIdGenerator::from_key(cid_key)));
        let (endpoint_config, server_config) = (Arc::new(config), server.map(Arc::new));
        let endpoint = Endpoint::new(endpoint_config.clone(), server_config.clone(), true, None);
        Self {
            endpoint,
            endpoint_config,
            server_config,
            local,
            conn: None,
            responses: VecDeque::new(),
            scratch: Vec::new(),
            connected: false,
            lost: None,
            retry: false,
            refused: None,
            events: Vec::new(),
        }
    }

    /// A client at `local` connecting to `remote` (as [`crate::certs::SERVER_NAME`]) at `now`.
    pub fn client(
        local: SocketAddr,
        remote: SocketAddr,
        config: ClientConfig,
        now: Instant,
    ) -> Self {
        let mut peer = Self::new(local, 1, None);
        let conn = peer
            .endpoint
            .connect(now, config, remote, crate::certs::SERVER_NAME)
            .expect("quinn-proto connect");
        peer.conn = Some(conn);
        peer
    }

    /// A server at `local` accepting the first connection that arrives (after a Retry round
    /// trip when `retry`).
    pub fn server(local: SocketAddr, config: ServerConfig, retry: bool) -> Self {
        Self { retry, ..Self::new(local, 2, Some(config)) }
    }

    /// Simulates a restart that lost all connection state but kept the stateless-reset key: a
    /// fresh endpoint with the same configuration and no connection.
    pub fn restart(&mut self) {
        self.endpoint =
            Endpoint::new(self.endpoint_config.clone(), self.server_config.clone(), true, None);
        self.conn = None;
        self.responses.clear();
        self.connected = false;
        self.lost = None;
        self.refused = None;
    }

    /// The connection, once there is one.
    pub fn conn(&mut self) -> Option<&mut Connection> {
        self.conn.as_mut().map(|(_, c)| c)
    }

    /// Routes endpoint events and records connection events.
    fn pump(&mut self) {
        let Some((ch, conn)) = self.conn.as_mut() else { return };
        for _ in 0..MAX_EVENTS {
            let Some(event) = conn.poll_endpoint_events() else { break };
            if let Some(reply) = self.endpoint.handle_event(*ch, event) {
                conn.handle_event(reply);
            }
        }
        for _ in 0..MAX_EVENTS {
            let Some(event) = conn.poll() else { break };
            match &event {
                Event::Connected => self.connected = true,
                Event::ConnectionLost { reason } => self.lost = Some(reason.clone()),
                _ => {}
            }
            self.events.push(format!("{event:?}"));
        }
    }
}

fn ecn_in(ecn: Ecn) -> Option<EcnCodepoint> {
    EcnCodepoint::from_bits(ecn.bits())
}

fn ecn_out(ecn: Option<EcnCodepoint>) -> Ecn {
    ecn.map_or(Ecn::NotEct, |e| Ecn::from_tos(e as u8))
}

/// Copies a quinn-proto transmit into a datapath buffer.
fn fill(buf: &mut TxBuffer, t: &Transmit, data: &[u8]) -> bool {
    if !buf.extend_from_slice(&data[..t.size]) {
        return false;
    }
    buf.meta.dst = t.destination;
    buf.meta.ecn = ecn_out(t.ecn);
    buf.meta.segment_size = t.segment_size;
    buf.meta.src_ip = None;
    true
}

impl SansIo for QuinnPeer {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, ecn: Ecn, data: &mut [u8]) {
        let data = BytesMut::from(&data[..]);
        self.scratch.clear();
        let local_ip = Some(self.local.ip());
        let event =
            self.endpoint.handle(now, remote, local_ip, ecn_in(ecn), data, &mut self.scratch);
        match event {
            None => {}
            Some(DatagramEvent::ConnectionEvent(ch, event)) => {
                if let Some((own, conn)) = self.conn.as_mut() {
                    if *own == ch {
                        conn.handle_event(event);
                    }
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.scratch.clear();
                if self.conn.is_some() {
                    let t = self.endpoint.refuse(incoming, &mut self.scratch);
                    self.responses.push_back((t, self.scratch.clone()));
                } else if self.retry && !incoming.remote_address_validated() {
                    let t = self.endpoint.retry(incoming, &mut self.scratch).expect("retry");
                    self.responses.push_back((t, self.scratch.clone()));
                } else {
                    match self.endpoint.accept(incoming, now, &mut self.scratch, None) {
                        Ok(conn) => self.conn = Some(conn),
                        Err(e) => {
                            // E.g. a corrupted Initial: that attempt is dropped, and the
                            // client's retransmission may still be accepted.
                            if let Some(t) = e.response {
                                self.responses.push_back((t, self.scratch.clone()));
                            }
                            self.events.push(format!("accept failed: {}", e.cause));
                            self.refused = Some(e.cause);
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.responses.push_back((t, self.scratch.clone()));
            }
        }
        self.pump();
    }

    fn poll_transmit(&mut self, now: Instant, max_datagrams: usize, buf: &mut TxBuffer) -> bool {
        self.pump();
        if let Some((t, data)) = self.responses.pop_front() {
            return fill(buf, &t, &data);
        }
        let Some((_, conn)) = self.conn.as_mut() else { return false };
        self.scratch.clear();
        // A GSO train must fit the buffer (64 KiB like Linux), whatever the segment size.
        let max_datagrams = max_datagrams.min(buf.capacity() / MAX_SEGMENT).max(1);
        let Some(t) = conn.poll_transmit(now, max_datagrams, &mut self.scratch) else {
            return false;
        };
        let ok = fill(buf, &t, &self.scratch);
        assert!(ok, "a {}-byte quinn-proto transmit does not fit a sim buffer", t.size);
        ok
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.conn.as_mut().and_then(|(_, c)| c.poll_timeout())
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, conn)) = self.conn.as_mut() {
            conn.handle_timeout(now);
        }
        self.pump();
    }
}

fn stream(id: u64) -> Result<StreamId, StreamError> {
    VarInt::from_u64(id).map(StreamId::from).map_err(other)
}

fn other(e: impl std::fmt::Display) -> StreamError {
    StreamError::Other(e.to_string())
}

fn code(c: u64) -> Result<VarInt, StreamError> {
    VarInt::from_u64(c).map_err(other)
}

impl Peer for QuinnPeer {
    fn name(&self) -> &'static str {
        "quinn-proto"
    }

    fn is_connected(&self) -> bool {
        self.connected && self.lost.is_none()
    }

    fn ended(&self) -> Option<Ended> {
        let error = match (&self.lost, &self.conn) {
            (Some(e), _) => e,
            (None, None) => self.refused.as_ref()?,
            (None, Some(_)) => return None,
        };
        Some(match error {
            ConnectionError::ApplicationClosed(c) => Ended::PeerApplication {
                code: c.error_code.into_inner(),
                reason: c.reason.to_vec(),
            },
            ConnectionError::ConnectionClosed(c) => {
                Ended::PeerTransport { code: c.error_code.into(), reason: c.reason.to_vec() }
            }
            ConnectionError::TransportError(e) => Ended::LocalTransport { code: e.code.into() },
            ConnectionError::TimedOut => Ended::TimedOut,
            ConnectionError::VersionMismatch => Ended::VersionMismatch,
            ConnectionError::Reset => Ended::Reset,
            ConnectionError::LocallyClosed => Ended::LocallyClosed,
            other => Ended::Other(other.to_string()),
        })
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        let (_, conn) = self.conn.as_ref()?;
        let data = conn.crypto_session().handshake_data()?;
        let data = data.downcast::<quinn_proto::crypto::rustls::HandshakeData>().ok()?;
        data.protocol
    }

    fn resends_rejected_0rtt(&self) -> bool {
        false
    }

    fn early_data_accepted(&self) -> Option<bool> {
        // quinn-proto: `accepted_0rtt` means something on a client only; a server has 0-RTT
        // keys (`has_0rtt`) only when it accepted.
        let c = &self.conn.as_ref()?.1;
        if !self.connected {
            None
        } else if self.server_config.is_some() {
            Some(c.has_0rtt())
        } else {
            c.has_0rtt().then(|| c.accepted_0rtt())
        }
    }

    fn open_bi(&mut self) -> Option<u64> {
        self.conn()?.streams().open(Dir::Bi).map(u64::from)
    }

    fn accept_bi(&mut self) -> Option<u64> {
        self.conn()?.streams().accept(Dir::Bi).map(u64::from)
    }

    fn open_uni(&mut self) -> Option<u64> {
        self.conn()?.streams().open(Dir::Uni).map(u64::from)
    }

    fn accept_uni(&mut self) -> Option<u64> {
        self.conn()?.streams().accept(Dir::Uni).map(u64::from)
    }

    fn write(&mut self, id: u64, data: &[u8]) -> Result<usize, StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        match conn.send_stream(id).write(data) {
            Ok(n) => Ok(n),
            Err(WriteError::Blocked) => Ok(0),
            Err(WriteError::Stopped(c)) => Err(StreamError::Stopped(c.into_inner())),
            Err(e) => Err(other(e)),
        }
    }

    fn finish(&mut self, id: u64) -> Result<(), StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        conn.send_stream(id).finish().map_err(other)
    }

    fn read(&mut self, id: u64, out: &mut Vec<u8>) -> Result<bool, StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        let mut recv = conn.recv_stream(id);
        let mut chunks = recv.read(true).map_err(other)?;
        let result = loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk.bytes),
                Ok(None) => break Ok(true),
                Err(ReadError::Blocked) => break Ok(false),
                Err(ReadError::Reset(c)) => break Err(StreamError::Reset(c.into_inner())),
            }
        };
        let _ = chunks.finalize();
        result
    }

    fn reset(&mut self, id: u64, c: u64) -> Result<(), StreamError> {
        let (id, c) = (stream(id)?, code(c)?);
        let conn = self.conn().ok_or(other("no connection"))?;
        conn.send_stream(id).reset(c).map_err(other)
    }

    fn stop_sending(&mut self, id: u64, c: u64) -> Result<(), StreamError> {
        let (id, c) = (stream(id)?, code(c)?);
        let conn = self.conn().ok_or(other("no connection"))?;
        conn.recv_stream(id).stop(c).map_err(other)
    }

    fn close(&mut self, now: Instant, code: u64, reason: &[u8]) {
        if let Some(conn) = self.conn() {
            let code = VarInt::from_u64(code).expect("code fits a varint");
            conn.close(now, code, Bytes::copy_from_slice(reason));
        }
        self.pump();
    }

    fn summary(&self) -> String {
        let Some((_, conn)) = self.conn.as_ref() else {
            return "quinn-proto: no connection".into();
        };
        let s = conn.stats();
        format!(
            "quinn-proto: {} datagrams sent, {} received, {} packets lost, {} congestion events, \
             rtt {:?}, cwnd {}",
            s.udp_tx.datagrams,
            s.udp_rx.datagrams,
            s.path.lost_packets,
            s.path.congestion_events,
            s.path.rtt,
            s.path.cwnd
        )
    }

    fn quinn_frames_rx(&self) -> Option<quinn_proto::FrameStats> {
        self.conn.as_ref().map(|(_, c)| c.stats().frame_rx)
    }

    fn force_key_update(&mut self) -> bool {
        match self.conn() {
            Some(conn) => {
                conn.force_key_update();
                true
            }
            None => false,
        }
    }
}
