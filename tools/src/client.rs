//! `peregrine client`: fetches `https://host:port/path` URLs over one hq-interop connection,
//! one stream per URL, concurrently, saving each under its file name.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peregrine_engine::api::{Connection, Endpoint, EndpointConfig, MigrateError};
use peregrine_engine::MigrationError;
use peregrine_engine::VarInt;
use peregrine_engine::{ClientConfig, EarlyDataState};

use crate::certs::{self, Trust};
use crate::config::{ConfigArgs, MigrateAfter, Settings};
use crate::endpoint::{self, Use};
use crate::perf::protocol::{self, IO_TIMEOUT};

/// `peregrine client` flags.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("trust").required(true).args(["ca", "insecure"])))]
pub struct Args {
    /// URLs to fetch (`https://host:port/path`), all on the same host and port.
    #[arg(required = true)]
    urls: Vec<String>,
    /// Directory to save the files in (created if missing).
    #[arg(long)]
    output: PathBuf,
    /// CA certificate(s), PEM, to authenticate the server.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Do not authenticate the server.
    #[arg(long)]
    insecure: bool,
    /// ALPN to offer. The client speaks hq-interop (`GET /path`); `perf` is refused (use
    /// `peregrine perf --server`).
    #[arg(long, default_value = "hq-interop")]
    alpn: String,
    /// Handshake timeout: 1ms..=1h, e.g. 5s or 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Fetch the URLs this many times, 1..=100, over successive connections of one endpoint
    /// that share its TLS session cache: later connections resume, and with `--early-data on`
    /// they write their requests before the handshake completes, in 0-RTT when the server
    /// allows it. Each connection's 0-RTT outcome is printed on stderr. (Sessions are not kept
    /// across runs: rustls cannot serialize a client session.)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// QUIC versions.
    #[command(flatten)]
    versions: VersionArgs,
    /// Endpoint settings (datapath, transport, key log).
    #[command(flatten)]
    settings: Box<ConfigArgs>,
}

/// `--quic-version` and `--offer-version`, for `peregrine client` and `peregrine perf`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct VersionArgs {
    /// QUIC version to start in: v1 or v2 [default: v1]. The other one is offered too (a
    /// server may move the connection to it, RFC 9368) and is followed after a Version
    /// Negotiation packet.
    #[arg(long = "quic-version", value_name = "VERSION", value_parser = parse_quic_version)]
    quic_version: Option<u32>,
    /// Start with this reserved version (0x?a?a?a?a, e.g. 0x1a2a3a4a) to test the server's
    /// Version Negotiation; the connection then starts again in the best version it lists.
    #[arg(long = "offer-version", value_name = "0x?a?a?a?a", value_parser = parse_offer_version)]
    offer_version: Option<u32>,
}

impl VersionArgs {
    /// `config` with the versions asked for.
    pub fn apply(&self, mut config: ClientConfig) -> Result<ClientConfig, String> {
        for v in [self.quic_version, self.offer_version].into_iter().flatten() {
            config = config.with_version(v).map_err(|e| format!("QUIC version: {e}"))?;
        }
        Ok(config)
    }
}

/// Parses `--quic-version`: v1 or v2 (or their numbers).
pub fn parse_quic_version(s: &str) -> Result<u32, String> {
    use peregrine_engine::version::{V1, V2};
    match s.to_ascii_lowercase().as_str() {
        "v1" | "1" | "0x1" | "0x00000001" => Ok(V1),
        "v2" | "0x6b3343cf" => Ok(V2),
        _ => Err(format!("'{s}' is not a QUIC version this client speaks (v1 or v2)")),
    }
}

/// Parses `--offer-version`: a reserved version, in hex.
pub fn parse_offer_version(s: &str) -> Result<u32, String> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let v = u32::from_str_radix(hex, 16)
        .map_err(|_| format!("'{s}' is not a 32-bit hexadecimal version"))?;
    if !peregrine_engine::version::is_reserved(v) {
        return Err(format!("{v:#010x} is not a reserved version (0x?a?a?a?a)"));
    }
    Ok(v)
}

/// Parses `--timeout`: the one duration syntax, 1ms..=1h.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration_in(s, Duration::from_millis(1), Duration::from_secs(3600))
}

