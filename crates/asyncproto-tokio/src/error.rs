//! The backend's error type.

use std::{error::Error as StdError, fmt, io, net::SocketAddr};

/// Errors from creating connections and servers.
///
/// Errors on an established connection reach the protocol through
/// `connection_lost` as [`asyncproto_core::Error`] instead.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// Name resolution returned no address (asyncio: `OSError('getaddrinfo()
    /// returned empty list')`).
    NoAddresses,
    /// Every connection attempt failed; one entry per address tried, in order
    /// (asyncio: the one `OSError`, or `OSError('Multiple exceptions: …')`;
    /// 3.12's `all_errors=True` gives them all, as here).
    Connect {
        /// Each address tried and why it failed.
        attempts: Vec<(SocketAddr, io::Error)>,
    },
    /// Binding a socket to `addr` failed, e.g. `AddrInUse` (asyncio:
    /// `OSError(EADDRINUSE, 'error while attempting to bind on address …')`).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error; also returned by `source()`.
        source: io::Error,
    },
    /// The protocol failed in `connection_made` (it panicked); the connection
    /// was aborted and `connection_lost(Some(..))` delivered. asyncio's TLS
    /// transports behave so; its plain TCP only logs.
    Protocol(asyncproto_core::Error),
    /// The protocol was dropped after panicking in `connection_lost`, so a
    /// [`ProtocolHandle`](crate::ProtocolHandle) has nothing to return.
    ProtocolDropped,
    /// `serve_forever()` or `start_serving()` on a closed server (asyncio:
    /// `RuntimeError('Server … is closed')`).
    ServerClosed,
    /// `serve_forever()` while another `serve_forever()` runs (asyncio:
    /// `RuntimeError('server … is already being awaited on serve_forever()')`).
    AlreadyServing,
    /// A TLS timeout was zero (asyncio: `ValueError('ssl_handshake_timeout
    /// should be a positive number, got 0')`).
    InvalidTimeout {
        /// The option: `"handshake_timeout"` or `"shutdown_timeout"`.
        name: &'static str,
    },
    /// TLS as a client with no server name given and none to derive (asyncio:
    /// `ValueError('You must set server_hostname when using ssl without a
    /// host')`).
    MissingServerName,
    /// The TLS handshake failed: the peer's certificate was rejected, the
    /// name did not match, no common version or suite, the peer sent
    /// something that is not TLS, or the connection broke during it
    /// (`ConnectionReset` for an EOF, as asyncio). The `rustls` error, if
    /// any, is the source of this `io::Error` (see [`Error::tls_error`]).
    Tls(io::Error),
    /// The TLS handshake did not finish within the handshake timeout
    /// (asyncio: `ConnectionAbortedError('SSL handshake is taking longer than
    /// … seconds: aborting the connection')`).
    TlsHandshakeTimeout {
        /// The timeout.
        after: std::time::Duration,
    },
    /// Another OS error; `source()` returns it.
    Io(io::Error),
}

impl Error {
    /// The [`io::ErrorKind`] that best describes the error.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::NoAddresses => io::ErrorKind::NotFound,
            Self::Connect { attempts } => match attempts.as_slice() {
                [] => io::ErrorKind::NotFound,
                [(_, first), rest @ ..] => {
                    if rest.iter().all(|(_, e)| e.kind() == first.kind()) {
                        first.kind()
                    } else {
                        io::ErrorKind::Other
                    }
                }
            },
            Self::Bind { source, .. } => source.kind(),
            Self::Protocol(e) => e.kind(),
            Self::ProtocolDropped => io::ErrorKind::Other,
            Self::ServerClosed | Self::AlreadyServing => io::ErrorKind::Other,
            Self::InvalidTimeout { .. } | Self::MissingServerName => io::ErrorKind::InvalidInput,
            Self::Tls(e) => e.kind(),
            Self::TlsHandshakeTimeout { .. } => io::ErrorKind::TimedOut,
            Self::Io(e) => e.kind(),
        }
    }

    /// The `rustls` error behind a failed handshake or connection, if any
    /// (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        let io = match self {
            Self::Tls(e) | Self::Io(e) => e,
            Self::Protocol(asyncproto_core::Error::Io(e)) => e,
            _ => return None,
        };
        io.get_ref()?.downcast_ref::<rustls::Error>()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAddresses => f.write_str("name resolution returned no address"),
            Self::Connect { attempts } => match attempts.as_slice() {
                [(addr, e)] => write!(f, "connect to {addr} failed: {e}"),
                _ => {
                    f.write_str("multiple exceptions: ")?;
                    for (i, (addr, e)) in attempts.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "[{addr}] {e}")?;
                    }
                    Ok(())
                }
            },
            Self::Bind { addr, .. } => {
                write!(f, "error while attempting to bind on address {addr}")
            }
            Self::Protocol(_) => f.write_str("protocol failed in connection_made"),
            Self::ProtocolDropped => {
                f.write_str("protocol was dropped after panicking in connection_lost")
            }
            Self::ServerClosed => f.write_str("server is closed"),
            Self::AlreadyServing => {
                f.write_str("server is already being awaited on serve_forever()")
            }
            Self::InvalidTimeout { name } => {
                write!(f, "{name} should be a positive duration, got 0")
            }
            Self::MissingServerName => f.write_str(
                "a TLS client needs a server name: none was given and none can be derived",
            ),
            Self::Tls(_) => f.write_str("TLS handshake failed"),
            Self::TlsHandshakeTimeout { after } => write!(
                f,
                "TLS handshake is taking longer than {} seconds: aborting the connection",
                after.as_secs_f64()
            ),
            Self::Io(_) => f.write_str("i/o error"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Connect { attempts } => attempts.first().map(|(_, e)| e as _),
            Self::Bind { source, .. } => Some(source),
            Self::Protocol(e) => Some(e),
            Self::Io(e) | Self::Tls(e) => Some(e),
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
