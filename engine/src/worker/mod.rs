//! The per-core runtime: worker threads that own a datapath [`Queue`], a [`Router`] and the
//! connections they created, and drive them (DESIGN.md "Threads: one owner per connection").
//!
//! One loop iteration: receive a batch → route each datagram (to an owned connection, a new
//! server connection, a stateless answer, or over the lock-free inbox to the owning worker) →
//! apply commands from handles → run due timers → hand events to the handles' mailboxes →
//! flush the send [`Scheduler`] → transmit the batch → optionally busy-poll → sleep on the
//! queue until the next timer, woken early by a handle's command ([`Inbox`]).
//!
//! Files: `clock` (the only clock reads of the engine), `inbox` (commands and wake-up),
//! `accounting` (idempotent connection counting for shutdown), `cid` (connection IDs with the
//! worker index), `conn` (per-connection state: commands, events, streams), `timers` (a binary
//! heap keyed by each connection's `poll_timeout`, lazily invalidated), `rx` (routing).

// The worker is the one module that reads the clock: the sans-IO core takes `now` from here.
#![allow(clippy::disallowed_methods)]

pub(crate) mod accounting;
mod cid;
pub mod clock;
mod conn;
pub(crate) use conn::STREAM_RESUME_BELOW;
pub(crate) mod inbox;
mod qlog;
mod rx;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_datapath::{Queue, QueueStats, RxBatch, TxBatch};
use rand::RngCore;

use crate::api::shared::{ConnShared, Counters};
use crate::api::sync::Mailbox;
use crate::connection::{ClientConfig, ServerConfig};
use crate::endpoint::{CidFormat, ConnectionHandle, ResetKey, Router, RouterConfig};
use crate::scheduler::{Scheduler, SchedulerStats, DEFAULT_MAX_BATCH, DEFAULT_MAX_GSO_SEGMENTS};
use accounting::Accounting;
use conn::Conns;
use inbox::Inbox;
use timers::TimerHeap;

/// Default receive batch (buffers per `recv` call).
pub const DEFAULT_RX_BATCH: usize = 32;
/// Longest a worker sleeps without looking at its inbox and timers (a wake normally comes
/// sooner; this only bounds a lost one).
pub const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Most commands applied per loop iteration (the rest wait one iteration: fairness to I/O).
const MAX_COMMANDS_PER_ROUND: usize = 4096;
/// Most receive calls per loop iteration. One: every receive batch is followed by a
/// scheduler flush, so ACKs leave after at most one batch (up to `rx_batch` GRO buffers of
/// up to 64 datagrams each). With 8 rounds a receiver took in ~11,000 datagrams (16 MB)
/// between ACKs at full speed: 248 ACKs for 740k datagrams, a bursty sender, queue
/// overflow at the receiving socket; loopback goodput went from ~6 to ~8-9 Gbit/s with one.
const MAX_RX_ROUNDS: usize = 1;

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
        }
    }
}

/// Counters of one worker, published by it every loop iteration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index.
    pub index: usize,
    /// `Some(true)`: pinned to its core; `Some(false)`: pinning failed; `None`: not asked.
    pub pinned: Option<bool>,
    /// Loop iterations.
    pub iterations: u64,
    /// Connections owned now.
    pub connections: usize,
    /// Datagrams routed to owned connections.
    pub rx_routed: u64,
    /// Datagrams forwarded to other workers.
    pub rx_forwarded: u64,
    /// Datagrams dropped by the router.
    pub rx_dropped: u64,
    /// Stateless responses sent (Version Negotiation, Retry, reset, refusal).
    pub responses: u64,
    /// Commands applied.
    pub commands: u64,
    /// Timer expirations handled.
    pub timeouts: u64,
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
#[derive(Debug)]
pub(crate) struct EndpointCtx {
    pub inboxes: Vec<Arc<Inbox>>,
    pub accounting: Accounting,
    pub counters: Arc<Counters>,
    pub incoming: Mailbox<AcceptQueue>,
    pub next_conn_id: AtomicU64,
    pub server: Option<Arc<ServerConfig>>,
    pub client: Option<ClientConfig>,
    pub worker_stats: Vec<Mailbox<WorkerStats>>,
    /// Set when the endpoint is dropped: workers exit.
    pub stopped: AtomicBool,
}

/// Everything a worker thread owns.
pub(crate) struct Worker<Q: Queue> {
    index: usize,
    queue: Q,
    router: Router,
    reset_key: ResetKey,
    cid_format: CidFormat,
    conns: Conns,
    by_handle: HashMap<ConnectionHandle, u64>,
    scheduler: Scheduler,
    timers: TimerHeap,
    /// Connections touched this iteration (events to hand out, timers to refresh).
    dirty: Vec<u64>,
    rx: RxBatch,
    tx: TxBatch,
    ctx: Arc<EndpointCtx>,
    inbox: Arc<Inbox>,
    shutting_down: bool,
    stop: bool,
    seed: u64,
    cfg: WorkerConfig,
    stats: WorkerStats,
}

/// Router settings shared by all workers of an endpoint.
#[derive(Clone, Debug)]
pub(crate) struct RouterSeed {
    pub reset_key: ResetKey,
    pub token_secret: [u8; 32],
    pub cid_format: CidFormat,
}

impl RouterSeed {
    pub(crate) fn random() -> Self {
        let mut reset_secret = [0u8; 32];
        let mut token_secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut reset_secret);
        rand::rngs::OsRng.fill_bytes(&mut token_secret);
        Self {
            reset_key: ResetKey::new(&reset_secret),
            token_secret,
            cid_format: CidFormat::default(),
        }
    }
}