/// A parsed `https://` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Url {
    /// Host as written (server name).
    pub host: String,
    /// Port (443 when absent).
    pub port: u16,
    /// Path, starting with `/`.
    pub path: String,
}

/// Parses `https://host[:port][/path]`.
pub fn parse_url(s: &str) -> Result<Url, String> {
    let bad = |why: &str| format!("bad URL '{s}': {why}");
    let rest = s.strip_prefix("https://").ok_or_else(|| bad("must start with https://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        None => 443,
    };
    Ok(Url { host: host.to_owned(), port, path: path.to_owned() })
}

/// The name a URL's body is saved under.
fn file_name(url: &Url) -> String {
    let last = url.path.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." {
        "index.html".into()
    } else {
        last.to_owned()
    }
}

/// Resolves `host:port`, preferring IPv4.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| format!("resolving {host}: {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("resolving {host}: no address"))
}

/// A client endpoint on an ephemeral port of `remote`'s family, with the datapath and
/// transport `settings` ask for (`config.transport` is replaced from them), with what the
/// datapath reported at start-up.
pub fn client_endpoint(
    remote: SocketAddr,
    settings: &Settings,
    usage: Use,
    mut config: ClientConfig,
) -> Result<endpoint::Built, String> {
    let local: SocketAddr = if remote.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| "bad local address".to_string())?;
    config.transport = endpoint::transport(settings)?;
    endpoint::build(settings, usage, local, EndpointConfig::client(config))
}

/// Connects to `addr` as `name`, waiting at most `timeout` for the handshake.
pub fn connect(
    ep: &Endpoint,
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Connection, String> {
    let connecting = ep.connect(addr, name).map_err(|e| format!("connecting to {addr}: {e}"))?;
    connecting.wait(timeout).map_err(|e| match e {
        peregrine_engine::api::ConnError::TimedOut => {
            let t = crate::config::format_duration(timeout);
            format!("connecting to {addr}: no handshake within {t}")
        }
        e => format!("connecting to {addr}: {e}"),
    })
}

/// Fetches every URL; succeeds only if each file arrived whole.
#[allow(clippy::disallowed_methods)] // A command: bounds its wait for the close with the clock.
pub fn run(args: &Args) -> Result<(), String> {
    let settings = args.settings.resolve()?;
    if args.alpn.as_bytes() == certs::ALPN_PERF {
        return Err("--alpn perf: the client fetches files over hq-interop; a perf server \
                    answers a request with the byte count it names, so use `peregrine perf \
                    --server HOST:PORT` for perf"
            .into());
    }
    endpoint::check(&settings, Use::Client)?;
    let urls = args.urls.iter().map(|u| parse_url(u)).collect::<Result<Vec<_>, _>>()?;
    let (host, port) = (urls[0].host.clone(), urls[0].port);
    if let Some(u) = urls.iter().find(|u| u.host != host || u.port != port) {
        return Err(format!(
            "all URLs must share one host and port ({}:{} differs)",
            u.host, u.port
        ));
    }
    let addr = resolve(&host, port)?;
    let trust = match &args.ca {
        Some(p) => Trust::CaFile(p),
        None => Trust::Insecure,
    };
    let tls = certs::client_early(
        trust,
        args.alpn.as_bytes(),
        endpoint::keylog(&settings),
        settings.early_data,
    )?;
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("--output {}: {e}", args.output.display()))?;
    let config = args.versions.apply(ClientConfig::new(tls))?;
    let built = client_endpoint(addr, &settings, Use::Client, config)?;
    endpoint::print_notes("client", &built.notes);
    let ep = built.endpoint;
    for round in 1..=args.repeat {
        let early = fetch_all(
            args,
            &ep,
            addr,
            &host,
            &urls,
            settings.early_data && round > 1,
            settings.migrate_after,
        )?;
        if args.repeat > 1 {
            eprintln!("connection {round}: {}", describe_early(early));
        }
    }
    Ok(())
}

