//! The per-core runtime: worker threads that each own a datapath [`Queue`] and a sans-IO
//! [`Endpoint`] (router plus connections), drive them with the clock and the datapath, and run
//! the applications of their connections (DESIGN.md "Threads: one owner per connection").
//!
//! One turn ([`Worker::turn`]): receive a batch → the endpoint routes each datagram (to an
//! owned connection, a new server connection, a stateless answer) or it goes over the
//! lock-free inbox to the owning worker → apply commands from handles → run due connection
//! and handler timers → hand each touched connection's events to its application (the
//! handles' waking cells, or a [`crate::app::ConnectionHandler`] called right here) → flush the
//! send scheduler → transmit. Between turns the thread sleeps on the queue until the next
//! timer, woken early by a handle's command ([`Inbox`]). A worker can also be stepped by hand
//! on virtual time ([`Driver`]).
//!
//! Files: `clock` (the only clock reads of the engine, behind [`Clock`]), `inbox` (commands
//! and wake-up), `accounting` (idempotent connection counting for shutdown), `app` (who serves
//! each connection, handler timers), `dispatch` (events to applications, timed), `handles`
//! (the thread-based handles' per-connection state), `rx` (receive and routing), `commands`
//! (the handles' commands), `driver` (stepping by hand), `qlog` (per-connection trace files),
//! `keylog` (the TLS key log file).
//!
//! The worker is the one module that reads the clock, and only through `clock.rs` (the one file
//! that opts out of clippy's `disallowed_methods`): the sans-IO core takes `now` from here.

pub(crate) mod accounting;
mod app;
pub mod clock;
mod commands;
mod dispatch;
mod driver;
mod handles;
pub(crate) mod inbox;
pub(crate) mod keylog;
mod qlog;
mod rx;

pub use clock::{Clock, ManualClock, SystemClock};
pub use driver::Driver;
pub(crate) use handles::STREAM_RESUME_BELOW;

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_datapath::{Queue, QueueStats, RxBatch, TxBatch};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::app::{Service, ServiceFactory, WorkerInfo};
use crate::connection::{ClientConfig, ServerConfig};
use crate::endpoint::{
    CidFormat, ConnectionHandle, Endpoint, EndpointCounters, EndpointParams, ResetKey, Router,
    RouterConfig,
};
use crate::handoff::shared::{ConnShared, Counters};
use crate::handoff::{ConnError, WakingCell};
use crate::scheduler::{SchedulerStats, DEFAULT_MAX_BATCH, DEFAULT_MAX_GSO_SEGMENTS};
use accounting::Accounting;
use app::{AppKind, AppState, AppTimers};
use inbox::Inbox;

/// Default receive batch (buffers per `recv` call).
pub const DEFAULT_RX_BATCH: usize = 32;
/// Longest a worker sleeps without looking at its inbox and timers (a wake normally comes
/// sooner; this only bounds a lost one).
pub const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Default [`WorkerConfig::slow_handler`].
pub const DEFAULT_SLOW_HANDLER: Duration = Duration::from_millis(20);
/// Most commands applied per turn (the rest wait one turn: fairness to I/O).
const MAX_COMMANDS_PER_ROUND: usize = 4096;

/// Settings of the worker threads.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Core to pin worker `i` to (`cores[i]`); missing or `None` entries are not pinned.
    /// Default: no pinning. A pinning failure is reported in [`WorkerStats::pinned`], not fatal.
    pub cores: Vec<Option<usize>>,
    /// Busy-poll the queue this long before sleeping (0: never). Default 0. Trades a core's
    /// idle time for lower wake-up latency.
    pub busy_poll: Duration,
    /// Most datagrams per GSO train. Default [`DEFAULT_MAX_GSO_SEGMENTS`].
    pub max_gso_segments: usize,
    /// Most transmit buffers per flush. Default [`DEFAULT_MAX_BATCH`].
    pub max_batch: usize,
    /// Receive batch size. Default [`DEFAULT_RX_BATCH`].
    pub rx_batch: usize,
    /// Write a qlog trace (JSON-SEQ, qlog 0.3) of every connection to this directory, one
    /// file `{odcid-hex}_{client|server}.sqlog` each. Default `None`: no qlog, and the
    /// connection core records nothing (one branch per event site). With qlog on, each
    /// connection keeps a 64 KiB write buffer and every packet costs a JSON record; a file
    /// that cannot be written turns qlog off for its connection with one warning.
    pub qlog_dir: Option<std::path::PathBuf>,
    /// A turn that spends longer than this in one connection's handlers is reported (a
    /// warning with the time, [`WorkerStats::slow_handlers`]): a handler that blocks stalls
    /// every connection of its worker. Default [`DEFAULT_SLOW_HANDLER`].
    pub slow_handler: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            cores: Vec::new(),
            busy_poll: Duration::ZERO,
            max_gso_segments: DEFAULT_MAX_GSO_SEGMENTS,
            max_batch: DEFAULT_MAX_BATCH,
            rx_batch: DEFAULT_RX_BATCH,
            qlog_dir: None,
            slow_handler: DEFAULT_SLOW_HANDLER,
        }
    }
}

