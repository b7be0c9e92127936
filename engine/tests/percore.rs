//! Applications on the worker that owns their connection (`peregrine_engine::app`), and whole
//! endpoints on virtual time (`peregrine_engine::sim`): handlers serve streams on the owning
//! worker's thread (the `peregrine server` tests count the server process's threads); a
//! handler that runs long is reported;
//! endpoints stepped on the simulated network complete handshakes and transfers
//! deterministically without sleeping.

// The thread-based tests bound their waits with the wall clock (termination only).
#![allow(clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::app::{ConnCtx, ConnectionHandler, Service, ServiceFactory, WorkerInfo};
use peregrine_engine::connection::{ConnectionError, TransportConfig};
use peregrine_engine::sim::SimRuntime;
use peregrine_engine::streams::{Dir, ReadError, StreamId};

const T: Duration = Duration::from_secs(10);

/// Echoes every bidirectional stream back, FIN included, honouring the send room; records
/// the thread and worker of every call.
struct Echo {
    pending: Vec<(StreamId, Bytes, bool)>,
    calls: Arc<Mutex<Vec<(String, usize)>>>,
    delay: Duration,
}

impl Echo {
    fn note(&self, cx: &ConnCtx<'_>) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.calls.lock().unwrap().push((name, cx.worker()));
    }

    fn flush(&mut self, cx: &mut ConnCtx<'_>) {
        let mut keep = Vec::new();
        for (id, mut data, fin) in self.pending.drain(..) {
            let room = cx.send_room(id) as usize;
            let n = data.len().min(room);
            let piece = data.split_to(n);
            let last = fin && data.is_empty();
            if (!piece.is_empty() || last) && cx.write(id, piece, last).is_err() {
                continue;
            }
            if !data.is_empty() {
                keep.push((id, data, fin));
            }
        }
        self.pending = keep;
    }
}

impl ConnectionHandler for Echo {
    fn on_readable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        self.note(cx);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        loop {
            match cx.read_chunk(id, usize::MAX) {
                Ok(c) => {
                    let done = c.fin;
                    if !c.data.is_empty() || c.fin {
                        self.pending.push((id, c.data, c.fin));
                    }
                    if done {
                        break;
                    }
                }
                Err(ReadError::Blocked) => break,
                Err(_) => break,
            }
        }
        self.flush(cx);
    }

    fn on_writable(&mut self, cx: &mut ConnCtx<'_>, _id: StreamId) {
        self.note(cx);
        self.flush(cx);
    }
}

struct EchoService {
    calls: Arc<Mutex<Vec<(String, usize)>>>,
    delay: Duration,
}

impl Service for EchoService {
    fn on_connection(&mut self, cx: &mut ConnCtx<'_>) -> Option<Box<dyn ConnectionHandler>> {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.calls.lock().unwrap().push((name, cx.worker()));
        Some(Box::new(Echo { pending: Vec::new(), calls: self.calls.clone(), delay: self.delay }))
    }
}

fn echo_service(calls: &Arc<Mutex<Vec<(String, usize)>>>, delay: Duration) -> ServiceFactory {
    let calls = calls.clone();
    Arc::new(move |_w: WorkerInfo| {
        Box::new(EchoService { calls: calls.clone(), delay }) as Box<dyn Service>
    })
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn handlers_run_on_the_owning_worker() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = EndpointConfig::server(support::server_config(TransportConfig::default()))
        .with_service(echo_service(&calls, Duration::ZERO));
    cfg.workers = 2;
    let server = Endpoint::bind(addr("127.0.0.1:0"), cfg).unwrap();
    let mut ccfg = EndpointConfig::client(support::client_config(TransportConfig::default()));
    ccfg.workers = 2;
    let client = Endpoint::bind(addr("127.0.0.1:0"), ccfg).unwrap();
    let conns: Vec<_> = (0..8)
        .map(|_| client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap())
        .collect();
    // 8 connections x 25 streams, all open at once: 200 streams served by the handlers.
    let mut open = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        for j in 0..25 {
            let (s, r) = c.open_bi_blocking(T).unwrap();
            let data = pattern(3000 + j * 100, (i * 25 + j) as u8);
            s.write_fin(data.clone());
            open.push((s, r, data));
        }
    }
    for (_s, mut r, data) in open {
        assert_eq!(r.read_to_end_blocking(1 << 20, T).unwrap(), data, "echoed byte-exact");
    }
    let calls = calls.lock().unwrap();
    assert!(calls.len() >= 200, "{} handler calls", calls.len());
    for (name, worker) in calls.iter() {
        assert_eq!(name, &format!("peregrine-s-w{worker}"), "a handler ran off its worker");
    }
    let st = server.stats();
    let served: Vec<usize> = st.workers.iter().map(|w| w.handler_connections).collect();
    assert_eq!(served.iter().sum::<usize>(), 8, "every connection got a handler: {served:?}");
    assert_eq!(server.accept_blocking(Some(Duration::from_millis(50))).map(|_| ()), None);
}

