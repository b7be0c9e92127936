//! [`Endpoint`]: one worker's sans-IO endpoint. It owns the [`Router`] and the connections it
//! routes to (quinn-proto's shape), creates server connections for new clients and client
//! connections on request, keeps the router's tables current from the connections' endpoint
//! events, runs their timers, and builds their datagrams through the send [`Scheduler`].
//!
//! It never reads the clock or touches a socket: `now` comes in as an argument, datagrams come
//! in as byte slices, and outgoing datagrams are written into buffers the caller's queue
//! allocates. One identity per connection: the router's [`ConnectionHandle`].
//!
//! Connections report their own interests ([`Connection::interests`]): after anything touched
//! a connection (a datagram, a timer, an application call), [`Endpoint::refresh`] reads them and
//! puts the connection on the scheduler's ready list, re-arms its timer, routes its new
//! connection IDs, or removes it once drained. The caller's per-connection state `T` (the
//! application side) lives next to each connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use peregrine_datapath::{Ecn, Queue, TxBatch};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;

use super::issuer::CidIssuer;
use super::timers::TimerHeap;
use super::TableError;
use super::{
    AddressValidation, CidFormat, ConnectionHandle, DatagramEvent, ResetKey, Response, Router,
};
use crate::connection::{
    self, ClientConfig, ConnectError, Connection, EndpointEvent, ServerConfig,
};
use crate::crypto::Side;
use crate::scheduler::{CloseFlag, ConnectionSet, Scheduler, SchedulerStats};

/// What an [`Endpoint`] needs besides its router.
#[derive(Clone, Debug)]
pub struct EndpointParams {
    /// Accept new clients with this configuration (`None`: a client-only endpoint).
    pub server: Option<Arc<ServerConfig>>,
    /// Start client connections with this configuration (`None`: no [`Endpoint::connect`]).
    pub client: Option<Arc<ClientConfig>>,
    /// The worker index connection IDs carry (the router's).
    pub worker: u8,
    /// The static key of stateless reset tokens (the router's).
    pub reset_key: ResetKey,
    /// The connection ID format (the router's).
    pub cid_format: CidFormat,
    /// Seed of the per-connection random sources (connection IDs, packet number skips).
    pub seed: u64,
    /// Largest UDP payload the datapath carries: connections never advertise or probe more.
    pub max_udp_payload: usize,
    /// Record qlog events in every new connection (the caller writes them out).
    pub qlog: bool,
    /// Most datagrams per GSO train.
    pub max_gso_segments: usize,
    /// Most transmit buffers per flush.
    pub max_batch: usize,
    /// The port of the datapath queue (with a datagram's local IP, the address it arrived
    /// on: a server with a preferred address follows its client there).
    pub local_port: u16,
}

/// Why [`Endpoint::connect`] could not start a connection.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StartError {
    /// The endpoint has no client configuration.
    #[error("endpoint has no client configuration")]
    NotClient,
    /// The endpoint is shutting down.
    #[error("endpoint is shutting down")]
    ShuttingDown,
    /// The routing table refused the new connection's ID.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The connection itself could not be set up (version, TLS).
    #[error(transparent)]
    Setup(#[from] ConnectError),
}

/// What [`Endpoint::handle`] did with a datagram the caller must act on.
#[derive(Debug)]
pub enum Handled {
    /// Handed to this existing connection.
    Connection(ConnectionHandle),
    /// A new client: this server connection was created for it and took the datagram.
    Accepted(ConnectionHandle),
    /// It belongs to the worker with this index: forward it there.
    Forward(u8),
    /// Send this stateless response.
    Response(Response),
    /// Dropped (nothing to do).
    Dropped,
}

/// A connection as the endpoint keeps it.
#[derive(Debug)]
pub struct Entry<T> {
    /// The connection.
    pub conn: Connection,
    /// Its close flag, shared with whatever application handles it has.
    pub close: Arc<CloseFlag>,
    /// The caller's per-connection state.
    pub app: T,
    timer_at: Option<Instant>,
    timer_gen: u64,
    touched: bool,
    confirmed: bool,
    reset_token_added: bool,
}

/// Why a connection left the endpoint (see [`Endpoint::poll_removed`]).
#[derive(Debug)]
pub struct Removed<T> {
    /// Its handle (never reused).
    pub handle: ConnectionHandle,
    /// The connection, drained or dropped.
    pub entry: Entry<T>,
}

/// Counters of one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounters {
    /// Datagrams handed to connections.
    pub routed: u64,
    /// Datagrams dropped by the router.
    pub dropped: u64,
    /// Stateless responses produced.
    pub responses: u64,
    /// Timer expirations handled.
    pub timeouts: u64,
    /// Server connections created.
    pub accepted: u64,
    /// New clients refused (limits, shutdown, setup failure).
    pub refused: u64,
    /// NEW_TOKEN tokens minted for clients whose handshake was confirmed.
    pub new_tokens_sent: u64,
}

