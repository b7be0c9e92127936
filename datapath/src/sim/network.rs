//! The simulated network: virtual clock, ports, per-direction links, NAT rebinding, in-flight datagrams.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::clock::VirtualClock;
use super::config::{LinkConfig, SimError, SimQueueConfig};
use super::link::{Link, LinkDrop, LinkStats};
use super::queue::SimQueue;
use super::trace::{fnv1a, Fate, TraceEvent};
use crate::Ecn;

/// Ports handed out when binding port 0 (the IANA dynamic range).
const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49_152..=65_535;

/// Most payload vectors kept for reuse, and the largest capacity kept (bounds the memory held).
const SPARE_VECS: usize = 1024;
const SPARE_VEC_BYTES: usize = 16 * 1024;

/// A direction of a path: (sender's bound address, receiver's bound address, or the
/// destination as addressed when nothing is bound there).
type LinkKey = (SocketAddr, SocketAddr);

/// A seeded, deterministic in-memory network on virtual time.
///
/// A cheap handle: clones share one network. Ports ([`SimQueue`]) are bound with
/// [`SimNetwork::bind`]; each implements [`crate::Queue`]. Time only moves when the harness calls
/// [`SimNetwork::advance`] / [`SimNetwork::advance_to`], typically to the earlier of the
/// engine's next timer and [`SimNetwork::next_event`]. Nothing depends on wall time: the same
/// seed and the same calls give the same datagrams at the same virtual instants.
///
/// Every direction between two addresses is a link with its own [`LinkConfig`] (the network
/// default until [`SimNetwork::set_link`] is called for it), its own counters and its own random
/// stream derived from the seed and the two addresses, so traffic on one link never changes the
/// randomness of another.
#[derive(Clone)]
pub struct SimNetwork {
    inner: Arc<Mutex<NetInner>>,
}

/// A datagram on its way to a port.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub at: Instant,
    order: u64,
    pub src: SocketAddr,
    pub link: LinkKey,
    pub ecn: Ecn,
    pub data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

#[derive(Debug, Default)]
struct Endpoint {
    inbox: BinaryHeap<Reverse<InFlight>>,
    /// NAT rebindings, sorted by time: from `.0` on, datagrams from this port appear from `.1`.
    rebinds: Vec<(Instant, SocketAddr)>,
}

/// The shared state behind a [`SimNetwork`] handle.
#[derive(Debug)]
pub(crate) struct NetInner {
    clock: VirtualClock,
    seed: u64,
    default_link: LinkConfig,
    links: BTreeMap<LinkKey, Link>,
    endpoints: BTreeMap<SocketAddr, Endpoint>,
    /// NAT addresses: external address -> (bound address, active from).
    aliases: BTreeMap<SocketAddr, (SocketAddr, Instant)>,
    next_id: u64,
    next_order: u64,
    trace: Option<Vec<TraceEvent>>,
    /// Payload vectors of received datagrams, reused for the next ones sent.
    spare: Vec<Vec<u8>>,
}

impl NetInner {
    fn link_mut(&mut self, key: LinkKey) -> &mut Link {
        let (default, seed) = (&self.default_link, self.seed);
        self.links.entry(key).or_insert_with(|| {
            let stream = fnv1a(&[&addr_bytes(key.0), &addr_bytes(key.1)]);
            Link::new(default.clone(), false, seed, stream)
        })
    }

    /// The port a datagram addressed to `dst` reaches at `now`, if any.
    fn route(&self, dst: SocketAddr, now: Instant) -> Option<SocketAddr> {
        if self.endpoints.contains_key(&dst) {
            return Some(dst);
        }
        match self.aliases.get(&dst) {
            Some(&(bound, from)) if from <= now => Some(bound),
            _ => None,
        }
    }

    /// The source address datagrams from the port `from` carry at `now`.
    fn observed_src(&self, from: SocketAddr, now: Instant) -> SocketAddr {
        self.endpoints
            .get(&from)
            .and_then(|e| e.rebinds.iter().rev().find(|(t, _)| *t <= now))
            .map_or(from, |&(_, a)| a)
    }

