//! The quinn perf client, with the modes of `peregrine perf`: sizes (each stream uploads and
//! downloads fixed byte counts once, each checked), duration (each stream downloads until the
//! deadline, then stops the stream), requests/s (each stream slot runs requests back to back,
//! each response checked), handshakes/s (connect and close back to back) and hold (open many
//! idle connections, keep them for the duration, count those still open at the end).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use quinn::VarInt;
use tokio::time::timeout;

use super::tls::{self, ClientTrust};
use super::{payload, CHUNK, IO_TIMEOUT, UNBOUNDED};

/// Longest wait for one handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one handshake while a [`Mode::Hold`] client opens thousands: a server
/// busy with the others may need a few retransmissions of the client's Initial.
const HOLD_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What the client measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each stream uploads `upload` and downloads `download` bytes, once.
    Sizes {
        /// Bytes each stream uploads.
        upload: u64,
        /// Bytes each stream downloads.
        download: u64,
    },
    /// Each stream downloads until the duration ends.
    Duration,
    /// Each stream slot runs requests (a new stream each) until the duration ends.
    Rps {
        /// Bytes uploaded per request.
        request: u64,
        /// Bytes downloaded per request.
        response: u64,
    },
    /// `connections` tasks connect and close back to back until the duration ends.
    Handshakes,
    /// Open `connections` connections ([`HOLD_CONNECT_TASKS`] handshakes at a time), print
    /// `holding N connections` on stderr, keep them idle for the duration, then check each is
    /// still open and close them all.
    Hold,
}

/// Handshakes in flight at once while a [`Mode::Hold`] client opens its connections.
pub const HOLD_CONNECT_TASKS: u32 = 32;

impl Mode {
    /// The `mode` value of the JSON summary (as `peregrine perf --json` names it).
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Sizes { .. } => "size",
            Mode::Duration => "duration",
            Mode::Rps { .. } => "rps",
            Mode::Handshakes => "handshakes",
            Mode::Hold => "hold",
        }
    }
}

/// The client's settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The perf server.
    pub server: SocketAddr,
    /// The name the certificate must carry (and the SNI).
    pub server_name: String,
    /// How the server is authenticated.
    pub trust: ClientTrust,
    /// What to measure.
    pub mode: Mode,
    /// How long duration, requests/s and handshake modes run.
    pub duration: Duration,
    /// Connections (handshake mode: parallel connect loops).
    pub connections: u32,
    /// Concurrent streams per connection.
    pub streams: u32,
    /// tokio worker threads.
    pub threads: usize,
}

/// What one stream (sizes and duration modes) moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamResult {
    /// Upload bytes written (after the 8-byte size).
    pub up: u64,
    /// Response bytes read.
    pub down: u64,
    /// Whether the response ended with FIN.
    pub complete: bool,
}

/// The results of one run.
#[derive(Debug)]
pub struct Summary {
    /// What was measured.
    pub mode: Mode,
    /// Connections (or parallel connect loops).
    pub connections: u32,
    /// Streams per connection.
    pub streams: u32,
    /// From the connections being up (handshake mode: from the start) to the last result.
    pub elapsed: Duration,
    /// Upload bytes, all streams.
    pub bytes_uploaded: u64,
    /// Response bytes, all streams.
    pub bytes_downloaded: u64,
    /// Completed requests (requests/s mode).
    pub requests: u64,
    /// Completed handshakes (handshake mode).
    pub handshakes: u64,
    /// Request or handshake latencies, microseconds.
    pub latency_us: Histogram<u64>,
    /// Each stream, in sizes and duration modes.
    pub per_stream: Vec<StreamResult>,
    /// quinn's count of packets sent, all connections.
    pub packets_sent: u64,
    /// quinn's count of packets declared lost, all connections.
    pub packets_lost: u64,
    /// UDP datagrams received, all connections.
    pub datagrams_received: u64,
    /// Hold mode: connections still open when the hold ended.
    pub held_to_the_end: u64,
    /// Hold mode: the first reason a held connection closed early, if one did.
    pub first_close: Option<String>,
}

