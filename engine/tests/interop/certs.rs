//! Test PKI from rcgen: a CA and a `localhost` leaf it signed, plus the quinn-proto TLS configs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tap::KeyLog;

/// The ALPN of the interop runner's HTTP/0.9.
pub const ALPN: &[u8] = b"hq-interop";

/// The name the leaf certificate is valid for.
pub const SERVER_NAME: &str = "localhost";

/// Numbers the generated CAs.
static NEXT_CA: AtomicU64 = AtomicU64::new(0);

/// A CA and a leaf certificate for [`SERVER_NAME`] signed by it.
pub struct Pki {
    /// The CA certificate (the client's trust root).
    pub ca: CertificateDer<'static>,
    /// The leaf certificate, then the CA: what the server presents.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    /// Generates a fresh CA and leaf (ECDSA P-256).
    pub fn generate() -> Self {
        Self::generate_with(0)
    }

    /// Like [`Pki::generate`], with `extra_names` more DNS names on the leaf (about 30 bytes
    /// each), to make the server's certificate flight span several datagrams.
    pub fn generate_with(extra_names: usize) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A distinct name per CA: another CA must be an unknown issuer, not a bad signature.
        let n = NEXT_CA.fetch_add(1, Ordering::Relaxed);
        ca_params.distinguished_name.push(DnType::CommonName, format!("Peregrine interop CA {n}"));
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let names = std::iter::once(SERVER_NAME.to_owned())
            .chain((0..extra_names).map(|i| format!("host-{i:05}.interop.peregrine.test")));
        let leaf_params = CertificateParams::new(names.collect::<Vec<_>>()).expect("params");
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).expect("leaf cert");
        Self {
            ca: ca.der().clone(),
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }

    /// The private key in the form TLS configs take.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// aws-lc-rs with TLS_AES_128_GCM_SHA256 only, so the wire tap knows the header-protection
/// algorithm (and every peer must support it: RFC 9001 §5 makes it mandatory for Initials).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites = vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    Arc::new(p)
}

/// A quinn-proto client config trusting `ca`, offering `alpn`, logging secrets into `keylog`.
pub fn quinn_client(
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    keylog: &KeyLog,
    transport: quinn_proto::TransportConfig,
) -> quinn_proto::ClientConfig {
    quinn_client_with(ca, alpn, keylog, transport, false)
}

/// [`quinn_client`], attempting 0-RTT on resumption when `early_data`.
pub fn quinn_client_with(
    ca: &CertificateDer<'static>,
    alpn: &[u8],
    keylog: &KeyLog,
    transport: quinn_proto::TransportConfig,
    early_data: bool,
) -> quinn_proto::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA root");
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.key_log = Arc::new(keylog.clone());
    tls.enable_early_data = early_data;
    let crypto = QuicClientConfig::try_from(tls).expect("QUIC client config");
    let mut config = quinn_proto::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    config
}

/// A quinn-proto server config serving `pki`'s chain, accepting `alpn`, logging into `keylog`.
pub fn quinn_server(
    pki: &Pki,
    alpn: &[u8],
    keylog: &KeyLog,
    transport: quinn_proto::TransportConfig,
) -> quinn_proto::ServerConfig {
    quinn_server_with(pki, alpn, keylog, transport, false)
}

/// [`quinn_server`], accepting 0-RTT (stateful single-use tickets) when `early_data`.
pub fn quinn_server_with(
    pki: &Pki,
    alpn: &[u8],
    keylog: &KeyLog,
    transport: quinn_proto::TransportConfig,
    early_data: bool,
) -> quinn_proto::ServerConfig {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key_der())
        .expect("server cert");
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.key_log = Arc::new(keylog.clone());
    if early_data {
        tls.max_early_data_size = u32::MAX;
    }
    let crypto = QuicServerConfig::try_from(tls).expect("QUIC server config");
    let mut config = quinn_proto::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    config
}
