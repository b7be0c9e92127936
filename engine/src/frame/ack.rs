//! ACK frames (RFC 9000 §19.3): lazily iterated ranges, validated up front, and a bounded encoder.

use std::iter::FusedIterator;
use std::ops::RangeInclusive;

use super::codec::FrameReader;
use super::FrameType;
use crate::coding::{BufferFull, Reader, Writer};
use crate::error::Error;
use crate::varint::{self, VarInt};

/// The three ECN counts of an ACK frame of type 0x03 (RFC 9000 §19.3.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EcnCounts {
    /// Packets received with the ECT(0) codepoint.
    pub ect0: VarInt,
    /// Packets received with the ECT(1) codepoint.
    pub ect1: VarInt,
    /// Packets received with the ECN-CE codepoint.
    pub ce: VarInt,
}

impl EcnCounts {
    /// Encoded size of the three counts.
    pub fn encoded_len(&self) -> usize {
        self.ect0.size() + self.ect1.size() + self.ce.size()
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        w.put_varint(self.ect0.into_inner())?;
        w.put_varint(self.ect1.into_inner())?;
        w.put_varint(self.ce.into_inner())
    }

    fn read(r: &mut FrameReader<'_, '_>) -> Result<Self, Error> {
        Ok(Self { ect0: r.varint()?, ect1: r.varint()?, ce: r.varint()? })
    }
}

/// A decoded ACK frame. The additional ranges stay encoded in the packet and are walked by
/// [`ranges`](Self::ranges); decoding already checked that none of them goes below packet
/// number 0, so iterating cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    largest: u64,
    ack_delay: VarInt,
    first_range: u64,
    additional: u64,
    range_bytes: &'a [u8],
    smallest: u64,
    ecn: Option<EcnCounts>,
}

impl<'a> Ack<'a> {
    /// The Largest Acknowledged field.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// The smallest packet number acknowledged by any range.
    pub fn smallest(&self) -> u64 {
        self.smallest
    }

    /// The raw ACK Delay field (scaled by the sender's `ack_delay_exponent`).
    pub fn ack_delay(&self) -> VarInt {
        self.ack_delay
    }

    /// The ACK delay in microseconds for the sender's `ack_delay_exponent` (saturating).
    pub fn ack_delay_micros(&self, exponent: u8) -> u64 {
        let v = u128::from(self.ack_delay.into_inner()) << exponent.min(63);
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// The ECN counts (present for frame type 0x03).
    pub fn ecn(&self) -> Option<EcnCounts> {
        self.ecn
    }

    /// Number of ranges, the first one included (ACK Range Count + 1).
    pub fn range_count(&self) -> u64 {
        self.additional + 1
    }

    /// The acknowledged ranges, largest first, each as `smallest..=largest`.
    pub fn ranges(&self) -> AckRanges<'a> {
        AckRanges {
            reader: Reader::new(self.range_bytes),
            remaining: self.additional,
            pending: Some(self.smallest_of_first()..=self.largest),
        }
    }

    fn smallest_of_first(&self) -> u64 {
        // Checked at decode time; saturating keeps this panic-free regardless.
        self.largest.saturating_sub(self.first_range)
    }

    /// The frame type: 0x03 when ECN counts are present, else 0x02.
    pub fn frame_type(&self) -> FrameType {
        if self.ecn.is_some() {
            FrameType::ACK_ECN
        } else {
            FrameType::ACK
        }
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        1 + varint::size(self.largest)
            + self.ack_delay.size()
            + varint::size(self.additional)
            + varint::size(self.first_range)
            + self.range_bytes.len()
            + self.ecn.map_or(0, |e| e.encoded_len())
    }

