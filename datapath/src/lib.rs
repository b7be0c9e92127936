//! Peregrine datapaths: where packets meet the machine.
//!
//! Every syscall and every `unsafe` block of Peregrine lives in this crate. The engine drives a
//! [`Queue`] (one per worker) and never sees a socket.
//!
//! Layers:
//! - [`buffer`]: pooled packet buffers owned by a queue, lent to the engine for receive and
//!   transmit, with per-datagram metadata ([`RxMeta`], [`TxMeta`]).
//! - [`udp`]: UDP sockets with `sendmmsg`/`recvmmsg`, `UDP_SEGMENT` (GSO), `UDP_GRO`, ECN,
//!   `IP_PKTINFO` and `SO_REUSEPORT` (one socket per worker).
//! - [`uring`]: the same socket driven through io_uring: multishot `recvmsg` on a
//!   provided-buffer ring (received buffers lent to the engine without a copy), linked
//!   `sendmsg` / `sendmsg_zc` submissions with `UDP_SEGMENT`.
//! - [`loopback`]: raw datapath throughput over loopback, a sender and a receiver thread on the
//!   UDP or io_uring backend, every datagram verified (`peregrine datapath-bench`, benches).
//! - [`netns`]: moving a thread into a network namespace (privileged tests and benchmarks).
//! - [`require`]: tests that need root or a kernel feature skip loudly, or fail under
//!   `PEREGRINE_REQUIRE_ALL=1`.
//! - [`sim`]: a seeded, deterministic in-memory network on virtual time with delay, jitter, rate,
//!   loss, reordering, duplication, corruption, MTU, blackholes and address rebinding.
//! - [`fault`]: [`fault::FaultQueue`] wraps any queue and applies the simulated network's seeded
//!   link model (loss, reordering, duplication, corruption, delay) to its datagrams in real time.
//! - [`waker`]: an `eventfd` that wakes a worker sleeping in [`Queue::wait_with`].
//! - [`wire`]: stateless Ethernet/IPv4/IPv6/UDP header encode/decode and checksums (for AF_XDP).
//! - [`xdp`]: AF_XDP kernel bypass: UMEM and rings, a hand-assembled XDP program steering our UDP
//!   port to the socket, next-hop resolution over rtnetlink.
//!
//! # Buffer ownership
//!
//! A queue owns a pool of buffers. Receiving fills an [`RxBatch`] with buffers from the pool; the
//! engine may read and modify them in place (QUIC decrypts in place) until the next call to
//! [`Queue::recv`] with the same batch, which first hands the previous buffers back to the pool.
//! Transmitting starts with [`Queue::alloc_tx`]: the engine writes (and encrypts) its datagram, or a
//! GSO train of equal-sized segments, straight into that buffer, sets [`TxMeta`], and pushes it into
//! a [`TxBatch`]. [`Queue::send`] transmits from the front of the batch and hands each sent buffer
//! back to the pool; buffers that could not be sent yet (the socket is full) stay in the batch, in
//! order, for the next call. No datagram is copied between the engine and the queue except where
//! the backend itself must copy (the kernel's socket path; the kernel's side of AF_XDP copy
//! mode). On AF_XDP the buffers are UMEM frames themselves ([`PoolBuf`] is then a lease of
//! one frame), so user space copies no payload there either.

#![warn(missing_docs)]

pub mod alloc_count;
pub mod buffer;
pub mod fault;
pub mod loopback;
pub mod netns;
pub mod require;
pub mod sim;
pub mod udp;
pub mod uring;
pub mod waker;
pub mod wire;
pub mod xdp;

pub use buffer::{
    BufferPool, Ecn, PoolBuf, PoolTracker, RxBatch, RxDatagram, RxMeta, TxBatch, TxBuffer, TxMeta,
};
pub use waker::Waker;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest sleep of the default [`Queue::wait_with`], which cannot watch its [`Waker`].
pub const DEFAULT_WAKE_SLICE: Duration = Duration::from_millis(1);

/// What a queue can do on this machine, as found when it was opened.
///
/// A backend never silently does less than it reports: each feature it asked for and did not get
/// is listed in [`Capabilities::missing`] with the reason, so the CLI can print it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Transmit segmentation offload: one buffer of equal-sized segments goes out as many
    /// datagrams ([`TxMeta::segment_size`]).
    pub gso: bool,
    /// Largest number of segments in one GSO transmit (1 when `gso` is false).
    pub max_gso_segments: usize,
    /// Receive coalescing: one received buffer may hold several datagrams of
    /// [`RxMeta::segment_size`] bytes each.
    pub gro: bool,
    /// ECN codepoints are set on transmit and read on receive.
    pub ecn: bool,
    /// The local (destination) address of each received datagram is known
    /// ([`RxMeta::dst_ip`]), and the source address of each transmit can be chosen.
    pub pktinfo: bool,
    /// The kernel moves buffers to and from the NIC without a copy (AF_XDP bound with
    /// `XDP_ZEROCOPY`). False in copy mode, where the kernel copies between the UMEM and its
    /// `sk_buff`s, even when user space copies nothing (see [`xdp`]).
    pub zero_copy: bool,
    /// The queue can send to and receive from IPv6 peers.
    pub ipv6: bool,
    /// Largest UDP payload the queue can carry in one datagram (path MTU limits still apply).
    pub max_udp_payload: usize,
    /// Which queue of a group receives a datagram is picked by its addresses and ports (a
    /// NIC's RSS hash, the queue an AF_XDP socket is bound to), not by its connection ID: a
    /// client's datagrams keep arriving on one queue while its addresses stay. The engine then
    /// lets the worker of the queue a new client's first datagram arrived on own the
    /// connection. False where the queue group steers by connection ID (UDP and io_uring).
    pub flow_steered: bool,
    /// Features requested but unavailable, each with the reason (for reports, never hidden).
    pub missing: Vec<String>,
}

