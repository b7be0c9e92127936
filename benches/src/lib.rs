//! Shared helpers for the Peregrine benchmarks.
