//! The AF_XDP datapath: kernel bypass through an `AF_XDP` socket bound to one NIC queue, fed by
//! a hand-assembled XDP program that steers our UDP port to it.
//!
//! Files: [`XdpConfig`] in `config.rs`; the shared ring protocol in `ring.rs`; the packet
//! memory and its fill/completion rings in `umem.rs`; the socket, bind and wake-ups in
//! `socket.rs`; the eBPF program, its XSKMAP and the BPF link in `program.rs`; rtnetlink and
//! interface facts in `netlink.rs`; next-hop MAC resolution in `neigh.rs`; the receive path in
//! `rx.rs` and the transmit path in `tx.rs`.
//!
//! # How a datagram travels
//!
//! **Receive.** The XDP program redirects UDP frames for our port to the socket of the queue
//! they arrived on (everything else, ARP, NDP, ICMP, other ports, goes to the kernel). The
//! queue takes descriptors off the RX ring, parses each frame with [`crate::wire::parse_frame`]
//! (IPv4 header and UDP checksums verified; a bad frame is dropped and counted by class,
//! [`XdpStats::rx_bad_checksum`] or [`XdpStats::rx_malformed`]) and learns the sender's MAC.
//! The UDP payload is then **lent in place**: the [`crate::RxDatagram`] handed to the engine
//! is a view of the payload inside its UMEM frame (a [`crate::PoolBuf`] backed by a
//! `FrameLease`), the engine decrypts it there, and the frame goes back to the fill ring when
//! the engine hands the batch back on the next [`Queue::recv`] ([`XdpStats::rx_lent`]). At
//! most half the receive frames are lent at once, so the fill ring never runs dry because of
//! the engine. Metadata: source, destination IP, ECN from the IP header.
//!
//! **Partial checksums.** A veth peer (and some virtual NICs) hands XDP the frames its kernel
//! sent with `CHECKSUM_PARTIAL`: the UDP checksum field holds only the pseudo-header sum, for
//! an offload that never runs. Such a frame is accepted when everything else verifies (IPv4
//! header checksum, lengths, and the pseudo-header sum itself, so addresses and length are
//! covered) and counted in [`XdpStats::rx_csum_partial`] / [`QueueStats::rx_csum_partial`]:
//! the payload is then unprotected by UDP, but QUIC's AEAD authenticates every packet, so a
//! corrupted payload is dropped by the engine instead. Refusing them would make the server
//! silently useless to any client behind a veth with default offloads.
//!
//! **Transmit.** [`Queue::alloc_tx`] lends a free UMEM frame: the [`TxBuffer`] is a view of
//! the frame behind [`MAX_HEADERS_LEN`] bytes of headroom, as long as the largest payload,
//! and the engine seals its datagram straight into it ([`XdpStats::tx_lent`]). On
//! [`Queue::send`] the next hop's MAC is resolved (`neigh.rs`), the Ethernet, IP and UDP
//! headers are written in the headroom with [`crate::wire::build_frame_before`] (full UDP
//! checksum: veth and copy mode need it, and no offload is asked of the NIC), and the frame
//! goes on the TX ring. A frame holds one datagram, so with lent frames the queue reports no
//! GSO ([`Capabilities::gso`] off): the engine writes one datagram per buffer. Descriptors are
//! followed by a kick with `sendto` when the kernel asked for it (`need_wakeup`; in copy mode
//! it always does, and one kick sends at most 32 frames unless the kernel accepts a larger
//! budget through `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+; the queue asks for 512), so the
//! queue kicks until the ring is drained or the kernel stops making progress), and completed
//! frames are reaped from the completion ring back to the free list. A lent frame the engine
//! drops instead of sending goes back to the free list too (the lease's orphan list).
//!
//! **Copies.** So no payload byte is copied in user space either way:
//! [`XdpStats::rx_payload_copies`] and [`XdpStats::tx_payload_copies`] count every copy
//! there is, and stay 0 on this path (a stateless response, built before a buffer is taken,
//! is appended with [`TxBuffer::extend_from_slice`] and counted). Whether the kernel copies
//! is the bind mode: `XDP_ZEROCOPY` where the driver allows it (the NIC then DMAs to and from
//! the UMEM), copy mode otherwise (veth, drivers without AF_XDP zero-copy: the kernel copies
//! once between the UMEM and its `sk_buff`s), reported in [`Capabilities::zero_copy`] and
//! [`Capabilities::missing`]. [`XdpConfig::with_payload_copy`] turns on the older path that
//! copies each payload once each way between pool buffers and UMEM frames (and splits GSO
//! trains in software, [`XdpConfig::with_gso_segments`]), kept to measure against.
//!
//! **Frame size.** UMEM frames follow the interface's MTU: 2048 bytes up to an MTU of
//! [`MTU_FOR_SMALL_FRAMES`], 4096 above. One frame holds one Ethernet frame (AF_XDP
//! multi-buffer is not used), so above an MTU of about 3800 the largest UDP payload is what a
//! 4096-byte frame holds, and [`Capabilities::missing`] says so.
//!
//! **The guard socket.** An ordinary UDP socket stays bound to the same port, so that the
//! kernel never answers our port with ICMP port-unreachable for a datagram that misses the
//! XSK (a fragment, an IPv6 packet with extension headers, a queue with no socket). What
//! arrives on it is delivered through the same [`Queue::recv`] and counted in
//! [`XdpStats::kernel_rx`].

