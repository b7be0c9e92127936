//! Stream and flow-control limits: ours (validated config) and the peer's (from its transport parameters).

use crate::error::Error;

use super::id::{Dir, MAX_STREAM_COUNT};

/// Default initial receive window per stream: 1 MiB.
pub const DEFAULT_STREAM_RECEIVE_WINDOW: u64 = 1 << 20;
/// Default ceiling for auto-tuning a stream's receive window: 16 MiB.
pub const DEFAULT_MAX_STREAM_RECEIVE_WINDOW: u64 = 16 << 20;
/// Default initial connection receive window: 1.5 MiB.
pub const DEFAULT_RECEIVE_WINDOW: u64 = 3 << 19;
/// Default ceiling for auto-tuning the connection receive window: 24 MiB.
pub const DEFAULT_MAX_RECEIVE_WINDOW: u64 = 24 << 20;
/// Default number of concurrent bidirectional streams the peer may open: 100.
pub const DEFAULT_MAX_CONCURRENT_BIDI: u64 = 100;
/// Default number of concurrent unidirectional streams the peer may open: 100.
pub const DEFAULT_MAX_CONCURRENT_UNI: u64 = 100;
/// Default per-stream send buffer: 1 MiB of unacknowledged data.
pub const DEFAULT_SEND_BUFFER: u64 = 1 << 20;
/// Most a stream's send buffer grows to by auto-tuning (twice the congestion window); a
/// larger configured [`StreamsConfig::with_send_buffer`] still applies.
pub const MAX_AUTO_SEND_BUFFER: u64 = 64 << 20;
/// Default send quantum: a stream keeps its turn among streams of its priority until it has
/// sent 16 KiB in that turn (or has nothing more to send). See [`StreamsConfig::with_send_quantum`].
pub const DEFAULT_SEND_QUANTUM: u64 = 16 << 10;

/// A configuration value outside its allowed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream configuration: {0}")]
pub struct StreamsConfigError(pub &'static str);

/// Our side's stream limits. Build with [`StreamsConfig::default`] and the `with_*` setters,
/// which validate their argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamsConfig {
    stream_receive_window: u64,
    max_stream_receive_window: u64,
    receive_window: u64,
    max_receive_window: u64,
    max_concurrent: [u64; 2],
    send_buffer: u64,
    send_quantum: u64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            stream_receive_window: DEFAULT_STREAM_RECEIVE_WINDOW,
            max_stream_receive_window: DEFAULT_MAX_STREAM_RECEIVE_WINDOW,
            receive_window: DEFAULT_RECEIVE_WINDOW,
            max_receive_window: DEFAULT_MAX_RECEIVE_WINDOW,
            max_concurrent: [DEFAULT_MAX_CONCURRENT_BIDI, DEFAULT_MAX_CONCURRENT_UNI],
            send_buffer: DEFAULT_SEND_BUFFER,
            send_quantum: DEFAULT_SEND_QUANTUM,
        }
    }
}

fn window(v: u64) -> Result<u64, StreamsConfigError> {
    if v <= crate::varint::MAX {
        Ok(v)
    } else {
        Err(StreamsConfigError("window above 2^62-1"))
    }
}

impl StreamsConfig {
    /// Initial receive window of every stream, in bytes (advertised as all three
    /// `initial_max_stream_data_*` transport parameters). Default 1 MiB. Larger means more
    /// memory per stream the peer may fill, and fewer round trips before full speed.
    pub fn with_stream_receive_window(mut self, bytes: u64) -> Result<Self, StreamsConfigError> {
        self.stream_receive_window = window(bytes)?;
        Ok(self)
    }

    /// Largest size auto-tuning may grow a stream's receive window to, in bytes. Default
    /// 16 MiB; a value at or below the initial window disables stream auto-tuning.
    pub fn with_max_stream_receive_window(
        mut self,
        bytes: u64,
    ) -> Result<Self, StreamsConfigError> {
        self.max_stream_receive_window = window(bytes)?;
        Ok(self)
    }

    /// Initial connection receive window, in bytes (`initial_max_data`). Default 1.5 MiB.
    /// Bounds what the peer may have buffered here across all streams.
    pub fn with_receive_window(mut self, bytes: u64) -> Result<Self, StreamsConfigError> {
        self.receive_window = window(bytes)?;
        Ok(self)
    }

    /// Largest size auto-tuning may grow the connection receive window to, in bytes.
    /// Default 24 MiB; at or below the initial window disables connection auto-tuning.
    pub fn with_max_receive_window(mut self, bytes: u64) -> Result<Self, StreamsConfigError> {
        self.max_receive_window = window(bytes)?;
        Ok(self)
    }

    /// How many streams of type `dir` the peer may have open at once (the initial
    /// `initial_max_streams_*`, then one more credit per finished stream). Default 100 each.
    /// Each open stream costs a receive buffer of up to its window.
    pub fn with_max_concurrent_streams(
        mut self,
        dir: Dir,
        count: u64,
    ) -> Result<Self, StreamsConfigError> {
        if count > MAX_STREAM_COUNT {
            return Err(StreamsConfigError("stream count above 2^60"));
        }
        self.max_concurrent[dir.index()] = count;
        Ok(self)
    }

