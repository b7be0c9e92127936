//! QUIC versions of one connection: starting again after a Version Negotiation packet
//! (client, RFC 9000 §6.2 and RFC 9368 §2.1), compatible version negotiation between v1 and v2
//! in both roles (RFC 9368 §2.3, RFC 9369 §4), and the version_information checks that keep an
//! attacker from forcing a downgrade (RFC 9368 §4).
//!
//! Client: the first Initial goes out in `ClientConfig::version` (the Original Version) with a
//! version_information listing `ClientConfig::versions`. A Version Negotiation packet that
//! passes the RFC 9000 §6.2 checks makes the connection start again, in place, in the first of
//! its versions the server lists: new TLS session, new Initial keys and packet numbers, same
//! connection IDs. A server Initial in another (compatible) version before any other server
//! packet moves the connection to that version: the Initial keys change and TLS derives the
//! later keys with that version's labels (`TlsSession::set_key_version`).
//!
//! Server: with `ServerConfig::preferred_version` set, the connection holds the client's first
//! CRYPTO bytes until its ClientHello is whole, reads the client's version_information from
//! it, and when the client lists the preferred version, starts TLS in that version and
//! answers in it; Initials of the client's version stay readable until a Handshake packet
//! arrives (RFC 9369 §4).

use std::sync::Arc;
use std::time::Instant;

use super::events::ConnectionError;
use super::handshake::{ack_config, local_params};
use super::spaces::PacketSpace;
use super::Connection;
use crate::cid::{ConnectionId, ResetToken};
use crate::crypto::{self, initial_keys, Side, TlsClientConfig, TlsServerConfig, TlsSession};
use crate::error::{Error, TransportErrorCode};
use crate::recovery::SpaceId;
use crate::transport_params::{TransportParameters, VersionInformation};
use crate::version;

/// Largest ClientHello a server holds back to read the client's version_information from.
const MAX_HELD_CLIENT_HELLO: usize = 16 * 1024;

/// TLS handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;

/// The quic_transport_parameters TLS extension (RFC 9001 §8.2).
const QUIC_TRANSPORT_PARAMETERS: u16 = 0x39;

/// What a client needs to start again after a Version Negotiation packet.
pub(super) struct Restart {
    pub(super) tls: Arc<TlsClientConfig>,
    pub(super) server_name: String,
}

/// A server's pending move to its preferred version, decided on the whole ClientHello.
pub(super) struct ServerSwitch {
    pub(super) preferred: u32,
    pub(super) tls: Arc<TlsServerConfig>,
    /// The Destination Connection ID the client's Initials are keyed with.
    pub(super) initial_dcid: ConnectionId,
    pub(super) reset_token: ResetToken,
    /// CRYPTO bytes held until the ClientHello is whole.
    pub(super) held: Vec<u8>,
}

/// The version state of one connection.
#[derive(Default)]
pub(super) struct Versions {
    /// Client: the versions it speaks, by preference. Server: the versions it accepts.
    pub(super) available: Vec<u32>,
    /// Client: the version of its very first Initial (the Original Version).
    pub(super) original: u32,
    /// The version of the client's first flight of this attempt (client: its chosen version;
    /// server: the version of the Initial that created the connection).
    pub(super) first_flight: u32,
    /// Client: this attempt follows a Version Negotiation packet.
    pub(super) after_vn: bool,
    /// Client: kept until a Version Negotiation packet is acted on (or can no longer be).
    pub(super) restart: Option<Box<Restart>>,
    /// Server: a move to the preferred version, until the ClientHello is whole.
    pub(super) switch: Option<Box<ServerSwitch>>,
    /// Server after a move: the client's version and its Initial keys, to read Initials still
    /// sent in it, until a Handshake packet arrives.
    pub(super) other_initial: Option<(u32, crypto::Keys)>,
}

impl Versions {
    /// The version_information this side sends for a connection in `chosen`.
    pub(super) fn info(&self, chosen: u32) -> VersionInformation {
        VersionInformation { chosen_version: chosen, available_versions: self.available.clone() }
    }
}

/// The version of the packet protection a connection in wire version `v` uses: `v`, or for a
/// reserved version offered to draw Version Negotiation, the client's first supported one.
pub(super) fn protection_version(v: u32, preferences: &[u32]) -> Option<crypto::Version> {
    if version::is_reserved(v) {
        let first = preferences.iter().copied().find(|p| version::is_supported(*p))?;
        return crypto::Version::from_wire(first);
    }
    crypto::Version::from_wire(v)
}

/// Whether a client in `chosen` offering `available` should capture its TLS secrets: another
/// version it offers is compatible, so a server may move the connection.
pub(super) fn offers_compatible(chosen: u32, available: &[u32]) -> bool {
    available.iter().any(|v| *v != chosen && version::compatible(chosen, *v))
}

