//! [`Endpoint`]: binds worker threads to datapath queues, starts and accepts connections,
//! shuts down gracefully with idempotent accounting (DESIGN.md invariant 3).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_datapath::Queue;

use super::connection::{Connecting, Connection};
use super::sync::block_on;
use super::ShutdownError;
use crate::app::{ConnectionHandler, ServiceFactory};
use crate::connection::{ClientConfig, ServerConfig};
use crate::endpoint::CidFormat;
use crate::handoff::shared::{ConnShared, Counters};
use crate::handoff::{abandon, Command, ConnError, WakingCell};
use crate::varint::VarInt;
use crate::worker::accounting::Accounting;
use crate::worker::inbox::Inbox;
use crate::worker::{
    self, AcceptQueue, Clock, Driver, EndpointCtx, EndpointKeys, SystemClock, WorkerConfig,
    WorkerStats,
};

/// How long dropping an endpoint waits for its workers to exit before detaching them.
const DROP_JOIN_WAIT: Duration = Duration::from_secs(1);

/// What an endpoint does: accept (with a server configuration), connect (with a client
/// configuration), or both, on how many workers, and who serves accepted connections.
#[derive(Clone)]
pub struct EndpointConfig {
    /// Server side: TLS and transport settings for accepted connections. Default none.
    pub server: Option<ServerConfig>,
    /// Client side: TLS and transport settings for [`Endpoint::connect`]. Default none.
    pub client: Option<ClientConfig>,
    /// Worker threads: pinning, busy-poll, batch sizes.
    pub worker: WorkerConfig,
    /// Worker threads for [`Endpoint::bind`] (one SO_REUSEPORT socket each). Default 1.
    pub workers: usize,
    /// The application that serves accepted connections on their workers: each worker gets
    /// its own [`crate::app::Service`] from this factory, and connections it declines (or all,
    /// without a service) go to [`Endpoint::accept`]. Default none.
    pub service: Option<ServiceFactory>,
    /// Derive every key and random seed of the endpoint from this value instead of the OS's
    /// random source (reproducible runs and tests; never in production: reset and token keys
    /// become guessable). Default none.
    pub seed: Option<u64>,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("server", &self.server)
            .field("client", &self.client)
            .field("worker", &self.worker)
            .field("workers", &self.workers)
            .field("service", &self.service.is_some())
            .field("seed", &self.seed)
            .finish()
    }
}

impl EndpointConfig {
    /// A server endpoint configuration.
    pub fn server(server: ServerConfig) -> Self {
        Self {
            server: Some(server),
            client: None,
            worker: WorkerConfig::default(),
            workers: 1,
            service: None,
            seed: None,
        }
    }

    /// A client endpoint configuration.
    pub fn client(client: ClientConfig) -> Self {
        Self {
            server: None,
            client: Some(client),
            worker: WorkerConfig::default(),
            workers: 1,
            service: None,
            seed: None,
        }
    }

    /// The format of the connection IDs the endpoint issues: the server's
    /// [`ServerConfig::cid_format`] when set, else [`CidFormat::default`]. Its worker octet is
    /// what [`Endpoint::bind`] steers datagrams by.
    pub fn cid_format(&self) -> CidFormat {
        self.server.as_ref().and_then(|s| s.cid_format).unwrap_or_default()
    }

    /// Serves accepted connections with handlers from `service` (see [`Self::service`]).
    pub fn with_service(mut self, service: ServiceFactory) -> Self {
        self.service = Some(service);
        self
    }
}

/// Endpoint-wide counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Connections live now.
    pub live_connections: u64,
    /// Connections ever created.
    pub opened: u64,
    /// Connections ever removed (each exactly once).
    pub closed: u64,
    /// Times "drained" was signalled (0 before shutdown, exactly 1 after).
    pub drained_signals: u64,
    /// Removals that found the count at zero (a bookkeeping bug if ever non-zero).
    pub accounting_underflows: u64,
    /// Writes handed to workers.
    pub writes: u64,
    /// Write completions delivered.
    pub completions: u64,
    /// Completions that found their write already completed (a bug if ever non-zero).
    pub duplicate_completions: u64,
    /// Writes delivered.
    pub delivered: u64,
    /// Writes accepted, then cancelled.
    pub cancelled: u64,
    /// Writes refused.
    pub refused: u64,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
}

/// What a shutdown did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that were live when it began.
    pub live_at_start: u64,
    /// Whether the graceful period ran out and remaining connections were dropped.
    pub forced: bool,
}

