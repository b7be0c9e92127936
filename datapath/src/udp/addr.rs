//! Conversions between [`SocketAddr`] and the kernel's `sockaddr_in` / `sockaddr_in6`.

use std::mem::size_of;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::cmsg::unmap;

/// Writes `addr` into `out` for a socket of the given family, returning the `socklen_t` to pass.
///
/// On an IPv6 socket an IPv4 address is written as its IPv4-mapped IPv6 form (a dual-stack
/// socket sends it as IPv4); on an IPv4 socket an IPv6 address is refused with `None`.
pub(crate) fn encode(
    addr: &SocketAddr,
    v6_socket: bool,
    out: &mut libc::sockaddr_storage,
) -> Option<libc::socklen_t> {
    let v6 = match (addr, v6_socket) {
        (SocketAddr::V4(a), false) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type, so
            // a sockaddr_in fits at its start; `out` is a unique reference for the write.
            unsafe { std::ptr::from_mut(out).cast::<libc::sockaddr_in>().write(sin) };
            return Some(size_of::<libc::sockaddr_in>() as libc::socklen_t);
        }
        (SocketAddr::V6(_), false) => return None,
        (SocketAddr::V4(a), true) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        (SocketAddr::V6(a), true) => *a,
    };
    let sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: v6.port().to_be(),
        sin6_flowinfo: v6.flowinfo().to_be(),
        sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
        sin6_scope_id: v6.scope_id(),
    };
    // SAFETY: as above, sockaddr_in6 fits at the start of sockaddr_storage.
    unsafe { std::ptr::from_mut(out).cast::<libc::sockaddr_in6>().write(sin6) };
    Some(size_of::<libc::sockaddr_in6>() as libc::socklen_t)
}

/// Reads the address the kernel wrote into `s` (`len` bytes valid). IPv4-mapped IPv6 addresses
/// (dual-stack sockets talking IPv4) come back as IPv4. `None` for other families or short
/// lengths.
pub(crate) fn decode(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the kernel wrote a sockaddr_in, which fits in and shares
            // the alignment of sockaddr_storage; every bit pattern is a valid sockaddr_in.
            let sin = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in>() };
            let ip = sin.sin_addr.s_addr.to_ne_bytes();
            Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            match unmap(ip.into()) {
                std::net::IpAddr::V4(v4) => Some(SocketAddr::V4(SocketAddrV4::new(v4, port))),
                std::net::IpAddr::V6(_) => Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    u32::from_be(sin6.sin6_flowinfo),
                    sin6.sin6_scope_id,
                ))),
            }
        }
        _ => None,
    }
}

/// An all-zero `sockaddr_storage`.
pub(crate) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain integers and padding; all-zero is a valid value
    // (family AF_UNSPEC).
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(a: &str, v6: bool) -> Option<SocketAddr> {
        let mut s = zeroed_storage();
        let len = encode(&a.parse().unwrap(), v6, &mut s)?;
        decode(&s, len)
    }

    #[test]
    fn round_trips() {
        assert_eq!(rt("127.0.0.1:4433", false), Some("127.0.0.1:4433".parse().unwrap()));
        assert_eq!(rt("[::1]:9", true), Some("[::1]:9".parse().unwrap()));
        assert_eq!(rt("[fe80::1%3]:9", true), Some("[fe80::1%3]:9".parse().unwrap()));
        // A V4 destination on a v6 socket goes out mapped and reads back as V4.
        assert_eq!(rt("10.1.2.3:7", true), Some("10.1.2.3:7".parse().unwrap()));
        assert_eq!(rt("[::1]:9", false), None, "v6 on a v4 socket is refused");
    }

    #[test]
    fn mapped_v6_is_encoded_and_decoded_as_v4() {
        let mut s = zeroed_storage();
        let len = encode(&"10.1.2.3:7".parse().unwrap(), true, &mut s).unwrap();
        assert_eq!(libc::c_int::from(s.ss_family), libc::AF_INET6);
        assert_eq!(len as usize, size_of::<libc::sockaddr_in6>());
        assert_eq!(decode(&s, len), Some("10.1.2.3:7".parse().unwrap()));
        assert_eq!(decode(&s, 4), None, "short length refused");
        assert_eq!(decode(&zeroed_storage(), 128), None, "AF_UNSPEC refused");
    }
}
