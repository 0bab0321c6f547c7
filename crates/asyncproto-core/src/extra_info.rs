//! `get_extra_info`: what a transport can tell about itself.
//!
//! Rust users get typed accessors on [`Transport`](crate::Transport)
//! ([`peer_addr`](crate::Transport::peer_addr),
//! [`local_addr`](crate::Transport::local_addr),
//! [`with_socket`](crate::Transport::with_socket)); migrators get
//! [`get_extra_info`](crate::Transport::get_extra_info) with asyncio's key
//! names, answering an [`ExtraInfo`] value.

use std::{fmt, net::SocketAddr};

#[cfg(unix)]
use std::os::fd::RawFd;

#[cfg(feature = "tls")]
use crate::tls::TlsConfig as TlsConfigRef;

/// asyncio's key for the remote address.
pub const PEERNAME: &str = "peername";
/// asyncio's key for the local address.
pub const SOCKNAME: &str = "sockname";
/// asyncio's key for the socket.
pub const SOCKET: &str = "socket";
/// asyncio's key for a TLS peer's certificate.
pub const PEERCERT: &str = "peercert";
/// asyncio's key for a TLS session's cipher.
pub const CIPHER: &str = "cipher";
/// asyncio's key for a TLS session's compression (always `None`: TLS
/// compression is insecure and `rustls` does not implement it).
pub const COMPRESSION: &str = "compression";
/// asyncio's key for the TLS context (here the `rustls` configuration).
pub const SSLCONTEXT: &str = "sslcontext";
/// asyncio's key for the TLS session object (here a [`TlsInfo`](crate::tls::TlsInfo)).
pub const SSL_OBJECT: &str = "ssl_object";

/// A value answered by [`get_extra_info`](crate::Transport::get_extra_info).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraInfo {
    /// An IP address and port (`peername`, `sockname`).
    Addr(SocketAddr),
    /// The raw descriptor of the transport's socket (`socket`), answered while
    /// the socket is open. Use [`Transport::with_socket`](crate::Transport::with_socket)
    /// for safe access (e.g. with `socket2::SockRef`).
    #[cfg(unix)]
    Fd(RawFd),
    /// The TLS peer's leaf certificate, DER (`peercert`; asyncio answers a
    /// dict of its fields).
    #[cfg(feature = "tls")]
    PeerCert(rustls::pki_types::CertificateDer<'static>),
    /// The negotiated cipher (`cipher`).
    #[cfg(feature = "tls")]
    Cipher(crate::tls::Cipher),
    /// The `rustls` configuration (`sslcontext`).
    #[cfg(feature = "tls")]
    SslContext(crate::tls::TlsConfig),
    /// The TLS session's details (`ssl_object`).
    #[cfg(feature = "tls")]
    SslObject(std::sync::Arc<crate::tls::TlsInfo>),
}

impl ExtraInfo {
    /// The address, if this is one.
    pub fn as_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Addr(a) => Some(*a),
            #[allow(
                unreachable_patterns,
                reason = "other variants exist with some features"
            )]
            _ => None,
        }
    }
}

impl fmt::Display for ExtraInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => a.fmt(f),
            #[cfg(unix)]
            Self::Fd(fd) => write!(f, "fd {fd}"),
            #[cfg(feature = "tls")]
            Self::PeerCert(c) => write!(f, "certificate ({} bytes DER)", c.len()),
            #[cfg(feature = "tls")]
            Self::Cipher(c) => c.fmt(f),
            #[cfg(feature = "tls")]
            Self::SslContext(TlsConfigRef::Client(_)) => f.write_str("TLS client config"),
            #[cfg(feature = "tls")]
            Self::SslContext(TlsConfigRef::Server(_)) => f.write_str("TLS server config"),
            #[cfg(feature = "tls")]
            Self::SslObject(i) => write!(f, "TLS session ({:?})", i.protocol_version()),
        }
    }
}

/// What a backend tells the core about a new transport: its kind, addresses
/// and capabilities. Built by backends; users read it through the transport.
///
/// # Examples
///
/// ```
/// use asyncproto_core::TransportInfo;
///
/// let info = TransportInfo::new("tcp")
///     .with_peer_addr("127.0.0.1:9".parse().unwrap())
///     .with_can_write_eof(true);
/// assert_eq!(info.kind(), "tcp");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a TransportInfo does nothing until given to a Connection"]
pub struct TransportInfo {
    pub(crate) kind: &'static str,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) local_addr: Option<SocketAddr>,
    pub(crate) can_write_eof: bool,
}

impl TransportInfo {
    /// Info for a transport of `kind` (e.g. `"tcp"`, `"memory"`), with no
    /// addresses and `can_write_eof() == false`.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            peer_addr: None,
            local_addr: None,
            can_write_eof: false,
        }
    }

    /// Sets the remote address (`peername`).
    pub fn with_peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_addr = Some(addr);
        self
    }

    /// Sets the local address (`sockname`).
    pub fn with_local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Whether the transport supports `write_eof()` (half-close).
    pub fn with_can_write_eof(mut self, yes: bool) -> Self {
        self.can_write_eof = yes;
        self
    }

    /// The transport's kind, e.g. `"tcp"`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}
