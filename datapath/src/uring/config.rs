//! [`UringConfig`]: the UDP socket settings plus the io_uring ones, validated when set.

use std::io;
use std::net::SocketAddr;

use crate::udp::{UdpConfig, GRO_BUFFER_SIZE};

/// Default submission-queue size of the ring (the completion queue is sized from it and from
/// the buffer ring, see [`UringConfig::with_ring_entries`]).
pub const DEFAULT_RING_ENTRIES: u32 = 256;

/// Smallest submission queue accepted.
pub const MIN_RING_ENTRIES: u32 = 8;

/// Largest submission queue accepted (the kernel's `IORING_MAX_ENTRIES`).
pub const MAX_RING_ENTRIES: u32 = 32_768;

/// Default number of buffers in the provided-buffer ring (128 × 64 KiB = 8 MiB with GRO on).
pub const DEFAULT_BUF_RING_ENTRIES: u16 = 128;

/// Largest provided-buffer ring the kernel accepts.
pub const MAX_BUF_RING_ENTRIES: u16 = 32_768;

/// Bytes at the front of every provided receive buffer that hold what the kernel writes before
/// the payload: the 16-byte `io_uring_recvmsg_out` header, [`RECV_NAME_LEN`] bytes of source
/// address and [`RECV_CONTROL_LEN`] bytes of control messages. The payload starts after them
/// (a 256-byte, cache-line aligned offset).
pub const RECV_HEADER_ROOM: usize = 256;

/// Room for the source address in a received buffer (a `sockaddr_in6` is 28 bytes).
pub const RECV_NAME_LEN: usize = 32;

/// Room for control messages in a received buffer (`UDP_GRO`, TOS / traffic class and
/// pktinfo need at most 88 bytes; the rest is margin against `MSG_CTRUNC`).
pub const RECV_CONTROL_LEN: usize = RECV_HEADER_ROOM - RECV_NAME_LEN - 16;

