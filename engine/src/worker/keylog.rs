//! TLS key logging to a file: the runtime opens and appends the key log, the core's TLS
//! configuration only holds the resulting [`rustls::KeyLog`] sink (a callback).

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::crypto::{KeyLogTarget, TlsConfigError};

/// The sink a [`KeyLogTarget`] names: nothing, the `SSLKEYLOGFILE` file (rustls
/// `KeyLogFile`), a file opened here for appending, or the caller's own sink. An unwritable
/// file is [`TlsConfigError::KeyLogFile`].
pub(crate) fn sink(target: &KeyLogTarget) -> Result<Arc<dyn rustls::KeyLog>, TlsConfigError> {
    Ok(match target {
        KeyLogTarget::Disabled => Arc::new(rustls::NoKeyLog),
        KeyLogTarget::FromEnv => Arc::new(rustls::KeyLogFile::new()),
        KeyLogTarget::File(path) => Arc::new(FileKeyLog::open(path)?),
        KeyLogTarget::Custom(k) => k.clone(),
    })
}

/// Appends NSS key log lines (`LABEL <client_random hex> <secret hex>`) to a file.
struct FileKeyLog {
    file: Mutex<std::fs::File>,
}

impl FileKeyLog {
    fn open(path: &Path) -> Result<Self, TlsConfigError> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| TlsConfigError::KeyLogFile { path: path.to_owned(), source })?;
        Ok(Self { file: Mutex::new(file) })
    }
}

impl fmt::Debug for FileKeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKeyLog")
    }
}

impl rustls::KeyLog for FileKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        use fmt::Write as _;
        let mut line =
            String::with_capacity(label.len() + 2 * (client_random.len() + secret.len()) + 3);
        line.push_str(label);
        line.push(' ');
        for b in client_random {
            let _ = write!(line, "{b:02x}");
        }
        line.push(' ');
        for b in secret {
            let _ = write!(line, "{b:02x}");
        }
        line.push('\n');
        // One write per line so concurrent connections never interleave; a poisoned lock or a
        // failed write only loses debug output.
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!("key log write failed: {e}");
        }
    }
}
