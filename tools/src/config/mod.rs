//! Every tuning knob of the endpoint as one typed, validated [`Settings`] struct.
//!
//! The same kebab-case names work as command-line flags (`--rx-batch 64`) and as keys of a TOML
//! file (`rx-batch = 64`, loaded with `--config FILE`); flags override the file. Every value goes
//! through [`Settings::set`], so both sources are validated by the same code, and an error names
//! the key, the bad value and the allowed range on one line. [`Settings::to_toml`] prints the
//! effective settings in a form `--config` reads back unchanged.

mod cli;

pub use cli::ConfigArgs;
use peregrine_units as values;
pub use peregrine_units::{
    format_duration, format_list, format_size, parse_duration, parse_duration_in, parse_list,
    parse_size, parse_switch,
};

use peregrine_engine::Algorithm;
use peregrine_engine::MAX_CID_LEN;
use peregrine_engine::{CidFormat, DEFAULT_CID_LEN, MAX_SERVER_ID_LEN};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which datapath the workers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datapath {
    /// Kernel UDP sockets with `sendmmsg`/`recvmmsg`, GSO and GRO.
    Udp,
    /// Kernel UDP sockets driven through io_uring.
    Uring,
    /// AF_XDP sockets bound to NIC queues (kernel bypass).
    Xdp,
}

/// When the server answers a new client with a Retry (address validation, RFC 9000 §8.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Every client without a valid token: one round trip more, no state for spoofed
    /// addresses.
    Always,
    /// Never (a worker still drops new clients past its half-open cap).
    Never,
    /// Once a worker's half-open connections reach a quarter of `max-handshakes`.
    Auto,
}

impl Retry {
    /// The setting's text form.
    pub fn name(self) -> &'static str {
        match self {
            Retry::Always => "always",
            Retry::Never => "never",
            Retry::Auto => "auto",
        }
    }
}

/// When `peregrine client` moves its connection to a new local port (`migrate-after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateAfter {
    /// This long after the handshake.
    Time(Duration),
    /// Once this many bytes of responses arrived.
    Bytes(u64),
}

impl MigrateAfter {
    /// The setting's text form.
    pub fn to_text(self) -> String {
        match self {
            MigrateAfter::Time(d) => format_duration(d),
            MigrateAfter::Bytes(n) => format_size(n),
        }
    }
}

/// How an XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode when the driver supports it, generic otherwise.
    Auto,
    /// Driver mode only; fails when the driver has no XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

