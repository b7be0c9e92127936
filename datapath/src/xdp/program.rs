//! The XDP program that steers our UDP port to the AF_XDP sockets, hand-assembled as eBPF
//! instructions and loaded with the `bpf()` system call (no clang, no libbpf, no aya).
//!
//! What it does, per received frame:
//!
//! ```text
//! Ethernet (untagged) → IPv4 (not a fragment, protocol 17[, dst == ours]) → UDP dst port == ours → redirect
//!                     → IPv6 (next header 17, no ext. headers[, dst == ours]) → UDP dst port == ours → redirect
//! anything else (ARP, NDP, ICMP, other ports, VLAN-tagged, IPv6 extension headers, fragments) → XDP_PASS
//! redirect = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS)
//! ```
//!
//! The `XDP_PASS` in the flags of `bpf_redirect_map` is the action when the XSKMAP has no socket
//! for the queue, so a queue without a socket hands its packets to the kernel instead of
//! dropping them. The port (and, when the queue is bound to a specific address, that address,
//! so that another service on the same port and another address keeps its traffic) is patched
//! into the program as immediates: one program per local address, no map to keep in sync. The program is attached through a BPF link, so the
//! kernel detaches it when the link's descriptor closes: on drop, or when the process dies.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Native (driver) mode first, generic mode if the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode, `XDP_FLAGS_DRV_MODE`: the program runs in the driver before an
    /// `sk_buff` is allocated.
    Native,
    /// Generic mode, `XDP_FLAGS_SKB_MODE`: the program runs on the `sk_buff` path; works on
    /// every device, slower.
    Generic,
}

impl std::str::FromStr for XdpMode {
    type Err = io::Error;
    fn from_str(s: &str) -> io::Result<Self> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" | "drv" => Ok(XdpMode::Native),
            "generic" | "skb" => Ok(XdpMode::Generic),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("xdp mode {s:?}: expected auto, native or generic"),
            )),
        }
    }
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// Size of the attribute block handed to `bpf()` (larger than every command's part; the
/// kernel requires the tail it does not know to be zero, and it is).
const ATTR_SIZE: usize = 128;

/// A `union bpf_attr`, written field by field at the kernel ABI's offsets.
#[repr(C, align(8))]
struct Attr([u8; ATTR_SIZE]);