mod config;
mod neigh;
mod netlink;
mod program;
mod ring;
mod rx;
mod socket;
mod tx;
mod umem;

pub use config::{
    XdpConfig, DEFAULT_BATCH, DEFAULT_FRAME_COUNT, DEFAULT_FRAME_SIZE, DEFAULT_GSO_SEGMENTS,
    DEFAULT_RING_SIZE, DEFAULT_RX_POOL, DEFAULT_TX_POOL, DEFAULT_XSKMAP_ENTRIES,
    MTU_FOR_SMALL_FRAMES,
};
pub use neigh::{ENTRY_TTL, PROBE_INTERVAL, ROUTE_TTL};
pub use netlink::{if_index, if_mac, if_mtu};
pub use program::{XdpMode, XdpProgram};
pub use socket::XskStatistics;
pub(crate) use umem::FrameLease;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::BufferPool;
use crate::wire::{MacAddr, MAX_HEADERS_LEN};
use crate::{Capabilities, Queue, QueueStats, RxBatch, TxBatch, TxBuffer, Waker};
use socket::{Xsk, XskParams};
use umem::{FrameAlloc, Umem};

/// Bytes the kernel keeps in front of each received frame in its UMEM frame.
const XDP_PACKET_HEADROOM: usize = 256;

/// Size of the buffers that receive from the guard socket: any UDP datagram fits.
const GUARD_BUFFER_SIZE: usize = 65_536;
/// Most guard-socket buffers lent out at once.
const GUARD_POOL: usize = 8;

/// True when this process can open an AF_XDP socket (the kernel has AF_XDP and we hold
/// `CAP_NET_RAW`); the error says why not.
pub fn probe() -> io::Result<()> {
    socket::xdp_socket().map(drop)
}

