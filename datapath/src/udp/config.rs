//! [`UdpConfig`]: what to ask of the socket, validated when set.

use std::io;
use std::net::SocketAddr;

/// Default messages per `sendmmsg`/`recvmmsg` call (the batch size quinn-udp uses on Linux).
pub const DEFAULT_BATCH: usize = 32;

/// Most messages one `sendmmsg`/`recvmmsg` call may carry (the kernel's `UIO_MAXIOV`).
pub const MAX_BATCH: usize = 1024;

/// Default `SO_RCVBUF` / `SO_SNDBUF` request, in bytes (the kernel doubles it for bookkeeping
/// and caps it at `net.core.rmem_max` / `wmem_max` unless the process may force it).
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// Default number of transmit buffers in the pool.
pub const DEFAULT_TX_POOL: usize = 256;

/// Default number of receive buffers in the pool (two full receive batches).
pub const DEFAULT_RX_POOL: usize = 2 * DEFAULT_BATCH;

/// Largest UDP payload of one datagram: 65535 minus the 20-byte IPv4 and 8-byte UDP headers.
/// Also the kernel's cap on the total payload of one GSO send. IPv6 could carry 20 bytes more,
/// but a dual-stack socket may be talking IPv4, so every UDP queue uses the IPv4 figure.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Default [`UdpConfig::max_datagram_size`]: [`MAX_UDP_PAYLOAD`], so nothing that arrives is
/// truncated.
pub const DEFAULT_MAX_DATAGRAM: usize = MAX_UDP_PAYLOAD;

/// Size of a receive buffer when GRO is on: a coalesced train never exceeds 64 KiB.
pub const GRO_BUFFER_SIZE: usize = 65_536;

/// Most segments one GSO send may carry: the kernel's `UDP_MAX_SEGMENTS` has been 64 since GSO
/// appeared in 4.18 (recent kernels may allow more); 64 works on every kernel with GSO. A send
/// of more segments fails with `EINVAL`, so the queue splits longer trains itself.
pub const MAX_GSO_SEGMENTS: usize = 64;