/// Starts `queues.len()` worker threads; returns their join handles.
pub(crate) fn spawn<Q: Queue + 'static>(
    queues: Vec<Q>,
    cfg: &WorkerConfig,
    seed: &RouterSeed,
    ctx: &Arc<EndpointCtx>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let n = queues.len();
    let mut handles = Vec::with_capacity(n);
    for (i, queue) in queues.into_iter().enumerate() {
        let mut rng_seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut rng_seed);
        let mut rc = RouterConfig::new(seed.reset_key.clone(), rng_seed)
            .with_worker(i as u8, n)
            .map_err(std::io::Error::other)?
            .with_cid_format(seed.cid_format);
        if ctx.server.is_some() {
            let key = crate::endpoint::TokenKey::new(&seed.token_secret);
            rc = rc.with_server(crate::endpoint::ServerConfig::new(key));
        }
        let core = cfg.cores.get(i).copied().flatten();
        let ctx = ctx.clone();
        let cfg = cfg.clone();
        let reset_key = seed.reset_key.clone();
        let cid_format = seed.cid_format;
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
            let now = clock::now();
            let router = Router::new(rc, now, clock::unix_secs());
            let mut w = Worker::new(i, queue, router, reset_key, cid_format, ctx, cfg);
            w.stats.pinned = pinned;
            w.run();
        })?;
        handles.push(h);
    }
    Ok(handles)
}

impl<Q: Queue> Worker<Q> {
    fn new(
        index: usize,
        queue: Q,
        router: Router,
        reset_key: ResetKey,
        cid_format: CidFormat,
        ctx: Arc<EndpointCtx>,
        cfg: WorkerConfig,
    ) -> Self {
        let inbox = ctx.inboxes[index].clone();
        Self {
            index,
            queue,
            router,
            reset_key,
            cid_format,
            conns: Conns::default(),
            by_handle: HashMap::new(),
            scheduler: Scheduler::new(cfg.max_gso_segments, cfg.max_batch),
            timers: TimerHeap::default(),
            dirty: Vec::new(),
            rx: RxBatch::new(cfg.rx_batch.max(1)),
            tx: TxBatch::new(),
            ctx,
            inbox,
            shutting_down: false,
            stop: false,
            seed: (index as u64) << 48,
            stats: WorkerStats { index, ..WorkerStats::default() },
            cfg,
        }
    }

    /// The loop. Returns when the endpoint stops it.
    fn run(&mut self) {
        while !self.stop {
            self.stats.iterations += 1;
            let now = clock::now();
            for _ in 0..MAX_RX_ROUNDS {
                match self.queue.recv(&mut self.rx) {
                    Ok(0) => break,
                    Ok(_) => self.handle_rx(now),
                    Err(e) => {
                        self.stats.rx_errors += 1;
                        tracing::warn!(worker = self.index, %e, "receive failed");
                        break;
                    }
                }
            }
            self.run_commands(now);
            if self.stop {
                break;
            }
            self.run_timers(now);
            self.process_dirty(now);
            self.flush_and_send(now);
            self.publish();
            self.sleep();
        }
        self.shutdown_now();
        self.publish();
    }

    /// Scheduler flush, then the transmit call (never blocking by the queue's contract).
    fn flush_and_send(&mut self, now: Instant) {
        let mut served = Vec::new();
        if self.tx.is_empty() {
            self.scheduler.flush(now, &mut self.queue, &mut self.tx, &mut self.conns, &mut served);
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
        for key in served {
            self.refresh_timer(key);
        }
    }

    /// Sleeps until the next timer, a datagram, or a command; busy-polls first when configured.
    fn sleep(&mut self) {
        let tx_blocked = !self.tx.is_empty();
        if !tx_blocked && self.scheduler.ready_len() > 0 {
            return; // More to send right away.
        }
        if self.inbox.len() > 0 || !self.dirty.is_empty() {
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
                        self.handle_rx(clock::now());
                        return;
                    }
                    Err(_) => break,
                }
            }
        }
        let now = clock::now();
        let timeout = match self.timers.next() {
            Some(t) => t.saturating_duration_since(now).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        if timeout.is_zero() {
            return;
        }
        if !self.inbox.prepare_sleep() {
            return;
        }
        if self.conns.len() == 0 {
            // Nothing left to send for: the kept transmit buffer goes back to the pool.
            self.scheduler.release_spare();
        }
        let r = self.queue.wait_with(Some(timeout), tx_blocked, self.inbox.waker());
        self.inbox.woke();
        if let Err(e) = r {
            tracing::warn!(worker = self.index, %e, "wait failed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn publish(&mut self) {
        self.stats.connections = self.conns.len();
        self.stats.scheduler = self.scheduler.stats();
        self.stats.queue = self.queue.stats();
        let s = self.stats.clone();
        self.ctx.worker_stats[self.index].update(|w| *w = s);
    }

    /// The endpoint is gone: cancel everything and forget every connection.
    fn shutdown_now(&mut self) {
        let keys: Vec<u64> = self.conns.keys();
        for key in keys {
            self.remove_connection(key, Some(crate::api::ConnError::EndpointStopped));
        }
        while let Some(cmd) = self.inbox.pop() {
            crate::api::abandon(cmd);
        }
        self.ctx.incoming.update(|q| q.closed = true);
    }

    fn next_seed(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(1);
        self.seed ^ rand::random::<u64>()
    }

    fn mark_dirty(&mut self, key: u64) {
        if let Some(st) = self.conns.get_mut(key) {
            if !st.dirty {
                st.dirty = true;
                self.dirty.push(key);
            }
        }
    }
}