/// Counters specific to the AF_XDP queue, beside [`QueueStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// The kernel's counters of the socket (`XDP_STATISTICS`).
    pub xsk: XskStatistics,
    /// Frames taken off the RX ring (redirected by the XDP program to this socket).
    pub xsk_rx_frames: u64,
    /// Frames on the RX ring that failed [`crate::wire::parse_frame`] (bad checksum, bad
    /// lengths, ...), dropped: the sum of `rx_bad_checksum` and `rx_malformed`.
    pub rx_invalid: u64,
    /// Of `rx_invalid`: frames whose IPv4 header checksum or UDP checksum failed (a UDP
    /// checksum that is neither full nor partial).
    pub rx_bad_checksum: u64,
    /// Of `rx_invalid`: every other parse failure (lengths, fragments, headers not handled).
    pub rx_malformed: u64,
    /// Frames accepted with a partial UDP checksum (see [`crate::wire::UdpChecksum::Partial`]).
    pub rx_csum_partial: u64,
    /// Valid frames on the RX ring for another local address than ours, dropped.
    pub rx_not_ours: u64,
    /// Datagrams that arrived through the kernel's UDP stack on the guard socket instead of the
    /// XSK (should stay 0 while the program steers everything).
    pub kernel_rx: u64,
    /// Received datagrams lent to the engine in place in their UMEM frames (no copy).
    pub rx_lent: u64,
    /// Received payloads copied in user space from a UMEM frame into a pool buffer (only with
    /// [`XdpConfig::with_payload_copy`] on; 0 when frames are lent).
    pub rx_payload_copies: u64,
    /// UMEM frames lent to the engine to seal a datagram into ([`Queue::alloc_tx`]).
    pub tx_lent: u64,
    /// Transmitted payloads copied in user space into a UMEM frame: every segment with
    /// [`XdpConfig::with_payload_copy`] on; with frames lent, a buffer that was not one of
    /// this queue's frames, and bytes appended with [`TxBuffer::extend_from_slice`] into a
    /// lent frame (stateless responses built elsewhere first). 0 on the sealed-in-place path.
    pub tx_payload_copies: u64,
    /// Frames posted to the TX ring.
    pub tx_frames: u64,
    /// Transmitted frames the kernel reported complete.
    pub tx_completed: u64,
    /// Datagrams dropped because the next hop's MAC was not known yet (a kernel resolution
    /// was triggered).
    pub tx_unresolved: u64,
    /// Datagrams dropped because there is no route through our interface to the destination,
    /// no source address of the right family, they exceed the MTU, or a train has more
    /// segments than can be in flight at once.
    pub tx_unroutable: u64,
    /// Send calls that stopped with buffers left in the batch because every transmit frame
    /// was in flight or the TX ring was full (back-pressure; the caller waits for room).
    pub tx_full: u64,
    /// `sendto` wake-ups of the TX ring.
    pub tx_kicks: u64,
    /// `recvfrom` wake-ups of the fill ring.
    pub rx_kicks: u64,
    /// Next hops answered from learned (source IP, source MAC) pairs.
    pub neigh_learned: u64,
    /// Next hops answered from the kernel's neighbour table.
    pub neigh_kernel: u64,
    /// Kernel resolutions triggered.
    pub neigh_probes: u64,
}

/// The program and guard socket of one (interface, port), shared by its queues.
#[derive(Debug)]
struct Steering {
    program: XdpProgram,
    guard: UdpSocket,
}

/// A [`Queue`] over one AF_XDP socket bound to one NIC queue.
///
/// Open it (or a group, one per NIC queue) in the network namespace of the interface, with
/// `CAP_NET_ADMIN`, `CAP_BPF` and `CAP_NET_RAW` (root); afterwards it may be used from any
/// thread.
pub struct XdpQueue {
    // Field order is drop order: the socket (and its ring mappings) before the UMEM.
    xsk: Xsk,
    umem: Umem,
    steering: Arc<Steering>,
    neigh: neigh::Neighbours,
    config: XdpConfig,
    local: SocketAddr,
    own_mac: MacAddr,
    caps: Capabilities,
    stats: QueueStats,
    xstats: XdpStats,
    tx_free: FrameAlloc,
    fill_pending: Vec<u64>,
    rx_pool: BufferPool,
    guard_pool: BufferPool,
    tx_pool: BufferPool,
    max_payload_v4: usize,
    max_payload_v6: usize,
    /// UMEM frames reserved for transmit.
    tx_frames: usize,
    /// Frames below this address receive; the others transmit.
    rx_end: u64,
    /// Most received frames lent to the engine per receive call (the rest stay for the fill
    /// ring).
    rx_lend_max: usize,
    /// Scratch list of orphaned frames being reclaimed.
    orphans: Vec<u64>,
    ipv4_ident: u16,
}

