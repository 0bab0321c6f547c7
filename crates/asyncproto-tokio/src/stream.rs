//! Transports over sockets and streams that already exist: asyncio's
//! `create_connection(sock=)` and `connect_accepted_socket`, and
//! [`connect_stream`] for any [`AsyncRead`] + [`AsyncWrite`].

use std::{
    future::Future,
    io::{self, IoSlice},
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll, ready},
};

use asyncproto_core::{StreamProtocol, Transport, TransportInfo, lifecycle::Connection};
use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::{TcpStream, UnixStream},
};

use crate::{
    conn::{PollIo, ProtocolHandle, conn_span, spawn_connection},
    error::Error,
    socket::{self, MaybeTls},
    stream::sealed::Socket,
    tcp::{ConnectOptions, configure, tcp_info},
};

/// An already-connected stream socket that [`create_connection_with_sock`] and
/// [`connect_accepted_socket`] can run a protocol on (asyncio's `sock=`
/// argument).
///
/// Implemented for [`std::net::TcpStream`], [`tokio::net::TcpStream`],
/// [`std::os::unix::net::UnixStream`] and [`tokio::net::UnixStream`]; the
/// trait is sealed. A std socket is switched to non-blocking mode and
/// registered with the current Tokio runtime; a Tokio socket is used as it is.
/// The socket moves into the transport, which closes it when the connection
/// ends.
///
/// # Examples
///
/// ```
/// use asyncproto_tokio::ConnectedSocket;
///
/// fn takes_any<S: ConnectedSocket>(_sock: S) {}
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// takes_any(a);
/// ```
pub trait ConnectedSocket: sealed::Sealed + Send + 'static {}

impl ConnectedSocket for std::net::TcpStream {}
impl ConnectedSocket for TcpStream {}
impl ConnectedSocket for std::os::unix::net::UnixStream {}
impl ConnectedSocket for UnixStream {}