impl Summary {
    /// One JSON object with the keys of `peregrine perf --json` (plus `implementation`).
    pub fn to_json(&self) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut v = serde_json::json!({
            "implementation": "quinn",
            "mode": self.mode.name(),
            "connections": self.connections,
            "elapsed_s": secs,
        });
        if self.mode == Mode::Handshakes {
            v["handshakes"] = self.handshakes.into();
            v["handshakes_per_s"] = (self.handshakes as f64 / secs).into();
        } else if self.mode == Mode::Hold {
            v["handshakes"] = self.handshakes.into();
            v["held_to_the_end"] = self.held_to_the_end.into();
            v["first_close"] = self.first_close.clone().into();
        } else {
            let total = self.bytes_uploaded + self.bytes_downloaded;
            v["streams"] = self.streams.into();
            v["bytes_uploaded"] = self.bytes_uploaded.into();
            v["bytes_downloaded"] = self.bytes_downloaded.into();
            v["bytes_total"] = total.into();
            v["goodput_gbps"] = (total as f64 * 8.0 / secs / 1e9).into();
            v["client_packets_sent"] = self.packets_sent.into();
            v["client_datagrams_received"] = self.datagrams_received.into();
            v["client_packets_lost"] = self.packets_lost.into();
        }
        if let Mode::Rps { .. } = self.mode {
            v["requests"] = self.requests.into();
            v["requests_per_s"] = (self.requests as f64 / secs).into();
        }
        if matches!(self.mode, Mode::Rps { .. } | Mode::Handshakes | Mode::Hold) {
            for (k, us) in percentiles(&self.latency_us) {
                v[format!("latency_{k}_us")] = us.into();
            }
        }
        v
    }

    /// A few human-readable lines.
    pub fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let p: Vec<String> =
            percentiles(&self.latency_us).iter().map(|(k, us)| format!("{k} {us} us")).collect();
        match self.mode {
            Mode::Handshakes => format!(
                "quinn perf: handshakes, {} in parallel, {secs:.2} s\n  handshakes {} ({:.0}/s)  {}",
                self.connections,
                self.handshakes,
                self.handshakes as f64 / secs,
                p.join(", ")
            ),
            Mode::Hold => format!(
                "quinn perf: held {} of {} connection(s) open to the end, {secs:.2} s{}",
                self.held_to_the_end,
                self.connections,
                self.first_close.as_ref().map(|c| format!("\n  first closed: {c}")).unwrap_or_default()
            ),
            _ => {
                let total = self.bytes_uploaded + self.bytes_downloaded;
                let mut s = format!(
                    "quinn perf: {} connection(s) x {} stream(s), {secs:.2} s\n  moved     {total} \
                     bytes (up {}, down {})  goodput {:.3} Gbit/s",
                    self.connections,
                    self.streams,
                    self.bytes_uploaded,
                    self.bytes_downloaded,
                    total as f64 * 8.0 / secs / 1e9
                );
                if let Mode::Rps { .. } = self.mode {
                    s.push_str(&format!(
                        "\n  requests  {} ({:.0}/s)  {}",
                        self.requests,
                        self.requests as f64 / secs,
                        p.join(", ")
                    ));
                }
                s
            }
        }
    }
}

/// An empty latency histogram (1 µs .. 100 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("constant histogram bounds are valid")
}

/// Latency percentiles as (label, microseconds), the labels of `peregrine perf`.
pub fn percentiles(h: &Histogram<u64>) -> Vec<(&'static str, u64)> {
    vec![
        ("p50", h.value_at_quantile(0.50)),
        ("p90", h.value_at_quantile(0.90)),
        ("p99", h.value_at_quantile(0.99)),
        ("p99.9", h.value_at_quantile(0.999)),
        ("max", h.max()),
    ]
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 100_000_000)
}

/// Runs the client to the end. Sizes mode fails unless every stream moved exactly its byte
/// counts; requests/s mode fails on any short response.
pub fn run(cfg: &ClientConfig) -> Result<Summary, String> {
    if cfg.connections == 0 || cfg.streams == 0 {
        return Err("connections and streams must be at least 1".into());
    }
    let rt = super::runtime(cfg.threads, "quinn-perf-cli")?;
    let client_config = tls::client_config(&cfg.trust)?;
    rt.block_on(async {
        let local: SocketAddr = if cfg.server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .map_err(|_| "bad local address".to_string())?;
        let mut endpoint =
            quinn::Endpoint::client(local).map_err(|e| format!("bind {local}: {e}"))?;
        endpoint.set_default_client_config(client_config);
        let r = match cfg.mode {
            Mode::Handshakes => handshakes(&endpoint, cfg).await,
            Mode::Hold => hold(&endpoint, cfg).await,
            _ => streams(&endpoint, cfg).await,
        };
        endpoint.close(VarInt::from_u32(0), b"done");
        let _ = timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        r
    })
}

async fn connect(ep: &quinn::Endpoint, cfg: &ClientConfig) -> Result<quinn::Connection, String> {
    let connecting = ep.connect(cfg.server, &cfg.server_name).map_err(|e| e.to_string())?;
    let wait = if cfg.mode == Mode::Hold { HOLD_CONNECT_TIMEOUT } else { CONNECT_TIMEOUT };
    match timeout(wait, connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("handshake with {}: {e}", cfg.server)),
        Err(_) => Err(format!("handshake with {}: timed out", cfg.server)),
    }
}

