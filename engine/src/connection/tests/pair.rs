//! A deterministic client/server pair on the simulated network with virtual time.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use peregrine_datapath::sim::{LinkConfig, SimNetwork, SimQueue, SimQueueConfig};
use peregrine_datapath::{Queue, RxBatch, TxBatch, TxBuffer, TxMeta};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::connection::{
    ClientConfig, Connection, Event, Incoming, RandomCidGenerator, ServerConfig, TransportConfig,
};
use crate::crypto::{self, TlsClientConfig, TlsServerConfig};
use crate::packet::{LongType, PartialDecode, PlainHeader, RetryHeader};

/// The ALPN both sides speak.
pub const ALPN: &[u8] = b"hq-interop";
/// Length of the connection IDs both sides issue.
pub const CID_LEN: usize = 8;

fn cert() -> &'static (CertificateDer<'static>, PrivateKeyDer<'static>) {
    static CERT: OnceLock<(CertificateDer<'static>, PrivateKeyDer<'static>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        (ck.cert.der().clone(), key)
    })
}

/// The server's certificate.
pub fn tls_cert() -> CertificateDer<'static> {
    cert().0.clone()
}

/// TLS server configuration for "localhost".
pub fn tls_server() -> Arc<TlsServerConfig> {
    static CFG: OnceLock<Arc<TlsServerConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let (c, k) = cert();
        Arc::new(
            TlsServerConfig::builder(vec![c.clone()], k.clone_key())
                .alpn_protocols([ALPN])
                .build()
                .unwrap(),
        )
    })
    .clone()
}

/// A TLS server configuration of its own (its own session store) for "localhost", with
/// 0-RTT on or off.
pub fn new_tls_server(early_data: bool) -> Arc<TlsServerConfig> {
    let (c, k) = cert();
    Arc::new(
        TlsServerConfig::builder(vec![c.clone()], k.clone_key())
            .alpn_protocols([ALPN])
            .enable_early_data(early_data)
            .build()
            .unwrap(),
    )
}

/// A TLS client configuration of its own (its own session caches) that attempts 0-RTT.
pub fn new_tls_client_early() -> Arc<TlsClientConfig> {
    let (c, _) = cert();
    Arc::new(
        TlsClientConfig::builder()
            .add_root_certificate(c.clone())
            .unwrap()
            .alpn_protocols([ALPN])
            .enable_early_data(true)
            .build()
            .unwrap(),
    )
}

/// TLS client configuration trusting [`tls_server`]'s certificate.
pub fn tls_client() -> Arc<TlsClientConfig> {
    static CFG: OnceLock<Arc<TlsClientConfig>> = OnceLock::new();
    CFG.get_or_init(new_tls_client).clone()
}

/// A TLS client configuration of its own (its own session caches), trusting [`tls_server`].
pub fn new_tls_client() -> Arc<TlsClientConfig> {
    let (c, _) = cert();
    Arc::new(
        TlsClientConfig::builder()
            .add_root_certificate(c.clone())
            .unwrap()
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    )
}

/// How the harness's server side treats new connection attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMode {
    /// Accept every Initial.
    Accept,
    /// Answer an Initial without token with a Retry; accept one with our token.
    Retry,
}

/// Settings of a [`Pair`].
#[derive(Clone, Debug)]
pub struct PairConfig {
    /// Simulator seed.
    pub seed: u64,
    /// Client → server link.
    pub up: LinkConfig,
    /// Server → client link.
    pub down: LinkConfig,
    /// Client transport settings.
    pub client: TransportConfig,
    /// Server transport settings.
    pub server: TransportConfig,
    /// Retry or not.
    pub mode: ServerMode,
    /// Most datagrams per GSO transmit.
    pub gso_segments: usize,
    /// The client's first version ([`ClientConfig::with_version`]); `None`: the default.
    pub client_version: Option<u32>,
    /// The client's versions by preference; `None`: the default.
    pub client_versions: Option<Vec<u32>>,
    /// The versions the harness's server accepts (others get Version Negotiation, as the
    /// endpoint's router answers them).
    pub server_versions: Vec<u32>,
    /// [`ServerConfig::preferred_version`].
    pub server_preferred: Option<u32>,
    /// The client's TLS configuration (its session caches); `None`: the shared one.
    pub client_tls: Option<Arc<TlsClientConfig>>,
    /// The server's TLS configuration (its session store); `None`: the shared one.
    pub server_tls: Option<Arc<TlsServerConfig>>,
}

