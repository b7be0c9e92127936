//! Building a pair for a test: network, link, certificates, ALPN, idle timeout, for each pairing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_datapath::sim::{LinkConfig, SimNetwork};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::crypto::{TlsClientConfig, TlsServerConfig};
use peregrine_engine::streams::{Dir, StreamsConfig};

use crate::certs::{self, Pki, ALPN};
use crate::driver::Pair;
use crate::peregrine_peer::PeregrinePeer;
use crate::quinn_peer::QuinnPeer;
use crate::tap::KeyLog;

/// The client's address on the simulated network.
pub const CLIENT: &str = "10.0.0.1:50000";
/// The server's address on the simulated network.
pub const SERVER: &str = "10.0.0.2:4433";
/// One-way delay of the default link.
pub const DELAY: Duration = Duration::from_millis(10);
/// Concurrent bidirectional streams each side allows with [`Setup::tight`].
pub const TIGHT_STREAMS: u64 = 4;
/// Stream receive window with [`Setup::tight`].
pub const TIGHT_STREAM_WINDOW: u64 = 16 * 1024;
/// Connection receive window with [`Setup::tight`].
pub const TIGHT_CONN_WINDOW: u64 = 64 * 1024;

/// What a test varies.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Seed of the network (loss pattern).
    pub seed: u64,
    /// Both directions of the path.
    pub link: LinkConfig,
    /// The ALPN the client offers (the server accepts only [`ALPN`]).
    pub client_alpn: &'static [u8],
    /// False: the client trusts another CA than the one that signed the server's certificate.
    pub trusted: bool,
    /// Idle timeout both sides advertise (`None`: the implementations' defaults).
    pub idle_timeout: Option<Duration>,
    /// Only the server advertises `idle_timeout`; the client keeps its default.
    pub idle_server_only: bool,
    /// Small limits on both sides: 4 concurrent bidirectional streams, 16 KiB stream windows,
    /// 64 KiB connection windows, no window auto-tuning.
    pub tight: bool,
    /// A quinn-proto server answers the first Initial with a Retry.
    pub retry: bool,
    /// The QUIC version a Peregrine client starts with (default v1).
    pub client_version: u32,
    /// The versions a Peregrine client offers, by preference (`None`: its default, with
    /// `client_version` first).
    pub client_versions: Option<Vec<u32>>,
    /// A Peregrine server's `preferred_version` (compatible negotiation, RFC 9368).
    pub server_preferred: Option<u32>,
    /// Peregrine accepts DATAGRAM frames (max_datagram_frame_size 1200, queues of 1024);
    /// quinn-proto does by default.
    pub datagrams: bool,
    /// Extra DNS names on the server's certificate (0: a small chain of ~1 KB).
    pub cert_names: usize,
    /// Largest UDP payload Peregrine builds (`None`: its default, 1200).
    pub max_datagram: Option<u16>,
    /// quinn-proto asks its peer, with ACK_FREQUENCY, for this Ack-Eliciting Threshold
    /// (`None`: quinn's default, no ACK_FREQUENCY sent).
    pub quinn_ack_threshold: Option<u32>,
    /// A quinn-proto server advertises this preferred address (RFC 9000 §9.6).
    pub quinn_preferred: Option<std::net::SocketAddrV4>,
}

