//! TCP and Unix stream sockets as the per-connection task polls them.
//!
//! The task holds the socket in an `Arc` so that the transport can lend it
//! to `with_socket` while the task reads and writes through `&Stream`, using
//! Tokio's readiness API (`poll_*_ready` + `try_*`). One generic
//! [`PollIo`] impl serves both kinds.

use std::{
    io::{self, IoSlice, Read},
    net::Shutdown,
    sync::Arc,
    task::{Context, Poll, ready},
};

use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use socket2::SockRef;
use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::{TcpStream, UnixStream},
};

use asyncproto_core::{StreamProtocol, Transport, TransportInfo, lifecycle::Connection};

use crate::{
    conn::{PollIo, ProtocolHandle, spawn_connection},
    error::Error,
};

/// Tokio's readiness API, the same on `TcpStream` and `UnixStream`.
pub(crate) trait ReadyStream: std::os::fd::AsFd + Send + Sync + 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    fn shutdown_write(&self) -> io::Result<()>;
}

macro_rules! ready_stream {
    ($ty:ty) => {
        impl ReadyStream for $ty {
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$ty>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$ty>::poll_write_ready(self, cx)
            }
            fn try_io<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                <$ty>::try_io(self, interest, f)
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                <$ty>::try_write_vectored(self, bufs)
            }
            fn shutdown_write(&self) -> io::Result<()> {
                SockRef::from(self).shutdown(Shutdown::Write)
            }
        }
    };
}

ready_stream!(TcpStream);
ready_stream!(UnixStream);

/// Reads with `read` if the socket is known to be readable, else waits for
/// read readiness (registering the task's waker). On Linux a read that
/// returned less than `want` (but not EOF) drained the socket's receive
/// queue, so read readiness is cleared at once — the next poll parks without
/// a `recv` that would only return `EAGAIN`. Tokio's own `poll_read` does the
/// same; the readiness event is the one observed *before* the read, so data
/// that arrived during it is not lost.
///
/// The read is tried first and `poll_read_ready` called only when it would
/// block: `try_io` already checks the cached readiness (no syscall when it is
/// clear), so a ready socket costs one readiness check per read, not two.
///
/// With `parked` given, a short read also registers the waker for the next
/// readiness event at once and sets `*parked` if none is there yet: the
/// caller then answers `Pending` to the next read of the same task poll
/// without asking Tokio again (see [`Plain`]).
fn poll_read_clearing<S: ReadyStream>(
    stream: &S,
    cx: &mut Context<'_>,
    want: usize,
    parked: Option<&mut bool>,
    mut read: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        let mut short = None;
        let res = stream.try_io(Interest::READABLE, || match read() {
            Ok(n) if cfg!(any(target_os = "linux", target_os = "android")) && n > 0 && n < want => {
                // Report WouldBlock to try_io so that it clears readiness
                // with the event it took before the read; the data is
                // returned below.
                short = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            other => other,
        });
        if let Some(n) = short {
            if let Some(parked) = parked {
                *parked = stream.poll_read_ready(cx).is_pending();
            }
            return Poll::Ready(Ok(n));
        }
        match res {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(stream.poll_read_ready(cx))?;
            }
            res => return Poll::Ready(res),
        }
    }
}

/// One `recv` into the spare capacity of `buf`, appending. It does no
/// readiness bookkeeping of its own: the caller runs it inside its `try_io`
/// (Tokio's `try_read_buf` would nest a second `try_io`, ≈ 90 instructions
/// per read, measured).
fn recv_buf<S: ReadyStream>(stream: &S, buf: &mut BytesMut) -> io::Result<usize> {
    let n = SockRef::from(stream).recv(buf.spare_capacity_mut())?;
    #[allow(
        unsafe_code,
        reason = "no safe API appends a socket read to a BytesMut without zeroing it first"
    )]
    // SAFETY: `recv` returns how many bytes it wrote at the start of the
    // slice it was given, the spare capacity: those bytes are initialised
    // and directly follow the buffer's length.
    unsafe {
        buf.set_len(buf.len() + n);
    }
    Ok(n)
}

/// Waits for write readiness and writes `bufs` with one vectored write.
fn poll_write_vectored<S: ReadyStream>(
    stream: &S,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    // As for reads: try first, wait for readiness only when it would block.
    loop {
        match stream.try_write_vectored(bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(stream.poll_write_ready(cx))?;
            }
            res => return Poll::Ready(res),
        }
    }
}

/// A plain socket as the connection task reads and writes it.
///
/// After a short read (readiness cleared) the task's waker is registered for
/// the next readiness event straight away, and `parked` is set: the
/// connection skips the read it would try after its callback, in the same
/// task poll (`read_parked`), where a readiness check could only fail.
/// `begin_poll` clears it on every task poll, so a wake-up is never missed:
/// data that arrives after the registration wakes the task, and the next
/// poll reads. (A read while parked would still be correct: readiness is
/// clear, so it registers again and returns `Pending`.)
pub(crate) struct Plain<S> {
    pub(crate) sock: Arc<S>,
    parked: bool,
}

