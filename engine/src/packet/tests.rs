//! Packet tests.
