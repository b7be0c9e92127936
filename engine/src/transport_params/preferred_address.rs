//! The preferred_address transport parameter (RFC 9000 §18.2, Figure 22).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::tpe;
use crate::cid::{ConnectionId, ResetToken};
use crate::coding::{BufferFull, Reader, Writer};
use crate::error::Error;

/// A server's preferred address, with the connection ID (sequence number 1) and reset token to
/// use on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreferredAddress {
    /// The IPv4 address and port; `None` is sent as 0.0.0.0:0.
    pub ipv4: Option<SocketAddrV4>,
    /// The IPv6 address and port; `None` is sent as [::]:0.
    pub ipv6: Option<SocketAddrV6>,
    /// The connection ID to use (never empty).
    pub connection_id: ConnectionId,
    /// The stateless reset token for `connection_id`.
    pub stateless_reset_token: ResetToken,
}

impl PreferredAddress {
    /// Length of the encoded value.
    pub fn encoded_len(&self) -> usize {
        4 + 2 + 16 + 2 + 1 + self.connection_id.len() + 16
    }

    /// Writes the value (without identifier and length).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# Servers MAY choose to only send a preferred address
        //# of one address family by sending an all-zero address and port
        //# (0.0.0.0:0 or [::]:0) for the other family.
        let v4 = self.ipv4.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let v6 = self.ipv6.unwrap_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
        w.put_slice(&v4.ip().octets())?;
        w.put_u16(v4.port())?;
        w.put_slice(&v6.ip().octets())?;
        w.put_u16(v6.port())?;
        w.put_u8(self.connection_id.len() as u8)?;
        w.put_slice(&self.connection_id)?;
        w.put_slice(&self.stateless_reset_token.0)
    }

    /// Parses the value of a preferred_address parameter.
    pub fn decode(value: &[u8]) -> Result<Self, Error> {
        let bad = |_| tpe("preferred_address length mismatch");
        let mut r = Reader::new(value);
        let ip4 = Ipv4Addr::from(r.array::<4>().map_err(bad)?);
        let port4 = r.u16().map_err(bad)?;
        let ip6 = Ipv6Addr::from(r.array::<16>().map_err(bad)?);
        let port6 = r.u16().map_err(bad)?;
        let cid_len = r.u8().map_err(bad)?;
        let cid = r.bytes(usize::from(cid_len)).map_err(bad)?;
        let connection_id = ConnectionId::new(cid)
            .map_err(|_| tpe("preferred_address connection ID over 20 bytes"))?;
        let token = r.array::<16>().map_err(bad)?;
        if !r.is_empty() {
            return Err(tpe("preferred_address length mismatch"));
        }
        let ipv4 = (!ip4.is_unspecified() || port4 != 0).then(|| SocketAddrV4::new(ip4, port4));
        let ipv6 =
            (!ip6.is_unspecified() || port6 != 0).then(|| SocketAddrV6::new(ip6, port6, 0, 0));
        let pa = Self { ipv4, ipv6, connection_id, stateless_reset_token: ResetToken(token) };
        pa.validate()?;
        Ok(pa)
    }

    /// Checks the connection ID is not empty.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
    //# Similarly, a server MUST NOT include a zero-
    //# length connection ID in this transport parameter.  A client MUST
    //# treat a violation of these requirements as a connection error of
    //# type TRANSPORT_PARAMETER_ERROR.
    pub fn validate(&self) -> Result<(), Error> {
        if self.connection_id.is_empty() {
            return Err(tpe("preferred_address with a zero-length connection ID"));
        }
        Ok(())
    }
}