/// Counters of one worker, published by it every turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index.
    pub index: usize,
    /// `Some(true)`: pinned to its core; `Some(false)`: pinning failed; `None`: not asked.
    pub pinned: Option<bool>,
    /// Turns taken.
    pub iterations: u64,
    /// Connections owned now.
    pub connections: usize,
    /// Connections owned now whose application is a handler on this worker.
    pub handler_connections: usize,
    /// Datagrams routed to owned connections.
    pub rx_routed: u64,
    /// Datagrams forwarded to other workers.
    pub rx_forwarded: u64,
    /// Datagrams dropped by the router.
    pub rx_dropped: u64,
    /// Stateless responses sent (Version Negotiation, Retry, reset, refusal).
    pub responses: u64,
    /// Retry packets sent (among `responses`).
    pub retries: u64,
    /// NEW_TOKEN tokens given to clients whose handshake was confirmed.
    pub new_tokens_sent: u64,
    /// New clients admitted on a NEW_TOKEN token (no Retry, no anti-amplification limit).
    pub new_tokens_accepted: u64,
    /// New clients admitted on a Retry token.
    pub retry_tokens_accepted: u64,
    /// Tokens in new clients' Initials ignored as unusable (expired, another address, another
    /// key, modified): those clients were treated as unvalidated (a Retry when Retry is on).
    pub tokens_ignored: u64,
    /// Initials refused with INVALID_TOKEN (an authentic Retry token that did not fit).
    pub invalid_retry_tokens: u64,
    /// Commands applied.
    pub commands: u64,
    /// Timer expirations handled.
    pub timeouts: u64,
    /// Handler calls made (events, timers, connection starts).
    pub handler_calls: u64,
    /// Turns in which one connection's handlers ran longer than
    /// [`WorkerConfig::slow_handler`].
    pub slow_handlers: u64,
    /// The longest time one connection's handlers took in one turn, in microseconds.
    pub slowest_handler_us: u64,
    /// Connections removed without draining at the shutdown deadline.
    pub forced_drains: u64,
    /// Transmit calls that failed with a queue error.
    pub tx_errors: u64,
    /// Receive calls that failed with a queue error.
    pub rx_errors: u64,
    /// The send scheduler's counters.
    pub scheduler: SchedulerStats,
    /// The datapath queue's counters.
    pub queue: QueueStats,
}

/// Incoming server connections waiting for `accept`.
#[derive(Debug, Default)]
pub(crate) struct AcceptQueue {
    pub queue: VecDeque<Arc<ConnShared>>,
    /// No more will come (shutdown or drop).
    pub closed: bool,
}

/// What the workers and handles of one endpoint share.
pub(crate) struct EndpointCtx {
    pub inboxes: Vec<Arc<Inbox>>,
    pub accounting: Accounting,
    pub counters: Arc<Counters>,
    pub incoming: WakingCell<AcceptQueue>,
    pub server: Option<Arc<ServerConfig>>,
    pub client: Option<Arc<ClientConfig>>,
    /// Creates each worker's application service (handlers on the worker).
    pub service: Option<ServiceFactory>,
    pub worker_stats: Vec<WakingCell<WorkerStats>>,
    /// Set when the endpoint is dropped: workers exit.
    pub stopped: AtomicBool,
    /// Where the workers read the time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EndpointCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCtx").field("workers", &self.inboxes.len()).finish_non_exhaustive()
    }
}

/// Everything a worker owns.
pub(crate) struct Worker<Q: Queue> {
    index: usize,
    queue: Q,
    endpoint: Endpoint<AppState>,
    rx: RxBatch,
    tx: TxBatch,
    ctx: Arc<EndpointCtx>,
    inbox: Arc<Inbox>,
    service: Option<Box<dyn Service>>,
    app_timers: AppTimers,
    /// Scratch list of touched connections.
    touched: Vec<ConnectionHandle>,
    shutting_down: bool,
    stop: bool,
    cfg: WorkerConfig,
    stats: WorkerStats,
}

