//! The quinn perf server: accepts connections on its own tokio runtime, serves each
//! bidirectional stream (read the 8-byte size, drain the upload to FIN, answer with that many
//! bytes, FIN) and counts, per stream, what it was asked, what it received and what it sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::{ConnectionError, VarInt, WriteError};
use tokio::time::timeout;

use super::tls::{self, ServerCert};
use super::{payload, CHUNK, IO_TIMEOUT};

/// Stream reset / stop code: the request ended before its 8-byte size.
pub const CODE_BAD_REQUEST: u32 = 0x3;
/// Streams whose [`StreamRecord`] is kept (the counters cover every stream).
pub const STREAM_LOG_LIMIT: usize = 4096;

/// How one stream ended on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response was written and FIN sent.
    Completed,
    /// The client sent STOP_SENDING (with this code) or closed the connection while the
    /// response was being written: how a duration-mode client ends a stream.
    StoppedByPeer(Option<u64>),
    /// Anything else: a short or reset request, a timeout, a lost connection.
    Failed(String),
}

/// What the server saw on one stream.
#[derive(Clone, Debug)]
pub struct StreamRecord {
    /// The response size the client asked for (0 when the size never arrived).
    pub requested: u64,
    /// Upload bytes received after the size, up to FIN.
    pub received: u64,
    /// Response bytes written.
    pub sent: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The server's counters.
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    /// Connections whose handshake completed.
    pub handshakes: u64,
    /// Incoming connections that failed before completing the handshake.
    pub handshakes_failed: u64,
    /// Bidirectional streams accepted.
    pub streams: u64,
    /// Streams answered in full ([`Outcome::Completed`]).
    pub streams_completed: u64,
    /// Streams the client stopped or abandoned ([`Outcome::StoppedByPeer`]).
    pub streams_stopped: u64,
    /// Streams that failed ([`Outcome::Failed`]).
    pub streams_failed: u64,
    /// Sum of the sizes asked for, over all streams.
    pub bytes_requested: u64,
    /// Upload bytes received, over all streams.
    pub bytes_received: u64,
    /// Response bytes written, over all streams.
    pub bytes_sent: u64,
    /// The first [`STREAM_LOG_LIMIT`] streams, in the order they ended.
    pub log: Vec<StreamRecord>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl ServerStats {
    /// The counters as one JSON object (without the per-stream log).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "implementation": "quinn",
            "handshakes": self.handshakes,
            "handshakes_failed": self.handshakes_failed,
            "streams": self.streams,
            "streams_completed": self.streams_completed,
            "streams_stopped": self.streams_stopped,
            "streams_failed": self.streams_failed,
            "bytes_requested": self.bytes_requested,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "first_error": self.first_error,
        })
    }

    fn record(&mut self, r: StreamRecord) {
        self.bytes_requested += r.requested;
        self.bytes_received += r.received;
        self.bytes_sent += r.sent;
        match &r.outcome {
            Outcome::Completed => self.streams_completed += 1,
            Outcome::StoppedByPeer(_) => self.streams_stopped += 1,
            Outcome::Failed(e) => {
                self.streams_failed += 1;
                self.first_error.get_or_insert_with(|| e.clone());
            }
        }
        if self.log.len() < STREAM_LOG_LIMIT {
            self.log.push(r);
        }
    }
}

struct Shared {
    stats: Mutex<ServerStats>,
    /// Streams being served right now.
    active: AtomicU64,
    /// Bytes each response falls short of the size asked for (a deliberate protocol
    /// violation, for tests of a client's error path).
    shortfall: AtomicU64,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut ServerStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
}

