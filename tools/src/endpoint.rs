//! Builds a QUIC [`Endpoint`] from the effective [`Settings`]: the only place the CLI turns
//! settings into transport, worker, TLS key-log and datapath configuration.
//!
//! Every setting is either applied or refused with a one-line error naming it; nothing is
//! dropped silently. What the datapath could not do (its `Capabilities::missing`, the XDP mode
//! in effect, copy or zero-copy) comes back as start-up notes the commands print on stderr.

use std::net::SocketAddr;
use std::time::Duration;

use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_datapath::uring::{UringConfig, UringQueue};
use peregrine_datapath::xdp::{XdpConfig, XdpMode as DpXdpMode, XdpQueue};
use peregrine_datapath::{Capabilities, Queue};
use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::KeyLogTarget;
use peregrine_engine::RetryPolicy;
use peregrine_engine::WorkerConfig;
use peregrine_engine::DEFAULT_CID_LEN;
use peregrine_engine::{Dir, StreamsConfig};
use peregrine_engine::{ServerConfig, TransportConfig, MAX_DATAGRAM_SIZE_LIMIT};

use crate::config::{
    format_list, Datapath, Retry, Settings, XdpMode, DEFAULT_MAX_HANDSHAKES, DEFAULT_RING_SIZE,
    DEFAULT_WORKERS,
};

/// Which endpoint of a command the settings are for, so that keys that make no sense there
/// are refused rather than ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// `server`, or perf's in-process server: every key applies.
    Server,
    /// `client`: `metrics-addr`, `retry`, `max-handshakes` and `token-key-file` do not apply.
    Client,
    /// perf's client side next to its in-process server: `workers` and `cores` belong to
    /// the server; the client endpoint has one unpinned worker.
    PerfClient,
    /// `perf --server`: only a client endpoint, which `workers` and `cores` size and pin;
    /// `retry`, `max-handshakes` and `token-key-file` do not apply (there is no local server).
    PerfRemote,
}

/// Refuses settings that cannot apply to `datapath`/`use`, before anything is opened, and
/// creates the qlog directory.
pub fn check(s: &Settings, usage: Use) -> Result<(), String> {
    if let Some(dir) = &s.qlog_dir {
        // Created here, before anything is opened, so a bad path is one line at start-up
        // rather than a warning per connection.
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--qlog-dir: cannot create {}: {e}", dir.display()))?;
    }
    validate(s, usage)
}

/// Whether `interface` is a loopback device (sysfs `type` 772, `ARPHRD_LOOPBACK`).
fn is_loopback(interface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/type"))
        .is_ok_and(|t| t.trim() == "772")
}