/// Default [`Settings::workers`].
pub const DEFAULT_WORKERS: u32 = 1;
/// Largest [`Settings::workers`].
pub const MAX_WORKERS: u32 = 1024;
/// Largest CPU core number accepted in [`Settings::cores`].
pub const MAX_CORE: u32 = 4095;
/// Largest NIC queue number accepted in [`Settings::queues`].
pub const MAX_QUEUE: u32 = 4095;
/// Default receive and transmit batch size (datagrams per system call or ring pass).
pub const DEFAULT_BATCH: u32 = 32;
/// Largest batch size (the datapath's limit).
pub const MAX_BATCH: u32 = 1024;
/// Largest busy-poll window, in microseconds.
pub const MAX_BUSY_POLL_US: u64 = 1_000_000;
/// Default initial congestion window: RFC 9002's 14720 bytes.
pub const DEFAULT_INITIAL_WINDOW: u64 = 14_720;
/// Smallest and largest initial congestion window.
pub const INITIAL_WINDOW_RANGE: (u64, u64) = (2_400, 16 << 20);
/// Default maximum UDP payload size: QUIC's largest, so path MTU discovery probes up to
/// whatever the path, the datapath and the peer carry (1472 on Ethernet, 8972 on 9000-byte
/// jumbo frames, 65507 on IPv4 loopback).
pub const DEFAULT_MTU: u32 = MAX_MTU;
/// UDP payload size datagrams start with before path MTU discovery raises it (at most the
/// `mtu` setting): fits a 1500-byte Ethernet MTU over IPv6.
pub const START_MTU: u32 = 1_452;
/// Smallest maximum UDP payload QUIC allows (RFC 9000 section 14).
pub const MIN_MTU: u32 = 1_200;
/// Largest `max_udp_payload_size` QUIC allows (65535 minus the 8-byte UDP header); over IPv4
/// the kernel carries at most 65507 bytes, so larger values only help over IPv6 jumbograms.
pub const MAX_MTU: u32 = 65_527;
/// Default per-stream flow-control window.
pub const DEFAULT_STREAM_WINDOW: u64 = 1 << 20;
/// Smallest and largest per-stream window.
pub const STREAM_WINDOW_RANGE: (u64, u64) = (1 << 10, 1 << 30);
/// Default connection flow-control window.
pub const DEFAULT_CONNECTION_WINDOW: u64 = 16 << 20;
/// Smallest and largest connection window.
pub const CONNECTION_WINDOW_RANGE: (u64, u64) = (1 << 10, 16 << 30);
/// Default number of concurrent streams the peer may open, per direction type.
pub const DEFAULT_MAX_STREAMS: u64 = 100;
/// Largest concurrent-stream limit accepted.
pub const MAX_STREAMS: u64 = 1 << 20;
/// Default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest idle timeout.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default handshake timeout (the engine's, 5 s): a connection whose handshake has not
/// completed by then is dropped.
pub use peregrine_engine::DEFAULT_HANDSHAKE_TIMEOUT;
/// Largest handshake timeout.
pub const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default cap on half-open connections per worker.
pub const DEFAULT_MAX_HANDSHAKES: u64 = 1024;
/// Largest cap on half-open connections per worker.
pub const MAX_HANDSHAKES: u64 = 1 << 20;
/// Default datagrams per DATAGRAM queue (the engine's).
pub use peregrine_engine::DEFAULT_DATAGRAM_QUEUE;
/// Largest `datagram-queue`.
pub const MAX_DATAGRAM_QUEUE: u32 = 65_536;
/// Default ring size (AF_XDP rings, io_uring queue depth).
pub const DEFAULT_RING_SIZE: u32 = 4096;
/// Smallest and largest ring size (a power of two).
pub const RING_SIZE_RANGE: (u32, u32) = (64, 32_768);

