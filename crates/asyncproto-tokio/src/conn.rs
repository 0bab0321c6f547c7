//! The per-connection task: pumps a socket into the core's state machine.
//!
//! One Tokio task per connection owns the I/O object and the protocol; all
//! of the connection's callbacks run on it, one at a time. The task polls
//! [`Connection::drive`] with the socket presented as a non-blocking
//! [`StreamIo`], whose `Pending` is Tokio's (the waker is registered by the
//! `poll_*` call), so the core's ordering logic is the same one the
//! in-memory transport runs.

use std::{
    future::{Future, poll_fn},
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use asyncproto_core::{
    StreamProtocol, Transport,
    lifecycle::{Connection, Status, StreamIo},
};
use bytes::BytesMut;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::Error;

/// A socket as the per-connection task polls it.
pub(crate) trait PollIo: Send + 'static {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;
    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    fn poll_shutdown_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Called at the start of every task poll, before the connection is
    /// driven.
    #[inline]
    fn begin_poll(&mut self) {}

    /// [`StreamIo::read_parked`].
    #[inline]
    fn read_parked(&self) -> bool {
        false
    }

    /// The TLS shutdown timeout, if the stream runs TLS: a `close()` must
    /// finish within it.
    #[inline]
    fn tls_shutdown_timeout(&self) -> Option<Duration> {
        None
    }

    /// Performs a `start_tls` upgrade in place: the TLS handshake over the
    /// plain stream (`held` are bytes already read from it), then the stream
    /// runs TLS.
    #[cfg(feature = "tls")]
    fn upgrade_tls<'a>(
        &'a mut self,
        held: Option<bytes::Bytes>,
        side: &'a crate::tls::TlsSide,
    ) -> UpgradeFuture<'a> {
        let _ = (held, side);
        Box::pin(std::future::ready(Err(
            asyncproto_core::Error::Unsupported {
                method: "start_tls",
            },
        )))
    }
}

/// What [`PollIo::upgrade_tls`] returns: the session's details, or why the
/// handshake failed.
#[cfg(feature = "tls")]
pub(crate) type UpgradeFuture<'a> = Pin<
    Box<dyn Future<Output = Result<asyncproto_core::TlsInfo, asyncproto_core::Error>> + Send + 'a>,
>;

struct Adapter<'a, 'b, T> {
    io: &'a mut T,
    cx: &'a mut Context<'b>,
}

impl<T: PollIo> StreamIo for Adapter<'_, '_, T> {
    #[inline]
    fn read(&mut self, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        self.io.poll_read(self.cx, buf)
    }

    #[inline]
    fn read_into(&mut self, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read_into(self.cx, buf)
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(self.cx, bufs)
    }

    #[inline]
    fn shutdown_write(&mut self) -> Poll<io::Result<()>> {
        self.io.poll_shutdown_write(self.cx)
    }

    #[inline]
    fn read_parked(&self) -> bool {
        self.io.read_parked()
    }
}

/// Drives `conn` over `io` until the connection is over; closes `io`, then
/// delivers `connection_lost` and returns the protocol.
///
/// If this future is dropped early (runtime shutdown), the connection still
/// delivers `connection_lost(Some(Cancelled))`.
pub(crate) fn run<P: StreamProtocol, T: PollIo>(
    conn: Connection<P>,
    io: T,
) -> impl Future<Output = Option<P>> + Send {
    run_holding(conn, io, ())
}

/// [`run`], holding `guard` until the connection is over (a server's
/// registration of it): one future where an `async` block around `run`
/// would add a layer to every poll.
pub(crate) async fn run_holding<P: StreamProtocol, T: PollIo, G: Send + 'static>(
    mut conn: Connection<P>,
    io: T,
    guard: G,
) -> Option<P> {
    let _guard = guard;
    let mut io = Some(io);
    // Armed when a TLS close() starts: asyncio's ssl_shutdown_timeout.
    let mut shutdown: Option<(Pin<Box<tokio::time::Sleep>>, Duration)> = None;
    loop {
        let status = poll_fn(|cx| {
            let Some(t) = io.as_mut() else {
                return Poll::Ready(Status::Done);
            };
            t.begin_poll();
            // The I/O calls get a context of their own over the same waker,
            // so that `drive` can borrow the waker without cloning it on
            // every poll.
            let waker = cx.waker();
            let mut io_cx = Context::from_waker(waker);
            let status = conn.drive(
                &mut Adapter {
                    io: t,
                    cx: &mut io_cx,
                },
                waker,
            );
            match status {
                Status::Pending => {
                    if let Some(after) = t.tls_shutdown_timeout() {
                        return poll_shutdown_timer(&mut conn, &mut shutdown, after, cx);
                    }
                    Poll::Pending
                }
                Status::Yield => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Status::Done | Status::Upgrade => Poll::Ready(status),
            }
        })
        .await;
        match (status, io.as_mut()) {
            #[cfg(feature = "tls")]
            // Boxed: the upgrade's state would otherwise be part of every
            // connection's future, upgraded or not (idle memory).
            (Status::Upgrade, Some(t)) => Box::pin(crate::tls::perform_upgrade(&mut conn, t)).await,
            #[cfg(not(feature = "tls"))]
            (Status::Upgrade, Some(_)) => {
                // Only start_tls requests upgrades, and it needs the feature.
                drop(conn.take_upgrade());
                conn.fail(asyncproto_core::Error::Unsupported {
                    method: "start_tls",
                });
            }
            _ => break,
        }
    }
    // Close the socket before connection_lost, so a peer sees FIN (or RST)
    // by the time the protocol hears of it.
    drop(io.take());
    conn.finish()
}

