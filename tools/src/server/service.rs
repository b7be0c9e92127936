//! The server's application on each worker: a [`peregrine_engine::app::Service`] that gives
//! every accepted connection the handler of its ALPN (hq-interop or perf), and the counters
//! and settings the handlers of one worker share.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use peregrine_engine::app::{ConnCtx, ConnectionHandler, Service, ServiceFactory, WorkerInfo};
use peregrine_engine::VarInt;
use peregrine_engine::{ConnectionError, ConnectionStats};

use super::hq::HqHandler;
use super::perf::PerfHandler;
use crate::certs;

/// Counters of one worker's handlers (written by that worker only: no contention).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    connections: AtomicU64,
    requests: AtomicU64,
    response_bytes: AtomicU64,
    upload_bytes: AtomicU64,
}

impl WorkerCounters {
    pub(super) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn response_bytes(&self, n: u64) {
        self.response_bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub(super) fn upload_bytes(&self, n: u64) {
        self.upload_bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the server's handlers count, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerTotals {
    /// Connections given a handler.
    pub connections: u64,
    /// Requests answered (perf streams and hq-interop files started).
    pub requests: u64,
    /// Response bytes written.
    pub response_bytes: u64,
    /// Upload bytes received on perf streams.
    pub upload_bytes: u64,
}

/// What the server shares across its workers: settings, per-worker counters, the stats of
/// connections that ended.
#[derive(Debug)]
pub struct ServerState {
    pub(super) root: Option<PathBuf>,
    counters: Vec<Arc<WorkerCounters>>,
    /// Counters of the connections that ended, summed (see [`accumulate`]).
    finished: Mutex<ConnectionStats>,
}

/// Adds the counters of `s` to `total` (the congestion controller's name is the first seen).
pub fn accumulate(total: &mut ConnectionStats, s: &ConnectionStats) {
    if total.congestion.is_empty() {
        total.congestion = s.congestion;
    }
    total.packets_sent += s.packets_sent;
    total.packets_received += s.packets_received;
    total.packets_lost += s.packets_lost;
    total.stream_bytes_retransmitted += s.stream_bytes_retransmitted;
    total.datagrams_sent += s.datagrams_sent;
    total.datagrams_received += s.datagrams_received;
    total.congestion_events += s.congestion_events;
    total.pto_count += s.pto_count;
    total.pmtu = total.pmtu.max(s.pmtu);
    total.acks_sent += s.acks_sent;
    total.ack_eliciting_received += s.ack_eliciting_received;
    total.ack_frequency_sent += s.ack_frequency_sent;
    total.ack_frequency_received += s.ack_frequency_received;
}

impl ServerState {
    pub(super) fn new(root: Option<PathBuf>, workers: usize) -> Arc<Self> {
        Arc::new(Self {
            root,
            counters: (0..workers.max(1)).map(|_| Arc::default()).collect(),
            finished: Mutex::default(),
        })
    }

    /// The counters summed over workers.
    pub fn totals(&self) -> ServerTotals {
        let mut t = ServerTotals::default();
        for c in &self.counters {
            t.connections += c.connections.load(Ordering::Relaxed);
            t.requests += c.requests.load(Ordering::Relaxed);
            t.response_bytes += c.response_bytes.load(Ordering::Relaxed);
            t.upload_bytes += c.upload_bytes.load(Ordering::Relaxed);
        }
        t
    }

    /// Counters of the connections that ended so far, summed.
    pub fn finished(&self) -> ConnectionStats {
        self.finished.lock().map(|v| *v).unwrap_or_default()
    }

    /// The factory the endpoint calls once per worker.
    pub(super) fn factory(self: &Arc<Self>) -> ServiceFactory {
        let state = self.clone();
        Arc::new(move |w: WorkerInfo| {
            let counters = state.counters[w.index % state.counters.len()].clone();
            Box::new(ServerService {
                shared: Shared(Rc::new(Inner { state: state.clone(), counters })),
            }) as Box<dyn Service>
        })
    }
}

/// What one worker's handlers share (one thread: `Rc`).
#[derive(Clone)]
pub(super) struct Shared(Rc<Inner>);

pub(super) struct Inner {
    state: Arc<ServerState>,
    pub(super) counters: Arc<WorkerCounters>,
}

impl std::ops::Deref for Shared {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// The directory served over hq-interop.
    pub(super) fn root(&self) -> Option<&std::path::Path> {
        self.state.root.as_deref()
    }

    /// A connection ended: add its counters (one lock per connection, never per request).
    pub(super) fn connection_ended(&self, stats: ConnectionStats) {
        if let Ok(mut f) = self.state.finished.lock() {
            accumulate(&mut f, &stats);
        }
    }
}

/// One line per connection at info level (`RUST_LOG=peregrine=info`), when it ends: peer,
/// ALPN, bytes, losses and how it ended.
pub(super) fn log_end(cx: &ConnCtx<'_>, alpn: &str, error: &ConnectionError) {
    let st = cx.stats();
    tracing::info!(
        peer = %cx.remote(),
        alpn,
        bytes_sent = st.bytes_sent,
        bytes_received = st.bytes_received,
        packets_lost = st.packets_lost,
        end = %error,
        "connection"
    );
}

/// One worker's server application.
struct ServerService {
    shared: Shared,
}

impl Service for ServerService {
    fn on_connection(&mut self, cx: &mut ConnCtx<'_>) -> Option<Box<dyn ConnectionHandler>> {
        self.shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let handler: Box<dyn ConnectionHandler> = match cx.alpn() {
            Some(a) if a == certs::ALPN_HQ => Box::new(HqHandler::new(self.shared.clone())),
            Some(a) if a == certs::ALPN_PERF => Box::new(PerfHandler::new(self.shared.clone())),
            // TLS only completes a handshake on an offered ALPN; anything else is a bug here.
            _ => {
                cx.close(VarInt::from_u32(0x3), b"unknown application protocol");
                Box::new(Closed)
            }
        };
        Some(handler)
    }
}

/// The handler of a connection closed at once.
struct Closed;

impl ConnectionHandler for Closed {}