    /// Sends one datagram from the port bound at `from` to `dst` at the current virtual time.
    pub fn submit(&mut self, from: SocketAddr, dst: SocketAddr, ecn: Ecn, payload: &[u8]) {
        let now = self.clock.now();
        let id = self.next_id;
        self.next_id += 1;
        let src = self.observed_src(from, now);
        let target = self.route(dst, now);
        let key = (from, target.unwrap_or(dst));
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(payload);
        let link = self.link_mut(key);
        let result = match target {
            Some(_) => link.transmit(now, &mut data, ecn, dst.is_ipv6()),
            None => {
                link.stats.sent += 1;
                link.stats.unroutable += 1;
                Err(LinkDrop::Unroutable)
            }
        };
        if self.trace.is_some() {
            let fate = match result {
                Err(reason) => Fate::Dropped(reason),
                Ok(a) => Fate::Delivered {
                    at: self.clock.since_start(a.at),
                    ecn: a.ecn,
                    corrupted: a.corrupted,
                    reordered: a.reordered,
                    duplicated: a.duplicated,
                    digest: fnv1a(&[&data]),
                },
            };
            let sent_at = self.clock.elapsed();
            let event = TraceEvent { id, sent_at, from, src, dst, len: data.len(), fate };
            if let Some(trace) = self.trace.as_mut() {
                trace.push(event);
            }
        }
        let (Some(to), Ok(arrival)) = (target, result) else {
            return;
        };
        let copies = if arrival.duplicated { 2 } else { 1 };
        let order = self.next_order;
        self.next_order += copies;
        let Some(endpoint) = self.endpoints.get_mut(&to) else {
            return;
        };
        if arrival.duplicated {
            let copy = data.clone();
            let dup = InFlight {
                at: arrival.at,
                order: order + 1,
                src,
                link: key,
                ecn: arrival.ecn,
                data: copy,
            };
            endpoint.inbox.push(Reverse(dup));
        }
        let d = InFlight { at: arrival.at, order, src, link: key, ecn: arrival.ecn, data };
        endpoint.inbox.push(Reverse(d));
    }

    /// When the next datagram for the port bound at `addr` becomes receivable.
    pub fn next_arrival(&self, addr: SocketAddr) -> Option<Instant> {
        self.endpoints.get(&addr)?.inbox.peek().map(|d| d.0.at)
    }

    /// Takes the next datagram receivable now by the port bound at `addr`.
    pub fn pop_ready(&mut self, addr: SocketAddr) -> Option<InFlight> {
        let now = self.clock.now();
        let inbox = &mut self.endpoints.get_mut(&addr)?.inbox;
        if inbox.peek()?.0.at > now {
            return None;
        }
        inbox.pop().map(|Reverse(d)| d)
    }

    /// Takes back the payload vector of a received datagram for reuse (bounded: at most
    /// `SPARE_VECS` of at most `SPARE_VEC_BYTES` each).
    pub fn recycle(&mut self, data: Vec<u8>) {
        if self.spare.len() < SPARE_VECS && data.capacity() <= SPARE_VEC_BYTES {
            self.spare.push(data);
        }
    }

    /// Counts a datagram of `link` as handed to its port (`true`) or discarded there.
    pub fn record_arrival(&mut self, link: LinkKey, delivered: bool) {
        let stats = &mut self.link_mut(link).stats;
        if delivered {
            stats.delivered += 1;
        } else {
            stats.undelivered += 1;
        }
    }

    /// Closes the port bound at `addr`: what was on its way to it is counted undelivered.
    pub fn unbind(&mut self, addr: SocketAddr) {
        let Some(endpoint) = self.endpoints.remove(&addr) else {
            return;
        };
        for Reverse(d) in endpoint.inbox {
            self.record_arrival(d.link, false);
        }
        self.aliases.retain(|_, (bound, _)| *bound != addr);
    }

    fn in_use(&self, addr: SocketAddr) -> bool {
        self.endpoints.contains_key(&addr) || self.aliases.contains_key(&addr)
    }

