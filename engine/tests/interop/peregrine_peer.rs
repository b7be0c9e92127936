//! Peregrine's sans-IO connection as a [`SansIo`] / [`Peer`]: one `Connection`, created at once
//! (client) or from the first Initial that arrives (server). Every datagram goes to it: with one
//! connection per peer, no CID routing is needed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use peregrine_datapath::{Ecn, TxBuffer};
use peregrine_engine::connection::{
    ClientConfig, Connection, ConnectionError, Event, Incoming, RandomCidGenerator, ServerConfig,
};
use peregrine_engine::packet::{LongType, PartialDecode, PlainHeader};
use peregrine_engine::streams::{Dir, ReadError, Role, StreamEvent, StreamId, WriteError};
use peregrine_engine::VarInt;

use crate::app::{Ended, Peer, StreamError};
use crate::driver::SansIo;

/// Length of the connection IDs Peregrine issues in these tests.
const CID_LEN: usize = 8;
/// Most events drained in one pump (a runaway guard).
const MAX_EVENTS: usize = 100_000;
/// Largest piece handed to one stream write (Peregrine takes writes whole or not at all).
const WRITE_CHUNK: usize = 16 * 1024;

/// A Peregrine connection with its application-side bookkeeping.
pub struct PeregrinePeer {
    local: SocketAddr,
    conn: Option<Connection>,
    server: Option<ServerConfig>,
    role: Role,
    /// Streams the other side opened, not yet accepted: bidirectional, unidirectional.
    opened: [VecDeque<StreamId>; 2],
    connected: bool,
    /// Every event seen, in order (for failure messages).
    pub events: Vec<String>,
}

impl PeregrinePeer {
    /// A client at `local` connecting to `remote` as [`crate::certs::SERVER_NAME`].
    pub fn client(
        local: SocketAddr,
        remote: SocketAddr,
        config: &ClientConfig,
        now: Instant,
    ) -> Self {
        let cids = Box::new(RandomCidGenerator::new(CID_LEN, 0xc1));
        let conn = Connection::client(config, now, remote, crate::certs::SERVER_NAME, cids)
            .expect("Peregrine client connection");
        Self {
            local,
            conn: Some(conn),
            server: None,
            role: Role::Client,
            opened: [VecDeque::new(), VecDeque::new()],
            connected: false,
            events: Vec::new(),
        }
    }

    /// A server at `local` accepting the first client Initial that arrives.
    pub fn server(local: SocketAddr, config: ServerConfig) -> Self {
        Self {
            local,
            conn: None,
            server: Some(config),
            role: Role::Server,
            opened: [VecDeque::new(), VecDeque::new()],
            connected: false,
            events: Vec::new(),
        }
    }

    /// The connection, once there is one.
    pub fn conn(&mut self) -> Option<&mut Connection> {
        self.conn.as_mut()
    }

    /// Creates the server connection from a client's first Initial (else ignores the datagram).
    fn accept_connection(&mut self, now: Instant, remote: SocketAddr, data: &[u8]) {
        let Some(config) = self.server.as_ref() else { return };
        let Ok((pd, _)) = PartialDecode::new(data, CID_LEN, false) else { return };
        let PlainHeader::Long { ty: LongType::Initial, version, dst_cid, src_cid, .. } =
            pd.header().clone()
        else {
            return;
        };
        let incoming = Incoming { dst_cid, src_cid, version, retry: None };
        let cids = Box::new(RandomCidGenerator::new(CID_LEN, 0x5e));
        let conn = Connection::server(config, now, remote, incoming, cids)
            .expect("Peregrine server connection");
        self.conn = Some(conn);
    }

    /// Takes the next stream of `dir` the other side opened.
    fn accept(&mut self, dir: Dir) -> Option<u64> {
        self.pump();
        let id = self.opened[usize::from(dir == Dir::Uni)].pop_front()?;
        assert!(!id.is_local(self.role), "Opened is only reported for the peer's streams");
        Some(id.into_inner())
    }

    /// Drains connection and endpoint events.
    fn pump(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        for _ in 0..MAX_EVENTS {
            let Some(event) = conn.poll_event() else { break };
            match &event {
                Event::Connected => self.connected = true,
                Event::Stream(StreamEvent::Opened { id }) => {
                    self.opened[usize::from(id.dir() == Dir::Uni)].push_back(*id);
                }
                _ => {}
            }
            if !matches!(event, Event::Stream(StreamEvent::WriteComplete { .. })) {
                self.events.push(format!("{event:?}"));
            }
        }
        // One connection per peer: every datagram reaches it without routing.
        for _ in 0..MAX_EVENTS {
            if conn.poll_endpoint_event().is_none() {
                break;
            }
        }
    }
}

impl SansIo for PeregrinePeer {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, ecn: Ecn, data: &mut [u8]) {
        if self.conn.is_none() {
            self.accept_connection(now, remote, data);
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.handle_datagram(now, remote, ecn, data);
        }
        self.pump();
    }

    fn poll_transmit(&mut self, now: Instant, max_datagrams: usize, buf: &mut TxBuffer) -> bool {
        self.pump();
        let Some(conn) = self.conn.as_mut() else { return false };
        let Some(t) = conn.poll_transmit(now, buf.spare(), max_datagrams) else { return false };
        buf.advance(t.len);
        buf.meta.dst = t.dst;
        buf.meta.ecn = t.ecn;
        buf.meta.segment_size = t.segment_size;
        buf.meta.src_ip = None;
        true
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connection::poll_timeout)
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(conn) = self.conn.as_mut() {
            conn.handle_timeout(now);
        }
        self.pump();
    }
}

