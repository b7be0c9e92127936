//! Packets (in progress).