impl Default for PairConfig {
    fn default() -> Self {
        // An Ethernet path (1500-byte MTU): PMTU discovery settles at 1472 as on a NIC;
        // tests of larger sizes set their own.
        let link =
            LinkConfig { mtu: Some(1500), ..LinkConfig::with_delay(Duration::from_millis(10)) };
        Self {
            seed: 1,
            up: link.clone(),
            down: link,
            client: TransportConfig::default().with_rng_seed(11),
            server: TransportConfig::default().with_rng_seed(22),
            mode: ServerMode::Accept,
            gso_segments: 16,
            client_version: None,
            client_versions: None,
            server_versions: crate::version::SUPPORTED.to_vec(),
            server_preferred: None,
            client_tls: None,
            server_tls: None,
        }
    }
}

/// A client and a server [`Connection`] over a [`SimNetwork`].
pub struct Pair {
    /// The network (virtual clock, links, stats).
    pub net: SimNetwork,
    /// The client.
    pub client: Connection,
    /// The server, once the first Initial arrived.
    pub server: Option<Connection>,
    /// Client address.
    pub client_addr: SocketAddr,
    /// Server address.
    pub server_addr: SocketAddr,
    cq: SimQueue,
    sq: SimQueue,
    /// More client ports (migration) and server ports (preferred address).
    client_extra: Vec<SimQueue>,
    server_extra: Vec<SimQueue>,
    links: (LinkConfig, LinkConfig),
    /// The server's configuration (tests may change it before the first Initial arrives).
    pub server_cfg: ServerConfig,
    mode: ServerMode,
    gso: usize,
    /// One receive batch per port (a batch recycles into the pool of the port it reads next).
    crx: RxBatch,
    srx: RxBatch,
    /// Transmit buffers taken but not filled, kept for the next flush.
    spares: (Option<TxBuffer>, Option<TxBuffer>),
    /// The ports the spares were taken from (a spare is only used on its own port).
    spares_at: (Option<SocketAddr>, Option<SocketAddr>),
    /// Retry packets the harness's server sent.
    pub retries_sent: u64,
    /// Version Negotiation packets the harness's server sent.
    pub vn_sent: u64,
    /// Steps run.
    pub steps: u64,
    /// Events seen by the client and server, in order (drained by [`Pair::drive`]).
    pub client_events: Vec<Event>,
    /// See `client_events`.
    pub server_events: Vec<Event>,
    /// Datagrams each side transmitted (client, server).
    pub datagrams: (u64, u64),
    /// `poll_transmit` calls that returned a transmit (client, server).
    pub transmits: (u64, u64),
    /// `handle_timeout` calls (client, server).
    pub wakeups: (u64, u64),
}

/// A Version Negotiation packet to a client whose SCID is `dcid` and whose Initial's DCID was
/// `scid`, listing `versions`.
pub fn version_negotiation(dcid: &[u8], scid: &[u8], versions: &[u32]) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    let range =
        crate::packet::write_version_negotiation(&mut w, 0x40, dcid, scid, versions).unwrap();
    w.written()[range].to_vec()
}

/// The token the harness's Retry carries: a marker and the original DCID.
fn retry_token(odcid: &ConnectionId) -> Vec<u8> {
    let mut t = b"retry:".to_vec();
    t.extend_from_slice(odcid);
    t
}

