//! Tests of the [`Streams`](super::Streams) manager.
