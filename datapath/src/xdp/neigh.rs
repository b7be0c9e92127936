//! Next-hop MAC resolution for frames we build ourselves.
//!
//! For a destination IP the resolver answers with the destination MAC and the source IP to
//! use, in this order:
//!
//! 1. **Learned**: every valid frame we receive teaches (source IP → source MAC). Replying to
//!    that MAC is right whether the peer is on-link (its own MAC) or behind a router (the
//!    router's MAC, which forwarded the packet to us), so replies work even when the kernel has
//!    no neighbour entry.
//! 2. **Kernel**: the route (`RTM_GETROUTE`, like `ip route get`) gives the next hop (the
//!    gateway, or the destination itself when on-link) and the preferred source; the
//!    neighbour table (`RTM_GETNEIGH` dump) gives the next hop's MAC.
//! 3. **Unresolved**: the kernel has no usable entry. The resolver makes the kernel resolve it
//!    by sending one empty UDP datagram to the next hop's discard port (9) from an ordinary
//!    socket (which sends an ARP request / neighbour solicitation; ARP and NDP replies pass
//!    through our XDP program to the kernel), at most once per [`PROBE_INTERVAL`] per next hop.
//!    The datagram being sent is dropped and counted (`XdpStats::tx_unresolved`); the
//!    transport's loss recovery resends it, by which time the entry is usually there.
//!
//! Entries (learned or from the kernel) are trusted for [`ENTRY_TTL`] after they were last
//! seen; routes are cached for [`ROUTE_TTL`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::netlink::{Netlink, Route};
use crate::wire::MacAddr;

/// How long a learned or kernel-provided MAC is used after it was last confirmed.
pub const ENTRY_TTL: Duration = Duration::from_secs(30);
/// How long a route lookup is reused.
pub const ROUTE_TTL: Duration = Duration::from_secs(10);
/// Least time between two kernel lookups + resolution probes for the same next hop.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How often a learned entry seen again and again is refreshed in the table.
const LEARN_REFRESH: Duration = Duration::from_secs(1);
/// The port the resolution probe is sent to (discard, RFC 863).
const PROBE_PORT: u16 = 9;
/// Most entries kept; beyond it the table is cleared (a crude, bounded eviction).
const MAX_ENTRIES: usize = 65_536;

/// Where a frame to one destination goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NextHop {
    pub(crate) mac: MacAddr,
    /// The route's preferred source address, when known.
    pub(crate) src: Option<IpAddr>,
}

/// The resolver of one interface.
#[derive(Debug)]
pub(crate) struct Neighbours {
    ifindex: u32,
    netlink: Netlink,
    probe4: Option<UdpSocket>,
    probe6: Option<UdpSocket>,
    /// Learned from received frames.
    entries: HashMap<IpAddr, (MacAddr, Instant)>,
    /// From the kernel's neighbour table.
    kernel: HashMap<IpAddr, (MacAddr, Instant)>,
    routes: HashMap<IpAddr, (Route, Instant)>,
    asked: HashMap<IpAddr, Instant>,
    last_learned: Option<(IpAddr, MacAddr, Instant)>,
    /// Lookups answered from learned entries / the kernel's table; probes sent.
    pub(crate) learned_hits: u64,
    pub(crate) kernel_hits: u64,
    pub(crate) probes: u64,
}

impl Neighbours {
    /// A resolver for interface `ifindex`, with its sockets opened in the calling thread's
    /// network namespace.
    pub(crate) fn new(ifindex: u32) -> io::Result<Self> {
        Ok(Self {
            ifindex,
            netlink: Netlink::open()?,
            probe4: UdpSocket::bind("0.0.0.0:0").ok(),
            probe6: UdpSocket::bind("[::]:0").ok(),
            entries: HashMap::new(),
            kernel: HashMap::new(),
            routes: HashMap::new(),
            asked: HashMap::new(),
            last_learned: None,
            learned_hits: 0,
            kernel_hits: 0,
            probes: 0,
        })
    }