    /// Re-emits the frame (the additional ranges byte for byte); on [`BufferFull`] nothing is
    /// written. To build an ACK from ranges use [`write_ack`].
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(self.frame_type().0)?;
        w.put_varint(self.largest)?;
        w.put_varint(self.ack_delay.into_inner())?;
        w.put_varint(self.additional)?;
        w.put_varint(self.first_range)?;
        w.put_slice(self.range_bytes)?;
        if let Some(ecn) = &self.ecn {
            ecn.write(w)?;
        }
        Ok(())
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-19.3
    //# QUIC implementations MUST properly handle both
    //# types, and, if they have enabled ECN for packets they send, they
    //# SHOULD use the information in the ECN section to manage their
    //# congestion state.
    pub(super) fn decode(r: &mut FrameReader<'_, 'a>) -> Result<Self, Error> {
        let has_ecn = r.frame_type() == FrameType::ACK_ECN.0;
        let largest = r.varint()?.into_inner();
        let ack_delay = r.varint()?;
        let additional = r.varint()?.into_inner();
        let first_range = r.varint()?.into_inner();

        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.3.1
        //# If any computed packet number is negative, an endpoint MUST generate
        //# a connection error of type FRAME_ENCODING_ERROR.
        let below_zero = "ACK range below packet number 0";
        let mut smallest = largest.checked_sub(first_range).ok_or_else(|| r.invalid(below_zero))?;
        let before = r.peek_rest();
        // Each pass consumes at least two bytes or fails, so this is bounded by the payload.
        for _ in 0..additional {
            let gap = r.varint()?.into_inner();
            let len = r.varint()?.into_inner();
            // largest = previous_smallest - gap - 2
            let range_largest = smallest
                .checked_sub(gap)
                .and_then(|v| v.checked_sub(2))
                .ok_or_else(|| r.invalid(below_zero))?;
            // smallest = largest - ack_range
            smallest = range_largest.checked_sub(len).ok_or_else(|| r.invalid(below_zero))?;
        }
        let used = before.len() - r.peek_rest().len();
        let range_bytes = &before[..used];
        let ecn = if has_ecn { Some(EcnCounts::read(r)?) } else { None };
        Ok(Self { largest, ack_delay, first_range, additional, range_bytes, smallest, ecn })
    }
}

/// Iterator over an ACK frame's ranges, largest first, each as `smallest..=largest`.
#[derive(Clone, Debug)]
pub struct AckRanges<'a> {
    reader: Reader<'a>,
    remaining: u64,
    pending: Option<RangeInclusive<u64>>,
}

impl Iterator for AckRanges<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        let out = self.pending.take()?;
        if self.remaining > 0 {
            self.remaining -= 1;
            // Validated at decode time, so this is always `Some`.
            self.pending = next_range(&mut self.reader, *out.start());
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.pending.is_none() {
            return (0, Some(0));
        }
        // `remaining` is bounded by the frame's byte length, so it fits a usize.
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).saturating_add(1);
        (n, Some(n))
    }
}

impl FusedIterator for AckRanges<'_> {}

impl ExactSizeIterator for AckRanges<'_> {}

/// Reads one Gap / ACK Range Length pair below the range whose smallest number is
/// `prev_smallest`.
fn next_range(r: &mut Reader<'_>, prev_smallest: u64) -> Option<RangeInclusive<u64>> {
    let gap = r.varint().ok()?;
    let len = r.varint().ok()?;
    let largest = prev_smallest.checked_sub(gap)?.checked_sub(2)?;
    Some(largest.checked_sub(len)?..=largest)
}

/// Why [`write_ack`] or [`plan_ack`] could not produce a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckWriteError {
    /// Not even the frame with its first range fits.
    BufferFull,
    /// No range was given.
    NoRanges,
    /// A range is empty (start > end), beyond 2^62-1, or not strictly below the previous one
    /// with at least one unacknowledged packet between them (adjacent ranges must be merged).
    InvalidRanges,
}

impl From<BufferFull> for AckWriteError {
    fn from(_: BufferFull) -> Self {
        AckWriteError::BufferFull
    }
}

impl std::fmt::Display for AckWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AckWriteError::BufferFull => "no room for an ACK frame",
            AckWriteError::NoRanges => "no ranges to acknowledge",
            AckWriteError::InvalidRanges => "ACK ranges not disjoint and in descending order",
        })
    }
}