/// The checks of [`check`] without side effects: `peregrine config` and the commands run
/// this same code, so that every value `config` accepts the commands accept too.
pub fn validate(s: &Settings, usage: Use) -> Result<(), String> {
    if usage == Use::Client && s.metrics_addr.is_some() {
        return Err("--metrics-addr: only server and perf serve metrics".into());
    }
    if usage != Use::Server && s.preferred_address.is_some() {
        return Err("--preferred-address: applies to `peregrine server` only".into());
    }
    if usage != Use::Client && s.migrate_after.is_some() {
        return Err("--migrate-after: applies to `peregrine client` only".into());
    }
    // How a server admits new clients; a client accepts no connections, so these would be
    // dropped silently.
    let why = match usage {
        Use::Client => Some("a client accepts no connections"),
        Use::PerfRemote => Some("perf --server runs no local server"),
        Use::Server | Use::PerfClient => None,
    };
    if let Some(why) = why {
        let key = if s.retry != Retry::Auto {
            Some("retry")
        } else if s.max_handshakes != DEFAULT_MAX_HANDSHAKES {
            Some("max-handshakes")
        } else if s.token_key_file.is_some() {
            Some("token-key-file")
        } else {
            None
        };
        if let Some(key) = key {
            return Err(format!("--{key}: applies to servers only ({why})"));
        }
    }
    // A client endpoint issues the default format (no balancer routes to a client).
    if usage == Use::Client {
        let lb = s.quic_lb_server_id.is_some() || s.quic_lb_config_rotation.is_some();
        if lb || s.cid_len != DEFAULT_CID_LEN as u32 {
            let key =
                if lb { "--quic-lb-server-id/--quic-lb-config-rotation" } else { "--cid-len" };
            return Err(format!("{key}: applies to servers only (a client is not load balanced)"));
        }
    }
    s.cid_format()?;
    if u32::from(MAX_DATAGRAM_SIZE_LIMIT) < s.mtu {
        return Err(format!(
            "--mtu: {} is above {MAX_DATAGRAM_SIZE_LIMIT}, the largest UDP payload the engine \
             builds",
            s.mtu
        ));
    }
    let start = start_mtu(s);
    if s.initial_window < 2 * u64::from(start) {
        return Err(format!(
            "--initial-window: {} is below two datagrams of the starting size {start} ({})",
            s.initial_window,
            2 * start
        ));
    }
    let name = datapath_name(s.datapath);
    if s.datapath != Datapath::Xdp {
        if s.interface.is_some() {
            return Err(format!("--interface: applies to --datapath xdp only (not {name})"));
        }
        if !s.queues.is_empty() {
            return Err(format!("--queues: applies to --datapath xdp only (not {name})"));
        }
        if s.xdp_mode != XdpMode::Auto {
            return Err(format!("--xdp-mode: applies to --datapath xdp only (not {name})"));
        }
        if s.xdp_payload_copy {
            return Err(format!("--xdp-payload-copy: applies to --datapath xdp only (not {name})"));
        }
    }
    if s.datapath == Datapath::Udp && s.ring_size != DEFAULT_RING_SIZE {
        return Err("--ring-size: applies to --datapath uring and xdp only (not udp)".into());
    }
    if s.datapath == Datapath::Xdp {
        let Some(interface) = &s.interface else {
            return Err("--datapath xdp needs --interface IF".into());
        };
        if !s.queues.is_empty() && s.queues.len() != workers(s, usage) {
            return Err(format!(
                "--queues: {} lists {} queue(s) for {} worker(s) (one worker per queue)",
                format_list(&s.queues),
                s.queues.len(),
                workers(s, usage)
            ));
        }
        if is_loopback(interface) {
            return Err(format!(
                "--datapath xdp: {interface} is the loopback interface, which AF_XDP does not \
                 serve; use --datapath udp or uring on loopback"
            ));
        }
        if usage == Use::PerfClient {
            return Err("--datapath xdp: the in-process server listens on 127.0.0.1, which \
                        AF_XDP cannot serve; run `peregrine server` on the interface and give \
                        --server"
                .into());
        }
    }
    if usage == Use::PerfClient {
        return Ok(());
    }
    if !s.cores.is_empty() {
        if s.cores.len() < s.workers as usize {
            return Err(format!(
                "--cores: {} lists {} core(s) for {} worker(s)",
                format_list(&s.cores),
                s.cores.len(),
                s.workers
            ));
        }
        let online = online_cores()?;
        if let Some(c) = s.cores.iter().find(|c| !online.contains(c)) {
            return Err(format!(
                "--cores: core {c} does not exist or is offline (online: {})",
                format_list(&online)
            ));
        }
    }
    Ok(())
}

/// The CPU cores the kernel has online (`/sys/devices/system/cpu/online`).
fn online_cores() -> Result<Vec<u32>, String> {
    let path = "/sys/devices/system/cpu/online";
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--cores: cannot read {path} to check the cores: {e}"))?;
    crate::config::parse_list(text.trim(), u32::MAX)
        .map_err(|e| format!("--cores: cannot parse {path}: {e}"))
}

fn datapath_name(d: Datapath) -> &'static str {
    match d {
        Datapath::Udp => "udp",
        Datapath::Uring => "uring",
        Datapath::Xdp => "xdp",
    }
}

fn workers(s: &Settings, usage: Use) -> usize {
    match usage {
        Use::PerfClient => DEFAULT_WORKERS as usize,
        _ => s.workers as usize,
    }
}