/// How a [`crate::uring::UringQueue`] is opened.
///
/// The socket part (bind address, `SO_REUSEPORT`, socket buffers, GSO / GRO / ECN / pktinfo,
/// batch sizes, pools, largest datagram) is a [`UdpConfig`], set up exactly as the UDP backend
/// does; the delegating setters below cover the common ones and [`UringConfig::from_udp`]
/// takes a whole one. Every feature flag is a request: what the kernel refuses is listed in
/// [`crate::Capabilities::missing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UringConfig {
    pub(crate) udp: UdpConfig,
    pub(crate) ring_entries: u32,
    pub(crate) buf_ring_entries: u16,
    pub(crate) send_zc: bool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl UringConfig {
    /// A configuration binding `bind` with the UDP backend's defaults ([`UdpConfig::new`]:
    /// GSO, GRO, ECN and pktinfo requested, 4 MiB socket buffers, batches of 32), a ring of
    /// [`DEFAULT_RING_ENTRIES`], a buffer ring of [`DEFAULT_BUF_RING_ENTRIES`] and
    /// `SEND_ZC` off.
    pub fn new(bind: SocketAddr) -> Self {
        Self::from_udp(UdpConfig::new(bind))
    }

    /// The io_uring defaults on top of a whole socket configuration.
    pub fn from_udp(udp: UdpConfig) -> Self {
        Self {
            udp,
            ring_entries: DEFAULT_RING_ENTRIES,
            buf_ring_entries: DEFAULT_BUF_RING_ENTRIES,
            send_zc: false,
        }
    }

    /// The socket part.
    pub fn udp(&self) -> &UdpConfig {
        &self.udp
    }

    /// Replaces the socket part.
    pub fn with_udp(mut self, udp: UdpConfig) -> Self {
        self.udp = udp;
        self
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        self.udp.bind_addr()
    }

    /// Sets the address to bind (IPv4 or IPv6; port 0 picks one).
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.udp = self.udp.with_bind(bind);
        self
    }

    /// Sets `SO_REUSEPORT` (default off): see [`UdpConfig::with_reuse_port`].
    pub fn with_reuse_port(mut self, on: bool) -> Self {
        self.udp = self.udp.with_reuse_port(on);
        self
    }

    /// Requests GSO, `UDP_SEGMENT` (default on): see [`UdpConfig::with_gso`].
    pub fn with_gso(mut self, on: bool) -> Self {
        self.udp = self.udp.with_gso(on);
        self
    }

    /// Requests GRO, `UDP_GRO` (default on): see [`UdpConfig::with_gro`]. With GRO on every
    /// provided buffer holds [`GRO_BUFFER_SIZE`] payload bytes (a coalesced train never exceeds
    /// 64 KiB); with it off, [`UdpConfig::with_max_datagram_size`] bytes.
    pub fn with_gro(mut self, on: bool) -> Self {
        self.udp = self.udp.with_gro(on);
        self
    }

    /// Requests ECN marks on transmit and receive (default on): see [`UdpConfig::with_ecn`].
    pub fn with_ecn(mut self, on: bool) -> Self {
        self.udp = self.udp.with_ecn(on);
        self
    }

    /// Requests `IP_PKTINFO` / `IPV6_RECVPKTINFO` (default on): see
    /// [`UdpConfig::with_pktinfo`].
    pub fn with_pktinfo(mut self, on: bool) -> Self {
        self.udp = self.udp.with_pktinfo(on);
        self
    }

    /// `SO_RCVBUF` request (default 4 MiB, [`crate::udp::DEFAULT_SOCKET_BUFFER`]): what the
    /// socket holds while the buffer ring is empty, so bursts between two `recv` calls are not
    /// dropped. See [`UdpConfig::with_recv_buffer`].
    pub fn with_recv_buffer(mut self, bytes: Option<usize>) -> io::Result<Self> {
        self.udp = self.udp.with_recv_buffer(bytes)?;
        Ok(self)
    }

    /// `SO_SNDBUF` request: see [`UdpConfig::with_send_buffer`].
    pub fn with_send_buffer(mut self, bytes: Option<usize>) -> io::Result<Self> {
        self.udp = self.udp.with_send_buffer(bytes)?;
        Ok(self)
    }

    /// Most send SQEs per submission (default 32, `1..=1024`): one SQE is one datagram or one
    /// GSO train, and one `send` call submits up to this many with one `io_uring_enter`. See
    /// [`UdpConfig::with_tx_batch`].
    pub fn with_tx_batch(mut self, messages: usize) -> io::Result<Self> {
        self.udp = self.udp.with_tx_batch(messages)?;
        Ok(self)
    }

    /// Largest single datagram payload (default 65507): the receive buffer size when GRO is
    /// off. See [`UdpConfig::with_max_datagram_size`].
    pub fn with_max_datagram_size(mut self, bytes: usize) -> io::Result<Self> {
        self.udp = self.udp.with_max_datagram_size(bytes)?;
        Ok(self)
    }

    /// Submission-queue entries (default [`DEFAULT_RING_ENTRIES`],
    /// [`MIN_RING_ENTRIES`]`..=`[`MAX_RING_ENTRIES`]; the kernel rounds up to a power of two).
    /// It must hold one transmit batch plus a few control entries, checked by
    /// [`UringConfig::validate`]. The completion queue gets twice this, or more when the
    /// buffer ring needs it, so completions never overflow. About 64 bytes per SQE and 32 per
    /// CQE of locked memory.
    pub fn with_ring_entries(mut self, entries: u32) -> io::Result<Self> {
        if !(MIN_RING_ENTRIES..=MAX_RING_ENTRIES).contains(&entries) {
            return Err(invalid(format!(
                "ring entries {entries} outside {MIN_RING_ENTRIES}..={MAX_RING_ENTRIES}"
            )));
        }
        self.ring_entries = entries;
        Ok(self)
    }

    /// Buffers in the provided-buffer ring the multishot receive fills (default
    /// [`DEFAULT_BUF_RING_ENTRIES`]; a power of two in `1..=`[`MAX_BUF_RING_ENTRIES`]). Each
    /// is [`UringConfig::rx_buffer_size`] bytes, so this is the memory trade-off: more buffers
    /// absorb longer bursts before the multishot receive runs dry (`ENOBUFS`, then re-armed;
    /// the datagrams wait in the socket buffer meanwhile, not dropped).
    pub fn with_buf_ring_entries(mut self, entries: u16) -> io::Result<Self> {
        if entries == 0 || !entries.is_power_of_two() || entries > MAX_BUF_RING_ENTRIES {
            let max = MAX_BUF_RING_ENTRIES;
            return Err(invalid(format!(
                "buffer ring of {entries} entries is not a power of two in 1..={max}"
            )));
        }
        self.buf_ring_entries = entries;
        Ok(self)
    }

    /// Requests zero-copy transmit with `IORING_OP_SENDMSG_ZC` (default off). The kernel pins
    /// the buffer pages instead of copying them and posts a notification when it is done with
    /// them (on a NIC, after the device's transmit completion); until then the queue does not
    /// lend that buffer again, so more buffers are in use and the transmit pool may need to be
    /// larger. It pays off for large GSO trains to a real NIC; on loopback the kernel copies
    /// anyway, and zero-copy datagrams take more receive-buffer memory there.
    pub fn with_send_zc(mut self, on: bool) -> Self {
        self.send_zc = on;
        self
    }

    /// Whether `SEND_ZC` is requested.
    pub fn send_zc(&self) -> bool {
        self.send_zc
    }

    /// Payload bytes of each provided receive buffer when GRO is on or off (each buffer is
    /// [`RECV_HEADER_ROOM`] bytes larger).
    pub fn rx_buffer_size(&self, gro: bool) -> usize {
        if gro {
            GRO_BUFFER_SIZE
        } else {
            self.udp.max_datagram
        }
    }

    /// Checks the settings that depend on each other (done again when a queue is opened).
    pub fn validate(&self) -> io::Result<()> {
        self.udp.validate()?;
        let need = self.udp.tx_batch + 4;
        if (self.ring_entries as usize) < need {
            return Err(invalid(format!(
                "ring of {} entries cannot hold a transmit batch of {} plus control entries",
                self.ring_entries, self.udp.tx_batch
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> UringConfig {
        UringConfig::new("127.0.0.1:0".parse().unwrap())
    }

    #[test]
    fn setters_validate() {
        assert!(base().with_ring_entries(MIN_RING_ENTRIES - 1).is_err());
        assert!(base().with_ring_entries(MAX_RING_ENTRIES + 1).is_err());
        assert!(base().with_buf_ring_entries(0).is_err());
        assert!(base().with_buf_ring_entries(100).is_err(), "not a power of two");
        assert_eq!(base().with_buf_ring_entries(64).unwrap().buf_ring_entries, 64);
        assert!(base().with_tx_batch(0).is_err(), "delegated validation");
        assert!(base().validate().is_ok());
        let small = base().with_ring_entries(16).unwrap().with_tx_batch(32).unwrap();
        assert_eq!(small.validate().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(RECV_CONTROL_LEN, 208);
    }

    #[test]
    fn buffer_size_follows_gro() {
        let c = base().with_max_datagram_size(1500).unwrap();
        assert_eq!(c.rx_buffer_size(true), GRO_BUFFER_SIZE);
        assert_eq!(c.rx_buffer_size(false), 1500);
    }
}