/// Runs the protocol from `factory` on an already-connected socket (asyncio:
/// `loop.create_connection(protocol_factory, sock=sock)`).
///
/// The factory is called once; `connection_made` has run when this returns.
/// Returns the transport and a [`ProtocolHandle`] that resolves to the
/// protocol after `connection_lost`, exactly as
/// [`create_connection`](crate::create_connection) does.
///
/// - A TCP socket gives a `"tcp"` transport: `TCP_NODELAY` is turned on, as
///   asyncio does for every TCP transport; `peer_addr`/`local_addr` (asyncio's
///   `peername`/`sockname`) come from the socket.
/// - A Unix socket gives a `"unix"` transport with `can_write_eof() == true`
///   and [`Transport::with_socket`]. Its `peer_addr` and `local_addr` are
///   `None`: asyncio answers path strings for Unix sockets, and
///   [`TransportInfo`] holds only IP addresses.
///
/// None of `options` applies to an existing socket yet: as in asyncio, the
/// `sock=` path ignores `local_addr` and `keep_alive`, and `TCP_NODELAY` is
/// always turned on (`nodelay(false)` is not honoured here).
///
/// # Errors
///
/// - [`Error::Io`] if a std socket cannot be made non-blocking or registered
///   with Tokio; the factory is not called then;
/// - [`Error::Protocol`] if `connection_made` panicked: the socket was closed
///   and `connection_lost(Some(ProtocolPanicked))` was delivered.
///
/// # Panics
///
/// If called outside a Tokio runtime with I/O enabled (as Tokio's
/// `from_std`).
///
/// # Cancel safety
///
/// Everything happens on the first poll, which completes. Dropping the future
/// before it is polled closes the socket and calls nothing.
///
/// # Examples
///
/// The spec's *Connecting Existing Sockets* example, on a socketpair:
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
///
/// use asyncproto_core::testing::{Event, Recorder};
/// use asyncproto_tokio::{ConnectOptions, create_connection_with_sock};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (rsock, mut wsock) = UnixStream::pair()?;
/// let (transport, done) =
///     create_connection_with_sock(Recorder::default, rsock, ConnectOptions::new()).await?;
/// assert_eq!(transport.kind(), "unix");
/// wsock.write_all(b"abc")?;
/// drop(wsock); // EOF: the Recorder's eof_received returns false, which closes
/// let protocol = done.await?;
/// assert_eq!(
///     protocol.events(),
///     [Event::Made, Event::Data("abc".into()), Event::Eof, Event::Lost(None)]
/// );
/// # Ok(()) }
/// ```
pub async fn create_connection_with_sock<P, F, S>(
    factory: F,
    sock: S,
    options: ConnectOptions,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
    S: ConnectedSocket,
{
    // asyncio: sock= with ssl needs server_hostname; nothing to derive it
    // from.
    #[cfg(feature = "tls")]
    let side = match &options.tls {
        Some(tls) => Some(crate::tls::TlsSide::client(tls, None)?),
        None => None,
    };
    #[cfg(not(feature = "tls"))]
    let side = {
        let _ = options;
        None
    };
    connect_socket(factory, sock, "client", side.as_ref()).await
}

/// Runs the protocol from `factory` on a socket accepted outside asyncproto
/// (asyncio: `loop.connect_accepted_socket(protocol_factory, sock)`).
///
/// The same as [`create_connection_with_sock`], except that the connection's
/// `tracing` span says `side = "server"`: asyncio offers it for servers that
/// accept connections themselves and hand them to the loop.
///
/// # Errors
///
/// As [`create_connection_with_sock`].
///
/// # Panics
///
/// As [`create_connection_with_sock`].
///
/// # Cancel safety
///
/// As [`create_connection_with_sock`].
///
/// # Examples
///
/// ```
/// use std::net::TcpListener;
///
/// use asyncproto_core::testing::{Event, Recorder};
/// use asyncproto_tokio::{ConnectOptions, connect_accepted_socket};
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A listener asyncproto does not own, and a client it does not know.
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (sock, peer) = listener.accept()?; // already queued: does not block
///
/// let (transport, done) =
///     connect_accepted_socket(Recorder::default, sock, ConnectOptions::new()).await?;
/// assert_eq!(transport.peer_addr(), Some(peer));
/// transport.write("roger")?;
/// transport.close();
///
/// let mut reply = Vec::new();
/// client.read_to_end(&mut reply).await?; // never block the runtime's thread
/// assert_eq!(reply, b"roger");
/// assert_eq!(done.await?.events(), [Event::Made, Event::Lost(None)]);
/// # Ok(()) }
/// ```
pub async fn connect_accepted_socket<P, F, S>(
    factory: F,
    sock: S,
    options: ConnectOptions,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
    S: ConnectedSocket,
{
    #[cfg(feature = "tls")]
    let side = match &options.tls_server {
        Some(tls) => Some(crate::tls::TlsSide::server(tls)?),
        None => None,
    };
    #[cfg(not(feature = "tls"))]
    let side = {
        let _ = options;
        None
    };
    connect_socket(factory, sock, "server", side.as_ref()).await
}

/// Runs the protocol from `factory` over any byte stream: a
/// [`tokio::io::duplex`] pipe, a TLS stream, a serial port.
///
/// The connection task reads with [`AsyncRead::poll_read`], writes the
/// transport's buffer with [`AsyncWrite::poll_write_vectored`] (a writer
/// without vectored writes takes one buffer at a time), calls
/// [`AsyncWrite::poll_flush`] after each write, and performs `write_eof()` with
/// [`AsyncWrite::poll_shutdown`], so `can_write_eof()` is true. The transport's
/// kind is `"stream"`; it has no addresses and no socket
/// ([`Transport::with_socket`] answers `None`). `close()` flushes the
/// transport's buffer, then calls `poll_shutdown` (a TLS stream sends its
/// `close_notify`), then the stream is dropped; `abort()` drops it at once.
///
/// The factory is called once; `connection_made` has run when this returns.
/// None of `options` applies to a stream yet.
///
/// # Errors
///
/// [`Error::Protocol`] if `connection_made` panicked: the stream was dropped
/// and `connection_lost(Some(ProtocolPanicked))` was delivered.
///
/// # Panics
///
/// If called outside a Tokio runtime (the connection task is spawned).
///
/// # Cancel safety
///
/// Everything happens on the first poll, which completes. Dropping the future
/// before it is polled drops the stream and calls nothing.
///
/// # Examples
///
/// ```
/// use asyncproto_core::testing::{Event, Recorder};
/// use asyncproto_tokio::{ConnectOptions, connect_stream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ours, mut theirs) = tokio::io::duplex(64);
/// let (transport, done) = connect_stream(Recorder::default, ours, ConnectOptions::new()).await?;
/// assert_eq!(transport.kind(), "stream");
///
/// transport.write("ping")?;
/// transport.write_eof()?;
/// let mut got = Vec::new();
/// theirs.read_to_end(&mut got).await?; // ends at our write_eof
/// assert_eq!(got, b"ping");
///
/// theirs.write_all(b"pong").await?;
/// drop(theirs); // EOF: the Recorder's eof_received returns false, which closes
/// let protocol = done.await?;
/// assert_eq!(
///     protocol.events(),
///     [Event::Made, Event::Data("pong".into()), Event::Eof, Event::Lost(None)]
/// );
/// # Ok(()) }
/// ```
pub async fn connect_stream<P, F, S>(
    factory: F,
    io: S,
    options: ConnectOptions,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let _ = options;
    let info = TransportInfo::new("stream").with_can_write_eof(true);
    let mut conn = Connection::new(factory(), info);
    conn.shutdown_on_close();
    let io = AnyStream {
        io,
        flush_pending: false,
    };
    spawn_connection(conn, io, conn_span("stream", None, None))
}

mod sealed {
    use tokio::net::{TcpStream, UnixStream};

    /// Turns a connected socket into a Tokio one; the seal of
    /// [`ConnectedSocket`](super::ConnectedSocket).
    #[expect(
        unnameable_types,
        reason = "a sealed trait: reachable as a supertrait, named by no user"
    )]
    pub trait Sealed {
        /// Registers the socket with the current runtime.
        fn into_tokio(self) -> std::io::Result<Socket>;
    }

    /// A connected socket, registered with Tokio.
    #[expect(
        unnameable_types,
        reason = "returned by the sealed trait's method, which users cannot call"
    )]
    #[derive(Debug)]
    pub enum Socket {
        /// A TCP stream.
        Tcp(TcpStream),
        /// A Unix stream.
        Unix(UnixStream),
    }
}

