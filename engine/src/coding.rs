//! Bounds-checked readers and writers over byte slices: peer input never panics a decoder.

use crate::varint;

/// The input ended before a field was complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnexpectedEnd;

impl std::fmt::Display for UnexpectedEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unexpected end of input")
    }
}

impl std::error::Error for UnexpectedEnd {}

/// The output buffer has no room for the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferFull;

impl std::fmt::Display for BufferFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output buffer full")
    }
}

impl std::error::Error for BufferFull {}

/// A cursor over peer input. Every read checks the length first and fails with
/// [`UnexpectedEnd`] instead of panicking.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Consumes and returns every unread byte.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.pos..];
        self.pos = self.buf.len();
        r
    }

    /// Consumes `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], UnexpectedEnd> {
        let end = self.pos.checked_add(n).ok_or(UnexpectedEnd)?;
        let s = self.buf.get(self.pos..end).ok_or(UnexpectedEnd)?;
        self.pos = end;
        Ok(s)
    }

    /// Consumes `N` bytes into an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], UnexpectedEnd> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), UnexpectedEnd> {
        self.bytes(n).map(|_| ())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, UnexpectedEnd> {
        Ok(self.array::<1>()?[0])
    }

    /// Big-endian u16.
    pub fn u16(&mut self) -> Result<u16, UnexpectedEnd> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Big-endian u32.
    pub fn u32(&mut self) -> Result<u32, UnexpectedEnd> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Big-endian u64.
    pub fn u64(&mut self) -> Result<u64, UnexpectedEnd> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A QUIC variable-length integer.
    pub fn varint(&mut self) -> Result<u64, UnexpectedEnd> {
        let (v, n) = varint::decode(self.peek_rest()).ok_or(UnexpectedEnd)?;
        self.pos += n;
        Ok(v)
    }

    /// A variable-length integer length prefix followed by that many bytes.
    pub fn varint_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| UnexpectedEnd)?;
        self.bytes(n)
    }
}

/// A cursor writing into a fixed buffer (a datapath-owned transmit buffer). Every write checks
/// the room first and fails with [`BufferFull`], leaving earlier writes in place.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The written bytes.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    /// The written bytes, mutable (to patch a length field or protect a header).
    pub fn written_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.pos]
    }

    /// Ends writing, returning the written part of the buffer.
    pub fn finish(self) -> &'a mut [u8] {
        let pos = self.pos;
        &mut self.buf[..pos]
    }

    /// Reserves `n` bytes (left as they are) and returns them for the caller to fill in.
    pub fn reserve(&mut self, n: usize) -> Result<&mut [u8], BufferFull> {
        let end = self.pos.checked_add(n).ok_or(BufferFull)?;
        if end > self.buf.len() {
            return Err(BufferFull);
        }
        let start = self.pos;
        self.pos = end;
        Ok(&mut self.buf[start..end])
    }

    /// Writes bytes.
    pub fn put_slice(&mut self, s: &[u8]) -> Result<(), BufferFull> {
        self.reserve(s.len())?.copy_from_slice(s);
        Ok(())
    }

    /// Writes one byte.
    pub fn put_u8(&mut self, v: u8) -> Result<(), BufferFull> {
        self.put_slice(&[v])
    }

    /// Writes a big-endian u16.
    pub fn put_u16(&mut self, v: u16) -> Result<(), BufferFull> {
        self.put_slice(&v.to_be_bytes())
    }

    /// Writes a big-endian u32.
    pub fn put_u32(&mut self, v: u32) -> Result<(), BufferFull> {
        self.put_slice(&v.to_be_bytes())
    }

    /// Writes a big-endian u64.
    pub fn put_u64(&mut self, v: u64) -> Result<(), BufferFull> {
        self.put_slice(&v.to_be_bytes())
    }

    /// Writes a variable-length integer in its shortest form. Values above 2^62-1 are a caller
    /// bug and fail with [`BufferFull`] as well (nothing is written).
    pub fn put_varint(&mut self, v: u64) -> Result<(), BufferFull> {
        let n = varint::encode(v, &mut self.buf[self.pos..]).ok_or(BufferFull)?;
        self.pos += n;
        Ok(())
    }

    /// Writes a variable-length integer in exactly `n` bytes.
    pub fn put_varint_sized(&mut self, v: u64, n: usize) -> Result<(), BufferFull> {
        let n = varint::encode_with_size(v, n, &mut self.buf[self.pos..]).ok_or(BufferFull)?;
        self.pos += n;
        Ok(())
    }

    /// Writes a variable-length length prefix followed by `s`.
    pub fn put_varint_prefixed(&mut self, s: &[u8]) -> Result<(), BufferFull> {
        let need = varint::size(s.len() as u64) + s.len();
        if need > self.remaining() {
            return Err(BufferFull);
        }
        self.put_varint(s.len() as u64)?;
        self.put_slice(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_checks_every_length() {
        let mut r = Reader::new(&[0x40, 0x05, 1, 2, 3, 4, 5, 9]);
        assert_eq!(r.varint(), Ok(5));
        assert_eq!(r.bytes(5), Ok(&[1, 2, 3, 4, 5][..]));
        assert_eq!(r.u16(), Err(UnexpectedEnd));
        assert_eq!(r.u8(), Ok(9));
        assert!(r.is_empty());
        assert_eq!(r.bytes(usize::MAX), Err(UnexpectedEnd));
        let mut r = Reader::new(&[0x05, 1, 2]);
        assert_eq!(r.varint_prefixed(), Err(UnexpectedEnd));
    }

    #[test]
    fn writer_refuses_overflow_without_partial_writes() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        w.put_u16(0xabcd).unwrap();
        assert_eq!(w.put_u32(1), Err(BufferFull));
        assert_eq!(w.put_varint_prefixed(&[1, 2]), Err(BufferFull));
        assert_eq!(w.len(), 2);
        w.put_varint(63).unwrap();
        assert_eq!(w.written(), &[0xab, 0xcd, 63]);
        assert_eq!(w.put_varint(1 << 62), Err(BufferFull));
    }
}