/// The effective settings of an endpoint. Built from [`Settings::default`], then a config file,
/// then flags; each field's doc states its default and unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `datapath`: udp, uring or xdp. Default udp (works everywhere; xdp is fastest).
    pub datapath: Datapath,
    /// `interface`: the NIC for the xdp datapath (and `tune`). Default none.
    pub interface: Option<String>,
    /// `queues`: NIC queue numbers to bind, e.g. `0-3`. Default empty: one per worker from 0.
    pub queues: Vec<u32>,
    /// `workers`: worker threads, 1..=1024. Default 1. Each owns its connections and queue.
    pub workers: u32,
    /// `cores`: CPU cores to pin workers to, e.g. `0-3,6`. Default empty: no pinning.
    pub cores: Vec<u32>,
    /// `rx-batch`: datagrams per receive call, 1..=1024. Default 32. Larger amortises system
    /// calls at the cost of latency under light load.
    pub rx_batch: u32,
    /// `tx-batch`: datagrams per transmit call, 1..=1024. Default 32.
    pub tx_batch: u32,
    /// `busy-poll-us`: how long an idle worker spins before sleeping, in µs, 0..=1000000.
    /// Default 0 (sleep at once). Spinning lowers latency and burns a core.
    pub busy_poll_us: u64,
    /// `congestion`: newreno, cubic or bbr (BBRv3). Default bbr.
    pub congestion: Algorithm,
    /// `initial-window`: initial congestion window in bytes, 2400..=16M. Default 14720.
    pub initial_window: u64,
    /// `pacing`: spread each window over the RTT. Default on.
    pub pacing: bool,
    /// `gso`: segmentation offload on transmit. Default on.
    pub gso: bool,
    /// `gro`: receive coalescing. Default on.
    pub gro: bool,
    /// `mtu`: largest UDP payload in bytes, 1200..=65527: the upper bound of path MTU
    /// discovery, which starts at min(mtu, 1452). Default 65527 (as large as the path, the
    /// datapath and the peer allow).
    pub mtu: u32,
    /// `stream-window`: per-stream receive window in bytes, 1K..=1G. Default 1M. Memory per
    /// stream at most this much.
    pub stream_window: u64,
    /// `connection-window`: per-connection receive window in bytes, 1K..=16G. Default 16M.
    pub connection_window: u64,
    /// `max-bidi-streams`: concurrent bidirectional streams the peer may open. Default 100.
    pub max_bidi_streams: u64,
    /// `max-uni-streams`: concurrent unidirectional streams the peer may open. Default 100.
    pub max_uni_streams: u64,
    /// `idle-timeout`: close a silent connection after this, 1ms..=1h. Default 30s.
    pub idle_timeout: Duration,
    /// `handshake-timeout`: drop a connection whose handshake has not completed after this,
    /// 1ms..=10m, whatever the idle timeout. Default 5s. Shorter frees the state of a flood
    /// of Initials sooner; too short fails handshakes on slow, lossy paths.
    pub handshake_timeout: Duration,
    /// `max-handshakes`: most half-open connections per worker, 1..=1048576. Default 1024
    /// (each costs a few tens of KB until its handshake completes). Past it new clients
    /// without a token get a Retry (`retry` auto or always) or are dropped (never).
    pub max_handshakes: u64,
    /// `retry`: always, never or auto. Default auto: Retry once a worker's half-open
    /// connections reach a quarter of `max-handshakes`; tokens are valid on every worker.
    pub retry: Retry,
    /// `token-key-file`: a file holding a 32-byte secret, raw or as 64 hex digits (one line).
    /// Retry and NEW_TOKEN tokens are sealed with a key derived from it and stateless reset
    /// tokens with another, so servers given the same file accept each other's tokens and can
    /// reset each other's connections (behind one load balancer, or across a restart).
    /// Share it only among servers a load balancer routes to by connection ID (a server resets
    /// a live connection of another whose packet reaches it). Default none: random keys per
    /// process. Keep the file secret.
    pub token_key_file: Option<PathBuf>,
    /// `cid-len`: length in octets of the connection IDs a server issues, 6..=20 (at least
    /// `quic-lb-server-id`'s length + 6: the QUIC-LB first octet, the worker octet and a
    /// 4-octet nonce). Default 8. Every server behind one load balancer uses the same length.
    pub cid_len: u32,
    /// `quic-lb-server-id`: this server's QUIC-LB server ID, 1..=14 octets in hex (e.g. `01`
    /// or `0a0b`), written after the first octet of every connection ID the server issues so
    /// that a load balancer routes short-header packets to it (draft-ietf-quic-load-balancers,
    /// plaintext mode). Give each server of a group its own ID. Default none: connection IDs
    /// carry config rotation 0b111 (unroutable by QUIC-LB).
    pub quic_lb_server_id: Option<Vec<u8>>,
    /// `quic-lb-config-rotation`: the QUIC-LB config rotation codepoint, 0..=6, in the top
    /// three bits of every connection ID's first octet (a balancer running two configurations
    /// during a change tells them apart by it). Needs `quic-lb-server-id`. Default 0.
    pub quic_lb_config_rotation: Option<u8>,
    /// `early-data`: a server accepts 0-RTT on resumed connections. Default off. Anti-replay:
    /// session tickets become single-use (stateful, kept in memory per process, at most 4096
    /// sessions), so a replayed 0-RTT flight is refused; tickets do not survive a restart.
    /// The application must still only act on 0-RTT requests that are safe to replay across
    /// servers not sharing that memory (RFC 9001 §9.2).
    pub early_data: bool,
    /// `datagrams`: accept and send unreliable DATAGRAM frames (RFC 9221; advertises
    /// max_datagram_frame_size 65535). Default off. `perf --datagrams` turns it on for its
    /// client and in-process server.
    pub datagrams: bool,
    /// `datagram-queue`: datagrams held in each direction's queue, 1..=65536. Default 64.
    /// When a queue is full the oldest datagram is dropped (and counted); memory held per
    /// connection is at most this many times 64 KiB each way.
    pub datagram_queue: u32,
    /// `preferred-address`: a server advertises this address (IP and port) as its preferred
    /// address (RFC 9000 §9.6) with a connection ID of its own; clients that use it move there
    /// once the handshake is confirmed. The server must receive on it: listen on a wildcard
    /// address (e.g. 0.0.0.0) with the same port. Default none.
    pub preferred_address: Option<SocketAddr>,
    /// `migrate-after`: `peregrine client` moves its connection to a new local port (RFC 9000
    /// §9.2: new connection ID, path validation) this long after the handshake (a duration,
    /// e.g. 200ms) or once this many response bytes arrived (a size, e.g. 1M). Default none.
    pub migrate_after: Option<MigrateAfter>,
    /// `ring-size`: AF_XDP ring and io_uring queue entries, a power of two in 64..=32768.
    /// Default 4096.
    pub ring_size: u32,
    /// `xdp-mode`: auto, native or generic. Default auto.
    pub xdp_mode: XdpMode,
    /// `xdp-payload-copy`: copy each payload between engine buffers and UMEM frames (the older
    /// AF_XDP path, with software GSO; for comparison). Default off: the engine seals into and
    /// opens in UMEM frames, no user-space copy.
    pub xdp_payload_copy: bool,
    /// `keylog-file`: write TLS secrets here (NSS key log format). Default none.
    pub keylog_file: Option<PathBuf>,
    /// `qlog-dir`: write one qlog file per connection here. Default none.
    pub qlog_dir: Option<PathBuf>,
    /// `metrics-addr`: serve Prometheus metrics on this address. Default none.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            datapath: Datapath::Udp,
            interface: None,
            queues: Vec::new(),
            workers: DEFAULT_WORKERS,
            cores: Vec::new(),
            rx_batch: DEFAULT_BATCH,
            tx_batch: DEFAULT_BATCH,
            busy_poll_us: 0,
            congestion: Algorithm::default(),
            initial_window: DEFAULT_INITIAL_WINDOW,
            pacing: true,
            gso: true,
            gro: true,
            mtu: DEFAULT_MTU,
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_bidi_streams: DEFAULT_MAX_STREAMS,
            max_uni_streams: DEFAULT_MAX_STREAMS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            retry: Retry::Auto,
            token_key_file: None,
            cid_len: DEFAULT_CID_LEN as u32,
            quic_lb_server_id: None,
            quic_lb_config_rotation: None,
            early_data: false,
            datagrams: false,
            datagram_queue: DEFAULT_DATAGRAM_QUEUE as u32,
            preferred_address: None,
            migrate_after: None,
            ring_size: DEFAULT_RING_SIZE,
            xdp_mode: XdpMode::Auto,
            xdp_payload_copy: false,
            keylog_file: None,
            qlog_dir: None,
            metrics_addr: None,
        }
    }
}