impl Setup {
    /// A clean 10 ms one-way path, matching ALPN, trusted certificate, default idle timeouts.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            link: LinkConfig::with_delay(DELAY),
            client_alpn: ALPN,
            trusted: true,
            idle_timeout: None,
            idle_server_only: false,
            tight: false,
            retry: false,
            client_version: peregrine_engine::version::V1,
            client_versions: None,
            server_preferred: None,
            datagrams: false,
            cert_names: 0,
            max_datagram: None,
            quinn_ack_threshold: None,
            quinn_preferred: None,
        }
    }

    /// With independent random loss `p` on both directions.
    pub fn loss(mut self, p: f64) -> Self {
        self.link.loss = p;
        self
    }

    /// The addresses of client and server.
    pub fn addrs() -> (SocketAddr, SocketAddr) {
        (CLIENT.parse().expect("client addr"), SERVER.parse().expect("server addr"))
    }

    /// The server's PKI and the CA the client trusts.
    pub fn pki(&self) -> (Pki, rustls::pki_types::CertificateDer<'static>) {
        let pki = Pki::generate_with(self.cert_names);
        let root = if self.trusted { pki.ca.clone() } else { Pki::generate().ca };
        (pki, root)
    }

    /// The idle timeout one side advertises.
    fn idle(&self, server: bool) -> Option<Duration> {
        self.idle_timeout.filter(|_| server || !self.idle_server_only)
    }

    /// quinn-proto transport settings for this setup, for the server or the client.
    pub fn quinn_transport(&self, server: bool) -> quinn_proto::TransportConfig {
        let mut t = quinn_proto::TransportConfig::default();
        if let Some(idle) = self.idle(server) {
            t.max_idle_timeout(Some(idle.try_into().expect("idle timeout fits")));
        }
        if let Some(threshold) = self.quinn_ack_threshold {
            let mut af = quinn_proto::AckFrequencyConfig::default();
            af.ack_eliciting_threshold(quinn_proto::VarInt::from_u32(threshold));
            t.ack_frequency_config(Some(af));
        }
        if self.tight {
            t.max_concurrent_bidi_streams(quinn_proto::VarInt::from_u32(TIGHT_STREAMS as u32));
            t.stream_receive_window(quinn_proto::VarInt::from_u32(TIGHT_STREAM_WINDOW as u32));
            t.receive_window(quinn_proto::VarInt::from_u32(TIGHT_CONN_WINDOW as u32));
        }
        t
    }
}

/// quinn-proto client and server (the harness self-check), and the client's key log.
pub fn quinn_quinn(setup: &Setup) -> (Pair<QuinnPeer, QuinnPeer>, KeyLog) {
    let net = SimNetwork::new(setup.seed);
    let (pki, root) = setup.pki();
    let keylog = KeyLog::default();
    let server_cfg =
        certs::quinn_server(&pki, ALPN, &KeyLog::default(), setup.quinn_transport(true));
    let client_cfg =
        certs::quinn_client(&root, setup.client_alpn, &keylog, setup.quinn_transport(false));
    let (c, s) = Setup::addrs();
    let client = QuinnPeer::client(c, s, client_cfg, net.now());
    let server = QuinnPeer::server(s, server_cfg, setup.retry);
    (Pair::new(net, client, server, setup.link.clone()), keylog)
}

impl Setup {
    /// Peregrine transport settings for this setup, for the server or the client.
    pub fn peregrine_transport(&self, server: bool) -> TransportConfig {
        let mut t = TransportConfig::default().with_rng_seed(self.seed ^ u64::from(server));
        if let Some(idle) = self.idle(server) {
            t = t.with_idle_timeout(Some(idle)).expect("valid idle timeout");
        }
        if let Some(size) = self.max_datagram {
            t = t.with_max_datagram_size(size).expect("valid datagram size");
        }
        if self.datagrams {
            t = t.with_datagrams(1200, 1024).expect("valid datagram settings");
        }
        if self.tight {
            let s = StreamsConfig::default()
                .with_max_concurrent_streams(Dir::Bi, TIGHT_STREAMS)
                .and_then(|s| s.with_stream_receive_window(TIGHT_STREAM_WINDOW))
                .and_then(|s| s.with_max_stream_receive_window(TIGHT_STREAM_WINDOW))
                .and_then(|s| s.with_receive_window(TIGHT_CONN_WINDOW))
                .and_then(|s| s.with_max_receive_window(TIGHT_CONN_WINDOW))
                .expect("valid stream limits");
            t = t.with_streams(s);
        }
        t
    }
}

/// Peregrine client (verifying the server through the CA root) against a quinn-proto server,
/// and the server's key log.
pub fn peregrine_quinn(setup: &Setup) -> (Pair<PeregrinePeer, QuinnPeer>, KeyLog) {
    let net = SimNetwork::new(setup.seed);
    let (pki, root) = setup.pki();
    let keylog = KeyLog::default();
    let mut server_cfg = certs::quinn_server(&pki, ALPN, &keylog, setup.quinn_transport(true));
    server_cfg.preferred_address_v4(setup.quinn_preferred);
    let tls = TlsClientConfig::builder()
        .add_root_certificate(root)
        .expect("CA root")
        .alpn_protocols([setup.client_alpn])
        .build()
        .expect("Peregrine TLS client config");
    let mut client_cfg = ClientConfig::new(Arc::new(tls));
    client_cfg.transport = setup.peregrine_transport(false);
    client_cfg = client_cfg.with_version(setup.client_version).expect("client version");
    if let Some(v) = &setup.client_versions {
        client_cfg.versions = v.clone();
    }
    let (c, s) = Setup::addrs();
    let client = PeregrinePeer::client(c, s, &client_cfg, net.now());
    let server = QuinnPeer::server(s, server_cfg, setup.retry);
    (Pair::new(net, client, server, setup.link.clone()), keylog)
}