/// The transport settings: congestion controller, initial window, pacing, datagram size,
/// windows (the window is also the auto-tuning ceiling: memory per stream / connection is at
/// most the setting), stream limits and idle timeout.
pub fn transport(s: &Settings) -> Result<TransportConfig, String> {
    let e = |key: &'static str| move |err: &dyn std::fmt::Display| format!("--{key}: {err}");
    let mtu = u16::try_from(s.mtu).map_err(|_| format!("--mtu: {} is too large", s.mtu))?;
    let start = u16::try_from(start_mtu(s)).unwrap_or(mtu);
    let streams = StreamsConfig::default()
        .with_stream_receive_window(s.stream_window)
        .and_then(|c| c.with_max_stream_receive_window(s.stream_window))
        .map_err(|x| e("stream-window")(&x))?
        .with_receive_window(s.connection_window)
        .and_then(|c| c.with_max_receive_window(s.connection_window))
        .map_err(|x| e("connection-window")(&x))?
        .with_max_concurrent_streams(Dir::Bi, s.max_bidi_streams)
        .map_err(|x| e("max-bidi-streams")(&x))?
        .with_max_concurrent_streams(Dir::Uni, s.max_uni_streams)
        .map_err(|x| e("max-uni-streams")(&x))?;
    TransportConfig::default()
        .with_max_datagram_size(start)
        .and_then(|t| t.with_pmtud_upper_bound(mtu))
        .map_err(|x| e("mtu")(&x))?
        .with_initial_window(Some(s.initial_window))
        .map_err(|x| e("initial-window")(&x))?
        .with_idle_timeout(Some(s.idle_timeout))
        .map_err(|x| e("idle-timeout")(&x))?
        .with_handshake_timeout(Some(s.handshake_timeout))
        .map_err(|x| e("handshake-timeout")(&x))
        .map(|t| t.with_congestion(s.congestion).with_pacing(s.pacing).with_streams(streams))
        .and_then(|t| match s.datagrams {
            true => t
                .with_datagrams(MAX_DATAGRAM_FRAME_SIZE, s.datagram_queue as usize)
                .map_err(|x| e("datagram-queue")(&x)),
            false => Ok(t),
        })
}

/// The max_datagram_frame_size `datagrams on` advertises: the largest (a datagram is still
/// limited by one packet of the path MTU).
pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 65_535;

/// How each worker admits new clients: `retry` and `max-handshakes` (Retry tokens are sealed
/// with one key per endpoint, so they are valid on every worker), and the token and stateless
/// reset keys derived from `token-key-file` (so they are valid across servers sharing it).
pub fn admission(s: &Settings, server: &mut ServerConfig) -> Result<(), String> {
    server.max_handshakes = usize::try_from(s.max_handshakes).unwrap_or(usize::MAX);
    server.retry = match s.retry {
        Retry::Always => RetryPolicy::Always,
        Retry::Never => RetryPolicy::Never,
        Retry::Auto => RetryPolicy::AboveHandshakes((server.max_handshakes / 4).max(1)),
    };
    server.cid_format = Some(s.cid_format()?);
    if let Some(path) = &s.token_key_file {
        let secret =
            crate::config::read_key_file(path).map_err(|e| format!("--token-key-file: {e}"))?;
        server.token_key = Some(derive_key(&secret, b"peregrine address validation token key"));
        server.reset_key = Some(derive_key(&secret, b"peregrine stateless reset key"));
    }
    Ok(())
}

/// A key for one purpose from the shared secret: HMAC-SHA256(secret, label), so the token key
/// and the reset key differ and neither reveals the other.
fn derive_key(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), label);
    let mut key = [0u8; 32];
    key.copy_from_slice(tag.as_ref());
    key
}

/// Where TLS secrets go: `--keylog-file`, else the `SSLKEYLOGFILE` environment variable, else
/// nowhere.
pub fn keylog(s: &Settings) -> KeyLogTarget {
    match &s.keylog_file {
        Some(p) => KeyLogTarget::File(p.clone()),
        None if std::env::var_os("SSLKEYLOGFILE").is_some_and(|v| !v.is_empty()) => {
            KeyLogTarget::FromEnv
        }
        None => KeyLogTarget::Disabled,
    }
}

/// Worker threads: pinning, busy-poll, batch sizes, GSO train length.
fn worker_config(s: &Settings, usage: Use) -> WorkerConfig {
    let mut w = WorkerConfig::default();
    if usage != Use::PerfClient {
        w.cores = s.cores.iter().take(s.workers as usize).map(|&c| Some(c as usize)).collect();
    }
    w.busy_poll = Duration::from_micros(s.busy_poll_us);
    w.rx_batch = s.rx_batch as usize;
    w.max_batch = s.tx_batch as usize;
    w.qlog_dir = s.qlog_dir.clone();
    if !s.gso {
        w.max_gso_segments = 1;
    }
    w
}

