//! Ethernet II frames with at most one IEEE 802.1Q VLAN tag: checked view and repr.

use std::fmt;

use super::{get_array, get_u16, put, WireError};

/// Length of an untagged Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q / 802.1ad tag (TPID + TCI) inserted before the EtherType.
pub const VLAN_TAG_LEN: usize = 4;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit (I/G) is set: multicast or broadcast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (unicast) address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An EtherType (or, below 0x0600, an 802.3 length field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4 (`0x0800`).
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP (`0x0806`).
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag (`0x8100`).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IEEE 802.1ad service VLAN tag, "QinQ" (`0x88a8`).
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// IPv6 (`0x86dd`).
    pub const IPV6: EtherType = EtherType(0x86dd);

    /// Whether this value announces a VLAN tag (802.1Q or 802.1ad).
    pub fn is_vlan(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// A view of an Ethernet II frame in a buffer, with at most one VLAN tag.
///
/// [`EthernetFrame::new_checked`] makes sure the header, and the tag when the outer EtherType
/// announces one, fit in the buffer. No accessor panics, checked or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it (fields beyond its end read as 0).
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`EthernetFrame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the header (14 bytes, 18 with a VLAN tag) fits in the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), 0))
    }

    /// Source address.
    pub fn src(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), 6))
    }

    /// The EtherType field right after the addresses (a tag protocol identifier when tagged).
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), 12))
    }

    /// The Tag Control Information (PCP 3 bits, DEI 1 bit, VLAN id 12 bits) of the VLAN tag,
    /// if the frame is tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.outer_ethertype().is_vlan().then(|| get_u16(self.buffer.as_ref(), 14))
    }

    /// The EtherType of the payload: after the VLAN tag, if there is one. Still a VLAN value
    /// when tags are stacked ([`EthernetRepr::parse`] rejects that).
    pub fn ethertype(&self) -> EtherType {
        match self.vlan_tci() {
            Some(_) => EtherType(get_u16(self.buffer.as_ref(), 16)),
            None => self.outer_ethertype(),
        }
    }

    /// Header length: 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.outer_ethertype().is_vlan() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload after the header (empty when the buffer is shorter than the header).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst(&mut self, addr: MacAddr) {
        put(self.buffer.as_mut(), 0, &addr.0);
    }

    /// Sets the source address.
    pub fn set_src(&mut self, addr: MacAddr) {
        put(self.buffer.as_mut(), 6, &addr.0);
    }

    /// The payload after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        self.buffer.as_mut().get_mut(at..).unwrap_or(&mut [])
    }
}

/// The meaning of an Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// Tag Control Information of an 802.1Q tag (PCP 3 bits, DEI 1 bit, VLAN id 12 bits), or
    /// `None` for an untagged frame. Emitted with TPID `0x8100`; parsed from `0x8100` or
    /// `0x88a8`.
    pub vlan: Option<u16>,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parses a checked frame. Rejects stacked VLAN tags with [`WireError::StackedVlan`].
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self, WireError> {
        frame.check_len()?;
        let ethertype = frame.ethertype();
        if frame.vlan_tci().is_some() && ethertype.is_vlan() {
            return Err(WireError::StackedVlan);
        }
        Ok(EthernetRepr { dst: frame.dst(), src: frame.src(), vlan: frame.vlan_tci(), ethertype })
    }

    /// Length of the header this repr emits.
    pub fn header_len(&self) -> usize {
        match self.vlan {
            Some(_) => HEADER_LEN + VLAN_TAG_LEN,
            None => HEADER_LEN,
        }
    }

    /// Writes the header at the front of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.header_len();
        let out = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
        out[0..6].copy_from_slice(&self.dst.0);
        out[6..12].copy_from_slice(&self.src.0);
        let type_at = match self.vlan {
            Some(tci) => {
                out[12..14].copy_from_slice(&EtherType::VLAN.0.to_be_bytes());
                out[14..16].copy_from_slice(&tci.to_be_bytes());
                16
            }
            None => 12,
        };
        out[type_at..type_at + 2].copy_from_slice(&self.ethertype.0.to_be_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    const DST: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);

    #[test]
    fn untagged_round_trip() {
        let repr = EthernetRepr { dst: DST, src: SRC, vlan: None, ethertype: EtherType::IPV6 };
        let mut buf = [0u8; 20];
        assert_eq!(repr.emit(&mut buf), Ok(14));
        assert_eq!(&buf[..14], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
        assert_eq!(frame.payload().len(), 6);
    }

    #[test]
    fn vlan_tag_is_skipped() {
        let repr = EthernetRepr {
            dst: DST,
            src: SRC,
            vlan: Some(0x2064), // PCP 1, VLAN 100
            ethertype: EtherType::IPV4,
        };
        let mut buf = [0u8; 18];
        assert_eq!(repr.emit(&mut buf), Ok(18));
        assert_eq!(&buf[12..18], &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(frame.header_len(), 18);
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
        // A tag announced but cut off is a truncation, not a panic.
        assert_eq!(EthernetFrame::new_checked(&buf[..16]).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn stacked_tags_are_rejected() {
        let mut buf = [0u8; 22];
        buf[12..14].copy_from_slice(&[0x88, 0xa8]);
        buf[16..18].copy_from_slice(&[0x81, 0x00]);
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&frame), Err(WireError::StackedVlan));
    }

    #[test]
    fn short_buffers() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(), WireError::Truncated);
        let unchecked = EthernetFrame::new_unchecked(&[0xffu8; 3][..]);
        assert_eq!(unchecked.dst(), MacAddr::default());
        assert_eq!(unchecked.payload(), &[] as &[u8]);
        let repr = EthernetRepr { dst: DST, src: SRC, vlan: None, ethertype: EtherType::IPV4 };
        assert_eq!(repr.emit(&mut [0u8; 13]), Err(WireError::BufferTooSmall));
    }

    #[test]
    fn mac_display_and_kinds() {
        assert_eq!(SRC.to_string(), "02:00:00:00:00:01");
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(SRC.is_unicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
    }
}