impl std::error::Error for AckWriteError {}

/// What [`write_ack`] writes (or [`plan_ack`] would write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckPlan {
    /// Ranges included, the first one counted; the rest of the input did not fit.
    pub ranges: usize,
    /// The smallest packet number the included ranges acknowledge.
    pub smallest: u64,
    /// Exact encoded length of the frame.
    pub len: usize,
}

/// Works out how many of `ranges` (disjoint, largest first) an ACK frame can carry in
/// `max_len` bytes, without writing anything.
pub fn plan_ack<I>(
    ranges: I,
    ack_delay: VarInt,
    ecn: Option<&EcnCounts>,
    max_len: usize,
) -> Result<AckPlan, AckWriteError>
where
    I: IntoIterator<Item = RangeInclusive<u64>>,
{
    let mut it = ranges.into_iter();
    let first = it.next().ok_or(AckWriteError::NoRanges)?;
    let (start, end) = (*first.start(), *first.end());
    if start > end || end > varint::MAX {
        return Err(AckWriteError::InvalidRanges);
    }
    let fixed = 1
        + varint::size(end)
        + ack_delay.size()
        + varint::size(end - start)
        + ecn.map_or(0, |e| e.encoded_len());
    if fixed + 1 > max_len {
        return Err(AckWriteError::BufferFull);
    }
    let mut body = 0usize;
    let mut extra = 0u64;
    let mut prev_smallest = start;
    for r in it {
        let (s, e) = (*r.start(), *r.end());
        if s > e || prev_smallest < 2 || e > prev_smallest - 2 {
            return Err(AckWriteError::InvalidRanges);
        }
        let item = varint::size(prev_smallest - e - 2) + varint::size(e - s);
        if fixed + varint::size(extra + 1) + body + item > max_len {
            break;
        }
        body += item;
        extra += 1;
        prev_smallest = s;
    }
    Ok(AckPlan {
        ranges: usize::try_from(extra).unwrap_or(usize::MAX).saturating_add(1),
        smallest: prev_smallest,
        len: fixed + varint::size(extra) + body,
    })
}

/// Writes an ACK frame (type 0x03 when `ecn` is given) for `ranges` — disjoint, largest first,
/// each `smallest..=largest` — including as many ranges as fit in the writer, largest first.
/// Packets in ranges left out simply stay unacknowledged for now. On error nothing is written.
pub fn write_ack<I>(
    w: &mut Writer<'_>,
    ranges: I,
    ack_delay: VarInt,
    ecn: Option<&EcnCounts>,
) -> Result<AckPlan, AckWriteError>
where
    I: IntoIterator<Item = RangeInclusive<u64>>,
    I::IntoIter: Clone,
{
    let it = ranges.into_iter();
    let plan = plan_ack(it.clone(), ack_delay, ecn, w.remaining())?;
    let mut it = it.take(plan.ranges);
    let first = it.next().ok_or(AckWriteError::NoRanges)?;
    let ty = if ecn.is_some() { FrameType::ACK_ECN } else { FrameType::ACK };
    w.put_varint(ty.0)?;
    w.put_varint(*first.end())?;
    w.put_varint(ack_delay.into_inner())?;
    w.put_varint(plan.ranges as u64 - 1)?;
    w.put_varint(first.end() - first.start())?;
    let mut prev_smallest = *first.start();
    for r in it {
        // Validated by `plan_ack`; checked again in case the cloned iterator disagrees.
        let gap = prev_smallest.checked_sub(*r.end()).and_then(|v| v.checked_sub(2));
        let len = r.end().checked_sub(*r.start());
        let (Some(gap), Some(len)) = (gap, len) else {
            return Err(AckWriteError::InvalidRanges);
        };
        w.put_varint(gap)?;
        w.put_varint(len)?;
        prev_smallest = *r.start();
    }
    if let Some(ecn) = ecn {
        ecn.write(w)?;
    }
    Ok(plan)
}