impl Pair {
    /// A pair with `cfg`; the client's first Initial is queued but not sent yet.
    pub fn new(cfg: PairConfig) -> Self {
        let net = SimNetwork::new(cfg.seed);
        let client_addr: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let server_addr: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let qcfg = SimQueueConfig::default();
        let cq = net.bind_with(client_addr, qcfg.clone()).unwrap();
        let sq = net.bind_with(server_addr, qcfg).unwrap();
        net.set_link(client_addr, server_addr, cfg.up.clone()).unwrap();
        net.set_link(server_addr, client_addr, cfg.down.clone()).unwrap();
        let mut ccfg = ClientConfig::new(cfg.client_tls.clone().unwrap_or_else(tls_client));
        if let Some(v) = &cfg.client_versions {
            ccfg.versions = v.clone();
        }
        if let Some(v) = cfg.client_version {
            ccfg = ccfg.with_version(v).unwrap();
        }
        ccfg.transport = cfg.client.clone();
        let client = Connection::client(
            &ccfg,
            net.now(),
            server_addr,
            "localhost",
            Box::new(RandomCidGenerator::new(CID_LEN, cfg.seed ^ 0xc11e)),
        )
        .unwrap();
        let mut client = client;
        client.set_local_address(client_addr);
        let mut server_cfg = ServerConfig::new(cfg.server_tls.clone().unwrap_or_else(tls_server));
        server_cfg.transport = cfg.server.clone();
        server_cfg.versions = cfg.server_versions.clone();
        server_cfg.preferred_version = cfg.server_preferred;
        Self {
            net,
            client,
            server: None,
            client_addr,
            server_addr,
            cq,
            sq,
            client_extra: Vec::new(),
            server_extra: Vec::new(),
            links: (cfg.up.clone(), cfg.down.clone()),
            server_cfg,
            mode: cfg.mode,
            gso: cfg.gso_segments,
            crx: RxBatch::new(64),
            srx: RxBatch::new(64),
            spares: (None, None),
            spares_at: (None, None),
            retries_sent: 0,
            vn_sent: 0,
            steps: 0,
            client_events: Vec::new(),
            server_events: Vec::new(),
            datagrams: (0, 0),
            transmits: (0, 0),
            wakeups: (0, 0),
        }
    }

    /// A pair with default settings.
    pub fn default_pair() -> Self {
        Self::new(PairConfig::default())
    }

    /// Binds another client port at `addr`, linked to every server port like the first
    /// (`up`, `down`).
    pub fn bind_client(&mut self, addr: SocketAddr) {
        let q = self.net.bind_with(addr, SimQueueConfig::default()).unwrap();
        for s in std::iter::once(&self.sq).chain(&self.server_extra) {
            let sa = s.local_addr();
            self.net.set_link(addr, sa, self.links.0.clone()).unwrap();
            self.net.set_link(sa, addr, self.links.1.clone()).unwrap();
        }
        self.client_extra.push(q);
    }