/// quinn-proto client against a Peregrine server, and the client's key log.
pub fn quinn_peregrine(setup: &Setup) -> (Pair<QuinnPeer, PeregrinePeer>, KeyLog) {
    let net = SimNetwork::new(setup.seed);
    let (pki, root) = setup.pki();
    let keylog = KeyLog::default();
    let client_cfg =
        certs::quinn_client(&root, setup.client_alpn, &keylog, setup.quinn_transport(false));
    assert!(!setup.retry, "the Peregrine server side of this harness sends no Retry");
    let tls = TlsServerConfig::builder(pki.chain.clone(), pki.key_der())
        .alpn_protocols([ALPN])
        .build()
        .expect("Peregrine TLS server config");
    let mut server_cfg = ServerConfig::new(Arc::new(tls));
    server_cfg.transport = setup.peregrine_transport(true);
    server_cfg.preferred_version = setup.server_preferred;
    let (c, s) = Setup::addrs();
    let client = QuinnPeer::client(c, s, client_cfg, net.now());
    let server = PeregrinePeer::server(s, server_cfg);
    (Pair::new(net, client, server, setup.link.clone()), keylog)
}

/// Builds pairs whose connections share TLS state (session caches, ticket keys) across calls.
pub type Factory<C, S> = Box<dyn FnMut(u64) -> Pair<C, S>>;

/// Peregrine clients against quinn-proto servers sharing one configuration each: the second
/// connection can resume the first one's session.
pub fn peregrine_quinn_resumable(setup: &Setup) -> Factory<PeregrinePeer, QuinnPeer> {
    let (pki, root) = setup.pki();
    let server_cfg =
        certs::quinn_server(&pki, ALPN, &KeyLog::default(), setup.quinn_transport(true));
    let tls = TlsClientConfig::builder()
        .add_root_certificate(root)
        .expect("CA root")
        .alpn_protocols([setup.client_alpn])
        .build()
        .expect("Peregrine TLS client config");
    let mut client_cfg = ClientConfig::new(Arc::new(tls));
    client_cfg.transport = setup.peregrine_transport(false);
    let link = setup.link.clone();
    Box::new(move |seed| {
        let net = SimNetwork::new(seed);
        let (c, s) = Setup::addrs();
        let mut cfg = client_cfg.clone();
        cfg.transport = cfg.transport.with_rng_seed(seed);
        let client = PeregrinePeer::client(c, s, &cfg, net.now());
        let server = QuinnPeer::server(s, server_cfg.clone(), false);
        Pair::new(net, client, server, link.clone())
    })
}

/// quinn-proto clients against Peregrine servers sharing one configuration each.
pub fn quinn_peregrine_resumable(setup: &Setup) -> Factory<QuinnPeer, PeregrinePeer> {
    let (pki, root) = setup.pki();
    let client_cfg = certs::quinn_client(
        &root,
        setup.client_alpn,
        &KeyLog::default(),
        setup.quinn_transport(false),
    );
    let tls = TlsServerConfig::builder(pki.chain.clone(), pki.key_der())
        .alpn_protocols([ALPN])
        .build()
        .expect("Peregrine TLS server config");
    let mut server_cfg = ServerConfig::new(Arc::new(tls));
    server_cfg.transport = setup.peregrine_transport(true);
    let link = setup.link.clone();
    Box::new(move |seed| {
        let net = SimNetwork::new(seed);
        let (c, s) = Setup::addrs();
        let client = QuinnPeer::client(c, s, client_cfg.clone(), net.now());
        let mut cfg = server_cfg.clone();
        cfg.transport = cfg.transport.with_rng_seed(seed ^ 1);
        let server = PeregrinePeer::server(s, cfg);
        Pair::new(net, client, server, link.clone())
    })
}

