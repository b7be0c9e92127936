//! The metrics HTTP/1.1 server: one thread, non-blocking sockets, many connections at once.
//!
//! Every accepted connection gets its own small state machine (read the request head, write
//! the answer, drain a little after an error answer) and a deadline; the thread walks all of
//! them each round. A client that connects and sends nothing holds only its slot until its
//! deadline, never the thread, so scrapes are answered while hundreds of idle connections are
//! open. At most [`MAX_CONNECTIONS`] are kept; past that the oldest is dropped for the newest.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request head read before answering 431.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long one client may take to send its request and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Most connections served at once (each costs a socket and a few KB).
pub const MAX_CONNECTIONS: usize = 1024;
/// Pause of a round in which nothing happened.
const IDLE_PAUSE: Duration = Duration::from_millis(2);
/// After an error answer: how much of the rest of the request is read and dropped, and for
/// how long, so that closing does not reset the connection before the client reads it.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_millis(200);

/// The metrics callback: renders a fresh exposition per request.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// A running metrics server; [`MetricsServer::stop`] (or drop) ends it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves on a new thread.
    pub fn start(addr: SocketAddr, source: Source) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &source, &flag))?;
        Ok(MetricsServer { addr, stop, thread: Some(thread) })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the thread (within one round, a few ms).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Phase {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Writing the answer from this position; `drain` after it (an error answer).
    Writing { out: Vec<u8>, at: usize, drain: bool },
    /// Reading and dropping what the client still sends, up to this many more bytes.
    Draining(usize),
}

struct Conn {
    stream: TcpStream,
    deadline: Instant,
    phase: Phase,
}

/// What one step of a connection did.
enum Step {
    /// Nothing to do until the socket is ready.
    Waiting,
    /// Made progress.
    Progress,
    /// Finished (or failed): close it.
    Done,
}

// The server thread is I/O code outside the sans-IO core: it bounds connections in wall time.
#[allow(clippy::disallowed_methods)]
fn serve(listener: &TcpListener, source: &Source, stop: &AtomicBool) {
    let mut conns: Vec<Conn> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut busy = false;
        // Accept everything pending (bounded by the listen backlog per round).
        while let Ok((stream, _)) = listener.accept() {
            busy = true;
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if conns.len() >= MAX_CONNECTIONS {
                conns.remove(0);
            }
            let phase = Phase::Reading(Vec::with_capacity(512));
            conns.push(Conn { stream, deadline: now + REQUEST_TIMEOUT, phase });
        }
        conns.retain_mut(|c| {
            if now > c.deadline {
                return false;
            }
            match step(c, source, now) {
                Step::Waiting => true,
                Step::Progress => {
                    busy = true;
                    true
                }
                Step::Done => {
                    busy = true;
                    false
                }
            }
        });
        if !busy {
            thread::sleep(IDLE_PAUSE);
        }
    }
}

fn step(c: &mut Conn, source: &Source, now: Instant) -> Step {
    let mut buf = [0u8; 4096];
    match &mut c.phase {
        Phase::Reading(head) => {
            let n = match c.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Waiting,
                Err(_) => return Step::Done,
            };
            if n == 0 && !head.windows(2).any(|w| w == b"\r\n") {
                return Step::Done;
            }
            head.extend_from_slice(&buf[..n]);
            let end = head.windows(4).position(|w| w == b"\r\n\r\n").map(|e| e + 4);
            let complete = match end {
                Some(end) => end <= MAX_REQUEST_BYTES,
                None if n == 0 => true,
                None if head.len() > MAX_REQUEST_BYTES => false,
                None => return Step::Progress,
            };
            let (out, drain) = if complete {
                (answer(head, source), false)
            } else {
                (response("431 Request Header Fields Too Large", "too large\n"), true)
            };
            c.phase = Phase::Writing { out, at: 0, drain };
            Step::Progress
        }
        Phase::Writing { out, at, drain } => {
            match c.stream.write(&out[*at..]) {
                Ok(0) => return Step::Done,
                Ok(n) => *at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Waiting,
                Err(_) => return Step::Done,
            }
            if *at < out.len() {
                return Step::Progress;
            }
            if !*drain {
                let _ = c.stream.shutdown(Shutdown::Write);
                return Step::Done;
            }
            let _ = c.stream.shutdown(Shutdown::Write);
            c.deadline = c.deadline.min(now + DRAIN_TIME);
            c.phase = Phase::Draining(DRAIN_BYTES);
            Step::Progress
        }
        Phase::Draining(left) => match c.stream.read(&mut buf) {
            Ok(n) if n > 0 && n < *left => {
                *left -= n;
                Step::Progress
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Waiting,
            _ => Step::Done,
        },
    }
}

/// The answer to a complete request head.
fn answer(head: &[u8], source: &Source) -> Vec<u8> {
    let line = String::from_utf8_lossy(head);
    let mut parts = line.lines().next().unwrap_or("").split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => response("200 OK", &source()),
        (Some("GET"), Some(_)) => response("404 Not Found", "not found\n"),
        _ => response("405 Method Not Allowed", "GET only\n"),
    }
}

fn response(status: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