impl<S: ReadyStream> PollIo for Plain<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let stream = &*self.sock;
        let want = buf.capacity() - buf.len();
        poll_read_clearing(stream, cx, want, Some(&mut self.parked), || {
            recv_buf(stream, buf)
        })
    }

    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let stream = &*self.sock;
        let want = buf.len();
        poll_read_clearing(stream, cx, want, Some(&mut self.parked), || {
            (&*SockRef::from(stream)).read(buf)
        })
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_vectored(&*self.sock, cx, bufs)
    }

    fn poll_shutdown_write(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.sock.shutdown_write())
    }

    #[inline]
    fn begin_poll(&mut self) {
        self.parked = false;
    }

    #[inline]
    fn read_parked(&self) -> bool {
        self.parked
    }
}

/// A socket the connection task owns as [`PollIo`]: plain, or TLS once a
/// handshake has finished (at creation or through `start_tls`).
pub(crate) enum SocketIo<S: ReadyStream> {
    /// Plain bytes over the socket.
    Plain(Plain<S>),
    /// TLS over the socket.
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::TlsIo<S>>),
    /// While a `start_tls` handshake runs, or after it failed.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Detached,
}

impl<S: ReadyStream> SocketIo<S> {
    /// Plain bytes over `sock`.
    pub(crate) fn plain(sock: Arc<S>) -> Self {
        Self::Plain(Plain {
            sock,
            parked: false,
        })
    }
}

fn detached<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::ErrorKind::NotConnected.into()))
}

impl<S: ReadyStream> PollIo for SocketIo<S> {
    #[inline]
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(s) => s.poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(t) => t.poll_read(cx, buf),
            Self::Detached => detached(),
        }
    }

    #[inline]
    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(s) => s.poll_read_into(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(t) => t.poll_read_into(cx, buf),
            Self::Detached => detached(),
        }
    }

    #[inline]
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(s) => s.poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Self::Tls(t) => t.poll_write_vectored(cx, bufs),
            Self::Detached => detached(),
        }
    }

    fn poll_shutdown_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(s) => s.poll_shutdown_write(cx),
            #[cfg(feature = "tls")]
            Self::Tls(t) => t.poll_shutdown_write(cx),
            Self::Detached => detached(),
        }
    }

    #[inline]
    fn begin_poll(&mut self) {
        if let Self::Plain(p) = self {
            p.begin_poll();
        }
    }

    #[inline]
    fn read_parked(&self) -> bool {
        matches!(self, Self::Plain(p) if p.read_parked())
    }

    #[inline]
    fn tls_shutdown_timeout(&self) -> Option<std::time::Duration> {
        match self {
            #[cfg(feature = "tls")]
            Self::Tls(t) => Some(t.shutdown_timeout()),
            _ => None,
        }
    }

    #[cfg(feature = "tls")]
    fn upgrade_tls<'a>(
        &'a mut self,
        held: Option<Bytes>,
        side: &'a crate::tls::TlsSide,
    ) -> crate::conn::UpgradeFuture<'a> {
        Box::pin(crate::tls::upgrade_socket(self, held, side))
    }
}

/// A socket shared with the transport (for `with_socket`) as Tokio's
/// [`AsyncRead`] + [`AsyncWrite`], for a TLS stream to run over. Bytes read
/// from the socket before the TLS stream took over (`prefix`) are read first.
pub(crate) struct SockIo<S> {
    pub(crate) sock: Arc<S>,
    prefix: Bytes,
}

impl<S> SockIo<S> {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn new(sock: Arc<S>, prefix: Option<Bytes>) -> Self {
        Self {
            sock,
            prefix: prefix.unwrap_or_default(),
        }
    }
}

impl<S: ReadyStream> AsyncRead for SockIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let stream = &*this.sock;
        let unfilled = buf.initialize_unfilled();
        let want = unfilled.len();
        let n = ready!(poll_read_clearing(stream, cx, want, None, || {
            (&*SockRef::from(stream)).read(&mut *unfilled)
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: ReadyStream> AsyncWrite for SockIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_vectored(&*self.sock, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.sock.shutdown_write())
    }
}

/// The TLS side a connection starts with, if any (always `None` without the
/// `tls` feature).
#[cfg(feature = "tls")]
pub(crate) type MaybeTls<'a> = Option<&'a crate::tls::TlsSide>;
/// The TLS side a connection starts with, if any (always `None` without the
/// `tls` feature).
#[cfg(not(feature = "tls"))]
pub(crate) type MaybeTls<'a> = Option<&'a std::convert::Infallible>;

/// A plain connection over `sock`, which it lends to `with_socket`.
pub(crate) fn plain_connection<P: StreamProtocol, S: ReadyStream>(
    protocol: P,
    info: TransportInfo,
    sock: Arc<S>,
) -> (Connection<P>, SocketIo<S>) {
    let mut conn = Connection::new(protocol, info);
    conn.set_socket(sock.clone());
    (conn, SocketIo::plain(sock))
}

/// Runs the protocol from `factory` on a connected socket: at once, or
/// after the TLS handshake when `tls` is given (the factory is called only
/// once the handshake has succeeded). `connection_made` has run when this
/// returns.
pub(crate) async fn start<P, F, S>(
    factory: F,
    sock: Arc<S>,
    info: TransportInfo,
    span: tracing::Span,
    tls: MaybeTls<'_>,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
    S: ReadyStream,
{
    if let Some(side) = tls {
        #[cfg(feature = "tls")]
        return crate::tls::establish(factory, sock, info, side, span).await;
        #[cfg(not(feature = "tls"))]
        match *side {}
    }
    let (conn, io) = plain_connection(factory(), info, sock);
    spawn_connection(conn, io, span)
}
