//! Shared helpers for the runtime tests: TLS configurations for "localhost" and loopback
//! endpoints.

#![allow(dead_code)]

pub mod tapq;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::crypto::{TlsClientConfig, TlsServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ALPN both sides speak.
pub const ALPN: &[u8] = b"hq-interop";

fn cert() -> &'static (CertificateDer<'static>, PrivateKeyDer<'static>) {
    static CERT: OnceLock<(CertificateDer<'static>, PrivateKeyDer<'static>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        (ck.cert.der().clone(), key)
    })
}

/// Server TLS for "localhost".
pub fn tls_server() -> Arc<TlsServerConfig> {
    let (c, k) = cert();
    Arc::new(
        TlsServerConfig::builder(vec![c.clone()], k.clone_key())
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    )
}

/// Client TLS trusting [`tls_server`].
pub fn tls_client() -> Arc<TlsClientConfig> {
    let (c, _) = cert();
    Arc::new(
        TlsClientConfig::builder()
            .add_root_certificate(c.clone())
            .unwrap()
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    )
}

/// A server configuration with `transport`.
pub fn server_config(transport: TransportConfig) -> ServerConfig {
    let mut s = ServerConfig::new(tls_server());
    s.transport = transport;
    s
}

/// A client configuration with `transport`.
pub fn client_config(transport: TransportConfig) -> ClientConfig {
    let mut c = ClientConfig::new(tls_client());
    c.transport = transport;
    c
}

/// A server and a client endpoint on loopback.
pub fn loopback_pair(server: TransportConfig, client: TransportConfig) -> (Endpoint, Endpoint) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let s = Endpoint::bind(any, EndpointConfig::server(server_config(server))).unwrap();
    let c = Endpoint::bind(any, EndpointConfig::client(client_config(client))).unwrap();
    (s, c)
}
