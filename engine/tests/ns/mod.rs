//! Helpers of the privileged engine tests (which check what they need with
//! `peregrine_datapath::require`): a namespace pair made by `scripts/netns.sh` (removed on drop), and a [`Queue`] wrapper that publishes an
//! `XdpQueue`'s own counters to the test while a worker thread owns the queue.

#![allow(dead_code, clippy::disallowed_methods)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peregrine_datapath::xdp::{XdpQueue, XdpStats};
use peregrine_datapath::{Capabilities, Queue, QueueStats, RxBatch, TxBatch, TxBuffer, Waker};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns.sh")
}

/// Two namespaces joined by a veth pair (side a: 10.203.0.1 and fd00:203::1, side b:
/// 10.203.0.2 and fd00:203::2); removed on drop.
#[derive(Debug)]
pub struct NetnsPair {
    pub name: String,
    pub ns_a: String,
    pub ns_b: String,
    pub if_a: String,
    pub if_b: String,
    pub ip4_a: IpAddr,
    pub ip4_b: IpAddr,
    pub ip6_a: IpAddr,
    pub ip6_b: IpAddr,
}

impl NetnsPair {
    /// Creates the pair named after `tag` and this process, with `loss` percent of UDP lost on
    /// side b in each direction (0 for none).
    pub fn up(tag: &str, loss: u32) -> Self {
        Self::up_with_queues(tag, loss, 1)
    }

    /// Like [`NetnsPair::up`], with `queues` transmit and receive queues on each veth end.
    pub fn up_with_queues(tag: &str, loss: u32, queues: u32) -> Self {
        let name = format!("{tag}{}", std::process::id() % 10_000_000);
        let _ = Command::new(script()).args(["down", &name]).output();
        let out = Command::new(script())
            .args(["up", &name, "--loss", &loss.to_string(), "--queues", &queues.to_string()])
            .output()
            .expect("run scripts/netns.sh");
        assert!(
            out.status.success(),
            "netns.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("netns.sh printed no {k}"))
                .to_string()
        };
        Self {
            ns_a: get("NS_A"),
            ns_b: get("NS_B"),
            if_a: get("IF_A"),
            if_b: get("IF_B"),
            ip4_a: get("IP4_A").parse().unwrap(),
            ip4_b: get("IP4_B").parse().unwrap(),
            ip6_a: get("IP6_A").parse().unwrap(),
            ip6_b: get("IP6_B").parse().unwrap(),
            name,
        }
    }

    /// The packets side b's nftables loss rules dropped so far (input, egress).
    pub fn dropped(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns_b, "nft", "list", "ruleset"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        out.lines().filter(|l| l.contains("drop")).map(str::trim).collect::<Vec<_>>().join("; ")
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.name]).output();
    }
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    peregrine_datapath::netns::run_in(ns, f).unwrap_or_else(|e| panic!("enter {ns}: {e}"))
}

/// What a [`Watched`] queue publishes: its AF_XDP counters (kernel statistics included) and
/// its queue counters, at most every [`PUBLISH_EVERY`] calls and when it is dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    pub xdp: XdpStats,
    pub queue: QueueStats,
    /// Set once the queue was dropped (the counters are final).
    pub closed: bool,
}

/// Calls between two publications (each reads the kernel's `XDP_STATISTICS`).
pub const PUBLISH_EVERY: u32 = 256;

/// An [`XdpQueue`] that publishes its counters to the test.
pub struct Watched {
    pub inner: XdpQueue,
    pub out: Arc<Mutex<Published>>,
    calls: u32,
}

impl Watched {
    pub fn new(inner: XdpQueue) -> (Self, Arc<Mutex<Published>>) {
        let out = Arc::new(Mutex::new(Published::default()));
        (Self { inner, out: out.clone(), calls: 0 }, out)
    }

    fn publish(&mut self, closed: bool) {
        let p = Published { xdp: self.inner.xdp_stats(), queue: self.inner.stats(), closed };
        *self.out.lock().unwrap() = p;
    }

    fn tick(&mut self) {
        self.calls += 1;
        if self.calls % PUBLISH_EVERY == 0 {
            self.publish(false);
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.publish(true);
    }
}

impl Queue for Watched {
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        self.inner.alloc_tx()
    }
    fn max_tx_buffer(&self) -> usize {
        self.inner.max_tx_buffer()
    }
    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        self.tick();
        self.inner.send(batch)
    }
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        self.tick();
        self.inner.recv(batch)
    }
    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
        self.inner.wait(timeout, writable)
    }
    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &Waker,
    ) -> io::Result<()> {
        self.inner.wait_with(timeout, writable, waker)
    }
    fn stats(&self) -> QueueStats {
        self.inner.stats()
    }
}