    /// Unacknowledged bytes a stream buffers before writes return `Blocked`, in bytes.
    /// Default 1 MiB. A single larger write is still accepted into an empty buffer. This is
    /// the floor: the connection raises it to twice its congestion window (up to
    /// [`MAX_AUTO_SEND_BUFFER`]) so one stream can fill the path.
    pub fn with_send_buffer(mut self, bytes: u64) -> Result<Self, StreamsConfigError> {
        if bytes == 0 {
            return Err(StreamsConfigError("send buffer of zero bytes"));
        }
        self.send_buffer = bytes;
        Ok(self)
    }

    /// Bytes a stream may send in one turn of the round-robin among streams of equal
    /// priority before the next stream's turn (a deficit round-robin). Default 16 KiB: a
    /// response of a few packets goes out whole and in order, so it completes after its own
    /// packets rather than after a round over every busy stream, in fewer STREAM frames; bulk
    /// streams still share the path in 16 KiB turns. 1 gives one frame per turn.
    pub fn with_send_quantum(mut self, bytes: u64) -> Result<Self, StreamsConfigError> {
        if bytes == 0 {
            return Err(StreamsConfigError("send quantum of zero bytes"));
        }
        self.send_quantum = bytes;
        Ok(self)
    }

    /// The send quantum (see [`Self::with_send_quantum`]).
    pub fn send_quantum(&self) -> u64 {
        self.send_quantum
    }

    /// The initial per-stream receive window (our `initial_max_stream_data_*`).
    pub fn stream_receive_window(&self) -> u64 {
        self.stream_receive_window
    }

    /// The auto-tuning ceiling of stream windows.
    pub fn max_stream_receive_window(&self) -> u64 {
        self.max_stream_receive_window.max(self.stream_receive_window)
    }

    /// The initial connection receive window (our `initial_max_data`).
    pub fn receive_window(&self) -> u64 {
        self.receive_window
    }

    /// The auto-tuning ceiling of the connection window.
    pub fn max_receive_window(&self) -> u64 {
        self.max_receive_window.max(self.receive_window)
    }

    /// The initial stream limit for `dir` (our `initial_max_streams_bidi` / `_uni`).
    pub fn max_concurrent_streams(&self, dir: Dir) -> u64 {
        self.max_concurrent[dir.index()]
    }

    /// The per-stream send buffer size.
    pub fn send_buffer(&self) -> u64 {
        self.send_buffer
    }
}

/// The peer's transport parameters that govern what we may send (RFC 9000 §18.2); all
/// zero until the handshake delivers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerLimits {
    /// `initial_max_data`: connection-level send credit.
    pub initial_max_data: u64,
    /// `initial_max_stream_data_bidi_local`: credit on bidirectional streams the peer opens.
    pub initial_max_stream_data_bidi_local: u64,
    /// `initial_max_stream_data_bidi_remote`: credit on bidirectional streams we open.
    pub initial_max_stream_data_bidi_remote: u64,
    /// `initial_max_stream_data_uni`: credit on unidirectional streams we open.
    pub initial_max_stream_data_uni: u64,
    /// `initial_max_streams_bidi`: bidirectional streams we may open.
    pub initial_max_streams_bidi: u64,
    /// `initial_max_streams_uni`: unidirectional streams we may open.
    pub initial_max_streams_uni: u64,
}

impl PeerLimits {
    /// Checks the stream counts.
    pub fn validate(&self) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
        //# If either is received, the connection MUST be closed
        //# immediately with a connection error of type TRANSPORT_PARAMETER_ERROR
        //# if the offending value was received in a transport parameter or of
        //# type FRAME_ENCODING_ERROR if it was received in a frame; see
        //# Section 10.2.
        if self.initial_max_streams_bidi > MAX_STREAM_COUNT
            || self.initial_max_streams_uni > MAX_STREAM_COUNT
        {
            return Err(Error::transport_parameter("max_streams above 2^60"));
        }
        Ok(())
    }

    /// `initial_max_streams_*` for `dir`.
    pub fn max_streams(&self, dir: Dir) -> u64 {
        match dir {
            Dir::Bi => self.initial_max_streams_bidi,
            Dir::Uni => self.initial_max_streams_uni,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TransportErrorCode;

    #[test]
    fn setters_validate() {
        let c = StreamsConfig::default()
            .with_stream_receive_window(1000)
            .unwrap()
            .with_max_stream_receive_window(10)
            .unwrap()
            .with_max_concurrent_streams(Dir::Uni, 3)
            .unwrap();
        assert_eq!(c.max_stream_receive_window(), 1000, "ceiling never below the initial window");
        assert_eq!(c.max_concurrent_streams(Dir::Uni), 3);
        assert_eq!(c.max_concurrent_streams(Dir::Bi), DEFAULT_MAX_CONCURRENT_BIDI);
        assert!(StreamsConfig::default().with_receive_window(1 << 62).is_err());
        assert!(StreamsConfig::default()
            .with_max_concurrent_streams(Dir::Bi, (1 << 60) + 1)
            .is_err());
        assert!(StreamsConfig::default().with_send_buffer(0).is_err());
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
    //= type=test
    //# If either is received, the connection MUST be closed
    //# immediately with a connection error of type TRANSPORT_PARAMETER_ERROR
    //# if the offending value was received in a transport parameter or of
    //# type FRAME_ENCODING_ERROR if it was received in a frame; see
    //# Section 10.2.
    #[test]
    fn peer_stream_counts_above_2_60_rejected() {
        let ok = PeerLimits { initial_max_streams_bidi: 1 << 60, ..Default::default() };
        assert!(ok.validate().is_ok());
        let bad = PeerLimits { initial_max_streams_uni: (1 << 60) + 1, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
    }
}
