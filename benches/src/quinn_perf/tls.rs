//! TLS for the quinn perf peer: rustls 0.23 on the aws-lc-rs provider (no `ring`), TLS 1.3
//! only, ALPN `perf`. Server certificates come from PEM files or are generated in memory; the
//! client trusts a CA (DER or PEM file) or, with [`ClientTrust::Insecure`], nothing at all.

use std::path::Path;
use std::sync::Arc;

use peregrine_engine::{read_pem_certs, read_pem_key, SkipServerVerification};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ALPN of draft-banks-quic-performance.
pub const ALPN_PERF: &[u8] = b"perf";

/// A certificate chain and its key.
pub struct ServerCert {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The chain as PEM (a client's `--ca` when the certificate is self-signed).
    pub chain_pem: String,
}

impl ServerCert {
    /// A self-signed certificate for "localhost" and 127.0.0.1, generated in memory.
    pub fn generate() -> Result<Self, String> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| format!("generating a certificate: {e}"))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        Ok(Self { chain: vec![ck.cert.der().clone()], key, chain_pem: ck.cert.pem() })
    }

    /// The chain and key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let chain_pem =
            std::fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let chain = read_pem_certs(cert).map_err(|e| e.to_string())?;
        let key = read_pem_key(key).map_err(|e| e.to_string())?;
        Ok(Self { chain, key, chain_pem })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A quinn server configuration presenting `cert` with ALPN `perf`.
pub fn server_config(cert: ServerCert) -> Result<quinn::ServerConfig, String> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)
        .map_err(|e| format!("server certificate: {e}"))?;
    tls.alpn_protocols = vec![ALPN_PERF.to_vec()];
    tls.max_early_data_size = 0;
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// How the quinn perf client authenticates the server.
#[derive(Clone, Debug)]
pub enum ClientTrust {
    /// Trust these roots (DER).
    Roots(Vec<CertificateDer<'static>>),
    /// Trust the certificates of a PEM file.
    CaFile(std::path::PathBuf),
    /// Do not verify the server's certificate (the handshake signature is still checked).
    Insecure,
}

/// A quinn client configuration offering ALPN `perf`.
pub fn client_config(trust: &ClientTrust) -> Result<quinn::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let roots = |certs: Vec<CertificateDer<'static>>| -> Result<_, String> {
        let mut store = rustls::RootCertStore::empty();
        for c in certs {
            store.add(c).map_err(|e| format!("CA certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err("no CA certificate".into());
        }
        Ok(store)
    };
    let mut tls = match trust {
        ClientTrust::Roots(certs) => {
            builder.with_root_certificates(roots(certs.clone())?).with_no_client_auth()
        }
        ClientTrust::CaFile(p) => {
            let certs = read_pem_certs(p).map_err(|e| e.to_string())?;
            builder.with_root_certificates(roots(certs)?).with_no_client_auth()
        }
        ClientTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(SkipServerVerification::new(provider()))
            .with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN_PERF.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn pem_round_trips_through_the_parser() {
        let c = ServerCert::generate().unwrap();
        let pem = c.chain_pem.clone();
        let back =
            CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(back, vec![c.chain[0].clone()]);
    }
}