/// Fetches every URL over one new connection. `early`: open the streams and write the requests
/// before the handshake completes (0-RTT when the session allows it). Returns the
/// connection's 0-RTT outcome.
#[allow(clippy::disallowed_methods)] // A command: bounds its wait for the close with the clock.
fn fetch_all(
    args: &Args,
    ep: &Endpoint,
    addr: SocketAddr,
    host: &str,
    urls: &[Url],
    early: bool,
    migrate_after: Option<MigrateAfter>,
) -> Result<EarlyDataState, String> {
    let explain = |e: String| certs::explain(e, args.ca.as_deref(), host);
    let (conn, connecting) = if early {
        let connecting =
            ep.connect(addr, host).map_err(|e| format!("connecting to {addr}: {e}"))?;
        let conn = connecting.connection().ok_or("connecting: no connection handle")?;
        (conn, Some(connecting))
    } else {
        (connect(ep, addr, host, args.timeout).map_err(explain)?, None)
    };
    let received = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let mut jobs = Vec::new();
    for url in urls {
        let (send, recv) = conn
            .open_bi_blocking(IO_TIMEOUT)
            .map_err(|e| format!("opening a stream for {}: {e}", url.path))?;
        send.write_fin(format!("GET {}\r\n", url.path).into_bytes());
        let dest = args.output.join(file_name(url));
        let label = format!("https://{}:{}{}", url.host, url.port, url.path);
        let received = received.clone();
        jobs.push(std::thread::spawn(move || {
            let _keep = send;
            save(recv, &dest, &received).map_err(|e| format!("{label}: {e}"))
        }));
    }
    let migrator = migrate_after.map(|when| {
        let (conn, received, finished) = (conn.clone(), received.clone(), finished.clone());
        std::thread::spawn(move || migrate_when(&conn, when, &received, &finished))
    });
    if let Some(connecting) = connecting {
        // The requests are queued (in 0-RTT if the session allowed it): surface a failed
        // handshake as such.
        connecting.wait(args.timeout).map_err(|e| explain(format!("connecting to {addr}: {e}")))?;
    }
    let state = conn.early_data_state();
    let mut errors = Vec::new();
    for j in jobs {
        match j.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a download thread failed".into()),
        }
    }
    finished.store(true, Ordering::Release);
    if let Some(m) = migrator {
        if let Ok(Err(e)) = m.join() {
            errors.push(e);
        }
        let st = conn.stats();
        eprintln!(
            "migration: {} started, {} path(s) validated, {} validation(s) failed",
            st.migrations, st.paths_validated, st.path_validations_failed
        );
    }
    conn.close(VarInt::from_u32(0), b"done");
    // The CONNECTION_CLOSE only has to leave: waiting out the closing period (three PTOs) would
    // add a second to every fetch. Stop once it was emitted or the connection is already gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while !conn.close_emitted()
        && !conn.wait_drained(Duration::from_millis(2))
        && std::time::Instant::now() < deadline
    {}
    match errors.len() {
        0 => Ok(state),
        1 => Err(errors.remove(0)),
        n => Err(format!("{n} of {} downloads failed; first: {}", urls.len(), errors[0])),
    }
}

/// One line about a connection's 0-RTT outcome.
fn describe_early(s: EarlyDataState) -> &'static str {
    match s {
        EarlyDataState::NotAttempted => "no 0-RTT",
        EarlyDataState::Pending => "0-RTT attempted, no answer",
        EarlyDataState::Accepted => "0-RTT accepted",
        EarlyDataState::Rejected => "0-RTT rejected (requests sent again in 1-RTT)",
    }
}

/// What `peregrine server`'s stream reset codes mean, for a reset read error.
fn describe_reset(e: String) -> String {
    let Some(code) = e.strip_prefix("stream reset by peer with code ") else { return e };
    let what = match code.trim().parse::<u64>() {
        Ok(crate::server::CODE_NOT_FOUND) => "not found: the server has no such file",
        Ok(crate::server::CODE_FORBIDDEN) => "forbidden: the path leaves the served directory",
        Ok(crate::server::CODE_BAD_REQUEST) => {
            "bad request: malformed, or the server serves no directory (--root)"
        }
        _ => return format!("{e} (an application error code of the server)"),
    };
    format!("{what} (the server reset the stream with code {code})")
}

