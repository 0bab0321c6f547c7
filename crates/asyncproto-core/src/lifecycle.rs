//! The connection state machine: the only code that orders callbacks.
//!
//! [`Connection`] owns a protocol and its transport state and is driven by a
//! backend through [`StreamIo`], a non-blocking byte stream. Every transport
//! kind (memory, TCP, later TLS and Unix) runs through it, so the callback
//! contract holds on every path.
//!
//! # Lifecycle
//!
//! ```text
//!             start()                      EOF read               (close/abort/error)
//!   New ──connection_made──▶ Open ──data_received*──▶ ReadClosed ─┐
//!                             │         └─ pause_writing/resume_writing ─┤
//!                             └───────────────────────────────────────────┴─▶ Done
//!                                                            connection_lost, once
//! ```
//!
//! - `connection_made` first and once; nothing before it.
//! - `data_received` never with empty data, never while reading is paused,
//!   never after `eof_received`.
//! - `eof_received` at most once, never after a resume re-arms reading (an
//!   asyncio quirk not copied).
//! - `pause_writing`/`resume_writing` alternate, starting with a pause.
//!   `pause_writing` runs right after the callback that left the buffer over
//!   the high mark, *before* the attempt to send it; `resume_writing` runs as
//!   soon as a send brings the buffer to the low mark or below (possibly at
//!   once, if the socket takes everything).
//! - `connection_lost` exactly once, last; after it the protocol is dropped
//!   or handed back.
//! - A panic in any callback aborts the connection: one ERROR event, then
//!   `connection_lost(Some(Error::ProtocolPanicked))`. A panic in
//!   `connection_lost` itself drops the protocol.

use std::{
    any::Any,
    io::{self, IoSlice},
    panic::{AssertUnwindSafe, catch_unwind},
    task::{Poll, Waker},
};

use bytes::{Bytes, BytesMut};

use crate::{
    error::{Callback, Error},
    extra_info::TransportInfo,
    flow::{FlowEvent, MAX_IOVECS, WriteBuffer},
    protocol::{BufferReceiver, Receiver, StreamProtocol},
    transport::{State, Transport, Upgrade},
};

#[cfg(unix)]
use crate::transport::SocketLike;