/// One worker's sans-IO endpoint. See the module documentation.
#[derive(Debug)]
pub struct Endpoint<T> {
    router: Router,
    params: EndpointParams,
    conns: FxHashMap<ConnectionHandle, Entry<T>>,
    scheduler: Scheduler,
    timers: TimerHeap,
    touched: Vec<ConnectionHandle>,
    removed: Vec<Removed<T>>,
    served: Vec<ConnectionHandle>,
    rng: ChaCha8Rng,
    accepting: bool,
    counters: EndpointCounters,
}

impl<T: Default> Endpoint<T> {
    /// An endpoint routing with `router`. The server and client transport settings are fitted
    /// to `params.max_udp_payload` once, here.
    pub fn new(router: Router, mut params: EndpointParams) -> Self {
        let max = params.max_udp_payload;
        if let Some(s) = params.server.as_mut() {
            let mut c = ServerConfig::clone(s);
            c.transport = c.transport.fit_datapath(max);
            *s = Arc::new(c);
        }
        if let Some(c) = params.client.as_mut() {
            let mut cc = ClientConfig::clone(c);
            cc.transport = cc.transport.fit_datapath(max);
            *c = Arc::new(cc);
        }
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Self {
            scheduler: Scheduler::new(params.max_gso_segments, params.max_batch),
            router,
            params,
            conns: FxHashMap::default(),
            timers: TimerHeap::default(),
            touched: Vec::new(),
            removed: Vec::new(),
            served: Vec::new(),
            rng,
            accepting: true,
            counters: EndpointCounters::default(),
        }
    }

    /// Handles one received datagram (decrypted in place in `data`).
    pub fn handle(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Ecn,
        data: &mut [u8],
    ) -> Handled {
        match self.router.handle(now, remote, local_ip, ecn, data) {
            DatagramEvent::Known(h) | DatagramEvent::StatelessReset(h) => {
                let Some(e) = self.conns.get_mut(&h) else { return Handled::Dropped };
                let local = local_ip.map(|ip| SocketAddr::new(ip, self.params.local_port));
                e.conn.handle_datagram_on(now, local, remote, ecn, data);
                self.counters.routed += 1;
                self.touch(h);
                Handled::Connection(h)
            }
            DatagramEvent::NewConnection(incoming) => self.accept(now, incoming, data),
            DatagramEvent::Forward(w) => Handled::Forward(w),
            DatagramEvent::Response(r) => {
                self.counters.responses += 1;
                Handled::Response(r)
            }
            DatagramEvent::Drop(_) => {
                self.counters.dropped += 1;
                Handled::Dropped
            }
        }
    }

    /// A new client's first Initial: create the server connection, or refuse it.
    fn accept(
        &mut self,
        now: Instant,
        incoming: super::IncomingClient,
        data: &mut [u8],
    ) -> Handled {
        let Some(server) = self.params.server.clone() else {
            self.counters.dropped += 1;
            return Handled::Dropped;
        };
        let refuse = |ep: &mut Self, incoming: &super::IncomingClient| {
            ep.counters.refused += 1;
            match ep.router.refuse(incoming) {
                Some(r) => {
                    ep.counters.responses += 1;
                    Handled::Response(r)
                }
                None => Handled::Dropped,
            }
        };
        if !self.accepting {
            return refuse(self, &incoming);
        }
        let accepted = match self.router.accept(&incoming) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(worker = self.params.worker, %e, "refusing a new connection");
                return refuse(self, &incoming);
            }
        };
        let retry = match incoming.validation {
            AddressValidation::Retry { retry_src_cid } => {
                Some((incoming.orig_dst_cid, retry_src_cid))
            }
            _ => None,
        };
        let ci = connection::Incoming {
            dst_cid: incoming.dst_cid,
            src_cid: incoming.src_cid,
            version: incoming.version,
            retry,
        };
        let seed = self.rng.next_u64();
        let cids = self.cids(accepted.local_cid, accepted.reset_token, seed);
        let conn =
            Connection::server_seeded(&server, now, incoming.remote, ci, Box::new(cids), seed);
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(worker = self.params.worker, %e, "server connection setup failed");
                self.router.remove_connection(accepted.handle);
                self.counters.refused += 1;
                return Handled::Dropped;
            }
        };
        if self.params.qlog {
            conn.enable_qlog(now);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
        //# If the validation succeeds, the server SHOULD then allow
        //# the handshake to proceed.
        if incoming.validation == AddressValidation::NewToken {
            conn.set_address_validated_by_token();
        }
        let local = incoming.local_ip.map(|ip| SocketAddr::new(ip, self.params.local_port));
        conn.handle_datagram_on(now, local, incoming.remote, incoming.ecn, data);
        self.insert(accepted.handle, conn, Arc::new(CloseFlag::new()));
        self.counters.accepted += 1;
        self.counters.routed += 1;
        Handled::Accepted(accepted.handle)
    }

    /// Starts a client connection to `remote` for `server_name`, sharing `close` with its
    /// handles.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        server_name: &str,
        close: Arc<CloseFlag>,
    ) -> Result<ConnectionHandle, StartError> {
        let Some(client) = self.params.client.clone() else {
            return Err(StartError::NotClient);
        };
        if !self.accepting {
            return Err(StartError::ShuttingDown);
        }
        let reg = self.router.connect()?;
        let seed = self.rng.next_u64();
        let token = self.router.reset_token(&reg.local_cid);
        let cids = self.cids(reg.local_cid, token, seed);
        let conn =
            Connection::client_seeded(&client, now, remote, server_name, Box::new(cids), seed);
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                self.router.remove_connection(reg.handle);
                return Err(StartError::Setup(e));
            }
        };
        if self.params.qlog {
            conn.enable_qlog(now);
        }
        self.insert(reg.handle, conn, close);
        Ok(reg.handle)
    }

    fn cids(
        &self,
        first: crate::cid::ConnectionId,
        token: crate::cid::ResetToken,
        seed: u64,
    ) -> CidIssuer {
        CidIssuer::new(
            (first, token),
            self.params.cid_format,
            self.params.worker,
            self.params.reset_key.clone(),
            seed,
        )
    }

    fn insert(&mut self, h: ConnectionHandle, conn: Connection, close: Arc<CloseFlag>) {
        let entry = Entry {
            conn,
            close,
            app: T::default(),
            timer_at: None,
            timer_gen: 0,
            touched: false,
            confirmed: false,
            reset_token_added: false,
        };
        self.conns.insert(h, entry);
        self.touch(h);
    }
}

