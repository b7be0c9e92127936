//! Simulated network: a seeded, deterministic in-memory network on virtual time.
//!
//! A [`SimNetwork`] holds a virtual clock, ports ([`SimQueue`], each bound to a v4 or v6
//! [`std::net::SocketAddr`] and implementing [`crate::Queue`]) and one link per direction between
//! two addresses. Each link ([`LinkConfig`]) models a bottleneck (rate, bounded queue with tail
//! drop, ECN CE marking), random and Gilbert-Elliott burst loss, corruption, one-way delay with
//! order-preserving jitter, reordering, duplication, an MTU and blackhole windows; the network
//! adds NAT rebinding ([`SimNetwork::rebind`]). Each link counts what it did ([`LinkStats`]) and
//! the network can record a per-datagram trace ([`TraceEvent`]).
//!
//! Everything random comes from `ChaCha8Rng` seeded with the network's `u64` seed (one stream
//! per link), and time moves only when the harness says so: the same seed and the same calls give
//! the same trace, in microseconds of wall time per simulated second.
//!
//! ```
//! use std::time::Duration;
//! use peregrine_datapath::sim::{LinkConfig, SimNetwork};
//! use peregrine_datapath::{Queue, RxBatch, TxBatch, TxMeta};
//!
//! let net = SimNetwork::new(42);
//! let mut a = net.bind("10.0.0.1:4433".parse().unwrap()).unwrap();
//! let mut b = net.bind("10.0.0.2:443".parse().unwrap()).unwrap();
//! let cfg = LinkConfig { loss: 0.01, ..LinkConfig::with_delay(Duration::from_millis(20)) };
//! net.set_path(a.local_addr(), b.local_addr(), cfg).unwrap();
//!
//! let mut tx = a.alloc_tx().unwrap();
//! tx.extend_from_slice(b"hello");
//! tx.meta = TxMeta::to(b.local_addr());
//! let mut batch = TxBatch::new();
//! batch.push(tx);
//! a.send(&mut batch).unwrap();
//!
//! let mut rx = RxBatch::new(8);
//! assert_eq!(b.recv(&mut rx).unwrap(), 0, "nothing before the delay");
//! if let Some(t) = net.next_event() {
//!     net.advance_to(t); // jump straight to the delivery
//!     assert_eq!(net.elapsed(), Duration::from_millis(20));
//!     b.recv(&mut rx).unwrap();
//!     assert_eq!(rx.iter().next().unwrap().data(), b"hello");
//! }
//! ```

mod clock;
mod config;
mod link;
mod network;
mod queue;
mod trace;

#[cfg(test)]
mod tests;

pub use config::{
    wire_len, Blackhole, GilbertElliott, LinkConfig, SimError, SimQueueConfig,
    DEFAULT_MAX_GSO_SEGMENTS, DEFAULT_POOL_BUFFERS, DEFAULT_QUEUE_BYTES, DEFAULT_REORDER_DELAY,
    IPV4_UDP_OVERHEAD, IPV6_UDP_OVERHEAD, MAX_UDP_PAYLOAD, MIN_MTU,
};
pub(crate) use link::Link;
pub use link::{LinkDrop, LinkStats};
pub use network::SimNetwork;
pub use queue::SimQueue;
pub use trace::{Fate, TraceEvent};
