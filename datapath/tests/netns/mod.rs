//! Helpers of the privileged tests (which check what they need with
//! `peregrine_datapath::require`): a namespace pair made by `scripts/netns.sh` and removed on drop, running code inside a namespace, and an ICMP echo.

#![allow(dead_code, clippy::disallowed_methods)]

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns.sh")
}

/// Two namespaces joined by a veth pair; removed on drop.
#[derive(Debug)]
pub struct NetnsPair {
    pub name: String,
    pub ns_a: String,
    pub ns_b: String,
    pub if_a: String,
    pub if_b: String,
    pub ip4_a: IpAddr,
    pub ip4_b: IpAddr,
    pub ip6_a: IpAddr,
    pub ip6_b: IpAddr,
}

impl NetnsPair {
    /// Creates the pair named after `tag` and this process, with `loss` percent of UDP lost on
    /// side b (0 for none).
    pub fn up(tag: &str, loss: u32) -> Option<Self> {
        Self::up_with(tag, &["--loss", &loss.to_string()])
    }

    /// Creates the pair with extra `netns.sh up` options.
    pub fn up_with(tag: &str, opts: &[&str]) -> Option<Self> {
        let name = format!("{tag}{}", std::process::id() % 10_000_000);
        let _ = Command::new(script()).args(["down", &name]).output();
        let out = Command::new(script())
            .arg("up")
            .arg(&name)
            .args(opts)
            .output()
            .expect("run scripts/netns.sh");
        assert!(
            out.status.success(),
            "netns.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("netns.sh printed no {k}"))
                .to_string()
        };
        Some(Self {
            ns_a: get("NS_A"),
            ns_b: get("NS_B"),
            if_a: get("IF_A"),
            if_b: get("IF_B"),
            ip4_a: get("IP4_A").parse().unwrap(),
            ip4_b: get("IP4_B").parse().unwrap(),
            ip6_a: get("IP6_A").parse().unwrap(),
            ip6_b: get("IP6_B").parse().unwrap(),
            name,
        })
    }

    /// Empties both neighbour tables (so the next exchange needs ARP / NDP again).
    pub fn flush_neighbours(&self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["-n", ns, "neigh", "flush", "all"]).output();
        }
    }

    /// Runs `netns.sh <args...> NAME rest...`.
    pub fn script(&self, cmd: &str, rest: &[&str]) {
        let out = Command::new(script()).arg(cmd).arg(&self.name).args(rest).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.name]).output();
    }
}

/// Runs `f` on a thread that has entered network namespace `ns` (sockets made there stay
/// in it when handed back).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    peregrine_datapath::netns::run_in(ns, f).unwrap_or_else(|e| panic!("enter {ns}: {e}"))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends up to `tries` ICMP echo requests to IPv4 `dst` from a raw socket and returns the
/// round-trip time of the first reply.
pub fn icmp_echo(dst: IpAddr, tries: u32) -> io::Result<Duration> {
    let IpAddr::V4(v4) = dst else { return Err(io::Error::other("IPv4 only")) };
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let close = Closer(fd);
    let tv = libc::timeval { tv_sec: 0, tv_usec: 300_000 };
    // SAFETY: `tv` is live and the length is its size.
    unsafe {
        libc::setsockopt(
            close.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    let id = (std::process::id() & 0xffff) as u16;
    for seq in 0..tries as u16 {
        let mut pkt = vec![8u8, 0, 0, 0];
        pkt.extend_from_slice(&id.to_be_bytes());
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(b"peregrine-ping");
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
            sin_zero: [0; 8],
        };
        let start = Instant::now();
        // SAFETY: `pkt` and `sa` are live for the call; lengths are theirs.
        let rc = unsafe {
            libc::sendto(
                close.0,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                std::ptr::from_ref(&sa).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        while start.elapsed() < Duration::from_millis(900) {
            let mut buf = [0u8; 256];
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::recv(close.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                break;
            }
            let b = &buf[..n as usize];
            let ihl = usize::from(b.first().copied().unwrap_or(0) & 0xf) * 4;
            let icmp = b.get(ihl..).unwrap_or(&[]);
            let from = b.get(12..16).map(|s| Ipv4Addr::new(s[0], s[1], s[2], s[3]));
            if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && from == Some(v4)
            {
                return Ok(start.elapsed());
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, "no echo reply"))
}

struct Closer(libc::c_int);

impl Drop for Closer {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this guard owns, once.
        unsafe { libc::close(self.0) };
    }
}
