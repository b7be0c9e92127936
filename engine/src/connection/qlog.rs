//! The connection's qlog hooks: one `if let Some(..)` branch at each point that logs, so a
//! connection without qlog (the default) pays a single predictable branch per event site. The
//! hooks are `#[cold]` and never inlined, so they do not change the code of the hot send and
//! receive paths they are called from.

use std::time::Instant;

use super::close::CloseFrame;
use super::Connection;
use crate::congestion::PACING_GAIN;
use crate::crypto::Side;
use crate::qlog::{CloseTrigger, Metrics, Owner, PacketType, Qlog};
use crate::recovery::SpaceId;

impl Connection {
    /// Starts recording qlog events (see [`crate::qlog`]), with times relative to `now`;
    /// logs our transport parameters first. Idempotent: a second call keeps the buffer.
    pub fn enable_qlog(&mut self, now: Instant) {
        if self.qlog.is_some() {
            return;
        }
        let mut q = Box::new(Qlog::new(now));
        let server = match self.side {
            Side::Client => None,
            Side::Server => {
                let token = self.local_cids.frame(0).map(|f| f.reset_token).unwrap_or_default();
                Some((self.ids.original_dcid, self.ids.retry_scid, token))
            }
        };
        let params = super::handshake::local_params(&self.config, self.local_scid, server);
        q.parameters_set(now, Owner::Local, &params);
        if let Some(p) = &self.peer_params {
            q.parameters_set(now, Owner::Remote, p);
        }
        self.qlog = Some(q);
    }

    /// Stops recording and drops what was not taken yet (after an I/O error of the writer).
    pub fn disable_qlog(&mut self) {
        self.qlog = None;
    }

    /// Whether qlog events are being recorded.
    pub fn qlog_enabled(&self) -> bool {
        self.qlog.is_some()
    }

    /// The qlog buffer, to drain with [`Qlog::take`]; `None` when qlog is off.
    pub fn qlog_mut(&mut self) -> Option<&mut Qlog> {
        self.qlog.as_deref_mut()
    }

    /// The client's first Destination Connection ID (the qlog trace's `group_id` and file name).
    pub fn original_dcid(&self) -> crate::cid::ConnectionId {
        self.ids.original_dcid
    }

    /// Logs a packet we sealed or opened: `pkt` is its plaintext, `header_len` the header
    /// (packet number included), `tag_len` the AEAD tag at the end (0 for received payloads).
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_packet(
        &mut self,
        now: Instant,
        sent: bool,
        space: SpaceId,
        pn: u64,
        len: usize,
        payload: &[u8],
    ) {
        let exp = if sent { self.config.ack_delay_exponent } else { self.peer_ack_delay_exponent };
        if let Some(q) = self.qlog.as_deref_mut() {
            q.packet(now, sent, PacketType::of(space), pn, len, payload, exp);
        }
    }

    /// Logs `quic:recovery_metrics_updated` when congestion or RTT state changed.
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_metrics(&mut self, now: Instant) {
        let Some(q) = self.qlog.as_deref_mut() else { return };
        let rtt = self.loss.rtt();
        let cwnd = self.cc.window();
        let srtt = rtt.smoothed();
        let pacing_rate = if let Some(rate) = self.cc.pacing_rate() {
            rate.saturating_mul(8)
        } else if srtt.is_zero() {
            0
        } else {
            let bps = cwnd as f64 * 8.0 / srtt.as_secs_f64();
            (bps * PACING_GAIN.0 as f64 / PACING_GAIN.1 as f64) as u64
        };
        q.metrics(
            now,
            Metrics {
                cwnd,
                bytes_in_flight: self.loss.bytes_in_flight(),
                smoothed_rtt: srtt,
                latest_rtt: rtt.latest(),
                min_rtt: rtt.min(),
                rtt_variance: rtt.var(),
                pacing_rate,
            },
        );
    }

    /// Logs `quic:packet_lost` (`trigger`: "time_threshold" for the loss timer; `None`
    /// when an ACK revealed it, by either threshold).
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_lost(
        &mut self,
        now: Instant,
        space: SpaceId,
        pn: u64,
        trigger: Option<&str>,
    ) {
        if let Some(q) = self.qlog.as_deref_mut() {
            q.packet_lost(now, PacketType::of(space), pn, trigger);
        }
    }

    /// Logs `quic:connection_closed` for a close we start (`frame`).
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_local_close(&mut self, now: Instant, frame: &CloseFrame) {
        let Some(q) = self.qlog.as_deref_mut() else { return };
        let (application, code, reason) = match frame {
            CloseFrame::Transport { code, reason, .. } => (false, code.0, reason),
            CloseFrame::Application { code, reason } => (true, code.into_inner(), reason),
        };
        let reason = String::from_utf8_lossy(reason).into_owned();
        q.connection_closed(
            now,
            &CloseTrigger::Frame { owner: Owner::Local, application, code, reason },
        );
    }

    /// Logs `quic:connection_closed` for any other end (peer close, idle, reset).
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_closed(&mut self, now: Instant, trigger: CloseTrigger) {
        if let Some(q) = self.qlog.as_deref_mut() {
            q.connection_closed(now, &trigger);
        }
    }

    /// Logs the remote transport parameters once validated.
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_peer_params(&mut self, now: Instant) {
        if let (Some(q), Some(p)) = (self.qlog.as_deref_mut(), self.peer_params.as_ref()) {
            q.parameters_set(now, Owner::Remote, p);
        }
    }

    /// Logs `quic:key_updated` for a 1-RTT key update.
    #[cold]
    #[inline(never)]
    pub(super) fn qlog_key_update(&mut self, now: Instant, local: bool) {
        let side = self.side;
        let generation = self.key_generation().unwrap_or(0);
        if let Some(q) = self.qlog.as_deref_mut() {
            q.key_updated(now, side, local, generation);
        }
    }
}