    fn claim(&mut self, addr: SocketAddr) -> Result<SocketAddr, SimError> {
        if addr.ip().is_unspecified() {
            return Err(SimError::UnspecifiedAddr(addr));
        }
        let addr = if addr.port() != 0 {
            addr
        } else {
            EPHEMERAL_PORTS
                .map(|p| SocketAddr::new(addr.ip(), p))
                .find(|a| !self.in_use(*a))
                .ok_or(SimError::PortsExhausted(addr.ip()))?
        };
        if self.in_use(addr) {
            return Err(SimError::AddrInUse(addr));
        }
        self.endpoints.insert(addr, Endpoint::default());
        Ok(addr)
    }
}

fn addr_bytes(a: SocketAddr) -> Vec<u8> {
    let mut v = match a.ip() {
        IpAddr::V4(ip) => {
            let mut v = vec![4];
            v.extend_from_slice(&ip.octets());
            v
        }
        IpAddr::V6(ip) => {
            let mut v = vec![6];
            v.extend_from_slice(&ip.octets());
            v
        }
    };
    v.extend_from_slice(&a.port().to_be_bytes());
    v
}

impl SimNetwork {
    /// A network with perfect links, seeded with `seed`, whose virtual time starts now (the only
    /// wall-clock read: it anchors the `Instant`s handed out; only differences matter).
    pub fn new(seed: u64) -> Self {
        #[allow(clippy::disallowed_methods)] // one anchor read; the sim never reads it again
        let start = Instant::now();
        Self::with_start(seed, start)
    }