/// quinn-proto on both sides, sharing configurations (the self-check of the resumption case).
pub fn quinn_quinn_resumable(setup: &Setup) -> Factory<QuinnPeer, QuinnPeer> {
    let (pki, root) = setup.pki();
    let server_cfg =
        certs::quinn_server(&pki, ALPN, &KeyLog::default(), setup.quinn_transport(true));
    let client_cfg = certs::quinn_client(
        &root,
        setup.client_alpn,
        &KeyLog::default(),
        setup.quinn_transport(false),
    );
    let link = setup.link.clone();
    Box::new(move |seed| {
        let net = SimNetwork::new(seed);
        let (c, s) = Setup::addrs();
        let client = QuinnPeer::client(c, s, client_cfg.clone(), net.now());
        let server = QuinnPeer::server(s, server_cfg.clone(), false);
        Pair::new(net, client, server, link.clone())
    })
}

/// Peregrine clients attempting 0-RTT against quinn-proto servers that accept it, each side
/// sharing one configuration (session cache, ticket store) across connections.
///
/// The first connection's server accepts 0-RTT; later ones too, or, when
/// `!server_early_data`, a server with another configuration (its ticket store does not know
/// the ticket, so 0-RTT is rejected).
pub fn peregrine_quinn_zero_rtt(
    setup: &Setup,
    server_early_data: bool,
) -> Factory<PeregrinePeer, QuinnPeer> {
    let (pki, root) = setup.pki();
    let keylog = KeyLog::default();
    let quinn =
        |early| certs::quinn_server_with(&pki, ALPN, &keylog, setup.quinn_transport(true), early);
    let first_cfg = quinn(true);
    let later_cfg = if server_early_data { first_cfg.clone() } else { quinn(false) };
    let mut first = true;
    let tls = TlsClientConfig::builder()
        .add_root_certificate(root)
        .expect("CA root")
        .alpn_protocols([setup.client_alpn])
        .enable_early_data(true)
        .build()
        .expect("Peregrine TLS client config");
    let mut client_cfg = ClientConfig::new(Arc::new(tls));
    client_cfg.transport = setup.peregrine_transport(false);
    let link = setup.link.clone();
    Box::new(move |seed| {
        let net = SimNetwork::new(seed);
        let (c, s) = Setup::addrs();
        let mut cfg = client_cfg.clone();
        cfg.transport = cfg.transport.with_rng_seed(seed);
        let client = PeregrinePeer::client(c, s, &cfg, net.now());
        let server_cfg = if std::mem::take(&mut first) { &first_cfg } else { &later_cfg };
        let server = QuinnPeer::server(s, server_cfg.clone(), false);
        Pair::new(net, client, server, link.clone())
    })
}

/// quinn-proto clients attempting 0-RTT against Peregrine servers, each side sharing one
/// configuration across connections. The first connection's server has 0-RTT on (its ticket
/// allows early data); later ones have it on, or off when `!server_early_data` (another TLS
/// configuration, so the ticket does not resume and 0-RTT is rejected).
pub fn quinn_peregrine_zero_rtt(
    setup: &Setup,
    server_early_data: bool,
) -> Factory<QuinnPeer, PeregrinePeer> {
    let (pki, root) = setup.pki();
    let client_cfg = certs::quinn_client_with(
        &root,
        setup.client_alpn,
        &KeyLog::default(),
        setup.quinn_transport(false),
        true,
    );
    let tls = |early: bool| {
        let tls = TlsServerConfig::builder(pki.chain.clone(), pki.key_der())
            .alpn_protocols([ALPN])
            .enable_early_data(early)
            .build()
            .expect("Peregrine TLS server config");
        let mut cfg = ServerConfig::new(Arc::new(tls));
        cfg.transport = setup.peregrine_transport(true);
        cfg
    };
    let first_cfg = tls(true);
    let later_cfg = if server_early_data { first_cfg.clone() } else { tls(false) };
    let mut first = true;
    let link = setup.link.clone();
    Box::new(move |seed| {
        let net = SimNetwork::new(seed);
        let (c, s) = Setup::addrs();
        let client = QuinnPeer::client(c, s, client_cfg.clone(), net.now());
        let server_cfg = if std::mem::take(&mut first) { &first_cfg } else { &later_cfg };
        let mut cfg = server_cfg.clone();
        cfg.transport = cfg.transport.with_rng_seed(seed ^ 1);
        let server = PeregrinePeer::server(s, cfg);
        Pair::new(net, client, server, link.clone())
    })
}
