//! Control messages (`cmsg(3)`) encoded into and decoded from plain bytes, with no pointer
//! casts: what the kernel writes is bounds-checked before it is read.
//!
//! Layout (Linux): each message is a `struct cmsghdr { size_t cmsg_len; int cmsg_level; int
//! cmsg_type; }` followed by its data, and the next message starts at the next multiple of
//! `sizeof(size_t)`. On musl `cmsg_len` is a `socklen_t` beside 4 bytes of padding, which has the
//! same bytes as a `size_t` when the padding is zero, on either endianness. The unit tests check
//! this layout against libc's `CMSG_*` macros.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Alignment of headers and of each message (`CMSG_ALIGN`).
const ALIGN: usize = size_of::<usize>();

/// Size of `struct cmsghdr`.
const HDR: usize = size_of::<libc::cmsghdr>();

const _: () = assert!(HDR == size_of::<usize>() + 2 * size_of::<libc::c_int>());
const _: () = assert!(HDR % ALIGN == 0);

/// Bytes reserved for the control messages of one datagram. A transmit needs at most 88
/// (`UDP_SEGMENT` 24 + `IPV6_TCLASS` 24 + `IPV6_PKTINFO` 40), a receive the same; the rest is
/// margin so an unexpected message never truncates the ones we need (`MSG_CTRUNC`).
pub(crate) const CMSG_BUF_LEN: usize = 256;

/// A control-message buffer aligned for `struct cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct CmsgBuf(pub(crate) [u8; CMSG_BUF_LEN]);

const _: () = assert!(std::mem::align_of::<CmsgBuf>() >= std::mem::align_of::<libc::cmsghdr>());

impl Default for CmsgBuf {
    fn default() -> Self {
        Self([0; CMSG_BUF_LEN])
    }
}

const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// `CMSG_SPACE(len)`: bytes one message with `len` data bytes occupies.
pub(crate) const fn space(len: usize) -> usize {
    HDR + align(len)
}

/// `CMSG_LEN(len)`: the `cmsg_len` of a message with `len` data bytes.
pub(crate) const fn msg_len(len: usize) -> usize {
    HDR + len
}

/// Appends control messages to a byte buffer.
pub(crate) struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Encoder<'a> {
    /// Starts an empty control area in `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends one message; false (and nothing written) when it does not fit.
    pub(crate) fn push(&mut self, level: libc::c_int, ty: libc::c_int, data: &[u8]) -> bool {
        let start = self.len;
        let end = start + space(data.len());
        if end > self.buf.len() {
            return false;
        }
        let m = &mut self.buf[start..end];
        m.fill(0);
        m[..ALIGN].copy_from_slice(&msg_len(data.len()).to_ne_bytes());
        m[ALIGN..ALIGN + 4].copy_from_slice(&level.to_ne_bytes());
        m[ALIGN + 4..HDR].copy_from_slice(&ty.to_ne_bytes());
        m[HDR..HDR + data.len()].copy_from_slice(data);
        self.len = end;
        true
    }

    /// Bytes written (the `msg_controllen` to pass).
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One decoded control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cmsg<'a> {
    pub(crate) level: libc::c_int,
    pub(crate) ty: libc::c_int,
    pub(crate) data: &'a [u8],
}

/// Walks the control messages of a received control area, stopping at the first malformed one.
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Reads the first `len` bytes of `buf` (the `msg_controllen` the kernel returned).
    pub(crate) fn new(buf: &'a [u8], len: usize) -> Self {
        Self { buf: &buf[..len.min(buf.len())], pos: 0 }
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        let rest = self.buf.get(self.pos..)?;
        if rest.len() < HDR {
            return None;
        }
        let len = usize::from_ne_bytes(rest[..ALIGN].try_into().ok()?);
        if len < HDR || len > rest.len() {
            return None;
        }
        let level = libc::c_int::from_ne_bytes(rest[ALIGN..ALIGN + 4].try_into().ok()?);
        let ty = libc::c_int::from_ne_bytes(rest[ALIGN + 4..HDR].try_into().ok()?);
        self.pos += align(len);
        Some(Cmsg { level, ty, data: &rest[HDR..len] })
    }
}

/// What the control messages of one received datagram told us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxControl {
    /// `UDP_GRO`: size of each coalesced segment.
    pub(crate) gro_segment: Option<usize>,
    /// `IP_TOS` / `IPV6_TCLASS`: the TOS / traffic-class byte.
    pub(crate) tos: Option<u8>,
    /// `IP_PKTINFO` / `IPV6_PKTINFO`: the destination address of the IP header.
    pub(crate) dst_ip: Option<IpAddr>,
}