    /// A network whose virtual time starts at `start`.
    pub fn with_start(seed: u64, start: Instant) -> Self {
        let inner = NetInner {
            clock: VirtualClock::new(start),
            seed,
            default_link: LinkConfig::default(),
            links: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            aliases: BTreeMap::new(),
            next_id: 0,
            next_order: 0,
            trace: None,
            spare: Vec::new(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, NetInner> {
        // A panic elsewhere while holding the lock leaves consistent counters; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The seed this network was created with.
    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.lock().clock.now()
    }

    /// The instant virtual time started at.
    pub fn start(&self) -> Instant {
        self.lock().clock.base()
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.lock().clock.elapsed()
    }

    /// Moves virtual time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.lock().clock.advance(d);
    }

    /// Moves virtual time forward to `t`; an instant in the past is ignored.
    pub fn advance_to(&self, t: Instant) {
        self.lock().clock.advance_to(t);
    }

    /// When the earliest datagram in flight becomes receivable (possibly already, when a port has
    /// not received it yet), or `None` when nothing is in flight.
    pub fn next_event(&self) -> Option<Instant> {
        let inner = self.lock();
        inner.endpoints.values().filter_map(|e| e.inbox.peek().map(|d| d.0.at)).min()
    }

    /// Datagrams in flight (sent, not yet received, not dropped).
    pub fn in_flight(&self) -> usize {
        self.lock().endpoints.values().map(|e| e.inbox.len()).sum()
    }

    /// Binds a port with the default [`SimQueueConfig`]. Port 0 picks a free ephemeral port.
    pub fn bind(&self, addr: SocketAddr) -> Result<SimQueue, SimError> {
        self.bind_with(addr, SimQueueConfig::default())
    }

    /// Binds a port. Port 0 picks a free ephemeral port; the IP must be specific (v4 or v6).
    pub fn bind_with(
        &self,
        addr: SocketAddr,
        config: SimQueueConfig,
    ) -> Result<SimQueue, SimError> {
        config.validate()?;
        let addr = self.lock().claim(addr)?;
        Ok(SimQueue::new(self.clone(), addr, &config))
    }

    /// Sets the configuration of every link not configured with [`SimNetwork::set_link`],
    /// existing or future.
    pub fn set_default_link(&self, config: LinkConfig) -> Result<(), SimError> {
        config.validate()?;
        let mut inner = self.lock();
        for link in inner.links.values_mut().filter(|l| !l.explicit) {
            link.config = config.clone();
        }
        inner.default_link = config;
        Ok(())
    }

    /// Sets the model of the direction from the port bound at `from` to the port bound at `to`
    /// (bound addresses, whatever NAT rebinding does to what the receiver sees). Takes effect for
    /// datagrams sent from now on.
    pub fn set_link(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        config.validate()?;
        let mut inner = self.lock();
        let link = inner.link_mut((from, to));
        link.config = config;
        link.explicit = true;
        Ok(())
    }

    /// Sets the same model on both directions between `a` and `b`.
    pub fn set_path(
        &self,
        a: SocketAddr,
        b: SocketAddr,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        self.set_link(a, b, config.clone())?;
        self.set_link(b, a, config)
    }

    /// The model of the direction from `from` to `to`.
    pub fn link_config(&self, from: SocketAddr, to: SocketAddr) -> LinkConfig {
        let inner = self.lock();
        inner
            .links
            .get(&(from, to))
            .map_or_else(|| inner.default_link.clone(), |l| l.config.clone())
    }

    /// Counters of the direction from the port bound at `from` to `to` (zero if never used).
    pub fn link_stats(&self, from: SocketAddr, to: SocketAddr) -> LinkStats {
        self.lock().links.get(&(from, to)).map(|l| l.stats).unwrap_or_default()
    }

    /// Counters of every link added together.
    pub fn total_stats(&self) -> LinkStats {
        let inner = self.lock();
        let mut total = LinkStats::default();
        for link in inner.links.values() {
            total.add(&link.stats);
        }
        total
    }

    /// Wire bytes queued at the bottleneck of the direction `from` -> `to` now.
    pub fn backlog_bytes(&self, from: SocketAddr, to: SocketAddr) -> usize {
        let mut inner = self.lock();
        let now = inner.clock.now();
        inner.links.get_mut(&(from, to)).map_or(0, |l| l.backlog_bytes(now))
    }

    /// NAT rebinding: from `at` on, datagrams sent by the port bound at `endpoint` reach their
    /// receivers with source `new_src`, and datagrams sent to `new_src` reach that port (which
    /// sees its own bound IP as destination). Datagrams to the bound address still arrive, as
    /// while an old NAT mapping lingers. Rebinding again later moves the port to another address.
    pub fn rebind(
        &self,
        endpoint: SocketAddr,
        new_src: SocketAddr,
        at: Instant,
    ) -> Result<(), SimError> {
        let mut inner = self.lock();
        if !inner.endpoints.contains_key(&endpoint) {
            return Err(SimError::UnknownEndpoint(endpoint));
        }
        if new_src.ip().is_unspecified() || new_src.port() == 0 {
            return Err(SimError::UnspecifiedAddr(new_src));
        }
        if new_src.is_ipv4() != endpoint.is_ipv4() {
            return Err(SimError::FamilyMismatch { local: endpoint, other: new_src });
        }
        if inner.in_use(new_src) {
            return Err(SimError::AddrInUse(new_src));
        }
        inner.aliases.insert(new_src, (endpoint, at));
        if let Some(e) = inner.endpoints.get_mut(&endpoint) {
            e.rebinds.push((at, new_src));
            e.rebinds.sort_by_key(|(t, _)| *t);
        }
        Ok(())
    }

    /// Starts (or stops, discarding it) recording a [`TraceEvent`] per datagram sent.
    pub fn set_trace(&self, on: bool) {
        let mut inner = self.lock();
        if on {
            inner.trace.get_or_insert_with(Vec::new);
        } else {
            inner.trace = None;
        }
    }

    /// The events recorded since the last call (recording goes on).
    pub fn take_trace(&self) -> Vec<TraceEvent> {
        self.lock().trace.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

impl fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("SimNetwork")
            .field("seed", &inner.seed)
            .field("elapsed", &inner.clock.elapsed())
            .field("ports", &inner.endpoints.keys().collect::<Vec<_>>())
            .field("links", &inner.links.len())
            .finish()
    }
}
