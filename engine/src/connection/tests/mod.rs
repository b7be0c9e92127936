//! Connection tests on the simulated network: a deterministic client/server [`pair::Pair`].

mod pair;

mod handshake;
