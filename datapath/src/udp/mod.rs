//! udp (in progress).