#[test]
fn a_handler_that_runs_long_is_reported() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let cfg = EndpointConfig::server(support::server_config(TransportConfig::default()))
        .with_service(echo_service(&calls, Duration::from_millis(60)));
    let server = Endpoint::bind(addr("127.0.0.1:0"), cfg).unwrap();
    let client = Endpoint::bind(
        addr("127.0.0.1:0"),
        EndpointConfig::client(support::client_config(TransportConfig::default())),
    )
    .unwrap();
    let c = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let (s, mut r) = c.open_bi_blocking(T).unwrap();
    s.write_fin(b"slow".to_vec());
    assert_eq!(r.read_to_end_blocking(100, T).unwrap(), b"slow");
    let w = &server.stats().workers[0];
    assert!(w.slow_handlers >= 1, "slow handler not counted: {w:?}");
    assert!(w.slowest_handler_us >= 60_000, "slowest {} us", w.slowest_handler_us);
}

/// A server with echo handlers and a client with handles, both stepped on virtual time.
/// The server's record of handler calls (thread name, worker).
type Calls = Arc<Mutex<Vec<(String, usize)>>>;

/// An echo server at 10.0.0.1:443 and a client endpoint at 10.0.0.2 on `rt`.
fn echo_pair(rt: &mut SimRuntime) -> (Calls, Endpoint, Endpoint) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let scfg = EndpointConfig::server(support::server_config(TransportConfig::default()))
        .with_service(echo_service(&calls, Duration::ZERO));
    let server = rt.endpoint(&[addr("10.0.0.1:443")], scfg).unwrap();
    let client = rt
        .endpoint(
            &[addr("10.0.0.2:5000")],
            EndpointConfig::client(support::client_config(TransportConfig::default())),
        )
        .unwrap();
    (calls, server, client)
}

#[test]
fn handler_echo_on_virtual_time() {
    let mut rt = SimRuntime::new(11);
    let (calls, server, client) = echo_pair(&mut rt);
    let t0 = rt.now();
    let conn = rt
        .run_until(client.connect(server.local_addr(), "localhost").unwrap(), T)
        .expect("handshake in virtual time")
        .unwrap();
    let data = pattern(300_000, 5);
    let got = rt
        .run_until(
            async {
                let (s, mut r) = conn.open_bi().await.unwrap();
                s.write_fin(data.clone());
                r.read_to_end(1 << 20).await.unwrap()
            },
            T,
        )
        .expect("echo in virtual time");
    assert_eq!(got, data);
    // The simulated links are ideal: a few round trips of no delay, not seconds.
    assert!(rt.now() - t0 < Duration::from_secs(1), "{:?}", rt.now() - t0);
    // No worker thread: the handlers ran on the thread that steps the runtime.
    let me = std::thread::current().name().unwrap_or("").to_string();
    let calls = calls.lock().unwrap();
    assert!(!calls.is_empty() && calls.iter().all(|(name, w)| *name == me && *w == 0));
}

