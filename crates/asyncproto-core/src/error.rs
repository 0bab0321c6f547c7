//! The core's error type.

use std::{error::Error as StdError, fmt, io, time::Duration};

/// Errors from transports, flow control and protocol callbacks.
///
/// Each variant says when it happens and which asyncio exception it replaces.
/// Convert to [`std::io::Error`] with `From` when an I/O error is wanted; the
/// kind is chosen to match (see each variant).
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// `set_write_buffer_limits` got limits that break `high >= low >= 0`
    /// (asyncio: `ValueError('high (…) must be >= low (…) must be >= 0')`).
    ///
    /// Maps to [`io::ErrorKind::InvalidInput`].
    InvalidLimits {
        /// The high-water mark given (or derived).
        high: usize,
        /// The low-water mark given (or derived).
        low: usize,
    },
    /// `write()` or `writelines()` after `write_eof()`
    /// (asyncio: `RuntimeError('Cannot call write() after write_eof()')`).
    ///
    /// Maps to [`io::ErrorKind::BrokenPipe`].
    WriteAfterEof,
    /// The transport cannot do this, e.g. `write_eof()` where
    /// `can_write_eof()` is false (asyncio: `NotImplementedError`).
    ///
    /// Maps to [`io::ErrorKind::Unsupported`].
    Unsupported {
        /// The transport method that was called.
        method: &'static str,
    },
    /// A protocol callback panicked. The connection was aborted and this error
    /// is what `connection_lost` receives (asyncio: the exception the callback
    /// raised, logged as `Fatal error: protocol.X() call failed.`).
    ///
    /// Maps to [`io::ErrorKind::Other`].
    ProtocolPanicked {
        /// The callback that panicked.
        callback: Callback,
        /// The panic message, when the payload was a string.
        message: String,
    },
    /// A [`BufferedProtocol`](crate::BufferedProtocol)'s `get_buffer` returned
    /// an empty buffer; the connection was aborted and this is what
    /// `connection_lost` receives (asyncio: `RuntimeError('get_buffer()
    /// returned an empty buffer')`).
    ///
    /// Maps to [`io::ErrorKind::InvalidInput`].
    EmptyBuffer,
    /// The task driving the connection was dropped before the connection
    /// ended, typically because the Tokio runtime shut down. `connection_lost`
    /// still runs, with this error (asyncio has no equivalent: a closed loop
    /// simply never calls it).
    ///
    /// Maps to [`io::ErrorKind::ConnectionAborted`].
    Cancelled,
    /// The transport is closing or closed, so the operation cannot start
    /// (e.g. `start_tls` on a closed transport).
    ///
    /// Maps to [`io::ErrorKind::NotConnected`].
    Closed,
    /// The TLS handshake did not finish within the handshake timeout
    /// (asyncio: `ConnectionAbortedError('SSL handshake is taking longer than
    /// … seconds: aborting the connection')`).
    ///
    /// Maps to [`io::ErrorKind::TimedOut`].
    TlsHandshakeTimeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// After `close()`, the TLS shutdown (flushing, sending `close_notify`
    /// and waiting for the peer's) did not finish within the shutdown
    /// timeout (asyncio: `TimeoutError('SSL shutdown timed out')`).
    ///
    /// Maps to [`io::ErrorKind::TimedOut`].
    TlsShutdownTimeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// An OS error; `source()` returns it (asyncio: the `OSError` itself, e.g.
    /// `ConnectionResetError`).
    Io(io::Error),
}

/// The protocol callbacks, as named in asyncio; used in
/// [`Error::ProtocolPanicked`] and in tracing events.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callback {
    /// `connection_made`.
    ConnectionMade,
    /// `data_received`.
    DataReceived,
    /// `eof_received`.
    EofReceived,
    /// `get_buffer` (buffered protocols).
    GetBuffer,
    /// `buffer_updated` (buffered protocols).
    BufferUpdated,
    /// `pause_writing`.
    PauseWriting,
    /// `resume_writing`.
    ResumeWriting,
    /// `connection_lost`.
    ConnectionLost,
}

impl Callback {
    /// The asyncio name of the callback, e.g. `"data_received"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectionMade => "connection_made",
            Self::DataReceived => "data_received",
            Self::EofReceived => "eof_received",
            Self::GetBuffer => "get_buffer",
            Self::BufferUpdated => "buffer_updated",
            Self::PauseWriting => "pause_writing",
            Self::ResumeWriting => "resume_writing",
            Self::ConnectionLost => "connection_lost",
        }
    }
}

impl fmt::Display for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Error {
    /// The [`io::ErrorKind`] this error maps to.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::InvalidLimits { .. } => io::ErrorKind::InvalidInput,
            Self::WriteAfterEof => io::ErrorKind::BrokenPipe,
            Self::Unsupported { .. } => io::ErrorKind::Unsupported,
            Self::EmptyBuffer => io::ErrorKind::InvalidInput,
            Self::ProtocolPanicked { .. } => io::ErrorKind::Other,
            Self::Cancelled => io::ErrorKind::ConnectionAborted,
            Self::Closed => io::ErrorKind::NotConnected,
            Self::TlsHandshakeTimeout { .. } | Self::TlsShutdownTimeout { .. } => {
                io::ErrorKind::TimedOut
            }
            Self::Io(e) => e.kind(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLimits { high, low } => {
                write!(f, "high ({high}) must be >= low ({low}) must be >= 0")
            }
            Self::WriteAfterEof => f.write_str("cannot call write() after write_eof()"),
            Self::Unsupported { method } => {
                write!(f, "{method}() is not supported by this transport")
            }
            Self::ProtocolPanicked { callback, message } => {
                write!(f, "protocol.{callback}() panicked: {message}")
            }
            Self::EmptyBuffer => f.write_str("get_buffer() returned an empty buffer"),
            Self::Cancelled => f.write_str("connection task dropped before the connection ended"),
            Self::Closed => f.write_str("transport is closing or closed"),
            Self::TlsHandshakeTimeout { after } => write!(
                f,
                "TLS handshake is taking longer than {} seconds: aborting the connection",
                after.as_secs_f64()
            ),
            Self::TlsShutdownTimeout { .. } => f.write_str("TLS shutdown timed out"),
            Self::Io(_) => f.write_str("i/o error"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => Self::new(other.kind(), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn io_error_keeps_kind_and_source() {
        let e = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert!(e.source().is_some());
        let back = io::Error::from(e);
        assert_eq!(back.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn misuse_maps_to_io_kinds() {
        let e = io::Error::from(Error::InvalidLimits { high: 0, low: 1 });
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "high (0) must be >= low (1) must be >= 0");
        assert_eq!(
            io::Error::from(Error::WriteAfterEof).kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