/// The socket part shared by the udp and uring backends.
fn udp_config(s: &Settings, bind: SocketAddr, n: usize) -> Result<UdpConfig, String> {
    let e = |key: &'static str| move |err: std::io::Error| format!("--{key}: {err}");
    UdpConfig::new(bind)
        .with_reuse_port(n > 1)
        .with_gso(s.gso)
        .with_gro(s.gro)
        .with_rx_batch(s.rx_batch as usize)
        .map_err(e("rx-batch"))?
        .with_tx_batch(s.tx_batch as usize)
        .map_err(e("tx-batch"))
}

/// An endpoint and what its start-up should tell the operator.
pub struct Built {
    /// The running endpoint.
    pub endpoint: Endpoint,
    /// One line per fact about the datapath (backend, offloads, what is missing).
    pub notes: Vec<String>,
}

/// Opens the datapath `s` asks for on `bind` and starts an endpoint over it. `config` carries
/// the server and/or client side (their transport settings from [`transport`] and TLS); its
/// worker settings are replaced from `s`.
pub fn build(
    s: &Settings,
    usage: Use,
    bind: SocketAddr,
    mut config: EndpointConfig,
) -> Result<Built, String> {
    check(s, usage)?;
    let n = workers(s, usage);
    config.worker = worker_config(s, usage);
    config.workers = n;
    let name = datapath_name(s.datapath);
    let fail = |e: std::io::Error| format!("--datapath {name} on {bind}: {e}");
    let start = |e: std::io::Error| format!("starting the endpoint: {e}");
    match s.datapath {
        Datapath::Udp => {
            let udp = udp_config(s, bind, n)?;
            // Connections are steered to their owner's queue by the worker octet of their
            // connection IDs, and one client's new connections spread over all workers.
            let octet = config.cid_format().worker_offset() as u8;
            let queues = if n > 1 {
                UdpQueue::open_steered_group(&udp, n, octet)
            } else {
                UdpQueue::open(&udp).map(|q| vec![q])
            }
            .map_err(fail)?;
            check_payload(s, &queues)?;
            let notes = describe(s, usage, &queues, None);
            started(s, usage, Endpoint::with_queues(queues, config).map_err(start)?, notes)
        }
        Datapath::Uring => {
            let ring = UringConfig::from_udp(udp_config(s, bind, n)?)
                .with_ring_entries(s.ring_size)
                .map_err(|e| format!("--ring-size: {e}"))?;
            // Steered like the UDP group (above).
            let octet = config.cid_format().worker_offset() as u8;
            let queues = if n > 1 {
                UringQueue::open_steered_group(&ring, n, octet)
            } else {
                UringQueue::open(&ring).map(|q| vec![q])
            }
            .map_err(fail)?;
            check_payload(s, &queues)?;
            let notes = describe(s, usage, &queues, None);
            started(s, usage, Endpoint::with_queues(queues, config).map_err(start)?, notes)
        }
        Datapath::Xdp => {
            if bind.ip().is_loopback() {
                return Err(format!(
                    "--datapath xdp on {bind}: a loopback address is never on a NIC queue; \
                     listen on the interface's address, or use --datapath udp on loopback"
                ));
            }
            let interface = s.interface.as_deref().unwrap_or_default();
            let e = |key: &'static str| move |err: std::io::Error| format!("--{key}: {err}");
            let mode = match s.xdp_mode {
                XdpMode::Auto => DpXdpMode::Auto,
                XdpMode::Native => DpXdpMode::Native,
                XdpMode::Generic => DpXdpMode::Generic,
            };
            let xdp = XdpConfig::new(interface, bind)
                .with_mode(mode)
                .with_payload_copy(s.xdp_payload_copy)
                .with_ring_size(s.ring_size)
                .map_err(e("ring-size"))?
                .with_rx_batch(s.rx_batch as usize)
                .map_err(e("rx-batch"))?
                .with_tx_batch(s.tx_batch as usize)
                .map_err(e("tx-batch"))?;
            let xdp = if s.gso { xdp } else { xdp.with_gso_segments(1).map_err(e("gso"))? };
            let ids: Vec<u32> =
                if s.queues.is_empty() { (0..n as u32).collect() } else { s.queues.clone() };
            let queues = XdpQueue::open_group(&xdp, &ids).map_err(|err| {
                format!("--datapath xdp on {interface} queues {}: {err}", format_list(&ids))
            })?;
            let mode = queues.first().map(|q| {
                let buffers = if q.lends_frames() {
                    "UMEM frames lent to the engine (no payload copy in user space)"
                } else {
                    "payloads copied between engine buffers and UMEM frames"
                };
                format!(
                    "{} mode, {}-byte frames, {buffers}",
                    format!("{:?}", q.mode()).to_lowercase(),
                    q.frame_size()
                )
            });
            check_payload(s, &queues)?;
            let notes = describe(s, usage, &queues, mode);
            started(s, usage, Endpoint::with_queues(queues, config).map_err(start)?, notes)
        }
    }
}