/// The smallest read buffer (bytes) a connection allocates.
pub const MIN_READ_SIZE: usize = 4 * 1024;
/// The largest read buffer (bytes): asyncio's `max_size`, 256 KiB.
pub const MAX_READ_SIZE: usize = 256 * 1024;
thread_local! {
    /// The read buffer shared by the connections driven on this thread.
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Reads delivered in one [`Connection::drive`] call before it yields, so one
/// busy connection cannot starve others on the same thread.
pub const READS_PER_DRIVE: usize = 16;

/// A non-blocking byte stream, as a backend presents its socket to
/// [`Connection::drive`].
///
/// Each method returns [`Poll::Pending`] when the operation is not ready; the
/// implementation must then have arranged for the waker given to `drive` to
/// be woken when it may be (as Tokio's `poll_*` methods do). An
/// `Err` of kind [`io::ErrorKind::WouldBlock`] is taken as `Pending` too.
/// `Pending` is a value, not an [`io::Error`]: the hot path builds, decodes
/// and drops no error when a socket has nothing to read.
pub trait StreamIo {
    /// Reads into the spare capacity of `buf` (appending), returning the count;
    /// `Ok(0)` means EOF.
    ///
    /// # Errors
    ///
    /// Any error is fatal to the connection (`Interrupted` is retried).
    fn read(&mut self, buf: &mut BytesMut) -> Poll<io::Result<usize>>;

    /// Reads into `buf` (a [`BufferedProtocol`](crate::BufferedProtocol)'s
    /// buffer), returning the count; `Ok(0)` means EOF.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    fn read_into(&mut self, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes from `bufs` in order, returning how many bytes were taken.
    /// `Ok(0)` with non-empty `bufs` is treated as a fatal
    /// [`io::ErrorKind::WriteZero`].
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;

    /// Shuts down the write side (sends FIN). Called once, after the write
    /// buffer has drained.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); `NotConnected` (the peer is gone) is ignored.
    fn shutdown_write(&mut self) -> Poll<io::Result<()>>;

    /// Whether a read now would certainly be `Pending`, the waker already
    /// registered for the next readiness (a backend that knows its last read
    /// drained the socket): the connection then skips the attempt, and a
    /// buffered protocol's `get_buffer` is not called for nothing. The
    /// default, `false`, always tries.
    #[inline]
    fn read_parked(&self) -> bool {
        false
    }
}

/// `Pending`, or an `Err` of kind `WouldBlock` (which a backend may return
/// instead), as `None`.
#[inline]
fn ready<T>(p: Poll<io::Result<T>>) -> Option<io::Result<T>> {
    match p {
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => None,
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// What [`Connection::drive`] asks of its backend next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the backend must act on the status"]
pub enum Status {
    /// Nothing more can be done now; the waker will be woken.
    Pending,
    /// The read budget ran out; wake the task and poll again later.
    Yield,
    /// The connection is over: drop (close) the I/O object, then call
    /// [`Connection::finish`].
    Done,
    /// An upgrade requested with [`request_upgrade`] is due: everything
    /// written before the request has been sent and nothing more will be
    /// read. Take it with [`Connection::take_upgrade`], perform it (e.g. the
    /// TLS handshake) over the I/O object, then call
    /// [`Connection::enter_tls`] and drive on, or [`Connection::fail`] and
    /// drive to the end.
    Upgrade,
}

/// asyncio's TLS write-buffer high-water mark (512 KiB); the low mark is a
/// quarter of it (128 KiB). [`Connection::enter_tls`] sets these limits.
pub const TLS_HIGH_WATER: usize = 512 * 1024;

/// Asks the connection behind `transport` to upgrade its byte stream (the
/// first step of `start_tls`); `request` is the backend's description of the
/// upgrade, handed back by [`Connection::take_upgrade`].
///
/// Bytes written before this call are sent over the current stream; bytes
/// written after it wait for the upgrade. From the moment of the call nothing
/// more is read from the current stream (the peer's next bytes belong to the
/// upgraded one), and nothing read but not yet delivered is delivered: it is
/// handed back with the request. When the upgrade is due,
/// [`Connection::drive`] returns [`Status::Upgrade`].
///
/// `close()` before the upgrade is due aborts the connection (asyncio: a
/// close during the handshake aborts), dropping `request`.
///
/// # Errors
///
/// - [`Error::Closed`] if the transport is closing;
/// - [`Error::Unsupported`] (method `"start_tls"`) if the transport already
///   runs TLS or another upgrade is pending.
pub fn request_upgrade(transport: &Transport, request: Box<dyn Any + Send>) -> Result<(), Error> {
    let mut st = transport.lock();
    if st.closing {
        return Err(Error::Closed);
    }
    if st.tls || st.upgrade.is_some() {
        return Err(Error::Unsupported {
            method: "start_tls",
        });
    }
    let plain_left = st.buf.len();
    st.upgrade = Some(Upgrade {
        plain_left,
        request,
    });
    Transport::notify(&mut st);
    Ok(())
}

/// What one read got.
#[derive(Debug)]
enum Got {
    /// Bytes for a data protocol's `data_received`.
    Data(Bytes),
    /// Bytes already in a buffered protocol's buffer: `buffer_updated(n)`.
    Count(usize),
    /// The peer's EOF.
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Open,
    Done,
    Finished,
}

/// One connection's protocol and transport state: the sans-IO state machine
/// that every backend drives.
///
/// A backend creates it with the protocol and [`TransportInfo`], calls
/// [`start`](Self::start) (delivering `connection_made`), then calls
/// [`drive`](Self::drive) whenever its task is woken, until it returns
/// [`Status::Done`]; then it closes the I/O object and calls
/// [`finish`](Self::finish), which delivers `connection_lost`.
///
/// Users rarely touch it: the Tokio backend and
/// [`MemoryTransport`](crate::testing::MemoryTransport) drive it.
pub struct Connection<P: StreamProtocol> {
    transport: Transport,
    /// The protocol the connection was made with; handed back by `finish`.
    protocol: Option<P>,
    /// The protocol set by `Transport::set_protocol`, which gets the
    /// callbacks from the switch on; the original gets none after it.
    switched: Option<Box<dyn StreamProtocol>>,
    phase: Phase,
    /// EOF was delivered (or taken as delivered): nothing more is read.
    read_eof: bool,
    /// What a read got while a concurrent `pause_reading()` landed: delivered
    /// after the resume. Nothing more is read while something is held.
    held: Option<Got>,
    eof_sent: bool,
    /// The stream runs TLS: `eof_received` cannot keep it half-open, and
    /// `close()` sends `close_notify` and waits for the peer's.
    tls: bool,
    /// TLS close: our `close_notify` is out; reading (and discarding) until
    /// the peer's arrives.
    draining: bool,
    /// `close()` shuts the write side down before the stream is dropped
    /// (streams whose shutdown says something, e.g. a user's TLS stream).
    shutdown_on_close: bool,
    /// The error `connection_lost` will get; the first one wins.
    error: Option<Error>,
    read_size: usize,
}

impl<P: StreamProtocol> Connection<P> {
    /// A connection for `protocol` over a transport described by `info`.
    /// Nothing is delivered until [`start`](Self::start).
    pub fn new(protocol: P, info: TransportInfo) -> Self {
        Self {
            transport: Transport::new(info),
            protocol: Some(protocol),
            switched: None,
            phase: Phase::New,
            read_eof: false,
            held: None,
            eof_sent: false,
            tls: false,
            draining: false,
            shutdown_on_close: false,
            error: None,
            read_size: MIN_READ_SIZE * 4,
        }
    }

    /// Lends the OS socket to [`Transport::with_socket`] and `get_extra_info("socket")`
    /// until the connection is done.
    #[cfg(unix)]
    pub fn set_socket(&mut self, socket: std::sync::Arc<dyn SocketLike>) {
        self.transport.lock().socket = Some(socket);
    }

    /// A handle to this connection's transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The protocol the connection was made with, unless it was dropped after
    /// panicking in `connection_lost` or handed back by
    /// [`finish`](Self::finish). After [`Transport::set_protocol`] it is
    /// detached (it gets no more callbacks) but still here.
    pub fn protocol(&self) -> Option<&P> {
        self.protocol.as_ref()
    }

    /// Mutable access to the protocol, for tests driving it directly.
    pub fn protocol_mut(&mut self) -> Option<&mut P> {
        self.protocol.as_mut()
    }

    /// The error `connection_lost` will receive, if the connection failed.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// After [`drive`](Self::drive) returned [`Status::Upgrade`]: the
    /// backend's upgrade request (from [`request_upgrade`]) and the bytes
    /// already read from the old stream but not delivered, which belong to
    /// the upgraded stream (feed them to it first).
    ///
    /// Returns `None` if no upgrade is due.
    pub fn take_upgrade(&mut self) -> Option<(Box<dyn Any + Send>, Option<Bytes>)> {
        let up = {
            let mut st = self.transport.lock();
            if st.upgrade.as_ref().is_none_or(|u| u.plain_left != 0) {
                return None;
            }
            st.upgrade.take()?
        };
        let held = match self.held.take() {
            Some(Got::Data(b)) => Some(b),
            Some(Got::Count(n)) => {
                // Already in the protocol's own buffer: it is the protocol's.
                self.deliver_buffer_updated(n);
                None
            }
            Some(Got::Eof) => {
                self.held = Some(Got::Eof);
                None
            }
            None => None,
        };
        Some((up.request, held))
    }

    /// Switches the connection to TLS rules, once the handshake has finished
    /// (at creation, or after an upgrade): `can_write_eof()` becomes false,
    /// `eof_received` cannot keep the connection half-open, `close()` sends
    /// `close_notify` and waits for the peer's, and the write-buffer limits
    /// become asyncio's TLS defaults ([`TLS_HIGH_WATER`], a quarter of it
    /// low).
    pub fn enter_tls(&mut self) {
        self.tls = true;
        let mut st = self.transport.lock();
        st.tls = true;
        let _ = st.buf.set_limits(Some(TLS_HIGH_WATER), None);
        Transport::notify(&mut st);
    }

    /// Makes `close()` shut the write side down (`StreamIo::shutdown_write`)
    /// after the buffer is sent and before the connection ends, for streams
    /// whose shutdown carries meaning (a TLS stream sends `close_notify`).
    pub fn shutdown_on_close(&mut self) {
        self.shutdown_on_close = true;
    }

    /// Gives the transport its TLS session's details (feature `tls`); call
    /// with [`enter_tls`](Self::enter_tls).
    #[cfg(feature = "tls")]
    pub fn set_tls_info(&mut self, info: crate::tls::TlsInfo) {
        self.transport.lock().tls_info = Some(std::sync::Arc::new(info));
    }

    /// Whether a TLS `close()` is under way: the backend bounds it with its
    /// shutdown timeout, then [`fail`](Self::fail)s the connection with
    /// [`Error::TlsShutdownTimeout`].
    pub fn tls_closing(&self) -> bool {
        self.tls && self.phase == Phase::Open && self.transport.lock().closing
    }

    /// Delivers `connection_made`. Returns `false` if it panicked; the
    /// connection is then aborted and [`error`](Self::error) says why.
    ///
    /// Calling it twice does nothing the second time.
    pub fn start(&mut self) -> bool {
        if self.phase != Phase::New {
            return self.error.is_none();
        }
        self.phase = Phase::Open;
        tracing::debug!("connection made");
        let transport = self.transport.clone();
        self.call(Callback::ConnectionMade, |p| p.connection_made(transport))
            .is_some()
    }

    /// Runs the connection as far as it can go without blocking: delivers
    /// held data, flushes the write buffer, delivers flow-control edges,
    /// half-closes or closes when asked, and reads and delivers data.
    ///
    /// `waker` is woken when a [`Transport`] handle changes something while
    /// the task is parked; `io` arranges wake-ups for I/O readiness.
    pub fn drive(&mut self, io: &mut impl StreamIo, waker: &Waker) -> Status {
        match self.phase {
            Phase::New => {
                self.start();
            }
            Phase::Open => {}
            Phase::Done | Phase::Finished => return Status::Done,
        }
        let mut reads = 0;
        // The transport's lock is held from the top of each iteration to its
        // end: snapshot, pause check, flush, close decision, the read of a
        // data protocol and the decision to park all see one consistent
        // state, for one lock round trip per iteration. It is released only
        // to run a callback (which may call the transport) and re-taken after.
        let mut st = self.transport.lock();
        st.running = true;
        match &st.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.waker = Some(waker.clone()),
        }
        loop {
            st.dirty = false;
            if st.closing && st.upgrade.is_some() {
                // A close (or failure) before a pending upgrade was due:
                // abort, as asyncio does when closed during a handshake; the
                // bytes for the upgraded stream must not go out plain.
                st.upgrade = None;
                st.buf.clear();
                st.aborted = true;
                st.conn_lost = st.conn_lost.max(1);
            }
            // The pause check comes before the send attempt: a protocol that
            // writes until the buffer is over high, then waits for
            // resume_writing, must get the pause even if the send then takes
            // most of it (it would otherwise wait forever for a resume).
            let aborted = st.aborted;
            let pause = if aborted { None } else { st.buf.check_pause() };
            let upgrading = st.upgrade.is_some();
            let deliver_held = !st.read_paused && !st.closing && !upgrading && self.held.is_some();
            if aborted || pause.is_some() || st.pending_protocol.is_some() || deliver_held {
                let switch = st.pending_protocol.take();
                drop(st);
                // A switch applies first, also on an aborted connection: the
                // new protocol gets the pause edge, if any, and
                // connection_lost.
                let switched = switch.is_some();
                if let Some(new) = switch {
                    self.switch_protocol(new);
                }
                if aborted {
                    return self.done();
                }
                if pause.is_some() {
                    self.call(Callback::PauseWriting, |p| p.pause_writing());
                } else if !switched && let Some(got) = self.held.take() {
                    // After a switch, which may have run a callback (a held
                    // buffer_updated), a fresh snapshot comes first.
                    self.deliver(got);
                }
                st = self.transport.lock();
                continue;
            }
            let flushed = if st.buf.is_empty() {
                Flushed::Idle
            } else {
                flush(&mut st, io)
            };
            match flushed {
                Flushed::Idle => {}
                Flushed::Resume => {
                    drop(st);
                    self.call(Callback::ResumeWriting, |p| p.resume_writing());
                    st = self.transport.lock();
                    continue;
                }
                Flushed::Failed(e) => {
                    drop(st);
                    self.fail_io(e);
                    st = self.transport.lock();
                    continue;
                }
            }
            if upgrading && st.upgrade.as_ref().is_some_and(|u| u.plain_left == 0) {
                // Everything written before the request is out.
                st.running = false;
                return Status::Upgrade;
            }
            // With the buffer empty: finish a close() or perform a requested
            // write_eof().
            if st.buf.is_empty() {
                if st.closing {
                    // From here on writes are dropped: asyncio sets
                    // _conn_lost when the last byte of a close() is out.
                    st.conn_lost = st.conn_lost.max(1);
                    drop(st);
                    if self.finish_close(io) {
                        return self.done();
                    }
                    st = self.transport.lock();
                }
                if st.eof_requested && !self.eof_sent {
                    drop(st);
                    match ready(io.shutdown_write()) {
                        Some(Ok(())) => self.eof_sent = true,
                        None => {}
                        Some(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                            self.eof_sent = true;
                        }
                        Some(Err(e)) => {
                            // Over now: neither park nor read with the state
                            // seen before the failure.
                            self.fail_io(e);
                            return self.done();
                        }
                    }
                    st = self.transport.lock();
                    if st.dirty {
                        continue;
                    }
                }
            }
            if self.draining && !self.read_eof {
                drop(st);
                let happened = self.read_discard(io);
                st = self.transport.lock();
                if happened {
                    continue;
                }
            } else if !st.closing
                && !st.read_paused
                && !upgrading
                && !self.read_eof
                && self.held.is_none()
                && !io.read_parked()
            {
                if reads >= READS_PER_DRIVE {
                    st.running = false;
                    return Status::Yield;
                }
                let buffered = match (&mut self.switched, &mut self.protocol) {
                    (Some(p), _) => Some(matches!(p.receiver(), Receiver::Buffer(_))),
                    (None, Some(p)) => Some(matches!(p.receiver(), Receiver::Buffer(_))),
                    (None, None) => None,
                };
                match buffered {
                    Some(false) => {
                        // A data protocol's read runs under the lock (a
                        // non-blocking read, as the flush's write): reading
                        // is not paused, and no pause from another thread
                        // can land before the delivery is decided.
                        let got = read_data(&mut self.read_size, io);
                        if let Some(got) = got {
                            drop(st);
                            reads += 1;
                            match got {
                                Ok(got) => self.deliver(got),
                                Err(e) => self.fail_io(e),
                            }
                            st = self.transport.lock();
                            continue;
                        }
                    }
                    Some(true) => {
                        // get_buffer is a callback: not under the lock.
                        drop(st);
                        let happened = self.read_buffered(io);
                        st = self.transport.lock();
                        if happened {
                            reads += 1;
                            continue;
                        }
                    }
                    None => {}
                }
            }
            if st.dirty {
                continue;
            }
            st.running = false;
            return Status::Pending;
        }
    }

    /// Delivers `connection_lost` (once) and hands the protocol back, or
    /// `None` if it panicked in `connection_lost` (it is dropped then).
    ///
    /// Call after [`drive`](Self::drive) returned [`Status::Done`] and the
    /// I/O object was closed. Calling it earlier aborts the connection first.
    pub fn finish(&mut self) -> Option<P> {
        match self.phase {
            Phase::Finished => return self.protocol.take(),
            Phase::New => {
                // Never started: no callback at all, as asyncio's accept path.
                self.phase = Phase::Finished;
                self.done_state();
                return self.protocol.take();
            }
            Phase::Open => {
                let _ = self.done();
            }
            Phase::Done => {}
        }
        self.phase = Phase::Finished;
        let switch = self.transport.lock().pending_protocol.take();
        if let Some(new) = switch {
            self.switch_protocol(new);
        }
        let exc = self.error.take();
        match &exc {
            None => tracing::debug!("connection lost"),
            Some(e) => tracing::debug!(error = %e, "connection lost"),
        }
        if self
            .call(Callback::ConnectionLost, |p| p.connection_lost(exc))
            .is_none()
        {
            // It panicked in connection_lost: drop it (the switched-to one,
            // or the original if there was no switch).
            if self.switched.take().is_none() {
                self.protocol = None;
            }
        }
        self.switched = None;
        self.protocol.take()
    }

    /// Aborts the connection with `err` as the reason `connection_lost` gets
    /// (a backend's fatal I/O error). The first error wins.
    pub fn fail(&mut self, err: Error) {
        if self.error.is_none() && matches!(self.phase, Phase::New | Phase::Open) {
            self.error = Some(err);
        }
        let mut st = self.transport.lock();
        st.buf.clear();
        st.closing = true;
        st.aborted = true;
        st.conn_lost = st.conn_lost.max(1);
    }

    fn done(&mut self) -> Status {
        self.done_state();
        self.phase = Phase::Done;
        Status::Done
    }

    fn done_state(&mut self) {
        let mut st = self.transport.lock();
        st.buf.clear();
        st.closing = true;
        st.conn_lost = st.conn_lost.max(1);
        st.running = false;
        st.waker = None;
        st.upgrade = None;
        #[cfg(unix)]
        {
            st.socket = None;
        }
    }

    /// `close()` with the buffer sent. A plain socket is over at once. A
    /// stream that wants a shutdown first (`shutdown_on_close`, TLS) gets
    /// one: TLS sends `close_notify` and the socket's FIN, then waits for the
    /// peer's `close_notify` (or its FIN), discarding what it still sends.
    /// Returns true when over.
    // asyncio: sslproto.SSLProtocol._start_shutdown / _do_shutdown (TLS)
    fn finish_close(&mut self, io: &mut impl StreamIo) -> bool {
        if (self.tls || self.shutdown_on_close) && !self.eof_sent {
            match ready(io.shutdown_write()) {
                None => return false,
                Some(Err(e)) if self.tls && e.kind() != io::ErrorKind::NotConnected => {
                    self.fail_io(e);
                    return true;
                }
                // Otherwise a failed shutdown while closing loses nothing:
                // every byte was written; the stream is dropped next.
                _ => self.eof_sent = true,
            }
        }
        if !self.tls || self.read_eof {
            return true;
        }
        self.draining = true;
        false
    }

    /// While draining a TLS close: one read whose data is discarded. Returns
    /// true if something happened (data, the peer's end, or an error).
    fn read_discard(&mut self, io: &mut impl StreamIo) -> bool {
        let res = SCRATCH.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.capacity() - buf.len() < MIN_READ_SIZE {
                buf.reserve(MIN_READ_SIZE);
            }
            let res = ready(io.read(&mut buf));
            buf.clear();
            res
        });
        let Some(res) = res else {
            return false;
        };
        match res {
            Ok(0) => {
                self.read_eof = true;
                true
            }
            Ok(n) => {
                tracing::debug!(bytes = n, "discarding data received after close()");
                true
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            // After our close_notify, a peer that closes without answering
            // it ends the shutdown cleanly: many peers never answer.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.read_eof = true;
                true
            }
            Err(e) => {
                self.fail_io(e);
                true
            }
        }
    }

    /// One read straight into a buffered protocol's buffer: `get_buffer`,
    /// read, `buffer_updated(n)`.
    // asyncio: selector_events._SelectorSocketTransport._read_ready__get_buffer
    fn read_buffered(&mut self, io: &mut impl StreamIo) -> bool {
        enum Outcome {
            Empty,
            Pending,
            Read(io::Result<usize>),
        }
        let Some(p) = self.current() else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let Receiver::Buffer(r) = p.receiver() else {
                return Outcome::Pending;
            };
            let buf = r.get_buffer(None);
            if buf.is_empty() {
                return Outcome::Empty;
            }
            loop {
                match ready(io.read_into(buf)) {
                    None => return Outcome::Pending,
                    Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Some(res) => return Outcome::Read(res),
                }
            }
        }));
        match outcome {
            Err(payload) => {
                self.panicked(Callback::GetBuffer, payload.as_ref());
                true
            }
            Ok(Outcome::Empty) => {
                tracing::error!("get_buffer() returned an empty buffer; connection aborted");
                self.fail(Error::EmptyBuffer);
                true
            }
            Ok(Outcome::Read(Ok(0))) => self.deliver_or_hold(Got::Eof),
            Ok(Outcome::Read(Ok(n))) => self.deliver_or_hold(Got::Count(n)),
            Ok(Outcome::Pending) => false,
            Ok(Outcome::Read(Err(e))) => {
                self.fail_io(e);
                true
            }
        }
    }

    /// Delivers what a buffered protocol's read got, or holds it if a
    /// `pause_reading()` from another thread landed during the read (which
    /// runs outside the lock: `get_buffer` is a callback). Returns true
    /// (something happened).
    fn deliver_or_hold(&mut self, got: Got) -> bool {
        if self.transport.lock().read_paused {
            self.held = Some(got);
        } else {
            self.deliver(got);
        }
        true
    }

    fn deliver(&mut self, got: Got) {
        match got {
            Got::Data(data) => self.deliver_data(data),
            Got::Count(n) => self.deliver_buffer_updated(n),
            Got::Eof => self.deliver_eof(),
        }
    }

    fn deliver_buffer_updated(&mut self, n: usize) {
        self.call(Callback::BufferUpdated, |p| {
            if let Receiver::Buffer(r) = p.receiver() {
                r.buffer_updated(n);
            }
        });
    }

    fn deliver_data(&mut self, data: Bytes) {
        debug_assert!(!data.is_empty());
        let fed = self.call(Callback::DataReceived, |p| match p.receiver() {
            Receiver::Data(r) => {
                r.data_received(data);
                Ok(())
            }
            Receiver::Buffer(r) => feed_buffered(r, &data),
        });
        if let Some(Err(e)) = fed {
            tracing::error!(error = %e, "feeding a buffered protocol failed; connection aborted");
            self.fail(e);
        }
    }

    fn deliver_eof(&mut self) {
        self.read_eof = true;
        tracing::debug!("eof received");
        // false closes (flush, FIN, connection_lost(None)); true keeps the
        // write side open; None means it panicked and the connection failed.
        let keep_open = self.call(Callback::EofReceived, |p| match p.receiver() {
            Receiver::Data(r) => r.eof_received(),
            Receiver::Buffer(r) => r.eof_received(),
        });
        if keep_open == Some(true) && self.tls {
            // asyncio: sslproto.SSLProtocol._do_read__* (no half-close).
            tracing::warn!("returning true from eof_received() has no effect when using TLS");
        }
        if keep_open == Some(false) || (keep_open.is_some() && self.tls) {
            self.transport.close();
        }
    }

    fn fail_io(&mut self, e: io::Error) {
        tracing::debug!(error = %e, "fatal i/o error");
        self.fail(Error::Io(e));
    }

    /// Runs one callback, catching a panic: the connection is then aborted
    /// with [`Error::ProtocolPanicked`] and `None` returned.
    ///
    /// The connection's own protocol is passed as its concrete type (then
    /// coerced), so that the compiler sees through the `dyn` calls and can
    /// inline the callback; a switched-to protocol is a `Box<dyn>`.
    fn call<R>(
        &mut self,
        callback: Callback,
        f: impl FnOnce(&mut dyn StreamProtocol) -> R,
    ) -> Option<R> {
        let res = match (&mut self.switched, &mut self.protocol) {
            (Some(p), _) => catch_unwind(AssertUnwindSafe(|| f(p.as_mut()))),
            (None, Some(p)) => catch_unwind(AssertUnwindSafe(|| f(p))),
            (None, None) => return None,
        };
        match res {
            Ok(r) => Some(r),
            Err(payload) => {
                self.panicked(callback, payload.as_ref());
                None
            }
        }
    }

    /// The protocol that gets the callbacks: the switched-to one, or the
    /// original.
    fn current(&mut self) -> Option<&mut dyn StreamProtocol> {
        match &mut self.switched {
            Some(p) => Some(p.as_mut()),
            None => self.protocol.as_mut().map(|p| p as &mut dyn StreamProtocol),
        }
    }

    /// Applies a `set_protocol`: from here on `new` gets every callback.
    ///
    /// Bytes a buffered protocol's buffer already holds (read while a
    /// cross-thread pause landed) belong to it: it gets their
    /// `buffer_updated` first. Held `Bytes` go to the new protocol.
    fn switch_protocol(&mut self, new: Box<dyn StreamProtocol>) {
        if let Some(Got::Count(n)) = self.held {
            self.held = None;
            self.deliver_buffer_updated(n);
        }
        tracing::debug!("protocol switched");
        self.switched = Some(new);
    }

    fn panicked(&mut self, callback: Callback, payload: &(dyn Any + Send)) {
        let message = panic_message(payload);
        tracing::error!(
            callback = callback.name(),
            panic = %message,
            kind = self.transport.kind(),
            peer = self.transport.peer_addr().map(tracing::field::display),
            "protocol callback panicked; connection aborted"
        );
        self.fail(Error::ProtocolPanicked { callback, message });
    }
}

