//! The settings as command-line flags: `--config FILE` plus one flag per key of [`Settings`].
//!
//! One field per entry of [`super::KEYS`]; the `every_key_is_a_flag` test checks they agree.

use super::Settings;
use std::path::PathBuf;

/// `--config FILE` and one flag per setting; flatten into any command that runs an endpoint.
/// Values are kept as text so that [`Settings::set`] validates flags and file keys alike.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// Read settings from this TOML file (same key names as the flags); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Datapath: udp, uring or xdp [default: udp].
    #[arg(long = "datapath", value_name = "KIND", allow_hyphen_values = true)]
    pub datapath: Option<String>,
    /// Network interface for the xdp datapath.
    #[arg(long = "interface", value_name = "IF", allow_hyphen_values = true)]
    pub interface: Option<String>,
    /// NIC queues to bind, e.g. 0-3 [default: one per worker].
    #[arg(long = "queues", value_name = "LIST", allow_hyphen_values = true)]
    pub queues: Option<String>,
    /// Worker threads, 1..=1024 [default: 1].
    #[arg(long = "workers", value_name = "N", allow_hyphen_values = true)]
    pub workers: Option<String>,
    /// CPU cores to pin workers to, e.g. 0-3,6 [default: no pinning].
    #[arg(long = "cores", value_name = "LIST", allow_hyphen_values = true)]
    pub cores: Option<String>,
    /// Datagrams per receive call, 1..=1024 [default: 32].
    #[arg(long = "rx-batch", value_name = "N", allow_hyphen_values = true)]
    pub rx_batch: Option<String>,
    /// Datagrams per transmit call, 1..=1024 [default: 32].
    #[arg(long = "tx-batch", value_name = "N", allow_hyphen_values = true)]
    pub tx_batch: Option<String>,
    /// Busy-poll window of an idle worker in µs, 0..=1000000 [default: 0].
    #[arg(long = "busy-poll-us", value_name = "US", allow_hyphen_values = true)]
    pub busy_poll_us: Option<String>,
    /// Congestion controller: newreno, cubic or bbr [default: bbr].
    #[arg(long = "congestion", value_name = "NAME", allow_hyphen_values = true)]
    pub congestion: Option<String>,
    /// Initial congestion window, 2400..=16M [default: 14720].
    #[arg(long = "initial-window", value_name = "BYTES", allow_hyphen_values = true)]
    pub initial_window: Option<String>,
    /// Pacing [default: on].
    #[arg(long = "pacing", value_name = "on|off", allow_hyphen_values = true)]
    pub pacing: Option<String>,
    /// Segmentation offload on transmit [default: on].
    #[arg(long = "gso", value_name = "on|off", allow_hyphen_values = true)]
    pub gso: Option<String>,
    /// Receive coalescing [default: on].
    #[arg(long = "gro", value_name = "on|off", allow_hyphen_values = true)]
    pub gro: Option<String>,
    /// Largest UDP payload, 1200..=65527: path MTU discovery probes up to it from
    /// min(BYTES, 1452) [default: 65527, what the path and datapath carry].
    #[arg(long = "mtu", value_name = "BYTES", allow_hyphen_values = true)]
    pub mtu: Option<String>,
    /// Per-stream flow-control window, 1K..=1G, suffixes K/M/G [default: 1M].
    #[arg(long = "stream-window", value_name = "BYTES", allow_hyphen_values = true)]
    pub stream_window: Option<String>,
    /// Connection flow-control window, 1K..=16G [default: 16M].
    #[arg(long = "connection-window", value_name = "BYTES", allow_hyphen_values = true)]
    pub connection_window: Option<String>,
    /// Concurrent bidirectional streams the peer may open [default: 100].
    #[arg(long = "max-bidi-streams", value_name = "N", allow_hyphen_values = true)]
    pub max_bidi_streams: Option<String>,
    /// Concurrent unidirectional streams the peer may open [default: 100].
    #[arg(long = "max-uni-streams", value_name = "N", allow_hyphen_values = true)]
    pub max_uni_streams: Option<String>,
    /// Idle timeout, e.g. 30s or 500ms, 1ms..=1h [default: 30s].
    #[arg(long = "idle-timeout", value_name = "DURATION", allow_hyphen_values = true)]
    pub idle_timeout: Option<String>,
    /// Drop a connection whose handshake has not completed after this, 1ms..=10m
    /// [default: 5s].
    #[arg(long = "handshake-timeout", value_name = "DURATION", allow_hyphen_values = true)]
    pub handshake_timeout: Option<String>,
    /// Most half-open connections per worker; past it new clients get a Retry or are dropped
    /// [default: 1024].
    #[arg(long = "max-handshakes", value_name = "N", allow_hyphen_values = true)]
    pub max_handshakes: Option<String>,
    /// Retry (address validation) for new clients: always, never, or auto (once a worker's
    /// half-open connections reach a quarter of --max-handshakes) [default: auto].
    #[arg(long = "retry", value_name = "always|never|auto", allow_hyphen_values = true)]
    pub retry: Option<String>,
    /// File with a 32-byte secret (raw or 64 hex digits) keying Retry/NEW_TOKEN and stateless
    /// reset tokens: servers given the same file accept each other's tokens [default: random
    /// keys per process].
    #[arg(long = "token-key-file", value_name = "FILE", allow_hyphen_values = true)]
    pub token_key_file: Option<String>,
    /// Length of the connection IDs the server issues, 6..=20; the same on every server behind
    /// one load balancer [default: 8].
    #[arg(long = "cid-len", value_name = "N", allow_hyphen_values = true)]
    pub cid_len: Option<String>,
    /// QUIC-LB server ID, 1..=14 octets in hex (e.g. 01): carried by every connection ID the
    /// server issues so a load balancer routes by it; one per server of a group [default:
    /// none, connection IDs unroutable by QUIC-LB].
    #[arg(long = "quic-lb-server-id", value_name = "HEX", allow_hyphen_values = true)]
    pub quic_lb_server_id: Option<String>,
    /// QUIC-LB config rotation codepoint, 0..=6, in the first octet of every connection ID
    /// (needs --quic-lb-server-id) [default: 0].
    #[arg(long = "quic-lb-config-rotation", value_name = "N", allow_hyphen_values = true)]
    pub quic_lb_config_rotation: Option<String>,
    /// Server: accept 0-RTT on resumed connections, with single-use session tickets as
    /// anti-replay [default: off].
    #[arg(long = "early-data", value_name = "on|off", allow_hyphen_values = true)]
    pub early_data: Option<String>,
    /// Accept and send unreliable DATAGRAM frames, RFC 9221 (server, client, perf); alone,
    /// `--datagrams` means on, and in perf it also selects the datagram mode [default: off].
    #[arg(long = "datagrams", value_name = "on|off", num_args = 0..=1, default_missing_value = "on")]
    pub datagrams: Option<String>,
    /// Datagrams held in each direction's queue, 1..=65536; when full the oldest is dropped
    /// and counted [default: 64].
    #[arg(long = "datagram-queue", value_name = "N", allow_hyphen_values = true)]
    pub datagram_queue: Option<String>,
    /// Server: advertise ADDR (IP:port) as the preferred address (RFC 9000 §9.6); clients
    /// that use it move there after the handshake. Listen on a wildcard address with the same
    /// port so the server receives on it [default: none].
    #[arg(long = "preferred-address", value_name = "ADDR", allow_hyphen_values = true)]
    pub preferred_address: Option<String>,
    /// Client: move the connection to a new local port (RFC 9000 §9.2) after a duration
    /// (e.g. 200ms) or once this many response bytes arrived (e.g. 1M) [default: never].
    #[arg(long = "migrate-after", value_name = "DURATION|BYTES", allow_hyphen_values = true)]
    pub migrate_after: Option<String>,
    /// AF_XDP ring / io_uring entries, power of two 64..=32768 [default: 4096].
    #[arg(long = "ring-size", value_name = "N", allow_hyphen_values = true)]
    pub ring_size: Option<String>,
    /// XDP attach mode: auto, native or generic [default: auto].
    #[arg(long = "xdp-mode", value_name = "MODE", allow_hyphen_values = true)]
    pub xdp_mode: Option<String>,
    /// AF_XDP: copy payloads between engine buffers and UMEM frames (the older path, with
    /// software GSO) instead of sealing and opening them in place [default: off].
    #[arg(long = "xdp-payload-copy", value_name = "on|off", allow_hyphen_values = true)]
    pub xdp_payload_copy: Option<String>,
    /// Append TLS secrets to FILE (NSS key log format, for Wireshark) [default: the
    /// SSLKEYLOGFILE environment variable if set, else none].
    #[arg(
        long = "keylog-file",
        visible_alias = "keylog",
        value_name = "FILE",
        allow_hyphen_values = true
    )]
    pub keylog_file: Option<String>,
    /// Write a qlog trace (JSON-SEQ, main schema draft 13 / QUIC events draft 12) of every
    /// connection to DIR, one `{odcid}_{client|server}.sqlog` file each; DIR is created if
    /// missing.
    #[arg(long = "qlog-dir", value_name = "DIR", allow_hyphen_values = true)]
    pub qlog_dir: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9100 (server, perf).
    #[arg(
        long = "metrics-addr",
        visible_alias = "metrics",
        value_name = "ADDR",
        allow_hyphen_values = true
    )]
    pub metrics_addr: Option<String>,
}

