//! Connection tests on the simulated network: a deterministic client/server [`pair::Pair`].

mod app;
mod batching;
mod pair;

mod close;
mod handshake;
mod mtud;
mod protocol;
mod qlog;
mod transfer;