/// Keys and seeds shared by all workers of an endpoint: drawn from the OS, or derived from
/// one seed so that a run can be replayed.
#[derive(Clone, Debug)]
pub(crate) struct EndpointKeys {
    pub reset_key: ResetKey,
    pub token_secret: [u8; 32],
    pub cid_format: CidFormat,
    /// Where per-worker seeds come from.
    seeds: [u8; 32],
}

impl EndpointKeys {
    /// Keys and seeds from the OS's random source, or all derived from `seed`.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let mut rng = match seed {
            Some(s) => ChaCha20Rng::seed_from_u64(s),
            None => ChaCha20Rng::from_rng(rand::rngs::OsRng)
                .unwrap_or_else(|_| ChaCha20Rng::seed_from_u64(rand::rngs::OsRng.next_u64())),
        };
        let mut reset_secret = [0u8; 32];
        let mut token_secret = [0u8; 32];
        let mut seeds = [0u8; 32];
        rng.fill_bytes(&mut reset_secret);
        rng.fill_bytes(&mut token_secret);
        rng.fill_bytes(&mut seeds);
        Self {
            reset_key: ResetKey::new(&reset_secret),
            token_secret,
            cid_format: CidFormat::default(),
            seeds,
        }
    }

    /// Worker `i`'s router and endpoint seeds.
    fn for_worker(&self, i: usize) -> ([u8; 32], u64) {
        let mut rng = ChaCha20Rng::from_seed(self.seeds);
        rng.set_stream(i as u64);
        let mut router = [0u8; 32];
        rng.fill_bytes(&mut router);
        (router, rng.next_u64())
    }
}

/// Builds worker `i` over `queue` (on the thread that will run it: the service is created
/// here).
pub(crate) fn build<Q: Queue>(
    i: usize,
    queue: Q,
    cfg: &WorkerConfig,
    seed: &EndpointKeys,
    ctx: &Arc<EndpointCtx>,
) -> std::io::Result<Worker<Q>> {
    let n = ctx.inboxes.len();
    let (router_seed, endpoint_seed) = seed.for_worker(i);
    let mut rc = RouterConfig::new(seed.reset_key.clone(), router_seed)
        .with_worker(i as u8, n)
        .map_err(std::io::Error::other)?
        .with_cid_format(seed.cid_format)
        // Where the NIC picks the queue by 4-tuple, the worker of the queue a client's first
        // Initial reaches owns the connection: its later datagrams reach that queue too.
        .with_local_initials(queue.capabilities().flow_steered);
    if let Some(server) = &ctx.server {
        // One token key for every worker: a Retry or NEW_TOKEN token one worker sealed opens
        // on another.
        let key =
            crate::endpoint::TokenKey::new(server.token_key.as_ref().unwrap_or(&seed.token_secret));
        let sc = crate::endpoint::AcceptConfig::new(key)
            .with_retry_policy(server.retry)
            .with_max_handshakes(server.max_handshakes)
            .and_then(|c| {
                let retry = crate::endpoint::token::DEFAULT_RETRY_TOKEN_LIFETIME;
                c.with_token_lifetimes(retry, server.new_token_lifetime)
            })
            .map_err(std::io::Error::other)?;
        rc = rc.with_server(sc).with_versions(&server.versions).map_err(std::io::Error::other)?;
    }
    let now = ctx.clock.now();
    let router = Router::new(rc, now, ctx.clock.unix_secs());
    let params = EndpointParams {
        server: ctx.server.clone(),
        client: ctx.client.clone(),
        worker: i as u8,
        reset_key: seed.reset_key.clone(),
        cid_format: seed.cid_format,
        seed: endpoint_seed,
        max_udp_payload: queue.capabilities().max_udp_payload,
        qlog: cfg.qlog_dir.is_some(),
        max_gso_segments: cfg.max_gso_segments,
        max_batch: cfg.max_batch,
        local_port: queue.local_addr().port(),
    };
    let service = ctx.service.as_ref().map(|f| f(WorkerInfo { index: i, workers: n }));
    Ok(Worker {
        index: i,
        endpoint: Endpoint::new(router, params),
        rx: RxBatch::new(cfg.rx_batch.max(1)),
        tx: TxBatch::new(),
        inbox: ctx.inboxes[i].clone(),
        ctx: ctx.clone(),
        service,
        app_timers: AppTimers::default(),
        touched: Vec::new(),
        shutting_down: false,
        stop: false,
        stats: WorkerStats { index: i, ..WorkerStats::default() },
        cfg: cfg.clone(),
        queue,
    })
}