fn empty(cfg: &ClientConfig) -> Summary {
    Summary {
        mode: cfg.mode,
        connections: cfg.connections,
        streams: cfg.streams,
        elapsed: Duration::ZERO,
        bytes_uploaded: 0,
        bytes_downloaded: 0,
        requests: 0,
        handshakes: 0,
        latency_us: histogram(),
        per_stream: Vec::new(),
        packets_sent: 0,
        packets_lost: 0,
        datagrams_received: 0,
        held_to_the_end: 0,
        first_close: None,
    }
}

async fn handshakes(ep: &quinn::Endpoint, cfg: &ClientConfig) -> Result<Summary, String> {
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut tasks = Vec::new();
    for _ in 0..cfg.connections {
        let (ep, cfg) = (ep.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let conn = connect(&ep, &cfg).await?;
                let _ = h.record(micros(t0.elapsed()));
                conn.close(VarInt::from_u32(0), b"");
            }
            Ok::<_, String>(h)
        }));
    }
    let mut s = empty(cfg);
    for t in tasks {
        let h = t.await.map_err(|e| format!("a handshake task failed: {e}"))??;
        s.latency_us.add(&h).map_err(|e| e.to_string())?;
    }
    s.elapsed = start.elapsed();
    s.handshakes = s.latency_us.len();
    Ok(s)
}

/// Opens `connections` connections, holds them idle for the duration and counts those still
/// open at the end. Fails if a handshake fails (the count so far in the error).
async fn hold(ep: &quinn::Endpoint, cfg: &ClientConfig) -> Result<Summary, String> {
    let start = Instant::now();
    let tasks_n = HOLD_CONNECT_TASKS.min(cfg.connections);
    let mut tasks = Vec::new();
    for t in 0..tasks_n {
        // Task t opens connections t, t + tasks_n, ...
        let n = (cfg.connections - t).div_ceil(tasks_n);
        let (ep, cfg) = (ep.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut conns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let t0 = Instant::now();
                conns.push(connect(&ep, &cfg).await?);
                let _ = h.record(micros(t0.elapsed()));
            }
            Ok::<_, String>((conns, h))
        }));
    }
    let mut s = empty(cfg);
    let mut conns = Vec::with_capacity(cfg.connections as usize);
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok((c, h))) => {
                conns.extend(c);
                s.latency_us.add(&h).map_err(|e| e.to_string())?;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("a connect task failed: {e}"));
            }
        }
    }
    s.handshakes = conns.len() as u64;
    if let Some(e) = first_error {
        for c in &conns {
            c.close(VarInt::from_u32(0), b"done");
        }
        return Err(format!(
            "opened {} of {} connections; first failure: {e}",
            conns.len(),
            cfg.connections
        ));
    }
    eprintln!("holding {} connections", conns.len());
    tokio::time::sleep(cfg.duration).await;
    for c in &conns {
        match c.close_reason() {
            None => s.held_to_the_end += 1,
            Some(r) => {
                s.first_close.get_or_insert_with(|| r.to_string());
            }
        }
        c.close(VarInt::from_u32(0), b"done");
    }
    s.elapsed = start.elapsed();
    Ok(s)
}

async fn streams(ep: &quinn::Endpoint, cfg: &ClientConfig) -> Result<Summary, String> {
    let mut conns = Vec::new();
    for _ in 0..cfg.connections {
        conns.push(connect(ep, cfg).await?);
    }
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut tasks = Vec::new();
    for conn in &conns {
        for _ in 0..cfg.streams {
            let (conn, mode) = (conn.clone(), cfg.mode);
            tasks.push(tokio::spawn(async move {
                let mut h = histogram();
                let mut results = Vec::new();
                match mode {
                    Mode::Sizes { upload, download } => {
                        results.push(request(&conn, upload, download, None).await?);
                    }
                    Mode::Duration => {
                        results.push(request(&conn, 0, UNBOUNDED, Some(deadline)).await?);
                    }
                    Mode::Rps { request: up, response: down } => {
                        while Instant::now() < deadline {
                            let t0 = Instant::now();
                            let r = request(&conn, up, down, None).await?;
                            let _ = h.record(micros(t0.elapsed()));
                            results.push(r);
                        }
                    }
                    Mode::Handshakes | Mode::Hold => {}
                }
                Ok::<_, String>((results, h))
            }));
        }
    }
    let mut s = empty(cfg);
    let mut first_error = None;
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok((results, h))) => {
                s.latency_us.add(&h).map_err(|e| e.to_string())?;
                for r in results {
                    s.bytes_uploaded += r.up;
                    s.bytes_downloaded += r.down;
                    if let Mode::Rps { .. } = cfg.mode {
                        s.requests += 1;
                    } else {
                        s.per_stream.push(r);
                    }
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(format!("a stream task failed: {e}"));
            }
        }
    }
    s.elapsed = start.elapsed();
    for c in &conns {
        let st = c.stats();
        s.packets_sent += st.path.sent_packets;
        s.packets_lost += st.path.lost_packets;
        s.datagrams_received += st.udp_rx.datagrams;
        c.close(VarInt::from_u32(0), b"done");
    }
    if let Some(e) = first_error {
        let n = cfg.connections * cfg.streams;
        return Err(format!("{failed} of {n} streams failed; first: {e}"));
    }
    Ok(s)
}

