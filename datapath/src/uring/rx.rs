//! Reading what the multishot `recvmsg` wrote into a provided buffer.
//!
//! Layout (`struct io_uring_recvmsg_out` then the fixed-size fields the armed `msghdr` asked
//! for): `u32 namelen, controllen, payloadlen, flags` (16 bytes), [`RECV_NAME_LEN`] bytes of
//! source address, [`RECV_CONTROL_LEN`] bytes of control messages, then the payload at
//! [`RECV_HEADER_ROOM`]. `namelen`, `controllen` and `payloadlen` are what the datagram had;
//! a larger value than the room means it was cut (the kernel then also sets `MSG_TRUNC` /
//! `MSG_CTRUNC` in `flags`). Everything is read as bytes, bounds-checked, without pointer casts.

use std::net::SocketAddr;

use super::config::{RECV_CONTROL_LEN, RECV_HEADER_ROOM, RECV_NAME_LEN};
use crate::udp::addr;
use crate::udp::cmsg::{self, RxControl};

const OUT_HDR: usize = 16;
const _: () = assert!(OUT_HDR + RECV_NAME_LEN + RECV_CONTROL_LEN == RECV_HEADER_ROOM);

/// One parsed receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Payload bytes present in the buffer, starting at [`RECV_HEADER_ROOM`].
    pub(crate) payload_len: usize,
    /// Data or control messages were cut (the datagram cannot be trusted whole).
    pub(crate) truncated: bool,
    pub(crate) src: Option<SocketAddr>,
    pub(crate) control: RxControl,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the first `written` bytes (the CQE's result) of a provided buffer `buf` (its whole
/// length, header room included). `None` when the kernel wrote less than a header.
pub(crate) fn parse(buf: &[u8], written: usize) -> Option<Parsed> {
    let w = buf.get(..written.min(buf.len()))?;
    if w.len() < RECV_HEADER_ROOM {
        return None;
    }
    let namelen = u32_at(w, 0)? as usize;
    let controllen = u32_at(w, 4)? as usize;
    let payloadlen = u32_at(w, 8)? as usize;
    let flags = u32_at(w, 12)? as libc::c_int;
    let present = w.len() - RECV_HEADER_ROOM;
    let truncated = flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0
        || payloadlen > present
        || controllen > RECV_CONTROL_LEN;
    let name = &w[OUT_HDR..OUT_HDR + namelen.min(RECV_NAME_LEN)];
    let mut storage = addr::zeroed_storage();
    let src = {
        let n = name.len().min(std::mem::size_of::<libc::sockaddr_storage>());
        // Copy the (unaligned) name bytes into an aligned sockaddr_storage, byte by byte
        // through a byte view of it.
        storage_bytes(&mut storage)[..n].copy_from_slice(&name[..n]);
        addr::decode(&storage, n as libc::socklen_t)
    };
    let ctrl_start = OUT_HDR + RECV_NAME_LEN;
    let ctrl = &w[ctrl_start..ctrl_start + RECV_CONTROL_LEN];
    let control = cmsg::decode_rx(ctrl, controllen.min(RECV_CONTROL_LEN));
    Some(Parsed { payload_len: payloadlen.min(present), truncated, src, control })
}

/// A `sockaddr_storage` as writable bytes.
fn storage_bytes(s: &mut libc::sockaddr_storage) -> &mut [u8] {
    // SAFETY: sockaddr_storage is plain integers and padding with no invalid bit patterns;
    // the slice covers exactly its size and borrows it mutably for its lifetime.
    unsafe {
        std::slice::from_raw_parts_mut(
            std::ptr::from_mut(s).cast::<u8>(),
            std::mem::size_of::<libc::sockaddr_storage>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::cmsg::Encoder;

    /// Builds what the kernel would write for one datagram.
    fn fake(src: &str, payload: &[u8], flags: i32, gro: Option<u16>) -> Vec<u8> {
        let mut b = vec![0u8; RECV_HEADER_ROOM + payload.len()];
        let mut st = addr::zeroed_storage();
        let sa: SocketAddr = src.parse().unwrap();
        let nl = addr::encode(&sa, sa.is_ipv6(), &mut st).unwrap() as usize;
        b[OUT_HDR..OUT_HDR + nl].copy_from_slice(&storage_bytes(&mut st)[..nl]);
        let mut ctrl = [0u8; RECV_CONTROL_LEN];
        let mut e = Encoder::new(&mut ctrl);
        if let Some(g) = gro {
            assert!(e.push(libc::SOL_UDP, libc::UDP_GRO, &i32::from(g).to_ne_bytes()));
        }
        assert!(e.push(libc::IPPROTO_IP, libc::IP_TOS, &[0b10]));
        let cl = e.len();
        b[OUT_HDR + RECV_NAME_LEN..RECV_HEADER_ROOM].copy_from_slice(&ctrl);
        for (i, v) in [nl as u32, cl as u32, payload.len() as u32, flags as u32].iter().enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b[RECV_HEADER_ROOM..].copy_from_slice(payload);
        b
    }

    #[test]
    fn parses_name_control_and_payload() {
        let b = fake("10.0.0.7:4433", &[7; 3000], 0, Some(1200));
        let p = parse(&b, b.len()).unwrap();
        assert_eq!(p.src, Some("10.0.0.7:4433".parse().unwrap()));
        assert_eq!(p.payload_len, 3000);
        assert!(!p.truncated);
        assert_eq!(p.control.gro_segment, Some(1200));
        assert_eq!(p.control.tos, Some(0b10));
        let v6 = fake("[::1]:9", &[], 0, None);
        let p = parse(&v6, v6.len()).unwrap();
        assert_eq!((p.src, p.payload_len), (Some("[::1]:9".parse().unwrap()), 0));
    }

    #[test]
    fn truncation_and_short_writes() {
        let b = fake("10.0.0.7:1", &[1; 100], libc::MSG_TRUNC, None);
        assert!(parse(&b, b.len()).unwrap().truncated);
        let mut b = fake("10.0.0.7:1", &[1; 100], 0, None);
        b[8..12].copy_from_slice(&500u32.to_ne_bytes()); // claims more than was written
        let p = parse(&b, b.len()).unwrap();
        assert!(p.truncated);
        assert_eq!(p.payload_len, 100);
        assert_eq!(parse(&b, RECV_HEADER_ROOM - 1), None, "less than a header");
        assert_eq!(parse(&[], 0), None);
        // Garbage never panics.
        let junk = vec![0xffu8; RECV_HEADER_ROOM + 10];
        let p = parse(&junk, junk.len()).unwrap();
        assert!(p.truncated && p.src.is_none());
    }
}