    /// Binds another server port at `addr` (a preferred address), linked to every client
    /// port like the first.
    pub fn bind_server(&mut self, addr: SocketAddr) {
        let q = self.net.bind_with(addr, SimQueueConfig::default()).unwrap();
        for c in std::iter::once(&self.cq).chain(&self.client_extra) {
            let ca = c.local_addr();
            self.net.set_link(ca, addr, self.links.0.clone()).unwrap();
            self.net.set_link(addr, ca, self.links.1.clone()).unwrap();
        }
        self.server_extra.push(q);
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The server connection (panics before it exists: a test bug).
    pub fn server(&mut self) -> &mut Connection {
        self.server.as_mut().expect("server not created yet")
    }

    /// Handles a datagram arriving at the server with no connection yet: create one (or
    /// answer with a Retry in [`ServerMode::Retry`]).
    pub fn accept(&mut self, now: Instant, data: &[u8]) -> bool {
        if let Ok(crate::packet::InvariantHeader::Long { version, dst_cid, src_cid, .. }) =
            crate::packet::InvariantHeader::parse(data, CID_LEN)
        {
            if version != 0 && !self.server_cfg.versions.contains(&version) {
                self.send_version_negotiation(dst_cid, src_cid);
                return false;
            }
        }
        let Ok((pd, _)) = PartialDecode::new(data, CID_LEN, false) else { return false };
        let PlainHeader::Long { ty: LongType::Initial, version, dst_cid, src_cid, .. } =
            pd.header().clone()
        else {
            return false;
        };
        let token = pd.token(data).to_vec();
        let retry = match self.mode {
            ServerMode::Accept => None,
            ServerMode::Retry if token.is_empty() => {
                self.send_retry(version, dst_cid, src_cid);
                return false;
            }
            ServerMode::Retry => {
                let odcid = ConnectionId::new(&token[6..]).unwrap();
                assert_eq!(token, retry_token(&odcid), "client echoed our Retry token");
                Some((odcid, dst_cid))
            }
        };
        let incoming = Incoming { dst_cid, src_cid, version, retry };
        let server = Connection::server(
            &self.server_cfg,
            now,
            self.client_addr,
            incoming,
            Box::new(RandomCidGenerator::new(CID_LEN, 0x5e4e)),
        )
        .unwrap();
        self.server = Some(server);
        true
    }

    /// Answers a client Initial of a version not accepted (what the endpoint's router does).
    fn send_version_negotiation(&mut self, dcid: &[u8], scid: &[u8]) {
        let d = version_negotiation(scid, dcid, &self.server_cfg.versions);
        self.send_raw(&d);
        self.vn_sent += 1;
    }

    /// Sends `d` from the server's port to the client.
    pub fn send_raw(&mut self, d: &[u8]) {
        let mut tx = self.sq.alloc_tx().unwrap();
        tx.extend_from_slice(d);
        tx.meta = TxMeta::to(self.client_addr);
        let mut batch = TxBatch::new();
        batch.push(tx);
        self.sq.send(&mut batch).unwrap();
    }

    fn send_retry(&mut self, version: u32, odcid: ConnectionId, client_scid: ConnectionId) {
        let retry_scid = ConnectionId::new(&[0xaa; CID_LEN]).unwrap();
        let token = retry_token(&odcid);
        let hdr = RetryHeader {
            version,
            dst_cid: client_scid,
            src_cid: retry_scid,
            token: &token,
            unused_bits: 0,
        };
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        let range = hdr.write(&mut w).unwrap();
        let cv = crypto::Version::from_wire(version).unwrap();
        let tag = crypto::retry_integrity_tag(cv, &odcid, &w.written()[range]).unwrap();
        w.put_slice(&tag).unwrap();
        let mut tx = self.sq.alloc_tx().unwrap();
        tx.extend_from_slice(w.written());
        tx.meta = TxMeta::to(self.client_addr);
        let mut batch = TxBatch::new();
        batch.push(tx);
        self.sq.send(&mut batch).unwrap();
        self.retries_sent += 1;
    }

    /// One step: deliver arrivals, run due timers, flush transmits, collect events, and
    /// advance the clock to the next network event or timer. Returns false when nothing is
    /// left to happen.
    pub fn step(&mut self) -> bool {
        self.step_capped(None)
    }

    /// [`step`](Self::step), never advancing the clock past `cap`.
    pub fn step_capped(&mut self, cap: Option<Instant>) -> bool {
        self.steps += 1;
        let now = self.net.now();
        // Arrivals.
        for q in std::iter::once(&mut self.cq).chain(self.client_extra.iter_mut()) {
            let local = q.local_addr();
            q.recv(&mut self.crx).unwrap();
            for d in self.crx.iter_mut() {
                let (src, ecn) = (d.meta.src, d.meta.ecn);
                for seg in d.segments_mut() {
                    self.client.handle_datagram_on(now, Some(local), src, ecn, seg);
                }
            }
        }
        let mut arrivals: Vec<(SocketAddr, SocketAddr, peregrine_datapath::Ecn, Vec<u8>)> =
            Vec::new();
        for q in std::iter::once(&mut self.sq).chain(self.server_extra.iter_mut()) {
            let local = q.local_addr();
            q.recv(&mut self.srx).unwrap();
            for d in self.srx.iter_mut() {
                let (src, ecn) = (d.meta.src, d.meta.ecn);
                for seg in d.segments_mut() {
                    if let Some(s) = self.server.as_mut() {
                        s.handle_datagram_on(now, Some(local), src, ecn, seg);
                    } else {
                        arrivals.push((local, src, ecn, seg.to_vec()));
                    }
                }
            }
        }
        for (local, src, ecn, mut data) in arrivals {
            if self.server.is_none() && !self.accept(now, &data) {
                continue;
            }
            if let Some(s) = self.server.as_mut() {
                s.handle_datagram_on(now, Some(local), src, ecn, &mut data);
            }
        }
        // Timers.
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
            self.wakeups.0 += 1;
        }
        if let Some(s) = self.server.as_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
                self.wakeups.1 += 1;
            }
        }
        // Transmits.
        let cq = pick(&mut self.cq, &mut self.client_extra, self.client.local_address());
        if self.spares_at.0.replace(cq.local_addr()) != Some(cq.local_addr()) {
            self.spares.0 = None;
        }
        let (d, t) = flush(&mut self.client, cq, &mut self.spares.0, now, self.gso);
        self.datagrams.0 += d;
        self.transmits.0 += t;
        if let Some(s) = self.server.as_mut() {
            let sq = pick(&mut self.sq, &mut self.server_extra, s.local_address());
            if self.spares_at.1.replace(sq.local_addr()) != Some(sq.local_addr()) {
                self.spares.1 = None;
            }
            let (d, t) = flush(s, sq, &mut self.spares.1, now, self.gso);
            self.datagrams.1 += d;
            self.transmits.1 += t;
        }
        // Events.
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        if let Some(s) = self.server.as_mut() {
            while let Some(e) = s.poll_event() {
                self.server_events.push(e);
            }
        }
        // Time.
        let next = [
            self.net.next_event(),
            self.client.poll_timeout(),
            self.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let next = match (next, cap) {
            (Some(n), Some(c)) => Some(n.min(c.max(now))),
            (None, Some(c)) if c > now => Some(c),
            (n, _) => n,
        };
        match next {
            Some(t) if t > now => {
                self.net.advance_to(t);
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Steps until `done` holds (checked before each step) or `max_steps` ran; returns
    /// whether `done` held. `app` runs after each step (application logic).
    pub fn drive(
        &mut self,
        max_steps: u64,
        mut app: impl FnMut(&mut Pair),
        mut done: impl FnMut(&mut Pair) -> bool,
    ) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            let more = self.step();
            app(self);
            if !more && !done(self) {
                return false;
            }
        }
        done(self)
    }

    /// Runs until both sides report `Connected` (bounded).
    pub fn handshake(&mut self) -> bool {
        self.drive(
            10_000,
            |_| {},
            |p| {
                p.client_events.contains(&Event::Connected)
                    && p.server_events.contains(&Event::Connected)
                    && p.client.is_handshake_confirmed()
            },
        )
    }

    /// Runs for `d` of virtual time (bounded by `max` steps).
    pub fn run_for(&mut self, d: Duration, max: u64) {
        let end = self.now() + d;
        for _ in 0..max {
            if self.now() >= end || !self.step_capped(Some(end)) {
                return;
            }
        }
    }
}