/// Starts `queues.len()` worker threads; returns their join handles.
pub(crate) fn spawn<Q: Queue + 'static>(
    queues: Vec<Q>,
    cfg: &WorkerConfig,
    seed: &EndpointKeys,
    ctx: &Arc<EndpointCtx>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(queues.len());
    for (i, queue) in queues.into_iter().enumerate() {
        let core = cfg.cores.get(i).copied().flatten();
        let (ctx, cfg, seed) = (ctx.clone(), cfg.clone(), seed.clone());
        // Server and client endpoints in one process (perf, tests) get telling names:
        // `peregrine-s-w0`, `peregrine-c-w0` (Linux keeps the first 15 bytes).
        let role = if ctx.server.is_some() { 's' } else { 'c' };
        let name = format!("peregrine-{role}-w{i}");
        let h = std::thread::Builder::new().name(name).spawn(move || {
            let pinned =
                core.map(|c| core_affinity::set_for_current(core_affinity::CoreId { id: c }));
            if pinned == Some(false) {
                tracing::warn!(worker = i, core = ?core, "could not pin worker to its core");
            }
            tracing::debug!(
                worker = i,
                core = ?core,
                pinned = ?pinned,
                local = %queue.local_addr(),
                "worker started"
            );
            match build(i, queue, &cfg, &seed, &ctx) {
                Ok(mut w) => {
                    w.stats.pinned = pinned;
                    w.run();
                }
                Err(e) => tracing::error!(worker = i, %e, "worker could not start"),
            }
        })?;
        handles.push(h);
    }
    Ok(handles)
}

impl<Q: Queue> Worker<Q> {
    /// The loop. Returns when the endpoint stops it.
    fn run(&mut self) {
        while !self.stop {
            let now = self.ctx.clock.now();
            self.turn(now);
            if self.stop {
                break;
            }
            self.sleep();
        }
        self.shutdown_now();
        self.publish();
    }

    /// One turn at `now`: receive, commands, timers, applications, flush, transmit.
    pub(crate) fn turn(&mut self, now: Instant) {
        self.stats.iterations += 1;
        match self.queue.recv(&mut self.rx) {
            Ok(0) => {}
            Ok(_) => self.handle_rx(now),
            Err(e) => {
                self.stats.rx_errors += 1;
                tracing::warn!(worker = self.index, %e, "receive failed");
            }
        }
        self.run_commands(now);
        if self.stop {
            return;
        }
        self.endpoint.handle_timeout(now);
        self.run_app_timers(now);
        self.process_touched(now);
        self.flush_and_send(now);
        self.reap_removed(None);
        self.publish();
    }