impl std::fmt::Debug for XdpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpQueue")
            .field("interface", &self.config.interface)
            .field("queue_id", &self.config.queue_id)
            .field("local", &self.local)
            .field("caps", &self.caps)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl XdpQueue {
    /// Opens queue [`XdpConfig::queue_id`] of the interface: binds the guard socket (picking
    /// the port when it is 0), loads and attaches the XDP program, and opens the AF_XDP socket.
    pub fn open(config: &XdpConfig) -> io::Result<Self> {
        let mut v = Self::open_group(config, &[config.queue_id])?;
        v.pop().ok_or_else(|| io::Error::other("no queue opened"))
    }

    /// Opens one queue per id in `queue_ids` on the same interface and port, sharing one XDP
    /// program and guard socket (one worker per NIC queue).
    pub fn open_group(config: &XdpConfig, queue_ids: &[u32]) -> io::Result<Vec<Self>> {
        let ifindex = if_index(&config.interface)?;
        let guard = UdpSocket::bind(config.bind).map_err(|e| socket::ctx(e, "guard socket"))?;
        guard.set_nonblocking(true)?;
        let port = guard.local_addr()?.port();
        let local = SocketAddr::new(config.bind.ip(), port);
        let program = XdpProgram::attach(ifindex, local, config.xskmap_entries, config.mode)?;
        let steering = Arc::new(Steering { program, guard });
        let mut out = Vec::with_capacity(queue_ids.len());
        for &q in queue_ids {
            let c = config.clone().with_queue_id(q)?;
            out.push(Self::open_one(&c, ifindex, Arc::clone(&steering))?);
        }
        Ok(out)
    }

    fn open_one(config: &XdpConfig, ifindex: u32, steering: Arc<Steering>) -> io::Result<Self> {
        let own_mac = if_mac(&config.interface)?;
        let mtu = if_mtu(&config.interface)? as usize;
        let frame_size = config.frame_size_for(mtu as u32);
        let umem = Umem::new(frame_size, config.frame_count)?;
        let ring = config.ring_size;
        let params = XskParams {
            ifindex,
            queue_id: config.queue_id,
            rx_size: ring,
            tx_size: ring,
            fill_size: ring,
            comp_size: ring,
            zero_copy: config.zero_copy,
        };
        let mut xsk = Xsk::open(&umem, &params)?;
        steering.program.insert(config.queue_id, xsk.as_fd())?;

        // Half the frames receive (all posted to the fill ring now), half transmit.
        let half = config.frame_count / 2;
        let rx_frames = half.min(xsk.fill.size());
        let mut fill = FrameAlloc::new(0, rx_frames, frame_size);
        let n = xsk.fill.free(rx_frames);
        for _ in 0..n {
            if let Some(a) = fill.take() {
                xsk.fill.push(a);
            }
        }
        xsk.fill.submit();
        let tx_free = FrameAlloc::new(half, half, frame_size);

        // Received frames start XDP_PACKET_HEADROOM (256) bytes into their UMEM frame.
        let room = frame_size as usize - XDP_PACKET_HEADROOM - MAX_HEADERS_LEN;
        let max_payload_v4 = mtu.saturating_sub(28).min(room);
        let max_payload_v6 = mtu.saturating_sub(48).min(room);
        let max_payload = if config.bind.is_ipv6() { max_payload_v6 } else { max_payload_v4 };
        let lend = !config.copy_payloads;
        let mut missing = Vec::new();
        missing.extend(xsk.zero_copy_missing.clone());
        missing.extend(steering.program.missing().map(str::to_string));
        if !xsk.zero_copy && xsk.tx_budget.is_none() {
            missing.push(
                "tx budget: 32 frames per copy-mode sendto (XDP_MAX_TX_SKB_BUDGET refused)"
                    .to_string(),
            );
        }
        missing.push("gro: AF_XDP delivers one frame per descriptor".to_string());
        if mtu.saturating_sub(28) > room {
            missing.push(format!(
                "mtu: {mtu}-byte frames exceed a {frame_size}-byte UMEM frame (multi-buffer \
                 not used): UDP payloads up to {max_payload}"
            ));
        }
        if lend {
            missing.push(
                "gso: one datagram per UMEM frame (the engine seals each into its frame)"
                    .to_string(),
            );
        } else {
            missing.push(
                "buffers: payload copied between engine buffers and UMEM frames (one memcpy \
                 each way; payload copy on)"
                    .to_string(),
            );
        }
        let caps = Capabilities {
            gso: !lend,
            max_gso_segments: if lend { 1 } else { config.gso_segments },
            gro: false,
            ecn: true,
            pktinfo: true,
            zero_copy: xsk.zero_copy,
            ipv6: true,
            max_udp_payload: max_payload,
            flow_steered: true,
            missing,
        };
        let local = steering.guard.local_addr()?;
        let tx_buf = max_payload_v4.max(max_payload_v6) * config.gso_segments;
        Ok(Self {
            neigh: neigh::Neighbours::new(ifindex)?,
            rx_pool: BufferPool::new(frame_size as usize, config.rx_pool),
            guard_pool: BufferPool::new(GUARD_BUFFER_SIZE, GUARD_POOL),
            tx_pool: BufferPool::new(tx_buf, config.tx_pool),
            xsk,
            umem,
            steering,
            config: config.clone(),
            local,
            own_mac,
            caps,
            stats: QueueStats::default(),
            xstats: XdpStats::default(),
            tx_free,
            fill_pending: Vec::with_capacity(ring as usize),
            max_payload_v4,
            max_payload_v6,
            tx_frames: half as usize,
            rx_end: u64::from(half) * u64::from(frame_size),
            rx_lend_max: (rx_frames as usize / 2).max(1),
            orphans: Vec::new(),
            ipv4_ident: 0,
        })
    }

    /// The configuration it was opened with (with the queue id it is bound to).
    pub fn config(&self) -> &XdpConfig {
        &self.config
    }

    /// The mode the XDP program runs in (native or generic).
    pub fn mode(&self) -> XdpMode {
        self.steering.program.mode()
    }

    /// Frames one copy-mode wake-up transmits, when the kernel let the queue raise it from
    /// 32 (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17+); `None` in zero-copy mode or when refused.
    pub fn copy_tx_budget(&self) -> Option<u32> {
        self.xsk.tx_budget
    }

    /// The interface's MAC address (the source of every frame we send).
    pub fn mac(&self) -> MacAddr {
        self.own_mac
    }

    /// Whether UMEM frames are lent to the engine (no payload copy in user space), as opposed
    /// to [`XdpConfig::with_payload_copy`].
    pub fn lends_frames(&self) -> bool {
        !self.config.copy_payloads
    }

    /// Size of the UMEM frames (chosen from the interface's MTU unless set).
    pub fn frame_size(&self) -> u32 {
        self.umem.frame_size()
    }

    /// AF_XDP counters, with the kernel's socket statistics read now.
    pub fn xdp_stats(&self) -> XdpStats {
        let mut s = self.xstats;
        s.tx_payload_copies += self.umem.copies_in();
        s.xsk = self.xsk.statistics().unwrap_or_default();
        s.neigh_learned = self.neigh.learned_hits;
        s.neigh_kernel = self.neigh.kernel_hits;
        s.neigh_probes = self.neigh.probes;
        s
    }

    /// Teaches the resolver that `ip` is reachable at `mac` (as received frames do).
    pub fn learn_neighbour(&mut self, ip: std::net::IpAddr, mac: MacAddr) {
        #[allow(clippy::disallowed_methods)]
        // the datapath does I/O; neighbour entries age in real time
        self.neigh.learn(ip, mac, std::time::Instant::now());
    }
}