/// A QUIC endpoint: worker threads, each owning a datapath queue and its connections.
///
/// `Send + Sync`; share it by reference or in an `Arc`. Dropping it stops the workers:
/// unfinished writes complete as cancelled ([`crate::streams::CancelReason::EndpointDropped`]).
pub struct Endpoint {
    ctx: Arc<EndpointCtx>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    local_addr: SocketAddr,
    next_worker: AtomicU64,
    shutdown_started: AtomicBool,
    live_at_shutdown: AtomicU64,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds `config.workers` UDP sockets sharing `addr` (SO_REUSEPORT), one per worker,
    /// steered by the worker octet of the connection IDs (`UdpQueue::open_steered_group`).
    pub fn bind(addr: SocketAddr, config: EndpointConfig) -> std::io::Result<Self> {
        let n = config.workers.max(1);
        let udp = UdpConfig::new(addr).with_reuse_port(n > 1);
        let octet = config.cid_format().worker_offset() as u8;
        let queues = if n > 1 {
            UdpQueue::open_steered_group(&udp, n, octet)?
        } else {
            vec![UdpQueue::open(&udp)?]
        };
        Self::with_queues(queues, config)
    }

    /// A server on `addr` with one worker.
    pub fn server(addr: SocketAddr, server: ServerConfig) -> std::io::Result<Self> {
        Self::bind(addr, EndpointConfig::server(server))
    }

    /// A client on `addr` (use port 0) with one worker.
    pub fn client(addr: SocketAddr, client: ClientConfig) -> std::io::Result<Self> {
        Self::bind(addr, EndpointConfig::client(client))
    }