    /// Records that `ip` sent us a frame from `mac`.
    pub(crate) fn learn(&mut self, ip: IpAddr, mac: MacAddr, now: Instant) {
        if !mac.is_unicast() {
            return;
        }
        // Most frames come from the same peer as the previous one: skip the table then, unless
        // the entry needs refreshing.
        if let Some((lip, lmac, at)) = self.last_learned {
            if lip == ip && lmac == mac && now.saturating_duration_since(at) < LEARN_REFRESH {
                return;
            }
        }
        self.last_learned = Some((ip, mac, now));
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            self.entries.clear();
        }
        self.entries.insert(ip, (mac, now));
    }

    fn fresh(
        table: &HashMap<IpAddr, (MacAddr, Instant)>,
        ip: &IpAddr,
        now: Instant,
    ) -> Option<MacAddr> {
        table
            .get(ip)
            .filter(|(_, at)| now.saturating_duration_since(*at) < ENTRY_TTL)
            .map(|(m, _)| *m)
    }

    /// The route to `dst`, cached.
    fn route(&mut self, dst: IpAddr, now: Instant) -> io::Result<Route> {
        if let Some((r, at)) = self.routes.get(&dst) {
            if now.saturating_duration_since(*at) < ROUTE_TTL {
                return Ok(*r);
            }
        }
        let r = self.netlink.route_get(dst)?;
        if self.routes.len() >= MAX_ENTRIES {
            self.routes.clear();
        }
        self.routes.insert(dst, (r, now));
        Ok(r)
    }

    /// Resolves `dst`; `Ok(None)` when the MAC is not known yet (a kernel resolution was
    /// triggered, see the module docs). Errors are for a destination with no route, or one
    /// routed through another interface.
    pub(crate) fn resolve(&mut self, dst: IpAddr, now: Instant) -> io::Result<Option<NextHop>> {
        let learned = Self::fresh(&self.entries, &dst, now);
        let route = match self.route(dst, now) {
            Ok(r) => Some(r),
            Err(_) if learned.is_some() => None,
            Err(e) => return Err(e),
        };
        let src = route.and_then(|r| r.prefsrc);
        if let Some(mac) = learned {
            self.learned_hits += 1;
            return Ok(Some(NextHop { mac, src }));
        }
        let route = route.ok_or_else(|| io::Error::other("no route"))?;
        if route.oif != self.ifindex {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{dst} is routed through interface {}, not ours", route.oif),
            ));
        }
        let hop = route.gateway.unwrap_or(dst);
        if let Some(mac) = Self::fresh(&self.kernel, &hop, now) {
            self.kernel_hits += 1;
            return Ok(Some(NextHop { mac, src }));
        }
        if self
            .asked
            .get(&hop)
            .is_some_and(|at| now.saturating_duration_since(*at) < PROBE_INTERVAL)
        {
            return Ok(None);
        }
        if self.asked.len() >= MAX_ENTRIES {
            self.asked.clear();
        }
        self.asked.insert(hop, now);
        if self.kernel.len() >= MAX_ENTRIES {
            self.kernel.clear();
        }
        for n in self.netlink.neighbours(hop.is_ipv6())? {
            if n.ifindex == self.ifindex {
                self.kernel.insert(n.ip, (n.mac, now));
            }
        }
        if let Some(mac) = Self::fresh(&self.kernel, &hop, now) {
            self.kernel_hits += 1;
            return Ok(Some(NextHop { mac, src }));
        }
        let sock = if hop.is_ipv6() { &self.probe6 } else { &self.probe4 };
        if let Some(s) = sock {
            // Best effort: the send only exists to make the kernel resolve the next hop.
            let _ = s.send_to(&[], SocketAddr::new(hop, PROBE_PORT));
            self.probes += 1;
        }
        Ok(None)
    }
}