/// How a [`crate::udp::UdpQueue`] is opened.
///
/// Every feature flag is a request: what the kernel refuses is reported in
/// [`crate::Capabilities::missing`], never an error. Build it with [`UdpConfig::new`] and the
/// setters; those that can be given a bad value validate it and return `io::Result`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    pub(crate) bind: SocketAddr,
    pub(crate) reuse_port: bool,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) send_buffer: Option<usize>,
    pub(crate) tx_batch: usize,
    pub(crate) rx_batch: usize,
    pub(crate) gso: bool,
    pub(crate) gro: bool,
    pub(crate) ecn: bool,
    pub(crate) pktinfo: bool,
    pub(crate) tx_pool: usize,
    pub(crate) rx_pool: usize,
    pub(crate) max_datagram: usize,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl UdpConfig {
    /// A configuration binding `bind` (IPv4 or IPv6; port 0 picks one) with every feature
    /// requested: GSO, GRO, ECN and pktinfo on, `SO_REUSEPORT` off, socket buffers of
    /// [`DEFAULT_SOCKET_BUFFER`], batches of [`DEFAULT_BATCH`], pools of [`DEFAULT_TX_POOL`] /
    /// [`DEFAULT_RX_POOL`] buffers. An IPv6 socket bound to `[::]` is dual-stack.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            reuse_port: false,
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
            tx_batch: DEFAULT_BATCH,
            rx_batch: DEFAULT_BATCH,
            gso: true,
            gro: true,
            ecn: true,
            pktinfo: true,
            tx_pool: DEFAULT_TX_POOL,
            rx_pool: DEFAULT_RX_POOL,
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        self.bind
    }

    /// Sets the address to bind.
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets `SO_REUSEPORT` (default off), so that several queues (one per worker) bind the same
    /// address and the kernel spreads flows across them by 4-tuple hash.
    pub fn with_reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Whether `SO_REUSEPORT` is requested.
    pub fn reuse_port(&self) -> bool {
        self.reuse_port
    }

    /// `SO_RCVBUF` request in bytes (default [`DEFAULT_SOCKET_BUFFER`]; `None` keeps the
    /// kernel's default). Larger absorbs longer bursts between receive calls at the cost of
    /// kernel memory and queueing delay. When the kernel caps it below the request the queue
    /// retries with `SO_RCVBUFFORCE` (privileged) and otherwise lists the shortfall in
    /// [`crate::Capabilities::missing`]. Must be in `1..=i32::MAX / 2`.
    pub fn with_recv_buffer(mut self, bytes: Option<usize>) -> io::Result<Self> {
        self.recv_buffer = check_sock_buf("recv", bytes)?;
        Ok(self)
    }

    /// `SO_SNDBUF` request in bytes (default [`DEFAULT_SOCKET_BUFFER`]; `None` keeps the
    /// kernel's default); same rules as [`UdpConfig::with_recv_buffer`].
    pub fn with_send_buffer(mut self, bytes: Option<usize>) -> io::Result<Self> {
        self.send_buffer = check_sock_buf("send", bytes)?;
        Ok(self)
    }

    /// Most messages per `sendmmsg` (default [`DEFAULT_BATCH`], `1..=`[`MAX_BATCH`]). One
    /// message is one datagram, or one GSO train when GSO is on. Larger means fewer system
    /// calls and more per-call scratch memory (about 400 bytes per message).
    pub fn with_tx_batch(mut self, messages: usize) -> io::Result<Self> {
        self.tx_batch = check_batch("tx", messages)?;
        Ok(self)
    }

    /// Most messages per `recvmmsg` (default [`DEFAULT_BATCH`], `1..=`[`MAX_BATCH`]); each
    /// needs a pool buffer armed for it. Larger means fewer system calls and more buffers held.
    pub fn with_rx_batch(mut self, messages: usize) -> io::Result<Self> {
        self.rx_batch = check_batch("rx", messages)?;
        Ok(self)
    }

    /// Requests transmit segmentation offload, `UDP_SEGMENT` (default on). Transmit buffers
    /// are then [`MAX_UDP_PAYLOAD`] bytes, enough for one GSO train.
    pub fn with_gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }

    /// Requests receive coalescing, `UDP_GRO` (default on). Receive buffers are then
    /// [`GRO_BUFFER_SIZE`] bytes so that any coalesced train fits.
    pub fn with_gro(mut self, on: bool) -> Self {
        self.gro = on;
        self
    }

    /// Requests ECN (default on): the TOS / traffic class of each received datagram is read
    /// (`IP_RECVTOS`, `IPV6_RECVTCLASS`) and [`crate::TxMeta::ecn`] is set on transmit. When off,
    /// received datagrams report `NotEct` and transmit ECN marks are not set.
    pub fn with_ecn(mut self, on: bool) -> Self {
        self.ecn = on;
        self
    }

    /// Requests the destination address of each received datagram (`IP_PKTINFO`,
    /// `IPV6_RECVPKTINFO`; default on), needed on wildcard-bound servers to answer from the
    /// address the client used. [`crate::TxMeta::src_ip`] is honoured either way.
    pub fn with_pktinfo(mut self, on: bool) -> Self {
        self.pktinfo = on;
        self
    }

    /// Number of transmit buffers (default [`DEFAULT_TX_POOL`], at least 1). Each is
    /// [`MAX_UDP_PAYLOAD`] bytes with GSO, [`UdpConfig::with_max_datagram_size`] bytes without;
    /// memory is only touched as buffers are written.
    pub fn with_tx_pool(mut self, buffers: usize) -> io::Result<Self> {
        if buffers == 0 {
            return Err(invalid("tx pool needs at least one buffer".into()));
        }
        self.tx_pool = buffers;
        Ok(self)
    }

    /// Number of receive buffers (default [`DEFAULT_RX_POOL`]); must be at least the receive
    /// batch when the queue is opened. Each is [`GRO_BUFFER_SIZE`] bytes with GRO,
    /// [`UdpConfig::with_max_datagram_size`] bytes without.
    pub fn with_rx_pool(mut self, buffers: usize) -> io::Result<Self> {
        if buffers == 0 {
            return Err(invalid("rx pool needs at least one buffer".into()));
        }
        self.rx_pool = buffers;
        Ok(self)
    }

    /// Largest single datagram payload in bytes (default [`DEFAULT_MAX_DATAGRAM`],
    /// `1..=`[`MAX_UDP_PAYLOAD`]): the buffer size when GSO (transmit) or GRO (receive) is off.
    /// A received datagram larger than this is truncated by the kernel, then dropped and
    /// counted in [`crate::QueueStats::rx_dropped`]. Lower it (1472 for a 1500-byte MTU) to
    /// save memory.
    pub fn with_max_datagram_size(mut self, bytes: usize) -> io::Result<Self> {
        if bytes == 0 || bytes > MAX_UDP_PAYLOAD {
            return Err(invalid(format!(
                "max datagram size {bytes} outside 1..={MAX_UDP_PAYLOAD}"
            )));
        }
        self.max_datagram = bytes;
        Ok(self)
    }

    /// Checks the settings that depend on each other (done again when a queue is opened).
    pub fn validate(&self) -> io::Result<()> {
        if self.rx_pool < self.rx_batch {
            return Err(invalid(format!(
                "rx pool of {} buffers cannot arm a receive batch of {}",
                self.rx_pool, self.rx_batch
            )));
        }
        Ok(())
    }
}

fn check_sock_buf(what: &str, bytes: Option<usize>) -> io::Result<Option<usize>> {
    match bytes {
        Some(b) if b == 0 || b > (i32::MAX / 2) as usize => {
            Err(invalid(format!("{what} socket buffer of {b} bytes outside 1..=i32::MAX/2")))
        }
        other => Ok(other),
    }
}

fn check_batch(what: &str, n: usize) -> io::Result<usize> {
    if n == 0 || n > MAX_BATCH {
        return Err(invalid(format!("{what} batch of {n} messages outside 1..={MAX_BATCH}")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> UdpConfig {
        UdpConfig::new("127.0.0.1:0".parse().unwrap())
    }

    #[test]
    fn setters_validate() {
        assert!(base().with_tx_batch(0).is_err());
        assert!(base().with_rx_batch(MAX_BATCH + 1).is_err());
        assert_eq!(base().with_rx_batch(MAX_BATCH).unwrap().rx_batch, MAX_BATCH);
        assert!(base().with_recv_buffer(Some(0)).is_err());
        assert!(base().with_send_buffer(Some(usize::MAX)).is_err());
        assert_eq!(base().with_recv_buffer(None).unwrap().recv_buffer, None);
        assert!(base().with_max_datagram_size(MAX_UDP_PAYLOAD + 1).is_err());
        assert!(base().with_max_datagram_size(0).is_err());
        assert!(base().with_tx_pool(0).is_err());
        assert!(base().with_rx_pool(0).is_err());
    }

    #[test]
    fn validate_checks_rx_pool_against_batch() {
        let c = base().with_rx_batch(64).unwrap().with_rx_pool(63).unwrap();
        assert_eq!(c.validate().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(base().validate().is_ok());
    }
}