impl<P: StreamProtocol> Drop for Connection<P> {
    /// A connection dropped while open (its task was cancelled, e.g. at
    /// runtime shutdown) still delivers `connection_lost(Some(Cancelled))`.
    fn drop(&mut self) {
        if matches!(self.phase, Phase::Open | Phase::Done) {
            if self.phase == Phase::Open {
                self.fail(Error::Cancelled);
            }
            drop(self.finish());
        }
    }
}

impl<P: StreamProtocol> std::fmt::Debug for Connection<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("transport", &self.transport)
            .field("read_eof", &self.read_eof)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// What a [`flush`] left to do.
enum Flushed {
    /// The buffer is empty, or the socket takes no more now.
    Idle,
    /// The buffer fell to the low mark while paused: `resume_writing`.
    Resume,
    /// The write failed; the connection fails with the error.
    Failed(io::Error),
}

/// Sends what is buffered, with the transport's lock held across each
/// non-blocking write so that writers on other threads see a consistent
/// buffer; it never blocks.
fn flush(st: &mut State, io: &mut impl StreamIo) -> Flushed {
    loop {
        if st.buf.is_empty() {
            return Flushed::Idle;
        }
        // With an upgrade pending, only the bytes written before the request
        // go out over the current stream.
        let max = match &st.upgrade {
            None => usize::MAX,
            Some(up) if up.plain_left == 0 => return Flushed::Idle,
            Some(up) => up.plain_left,
        };
        // The iovec array is sized for what is buffered: filling all of
        // MAX_IOVECS slots costs more than the write's own bookkeeping when
        // a callback wrote one chunk, the common case.
        let res = match st.buf.chunk_count() {
            1 => write_chunks::<1>(&st.buf, max, io),
            2..=16 => write_chunks::<16>(&st.buf, max, io),
            _ => write_chunks::<MAX_IOVECS>(&st.buf, max, io),
        };
        let Some(res) = ready(res) else {
            return Flushed::Idle;
        };
        match res {
            Ok(0) => return Flushed::Failed(io::ErrorKind::WriteZero.into()),
            Ok(k) => {
                if let Some(up) = &mut st.upgrade {
                    up.plain_left = up.plain_left.saturating_sub(k);
                }
                if st.buf.consume(k) == Some(FlowEvent::Resume) {
                    return Flushed::Resume;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Flushed::Failed(e),
        }
    }
}

/// One vectored write of the first (up to) `N` buffered chunks, at most
/// `max` bytes.
fn write_chunks<const N: usize>(
    buf: &WriteBuffer,
    max: usize,
    io: &mut impl StreamIo,
) -> Poll<io::Result<usize>> {
    let mut slots = [IoSlice::new(&[]); N];
    let n = buf.chunks_vectored_max(&mut slots, max);
    io.write_vectored(&slots[..n])
}

/// One read for a data protocol: `None` if nothing is ready, else the data,
/// the EOF or the (fatal) error.
///
/// Reads go into the thread's scratch buffer, shared by every connection
/// driven on the thread, so an idle connection holds no read buffer at all.
/// The bytes read are split off the front of it as a [`Bytes`] that shares
/// its allocation (one reference count, no copy, no allocation); once the
/// protocol has dropped every such `Bytes` (an echo's are dropped when they
/// have been sent), the buffer reclaims the space and the next reads reuse
/// it. A `Bytes` the protocol keeps pins the scratch allocation it came from
/// until it is dropped, as with `tokio-util`'s codecs; the thread then reads
/// into a fresh allocation.
///
/// `read_size` adapts: it doubles while reads fill the buffer and halves when
/// they use less than an eighth of it.
fn read_data(read_size: &mut usize, io: &mut impl StreamIo) -> Option<io::Result<Got>> {
    let want = *read_size;
    let res = SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        // Empty here; reclaims the allocation once the Bytes split off it
        // earlier are gone, or starts a new one.
        buf.reserve(want);
        let spare = buf.capacity();
        loop {
            match ready(io.read(&mut buf)) {
                None => return None,
                Some(Ok(0)) => return Some(Ok(None)),
                Some(Ok(_)) => return Some(Ok(Some((buf.split().freeze(), spare)))),
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => {
                    buf.clear();
                    return Some(Err(e));
                }
            }
        }
    })?;
    match res {
        Ok(None) => Some(Ok(Got::Eof)),
        Ok(Some((data, spare))) => {
            let n = data.len();
            if n >= spare {
                *read_size = (*read_size * 2).min(MAX_READ_SIZE);
            } else if n < *read_size / 8 && *read_size > MIN_READ_SIZE {
                *read_size = (*read_size / 2).max(MIN_READ_SIZE);
            }
            Some(Ok(Got::Data(data)))
        }
        Err(e) => Some(Err(e)),
    }
}

/// Copies bytes that were already read into a buffered protocol's buffers,
/// as many `get_buffer`/`buffer_updated` rounds as it takes.
///
/// # Errors
///
/// [`Error::EmptyBuffer`] if `get_buffer` returns an empty buffer.
// asyncio: protocols._feed_data_to_buffered_proto
pub fn feed_buffered(proto: &mut dyn BufferReceiver, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        let buf = proto.get_buffer(Some(data.len()));
        if buf.is_empty() {
            return Err(Error::EmptyBuffer);
        }
        let n = buf.len().min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        proto.buffer_updated(n);
        data = &data[n..];
    }
    Ok(())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
