//! TLS material: an rcgen self-signed CA and a "localhost" leaf it signs, as rustls configs
//! for quinn and as Peregrine TLS configs. Both sides verify the leaf through the CA root.

use std::sync::{Arc, OnceLock};

use peregrine_engine::crypto::{TlsClientConfig, TlsServerConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ALPN both sides speak.
pub const ALPN: &[u8] = b"hq-interop";

/// CA root, leaf certificate, leaf key.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub leaf: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

/// The process-wide PKI (generated once).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "peregrine interop test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        Pki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// quinn server configuration presenting the leaf (and the CA) for "localhost".
pub fn quinn_server() -> quinn::ServerConfig {
    let p = pki();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.leaf.clone(), p.ca.clone()], p.key.clone_key())
        .unwrap();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    quinn::ServerConfig::with_crypto(Arc::new(crypto))
}

/// quinn client configuration trusting only the CA root.
pub fn quinn_client() -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki().ca.clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// Peregrine server TLS presenting the leaf (and the CA).
pub fn peregrine_server() -> Arc<TlsServerConfig> {
    let p = pki();
    Arc::new(
        TlsServerConfig::builder(vec![p.leaf.clone(), p.ca.clone()], p.key.clone_key())
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    )
}

/// Peregrine client TLS trusting only the CA root (no skip-verify).
pub fn peregrine_client() -> Arc<TlsClientConfig> {
    Arc::new(
        TlsClientConfig::builder()
            .add_root_certificate(pki().ca.clone())
            .unwrap()
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    )
}
