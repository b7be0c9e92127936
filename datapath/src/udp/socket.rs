//! Socket creation, socket options and capability probing.
//!
//! Each feature is probed by asking the kernel for it on the queue's own socket: a refusal
//! makes the capability false and puts the option and errno in [`Capabilities::missing`].
//!
//! - GSO: `getsockopt(SOL_UDP, UDP_SEGMENT)` succeeds exactly on kernels that know the option
//!   (4.18+). That proves the kernel can segment, not that the egress device can checksum every
//!   segment; if a GSO send later fails with `EIO`/`EINVAL` the queue re-sends the train as
//!   single datagrams and turns GSO off (see `tx.rs`).
//! - GRO: `setsockopt(SOL_UDP, UDP_GRO, 1)`.
//! - ECN: `IP_RECVTOS` (IPv4), `IPV6_RECVTCLASS` (IPv6), both on a dual-stack socket.
//! - pktinfo: `IP_PKTINFO` (IPv4), `IPV6_RECVPKTINFO` (IPv6), both on a dual-stack socket.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::addr;
use super::config::{UdpConfig, GRO_BUFFER_SIZE, MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD};
use crate::Capabilities;

/// An opened, bound, probed socket.
pub(crate) struct Opened {
    pub(crate) fd: OwnedFd,
    pub(crate) local: SocketAddr,
    pub(crate) v6: bool,
    pub(crate) caps: Capabilities,
}

/// Sets an `int` socket option.
pub(crate) fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and `optlen` is its exact size; the borrowed fd
    // stays open for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an `int` socket option.
pub(crate) fn get_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live, writable and correctly sized for the call; the
    // kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The symbolic name of an errno, for reports ("ENOPROTOOPT"), or the OS message.
pub(crate) fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) => "ENOPROTOOPT",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::EIO) => "EIO",
        Some(libc::ENOBUFS) => "ENOBUFS",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EMSGSIZE) => "EMSGSIZE",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        Some(libc::EADDRINUSE) => "EADDRINUSE",
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        _ => return e.to_string(),
    };
    name.to_string()
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {} ({e})", errno_name(&e)))
}

/// Classic BPF opcodes (linux/filter.h) of the steering program.
// BPF_LD (0x00) | BPF_B (0x10) | BPF_ABS (0x20).
const BPF_LD_B_ABS: u16 = 0x10 | 0x20;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_JMP_JA: u16 = 0x05;
const BPF_ALU_MOD_K: u16 = 0x04 | 0x90;
const BPF_RET_A: u16 = 0x06 | 0x10;
/// Offset of the Destination Connection ID in a long header (first octet, version, DCID
/// length) and in a short header (first octet).
const LONG_DCID_AT: u32 = 6;
const SHORT_DCID_AT: u32 = 1;

/// The classic BPF program of [`attach_cid_steering`]: the socket index is octet `octet` of
/// the Destination Connection ID, modulo `n`.
pub(crate) fn cid_steering_program(octet: u8, n: u32) -> [libc::sock_filter; 7] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let octet = u32::from(octet);
    [
        // A = first octet; a long header (0x80 set) continues at 2, a short one at 4.
        op(BPF_LD_B_ABS, 0, 0, 0),
        op(BPF_JMP_JSET_K, 0, 2, 0x80),
        op(BPF_LD_B_ABS, 0, 0, LONG_DCID_AT + octet),
        op(BPF_JMP_JA, 0, 0, 1),
        op(BPF_LD_B_ABS, 0, 0, SHORT_DCID_AT + octet),
        op(BPF_ALU_MOD_K, 0, 0, n),
        op(BPF_RET_A, 0, 0, 0),
    ]
}

/// Attaches to `fd`'s SO_REUSEPORT group a classic BPF program that picks the group's socket
/// for each datagram from octet `octet` of its QUIC Destination Connection ID, modulo `n`
/// (sockets are indexed in the order they joined). A datagram too short for the octet goes
/// to socket 0.
pub(crate) fn attach_cid_steering(fd: BorrowedFd<'_>, octet: u8, n: u32) -> io::Result<()> {
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "steering over 0 sockets"));
    }
    let mut prog = cid_steering_program(octet, n);
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: `fprog` points at `prog`, both live across the call, and `optlen` is the exact
    // size of `fprog`; the kernel copies the program. The borrowed fd stays open.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(context(io::Error::last_os_error(), "SO_ATTACH_REUSEPORT_CBPF"));
    }
    Ok(())
}