/// A client served by a handler too (`connect_with`): it opens streams when connected,
/// checks the echoes, and closes.
struct Pinger {
    streams: usize,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    bufs: Vec<(StreamId, Vec<u8>)>,
    closed: Arc<Mutex<Option<ConnectionError>>>,
}

impl ConnectionHandler for Pinger {
    fn on_connected(&mut self, cx: &mut ConnCtx<'_>) {
        for i in 0..self.streams {
            let id = cx.open(Dir::Bi).unwrap();
            cx.write(id, Bytes::from(pattern(1000 + i, i as u8)), true).unwrap();
            self.bufs.push((id, Vec::new()));
        }
    }
    fn on_readable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        let Some(i) = self.bufs.iter().position(|(s, _)| *s == id) else { return };
        while let Ok(c) = cx.read_chunk(id, usize::MAX) {
            self.bufs[i].1.extend_from_slice(&c.data);
            if c.fin {
                let (_, buf) = self.bufs.remove(i);
                self.got.lock().unwrap().push(buf);
                if self.bufs.is_empty() {
                    cx.close(peregrine_engine::VarInt::from_u32(0), b"done");
                }
                return;
            }
            if c.data.is_empty() {
                return;
            }
        }
    }
    fn on_closed(&mut self, _cx: &mut ConnCtx<'_>, error: &ConnectionError) {
        *self.closed.lock().unwrap() = Some(error.clone());
    }
}

#[test]
fn client_handler_on_virtual_time() {
    let mut rt = SimRuntime::new(12);
    let (_calls, server, client) = echo_pair(&mut rt);
    let got = Arc::new(Mutex::new(Vec::new()));
    let closed = Arc::new(Mutex::new(None));
    let pinger = Pinger { streams: 20, got: got.clone(), bufs: Vec::new(), closed: closed.clone() };
    client.connect_with(server.local_addr(), "localhost", Box::new(pinger)).unwrap();
    assert!(rt.wait_for(T, || closed.lock().unwrap().is_some()), "the client handler closed");
    let mut got = got.lock().unwrap().clone();
    got.sort_by_key(Vec::len);
    assert_eq!(got.len(), 20);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g, &pattern(1000 + i, i as u8));
    }
    assert_eq!(*closed.lock().unwrap(), Some(ConnectionError::LocallyClosed { code: 0 }));
}

/// A client handler that connects only to close: it is told the handshake is confirmed
/// after it connected, and a close there leaves the server with a completed handshake (the
/// server's service saw the connection), not a failed one.
struct ConnectAndClose {
    order: Arc<Mutex<Vec<&'static str>>>,
}

impl ConnectionHandler for ConnectAndClose {
    fn on_connected(&mut self, _cx: &mut ConnCtx<'_>) {
        self.order.lock().unwrap().push("connected");
    }
    fn on_handshake_confirmed(&mut self, cx: &mut ConnCtx<'_>) {
        self.order.lock().unwrap().push("confirmed");
        cx.close(peregrine_engine::VarInt::from_u32(0), b"");
    }
    fn on_closed(&mut self, _cx: &mut ConnCtx<'_>, error: &ConnectionError) {
        assert_eq!(*error, ConnectionError::LocallyClosed { code: 0 });
        self.order.lock().unwrap().push("closed");
    }
}

#[test]
fn client_handler_is_told_when_the_handshake_is_confirmed() {
    let mut rt = SimRuntime::new(21);
    let (calls, server, client) = echo_pair(&mut rt);
    let order = Arc::new(Mutex::new(Vec::new()));
    let h = ConnectAndClose { order: order.clone() };
    client.connect_with(server.local_addr(), "localhost", Box::new(h)).unwrap();
    assert!(rt.wait_for(T, || order.lock().unwrap().len() == 3), "{:?}", order.lock().unwrap());
    assert_eq!(*order.lock().unwrap(), ["connected", "confirmed", "closed"]);
    // The server completed the handshake: its service was asked for a handler.
    assert!(rt.wait_for(T, || !calls.lock().unwrap().is_empty()), "the server saw the connection");
}