/// Counters every queue keeps (monotonic since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Datagrams handed to the kernel or the network (each GSO segment counts once).
    pub tx_datagrams: u64,
    /// Payload bytes transmitted.
    pub tx_bytes: u64,
    /// Transmit system calls (or ring submissions) made.
    pub tx_calls: u64,
    /// Datagrams dropped on transmit because of a per-datagram error (unreachable, too big, ...).
    pub tx_errors: u64,
    /// Datagrams received (each GRO segment counts once).
    pub rx_datagrams: u64,
    /// Payload bytes received.
    pub rx_bytes: u64,
    /// Receive system calls (or ring polls) made.
    pub rx_calls: u64,
    /// Received datagrams dropped because they were truncated or malformed.
    pub rx_dropped: u64,
    /// Received datagrams accepted with a partial UDP checksum (only the pseudo-header sum, as
    /// a veth peer's kernel leaves it for an offload to finish; QUIC's AEAD authenticates the
    /// payload). AF_XDP only; the kernel's stack handles these itself for the other backends.
    pub rx_csum_partial: u64,
    /// Received frames dropped because a checksum failed (the IPv4 header's, or a UDP checksum
    /// that is neither full nor partial). Part of `rx_dropped`. AF_XDP only.
    pub rx_bad_checksum: u64,
    /// Received frames for our port dropped as malformed or unsupported (bad lengths, an IP
    /// fragment, stacked VLAN tags, IPv6 extension headers not handled). Part of `rx_dropped`.
    /// AF_XDP only.
    pub rx_malformed: u64,
}

/// One worker's view of a datapath: a socket, a NIC queue pair, or a port on the simulated
/// network.
///
/// A queue is used by one thread at a time (it is `Send`, not shared).
pub trait Queue: Send {
    /// What this queue can do.
    fn capabilities(&self) -> &Capabilities;

    /// The local address this queue is bound to.
    fn local_addr(&self) -> SocketAddr;

    /// Takes an empty transmit buffer from the pool, or `None` when every buffer is in flight
    /// (back-pressure: send what is batched first). Its capacity is at least
    /// [`Queue::max_tx_buffer`].
    fn alloc_tx(&mut self) -> Option<TxBuffer>;

    /// Capacity of a transmit buffer: one datagram, or a whole GSO train when GSO is on.
    fn max_tx_buffer(&self) -> usize;

    /// Transmits datagrams from the front of `batch`, in order, returning how many buffers left
    /// the batch. Sent buffers go back to the pool. A buffer whose send failed for a reason tied
    /// to that datagram (unreachable peer, message too long) is dropped and counted in
    /// [`QueueStats::tx_errors`]; only errors of the queue itself are returned. When the
    /// backend is full, the rest stays in the batch and `Ok` is returned with the count so far.
    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize>;

    /// Receives what is ready, without waiting, into `batch` (up to its capacity), first returning
    /// the buffers it held to the pool. Returns the number of received buffers (0 when nothing is
    /// ready); a GRO buffer counts once and may hold several datagrams.
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize>;

    /// Blocks until the queue may be readable (or writable, when `writable` is set), or until
    /// `timeout` passes. Spurious wake-ups are allowed. Simulated queues return at once.
    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()>;

    /// Like [`Queue::wait`], but also returns as soon as `waker` is woken from another thread
    /// (a worker sleeping until its next timer, woken by an application command).
    ///
    /// The default implementation cannot watch the waker: it waits at most
    /// [`DEFAULT_WAKE_SLICE`] at a time, so a wake is noticed within that slice. Backends with
    /// a pollable descriptor override it to wake at once.
    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &Waker,
    ) -> io::Result<()> {
        let _ = waker;
        let slice = timeout.map_or(DEFAULT_WAKE_SLICE, |t| t.min(DEFAULT_WAKE_SLICE));
        self.wait(Some(slice), writable)
    }

    /// Counters since the queue was opened.
    fn stats(&self) -> QueueStats;

    /// Moves the queue to a new local address (a client migrating its connections, RFC 9000
    /// §9.2): a new socket bound to `local` (port 0: an ephemeral one) replaces the old one,
    /// which is closed; returns the address bound. Datagrams still in flight to the old
    /// address are lost. The default refuses (`Unsupported`): only the UDP socket backend
    /// can rebind.
    fn rebind(&mut self, local: SocketAddr) -> io::Result<SocketAddr> {
        let _ = local;
        Err(io::Error::new(io::ErrorKind::Unsupported, "this datapath cannot rebind"))
    }
}
