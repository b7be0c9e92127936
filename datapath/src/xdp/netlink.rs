//! The kernel's view of the network, asked by hand: rtnetlink route lookups (`RTM_GETROUTE`)
//! and neighbour dumps (`RTM_GETNEIGH`) over a `NETLINK_ROUTE` socket, and the interface's
//! index, MAC address and MTU (`if_nametoindex`, `SIOCGIFHWADDR`, `SIOCGIFMTU`).
//!
//! Messages are built and parsed as bytes (no netlink crate); the parser never panics on what
//! the kernel sends.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::wire::MacAddr;

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Neighbour states whose link-layer address can be used: REACHABLE, STALE, DELAY, PROBE,
/// NOARP, PERMANENT (not INCOMPLETE, not FAILED).
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;

/// The kernel's route to one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// Outgoing interface.
    pub oif: u32,
    /// The router, when the destination is not on-link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would use.
    pub prefsrc: Option<IpAddr>,
}

/// One usable neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Neighbour {
    /// Interface it was learned on.
    pub ifindex: u32,
    /// Its IP address.
    pub ip: IpAddr,
    /// Its link-layer address.
    pub mac: MacAddr,
}

/// A `NETLINK_ROUTE` socket.
#[derive(Debug)]
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens the socket (in the calling thread's network namespace), with a 500 ms receive
    /// timeout so that no query can hang.
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2), result checked.
        let fd = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval { tv_sec: 0, tv_usec: 500_000 };
        // SAFETY: `tv` is a live timeval and the length its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Self { fd, seq: 1, buf: vec![0; 1 << 16] })
    }

    /// Asks the kernel how it would route to `dst` (like `ip route get`).
    pub(crate) fn route_get(&mut self, dst: IpAddr) -> io::Result<Route> {
        let (family, addr) = family_bytes(dst);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let mut body = vec![family, (addr.len() * 8) as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        push_attr(&mut body, RTA_DST, &addr);
        let mut route = None;
        self.query(RTM_GETROUTE, NLM_F_REQUEST, &body, |ty, payload| {
            if ty == RTM_NEWROUTE {
                route = parse_route(payload);
            }
        })?;
        route.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no route to {dst}")))
    }

    /// Every usable neighbour entry of `family` (`AF_INET` or `AF_INET6`).
    pub(crate) fn neighbours(&mut self, v6: bool) -> io::Result<Vec<Neighbour>> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
        // struct ndmsg: family, pad, pad(2), ifindex(4), state(2), flags, type.
        let body = [family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut out = Vec::new();
        self.query(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &body, |ty, payload| {
            if ty == RTM_NEWNEIGH {
                out.extend(parse_neighbour(payload));
            }
        })?;
        Ok(out)
    }

    /// Sends one request and feeds each reply message (type, payload) to `each`, until the
    /// answer is complete (a plain reply, `NLMSG_DONE` for a dump) or an error arrives.
    fn query(
        &mut self,
        ty: u16,
        flags: u16,
        body: &[u8],
        mut each: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = (NLMSG_HDR + body.len()) as u32;
        let mut msg = Vec::with_capacity(len as usize);
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        let mut sa: libc::sockaddr_nl = zeroed_sockaddr_nl();
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `msg` and `sa` are live for the call; lengths are theirs.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                std::ptr::from_ref(&sa).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let dump = flags & NLM_F_DUMP != 0;
        // Bounded: a dump of a huge table ends long before this many reads.
        for _ in 0..4096 {
            // SAFETY: `buf` is a writable buffer of its length.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), 0)
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut done = !dump;
            for (mty, mseq, payload) in messages(&self.buf[..n as usize]) {
                if mseq != seq {
                    continue;
                }
                match mty {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])));
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        done = true;
                    }
                    _ => each(mty, payload),
                }
            }
            if done {
                return Ok(());
            }
        }
        Err(io::Error::other("netlink answer did not end"))
    }
}

fn zeroed_sockaddr_nl() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn family_bytes(ip: IpAddr) -> (u8, Vec<u8>) {
    match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    }
}

fn push_attr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The messages of one netlink read: (type, sequence, payload after the header).
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
        if len < NLMSG_HDR || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        let seq = u32::from_ne_bytes(buf[8..12].try_into().ok()?);
        let payload = &buf[NLMSG_HDR..len];
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((ty, seq, payload))
    })
}

/// The attributes (type, data) after a fixed header of `skip` bytes.
fn attrs(payload: &[u8], skip: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut buf = payload.get(skip..).unwrap_or(&[]);
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(buf.get(0..2)?.try_into().ok()?));
        if len < 4 || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes(buf[2..4].try_into().ok()?) & 0x3fff;
        let data = &buf[4..len];
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((ty, data))
    })
}

fn ip_of(data: &[u8]) -> Option<IpAddr> {
    match data.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?))),
        _ => None,
    }
}