fn stream(id: u64) -> Result<StreamId, StreamError> {
    StreamId::from_u64(id).ok_or_else(|| other(format!("stream ID {id} out of range")))
}

fn other(e: impl std::fmt::Display) -> StreamError {
    StreamError::Other(e.to_string())
}

impl Peer for PeregrinePeer {
    fn name(&self) -> &'static str {
        "Peregrine"
    }

    fn is_connected(&self) -> bool {
        self.connected && self.conn.as_ref().is_some_and(|c| c.error().is_none())
    }

    fn ended(&self) -> Option<Ended> {
        Some(match self.conn.as_ref()?.error()? {
            ConnectionError::ApplicationClosed { code, reason } => {
                Ended::PeerApplication { code: *code, reason: reason.as_bytes().to_vec() }
            }
            ConnectionError::PeerTransportClose { code, reason, .. } => {
                Ended::PeerTransport { code: code.0, reason: reason.as_bytes().to_vec() }
            }
            ConnectionError::TransportError { code, .. } => Ended::LocalTransport { code: code.0 },
            ConnectionError::TimedOut => Ended::TimedOut,
            ConnectionError::VersionMismatch { .. } => Ended::VersionMismatch,
            ConnectionError::Reset => Ended::Reset,
            ConnectionError::LocallyClosed { .. } => Ended::LocallyClosed,
            // Every variant is mapped today; a future one still has a description.
            #[allow(unreachable_patterns)]
            other => Ended::Other(other.to_string()),
        })
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.conn.as_ref()?.alpn_protocol().map(<[u8]>::to_vec)
    }

    fn open_bi(&mut self) -> Option<u64> {
        self.conn()?.open(Dir::Bi).ok().map(StreamId::into_inner)
    }

    fn accept_bi(&mut self) -> Option<u64> {
        self.accept(Dir::Bi)
    }

    fn open_uni(&mut self) -> Option<u64> {
        self.conn()?.open(Dir::Uni).ok().map(StreamId::into_inner)
    }

    fn accept_uni(&mut self) -> Option<u64> {
        self.accept(Dir::Uni)
    }

    fn is_resumed(&self) -> Option<bool> {
        self.conn.as_ref().map(Connection::is_resumed)
    }

    fn early_data_accepted(&self) -> Option<bool> {
        use peregrine_engine::connection::EarlyDataState;
        match self.conn.as_ref()?.early_data_state() {
            EarlyDataState::Accepted => Some(true),
            EarlyDataState::Rejected => Some(false),
            EarlyDataState::NotAttempted | EarlyDataState::Pending => None,
        }
    }

    fn write(&mut self, id: u64, data: &[u8]) -> Result<usize, StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        let n = data.len().min(WRITE_CHUNK);
        match conn.write(id, Bytes::copy_from_slice(&data[..n]), false) {
            Ok(_) => Ok(n),
            Err(WriteError::Blocked) => Ok(0),
            Err(WriteError::Stopped(c)) => Err(StreamError::Stopped(c)),
            Err(e) => Err(other(e)),
        }
    }

    fn finish(&mut self, id: u64) -> Result<(), StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        conn.finish(id).map(|_| ()).map_err(other)
    }

    fn read(&mut self, id: u64, out: &mut Vec<u8>) -> Result<bool, StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        let mut buf = [0u8; 16 * 1024];
        // Bounded: each round either reads bytes that were received or returns.
        for _ in 0..1_000_000 {
            match conn.read(id, &mut buf) {
                Ok((n, fin)) => {
                    out.extend_from_slice(&buf[..n]);
                    if fin {
                        return Ok(true);
                    }
                    if n == 0 {
                        return Ok(false);
                    }
                }
                Err(ReadError::Blocked) => return Ok(false),
                Err(ReadError::Reset(c)) => return Err(StreamError::Reset(c)),
                Err(e) => return Err(other(e)),
            }
        }
        Err(other("read loop bound reached"))
    }

    fn reset(&mut self, id: u64, code: u64) -> Result<(), StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        conn.reset(id, code).map_err(other)
    }

    fn stop_sending(&mut self, id: u64, code: u64) -> Result<(), StreamError> {
        let id = stream(id)?;
        let conn = self.conn().ok_or(other("no connection"))?;
        conn.stop_sending(id, code).map_err(other)
    }

    fn close(&mut self, now: Instant, code: u64, reason: &[u8]) {
        if let Some(conn) = self.conn() {
            conn.close(now, VarInt::new(code).expect("code fits a varint"), reason);
        }
        self.pump();
    }

    fn summary(&self) -> String {
        let Some(conn) = self.conn.as_ref() else { return "Peregrine: no connection".into() };
        let s = conn.stats();
        format!(
            "Peregrine: {} datagrams sent, {} received, {} packets lost, {} dropped, {} PTOs, \
             {} congestion events, {} key updates, srtt {:?}, cwnd {}",
            s.datagrams_sent,
            s.datagrams_received,
            s.packets_lost,
            s.packets_dropped,
            s.pto_count,
            s.congestion_events,
            s.key_updates,
            s.smoothed_rtt,
            s.cwnd
        )
    }

    fn force_key_update(&mut self) -> bool {
        match self.conn() {
            Some(conn) => {
                conn.initiate_key_update();
                true
            }
            None => false,
        }
    }
}