/// Waits (at most a second of wall clock: a command, not the sans-IO core) for every worker's
/// first report and refuses the endpoint when a worker could not be pinned to its `--cores`
/// entry (e.g. the core is outside this process's CPU set): pinning that silently did not
/// happen would skew every measurement.
#[allow(clippy::disallowed_methods)]
fn started(
    s: &Settings,
    usage: Use,
    endpoint: Endpoint,
    notes: Vec<String>,
) -> Result<Built, String> {
    let asked = if usage == Use::PerfClient { 0 } else { s.cores.len() };
    let asked = endpoint.stats().workers.len().min(asked);
    if asked > 0 {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let workers = endpoint.stats().workers;
            if let Some(w) = workers.iter().find(|w| w.pinned == Some(false)) {
                return Err(format!(
                    "--cores: worker {} could not be pinned to core {} (outside this process's \
                     CPU set?)",
                    w.index, s.cores[w.index]
                ));
            }
            if workers.iter().take(asked).all(|w| w.pinned == Some(true)) {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err("--cores: the workers did not report their pinning within 1 s".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(Built { endpoint, notes })
}

/// Start-up lines: backend, workers and pinning, offloads in effect, and everything missing.
fn describe<Q: Queue>(
    s: &Settings,
    usage: Use,
    queues: &[Q],
    xdp_mode: Option<String>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let caps: Vec<&Capabilities> = queues.iter().map(|q| q.capabilities()).collect();
    let Some(c) = caps.first() else { return notes };
    let on = |b: bool| if b { "on" } else { "off" };
    let mut line = format!(
        "datapath {} on {}: {} queue(s), gso {} ({} segments), gro {}, ecn {}, max payload {}",
        datapath_name(s.datapath),
        queues[0].local_addr(),
        queues.len(),
        on(c.gso && s.gso),
        if s.gso { c.max_gso_segments } else { 1 },
        on(c.gro && s.gro),
        on(c.ecn),
        c.max_udp_payload
    );
    if let Some(mode) = xdp_mode {
        let bind = if c.zero_copy {
            "bound zero-copy (XDP_ZEROCOPY)"
        } else {
            "bound in copy mode (the kernel copies to its sk_buffs)"
        };
        line += &format!(", xdp {mode}, {bind}");
    }
    notes.push(line);
    if !s.cores.is_empty() && usage != Use::PerfClient {
        let used = &s.cores[..s.cores.len().min(queues.len())];
        notes.push(format!("workers pinned to cores {}", format_list(used)));
    }
    let mut missing: Vec<&String> = caps.iter().flat_map(|c| c.missing.iter()).collect();
    missing.sort();
    missing.dedup();
    for m in missing {
        notes.push(format!("datapath missing: {m}"));
    }
    if s.gso && !c.gso && s.datapath != Datapath::Xdp {
        notes.push("gso requested but unavailable: one datagram per send".into());
    }
    if s.gro && !c.gro && s.datapath != Datapath::Xdp {
        notes.push("gro requested but unavailable: one datagram per receive".into());
    }
    notes
}

/// The UDP payload datagrams start with: `mtu`, or less when it is larger than an Ethernet
/// path carries (path MTU discovery climbs from there).
pub fn start_mtu(s: &Settings) -> u32 {
    s.mtu.min(crate::config::START_MTU)
}

/// Refuses an `mtu` the opened datapath cannot carry. The default (the protocol's largest)
/// means "as large as possible": the engine fits it to the datapath.
fn check_payload<Q: Queue>(s: &Settings, queues: &[Q]) -> Result<(), String> {
    match queues.iter().map(|q| q.capabilities().max_udp_payload).min() {
        Some(max) if (s.mtu as usize) > max && s.mtu != crate::config::DEFAULT_MTU => Err(format!(
            "--mtu: {} is above the {max}-byte UDP payload the {} datapath carries here",
            s.mtu,
            datapath_name(s.datapath)
        )),
        _ => Ok(()),
    }
}

/// Prints start-up notes on stdout, one line each, prefixed with `who` (stderr is kept for
/// the one-line error of a failed command).
pub fn print_notes(who: &str, notes: &[String]) {
    for n in notes {
        noteln!("{who}: {n}");
    }
}

/// Notes prefixed with `who`, for a JSON report.
pub fn labelled(who: &str, notes: &[String]) -> Vec<String> {
    notes.iter().map(|n| format!("{who}: {n}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.set(k, v).unwrap();
        }
        s
    }

    #[test]
    fn check_refuses_what_cannot_apply() {
        assert_eq!(check(&Settings::default(), Use::Server), Ok(()));
        type Case<'a> = (&'a [(&'a str, &'a str)], Use, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("datapath", "xdp")], Use::Server, "--interface"),
            (&[("interface", "eth0")], Use::Server, "--interface"),
            (&[("datapath", "uring"), ("queues", "0")], Use::Server, "--queues"),
            (&[("xdp-mode", "native")], Use::Client, "--xdp-mode"),
            (&[("xdp-payload-copy", "on")], Use::Server, "--xdp-payload-copy"),
            (&[("ring-size", "64")], Use::Server, "--ring-size"),
            // Two datagrams of the starting size (min(mtu, 1452)) must fit the initial window.
            (&[("mtu", "1300"), ("initial-window", "2500")], Use::Server, "--initial-window"),
            (&[("initial-window", "2900")], Use::Server, "--initial-window"),
            (&[("qlog-dir", "/dev/null/q")], Use::PerfClient, "--qlog-dir"),
            (&[("metrics-addr", "127.0.0.1:1")], Use::Client, "--metrics-addr"),
            (&[("workers", "3"), ("cores", "0-1")], Use::Server, "--cores"),
            (&[("cores", "4095")], Use::Server, "core 4095"),
            (
                &[("datapath", "xdp"), ("interface", "x"), ("queues", "0-1")],
                Use::Server,
                "--queues",
            ),
        ];
        for (pairs, usage, key) in cases {
            let err = check(&with(pairs), *usage).unwrap_err();
            assert!(err.contains(key) && !err.contains('\n'), "{pairs:?}: {err}");
        }
        // Any mtu the help allows applies (jumbo frames, loopback); datagrams start at 1452.
        for mtu in ["1500", "9000", "65527"] {
            assert_eq!(check(&with(&[("mtu", mtu)]), Use::Server), Ok(()), "{mtu}");
        }
        // The perf client side leaves workers and cores to the in-process server.
        assert_eq!(check(&with(&[("workers", "3"), ("cores", "0")]), Use::PerfClient), Ok(()));
        assert_eq!(
            check(&with(&[("datapath", "uring"), ("ring-size", "64")]), Use::Server),
            Ok(())
        );
    }

    #[test]
    fn transport_takes_the_knobs() {
        let s = with(&[("congestion", "newreno"), ("mtu", "1200"), ("initial-window", "2400")]);
        let t = transport(&s).unwrap();
        assert_eq!(t.congestion(), peregrine_engine::Algorithm::NewReno);
        assert!(transport(&Settings::default()).is_ok());
        assert_eq!(transport(&Settings::default()).unwrap().datagrams(), None);
        let d = transport(&with(&[("datagrams", "on"), ("datagram-queue", "500")])).unwrap();
        assert_eq!(d.datagrams(), Some((MAX_DATAGRAM_FRAME_SIZE, 500)));
        let w =
            worker_config(&with(&[("gso", "off"), ("tx-batch", "8"), ("cores", "0")]), Use::Server);
        assert_eq!((w.max_gso_segments, w.max_batch, w.cores.clone()), (1, 8, vec![Some(0)]));
        assert!(worker_config(&with(&[("cores", "0")]), Use::PerfClient).cores.is_empty());
        // qlog goes to both perf endpoints (the file names tell the sides apart).
        let q = worker_config(&with(&[("qlog-dir", "/tmp/q")]), Use::PerfClient).qlog_dir;
        assert_eq!(q.as_deref(), Some(std::path::Path::new("/tmp/q")));
        assert_eq!(worker_config(&Settings::default(), Use::Server).qlog_dir, None);
        let k = keylog(&with(&[("keylog-file", "/tmp/k")]));
        assert!(matches!(k, KeyLogTarget::File(p) if p == std::path::Path::new("/tmp/k")));
    }
}