    /// When the next turn is due with nothing arriving: now when work is pending, else the
    /// earliest connection or handler timer.
    pub(crate) fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if (self.tx.is_empty() && self.endpoint.ready_len() > 0)
            || self.inbox.len() > 0
            || self.endpoint.has_touched()
        {
            return Some(now);
        }
        match (self.endpoint.poll_timeout(), self.app_timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Hands every touched connection's events to its application, then lets the endpoint
    /// act on the connection's interests.
    fn process_touched(&mut self, now: Instant) {
        let mut touched = std::mem::take(&mut self.touched);
        // Handlers may touch connections again (a timer, a write): bounded passes.
        for _ in 0..4 {
            self.endpoint.take_touched(&mut touched);
            if touched.is_empty() {
                break;
            }
            for &h in &touched {
                self.dispatch(h, now);
                self.endpoint.refresh(now, h);
                self.arm_app_timer(h);
            }
        }
        self.touched = touched;
    }

    /// Scheduler flush, then the transmit call (never blocking by the queue's contract).
    fn flush_and_send(&mut self, now: Instant) {
        if self.tx.is_empty() {
            self.endpoint.flush(now, &mut self.queue, &mut self.tx);
        }
        if !self.tx.is_empty() {
            if let Err(e) = self.queue.send(&mut self.tx) {
                self.stats.tx_errors += 1;
                tracing::warn!(worker = self.index, %e, "transmit failed");
                // A queue error is not the datagrams' fault, but retrying forever would stall
                // the worker: drop what could not be sent (recovery resends).
                self.tx.drain().for_each(drop);
            }
        }
        // Polled connections wrote qlog records.
        if self.cfg.qlog_dir.is_some() {
            let mut served = std::mem::take(&mut self.touched);
            served.clear();
            served.extend_from_slice(self.endpoint.served());
            for &h in &served {
                if let Some(e) = self.endpoint.get_mut(h) {
                    e.app.write_qlog(&mut e.conn);
                }
            }
            self.touched = served;
        }
    }

    /// Sleeps until the next timer, a datagram, or a command; busy-polls first when configured.
    fn sleep(&mut self) {
        let tx_blocked = !self.tx.is_empty();
        let now = self.ctx.clock.now();
        let wake = self.next_wakeup(now);
        if wake == Some(now) && !tx_blocked {
            return;
        }
        if !self.cfg.busy_poll.is_zero() && !tx_blocked {
            let until = clock::now() + self.cfg.busy_poll;
            while clock::now() < until {
                if self.inbox.len() > 0 {
                    return;
                }
                match self.queue.recv(&mut self.rx) {
                    Ok(0) => std::hint::spin_loop(),
                    Ok(_) => {
                        self.handle_rx(self.ctx.clock.now());
                        return;
                    }
                    Err(_) => break,
                }
            }
        }
        let now = self.ctx.clock.now();
        let timeout = match wake {
            Some(t) => t.saturating_duration_since(now).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        if timeout.is_zero() {
            return;
        }
        if !self.inbox.prepare_sleep() {
            return;
        }
        if self.endpoint.is_empty() {
            // Nothing left to send for: the kept transmit buffer goes back to the pool.
            self.endpoint.release_spare();
        }
        let r = self.queue.wait_with(Some(timeout), tx_blocked, self.inbox.waker());
        self.inbox.woke();
        if let Err(e) = r {
            tracing::warn!(worker = self.index, %e, "wait failed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn publish(&mut self) {
        let c: EndpointCounters = self.endpoint.counters();
        self.stats.connections = self.endpoint.len();
        self.stats.rx_routed = c.routed;
        self.stats.rx_dropped = c.dropped;
        self.stats.timeouts = c.timeouts;
        self.stats.new_tokens_sent = c.new_tokens_sent;
        let t = self.endpoint.router().token_counters();
        self.stats.retries = t.retries;
        self.stats.new_tokens_accepted = t.new_tokens_accepted;
        self.stats.retry_tokens_accepted = t.retry_tokens_accepted;
        self.stats.tokens_ignored = t.tokens_ignored;
        self.stats.invalid_retry_tokens = t.invalid_retry_tokens;
        self.stats.scheduler = self.endpoint.scheduler_stats();
        self.stats.queue = self.queue.stats();
        let s = self.stats.clone();
        self.ctx.worker_stats[self.index].update(|w| *w = s);
    }

    /// The endpoint is gone: cancel everything and forget every connection.
    fn shutdown_now(&mut self) {
        for h in self.endpoint.handles() {
            self.endpoint.remove(h);
        }
        self.reap_removed(Some(ConnError::EndpointStopped));
        while let Some(cmd) = self.inbox.pop() {
            crate::handoff::abandon(cmd);
        }
        self.ctx.incoming.update(|q| q.closed = true);
    }

    /// Finishes the applications of connections the endpoint removed; counts each out of the
    /// endpoint's accounting exactly once.
    fn reap_removed(&mut self, reason: Option<ConnError>) {
        while let Some(r) = self.endpoint.poll_removed() {
            let mut e = r.entry;
            tracing::debug!(
                worker = self.index,
                conn = r.handle.0,
                remote = %e.conn.remote_address(),
                reason = ?reason,
                stats = ?e.conn.stats(),
                "connection removed"
            );
            let now = self.ctx.clock.now();
            match &mut e.app.kind {
                AppKind::Handles(hs) => hs.finish(&mut e.conn, reason.clone()),
                AppKind::Handler(_) => {
                    if let Some((h, mut d)) = e.app.handler_parts(r.handle, self.index, now) {
                        app::handler_closed(h, &mut e.conn, &mut d);
                    }
                    self.stats.handler_connections =
                        self.stats.handler_connections.saturating_sub(1);
                }
                AppKind::Pending => {}
            }
            if let Some(f) = e.app.qlog.take() {
                f.finish(&mut e.conn);
            }
            if e.app.counted {
                self.ctx.accounting.close();
            }
        }
    }
}
