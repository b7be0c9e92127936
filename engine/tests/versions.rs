//! QUIC versions through whole endpoints on the simulated network (virtual time): the server's
//! router answers versions it does not accept with Version Negotiation and the client follows
//! it; a client offering a reserved version (0x?a?a?a?a) draws it; a server preferring v2
//! moves a v1 client to v2 without Version Negotiation (RFC 9368 compatible negotiation).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use peregrine_engine::api::EndpointConfig;
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::sim::SimRuntime;
use peregrine_engine::version::{V1, V2};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Connects a client with `client` to a server with `server`; returns the version both
/// connections ended in (client's stats, server's stats) and the server's stateless responses.
fn connect(server: ServerConfig, client: ClientConfig) -> (u32, u32, u64) {
    let mut rt = SimRuntime::new(41);
    let srv = rt.endpoint(&[addr("10.0.0.1:443")], EndpointConfig::server(server)).unwrap();
    let cli = rt.endpoint(&[addr("10.0.0.2:5000")], EndpointConfig::client(client)).unwrap();
    let conn = rt
        .run_until(cli.connect(srv.local_addr(), "localhost").unwrap(), Duration::from_secs(5))
        .expect("handshake within 5 s of virtual time")
        .expect("handshake succeeds");
    let accepted = rt.run_until(srv.accept(), Duration::from_secs(1)).flatten().expect("accepted");
    let responses = rt.worker_stats()[0].responses;
    (conn.stats().version, accepted.stats().version, responses)
}

fn client(version: u32) -> ClientConfig {
    support::client_config(TransportConfig::default()).with_version(version).unwrap()
}

/// A server accepting only v2 and a client starting in v1: the router sends one Version
/// Negotiation, the client starts again in v2 and both connections are v2.
#[test]
fn server_accepting_only_v2_negotiates_a_v1_client_to_v2() {
    let mut server = support::server_config(TransportConfig::default());
    server.versions = vec![V2];
    let (c, s, responses) = connect(server, client(V1));
    assert_eq!((c, s), (V2, V2));
    assert_eq!(responses, 1, "one Version Negotiation packet");
}

/// A client offering a reserved version: the server answers with Version Negotiation listing
/// v1 and v2, and the client connects in its preferred one of those.
#[test]
fn reserved_version_draws_version_negotiation_from_the_server() {
    let server = support::server_config(TransportConfig::default());
    let (c, s, responses) = connect(server.clone(), client(0x1a2a_3a4a));
    assert_eq!((c, s), (V1, V1));
    assert_eq!(responses, 1, "one Version Negotiation packet");
    let mut v2_first = client(0x5a6a_7a8a);
    v2_first.versions = vec![V2, V1];
    let (c, s, _) = connect(server, v2_first);
    assert_eq!((c, s), (V2, V2));
}

/// A server preferring v2 moves a default client (v1, offering v2) to v2 in one round trip:
/// no Version Negotiation.
#[test]
fn server_preferring_v2_upgrades_a_v1_client() {
    let mut server = support::server_config(TransportConfig::default());
    server.preferred_version = Some(V2);
    let (c, s, responses) = connect(server, client(V1));
    assert_eq!((c, s), (V2, V2));
    assert_eq!(responses, 0, "no Version Negotiation");
}

/// A client started in v2 stays in v2 with a default server.
#[test]
fn client_started_in_v2() {
    let server = support::server_config(TransportConfig::default());
    let (c, s, responses) = connect(server, client(V2));
    assert_eq!((c, s, responses), (V2, V2, 0));
}