impl Attr {
    fn new() -> Self {
        Attr([0; ATTR_SIZE])
    }
    fn u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, at: usize, name: &str) -> &mut Self {
        let n = name.len().min(15);
        self.0[at..at + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
}

/// Runs `bpf(cmd, attr)`, returning its non-negative result.
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable block of ATTR_SIZE bytes laid out as `union bpf_attr`
    // for `cmd`; every pointer stored in it (instructions, license, log, key, value) points to
    // memory the caller keeps alive across this call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), ATTR_SIZE) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(rc).map_err(|_| io::Error::other("bpf() fd out of range"))?;
    // SAFETY: the kernel just returned this new descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The eBPF assembler: instructions of `struct bpf_insn` (8 bytes each), with forward jumps to
/// labels resolved at the end.
pub(crate) mod asm {
    /// `struct bpf_insn` encoded as a little-endian u64 image.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Insn {
        pub(crate) code: u8,
        pub(crate) dst: u8,
        pub(crate) src: u8,
        pub(crate) off: i16,
        pub(crate) imm: i32,
    }

    impl Insn {
        pub(crate) fn bytes(&self) -> [u8; 8] {
            let o = self.off.to_le_bytes();
            let i = self.imm.to_le_bytes();
            [self.code, (self.src << 4) | (self.dst & 0xf), o[0], o[1], i[0], i[1], i[2], i[3]]
        }
    }

    pub(crate) const MOV64_REG: u8 = 0xbf;
    pub(crate) const MOV64_IMM: u8 = 0xb7;
    pub(crate) const ADD64_IMM: u8 = 0x07;
    pub(crate) const ADD64_REG: u8 = 0x0f;
    pub(crate) const AND64_IMM: u8 = 0x57;
    pub(crate) const LSH64_IMM: u8 = 0x67;
    pub(crate) const LDX_W: u8 = 0x61;
    pub(crate) const LDX_H: u8 = 0x69;
    pub(crate) const LDX_B: u8 = 0x71;
    pub(crate) const LD_IMM64: u8 = 0x18;
    pub(crate) const JA: u8 = 0x05;
    pub(crate) const JEQ_IMM: u8 = 0x15;
    pub(crate) const JNE_IMM: u8 = 0x55;
    /// 32-bit compare (`BPF_JMP32`, Linux 5.1+): an immediate with the top bit set is not
    /// sign-extended against a zero-extended 32-bit load.
    pub(crate) const JNE32_IMM: u8 = 0x56;
    pub(crate) const JGT_REG: u8 = 0x2d;
    pub(crate) const CALL: u8 = 0x85;
    pub(crate) const EXIT: u8 = 0x95;
    /// `src` of a `LD_IMM64` whose immediate is a map file descriptor.
    pub(crate) const PSEUDO_MAP_FD: u8 = 1;

    /// A program under construction.
    #[derive(Default)]
    pub(crate) struct Asm {
        pub(crate) insns: Vec<Insn>,
        fixups: Vec<(usize, &'static str)>,
        labels: Vec<(&'static str, usize)>,
    }

    impl Asm {
        pub(crate) fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Self {
            self.insns.push(Insn { code, dst, src, off, imm });
            self
        }
        /// A jump (`code`, comparing `dst` with `src` or `imm`) to `label`.
        pub(crate) fn jmp(
            &mut self,
            code: u8,
            dst: u8,
            src: u8,
            imm: i32,
            label: &'static str,
        ) -> &mut Self {
            self.fixups.push((self.insns.len(), label));
            self.op(code, dst, src, 0, imm)
        }
        pub(crate) fn label(&mut self, name: &'static str) -> &mut Self {
            self.labels.push((name, self.insns.len()));
            self
        }
        /// Resolves jumps; `None` when a label is missing or out of reach.
        pub(crate) fn finish(mut self) -> Option<Vec<Insn>> {
            for (at, name) in std::mem::take(&mut self.fixups) {
                let target = self.labels.iter().find(|(n, _)| *n == name)?.1;
                let rel = i16::try_from(target as isize - at as isize - 1).ok()?;
                self.insns[at].off = rel;
            }
            Some(self.insns)
        }
    }
}

/// The steering program for UDP destination `local` (an unspecified IP matches every
/// destination address of both families; a specific one only itself), redirecting into the
/// XSKMAP `map_fd`.
pub(crate) fn steering_program(local: SocketAddr, map_fd: i32) -> Vec<asm::Insn> {
    use asm::*;
    // A 16-bit field in network order, loaded by a little-endian LDX_H, reads byte-swapped.
    let be16 = |v: u16| i32::from(v.swap_bytes());
    // Four address bytes in network order, as a little-endian LDX_W reads them.
    let word = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let port = local.port();
    let (want_v4, want_v6) = match local.ip() {
        ip if ip.is_unspecified() => (Some(None), Some(None)),
        IpAddr::V4(v4) => (Some(Some(v4.octets())), None),
        IpAddr::V6(v6) => (None, Some(Some(v6.octets()))),
    };
    let mut a = Asm::default();
    a.op(MOV64_REG, 6, 1, 0, 0) // r6 = ctx
        .op(LDX_W, 2, 1, 0, 0) // r2 = ctx->data
        .op(LDX_W, 3, 1, 4, 0) // r3 = ctx->data_end
        .op(MOV64_REG, 4, 2, 0, 0)
        .op(ADD64_IMM, 4, 0, 0, 14)
        .jmp(JGT_REG, 4, 3, 0, "pass") // Ethernet header present
        .op(LDX_H, 5, 2, 12, 0); // EtherType
                                 // Only the families the local address accepts get a branch (the verifier refuses
                                 // unreachable instructions).
    if want_v4.is_some() {
        a.jmp(JEQ_IMM, 5, 0, be16(0x0800), "v4");
    }
    if want_v6.is_some() {
        a.jmp(JEQ_IMM, 5, 0, be16(0x86dd), "v6");
    }
    a.jmp(JA, 0, 0, 0, "pass");
    if let Some(dst) = want_v4 {
        a.label("v4")
            .op(MOV64_REG, 4, 2, 0, 0)
            .op(ADD64_IMM, 4, 0, 0, 14 + 20)
            .jmp(JGT_REG, 4, 3, 0, "pass") // minimal IPv4 header present
            .op(LDX_B, 5, 2, 14 + 9, 0) // protocol
            .jmp(JNE_IMM, 5, 0, 17, "pass")
            .op(LDX_H, 5, 2, 14 + 6, 0) // flags + fragment offset
            .op(AND64_IMM, 5, 0, 0, be16(0x3fff)) // MF or an offset: a fragment
            .jmp(JNE_IMM, 5, 0, 0, "pass");
        if let Some(addr) = dst {
            a.op(LDX_W, 5, 2, 14 + 16, 0) // destination address
                .jmp(JNE32_IMM, 5, 0, word(&addr), "pass");
        }
        a.op(LDX_B, 5, 2, 14, 0) // version + IHL
            .op(AND64_IMM, 5, 0, 0, 0x0f)
            .op(LSH64_IMM, 5, 0, 0, 2) // IHL in bytes, 0..=60
            .op(ADD64_REG, 2, 5, 0, 0) // r2 = frame start + IHL (UDP at r2 + 14)
            .op(MOV64_REG, 4, 2, 0, 0)
            .op(ADD64_IMM, 4, 0, 0, 14 + 8)
            .jmp(JGT_REG, 4, 3, 0, "pass") // UDP header present
            .op(LDX_H, 5, 2, 14 + 2, 0) // UDP destination port
            .jmp(JA, 0, 0, 0, "port");
    }
    if let Some(dst) = want_v6 {
        a.label("v6")
            .op(MOV64_REG, 4, 2, 0, 0)
            .op(ADD64_IMM, 4, 0, 0, 14 + 40 + 8)
            .jmp(JGT_REG, 4, 3, 0, "pass") // IPv6 + UDP headers present
            .op(LDX_B, 5, 2, 14 + 6, 0) // next header
            .jmp(JNE_IMM, 5, 0, 17, "pass");
        if let Some(addr) = dst {
            for (i, w) in addr.chunks(4).enumerate() {
                // Destination address, word by word.
                a.op(LDX_W, 5, 2, 14 + 24 + 4 * i as i16, 0).jmp(JNE32_IMM, 5, 0, word(w), "pass");
            }
        }
        a.op(LDX_H, 5, 2, 14 + 40 + 2, 0); // UDP destination port
    }
    a.label("port")
        .jmp(JNE_IMM, 5, 0, be16(port), "pass")
        .op(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd)
        .op(0, 0, 0, 0, 0) // second half of the 64-bit immediate
        .op(LDX_W, 2, 6, 16, 0) // ctx->rx_queue_index
        .op(MOV64_IMM, 3, 0, 0, XDP_PASS) // action when the queue has no socket
        .op(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP)
        .op(EXIT, 0, 0, 0, 0);
    a.label("pass").op(MOV64_IMM, 0, 0, 0, XDP_PASS).op(EXIT, 0, 0, 0, 0);
    a.finish().expect("the steering program's labels are all defined and near")
}

/// Loads an XDP program, returning its fd; on a verifier refusal the verifier's log is in the
/// error.
fn load(insns: &[asm::Insn], name: &str) -> io::Result<OwnedFd> {
    let image: Vec<u8> = insns.iter().flat_map(|i| i.bytes()).collect();
    // The program uses no GPL-only helper (bpf_redirect_map is not; checked on 6.18: it loads
    // and attaches under this licence), so it declares the project's own MIT option.
    let license = c"MIT";
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut a = Attr::new();
        a.u32(0, BPF_PROG_TYPE_XDP)
            .u32(4, insns.len() as u32)
            .u64(8, image.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .name(48, name)
            .u32(68, BPF_XDP);
        if let Some(log) = log {
            a.u32(24, 1).u32(28, log.len() as u32).u64(32, log.as_mut_ptr() as u64);
            bpf(BPF_PROG_LOAD, &mut a)
        } else {
            bpf(BPF_PROG_LOAD, &mut a)
        }
    };
    match attempt(None) {
        Ok(fd) => fd_from(fd),
        Err(first) => {
            let mut log = vec![0u8; 1 << 16];
            let _ = attempt(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(io::Error::new(first.kind(), format!("BPF_PROG_LOAD: {first}; verifier: {text}")))
        }
    }
}

/// Creates an XSKMAP of `entries` slots (one per queue id).
fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, BPF_MAP_TYPE_XSKMAP).u32(4, 4).u32(8, 4).u32(12, entries.max(1)).name(28, "pg_xsks");
    bpf(BPF_MAP_CREATE, &mut a).and_then(fd_from)
}

/// The loaded, attached steering program and its XSKMAP.
///
/// One per interface and port, shared (through an `Arc`) by the queues of that interface;
/// dropping the last owner detaches the program.
#[derive(Debug)]
pub struct XdpProgram {
    link: OwnedFd,
    _prog: OwnedFd,
    map: OwnedFd,
    ifindex: u32,
    port: u16,
    queues: u32,
    mode: XdpMode,
    missing: Option<String>,
}

impl XdpProgram {
    /// Loads the program for UDP destination `local` (port, and the address unless it is
    /// unspecified) with an XSKMAP of `queues` slots and attaches it to interface `ifindex` (of
    /// the calling thread's network namespace) in `mode`. `Auto` tries native mode, then
    /// generic mode; the mode used is [`XdpProgram::mode`], and why native was not used is
    /// [`XdpProgram::missing`].
    pub fn attach(ifindex: u32, local: SocketAddr, queues: u32, mode: XdpMode) -> io::Result<Self> {
        let map = create_xskmap(queues).map_err(|e| ctx(e, "BPF_MAP_CREATE (XSKMAP)"))?;
        let insns = steering_program(local, map.as_raw_fd());
        let port = local.port();
        let prog = load(&insns, "peregrine_xdp")?;
        let (link, mode, missing) = match mode {
            XdpMode::Native => (link_create(&prog, ifindex, XDP_FLAGS_DRV_MODE)?, mode, None),
            XdpMode::Generic => (
                link_create(&prog, ifindex, XDP_FLAGS_SKB_MODE)?,
                mode,
                Some("native XDP: not requested (generic mode)".to_string()),
            ),
            XdpMode::Auto => match link_create(&prog, ifindex, XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, XdpMode::Native, None),
                Err(native) => {
                    let l = link_create(&prog, ifindex, XDP_FLAGS_SKB_MODE)?;
                    (l, XdpMode::Generic, Some(format!("native XDP: {native} (generic mode)")))
                }
            },
        };
        Ok(Self { link, _prog: prog, map, ifindex, port, queues, mode, missing })
    }

    /// The mode the program runs in (`Native` or `Generic`, never `Auto`).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Why native mode is not in use, when it is not.
    pub fn missing(&self) -> Option<&str> {
        self.missing.as_deref()
    }

    /// The interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The UDP port it steers.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Slots of the XSKMAP (queue ids `0..queues`).
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// The BPF link's descriptor (closing it detaches the program).
    pub fn link_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }

    /// Puts socket `xsk` in the XSKMAP slot of `queue_id`.
    pub(crate) fn insert(&self, queue_id: u32, xsk: BorrowedFd<'_>) -> io::Result<()> {
        let key = queue_id;
        let value = xsk.as_raw_fd() as u32;
        let mut a = Attr::new();
        a.u32(0, self.map.as_raw_fd() as u32)
            .u64(8, std::ptr::from_ref(&key) as u64)
            .u64(16, std::ptr::from_ref(&value) as u64)
            .u64(24, 0);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop).map_err(|e| ctx(e, "XSKMAP update"))
    }

    /// Empties the XSKMAP slot of `queue_id` (the kernel also does it when the socket closes).
    pub(crate) fn remove(&self, queue_id: u32) {
        let key = queue_id;
        let mut a = Attr::new();
        a.u32(0, self.map.as_raw_fd() as u32).u64(8, std::ptr::from_ref(&key) as u64);
        let _ = bpf(BPF_MAP_DELETE_ELEM, &mut a);
    }
}