/// Every key, in the order they are printed.
pub const KEYS: [&str; 37] = [
    "datapath",
    "interface",
    "queues",
    "workers",
    "cores",
    "rx-batch",
    "tx-batch",
    "busy-poll-us",
    "congestion",
    "initial-window",
    "pacing",
    "gso",
    "gro",
    "mtu",
    "stream-window",
    "connection-window",
    "max-bidi-streams",
    "max-uni-streams",
    "idle-timeout",
    "handshake-timeout",
    "max-handshakes",
    "retry",
    "token-key-file",
    "cid-len",
    "quic-lb-server-id",
    "quic-lb-config-rotation",
    "early-data",
    "datagrams",
    "datagram-queue",
    "preferred-address",
    "migrate-after",
    "ring-size",
    "xdp-mode",
    "xdp-payload-copy",
    "keylog-file",
    "qlog-dir",
    "metrics-addr",
];

fn ranged<T: PartialOrd + std::fmt::Display + Copy>(
    v: T,
    lo: T,
    hi: T,
    what: &str,
) -> Result<T, String> {
    if v < lo || v > hi {
        Err(format!("{v} is outside {lo}..={hi}{what}"))
    } else {
        Ok(v)
    }
}

fn int(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|_| format!("'{s}' is not a non-negative integer"))
}

