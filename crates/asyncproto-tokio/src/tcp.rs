//! TCP transports: `create_connection` and the socket the connection task
//! pumps.

use std::{
    io::{self, IoSlice},
    net::{Shutdown, SocketAddr},
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use asyncproto_core::{StreamProtocol, Transport, TransportInfo, lifecycle::Connection};
use bytes::BytesMut;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpSocket, TcpStream, ToSocketAddrs, lookup_host};
use tracing::Instrument;

use crate::{
    conn::{PollIo, ProtocolHandle, run},
    error::Error,
};

/// Options for [`create_connection`], with asyncio's defaults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use asyncproto_tokio::ConnectOptions;
///
/// let opts = ConnectOptions::new()
///     .local_addr("127.0.0.1:0".parse().unwrap())
///     .keepalive(Some(Duration::from_secs(30)));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to create_connection"]
pub struct ConnectOptions {
    local_addr: Option<SocketAddr>,
    nodelay: bool,
    keepalive: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectOptions {
    /// The defaults: no local address, `TCP_NODELAY` on, no keepalive.
    pub fn new() -> Self {
        Self {
            local_addr: None,
            nodelay: true,
            keepalive: None,
        }
    }

    /// Binds the socket to this address before connecting (asyncio's
    /// `local_addr`). Addresses of the other IP family are tried without it.
    /// Default: none.
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Sets `TCP_NODELAY`. Default: on, as asyncio sets it on every TCP
    /// transport.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Turns on `SO_KEEPALIVE` with this idle time before the first probe.
    /// Default: off (asyncio 3.13's `keep_alive=False`).
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }
}

/// Connects to `addr` over TCP and runs the protocol from `factory` on it
/// (asyncio: `loop.create_connection(protocol_factory, host, port)`).
///
/// `addr` is anything [`tokio::net::lookup_host`] resolves
/// (`"localhost:8888"`, a `SocketAddr`, `("example.org", 80)`); each address
/// is tried in turn until one connects. The factory is called once, after the
/// connection is made; `connection_made` has run when this returns.
///
/// Returns the transport and a [`ProtocolHandle`] that resolves to the
/// protocol after `connection_lost`.
///
/// # Errors
///
/// - [`Error::NoAddresses`] if `addr` resolves to nothing;
/// - [`Error::Connect`] with every attempt's error if none connects (e.g.
///   `ConnectionRefused`);
/// - [`Error::Bind`] if binding [`ConnectOptions::local_addr`] fails;
/// - [`Error::Protocol`] if `connection_made` panicked: the connection was
///   aborted and `connection_lost(Some(ProtocolPanicked))` was delivered;
/// - [`Error::Io`] if resolution fails.
///
/// # Cancel safety
///
/// Not cancel safe once connected: dropping the future while
/// `connection_made` runs is not possible (it is synchronous), but dropping it
/// during the connect closes the half-made socket and calls no callback.
///
/// # Examples
///
/// ```no_run
/// use asyncproto_tokio::{create_connection, ConnectOptions};
/// use asyncproto_core::testing::Recorder;
///
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let (transport, done) =
///     create_connection(Recorder::default, "127.0.0.1:8888", ConnectOptions::new()).await?;
/// transport.write("hello")?;
/// transport.close();
/// let protocol = done.await?;
/// println!("{:?}", protocol.events());
/// # Ok(()) }
/// ```
pub async fn create_connection<P, F>(
    factory: F,
    addr: impl ToSocketAddrs,
    options: ConnectOptions,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
{
    let addrs: Vec<SocketAddr> = lookup_host(addr).await?.collect();
    if addrs.is_empty() {
        return Err(Error::NoAddresses);
    }
    let mut attempts = Vec::new();
    for addr in addrs {
        match connect_one(addr, &options).await {
            Ok(stream) => return establish(factory(), stream, options.nodelay, options.keepalive),
            Err(ConnectError::Bind(e)) => return Err(e),
            Err(ConnectError::Connect(e)) => {
                tracing::debug!(%addr, error = %e, "connect attempt failed");
                attempts.push((addr, e));
            }
        }
    }
    Err(Error::Connect { attempts })
}

enum ConnectError {
    Bind(Error),
    Connect(io::Error),
}

async fn connect_one(
    addr: SocketAddr,
    options: &ConnectOptions,
) -> Result<TcpStream, ConnectError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ConnectError::Connect)?;
    if let Some(local) = options.local_addr
        && local.is_ipv4() == addr.is_ipv4()
    {
        socket.bind(local).map_err(|source| {
            ConnectError::Bind(Error::Bind {
                addr: local,
                source,
            })
        })?;
    }
    socket.connect(addr).await.map_err(ConnectError::Connect)
}