    /// An endpoint over the given queues, one worker thread each (UDP, simulated or custom
    /// datapaths).
    pub fn with_queues<Q: Queue + 'static>(
        queues: Vec<Q>,
        config: EndpointConfig,
    ) -> std::io::Result<Self> {
        let (ctx, seed, local_addr) = Self::context(&queues, &config, Arc::new(SystemClock))?;
        let threads = worker::spawn(queues, &config.worker, &seed, &ctx)?;
        Ok(Self::from_parts(ctx, threads, local_addr))
    }

    /// An endpoint over the given queues whose workers run only when the caller steps them
    /// ([`Driver::turn`]), reading the time from `clock` (a [`crate::worker::ManualClock`], the
    /// simulated network): whole endpoints on virtual time, deterministic with
    /// [`EndpointConfig::seed`]. The handles work as with threads; blocking calls would wait
    /// for turns that never come, so use the async ones and step the drivers.
    pub fn manual<Q: Queue + 'static>(
        queues: Vec<Q>,
        config: EndpointConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<(Self, Vec<Driver>)> {
        let (ctx, seed, local_addr) = Self::context(&queues, &config, clock)?;
        let mut drivers = Vec::with_capacity(queues.len());
        for (i, q) in queues.into_iter().enumerate() {
            drivers.push(Driver::new(worker::build(i, q, &config.worker, &seed, &ctx)?));
        }
        Ok((Self::from_parts(ctx, Vec::new(), local_addr), drivers))
    }

    fn context<Q: Queue>(
        queues: &[Q],
        config: &EndpointConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<(Arc<EndpointCtx>, EndpointKeys, SocketAddr)> {
        if queues.is_empty() || queues.len() > 256 {
            return Err(std::io::Error::other("an endpoint needs 1..=256 queues"));
        }
        let local_addr = queues[0].local_addr();
        let n = queues.len();
        let inboxes = (0..n).map(|_| Inbox::new().map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        let ctx = Arc::new(EndpointCtx {
            inboxes,
            accounting: Accounting::default(),
            counters: Arc::new(Counters::default()),
            incoming: WakingCell::new(AcceptQueue::default()),
            server: config.server.clone().map(Arc::new),
            client: config.client.clone().map(Arc::new),
            service: config.service.clone(),
            worker_stats: (0..n).map(|_| WakingCell::new(WorkerStats::default())).collect(),
            stopped: AtomicBool::new(false),
            clock,
        });
        let mut seed = EndpointKeys::new(config.seed);
        if let Some(key) = config.server.as_ref().and_then(|s| s.reset_key) {
            seed.reset_key = crate::endpoint::ResetKey::new(&key);
        }
        seed.cid_format = config.cid_format();
        Ok((ctx, seed, local_addr))
    }

    fn from_parts(
        ctx: Arc<EndpointCtx>,
        threads: Vec<std::thread::JoinHandle<()>>,
        local_addr: SocketAddr,
    ) -> Self {
        Self {
            ctx,
            threads: Mutex::new(threads),
            local_addr,
            next_worker: AtomicU64::new(0),
            shutdown_started: AtomicBool::new(false),
            live_at_shutdown: AtomicU64::new(0),
        }
    }

    /// The local address of the first queue.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a connection to `addr` authenticating `server_name`; await the [`Connecting`] or
    /// call [`Connecting::wait`].
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Connecting, ConnError> {
        let shared = self.new_client(addr)?;
        let conn = Connection::new(shared.clone(), self.ctx.clone());
        conn.post_command(Command::Connect { server_name: server_name.to_owned(), conn: shared });
        Ok(Connecting::new(conn))
    }

    /// Starts a connection to `addr` authenticating `server_name`, served by `handler` on the
    /// worker that owns it (see [`crate::app`]): its events are calls on the handler, on that
    /// worker's thread. A start that fails later is reported to
    /// [`ConnectionHandler::on_start_failed`].
    pub fn connect_with(
        &self,
        addr: SocketAddr,
        server_name: &str,
        handler: Box<dyn ConnectionHandler + Send>,
    ) -> Result<(), ConnError> {
        let shared = self.new_client(addr)?;
        let cmd = Command::ConnectWith {
            server_name: server_name.to_owned(),
            conn: shared.clone(),
            handler,
        };
        if self.ctx.stopped.load(Ordering::Acquire) {
            abandon(cmd);
            return Err(ConnError::EndpointStopped);
        }
        self.ctx.inboxes[shared.worker].post(cmd);
        Ok(())
    }

    fn new_client(&self, addr: SocketAddr) -> Result<Arc<ConnShared>, ConnError> {
        if self.ctx.client.is_none() {
            return Err(ConnError::NotClient);
        }
        if self.ctx.accounting.is_shutting_down() {
            return Err(ConnError::ShuttingDown);
        }
        let n = self.ctx.inboxes.len() as u64;
        let worker = (self.next_worker.fetch_add(1, Ordering::Relaxed) % n) as usize;
        Ok(Arc::new(ConnShared::new(worker, addr)))
    }

    /// The next incoming connection whose handshake completed; `None` once the endpoint
    /// shuts down or stops.
    pub async fn accept(&self) -> Option<Connection> {
        let ctx = self.ctx.clone();
        poll_fn(move |cx| {
            ctx.incoming.poll(cx, |q| match q.queue.pop_front() {
                Some(c) => Some(Some(c)),
                None if q.closed => Some(None),
                None => None,
            })
        })
        .await
        .map(|shared| Connection::new(shared, self.ctx.clone()))
    }

    /// Blocking [`Endpoint::accept`]; `None` also when `timeout` passes.
    pub fn accept_blocking(&self, timeout: Option<Duration>) -> Option<Connection> {
        block_on(self.accept(), timeout).ok().flatten()
    }

    /// Graceful shutdown: refuses new connections, closes every live one (application code 0),
    /// and waits until all drained, at most `timeout`: three quarters of it for a clean close,
    /// then remaining connections are dropped. "Drained" is signalled exactly once however many
    /// times this is called and however the connections end. Never waits on blocked I/O: when a
    /// worker is stuck, returns [`ShutdownError::TimedOut`] at the deadline.
    pub fn shutdown(&self, timeout: Duration) -> Result<ShutdownReport, ShutdownError> {
        if !self.shutdown_started.swap(true, Ordering::AcqRel) {
            self.live_at_shutdown.store(self.ctx.accounting.live(), Ordering::Relaxed);
            self.ctx.accounting.begin_shutdown();
            // Connections nobody accepted yet are being closed too: accept yields no more.
            self.ctx.incoming.update(|q| {
                q.queue.clear();
                q.closed = true;
            });
            for inbox in &self.ctx.inboxes {
                inbox.post(Command::Shutdown {
                    code: VarInt::from_u32(0),
                    reason: b"shutdown".to_vec(),
                });
            }
        }
        let live_at_start = self.live_at_shutdown.load(Ordering::Relaxed);
        let graceful = timeout.mul_f64(0.75);
        if block_on(self.drained(), Some(graceful)).is_ok() {
            return Ok(ShutdownReport { live_at_start, forced: false });
        }
        for inbox in &self.ctx.inboxes {
            inbox.post(Command::ForceDrain);
        }
        match block_on(self.drained(), Some(timeout.saturating_sub(graceful))) {
            Ok(()) => Ok(ShutdownReport { live_at_start, forced: true }),
            Err(_) => Err(ShutdownError::TimedOut { live: self.ctx.accounting.live() }),
        }
    }

    /// Resolves once a shutdown began and every connection is gone.
    pub async fn drained(&self) {
        let ctx = self.ctx.clone();
        poll_fn(move |cx| ctx.accounting.drained.poll(cx, |d| d.then_some(()))).await
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        let c = &self.ctx.counters;
        let a = &self.ctx.accounting;
        let r = |x: &AtomicU64| x.load(Ordering::Relaxed);
        EndpointStats {
            live_connections: a.live(),
            opened: r(&a.opened_total),
            closed: r(&a.closed_total),
            drained_signals: r(&a.drained_signals),
            accounting_underflows: r(&a.underflows),
            writes: r(&c.writes_posted),
            completions: r(&c.completions),
            duplicate_completions: r(&c.duplicate_completions),
            delivered: r(&c.delivered),
            cancelled: r(&c.cancelled),
            refused: r(&c.refused),
            workers: self.ctx.worker_stats.iter().map(|m| m.with(|s| s.clone())).collect(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.ctx.stopped.store(true, Ordering::Release);
        for inbox in &self.ctx.inboxes {
            inbox.post(Command::Stop);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = crate::worker::clock::now() + DROP_JOIN_WAIT;
        for t in threads {
            // A worker stuck in I/O is detached, never waited on forever.
            while !t.is_finished() && crate::worker::clock::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