fn size_in(s: &str, (lo, hi): (u64, u64)) -> Result<u64, String> {
    let v = parse_size(s)?;
    if v < lo || v > hi {
        return Err(format!("'{s}' is outside {}..={} bytes", format_size(lo), format_size(hi)));
    }
    Ok(v)
}

impl Settings {
    /// Sets one knob by its kebab-case key from its text form, validating it. The error names
    /// the key, the value and what is allowed, on one line.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.set_inner(key, value).map_err(|why| format!("{key}: {why}"))
    }

    fn set_inner(&mut self, key: &str, v: &str) -> Result<(), String> {
        let u32_in = |lo: u32, hi: u32| -> Result<u32, String> {
            let n = int(v)?;
            let n = u32::try_from(n).map_err(|_| format!("{n} is outside {lo}..={hi}"))?;
            ranged(n, lo, hi, "")
        };
        match key {
            "datapath" => {
                self.datapath = match v.trim() {
                    "udp" => Datapath::Udp,
                    "uring" => Datapath::Uring,
                    "xdp" => Datapath::Xdp,
                    _ => return Err(format!("'{v}' is not one of udp, uring, xdp")),
                }
            }
            "interface" => {
                let ok = !v.is_empty() && v.len() < 16 && !v.contains(['/', ' ', '\0']);
                if !ok {
                    return Err(format!("'{v}' is not an interface name (1..=15 bytes, no '/')"));
                }
                self.interface = Some(v.to_owned());
            }
            "queues" => self.queues = parse_list(v, MAX_QUEUE)?,
            "workers" => self.workers = u32_in(1, MAX_WORKERS)?,
            "cores" => self.cores = parse_list(v, MAX_CORE)?,
            "rx-batch" => self.rx_batch = u32_in(1, MAX_BATCH)?,
            "tx-batch" => self.tx_batch = u32_in(1, MAX_BATCH)?,
            "busy-poll-us" => self.busy_poll_us = ranged(int(v)?, 0, MAX_BUSY_POLL_US, " µs")?,
            "congestion" => {
                self.congestion = v.trim().parse().map_err(|_| {
                    format!("'{v}' is not a known congestion controller (newreno, cubic, bbr)")
                })?
            }
            "initial-window" => self.initial_window = size_in(v, INITIAL_WINDOW_RANGE)?,
            "pacing" => self.pacing = values::parse_switch(v)?,
            "gso" => self.gso = values::parse_switch(v)?,
            "gro" => self.gro = values::parse_switch(v)?,
            "mtu" => self.mtu = u32_in(MIN_MTU, MAX_MTU)?,
            "stream-window" => self.stream_window = size_in(v, STREAM_WINDOW_RANGE)?,
            "connection-window" => self.connection_window = size_in(v, CONNECTION_WINDOW_RANGE)?,
            "max-bidi-streams" => self.max_bidi_streams = ranged(int(v)?, 0, MAX_STREAMS, "")?,
            "max-uni-streams" => self.max_uni_streams = ranged(int(v)?, 0, MAX_STREAMS, "")?,
            "idle-timeout" => {
                self.idle_timeout =
                    parse_duration_in(v, Duration::from_millis(1), MAX_IDLE_TIMEOUT)?
            }
            "handshake-timeout" => {
                self.handshake_timeout =
                    parse_duration_in(v, Duration::from_millis(1), MAX_HANDSHAKE_TIMEOUT)?
            }
            "max-handshakes" => self.max_handshakes = ranged(int(v)?, 1, MAX_HANDSHAKES, "")?,
            "retry" => {
                self.retry = match v.trim() {
                    "always" => Retry::Always,
                    "never" => Retry::Never,
                    "auto" => Retry::Auto,
                    _ => return Err(format!("'{v}' is not one of always, never, auto")),
                }
            }
            "early-data" => self.early_data = values::parse_switch(v)?,
            "datagrams" => self.datagrams = values::parse_switch(v)?,
            "datagram-queue" => self.datagram_queue = u32_in(1, MAX_DATAGRAM_QUEUE)?,
            "preferred-address" => {
                let a: SocketAddr = v.trim().parse().map_err(|_| {
                    format!("'{v}' is not an address with a port (e.g. 127.0.0.2:4433)")
                })?;
                if a.ip().is_unspecified() || a.port() == 0 {
                    return Err(format!("'{v}' is not a specific address and port"));
                }
                self.preferred_address = Some(a);
            }
            "migrate-after" => self.migrate_after = Some(parse_migrate_after(v)?),
            "token-key-file" => {
                let path = non_empty_path(v)?;
                read_key_file(&path)?;
                self.token_key_file = Some(path);
            }
            "cid-len" => self.cid_len = u32_in(MIN_CID_LEN as u32, MAX_CID_LEN as u32)?,
            "quic-lb-server-id" => self.quic_lb_server_id = Some(parse_server_id(v)?),
            "quic-lb-config-rotation" => {
                self.quic_lb_config_rotation = Some(u32_in(0, 6)? as u8);
            }
            "ring-size" => {
                let n = u32_in(RING_SIZE_RANGE.0, RING_SIZE_RANGE.1)?;
                if !n.is_power_of_two() {
                    return Err(format!("{n} is not a power of two (64, 128, ..., 32768)"));
                }
                self.ring_size = n;
            }
            "xdp-mode" => {
                self.xdp_mode = match v.trim() {
                    "auto" => XdpMode::Auto,
                    "native" => XdpMode::Native,
                    "generic" => XdpMode::Generic,
                    _ => return Err(format!("'{v}' is not one of auto, native, generic")),
                }
            }
            "xdp-payload-copy" => self.xdp_payload_copy = values::parse_switch(v)?,
            "keylog-file" => self.keylog_file = Some(non_empty_path(v)?),
            "qlog-dir" => self.qlog_dir = Some(non_empty_path(v)?),
            "metrics-addr" => {
                self.metrics_addr = Some(v.trim().parse().map_err(|_| {
                    format!("'{v}' is not an address with a port (e.g. 127.0.0.1:9100)")
                })?)
            }
            _ => return Err(format!("unknown key (known: {})", KEYS.join(", "))),
        }
        Ok(())
    }

    /// Applies a TOML document: every key must be known (the error names the first that is
    /// not), every value valid. `origin` names the file in errors.
    pub fn apply_toml(&mut self, text: &str, origin: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" at line {line}")
                })
                .unwrap_or_default();
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{origin}: invalid TOML{at}: {msg}")
        })?;
        for (key, value) in &table {
            if !KEYS.contains(&key.as_str()) {
                return Err(format!("{origin}: unknown key '{key}' (known: {})", KEYS.join(", ")));
            }
            let text = toml_value_text(value).ok_or_else(|| {
                format!("{origin}: {key}: expected a string, integer, boolean or list of integers, got {}", value.type_str())
            })?;
            self.set(key, &text).map_err(|e| format!("{origin}: {e}"))?;
        }
        Ok(())
    }

    /// Reads and applies a TOML config file.
    pub fn apply_file(&mut self, path: &std::path::Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        self.apply_toml(&text, &path.display().to_string())
    }

    /// The connection ID format a server issues: `cid-len`, and with `quic-lb-server-id` a
    /// QUIC-LB configuration (`quic-lb-config-rotation`, default 0). The error names the key.
    pub fn cid_format(&self) -> Result<CidFormat, String> {
        let len = self.cid_len as usize;
        let format = match (&self.quic_lb_server_id, self.quic_lb_config_rotation) {
            (Some(id), rotation) => CidFormat::new(len, id, rotation.unwrap_or(0)),
            (None, None) => CidFormat::unconfigured(len),
            (None, Some(_)) => {
                return Err("--quic-lb-config-rotation: needs --quic-lb-server-id".into())
            }
        };
        format.map_err(|e| format!("--cid-len: {e}"))
    }

    /// The effective settings as a TOML document `--config` accepts (unset optional keys are
    /// left out).
    pub fn to_toml(&self) -> String {
        use toml::Value;
        let s = |x: &str| Value::String(x.to_owned());
        let i = |x: u64| Value::Integer(i64::try_from(x).unwrap_or(i64::MAX));
        let mut t = toml::Table::new();
        t.insert(
            "datapath".into(),
            s(match self.datapath {
                Datapath::Udp => "udp",
                Datapath::Uring => "uring",
                Datapath::Xdp => "xdp",
            }),
        );
        if let Some(name) = &self.interface {
            t.insert("interface".into(), s(name));
        }
        t.insert("queues".into(), s(&format_list(&self.queues)));
        t.insert("workers".into(), i(self.workers.into()));
        t.insert("cores".into(), s(&format_list(&self.cores)));
        t.insert("rx-batch".into(), i(self.rx_batch.into()));
        t.insert("tx-batch".into(), i(self.tx_batch.into()));
        t.insert("busy-poll-us".into(), i(self.busy_poll_us));
        t.insert("congestion".into(), s(self.congestion.name()));
        t.insert("initial-window".into(), i(self.initial_window));
        t.insert("pacing".into(), Value::Boolean(self.pacing));
        t.insert("gso".into(), Value::Boolean(self.gso));
        t.insert("gro".into(), Value::Boolean(self.gro));
        t.insert("mtu".into(), i(self.mtu.into()));
        t.insert("stream-window".into(), s(&format_size(self.stream_window)));
        t.insert("connection-window".into(), s(&format_size(self.connection_window)));
        t.insert("max-bidi-streams".into(), i(self.max_bidi_streams));
        t.insert("max-uni-streams".into(), i(self.max_uni_streams));
        t.insert("idle-timeout".into(), s(&format_duration(self.idle_timeout)));
        t.insert("handshake-timeout".into(), s(&format_duration(self.handshake_timeout)));
        t.insert("max-handshakes".into(), i(self.max_handshakes));
        t.insert("retry".into(), s(self.retry.name()));
        if let Some(p) = &self.token_key_file {
            t.insert("token-key-file".into(), s(&p.to_string_lossy()));
        }
        t.insert("cid-len".into(), i(self.cid_len.into()));
        if let Some(id) = &self.quic_lb_server_id {
            t.insert("quic-lb-server-id".into(), s(&format_server_id(id)));
        }
        if let Some(r) = self.quic_lb_config_rotation {
            t.insert("quic-lb-config-rotation".into(), i(r.into()));
        }
        t.insert("early-data".into(), Value::Boolean(self.early_data));
        t.insert("datagrams".into(), Value::Boolean(self.datagrams));
        t.insert("datagram-queue".into(), i(self.datagram_queue.into()));
        t.insert("ring-size".into(), i(self.ring_size.into()));
        t.insert(
            "xdp-mode".into(),
            s(match self.xdp_mode {
                XdpMode::Auto => "auto",
                XdpMode::Native => "native",
                XdpMode::Generic => "generic",
            }),
        );
        t.insert("xdp-payload-copy".into(), Value::Boolean(self.xdp_payload_copy));
        if let Some(p) = &self.keylog_file {
            t.insert("keylog-file".into(), s(&p.to_string_lossy()));
        }
        if let Some(p) = &self.qlog_dir {
            t.insert("qlog-dir".into(), s(&p.to_string_lossy()));
        }
        if let Some(a) = &self.metrics_addr {
            t.insert("metrics-addr".into(), s(&a.to_string()));
        }
        if let Some(a) = &self.preferred_address {
            t.insert("preferred-address".into(), s(&a.to_string()));
        }
        if let Some(m) = self.migrate_after {
            t.insert("migrate-after".into(), s(&m.to_text()));
        }
        // `toml::Table` keeps keys sorted; print in KEYS order so related knobs stay together.
        let mut out = String::from("# peregrine settings (load with --config FILE)\n");
        for key in KEYS {
            if let Some(v) = t.get(key) {
                out.push_str(&format!("{key} = {v}\n"));
            }
        }
        out
    }
}

