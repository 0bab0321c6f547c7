//! The transport handle a protocol writes to.
//!
//! [`Transport`] is asyncio's `Transport` (read and write side, base methods)
//! as one cheap, cloneable, `Send + Sync` handle. It is usable from inside
//! the protocol's callbacks and from any other thread or task; operations
//! from outside a callback wake the connection's task.

use std::{fmt, net::SocketAddr, task::Waker};

#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use bytes::Bytes;

use crate::{
    error::Error,
    extra_info::{self, ExtraInfo, TransportInfo},
    flow::WriteBuffer,
    protocol::StreamProtocol,
    sync::{Arc, Mutex, MutexGuard},
};

/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`: dropped writes after the
/// connection is lost are logged from this count on.
pub(crate) const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// An OS socket a transport can lend to [`Transport::with_socket`].
#[cfg(unix)]
pub trait SocketLike: AsFd + Send + Sync + 'static {}
#[cfg(unix)]
impl<T: AsFd + Send + Sync + 'static> SocketLike for T {}

/// A handle to a connection's transport: asyncio's `Transport` methods.
///
/// Cloning is cheap (one `Arc`); every clone controls the same connection.
/// A protocol usually stores the handle it gets in
/// [`connection_made`](crate::BaseProtocol::connection_made).
///
/// Holding a handle never keeps the connection open: once it is closed,
/// writes are dropped (logged from the fifth, as asyncio does), `is_closing()`
/// is true and the other methods do nothing.
#[derive(Clone)]
pub struct Transport {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) info: TransportInfo,
    pub(crate) state: Mutex<State>,
}

/// Mutable transport state, shared by the handle and the connection's
/// state machine ([`crate::lifecycle::Connection`]).
pub(crate) struct State {
    pub(crate) buf: WriteBuffer,
    /// `close()` or `abort()` was called, or the connection failed.
    pub(crate) closing: bool,
    /// `abort()` was called, or the connection failed: tear down now.
    pub(crate) aborted: bool,
    /// `write_eof()` was called.
    pub(crate) eof_requested: bool,
    /// `pause_reading()` is in effect.
    pub(crate) read_paused: bool,
    /// asyncio's `_conn_lost`: non-zero once no more writes are accepted;
    /// counts dropped writes.
    pub(crate) conn_lost: u32,
    /// Something the connection's task must act on changed.
    pub(crate) dirty: bool,
    /// The task is inside its poll: it checks `dirty` before parking.
    pub(crate) running: bool,
    pub(crate) waker: Option<Waker>,
    /// Set by `set_protocol`; the state machine switches to it when the
    /// current callback has returned.
    pub(crate) pending_protocol: Option<Box<dyn StreamProtocol>>,
    /// A requested upgrade (`start_tls`), waiting for the bytes written
    /// before it to be sent.
    pub(crate) upgrade: Option<Upgrade>,
    /// The transport is TLS: no half-close, `close()` sends `close_notify`.
    pub(crate) tls: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls_info: Option<std::sync::Arc<crate::tls::TlsInfo>>,
    #[cfg(unix)]
    // A std Arc whatever the cfg: lent by the backend through a public
    // signature, it carries no synchronisation of ours.
    pub(crate) socket: Option<std::sync::Arc<dyn SocketLike>>,
}

impl State {
    /// Writes are dropped and counted: the connection is lost (or a plain
    /// `close()` found nothing left to send), or a TLS transport is closing
    /// (asyncio's TLS transport drops every write after `close()`).
    #[inline]
    fn drops_writes(&self) -> bool {
        self.conn_lost > 0 || (self.tls && self.closing)
    }
}

/// A pending upgrade of the byte stream (`start_tls`).
pub(crate) struct Upgrade {
    /// Bytes at the front of the write buffer that were written before the
    /// request: they go out over the old stream, the rest after the upgrade.
    pub(crate) plain_left: usize,
    /// The backend's request, handed back by `Connection::take_upgrade`.
    pub(crate) request: Box<dyn std::any::Any + Send>,
}

impl Transport {
    pub(crate) fn new(info: TransportInfo) -> Self {
        Self {
            shared: Arc::new(Shared {
                info,
                state: Mutex::new(State {
                    buf: WriteBuffer::new(),
                    closing: false,
                    aborted: false,
                    eof_requested: false,
                    read_paused: false,
                    conn_lost: 0,
                    dirty: false,
                    running: false,
                    waker: None,
                    pending_protocol: None,
                    upgrade: None,
                    tls: false,
                    #[cfg(feature = "tls")]
                    tls_info: None,
                    #[cfg(unix)]
                    socket: None,
                }),
            }),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from our own code
        // (protocol callbacks never run under it); the state stays consistent
        // field by field, so recover from poisoning.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `data` to be sent; never blocks.
    ///
    /// Writing an empty chunk does nothing. After `close()` the data is still
    /// sent while the buffer is draining; once the connection is lost (or
    /// `close()` found the buffer empty, or `abort()`), writes are dropped
    /// silently, and logged as a warning from the fifth on, as asyncio does.
    /// On a TLS transport every write after `close()` is dropped and counted
    /// (asyncio's TLS transport: the warning starts at the sixth).
    ///
    /// # Errors
    ///
    /// [`Error::WriteAfterEof`] after [`write_eof`](Self::write_eof)
    /// (checked first, even for empty data, as asyncio).
    // asyncio: selector_events._SelectorSocketTransport.write
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        let mut st = self.lock();
        if st.eof_requested {
            return Err(Error::WriteAfterEof);
        }
        if data.is_empty() {
            return Ok(());
        }
        if st.drops_writes() {
            Self::count_lost_write(&mut st);
            return Ok(());
        }
        st.buf.push(data);
        Self::notify(&mut st);
        Ok(())
    }

    /// Queues each item, in order, as one batch: flow control is checked
    /// once, after the batch (asyncio 3.11 joins the items and calls
    /// `write()` once).
    ///
    /// # Errors
    ///
    /// [`Error::WriteAfterEof`] after [`write_eof`](Self::write_eof); then
    /// nothing is queued.
    pub fn writelines<I>(&self, list_of_data: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let mut st = self.lock();
        if st.eof_requested {
            return Err(Error::WriteAfterEof);
        }
        let mut any = false;
        for data in list_of_data {
            let data = data.into();
            if data.is_empty() {
                continue;
            }
            if st.drops_writes() {
                Self::count_lost_write(&mut st);
                return Ok(());
            }
            st.buf.push(data);
            any = true;
        }
        if any {
            Self::notify(&mut st);
        }
        Ok(())
    }

    fn count_lost_write(st: &mut State) {
        if st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
            if st.tls {
                tracing::warn!("TLS connection is closed");
            } else {
                tracing::warn!("socket.send() raised exception.");
            }
        }
        st.conn_lost = st.conn_lost.saturating_add(1);
    }

    /// Closes the write side after everything buffered is sent (half-close);
    /// data may still be received.
    ///
    /// Does nothing if the transport is closing or `write_eof()` was already
    /// called. Later writes fail with [`Error::WriteAfterEof`].
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if [`can_write_eof`](Self::can_write_eof) is
    /// false (asyncio: `NotImplementedError`).
    pub fn write_eof(&self) -> Result<(), Error> {
        let mut st = self.lock();
        if !self.shared.info.can_write_eof || st.tls {
            return Err(Error::Unsupported {
                method: "write_eof",
            });
        }
        if st.closing || st.eof_requested {
            return Ok(());
        }
        st.eof_requested = true;
        Self::notify(&mut st);
        Ok(())
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: true for TCP,
    /// Unix and streams; false for TLS (as asyncio: no half-close over TLS),
    /// also after [`start_tls`](https://docs.rs/asyncproto-tokio) upgraded a
    /// TCP transport.
    pub fn can_write_eof(&self) -> bool {
        self.shared.info.can_write_eof && !self.lock().tls
    }

    /// Whether the transport runs TLS (made with TLS, or upgraded).
    pub fn is_tls(&self) -> bool {
        self.lock().tls
    }

    /// The TLS session's details, once the handshake has finished (the
    /// typed form of asyncio's `ssl_object`, `peercert` and `cipher`).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<std::sync::Arc<crate::tls::TlsInfo>> {
        self.lock().tls_info.clone()
    }

    /// Closes the transport: reading stops at once, what is buffered is
    /// sent, then the connection closes and `connection_lost(None)` is
    /// called. Idempotent.
    // asyncio: selector_events._SelectorTransport.close
    pub fn close(&self) {
        let mut st = self.lock();
        if st.closing {
            return;
        }
        st.closing = true;
        if st.buf.is_empty() && !st.tls {
            st.conn_lost += 1;
        }
        Self::notify(&mut st);
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Closes the transport now: what is buffered is discarded and
    /// `connection_lost(None)` follows. Idempotent; after `close()` it
    /// discards what `close()` was still flushing, and on TLS it stops the
    /// wait for the peer's `close_notify` (no `close_notify` is sent if it
    /// was not yet).
    ///
    /// The socket is closed plainly (no `SO_LINGER` reset), as asyncio does.
    // asyncio: selector_events._SelectorTransport._force_close
    pub fn abort(&self) {
        let mut st = self.lock();
        if st.aborted || (st.conn_lost > 0 && !st.tls) {
            // Already going down with nothing left to discard: after an
            // empty-buffer close(), an abort() or a failure. (A TLS close()
            // may still be waiting for the peer's close_notify: an abort
            // cuts that short.)
            return;
        }
        st.buf.clear();
        st.closing = true;
        st.aborted = true;
        st.conn_lost = st.conn_lost.max(1);
        Self::notify(&mut st);
    }

    /// Stops delivering data to the protocol until
    /// [`resume_reading`](Self::resume_reading). Idempotent; does nothing
    /// once closing.
    ///
    /// Takes effect at once: called from a callback (or from the connection's
    /// own task), no `data_received` (or `eof_received`) follows until the
    /// resume, even if the bytes were already read; they are held and
    /// delivered after it. Called from another thread, at most one delivery
    /// that had already been decided when the pause landed may still start
    /// (its bytes were read and checked just before); nothing is lost either
    /// way. The kernel's buffer then fills and the peer is slowed down (TCP
    /// backpressure).
    pub fn pause_reading(&self) {
        let mut st = self.lock();
        if st.closing || st.read_paused {
            return;
        }
        st.read_paused = true;
    }

    /// Resumes delivering data after [`pause_reading`](Self::pause_reading).
    /// Idempotent; does nothing once closing.
    pub fn resume_reading(&self) {
        let mut st = self.lock();
        if st.closing || !st.read_paused {
            return;
        }
        st.read_paused = false;
        Self::notify(&mut st);
    }

    /// Whether data is being delivered: not closing and not paused.
    pub fn is_reading(&self) -> bool {
        let st = self.lock();
        !st.closing && !st.read_paused
    }

    /// Bytes buffered and not yet handed to the OS.
    pub fn get_write_buffer_size(&self) -> usize {
        self.lock().buf.len()
    }

    /// The write-buffer water marks as asyncio returns them: **`(low, high)`**.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.lock().buf.limits()
    }

    /// Sets the write-buffer water marks (asyncio's defaults and validation:
    /// see [`WriteBuffer::set_limits`]).
    ///
    /// The new limits re-check for a pause (delivered after the current
    /// callback, or by the connection's task), never for a resume.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLimits`] if `high < low`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), Error> {
        let mut st = self.lock();
        st.buf.set_limits(high, low)?;
        Self::notify(&mut st);
        Ok(())
    }

    /// Hands the connection to another protocol (asyncio: `set_protocol`).
    ///
    /// The switch takes effect when the current callback returns (or, called
    /// from outside a callback, before the next callback), and the new
    /// protocol gets every callback from then on — but no `connection_made`,
    /// as in asyncio: give it the transport when you build it. It may be of
    /// the other kind ([`Buffered`](crate::Buffered) or a data
    /// [`Protocol`](crate::Protocol)); each read uses the current protocol's
    /// kind. The original protocol gets no more callbacks; a client's
    /// `ProtocolHandle` still resolves to it after `connection_lost`.
    ///
    /// Bytes the old protocol already received are its own: if a chunk holds
    /// both the switch command and data for the new protocol, hand the rest
    /// over yourself (e.g. call the new protocol's `data_received` with it
    /// before passing it here). Bytes the transport has read but not yet
    /// delivered go to the new protocol. A later `set_protocol` before the
    /// switch took effect replaces this one.
    ///
    /// asyncio's `get_protocol()` has no counterpart: the protocol is owned by
    /// the connection's task (inside a callback you *are* the protocol).
    ///
    /// # Examples
    ///
    /// ```
    /// use asyncproto_core::testing::{Event, MemoryTransport, Recorder};
    ///
    /// let mut t = MemoryTransport::new(Recorder::default());
    /// let next = Recorder::default();
    /// let log = next.log();
    /// t.transport().set_protocol(next);
    /// t.feed("for the new one");
    /// assert_eq!(*log.lock().unwrap(), [Event::Data("for the new one".into())]);
    /// assert_eq!(t.protocol().events(), [Event::Made]);
    /// ```
    pub fn set_protocol(&self, protocol: impl StreamProtocol) {
        let mut st = self.lock();
        st.pending_protocol = Some(Box::new(protocol));
        Self::notify(&mut st);
    }

    /// asyncio's `get_extra_info(name)`: `"peername"`, `"sockname"`,
    /// `"socket"` (the raw fd while open); on TLS transports (feature `tls`)
    /// also `"peercert"` (the leaf certificate, DER), `"cipher"`,
    /// `"sslcontext"` and `"ssl_object"` once the handshake has finished, and
    /// `"compression"`, always `None`. `None` for anything else or when
    /// unknown. asyncio's `default` argument is `.unwrap_or(default)` here.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            extra_info::PEERNAME => self.peer_addr().map(ExtraInfo::Addr),
            extra_info::SOCKNAME => self.local_addr().map(ExtraInfo::Addr),
            #[cfg(unix)]
            extra_info::SOCKET => self.with_socket(|fd| ExtraInfo::Fd(fd.as_raw_fd())),
            #[cfg(feature = "tls")]
            extra_info::PEERCERT => self
                .tls()
                .and_then(|t| t.peer_certificate().cloned())
                .map(ExtraInfo::PeerCert),
            #[cfg(feature = "tls")]
            extra_info::CIPHER => self.tls().and_then(|t| t.cipher()).map(ExtraInfo::Cipher),
            #[cfg(feature = "tls")]
            extra_info::SSLCONTEXT => self
                .tls()
                .map(|t| ExtraInfo::SslContext(t.config().clone())),
            #[cfg(feature = "tls")]
            extra_info::SSL_OBJECT => self.tls().map(ExtraInfo::SslObject),
            _ => None,
        }
    }

    /// The remote address, if the transport has one (`peername`). Still
    /// answered after the connection is lost, as asyncio does.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.shared.info.peer_addr
    }

    /// The local address, if the transport has one (`sockname`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.info.local_addr
    }

    /// The transport's kind, e.g. `"tcp"` or `"memory"`.
    pub fn kind(&self) -> &'static str {
        self.shared.info.kind
    }

    /// Runs `f` with the transport's socket while it is open, e.g. to read or
    /// set options through `socket2::SockRef::from(&fd)`. Returns `None` if
    /// the transport has no socket or it is already closed.
    ///
    /// The transport's lock is held while `f` runs: do not call this
    /// transport's other methods from `f`.
    #[cfg(unix)]
    pub fn with_socket<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let st = self.lock();
        st.socket.as_ref().map(|s| f(s.as_fd()))
    }

    /// Marks the state changed and wakes the connection's task unless it is
    /// running (it re-checks before parking).
    #[inline]
    pub(crate) fn notify(st: &mut State) {
        st.dirty = true;
        if !st.running
            && let Some(w) = &st.waker
        {
            w.wake_by_ref();
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Transport")
            .field("kind", &self.shared.info.kind)
            .field("peer_addr", &self.shared.info.peer_addr)
            .field("closing", &st.closing)
            .field("write_buffer_size", &st.buf.len())
            .finish_non_exhaustive()
    }
}