/// An `int` (or, leniently, a narrower integer) from a message's data.
fn int_data(data: &[u8]) -> Option<u32> {
    match data.len() {
        1 => Some(u32::from(data[0])),
        2 => Some(u32::from(u16::from_ne_bytes([data[0], data[1]]))),
        4 => Some(u32::from_ne_bytes([data[0], data[1], data[2], data[3]])),
        _ => None,
    }
}

/// Decodes the control messages of a received datagram; unknown ones are skipped.
pub(crate) fn decode_rx(buf: &[u8], len: usize) -> RxControl {
    let mut out = RxControl::default();
    for c in Decoder::new(buf, len) {
        match (c.level, c.ty) {
            (libc::SOL_UDP, libc::UDP_GRO) => {
                out.gro_segment = int_data(c.data).map(|v| v as usize);
            }
            // IPv4 sends one byte, IPv6 an int; the low byte is the TOS / traffic class.
            (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                out.tos = int_data(c.data).map(|v| v as u8);
            }
            // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if c.data.len() >= 12 => {
                let a: [u8; 4] = c.data[8..12].try_into().unwrap_or_default();
                out.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(a)));
            }
            // struct in6_pktinfo { in6_addr ipi6_addr; int ipi6_ifindex; }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if c.data.len() >= 16 => {
                let a: [u8; 16] = c.data[..16].try_into().unwrap_or_default();
                out.dst_ip = Some(unmap(IpAddr::V6(Ipv6Addr::from(a))));
            }
            _ => {}
        }
    }
    out
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it stands for.
pub(crate) fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Per-datagram transmit options, in the IP family the datagram goes out in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxControl {
    /// The datagram is IPv4 (also when sent from a dual-stack IPv6 socket to a mapped address).
    pub(crate) v4: bool,
    /// GSO segment size (`UDP_SEGMENT`), only for trains of more than one segment.
    pub(crate) segment: Option<u16>,
    /// TOS / traffic-class byte, when an ECN mark is to be set.
    pub(crate) tos: Option<u8>,
    /// Source address (`IP_PKTINFO` / `IPV6_PKTINFO`), in the datagram's family.
    pub(crate) src: Option<IpAddr>,
}