/// The value of the quic_transport_parameters extension of a whole ClientHello handshake
/// message, if it has one. Any malformation yields `None` (TLS reports it).
fn client_hello_transport_parameters(hello: &[u8]) -> Option<&[u8]> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn num(&mut self, n: usize) -> Option<usize> {
            Some(self.take(n)?.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)))
        }
        fn vec(&mut self, len_bytes: usize) -> Option<&'a [u8]> {
            let n = self.num(len_bytes)?;
            self.take(n)
        }
    }
    let mut r = R(hello);
    if r.num(1)? != usize::from(CLIENT_HELLO) {
        return None;
    }
    let mut body = R(r.vec(3)?);
    body.take(2 + 32)?; // legacy_version, random
    body.vec(1)?; // legacy_session_id
    body.vec(2)?; // cipher_suites
    body.vec(1)?; // legacy_compression_methods
    let mut ext = R(body.vec(2)?);
    while !ext.0.is_empty() {
        let ty = ext.num(2)?;
        let data = ext.vec(2)?;
        if ty == usize::from(QUIC_TRANSPORT_PARAMETERS) {
            return Some(data);
        }
    }
    None
}

/// The length of the first handshake message in `held` once it is all there.
fn whole_message_len(held: &[u8]) -> Option<usize> {
    let len = held.get(1..4)?.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
    (held.len() >= 4 + len).then_some(4 + len)
}

impl Connection {
    /// A Version Negotiation packet (client).
    pub(super) fn on_version_negotiation(&mut self, now: Instant, packet: &[u8]) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-6.2
        //# A client MUST discard any Version Negotiation packet if it has
        //# received and successfully processed any other packet, including an
        //# earlier Version Negotiation packet.
        //= https://www.rfc-editor.org/rfc/rfc9368#section-4
        //# A client that makes a connection attempt based on information
        //# received from a Version Negotiation packet MUST ignore any Version
        //# Negotiation packets it receives in response to that connection attempt.
        if self.side != Side::Client
            || self.received_valid
            || self.retry_received
            || self.versions.after_vn
        {
            return;
        }
        let Ok(vn) = crate::packet::VersionNegotiation::parse(packet) else { return };
        if vn.dst_cid != self.local_scid.as_bytes()
            || vn.src_cid != self.ids.original_dcid.as_bytes()
        {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-6.2
        //# A client MUST discard a Version Negotiation packet that lists the QUIC
        //# version selected by the client.
        //= https://www.rfc-editor.org/rfc/rfc9368#section-4
        //# Clients MUST ignore any received Version Negotiation packets that
        //# contain the Original Version.
        if vn.contains(self.version) || vn.contains(self.versions.original) {
            return;
        }
        let offered: Vec<u32> = vn.versions().take(64).collect();
        //= https://www.rfc-editor.org/rfc/rfc9368#section-2.1
        //# Upon receiving the Version Negotiation packet, the client SHALL search for a
        //# version it supports in the list provided by the server. If it doesn't find one,
        //# it SHALL abort the connection attempt. Otherwise, it SHALL select a mutually
        //# supported version and send a new first flight with that version
        let chosen = version::select(&self.versions.available, &offered);
        let restarted = chosen.is_some_and(|v| self.restart_in(now, v).is_ok());
        if !restarted {
            let mut offered = offered;
            offered.truncate(16);
            self.report_lost(ConnectionError::VersionMismatch { offered });
            self.set_drained();
        }
    }

    /// Starts the connection attempt again in `v` (client, after Version Negotiation): a new
    /// TLS session and first flight, fresh Initial keys and packet numbers, the same IDs.
    fn restart_in(&mut self, now: Instant, v: u32) -> Result<(), Error> {
        let failed = || Error::internal("cannot start again in the negotiated version");
        let restart = self.versions.restart.take().ok_or_else(failed)?;
        let cv = crypto::Version::from_wire(v).ok_or_else(failed)?;
        self.version = v;
        self.versions.first_flight = v;
        self.versions.after_vn = true;
        let mut params = local_params(&self.config, self.local_scid, None);
        params.version_information = Some(self.versions.info(v));
        let params = params.to_vec();
        let compatible = offers_compatible(v, &self.versions.available);
        let tls = if compatible {
            TlsSession::client_compatible(&restart.tls, cv, &restart.server_name, &params)
        } else {
            TlsSession::client(&restart.tls, cv, &restart.server_name, &params)
        };
        self.tls = tls.map_err(|e| e.to_error())?;
        let keys = initial_keys(cv, &self.ids.original_dcid, Side::Client).map_err(|_| failed())?;
        // A new first flight: a fresh Initial space but for the packet numbers, which go on
        // (the loss detector has seen the earlier ones; RFC 9000 §17.2.1 allows any start).
        let next_pn = self.spaces[0].next_pn;
        self.spaces[0] = PacketSpace::new(SpaceId::Initial, ack_config(&self.config));
        self.spaces[0].keys = Some(keys);
        self.spaces[0].next_pn = next_pn;
        for p in self.loss.on_retry() {
            self.retx_pool.put(p.payload.items);
        }
        self.drive_tls_write(now)?;
        self.update_timers(now);
        Ok(())
    }