impl sealed::Sealed for std::net::TcpStream {
    fn into_tokio(self) -> io::Result<Socket> {
        self.set_nonblocking(true)?;
        TcpStream::from_std(self).map(Socket::Tcp)
    }
}

impl sealed::Sealed for TcpStream {
    fn into_tokio(self) -> io::Result<Socket> {
        Ok(Socket::Tcp(self))
    }
}

impl sealed::Sealed for std::os::unix::net::UnixStream {
    fn into_tokio(self) -> io::Result<Socket> {
        self.set_nonblocking(true)?;
        UnixStream::from_std(self).map(Socket::Unix)
    }
}

impl sealed::Sealed for UnixStream {
    fn into_tokio(self) -> io::Result<Socket> {
        Ok(Socket::Unix(self))
    }
}

// asyncio: base_events.BaseEventLoop._create_connection_transport, which both
// create_connection(sock=) and connect_accepted_socket end in.
async fn connect_socket<P, F, S>(
    factory: F,
    sock: S,
    side: &'static str,
    tls: MaybeTls<'_>,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
    S: ConnectedSocket,
{
    match sock.into_tokio()? {
        Socket::Tcp(stream) => {
            // asyncio: getpeername(), None on error (e.g. an unconnected
            // socket).
            let peer = stream.peer_addr().ok();
            // asyncio: selector_events._SelectorSocketTransport sets
            // TCP_NODELAY on every TCP transport, sock= ones included.
            configure(&stream, true, None);
            let info = tcp_info(&stream, peer);
            let span = conn_span("tcp", Some(side), peer);
            socket::start(factory, Arc::new(stream), info, span, tls).await
        }
        Socket::Unix(stream) => {
            // No addresses: asyncio's are path strings, TransportInfo holds
            // only SocketAddrs.
            let info = TransportInfo::new("unix").with_can_write_eof(true);
            let span = conn_span("unix", Some(side), None);
            socket::start(factory, Arc::new(stream), info, span, tls).await
        }
    }
}

/// Any `AsyncRead + AsyncWrite` as the connection task polls it.
struct AnyStream<S> {
    io: S,
    /// A write went through and its `poll_flush` has not finished yet.
    flush_pending: bool,
}

impl<S: AsyncWrite + Unpin> AnyStream<S> {
    /// Finishes a pending flush; `Ready(Ok)` at once when none is pending.
    fn poll_flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.flush_pending {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.flush_pending = false;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S> PollIo for AnyStream<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        // A flush left pending by the last write is retried whenever the task
        // reads, so a writer that holds bytes until flushed still sends them.
        if let Poll::Ready(Err(e)) = self.poll_flush_pending(cx) {
            return Poll::Ready(Err(e));
        }
        // Tokio's read_buf future keeps no state between polls, so one poll
        // of a fresh future is `poll_read_buf` (without tokio-util's `io`
        // feature): it reads into the spare capacity, no zeroing.
        pin!(self.io.read_buf(buf)).poll(cx)
    }

    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Err(e)) = self.poll_flush_pending(cx) {
            return Poll::Ready(Err(e));
        }
        let mut rb = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        Poll::Ready(Ok(rb.filled().len()))
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Give the writer nothing more while it has bytes to flush.
        ready!(self.poll_flush_pending(cx))?;
        let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        self.flush_pending = true;
        // A flush error surfaces on the next call; `n` bytes were taken.
        let _ = self.poll_flush_pending(cx);
        Poll::Ready(Ok(n))
    }

    fn poll_shutdown_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // poll_shutdown flushes first (AsyncWrite's contract).
        ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
        self.flush_pending = false;
        Poll::Ready(Ok(()))
    }
}
