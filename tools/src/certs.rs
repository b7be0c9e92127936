//! TLS configurations for the QUIC commands: a server's from PEM files or a certificate
//! generated in memory, a client's trusting a CA file, an in-memory certificate, or nothing
//! (`--insecure`).

use std::path::Path;
use std::sync::Arc;

use peregrine_engine::{KeyLogTarget, TlsClientConfig, TlsConfigError, TlsServerConfig};
use rustls::pki_types::pem::{self, PemObject};
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
    generate_for(vec!["localhost".into(), "127.0.0.1".into()]).map(|(g, _)| g)
}

/// Generates a self-signed certificate for `names` (DNS names or IP addresses); also returns
/// its PEM text.
fn generate_for(names: Vec<String>) -> Result<(GeneratedCert, String), String> {
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("generating a certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    Ok((GeneratedCert { cert: ck.cert.der().clone(), key }, ck.cert.pem()))
}

/// The SHA-256 fingerprint of a DER certificate as colon-separated hex (`AB:CD:...`), the
/// form browsers and `openssl x509 -fingerprint -sha256` show.
pub fn fingerprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// `server --self-signed`: a configuration with a certificate generated for localhost,
/// 127.0.0.1, ::1 and `listen`'s address (when it is a specific one), written as PEM to
/// `cert_out` when given; and the line to print about it. `early_data`: accept 0-RTT.
pub fn self_signed(
    listen: std::net::SocketAddr,
    cert_out: Option<&Path>,
    keylog: KeyLogTarget,
    early_data: bool,
) -> Result<(Arc<TlsServerConfig>, Option<String>), String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let ip = listen.ip().to_string();
    if !listen.ip().is_unspecified() && !names.contains(&ip) {
        names.push(ip);
    }
    let (g, pem) = generate_for(names.clone())?;
    if let Some(path) = cert_out {
        std::fs::write(path, &pem).map_err(|e| format!("--cert-out {}: {e}", path.display()))?;
    }
    let note = format!(
        "self-signed certificate for {}: sha256 {}{}",
        names.join(", "),
        fingerprint(&g.cert),
        cert_out
            .map(|p| format!(" (PEM in {}, the clients' --ca)", p.display()))
            .unwrap_or_default()
    );
    Ok((server_generated(&g, keylog, early_data)?, Some(note)))
}

/// The PEM private key forms the server reads.
const KEY_FORMS: &str = "-----BEGIN PRIVATE KEY----- (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY";

/// Reads a certificate chain from a PEM file; errors name the flag and say what was expected.
pub fn read_chain(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{flag} {}: not a PEM certificate file ({e})", path.display()))?;
    if chain.is_empty() {
        let der = bytes.first() == Some(&0x30);
        return Err(format!(
            "{flag} {}: no -----BEGIN CERTIFICATE----- block{}",
            path.display(),
            if der {
                "; it looks like DER: convert it with `openssl x509 -inform DER -in FILE -out cert.pem`"
            } else {
                ""
            }
        ));
    }
    Ok(chain)
}

/// Reads a private key from a PEM file; errors say which forms are read.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--key {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "--key {}: no private key in PEM form (expected {KEY_FORMS}){}",
            path.display(),
            if bytes.first() == Some(&0x30) {
                "; it looks like DER: convert it with `openssl pkey -inform DER -in FILE -out key.pem`"
            } else {
                ""
            }
        ),
        e => format!("--key {}: {e}", path.display()),
    })
}

/// A server TLS configuration offering both ALPNs, from PEM files, logging secrets to `keylog`.
/// A missing file, a file that holds no PEM certificate or key, and a key that does not
/// belong to the certificate are each a one-line error naming the flag and the file.
/// With `early_data`, resumed connections may send 0-RTT (single-use tickets).
pub fn server_from_files(
    cert: &Path,
    key: &Path,
    keylog: KeyLogTarget,
    early_data: bool,
) -> Result<Arc<TlsServerConfig>, String> {
    let chain = read_chain("--cert", cert)?;
    let key_der = read_key(key)?;
    let tls = TlsServerConfig::builder(chain, key_der)
        .alpn_protocols([ALPN_HQ, ALPN_PERF])
        .keylog(keylog)
        .enable_early_data(early_data)
        .build()
        .map_err(|e| match e {
            TlsConfigError::Tls(rustls::Error::InconsistentKeys(
                rustls::InconsistentKeys::KeyMismatch,
            )) => format!(
                "--key {} does not match --cert {}: it is not the private key of the \
                 certificate's public key",
                key.display(),
                cert.display()
            ),
            e => format!("--cert {} / --key {}: {e}", cert.display(), key.display()),
        })?;
    Ok(Arc::new(tls))
}

/// Adds what a rejected server certificate means to a connection error: which CA file it
/// was checked against and which name was expected.
pub fn explain(err: String, ca: Option<&Path>, name: &str) -> String {
    if !err.contains("peer certificate rejected") {
        return err;
    }
    let ca = ca.map_or("the generated certificate".to_string(), |p| p.display().to_string());
    if err.contains("UnknownIssuer") || err.contains("BadSignature") {
        format!(
            "{err} (the server's certificate for '{name}' was not issued by a CA in {ca}; give \
             the server's CA with --ca, or --insecure to skip the check)"
        )
    } else if err.contains("not valid for name") {
        format!("{err} (connecting as '{name}': use the name the certificate was issued for)")
    } else {
        format!("{err} (checked against {ca} for the name '{name}')")
    }
}

/// A server TLS configuration offering both ALPNs, with a generated certificate, logging
/// secrets to `keylog`; accepting 0-RTT with `early_data`.
pub fn server_generated(
    g: &GeneratedCert,
    keylog: KeyLogTarget,
    early_data: bool,
) -> Result<Arc<TlsServerConfig>, String> {
    let tls = TlsServerConfig::builder(vec![g.cert.clone()], g.key.clone_key())
        .alpn_protocols([ALPN_HQ, ALPN_PERF])
        .keylog(keylog)
        .enable_early_data(early_data)
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
    client_early(trust, alpn, keylog, false)
}

/// [`client`], attempting 0-RTT on resumed connections when `early_data`.
pub fn client_early(
    trust: Trust<'_>,
    alpn: &[u8],
    keylog: KeyLogTarget,
    early_data: bool,
) -> Result<Arc<TlsClientConfig>, String> {
    let mut b = TlsClientConfig::builder();
    b = match trust {
        Trust::CaFile(p) => {
            let mut b = b;
            for c in read_chain("--ca", p)? {
                b = b.add_root_certificate(c).map_err(|e| format!("--ca {}: {e}", p.display()))?;
            }
            b
        }
        Trust::Cert(c) => b.add_root_certificate(c).map_err(|e| e.to_string())?,
        Trust::Insecure => b.dangerous_skip_verify(),
    };
    let tls = b
        .alpn_protocols([alpn])
        .keylog(keylog)
        .enable_early_data(early_data)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(tls))
}
