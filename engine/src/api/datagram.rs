//! Unreliable datagrams (RFC 9221) on a [`Connection`] handle: send, receive (async,
//! blocking, or polled), and the size limit.
//!
//! Sending checks what the owner worker last published (whether both sides enabled DATAGRAM
//! frames, the largest payload) and posts the payload; the worker queues it in the
//! connection, whose send queue holds `TransportConfig::with_datagrams`'s `queue` datagrams
//! and drops the *oldest* when full. Received payloads wait in the connection's mailbox,
//! bounded the same way: when the application does not read, the oldest unread is dropped.
//! Both drops are counted in [`ConnectionStats::datagram_frames_dropped`] as returned by
//! [`Connection::stats`].
//!
//! [`ConnectionStats::datagram_frames_dropped`]: crate::connection::ConnectionStats

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;

use super::sync::block_on;
use super::Connection;
use crate::connection::DatagramError;
use crate::handoff::{ConnError, ConnOp};

impl Connection {
    /// The largest datagram payload [`Connection::send_datagram`] takes now; `None` when we
    /// or the peer did not enable DATAGRAM frames, or before the handshake completed.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.shared.mail.with(|m| m.datagram_max)
    }

    /// Sends `data` in a DATAGRAM frame: unreliable (it may be lost, and is never
    /// retransmitted), unordered with respect to streams. Returns at once.
    ///
    /// Refused with [`DatagramError::Disabled`] when this endpoint's transport configuration
    /// did not enable datagrams, [`DatagramError::UnsupportedByPeer`] when the peer did not
    /// advertise max_datagram_frame_size, [`DatagramError::TooLarge`] above
    /// [`Connection::max_datagram_size`], [`DatagramError::NotReady`] before the handshake
    /// completed, and [`DatagramError::Closed`] once the connection is closing.
    pub fn send_datagram(&self, data: Bytes) -> Result<(), DatagramError> {
        if self.shared.close.is_ended() || self.shared.close.is_requested() {
            return Err(DatagramError::Closed);
        }
        let (support, max) = self.shared.mail.with(|m| (m.datagram_support, m.datagram_max));
        match support {
            None | Some((true, None)) => return Err(DatagramError::NotReady),
            Some((false, _)) => return Err(DatagramError::Disabled),
            Some((true, Some(false))) => return Err(DatagramError::UnsupportedByPeer),
            Some((true, Some(true))) => {}
        }
        let max = max.ok_or(DatagramError::NotReady)?;
        if data.len() > max {
            return Err(DatagramError::TooLarge { max });
        }
        self.post(ConnOp::Datagram { data });
        Ok(())
    }

    /// The oldest received datagram not read yet, without waiting.
    pub fn try_read_datagram(&self) -> Option<Bytes> {
        self.shared.mail.with(|m| m.datagrams.pop_front())
    }

    /// The next received datagram: waits for one; fails once the connection ended and no
    /// unread datagram is left.
    pub async fn read_datagram(&self) -> Result<Bytes, ConnError> {
        let shared = self.shared.clone();
        poll_fn(move |cx| {
            shared.mail.poll(cx, |m| match m.datagrams.pop_front() {
                Some(d) => Some(Ok(d)),
                None => {
                    m.error.clone().map(Err).or_else(|| m.drained.then_some(Err(ConnError::Closed)))
                }
            })
        })
        .await
    }

    /// Blocking [`Connection::read_datagram`], giving up after `timeout`
    /// ([`ConnError::TimedOut`]).
    pub fn read_datagram_blocking(&self, timeout: Duration) -> Result<Bytes, ConnError> {
        block_on(self.read_datagram(), Some(timeout)).map_err(|_| ConnError::TimedOut)?
    }
}