/// Encodes the transmit control messages into `buf`; returns the length, or `None` when the
/// source address is not of the datagram's family (or, never in practice, `buf` is too small).
pub(crate) fn encode_tx(buf: &mut [u8], c: &TxControl) -> Option<usize> {
    let mut e = Encoder::new(buf);
    if let Some(seg) = c.segment {
        if !e.push(libc::SOL_UDP, libc::UDP_SEGMENT, &seg.to_ne_bytes()) {
            return None;
        }
    }
    if let Some(tos) = c.tos {
        let (level, ty) = if c.v4 {
            (libc::IPPROTO_IP, libc::IP_TOS)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
        };
        if !e.push(level, ty, &libc::c_int::from(tos).to_ne_bytes()) {
            return None;
        }
    }
    if let Some(src) = c.src {
        let ok = match (c.v4, unmap(src)) {
            (true, IpAddr::V4(v4)) => {
                // in_pktinfo: ifindex 0 (any), ipi_spec_dst = source, ipi_addr unused.
                let mut d = [0u8; 12];
                d[4..8].copy_from_slice(&v4.octets());
                e.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &d)
            }
            (false, IpAddr::V6(v6)) => {
                // in6_pktinfo: ipi6_addr = source, ifindex 0 (any).
                let mut d = [0u8; 20];
                d[..16].copy_from_slice(&v6.octets());
                e.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &d)
            }
            _ => false,
        };
        if !ok {
            return None;
        }
    }
    Some(e.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_libc_macros() {
        for n in [0usize, 1, 2, 4, 12, 20] {
            // SAFETY: CMSG_SPACE / CMSG_LEN are pure arithmetic on their argument.
            let (sp, ln) = unsafe { (libc::CMSG_SPACE(n as u32), libc::CMSG_LEN(n as u32)) };
            assert_eq!(space(n), sp as usize, "CMSG_SPACE({n})");
            assert_eq!(msg_len(n), ln as usize, "CMSG_LEN({n})");
        }
        // Encode two messages, then walk them with libc's macros.
        let mut buf = CmsgBuf::default();
        let mut e = Encoder::new(&mut buf.0);
        assert!(e.push(libc::SOL_UDP, libc::UDP_SEGMENT, &1200u16.to_ne_bytes()));
        assert!(e.push(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &2i32.to_ne_bytes()));
        let len = e.len();
        assert_eq!(len, space(2) + space(4));
        // SAFETY: an all-zero msghdr is valid; we only point it at `buf`, which outlives it.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_control = buf.0.as_mut_ptr().cast();
        mh.msg_controllen = len as _;
        // SAFETY: `mh` describes `len` initialised, aligned bytes of `buf`; the macros only read
        // within them and we stop at null.
        unsafe {
            let c1 = libc::CMSG_FIRSTHDR(&mh);
            assert!(!c1.is_null());
            assert_eq!(((*c1).cmsg_level, (*c1).cmsg_type), (libc::SOL_UDP, libc::UDP_SEGMENT));
            assert_eq!((*c1).cmsg_len as usize, msg_len(2));
            assert_eq!(libc::CMSG_DATA(c1).cast::<u16>().read_unaligned(), 1200);
            let c2 = libc::CMSG_NXTHDR(&mh, c1);
            assert!(!c2.is_null());
            assert_eq!((*c2).cmsg_type, libc::IPV6_TCLASS);
            assert_eq!(libc::CMSG_DATA(c2).cast::<i32>().read_unaligned(), 2);
            assert!(libc::CMSG_NXTHDR(&mh, c2).is_null());
        }
    }

    #[test]
    fn tx_round_trips_through_decoder() {
        let mut buf = CmsgBuf::default();
        let c = TxControl {
            v4: true,
            segment: Some(1200),
            tos: Some(0b11),
            src: Some("127.0.0.3".parse().unwrap()),
        };
        let len = encode_tx(&mut buf.0, &c).unwrap();
        let msgs: Vec<Cmsg<'_>> = Decoder::new(&buf.0, len).collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].data, &1200u16.to_ne_bytes());
        assert_eq!((msgs[1].level, msgs[1].ty), (libc::IPPROTO_IP, libc::IP_TOS));
        assert_eq!(msgs[1].data, &3i32.to_ne_bytes());
        assert_eq!((msgs[2].level, msgs[2].ty), (libc::IPPROTO_IP, libc::IP_PKTINFO));
        assert_eq!(&msgs[2].data[4..8], &[127, 0, 0, 3]);
    }

    #[test]
    fn tx_rejects_source_of_other_family() {
        let mut buf = CmsgBuf::default();
        let mut c = TxControl { v4: true, segment: None, tos: None, src: None };
        c.src = Some("::1".parse().unwrap());
        assert_eq!(encode_tx(&mut buf.0, &c), None);
        c.src = Some("::ffff:127.0.0.1".parse().unwrap());
        assert!(encode_tx(&mut buf.0, &c).is_some(), "a mapped source is IPv4");
        c.v4 = false;
        c.src = Some("127.0.0.1".parse().unwrap());
        assert_eq!(encode_tx(&mut buf.0, &c), None);
        assert_eq!(encode_tx(&mut [0u8; 8], &TxControl { segment: Some(9), ..c }), None);
    }

    #[test]
    fn rx_decodes_gro_tos_and_pktinfo() {
        let mut buf = CmsgBuf::default();
        let mut e = Encoder::new(&mut buf.0);
        assert!(e.push(libc::SOL_UDP, libc::UDP_GRO, &1200i32.to_ne_bytes()));
        assert!(e.push(libc::IPPROTO_IP, libc::IP_TOS, &[0xb8 | 0b01]));
        let mut pk = [0u8; 12];
        pk[8..].copy_from_slice(&[127, 0, 0, 2]);
        assert!(e.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &pk));
        let len = e.len();
        let rx = decode_rx(&buf.0, len);
        assert_eq!(rx.gro_segment, Some(1200));
        assert_eq!(rx.tos, Some(0xb9));
        assert_eq!(rx.dst_ip, Some("127.0.0.2".parse().unwrap()));

        let mut e = Encoder::new(&mut buf.0);
        let mut pk6 = [0u8; 20];
        pk6[..16].copy_from_slice(&"::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets());
        assert!(e.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &pk6));
        assert!(e.push(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &3i32.to_ne_bytes()));
        let len = e.len();
        let rx = decode_rx(&buf.0, len);
        assert_eq!(rx.dst_ip, Some("10.0.0.1".parse().unwrap()), "mapped reported as V4");
        assert_eq!(rx.tos, Some(3));
        assert_eq!(rx.gro_segment, None);
    }

    proptest::proptest! {
        /// Whatever sits in a control area, decoding stays in bounds and terminates.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            len in 0usize..400,
        ) {
            let n = Decoder::new(&bytes, len).count();
            proptest::prop_assert!(n <= bytes.len() / HDR);
            let _ = decode_rx(&bytes, len);
        }
    }

    #[test]
    fn decoder_stops_at_malformed_lengths() {
        let mut buf = [0u8; 64];
        // cmsg_len smaller than a header.
        buf[..ALIGN].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(Decoder::new(&buf, 64).count(), 0);
        // cmsg_len running past the control length.
        buf[..ALIGN].copy_from_slice(&100usize.to_ne_bytes());
        assert_eq!(Decoder::new(&buf, 64).count(), 0);
        // Truncated header.
        assert_eq!(Decoder::new(&buf, HDR - 1).count(), 0);
        // A claimed length larger than the buffer is clamped.
        assert_eq!(Decoder::new(&buf, 10_000).count(), 0);
    }
}