/// Parses `migrate-after`: a duration with a unit (1ms..=1h) or a byte count (1..=1T).
fn parse_migrate_after(v: &str) -> Result<MigrateAfter, String> {
    if parse_duration(v).is_ok() {
        let d = parse_duration_in(v, Duration::from_millis(1), Duration::from_secs(3600))
            .map_err(|_| format!("'{v}' is outside 1ms..=1h"))?;
        return Ok(MigrateAfter::Time(d));
    }
    match parse_size(v) {
        Ok(n) if (1..=1 << 40).contains(&n) => Ok(MigrateAfter::Bytes(n)),
        Ok(_) => Err(format!("'{v}' is outside 1..=1T bytes")),
        Err(_) => Err(format!("'{v}' is neither a duration (e.g. 200ms) nor a size (e.g. 1M)")),
    }
}

/// Shortest `cid-len`: the QUIC-LB first octet, the worker octet and a 4-octet nonce.
pub const MIN_CID_LEN: usize = CidFormat::min_len(0);

/// Parses `quic-lb-server-id`: 1..=14 octets as hex digits (an even count, optional `0x`).
fn parse_server_id(v: &str) -> Result<Vec<u8>, String> {
    let t = v.trim();
    let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let bad = || {
        format!("'{v}' is not 1..={MAX_SERVER_ID_LEN} octets in hex (an even number of digits, e.g. 01 or 0a0b)")
    };
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 2 * MAX_SERVER_ID_LEN {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()).ok_or_else(bad))
        .collect()
}