impl ConfigArgs {
    /// The flags that were given, as `(key, value)` pairs in key order.
    pub fn given(&self) -> Vec<(&'static str, &str)> {
        let all: [(&'static str, &Option<String>); super::KEYS.len()] = [
            ("datapath", &self.datapath),
            ("interface", &self.interface),
            ("queues", &self.queues),
            ("workers", &self.workers),
            ("cores", &self.cores),
            ("rx-batch", &self.rx_batch),
            ("tx-batch", &self.tx_batch),
            ("busy-poll-us", &self.busy_poll_us),
            ("congestion", &self.congestion),
            ("initial-window", &self.initial_window),
            ("pacing", &self.pacing),
            ("gso", &self.gso),
            ("gro", &self.gro),
            ("mtu", &self.mtu),
            ("stream-window", &self.stream_window),
            ("connection-window", &self.connection_window),
            ("max-bidi-streams", &self.max_bidi_streams),
            ("max-uni-streams", &self.max_uni_streams),
            ("idle-timeout", &self.idle_timeout),
            ("handshake-timeout", &self.handshake_timeout),
            ("max-handshakes", &self.max_handshakes),
            ("retry", &self.retry),
            ("token-key-file", &self.token_key_file),
            ("cid-len", &self.cid_len),
            ("quic-lb-server-id", &self.quic_lb_server_id),
            ("quic-lb-config-rotation", &self.quic_lb_config_rotation),
            ("early-data", &self.early_data),
            ("datagrams", &self.datagrams),
            ("datagram-queue", &self.datagram_queue),
            ("preferred-address", &self.preferred_address),
            ("migrate-after", &self.migrate_after),
            ("ring-size", &self.ring_size),
            ("xdp-mode", &self.xdp_mode),
            ("xdp-payload-copy", &self.xdp_payload_copy),
            ("keylog-file", &self.keylog_file),
            ("qlog-dir", &self.qlog_dir),
            ("metrics-addr", &self.metrics_addr),
        ];
        all.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, v))).collect()
    }

    /// Defaults, then the config file (if any), then the flags.
    pub fn resolve(&self) -> Result<Settings, String> {
        let mut s = Settings::default();
        if let Some(path) = &self.config {
            s.apply_file(path)?;
        }
        for (key, value) in self.given() {
            s.set(key, value).map_err(|e| format!("--{e}"))?;
        }
        Ok(s)
    }
}