/// The queue bound at `local` (the connection's path), or the first one.
fn pick<'a>(
    first: &'a mut SimQueue,
    extra: &'a mut [SimQueue],
    local: Option<SocketAddr>,
) -> &'a mut SimQueue {
    match extra.iter_mut().find(|q| Some(q.local_addr()) == local) {
        Some(q) => q,
        None => first,
    }
}

/// Sends everything `conn` has (GSO trains of up to `gso` datagrams); returns the datagrams
/// sent and the transmits (GSO trains) they left in.
fn flush(
    conn: &mut Connection,
    q: &mut SimQueue,
    spare: &mut Option<TxBuffer>,
    now: Instant,
    gso: usize,
) -> (u64, u64) {
    let (mut sent, mut transmits) = (0, 0);
    let mut batch = TxBatch::new();
    // Bounded: each transmit is at least one datagram and the congestion window is finite.
    for _ in 0..4096 {
        let Some(mut tx) = spare.take().or_else(|| q.alloc_tx()) else { break };
        let Some(t) = conn.poll_transmit(now, tx.spare(), gso) else {
            // An unused buffer dropped would be freed; keep it for the next flush.
            *spare = Some(tx);
            break;
        };
        tx.advance(t.len);
        tx.meta = TxMeta { dst: t.dst, src_ip: None, ecn: t.ecn, segment_size: t.segment_size };
        sent += t.datagrams as u64;
        transmits += 1;
        batch.push(tx);
        if batch.len() >= 32 {
            q.send(&mut batch).unwrap();
        }
    }
    if !batch.is_empty() {
        q.send(&mut batch).unwrap();
    }
    (sent, transmits)
}