impl<T> Endpoint<T> {
    /// The router (tables, token counters).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The connection `h` and the caller's state for it.
    pub fn get_mut(&mut self, h: ConnectionHandle) -> Option<&mut Entry<T>> {
        self.conns.get_mut(&h)
    }

    /// The connection `h`.
    pub fn get(&self, h: ConnectionHandle) -> Option<&Entry<T>> {
        self.conns.get(&h)
    }

    /// The datapath queue moved to another port ([`peregrine_datapath::Queue::rebind`]).
    pub fn set_local_port(&mut self, port: u16) {
        self.params.local_port = port;
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Handles of every connection held.
    pub fn handles(&self) -> Vec<ConnectionHandle> {
        self.conns.keys().copied().collect()
    }

    /// Counters.
    pub fn counters(&self) -> EndpointCounters {
        self.counters
    }

    /// The scheduler's counters.
    pub fn scheduler_stats(&self) -> SchedulerStats {
        self.scheduler.stats()
    }

    /// Connections waiting to send.
    pub fn ready_len(&self) -> usize {
        self.scheduler.ready_len()
    }

    /// Whether new connections are accepted and started.
    pub fn is_accepting(&self) -> bool {
        self.accepting
    }

    /// Marks `h` as touched: its events, interests and timer are looked at by the next
    /// [`Endpoint::poll_touched`] / [`Endpoint::refresh`].
    pub fn touch(&mut self, h: ConnectionHandle) {
        if let Some(e) = self.conns.get_mut(&h) {
            if !e.touched {
                e.touched = true;
                self.touched.push(h);
            }
        }
    }

    /// Takes the list of connections touched since the last call. For each, the caller hands
    /// out the connection's events to its application, then calls [`Endpoint::refresh`].
    pub fn take_touched(&mut self, into: &mut Vec<ConnectionHandle>) {
        into.clear();
        std::mem::swap(into, &mut self.touched);
        for h in into.iter() {
            if let Some(e) = self.conns.get_mut(h) {
                e.touched = false;
            }
        }
    }

    /// Whether connections were touched and not refreshed yet.
    pub fn has_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Acts on what connection `h` reports about itself: routes its new and retired
    /// connection IDs, tells the router when its handshake is confirmed, schedules it when it
    /// wants to transmit, re-arms its timer, and removes it once drained (then
    /// [`Endpoint::poll_removed`] yields it). A server connection whose handshake is
    /// confirmed gets its NEW_TOKEN token here, minted at `now`. Returns whether it is still
    /// held.
    pub fn refresh(&mut self, now: Instant, h: ConnectionHandle) -> bool {
        let Some(e) = self.conns.get_mut(&h) else { return false };
        while let Some(ev) = e.conn.poll_endpoint_event() {
            match ev {
                EndpointEvent::NewLocalCid { cid, .. } => {
                    let _ = self.router.insert_cid(h, cid);
                }
                EndpointEvent::RetiredLocalCid { cid, .. } => {
                    self.router.retire_cid(h, &cid);
                }
                EndpointEvent::Drained => {}
            }
        }
        if !e.confirmed && e.conn.is_handshake_confirmed() {
            e.confirmed = true;
            // No more Initial / 0-RTT routing by the client's DCID; not a handshake anymore.
            self.router.handshake_done(h);
            let send_token = self.params.server.as_ref().is_some_and(|s| s.new_tokens);
            if send_token && e.conn.side() == Side::Server && e.conn.close_state().is_open() {
                // Bound to the IP address the handshake validated (RFC 9000 §8.1.4).
                let ip = e.conn.remote_address().ip();
                if let Some(token) = self.router.new_token(now, ip) {
                    e.conn.queue_new_token(token);
                    self.counters.new_tokens_sent += 1;
                }
            }
        }
        if !e.reset_token_added && e.conn.side() == Side::Client && e.conn.is_handshake_complete() {
            e.reset_token_added = true;
            // The server's handshake connection ID is the one in use: remember its reset
            // token so a stateless reset (random DCID, unroutable) finds this connection.
            let token = e.conn.peer_params().and_then(|p| p.stateless_reset_token);
            if let Some(token) = token {
                let remote = e.conn.remote_address();
                let _ = self.router.add_peer_reset_token(h, remote, token);
            }
        }
        let interests = e.conn.interests();
        if interests.drained {
            self.remove(h);
            return false;
        }
        if interests.transmit {
            self.scheduler.schedule(h);
        }
        if let Some(f) = e.close_flag_ended(&interests) {
            f.mark_ended();
        }
        if interests.timeout != e.timer_at {
            e.timer_at = interests.timeout;
            e.timer_gen += 1;
            if let Some(t) = interests.timeout {
                self.timers.push(t, h, e.timer_gen);
            }
        }
        true
    }

    /// Removes connection `h` now, drained or not (a forced drain, or the endpoint going
    /// away); [`Endpoint::poll_removed`] yields it.
    pub fn remove(&mut self, h: ConnectionHandle) {
        let Some(entry) = self.conns.remove(&h) else { return };
        self.router.remove_connection(h);
        self.scheduler.remove(h);
        self.removed.push(Removed { handle: h, entry });
    }

    /// The next connection that left the endpoint.
    pub fn poll_removed(&mut self) -> Option<Removed<T>> {
        self.removed.pop()
    }

    /// Runs every due connection timer; touched connections follow in
    /// [`Endpoint::take_touched`].
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, h, generation)) = self.timers.pop_due(now) {
            let Some(e) = self.conns.get_mut(&h) else { continue };
            if e.timer_gen != generation {
                continue;
            }
            e.timer_at = None;
            e.conn.handle_timeout(now);
            self.counters.timeouts += 1;
            self.touch(h);
        }
        if self.timers.len() > 4 * self.conns.len() + 1024 {
            let conns = &self.conns;
            self.timers.compact(|h, g| conns.get(&h).is_some_and(|e| e.timer_gen == g));
        }
    }

    /// The earliest connection timer (possibly a stale one: a spurious wake-up at worst).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Builds the datagrams of ready connections into `batch` with buffers from `queue` (see
    /// [`Scheduler::flush`]); connections polled are refreshed (their timers moved).
    pub fn flush<Q: Queue + ?Sized>(&mut self, now: Instant, queue: &mut Q, batch: &mut TxBatch) {
        let mut served = std::mem::take(&mut self.served);
        served.clear();
        let mut set = Set(&mut self.conns);
        self.scheduler.flush(now, queue, batch, &mut set, &mut served);
        for &h in &served {
            self.refresh(now, h);
        }
        self.served = served;
    }

    /// The connections the last [`Endpoint::flush`] polled (some may be gone since).
    pub fn served(&self) -> &[ConnectionHandle] {
        &self.served
    }

    /// Stops accepting new clients and starting connections (graceful shutdown).
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Gives back the transmit buffer kept between flushes (call before sleeping with no
    /// connection left).
    pub fn release_spare(&mut self) {
        self.scheduler.release_spare();
    }
}

impl<T> Entry<T> {
    /// The flag to mark ended, once the connection is closed or closing.
    fn close_flag_ended(&self, i: &connection::Interests) -> Option<&CloseFlag> {
        (i.closed && !self.close.is_ended()).then_some(&*self.close)
    }
}

/// The connection table as the scheduler sees it.
struct Set<'a, T>(&'a mut FxHashMap<ConnectionHandle, Entry<T>>);

impl<T> ConnectionSet for Set<'_, T> {
    fn get(&mut self, h: ConnectionHandle) -> Option<(&mut Connection, &CloseFlag)> {
        self.0.get_mut(&h).map(|e| (&mut e.conn, &*e.close))
    }
}