/// Bounds a TLS `close()` by the shutdown timeout: arms the timer when the
/// close starts and fails the connection when it fires.
#[cold]
fn poll_shutdown_timer<P: StreamProtocol>(
    conn: &mut Connection<P>,
    timer: &mut Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    after: Duration,
    cx: &mut Context<'_>,
) -> Poll<Status> {
    if timer.is_none() && conn.tls_closing() {
        *timer = Some((Box::pin(tokio::time::sleep(after)), after));
    }
    if let Some((sleep, after)) = timer
        && sleep.as_mut().poll(cx).is_ready()
    {
        tracing::debug!("TLS shutdown timed out");
        conn.fail(asyncproto_core::Error::TlsShutdownTimeout { after: *after });
        *timer = None;
        cx.waker().wake_by_ref();
    }
    Poll::Pending
}

/// Delivers `connection_made` on the caller's task (inside `span`), then
/// spawns the connection task running [`run`] over `io`, instrumented with
/// `span`.
///
/// If `connection_made` panicked, `io` is closed first, then
/// `connection_lost(Some(ProtocolPanicked))` is delivered, and the panic comes
/// back as [`Error::Protocol`]; no task is spawned.
pub(crate) fn spawn_connection<P: StreamProtocol, T: PollIo>(
    mut conn: Connection<P>,
    io: T,
    span: tracing::Span,
) -> Result<(Transport, ProtocolHandle<P>), Error> {
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
        // Close the socket before connection_lost, as `run` does.
        drop(io);
        span.in_scope(|| drop(conn.finish()));
        return Err(Error::Protocol(err));
    }
    let transport = conn.transport().clone();
    let join = tokio::spawn(run(conn, io).instrument(span));
    Ok((transport, ProtocolHandle { join }))
}

/// The span every connection's task runs in: `conn` with the transport's
/// kind, the side and the peer, detached from the caller's span.
///
/// Level DEBUG, target `asyncproto::conn`: disabled under the usual `info`
/// filters, where it would cost every connection about 350 bytes of
/// subscriber state and every message about 300 instructions (measured, see
/// docs/performance.md). Turn it on alone with a filter such as
/// `info,asyncproto::conn=debug`: then everything logged on a connection's
/// task — asyncproto's events and the protocol's own, from its callbacks —
/// carries `kind`, `side` and `peer`.
pub(crate) fn conn_span(
    kind: &'static str,
    side: Option<&'static str>,
    peer: Option<std::net::SocketAddr>,
) -> tracing::Span {
    tracing::debug_span!(
        target: "asyncproto::conn",
        parent: None,
        "conn",
        kind,
        side,
        peer = peer.map(tracing::field::display)
    )
}

/// Resolves to the protocol once its connection has ended
/// (`connection_lost` has run), for clients that collect results in the
/// protocol (the spec's `DateProtocol.output`).
///
/// Dropping the handle detaches it; the connection goes on.
#[derive(Debug)]
#[must_use = "a ProtocolHandle does nothing unless awaited; dropping it detaches the connection"]
pub struct ProtocolHandle<P> {
    pub(crate) join: JoinHandle<Option<P>>,
}

impl<P> ProtocolHandle<P> {
    /// Whether the connection has ended.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

impl<P> Future for ProtocolHandle<P> {
    type Output = Result<P, Error>;

    /// # Cancel safety
    ///
    /// Cancel safe: dropping the handle does not affect the connection.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = ready!(Pin::new(&mut self.join).poll(cx));
        Poll::Ready(match res {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Error::ProtocolDropped),
            // The task was cancelled (runtime shutdown): connection_lost ran
            // with Cancelled and the protocol went with the task.
            Err(_) => Err(Error::Protocol(asyncproto_core::Error::Cancelled)),
        })
    }
}

#[cfg(test)]
mod tests {
    use asyncproto_core::{TransportInfo, testing::Recorder};

    use super::*;

    /// Every idle connection holds its task's future: keep it small (issue
    /// #4's idle-memory target is 2 KiB per connection, everything
    /// included).
    #[tokio::test]
    async fn connection_future_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let conn = Connection::new(Recorder::default(), TransportInfo::new("tcp"));
        let io = crate::socket::SocketIo::plain(std::sync::Arc::new(client));
        let fut = run(conn, io);
        let size = std::mem::size_of_val(&fut);
        eprintln!("connection future: {size} bytes");
        assert!(size <= 512, "connection future is {size} bytes");
    }
}
