//! TLS configurations for the QUIC commands: a server's from PEM files or a certificate
//! generated in memory, a client's trusting a CA file, an in-memory certificate, or nothing
//! (`--insecure`).

use std::path::Path;
use std::sync::Arc;

use peregrine_engine::crypto::{KeyLogTarget, TlsClientConfig, TlsServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ALPN of the file-serving protocol.
pub const ALPN_HQ: &[u8] = b"hq-interop";
/// The ALPN of draft-banks-quic-performance.
pub const ALPN_PERF: &[u8] = b"perf";

/// A certificate and its key, generated in memory for "localhost".
pub struct GeneratedCert {
    /// The self-signed certificate.
    pub cert: CertificateDer<'static>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

/// Generates a self-signed certificate for "localhost" and 127.0.0.1.
pub fn generate() -> Result<GeneratedCert, String> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| format!("generating a certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    Ok(GeneratedCert { cert: ck.cert.der().clone(), key })
}

/// A server TLS configuration offering both ALPNs, from PEM files, logging secrets to `keylog`.
pub fn server_from_files(
    cert: &Path,
    key: &Path,
    keylog: KeyLogTarget,
) -> Result<Arc<TlsServerConfig>, String> {
    let b = TlsServerConfig::builder_from_pem_files(cert, key).map_err(|e| e.to_string())?;
    let tls =
        b.alpn_protocols([ALPN_HQ, ALPN_PERF]).keylog(keylog).build().map_err(|e| e.to_string())?;
    Ok(Arc::new(tls))
}

/// A server TLS configuration offering both ALPNs, with a generated certificate, logging
/// secrets to `keylog`.
pub fn server_generated(
    g: &GeneratedCert,
    keylog: KeyLogTarget,
) -> Result<Arc<TlsServerConfig>, String> {
    let tls = TlsServerConfig::builder(vec![g.cert.clone()], g.key.clone_key())
        .alpn_protocols([ALPN_HQ, ALPN_PERF])
        .keylog(keylog)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(tls))
}

/// How a client authenticates the server.
pub enum Trust<'a> {
    /// Roots from a PEM file.
    CaFile(&'a Path),
    /// One certificate (the in-process server's).
    Cert(CertificateDer<'static>),
    /// No verification at all.
    Insecure,
}

/// A client TLS configuration offering `alpn`, logging secrets to `keylog`.
pub fn client(
    trust: Trust<'_>,
    alpn: &[u8],
    keylog: KeyLogTarget,
) -> Result<Arc<TlsClientConfig>, String> {
    let mut b = TlsClientConfig::builder();
    b = match trust {
        Trust::CaFile(p) => b.add_root_pem_file(p).map_err(|e| e.to_string())?,
        Trust::Cert(c) => b.add_root_certificate(c).map_err(|e| e.to_string())?,
        Trust::Insecure => b.dangerous_skip_verify(),
    };
    let tls = b.alpn_protocols([alpn]).keylog(keylog).build().map_err(|e| e.to_string())?;
    Ok(Arc::new(tls))
}