/// A running quinn perf server.
pub struct PerfServer {
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

impl PerfServer {
    /// Binds `listen` and serves until [`PerfServer::stop`], on a tokio runtime of `threads`
    /// worker threads.
    pub fn start(listen: SocketAddr, cert: ServerCert, threads: usize) -> Result<Self, String> {
        let rt = super::runtime(threads, "quinn-perf-srv")?;
        let config = tls::server_config(cert)?;
        let endpoint = {
            let _guard = rt.enter();
            quinn::Endpoint::server(config, listen).map_err(|e| format!("bind {listen}: {e}"))?
        };
        let addr = endpoint.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            stats: Mutex::new(ServerStats::default()),
            active: 0.into(),
            shortfall: 0.into(),
        });
        rt.spawn(accept_loop(endpoint.clone(), shared.clone()));
        Ok(Self { addr, endpoint, shared, rt: Some(rt) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, answers every request with `bytes` fewer than asked for (then FIN): a
    /// misbehaving server for tests of a client's error path. 0 (the default) is correct.
    pub fn set_response_shortfall(&self, bytes: u64) {
        self.shared.shortfall.store(bytes, Ordering::Relaxed);
    }

    /// A snapshot of the counters (streams still being served are not in it yet).
    pub fn stats(&self) -> ServerStats {
        self.shared.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops: waits up to `timeout` for the streams being served to end, closes every
    /// connection, and returns the final counters.
    pub fn stop(mut self, timeout: Duration) -> ServerStats {
        let deadline = Instant::now() + timeout;
        while self.shared.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.endpoint.close(VarInt::from_u32(0), b"server stopping");
        if let Some(rt) = self.rt.take() {
            let ep = self.endpoint.clone();
            rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        self.stats()
    }
}

impl Drop for PerfServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            self.endpoint.close(VarInt::from_u32(0), b"server dropped");
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(incoming, shared.clone()));
    }
}

async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let conn = match incoming.await {
        Ok(c) => {
            shared.update(|s| s.handshakes += 1);
            c
        }
        Err(_) => {
            shared.update(|s| s.handshakes_failed += 1);
            return;
        }
    };
    while let Ok((send, recv)) = conn.accept_bi().await {
        shared.active.fetch_add(1, Ordering::AcqRel);
        shared.update(|s| s.streams += 1);
        let shared = shared.clone();
        tokio::spawn(async move {
            let shortfall = shared.shortfall.load(Ordering::Relaxed);
            let r = serve_stream(send, recv, shortfall).await;
            shared.update(|s| s.record(r));
            shared.active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Serves one perf stream (answering `shortfall` bytes short).
async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    shortfall: u64,
) -> StreamRecord {
    let mut r = StreamRecord { requested: 0, received: 0, sent: 0, outcome: Outcome::Completed };
    let mut head = [0u8; 8];
    match timeout(IO_TIMEOUT, recv.read_exact(&mut head)).await {
        Ok(Ok(())) => r.requested = u64::from_be_bytes(head),
        Ok(Err(e)) => {
            let _ = send.reset(VarInt::from_u32(CODE_BAD_REQUEST));
            let _ = recv.stop(VarInt::from_u32(CODE_BAD_REQUEST));
            r.outcome = Outcome::Failed(format!("reading the response size: {e}"));
            return r;
        }
        Err(_) => {
            r.outcome = Outcome::Failed("no response size within the I/O timeout".into());
            return r;
        }
    }
    loop {
        match timeout(IO_TIMEOUT, recv.read_chunk(usize::MAX, false)).await {
            Ok(Ok(Some(c))) => r.received += c.bytes.len() as u64,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                r.outcome = Outcome::Failed(format!("reading the upload: {e}"));
                return r;
            }
            Err(_) => {
                r.outcome = Outcome::Failed("upload stalled for the I/O timeout".into());
                return r;
            }
        }
    }
    let p = payload();
    let mut left = r.requested.saturating_sub(shortfall);
    // Counted as the stream accepts them, not per whole chunk: a stream stopped halfway through
    // a chunk has sent (and its peer may have read) the part before the stop.
    let mut chunk = [bytes::Bytes::new()];
    while left > 0 {
        if chunk[0].is_empty() {
            chunk[0] = p.slice(..left.min(CHUNK as u64) as usize);
        }
        match timeout(IO_TIMEOUT, send.write_chunks(&mut chunk)).await {
            Ok(Ok(w)) => {
                r.sent += w.bytes as u64;
                left -= w.bytes as u64;
            }
            Ok(Err(WriteError::Stopped(code))) => {
                r.outcome = Outcome::StoppedByPeer(Some(code.into_inner()));
                return r;
            }
            Ok(Err(WriteError::ConnectionLost(ConnectionError::ApplicationClosed(_)))) => {
                r.outcome = Outcome::StoppedByPeer(None);
                return r;
            }
            Ok(Err(e)) => {
                r.outcome = Outcome::Failed(format!("writing the response: {e}"));
                return r;
            }
            Err(_) => {
                r.outcome = Outcome::Failed("response stalled for the I/O timeout".into());
                return r;
            }
        }
    }
    if let Err(e) = send.finish() {
        r.outcome = Outcome::Failed(format!("finishing the response: {e}"));
    }
    r
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::quinn_perf::client::{self, ClientConfig, Mode, RawAnswer};
    use crate::quinn_perf::tls::ClientTrust;

    fn config(server: &PerfServer, mode: Mode) -> ClientConfig {
        ClientConfig {
            server: server.local_addr(),
            server_name: "localhost".into(),
            trust: ClientTrust::Insecure,
            mode,
            duration: Duration::from_millis(300),
            connections: 1,
            streams: 3,
            threads: 1,
        }
    }

    fn start() -> PerfServer {
        let cert = ServerCert::generate().unwrap();
        PerfServer::start("127.0.0.1:0".parse().unwrap(), cert, 1).unwrap()
    }

    #[test]
    fn quinn_client_and_server_agree_on_every_byte() {
        let server = start();
        let s = client::run(&config(&server, Mode::Sizes { upload: 70_000, download: 300_000 }))
            .unwrap();
        assert_eq!(s.per_stream.len(), 3);
        assert!(s.per_stream.iter().all(|r| (r.up, r.down, r.complete) == (70_000, 300_000, true)));
        let st = server.stop(Duration::from_secs(2));
        assert_eq!((st.streams, st.streams_completed, st.streams_failed), (3, 3, 0));
        assert_eq!((st.bytes_received, st.bytes_sent), (210_000, 900_000));
    }

    #[test]
    fn a_request_without_its_size_is_reset_and_counted_as_failed() {
        let server = start();
        let cfg = config(&server, Mode::Duration);
        let answer = client::raw_request(&cfg, b"abc").unwrap();
        assert_eq!(answer, RawAnswer::Reset(u64::from(CODE_BAD_REQUEST)));
        let st = server.stop(Duration::from_secs(2));
        assert_eq!((st.streams, st.streams_failed), (1, 1), "{st:?}");
        assert!(st.first_error.unwrap().contains("response size"));
    }

    #[test]
    fn a_short_response_fails_the_client_with_the_counts() {
        let server = start();
        server.set_response_shortfall(10);
        let e =
            client::run(&config(&server, Mode::Sizes { upload: 0, download: 1000 })).unwrap_err();
        assert!(e.contains("response of 990 bytes, expected 1000"), "{e}");
        server.stop(Duration::from_secs(2));
    }
}
