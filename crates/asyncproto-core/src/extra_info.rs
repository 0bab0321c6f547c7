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

/// asyncio's key for the remote address.
pub const PEERNAME: &str = "peername";
/// asyncio's key for the local address.
pub const SOCKNAME: &str = "sockname";
/// asyncio's key for the socket.
pub const SOCKET: &str = "socket";

/// A value answered by [`get_extra_info`](crate::Transport::get_extra_info).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraInfo {
    /// An IP address and port (`peername`, `sockname`).
    Addr(SocketAddr),
    /// The raw descriptor of the transport's socket (`socket`), answered while
    /// the socket is open. Use [`Transport::with_socket`](crate::Transport::with_socket)
    /// for safe access (e.g. with `socket2::SockRef`).
    #[cfg(unix)]
    Fd(RawFd),
}

impl ExtraInfo {
    /// The address, if this is one.
    pub fn as_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Addr(a) => Some(*a),
            #[cfg(unix)]
            Self::Fd(_) => None,
        }
    }
}

impl fmt::Display for ExtraInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => a.fmt(f),
            #[cfg(unix)]
            Self::Fd(fd) => write!(f, "fd {fd}"),
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