/// One perf request on a new stream: asks for `down` bytes, uploads `up` bytes, reads the
/// response to FIN or, with `deadline`, until then (and stops the stream). Without a deadline
/// the response must be exactly `down` bytes.
async fn request(
    conn: &quinn::Connection,
    up: u64,
    down: u64,
    deadline: Option<Instant>,
) -> Result<StreamResult, String> {
    let (mut send, mut recv) = match timeout(IO_TIMEOUT, conn.open_bi()).await {
        Ok(r) => r.map_err(|e| format!("opening a stream: {e}"))?,
        Err(_) => return Err("no stream credit within the I/O timeout".into()),
    };
    let mut r = StreamResult::default();
    write(&mut send, Bytes::copy_from_slice(&down.to_be_bytes())).await?;
    let p = payload();
    while r.up < up {
        let k = (up - r.up).min(CHUNK as u64) as usize;
        write(&mut send, p.slice(..k)).await?;
        r.up += k as u64;
    }
    send.finish().map_err(|e| format!("finishing the request: {e}"))?;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = recv.stop(VarInt::from_u32(0));
            return Ok(r);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(IO_TIMEOUT),
            None => IO_TIMEOUT,
        };
        match timeout(wait, recv.read_chunk(usize::MAX, true)).await {
            Ok(Ok(Some(c))) => r.down += c.bytes.len() as u64,
            Ok(Ok(None)) => {
                r.complete = true;
                break;
            }
            Ok(Err(e)) => return Err(format!("reading the response: {e}")),
            Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = recv.stop(VarInt::from_u32(0));
                return Ok(r);
            }
            Err(_) => return Err("response stalled for the I/O timeout".into()),
        }
    }
    if deadline.is_none() && r.down != down {
        return Err(format!("response of {} bytes, expected {down}", r.down));
    }
    Ok(r)
}

async fn write(send: &mut quinn::SendStream, b: Bytes) -> Result<(), String> {
    match timeout(IO_TIMEOUT, send.write_chunk(b)).await {
        Ok(r) => r.map_err(|e| format!("writing the request: {e}")),
        Err(_) => Err("request write stalled for the I/O timeout".to_string()),
    }
}

/// How a server answered a [`raw_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawAnswer {
    /// This many response bytes, then FIN.
    Data(u64),
    /// The server reset the response with this code (after this many bytes).
    Reset(u64),
}

/// Sends `bytes` then FIN on one new stream of a new connection and reports how the server
/// answered: for tests of a server's handling of malformed requests.
pub fn raw_request(cfg: &ClientConfig, bytes: &[u8]) -> Result<RawAnswer, String> {
    let rt = super::runtime(1, "quinn-perf-raw")?;
    let client_config = tls::client_config(&cfg.trust)?;
    rt.block_on(async {
        let local: SocketAddr = if cfg.server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .map_err(|_| "bad local address".to_string())?;
        let mut endpoint =
            quinn::Endpoint::client(local).map_err(|e| format!("bind {local}: {e}"))?;
        endpoint.set_default_client_config(client_config);
        let conn = connect(&endpoint, cfg).await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        write(&mut send, Bytes::copy_from_slice(bytes)).await?;
        send.finish().map_err(|e| e.to_string())?;
        let mut n = 0u64;
        let answer = loop {
            match timeout(IO_TIMEOUT, recv.read_chunk(usize::MAX, true)).await {
                Ok(Ok(Some(c))) => n += c.bytes.len() as u64,
                Ok(Ok(None)) => break RawAnswer::Data(n),
                Ok(Err(quinn::ReadError::Reset(code))) => {
                    break RawAnswer::Reset(code.into_inner())
                }
                Ok(Err(e)) => return Err(format!("reading the answer: {e}")),
                Err(_) => return Err("no answer within the I/O timeout".into()),
            }
        };
        conn.close(VarInt::from_u32(0), b"done");
        let _ = timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        Ok(answer)
    })
}