/// Parses an `RTM_NEWROUTE` payload (rtmsg of 12 bytes, then attributes).
pub(crate) fn parse_route(payload: &[u8]) -> Option<Route> {
    let mut r = Route { oif: 0, gateway: None, prefsrc: None };
    for (ty, data) in attrs(payload, 12) {
        match ty {
            RTA_OIF => r.oif = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?),
            RTA_GATEWAY => r.gateway = ip_of(data),
            RTA_PREFSRC => r.prefsrc = ip_of(data),
            _ => {}
        }
    }
    Some(r)
}

/// Parses an `RTM_NEWNEIGH` payload (ndmsg of 12 bytes, then attributes); `None` unless it is a
/// usable entry with an IP and a 6-byte MAC.
pub(crate) fn parse_neighbour(payload: &[u8]) -> Option<Neighbour> {
    let ifindex = i32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?);
    let state = u16::from_ne_bytes(payload.get(8..10)?.try_into().ok()?);
    if state & NUD_USABLE == 0 {
        return None;
    }
    let (mut ip, mut mac) = (None, None);
    for (ty, data) in attrs(payload, 12) {
        match ty {
            NDA_DST => ip = ip_of(data),
            NDA_LLADDR => mac = <[u8; 6]>::try_from(data).ok().map(MacAddr),
            _ => {}
        }
    }
    Some(Neighbour { ifindex: u32::try_from(ifindex).ok()?, ip: ip?, mac: mac? })
}

/// The index of interface `name`.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name:?}: {e}")));
    }
    Ok(i)
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data (a name and a union of plain fields); zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

fn ioctl(name: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    let mut req = ifreq_for(name)?;
    // SAFETY: plain socket(2), closed below through OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `req` is a live ifreq the kernel reads the name from and writes the answer into.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name:?}: {e}")));
    }
    Ok(req)
}

/// The MAC address of interface `name` (`SIOCGIFHWADDR`).
pub fn if_mac(name: &str) -> io::Result<MacAddr> {
    let req = ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(MacAddr(mac))
}

/// The MTU of interface `name` (`SIOCGIFMTU`).
pub fn if_mtu(name: &str) -> io::Result<u32> {
    let req = ioctl(name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neigh_payload(ifindex: i32, state: u16, ip: &[u8], mac: &[u8]) -> Vec<u8> {
        let mut p = vec![libc::AF_INET as u8, 0, 0, 0];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&state.to_ne_bytes());
        p.extend_from_slice(&[0, 0]);
        push_attr(&mut p, NDA_DST, ip);
        push_attr(&mut p, NDA_LLADDR, mac);
        p
    }

    #[test]
    fn xdp_netlink_parses_neighbours_and_refuses_unusable_ones() {
        let p = neigh_payload(3, 0x02, &[10, 0, 0, 1], &[2, 0, 0, 0, 0, 9]);
        let n = parse_neighbour(&p).unwrap();
        assert_eq!(n.ifindex, 3);
        assert_eq!(n.ip, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(n.mac, MacAddr([2, 0, 0, 0, 0, 9]));
        assert!(parse_neighbour(&neigh_payload(3, 0x01, &[10, 0, 0, 1], &[0; 6])).is_none());
        assert!(parse_neighbour(&neigh_payload(3, 0x20, &[10, 0, 0, 1], &[0; 6])).is_none());
        assert!(parse_neighbour(&neigh_payload(3, 0x02, &[10, 0, 0, 1], &[0; 4])).is_none());
        for cut in 0..p.len() {
            let _ = parse_neighbour(&p[..cut]);
        }
    }

    #[test]
    fn xdp_netlink_parses_routes_and_messages() {
        let mut body = vec![0u8; 12];
        push_attr(&mut body, RTA_OIF, &7u32.to_ne_bytes());
        push_attr(&mut body, RTA_GATEWAY, &[192, 168, 1, 1]);
        push_attr(&mut body, RTA_PREFSRC, &[192, 168, 1, 5]);
        let r = parse_route(&body).unwrap();
        assert_eq!(r.oif, 7);
        assert_eq!(r.gateway, Some(IpAddr::from([192, 168, 1, 1])));
        assert_eq!(r.prefsrc, Some(IpAddr::from([192, 168, 1, 5])));
        let mut msg = ((NLMSG_HDR + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        msg.extend_from_slice(&[0, 0]);
        msg.extend_from_slice(&9u32.to_ne_bytes());
        msg.extend_from_slice(&[0; 4]);
        msg.extend_from_slice(&body);
        let all: Vec<_> = messages(&msg).collect();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].0, all[0].1), (RTM_NEWROUTE, 9));
        for cut in 0..msg.len() {
            let _ = messages(&msg[..cut]).count();
        }
        let mut bad = msg.clone();
        bad[0] = 200; // length past the buffer
        assert_eq!(messages(&bad).count(), 0);
    }

    #[test]
    fn xdp_loopback_interface_facts() {
        assert_eq!(if_index("lo").unwrap(), 1);
        assert_eq!(if_mac("lo").unwrap(), MacAddr([0; 6]));
        assert!(if_mtu("lo").unwrap() >= 1500);
        assert!(if_index("no-such-if0").is_err());
    }
}