fn link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32).u32(4, ifindex).u32(8, BPF_XDP).u32(12, flags);
    let what = if flags == XDP_FLAGS_DRV_MODE { "native" } else { "generic" };
    bpf(BPF_LINK_CREATE, &mut a)
        .and_then(fd_from)
        .map_err(|e| ctx(e, &format!("BPF_LINK_CREATE ({what})")))
}

fn ctx(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::asm::*;
    use super::*;

    #[test]
    fn xdp_insn_encoding_matches_the_kernel_abi() {
        // r1 = r6 → code 0xbf, regs: dst low nibble, src high nibble.
        let i = Insn { code: MOV64_REG, dst: 1, src: 6, off: 0, imm: 0 };
        assert_eq!(i.bytes(), [0xbf, 0x61, 0, 0, 0, 0, 0, 0]);
        let j = Insn { code: JNE_IMM, dst: 5, src: 0, off: -2, imm: 0x1234 };
        assert_eq!(j.bytes(), [0x55, 0x05, 0xfe, 0xff, 0x34, 0x12, 0, 0]);
    }

    #[test]
    fn xdp_steering_program_jumps_land_inside() {
        let p = steering_program("[::]:4433".parse().unwrap(), 7);
        assert_eq!(p.last().unwrap().code, EXIT);
        for (at, i) in p.iter().enumerate() {
            if matches!(i.code, JA | JEQ_IMM | JNE_IMM | JNE32_IMM | JGT_REG) {
                let t = at as isize + 1 + isize::from(i.off);
                assert!(t > at as isize && (t as usize) < p.len(), "jump at {at} lands at {t}");
            }
        }
        let port = p.iter().find(|i| i.code == JNE_IMM && i.imm == i32::from(4433u16.swap_bytes()));
        assert!(port.is_some(), "the port is compared in network byte order");
        let ld = p.iter().find(|i| i.code == LD_IMM64).unwrap();
        assert_eq!((ld.src, ld.imm), (PSEUDO_MAP_FD, 7));
    }

    fn privileged() -> bool {
        crate::require!(crate::require::is_root(), "loading BPF programs needs root");
        true
    }

    #[test]
    fn xdp_steering_program_passes_the_verifier() {
        if !privileged() {
            return;
        }
        let map = create_xskmap(4).expect("XSKMAP");
        for local in ["0.0.0.0:4433", "[::]:4433", "10.1.2.3:4433", "[fd00::9]:4433"] {
            let insns = steering_program(local.parse().unwrap(), map.as_raw_fd());
            load(&insns, "pg_test").expect("the verifier accepts the steering program");
        }
    }

    #[test]
    fn xdp_verifier_refusal_carries_the_log() {
        if !privileged() {
            return;
        }
        // Returns r0 without ever setting it.
        let bad = [Insn { code: EXIT, dst: 0, src: 0, off: 0, imm: 0 }];
        let e = load(&bad, "pg_bad").expect_err("the verifier refuses");
        let text = e.to_string();
        assert!(text.contains("verifier:") && text.contains("R0"), "log in the error: {text}");
    }

    #[test]
    fn xdp_steering_program_matches_a_specific_address() {
        let p = steering_program("10.1.2.200:4433".parse().unwrap(), 7);
        let imm = i32::from_le_bytes([10, 1, 2, 200]);
        assert!(p.iter().any(|i| i.code == JNE32_IMM && i.imm == imm), "IPv4 destination compared");
        let p = steering_program("[fd00::1:2]:4433".parse().unwrap(), 7);
        assert_eq!(p.iter().filter(|i| i.code == JNE32_IMM).count(), 4, "four IPv6 words");
        let any = steering_program("0.0.0.0:4433".parse().unwrap(), 7);
        assert!(!any.iter().any(|i| i.code == JNE32_IMM), "no address compare when unspecified");
    }

    #[test]
    fn xdp_mode_parses() {
        assert_eq!("auto".parse::<XdpMode>().unwrap(), XdpMode::Auto);
        assert_eq!("native".parse::<XdpMode>().unwrap(), XdpMode::Native);
        assert_eq!("generic".parse::<XdpMode>().unwrap(), XdpMode::Generic);
        assert!("fast".parse::<XdpMode>().is_err());
    }
}