impl XdpQueue {
    /// Polls the socket (readable: the RX ring has frames; writable: the TX ring has room), the
    /// guard socket, and `waker` when given (cleared when it fired).
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: Option<&Waker>,
    ) -> io::Result<()> {
        let mut events = libc::POLLIN;
        if writable {
            events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd { fd: self.xsk.as_fd().as_raw_fd(), events, revents: 0 },
            libc::pollfd { fd: self.steering.guard.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd {
                fd: waker.map_or(-1, |w| w.as_fd().as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Round up so that a sub-millisecond timeout still sleeps instead of spinning.
        let ms = match timeout {
            None => -1,
            Some(d) => {
                libc::c_int::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `fds` is an array of three live pollfds for the duration of the call (a
        // negative fd is ignored by poll).
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if let Some(w) = waker {
            if fds[2].revents != 0 {
                w.reset();
            }
        }
        Ok(())
    }
}

impl Drop for XdpQueue {
    fn drop(&mut self) {
        self.steering.program.remove(self.config.queue_id);
    }
}

impl AsFd for XdpQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.xsk.as_fd()
    }
}

impl AsRawFd for XdpQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.xsk.as_fd().as_raw_fd()
    }
}

impl Queue for XdpQueue {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        if self.config.copy_payloads {
            self.tx_pool.take_tx()
        } else {
            self.lend_tx_frame()
        }
    }

    fn max_tx_buffer(&self) -> usize {
        if self.config.copy_payloads {
            self.tx_pool.buf_size()
        } else {
            self.max_payload_v4.max(self.max_payload_v6)
        }
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        self.transmit(batch)
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        self.receive(batch)
    }

    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
        self.poll(timeout, writable, None)
    }

    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &Waker,
    ) -> io::Result<()> {
        self.poll(timeout, writable, Some(waker))
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}
