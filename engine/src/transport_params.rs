//! Transport parameters (in progress).
