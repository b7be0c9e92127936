//! Packet protection and TLS (in progress).