/// Builds the connection for a connected stream, delivers `connection_made`
/// on the caller's task, and spawns the connection task.
pub(crate) fn establish<P: StreamProtocol>(
    protocol: P,
    stream: TcpStream,
    nodelay: bool,
    keepalive: Option<Duration>,
) -> Result<(Transport, ProtocolHandle<P>), Error> {
    let peer = stream.peer_addr().ok();
    let (mut conn, io) = tcp_connection(protocol, stream, peer, nodelay, keepalive);
    let span = conn_span(peer, "client");
    let started = span.in_scope(|| conn.start());
    if !started {
        let err = match conn.error() {
            Some(asyncproto_core::Error::ProtocolPanicked { callback, message }) => {
                asyncproto_core::Error::ProtocolPanicked {
                    callback: *callback,
                    message: message.clone(),
                }
            }
            _ => asyncproto_core::Error::Cancelled,
        };
        drop(io);
        span.in_scope(|| drop(conn.finish()));
        return Err(Error::Protocol(err));
    }
    let transport = conn.transport().clone();
    let join = tokio::spawn(run(conn, io).instrument(span));
    Ok((transport, ProtocolHandle { join }))
}

pub(crate) fn conn_span(peer: Option<SocketAddr>, side: &'static str) -> tracing::Span {
    match peer {
        Some(peer) => tracing::info_span!(parent: None, "conn", kind = "tcp", side, peer = %peer),
        None => tracing::info_span!(parent: None, "conn", kind = "tcp", side),
    }
}

/// Sets the socket options and wraps the stream for the connection task.
pub(crate) fn tcp_connection<P: StreamProtocol>(
    protocol: P,
    stream: TcpStream,
    peer: Option<SocketAddr>,
    nodelay: bool,
    keepalive: Option<Duration>,
) -> (Connection<P>, TcpIo) {
    if let Err(e) = stream.set_nodelay(nodelay) {
        tracing::debug!(error = %e, "setting TCP_NODELAY failed");
    }
    if let Some(idle) = keepalive {
        let ka = TcpKeepalive::new().with_time(idle);
        if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "setting SO_KEEPALIVE failed");
        }
    }
    let mut info = TransportInfo::new("tcp").with_can_write_eof(true);
    if let Some(peer) = peer {
        info = info.with_peer_addr(peer);
    }
    if let Ok(local) = stream.local_addr() {
        info = info.with_local_addr(local);
    }
    let stream = Arc::new(stream);
    let mut conn = Connection::new(protocol, info);
    conn.set_socket(stream.clone());
    (conn, TcpIo(stream))
}

/// A TCP stream as the connection task polls it. The `Arc` lets the transport
/// lend the socket to `with_socket` while the task reads and writes it through
/// `&TcpStream`.
#[derive(Debug)]
pub(crate) struct TcpIo(Arc<TcpStream>);

impl PollIo for TcpIo {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
        }
    }

    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
        }
    }

    fn poll_shutdown_write(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(SockRef::from(&*self.0).shutdown(Shutdown::Write))
    }
}