/// Prints a server ID the way [`parse_server_id`] reads it.
pub fn format_server_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest key file read (a key with a comment or CRLF fits easily).
const MAX_KEY_FILE: u64 = 1024;

/// The 32-byte secret in the key file at `path`: exactly 32 raw bytes, or 64 hex digits
/// (surrounding whitespace ignored). The error names the file and what was wrong, on one line.
pub fn read_key_file(path: &std::path::Path) -> Result<[u8; 32], String> {
    use std::io::Read;
    let name = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or_default();
    let key: [u8; 32] = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (k, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let digits = std::str::from_utf8(pair).unwrap_or_default();
            *k = u8::from_str_radix(digits, 16).map_err(|_| format!("{name}: not hex"))?;
        }
        key
    } else if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
        raw
    } else {
        let size = if bytes.len() as u64 > MAX_KEY_FILE {
            format!("more than {MAX_KEY_FILE} bytes")
        } else {
            format!("{} bytes", bytes.len())
        };
        return Err(format!("{name} holds {size}: expected 32 raw bytes or 64 hex digits"));
    };
    if key == [0; 32] {
        return Err(format!("{name}: the key is all zeros (generate one: openssl rand -hex 32)"));
    }
    Ok(key)
}

fn non_empty_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        Err("the path is empty".into())
    } else {
        Ok(PathBuf::from(v))
    }
}

/// The text form of a TOML value for [`Settings::set`]; `None` for tables, floats and dates.
fn toml_value_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|x| x.as_integer().map(|n| n.to_string()))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
