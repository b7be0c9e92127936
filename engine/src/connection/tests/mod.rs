//! Connection tests on the simulated network: a deterministic client/server [`pair::Pair`].

mod app;
mod batching;
mod pair;

mod ack_frequency;
mod bbr;
mod close;
mod datagrams;
mod exhaustion;
mod handshake;
mod migration;
mod mtud;
mod mtud_large;
mod new_token;
mod protocol;
mod qlog;
mod transfer;
mod versions;
mod zero_rtt;