    /// Client: a server Initial in `v`, another version than ours, before any other server
    /// packet: the server moved the connection (compatible negotiation). Returns the keys and
    /// version to restore if the packet does not authenticate, or `None` if `v` is not one to
    /// follow.
    pub(super) fn follow_version(&mut self, v: u32) -> Option<(u32, Option<crypto::Keys>)> {
        //= https://www.rfc-editor.org/rfc/rfc9369#section-4.1
        //# The client learns the negotiated version by observing the first long header
        //# Version field that differs from the original version.
        if self.side != Side::Client
            || self.received_valid
            || !self.versions.available.contains(&v)
            || !version::compatible(self.version, v)
            || !self.tls.can_change_key_version()
        {
            return None;
        }
        let cv = crypto::Version::from_wire(v)?;
        let keys = initial_keys(cv, &self.ids.original_dcid, Side::Client).ok()?;
        self.tls.set_key_version(cv).ok()?;
        let old_keys = self.spaces[0].keys.replace(keys);
        Some((std::mem::replace(&mut self.version, v), old_keys))
    }

    /// Undoes [`Connection::follow_version`] for a packet that did not authenticate.
    pub(super) fn unfollow_version(&mut self, old: (u32, Option<crypto::Keys>)) {
        self.version = old.0;
        self.spaces[0].keys = old.1;
        if let Some(cv) = crypto::Version::from_wire(old.0) {
            let _ = self.tls.set_key_version(cv);
        }
    }

    /// Server with a preferred version: holds the Initial CRYPTO bytes in `buf` until the
    /// ClientHello is whole, then decides the version (replacing the TLS session when it moves
    /// the connection) and leaves the held bytes in `buf` for TLS.
    pub(super) fn hold_client_hello(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let Some(sw) = self.versions.switch.as_mut() else { return Ok(()) };
        sw.held.extend_from_slice(buf);
        buf.clear();
        if sw.held.first().is_some_and(|t| *t != CLIENT_HELLO) {
            // Not a ClientHello: TLS will say so.
        } else if let Some(len) = whole_message_len(&sw.held) {
            if len > MAX_HELD_CLIENT_HELLO {
                return Err(Error::new(
                    TransportErrorCode::CRYPTO_BUFFER_EXCEEDED,
                    "ClientHello too large",
                ));
            }
        } else if sw.held.len() <= MAX_HELD_CLIENT_HELLO {
            return Ok(());
        }
        let Some(sw) = self.versions.switch.take() else { return Ok(()) };
        let held = &sw.held;
        let params = client_hello_transport_parameters(held)
            .and_then(|b| TransportParameters::decode(Side::Client, b).ok());
        let offered = params.and_then(|p| p.version_information);
        //= https://www.rfc-editor.org/rfc/rfc9368#section-2.3
        //# In order to perform compatible version negotiation, the server MUST select one
        //# of these versions that it (1) supports and (2) knows the client's Chosen
        //# Version is compatible with.
        let moves = offered.is_some_and(|vi| {
            vi.chosen_version == self.version
                && vi.available_versions.contains(&sw.preferred)
                && version::compatible(self.version, sw.preferred)
        });
        if moves {
            self.move_to(&sw)?;
        }
        buf.extend_from_slice(&sw.held);
        Ok(())
    }

    /// Server: starts TLS in the preferred version and answers in it; the client's Initial
    /// keys stay for its Initials in its own version.
    fn move_to(&mut self, sw: &ServerSwitch) -> Result<(), Error> {
        let failed = || Error::internal("cannot move the connection to the preferred version");
        let cv = crypto::Version::from_wire(sw.preferred).ok_or_else(failed)?;
        let odcid = self.ids.original_dcid;
        let server = Some((odcid, self.ids.retry_scid, sw.reset_token));
        let mut params = local_params(&self.config, self.local_scid, server);
        params.version_information = Some(self.versions.info(sw.preferred));
        let limits = super::zero_rtt::remembered_limits(&params);
        self.tls = TlsSession::server_with_limits(&sw.tls, cv, &params.to_vec(), &limits)
            .map_err(|e| e.to_error())?;
        let keys = initial_keys(cv, &sw.initial_dcid, Side::Server).map_err(|_| failed())?;
        let theirs = self.spaces[0].keys.replace(keys);
        //= https://www.rfc-editor.org/rfc/rfc9369#section-4.1
        //# The server MUST NOT discard its original version Initial receive keys until it
        //# successfully processes a Handshake packet with the negotiated version.
        self.versions.other_initial = theirs.map(|k| (self.version, k));
        self.version = sw.preferred;
        Ok(())
    }

