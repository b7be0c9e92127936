//! Frames (in progress).
