//! TCP and Unix stream sockets as the per-connection task polls them.
//!
//! The task holds the socket in an `Arc` so that the transport can lend it
//! to `with_socket` while the task reads and writes through `&Stream`, using
//! Tokio's readiness API (`poll_*_ready` + `try_*`). One generic
//! [`PollIo`] impl serves both kinds.

use std::{
    io::{self, IoSlice},
    net::Shutdown,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::BytesMut;
use socket2::SockRef;
use tokio::{
    io::Interest,
    net::{TcpStream, UnixStream},
};

use crate::conn::PollIo;

/// Tokio's readiness API, the same on `TcpStream` and `UnixStream`.
pub(crate) trait ReadyStream: Send + Sync + 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
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
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$ty>::try_read_buf(self, buf)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$ty>::try_read(self, buf)
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
fn poll_read_clearing<S: ReadyStream>(
    stream: &S,
    cx: &mut Context<'_>,
    want: usize,
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

impl<S: ReadyStream> PollIo for Arc<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let stream = &**self;
        let want = buf.capacity() - buf.len();
        poll_read_clearing(stream, cx, want, || stream.try_read_buf(buf))
    }

    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let stream = &**self;
        let want = buf.len();
        poll_read_clearing(stream, cx, want, || stream.try_read(buf))
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // As for reads: try first, wait for readiness only when it would
        // block.
        loop {
            match self.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.poll_write_ready(cx))?;
                }
                res => return Poll::Ready(res),
            }
        }
    }

    fn poll_shutdown_write(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_write())
    }
}