/// `--migrate-after`: once `when` comes (time since the handshake, or response bytes
/// received), moves the connection to a new ephemeral port of the same local address. Gives
/// up silently when the downloads finished first; a refused migration is an error.
#[allow(clippy::disallowed_methods)] // A command: waits for its trigger with the clock.
fn migrate_when(
    conn: &Connection,
    when: MigrateAfter,
    received: &AtomicU64,
    finished: &AtomicBool,
) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        if finished.load(Ordering::Acquire) {
            eprintln!("migration: the downloads finished before --migrate-after came");
            return Ok(());
        }
        let due = match when {
            MigrateAfter::Time(d) => start.elapsed() >= d,
            MigrateAfter::Bytes(n) => received.load(Ordering::Relaxed) >= n,
        };
        if due {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let any: SocketAddr = if conn.remote_address().is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| "bad local address".to_string())?;
    // The handshake may be complete but not yet confirmed, or the server's spare connection
    // IDs not arrived yet: wait for them a little (bounded).
    let mut tries = 0;
    loop {
        match conn.migrate(any, IO_TIMEOUT) {
            Ok(local) => {
                eprintln!("migrated to local port {} (validating the new path)", local.port());
                return Ok(());
            }
            Err(MigrateError::Refused(
                MigrationError::HandshakeNotConfirmed | MigrationError::NoSpareCid,
            )) if tries < 500 && !finished.load(Ordering::Acquire) => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(4));
            }
            Err(e) => {
                return Err(format!("--migrate-after: the connection could not migrate: {e}"))
            }
        }
    }
}

/// Reads `recv` to FIN into `dest`, counting bytes in `received`; removes the partial file on
/// failure.
fn save(
    mut recv: peregrine_engine::api::RecvStream,
    dest: &Path,
    received: &AtomicU64,
) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let result = loop {
        match protocol::read_chunk(&mut recv, IO_TIMEOUT) {
            Ok(Some(b)) => {
                received.fetch_add(b.len() as u64, Ordering::Relaxed);
                if let Err(e) = out.write_all(&b) {
                    break Err(format!("{}: {e}", dest.display()));
                }
            }
            Ok(None) => break out.flush().map_err(|e| format!("{}: {e}", dest.display())),
            Err(e) => break Err(describe_reset(e)),
        }
    };
    if result.is_err() {
        drop(out);
        let _ = std::fs::remove_file(dest);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = parse_url("https://localhost:4433/a/b.txt").unwrap();
        assert_eq!(u, Url { host: "localhost".into(), port: 4433, path: "/a/b.txt".into() });
        assert_eq!(file_name(&u), "b.txt");
        let v = parse_url("https://[::1]:9/").unwrap();
        assert_eq!((v.host.as_str(), v.port, file_name(&v).as_str()), ("::1", 9, "index.html"));
        assert_eq!(parse_url("https://h").unwrap().port, 443);
        assert!(parse_url("http://h/x").is_err());
        assert!(parse_url("https://h:notaport/x").is_err());
        assert!(parse_url("https:///x").is_err());
    }

    #[test]
    fn versions_parse_and_apply() {
        use peregrine_engine::version::{V1, V2};
        assert_eq!(parse_quic_version("v2"), Ok(V2));
        assert_eq!(parse_quic_version("V1"), Ok(V1));
        assert!(parse_quic_version("v3").is_err() && parse_quic_version("").is_err());
        assert_eq!(parse_offer_version("0x1a2a3a4a"), Ok(0x1a2a_3a4a));
        assert!(parse_offer_version("0x00000001").is_err(), "not reserved");
        assert!(parse_offer_version("zz").is_err());
        let tls = crate::certs::client(
            crate::certs::Trust::Insecure,
            b"hq-interop",
            peregrine_engine::KeyLogTarget::Disabled,
        )
        .unwrap();
        let base = ClientConfig::new(tls);
        let a = VersionArgs { quic_version: Some(V2), offer_version: None };
        let c = a.apply(base.clone()).unwrap();
        assert_eq!((c.version, c.versions.as_slice()), (V2, &[V2, V1][..]));
        let a = VersionArgs { quic_version: Some(V2), offer_version: Some(0x1a2a_3a4a) };
        let c = a.apply(base.clone()).unwrap();
        assert_eq!((c.version, c.versions.as_slice()), (0x1a2a_3a4a, &[V2, V1][..]));
        let c = VersionArgs::default().apply(base).unwrap();
        assert_eq!((c.version, c.versions.as_slice()), (V1, &[V1, V2][..]));
    }
}