    /// Checks the peer's version_information (RFC 9368 §4) once its transport parameters
    /// are in: a server's when the handshake is complete, a client's with its ClientHello.
    pub(super) fn check_version_information(
        &self,
        info: Option<&VersionInformation>,
    ) -> Result<(), Error> {
        let vne = |reason| Error::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, reason);
        if self.side == Side::Server {
            //= https://www.rfc-editor.org/rfc/rfc9368#section-4
            //# When the server then processes the client's Version
            //# Information, the server MUST validate that the client's Chosen Version
            //# matches the version in use for the connection.
            return match info {
                Some(vi) if vi.chosen_version != self.versions.first_flight => {
                    Err(vne("client's chosen version is not the version of its Initial"))
                }
                _ => Ok(()),
            };
        }
        let moved = self.version != self.versions.first_flight;
        let Some(vi) = info else {
            //= https://www.rfc-editor.org/rfc/rfc9368#section-4
            //# If a client has reacted to a Version
            //# Negotiation packet and the server's Version Information was missing, the client
            //# MUST close the connection with a version negotiation error.
            if self.versions.after_vn || moved {
                return Err(vne("no version_information from the server after negotiation"));
            }
            return Ok(());
        };
        //= https://www.rfc-editor.org/rfc/rfc9368#section-4
        //# clients MUST validate that the server's
        //# Chosen Version is equal to the Negotiated Version; if they do not match, the
        //# client MUST close the connection with a version negotiation error.
        if vi.chosen_version != self.version {
            return Err(vne("server's chosen version is not the negotiated version"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9368#section-4
        //# If a client receives Version Information where the server's Chosen Version was
        //# not sent by the client as part of its Available Versions, the client MUST close
        //# the connection with a version negotiation error.
        if !self.versions.available.contains(&vi.chosen_version) {
            return Err(vne("server chose a version the client did not offer"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9368#section-4
        //# If the client received and acted on a Version Negotiation packet, the client
        //# MUST validate the server's Available Versions field.
        if self.versions.after_vn {
            let mut listed = vi.available_versions.clone();
            listed.push(self.version);
            if vi.available_versions.is_empty()
                || version::select(&self.versions.available, &listed) != Some(self.version)
            {
                return Err(vne("server's versions show the Version Negotiation was forged"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with the given extensions (type, data).
    fn hello(exts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut e = Vec::new();
        for (t, d) in exts {
            e.extend_from_slice(&t.to_be_bytes());
            e.extend_from_slice(&(d.len() as u16).to_be_bytes());
            e.extend_from_slice(d);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(e.len() as u16).to_be_bytes());
        body.extend_from_slice(&e);
        let mut m = vec![CLIENT_HELLO];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn transport_parameters_found_in_a_client_hello() {
        let m = hello(&[(0x0a, &[0, 2, 0, 0x1d]), (0x39, &[1, 2, 3])]);
        assert_eq!(whole_message_len(&m), Some(m.len()));
        assert_eq!(whole_message_len(&m[..m.len() - 1]), None);
        assert_eq!(client_hello_transport_parameters(&m), Some(&[1u8, 2, 3][..]));
        assert_eq!(client_hello_transport_parameters(&hello(&[(0x0a, &[1])])), None);
        for cut in 0..m.len() {
            // Truncated or garbled: never a panic.
            let _ = client_hello_transport_parameters(&m[..cut]);
        }
        let mut bad = m.clone();
        bad[0] = 2;
        assert_eq!(client_hello_transport_parameters(&bad), None);
    }

    #[test]
    fn protection_of_a_reserved_version() {
        let prefs = [version::V2, version::V1];
        assert_eq!(protection_version(0x1a2a_3a4a, &prefs), Some(crypto::Version::V2));
        assert_eq!(protection_version(version::V1, &prefs), Some(crypto::Version::V1));
        assert_eq!(protection_version(0xff00_001d, &prefs), None);
        assert!(offers_compatible(version::V1, &[version::V1, version::V2]));
        assert!(!offers_compatible(version::V1, &[version::V1]));
    }
}
