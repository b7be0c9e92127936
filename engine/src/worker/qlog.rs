//! qlog files: one per connection, `{odcid-hex}_{client|server}.sqlog` in the configured
//! directory. The worker drains each connection's qlog buffer after every step that touched
//! it and appends it through a buffered writer, flushed when the connection ends. An I/O error
//! turns qlog off for that connection with one warning; the connection itself goes on.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::connection::Connection;
use crate::crypto::Side;

/// Buffered writer capacity per connection.
const QLOG_WRITE_BUFFER: usize = 64 << 10;

/// One connection's qlog file.
#[derive(Debug)]
pub(crate) struct QlogFile {
    out: BufWriter<File>,
    path: PathBuf,
}

/// The file name of a connection's trace.
pub(crate) fn file_name(conn: &Connection) -> String {
    let side = match conn.side() {
        Side::Client => "client",
        Side::Server => "server",
    };
    format!("{}_{side}.sqlog", conn.original_dcid())
}

impl QlogFile {
    /// Turns qlog on for `conn` (times relative to `now`) and creates its file with the
    /// header. `None`, with a warning and qlog left off, when the file cannot be written.
    pub(crate) fn open(dir: &Path, conn: &mut Connection, now: Instant) -> Option<Self> {
        let path = dir.join(file_name(conn));
        let reference_ms = super::clock::unix_millis();
        let header =
            crate::qlog::header(conn.side(), conn.original_dcid().as_bytes(), reference_ms);
        let r = File::create(&path).and_then(|f| {
            let mut out = BufWriter::with_capacity(QLOG_WRITE_BUFFER, f);
            out.write_all(&header)?;
            Ok(out)
        });
        match r {
            Ok(out) => {
                conn.enable_qlog(now);
                Some(Self { out, path })
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), %e, "qlog disabled for the connection");
                None
            }
        }
    }

    /// Appends what `conn` recorded since the last call. On an I/O error: warns once, turns
    /// qlog off for the connection and returns `false` (drop this file).
    pub(crate) fn write(&mut self, conn: &mut Connection) -> bool {
        let Some(q) = conn.qlog_mut() else { return true };
        if q.pending() == 0 {
            return true;
        }
        let bytes = q.take();
        if let Err(e) = self.out.write_all(&bytes) {
            self.fail(conn, &e);
            return false;
        }
        true
    }

    /// The connection ended: the last records, then flush.
    pub(crate) fn finish(mut self, conn: &mut Connection) {
        if self.write(conn) {
            if let Err(e) = self.out.flush() {
                self.fail(conn, &e);
            }
        }
        conn.disable_qlog();
    }

    fn fail(&self, conn: &mut Connection, e: &std::io::Error) {
        tracing::warn!(path = %self.path.display(), %e, "qlog write failed: disabled for the connection");
        conn.disable_qlog();
    }
}