/// Creates, configures, binds and probes the socket `cfg` describes.
pub(crate) fn open(cfg: &UdpConfig) -> io::Result<Opened> {
    cfg.validate()?;
    let v6 = cfg.bind.is_ipv6();
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain system call with constant arguments; no memory is passed.
    let raw = unsafe {
        libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
    };
    if raw < 0 {
        return Err(context(io::Error::last_os_error(), "socket"));
    }
    // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let b = fd.as_fd();
    let mut missing = Vec::new();

    // A socket bound to [::] serves IPv4 too; one bound to a specific IPv6 address cannot.
    let dual_stack = match cfg.bind.ip() {
        IpAddr::V6(ip) => ip.is_unspecified() || ip.to_ipv4_mapped().is_some(),
        IpAddr::V4(_) => false,
    };
    if v6 {
        set_int(b, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, libc::c_int::from(!dual_stack))
            .map_err(|e| context(e, "IPV6_V6ONLY"))?;
    }
    if cfg.reuse_port {
        set_int(b, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
            .map_err(|e| context(e, "SO_REUSEPORT"))?;
    }
    if let Some(bytes) = cfg.recv_buffer {
        size_buffer(b, "SO_RCVBUF", libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, bytes, &mut missing);
    }
    if let Some(bytes) = cfg.send_buffer {
        size_buffer(b, "SO_SNDBUF", libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, bytes, &mut missing);
    }
    dont_fragment(b, v6, dual_stack, &mut missing);

    let mut storage = addr::zeroed_storage();
    let len = addr::encode(&cfg.bind, v6, &mut storage)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bind address family"))?;
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes and outlives the call.
    let rc = unsafe { libc::bind(raw, std::ptr::from_ref(&storage).cast(), len) };
    if rc != 0 {
        return Err(context(io::Error::last_os_error(), &format!("bind {}", cfg.bind)));
    }
    let local = local_addr(b)?;

    let mut caps = Capabilities {
        ipv6: v6,
        max_gso_segments: 1,
        max_udp_payload: cfg.max_datagram.min(MAX_UDP_PAYLOAD),
        ..Capabilities::default()
    };
    if cfg.gso {
        match get_int(b, libc::SOL_UDP, libc::UDP_SEGMENT) {
            Ok(_) => {
                caps.gso = true;
                caps.max_gso_segments = MAX_GSO_SEGMENTS;
            }
            Err(e) => missing.push(format!("UDP_SEGMENT (GSO): {}", errno_name(&e))),
        }
    }
    if cfg.gro {
        match set_int(b, libc::SOL_UDP, libc::UDP_GRO, 1) {
            Ok(()) => caps.gro = true,
            Err(e) => missing.push(format!("UDP_GRO: {}", errno_name(&e))),
        }
    }
    if cfg.ecn {
        caps.ecn = family_opts(
            b,
            v6,
            dual_stack,
            (libc::IP_RECVTOS, "IP_RECVTOS (ECN)"),
            (libc::IPV6_RECVTCLASS, "IPV6_RECVTCLASS (ECN)"),
            &mut missing,
        );
    }
    if cfg.pktinfo {
        caps.pktinfo = family_opts(
            b,
            v6,
            dual_stack,
            (libc::IP_PKTINFO, "IP_PKTINFO"),
            (libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"),
            &mut missing,
        );
    }
    for m in &missing {
        tracing::info!(local = %local, "udp queue: {m}");
    }
    caps.missing = missing;
    Ok(Opened { fd, local, v6, caps })
}

/// Size of the receive buffers a queue with these capabilities needs.
pub(crate) fn rx_buffer_size(cfg: &UdpConfig, caps: &Capabilities) -> usize {
    if caps.gro {
        GRO_BUFFER_SIZE
    } else {
        cfg.max_datagram
    }
}

/// Size of the transmit buffers a queue with these capabilities uses.
pub(crate) fn tx_buffer_size(cfg: &UdpConfig, caps: &Capabilities) -> usize {
    if caps.gso {
        MAX_UDP_PAYLOAD
    } else {
        cfg.max_datagram
    }
}

/// Sets a receive-side option at the IPv4 and/or IPv6 level; true when every needed one took.
fn family_opts(
    b: BorrowedFd<'_>,
    v6: bool,
    dual_stack: bool,
    v4_opt: (libc::c_int, &str),
    v6_opt: (libc::c_int, &str),
    missing: &mut Vec<String>,
) -> bool {
    let mut ok = true;
    if !v6 || dual_stack {
        if let Err(e) = set_int(b, libc::IPPROTO_IP, v4_opt.0, 1) {
            missing.push(format!("{}: {}", v4_opt.1, errno_name(&e)));
            ok = false;
        }
    }
    if v6 {
        if let Err(e) = set_int(b, libc::IPPROTO_IPV6, v6_opt.0, 1) {
            missing.push(format!("{}: {}", v6_opt.1, errno_name(&e)));
            ok = false;
        }
    }
    ok
}

/// Asks for a socket buffer of `bytes`, forcing it past the sysctl cap when permitted, and
/// reports a shortfall.
fn size_buffer(
    b: BorrowedFd<'_>,
    what: &str,
    opt: libc::c_int,
    force: libc::c_int,
    bytes: usize,
    missing: &mut Vec<String>,
) {
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // The kernel stores (and getsockopt reports) twice the request, for its bookkeeping.
    let got = |b| get_int(b, libc::SOL_SOCKET, opt).map(|v| v / 2).unwrap_or(0);
    let _ = set_int(b, libc::SOL_SOCKET, opt, want);
    if got(b) >= want {
        return;
    }
    let _ = set_int(b, libc::SOL_SOCKET, force, want);
    let have = got(b);
    if have < want {
        let sysctl = if opt == libc::SO_RCVBUF { "rmem_max" } else { "wmem_max" };
        missing
            .push(format!("{what}: asked for {want} bytes, got {have} (raise net.core.{sysctl})"));
    }
}

/// Sets the Don't Fragment bit and stops local fragmentation.
fn dont_fragment(b: BorrowedFd<'_>, v6: bool, dual_stack: bool, missing: &mut Vec<String>) {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-14
    //# UDP datagrams MUST NOT be fragmented at the IP layer.  In IPv4
    //# [IPv4], the Don't Fragment (DF) bit MUST be set if possible, to
    //# prevent fragmentation on the path.
    // PROBE (not DO) also ignores the kernel's cached path MTU: QUIC runs its own discovery.
    if !v6 || dual_stack {
        if let Err(e) = set_int(b, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE)
        {
            missing.push(format!("IP_MTU_DISCOVER (DF bit): {}", errno_name(&e)));
        }
    }
    if v6 {
        if let Err(e) =
            set_int(b, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE)
        {
            missing.push(format!("IPV6_MTU_DISCOVER: {}", errno_name(&e)));
        }
    }
}

/// The address the socket is bound to.
pub(crate) fn local_addr(b: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    let mut storage = addr::zeroed_storage();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are writable and sized for any address; the kernel writes
    // at most `len` bytes.
    let rc = unsafe {
        libc::getsockname(b.as_raw_fd(), std::ptr::from_mut(&mut storage).cast(), &mut len)
    };
    if rc != 0 {
        return Err(context(io::Error::last_os_error(), "getsockname"));
    }
    // getsockname reports a dual-stack socket's own address as-is ([::]); only peers unmap.
    addr::decode(&storage, len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown address family"))
}

/// Waits with `poll(2)` until the socket is readable (or writable), or `timeout` passes.
/// Interruption by a signal counts as a (spurious) wake-up.
pub(crate) fn wait(b: BorrowedFd<'_>, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
    let mut events = libc::POLLIN;
    if writable {
        events |= libc::POLLOUT;
    }
    let mut pfd = libc::pollfd { fd: b.as_raw_fd(), events, revents: 0 };
    // Round up so that a sub-millisecond timeout still sleeps instead of spinning.
    let ms = match timeout {
        None => -1,
        Some(d) => {
            libc::c_int::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
        }
    };
    // SAFETY: `pfd` is one live pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
