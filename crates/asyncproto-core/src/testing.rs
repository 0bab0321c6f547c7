//! Test support: an in-memory transport and a recording protocol.
//!
//! [`MemoryTransport`] drives a protocol through the same state machine as
//! the real backends, deterministically and without sockets, in the spirit of
//! Twisted's `StringTransport`. The test plays the peer: it feeds bytes, EOF
//! or errors into the read side, scripts what the write side accepts, and
//! reads what was sent.
//!
//! # Examples
//!
//! ```
//! use asyncproto_core::testing::{Event, MemoryTransport, Recorder};
//!
//! let mut t = MemoryTransport::new(Recorder::default());
//! t.feed("ping");
//! t.feed_eof();
//! assert_eq!(
//!     t.protocol().events(),
//!     [Event::Made, Event::Data("ping".into()), Event::Eof, Event::Lost(None)]
//! );
//! assert!(t.is_closed());
//! ```

use std::{
    collections::VecDeque,
    fmt,
    io::{self, IoSlice},
    sync::{Arc, Mutex},
    task::{Poll, Waker},
};

use bytes::{Bytes, BytesMut};

use crate::{
    error::Error,
    extra_info::TransportInfo,
    lifecycle::{Connection, Status, StreamIo},
    protocol::{BaseProtocol, Protocol, StreamProtocol},
    transport::Transport,
};

/// What the scripted write side of a [`MemoryTransport`] does with writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Takes everything (the default).
    #[default]
    Accept,
    /// Takes at most this many more bytes, then blocks (partial writes).
    Limit(usize),
    /// Takes nothing: every write would block.
    Block,
    /// Returns `Ok(0)` (taken as a fatal `WriteZero`).
    Zero,
    /// Fails every write with this error kind.
    Fail(io::ErrorKind),
}

#[derive(Debug)]
enum Incoming {
    Data(Bytes),
    Eof,
    Error(io::Error),
}

#[derive(Debug, Default)]
struct MemoryIo {
    incoming: VecDeque<Incoming>,
    written: BytesMut,
    /// Bytes written in total, taken or not.
    written_total: usize,
    mode: WriteMode,
    write_calls: usize,
    shut_write: bool,
    closed: bool,
}

impl StreamIo for MemoryIo {
    fn read(&mut self, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        Poll::Ready(match self.incoming.pop_front() {
            None => return Poll::Pending,
            Some(Incoming::Eof) => Ok(0),
            Some(Incoming::Error(e)) => Err(e),
            Some(Incoming::Data(mut data)) => {
                let room = (buf.capacity() - buf.len()).max(1);
                if data.len() > room {
                    let rest = data.split_off(room);
                    self.incoming.push_front(Incoming::Data(rest));
                }
                buf.extend_from_slice(&data);
                Ok(data.len())
            }
        })
    }

    fn read_into(&mut self, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(match self.incoming.pop_front() {
            None => return Poll::Pending,
            Some(Incoming::Eof) => Ok(0),
            Some(Incoming::Error(e)) => Err(e),
            Some(Incoming::Data(mut data)) => {
                if data.len() > buf.len() {
                    let rest = data.split_off(buf.len());
                    self.incoming.push_front(Incoming::Data(rest));
                }
                buf[..data.len()].copy_from_slice(&data);
                Ok(data.len())
            }
        })
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.write_calls += 1;
        let mut budget = match self.mode {
            WriteMode::Accept => usize::MAX,
            WriteMode::Limit(0) | WriteMode::Block => return Poll::Pending,
            WriteMode::Limit(n) => n,
            WriteMode::Zero => return Poll::Ready(Ok(0)),
            WriteMode::Fail(kind) => return Poll::Ready(Err(kind.into())),
        };
        let mut taken = 0;
        for b in bufs {
            let n = b.len().min(budget);
            self.written.extend_from_slice(&b[..n]);
            self.written_total += n;
            taken += n;
            budget -= n;
            if budget == 0 {
                break;
            }
        }
        if let WriteMode::Limit(n) = &mut self.mode {
            *n -= taken;
        }
        Poll::Ready(Ok(taken))
    }

    fn shutdown_write(&mut self) -> Poll<io::Result<()>> {
        Poll::Ready(match self.mode {
            WriteMode::Fail(kind) => Err(kind.into()),
            _ => {
                self.shut_write = true;
                Ok(())
            }
        })
    }
}

/// A transport over memory, driving a protocol through the real state
/// machine. See the [module docs](self).
///
/// Every method that changes something runs the connection until it would
/// block, so callbacks have happened when it returns. Operations made through
/// the [`Transport`] handle from outside a callback take effect at the next
/// such method, or at [`run`](Self::run).
pub struct MemoryTransport<P: StreamProtocol> {
    conn: Connection<P>,
    io: MemoryIo,
    finished: Option<P>,
    done: bool,
    upgrades: Vec<Upgraded>,
}

/// An upgrade ([`request_upgrade`](crate::lifecycle::request_upgrade)) the
/// memory transport performed: it switches to TLS rules at once, with no
/// handshake and no encryption, so that tests can check what goes out before
/// and after the switch.
#[derive(Debug)]
#[non_exhaustive]
pub struct Upgraded {
    /// The request given to `request_upgrade`.
    pub request: Box<dyn std::any::Any + Send>,
    /// How many bytes the peer had received (in total, taken or not) when
    /// the stream switched.
    pub at_written: usize,
    /// Bytes read but not delivered before the switch, handed to the
    /// upgraded stream.
    pub held: Option<Bytes>,
}

impl<P: StreamProtocol> MemoryTransport<P> {
    /// Creates the transport and delivers `connection_made`.
    pub fn new(protocol: P) -> Self {
        Self::with_info(
            protocol,
            TransportInfo::new("memory").with_can_write_eof(true),
        )
    }

    /// As [`new`](Self::new), with the given transport info (addresses,
    /// `can_write_eof`).
    pub fn with_info(protocol: P, info: TransportInfo) -> Self {
        let mut t = Self {
            conn: Connection::new(protocol, info),
            io: MemoryIo::default(),
            finished: None,
            done: false,
            upgrades: Vec::new(),
        };
        t.conn.start();
        t.run();
        t
    }

    /// Runs the connection until it would block: applies what was done
    /// through the handle, flushes, delivers data and callbacks.
    pub fn run(&mut self) {
        if self.done {
            return;
        }
        loop {
            match self.conn.drive(&mut self.io, Waker::noop()) {
                Status::Pending => return,
                Status::Yield => {}
                Status::Upgrade => {
                    if let Some((request, held)) = self.conn.take_upgrade() {
                        self.upgrades.push(Upgraded {
                            request,
                            at_written: self.io.written_total,
                            held,
                        });
                        self.conn.enter_tls();
                    }
                }
                Status::Done => {
                    self.io.closed = true;
                    self.finished = self.conn.finish();
                    self.done = true;
                    return;
                }
            }
        }
    }

    /// The peer sends `data` (ignored if empty).
    pub fn feed(&mut self, data: impl Into<Bytes>) {
        let data = data.into();
        if !data.is_empty() {
            self.io.incoming.push_back(Incoming::Data(data));
        }
        self.run();
    }

    /// The peer half-closes (EOF).
    pub fn feed_eof(&mut self) {
        self.io.incoming.push_back(Incoming::Eof);
        self.run();
    }

    /// The next read fails with `err` (e.g. `ConnectionReset`).
    pub fn feed_error(&mut self, err: io::Error) {
        self.io.incoming.push_back(Incoming::Error(err));
        self.run();
    }

    /// Scripts the write side, then runs (a mode that accepts drains the
    /// buffer now).
    pub fn set_write_mode(&mut self, mode: WriteMode) {
        self.io.mode = mode;
        self.run();
    }

    /// Lets the write side take `n` more bytes, then block: a partial drain.
    pub fn drain(&mut self, n: usize) {
        self.set_write_mode(WriteMode::Limit(n));
    }

    /// Takes the bytes the peer has received so far.
    pub fn take_written(&mut self) -> Bytes {
        self.io.written.split().freeze()
    }

    /// The upgrades performed so far, oldest first.
    pub fn upgrades(&self) -> &[Upgraded] {
        &self.upgrades
    }

    /// Bytes the peer received and that were not yet taken.
    pub fn written(&self) -> &[u8] {
        &self.io.written
    }

    /// How many times the write side was asked to write.
    pub fn write_calls(&self) -> usize {
        self.io.write_calls
    }

    /// Whether the write side was shut down (FIN sent, after `write_eof`).
    pub fn is_write_shut(&self) -> bool {
        self.io.shut_write
    }

    /// Whether the stream was closed and `connection_lost` delivered.
    pub fn is_closed(&self) -> bool {
        self.io.closed
    }

    /// A handle to the transport, as the protocol got it.
    pub fn transport(&self) -> &Transport {
        self.conn.transport()
    }

    /// The protocol (also after `connection_lost`).
    ///
    /// # Panics
    ///
    /// If the protocol panicked in `connection_lost` and was dropped.
    pub fn protocol(&self) -> &P {
        self.conn
            .protocol()
            .or(self.finished.as_ref())
            .expect("protocol was dropped after panicking in connection_lost")
    }

    /// Mutable access to the protocol.
    ///
    /// # Panics
    ///
    /// As [`protocol`](Self::protocol).
    pub fn protocol_mut(&mut self) -> &mut P {
        match self.conn.protocol_mut() {
            Some(p) => p,
            None => self
                .finished
                .as_mut()
                .expect("protocol was dropped after panicking in connection_lost"),
        }
    }

    /// Whether the protocol still exists (it is dropped if it panicked in
    /// `connection_lost`).
    pub fn has_protocol(&self) -> bool {
        self.conn.protocol().is_some() || self.finished.is_some()
    }

    /// Ends the test: returns the protocol (`None` if it was dropped). If the
    /// connection is still open, it is aborted first, with
    /// [`Error::Cancelled`] as `connection_lost`'s error.
    pub fn into_protocol(mut self) -> Option<P> {
        if !self.done {
            self.conn.fail(Error::Cancelled);
            self.run();
        }
        self.finished.take()
    }
}

impl<P: StreamProtocol> fmt::Debug for MemoryTransport<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("conn", &self.conn)
            .field("written", &self.io.written.len())
            .field("mode", &self.io.mode)
            .field("closed", &self.io.closed)
            .finish_non_exhaustive()
    }
}

/// A callback recorded by [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `connection_made`.
    Made,
    /// `data_received(data)`.
    Data(Bytes),
    /// `eof_received`.
    Eof,
    /// `pause_writing`.
    PauseWriting,
    /// `resume_writing`.
    ResumeWriting,
    /// `connection_lost(exc)`, with the error's [`io::ErrorKind`].
    Lost(Option<io::ErrorKind>),
}

type Hook = Box<dyn FnMut(&Event, &Transport) + Send>;

/// A protocol that records every callback, for tests.
///
/// It keeps its transport, returns a configurable value from
/// `eof_received`, and can run a hook on each event (to react, e.g. write on
/// `Made`, or to forward events to a test's channel). Events are also kept in
/// a shared log readable from other threads through [`log`](Self::log).
#[derive(Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Event>>>,
    errors: Vec<Error>,
    transport: Option<Transport>,
    eof_keep_open: bool,
    hook: Option<Hook>,
}

impl Recorder {
    /// A recorder whose `eof_received` returns `keep_open`.
    #[must_use]
    pub fn eof_returns(mut self, keep_open: bool) -> Self {
        self.eof_keep_open = keep_open;
        self
    }

    /// Runs `hook` after recording each event, with the transport.
    #[must_use]
    pub fn on_event(mut self, hook: impl FnMut(&Event, &Transport) + Send + 'static) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }

    /// The events so far.
    ///
    /// # Panics
    ///
    /// If a thread panicked while holding the log's lock.
    pub fn events(&self) -> Vec<Event> {
        self.log.lock().expect("recorder log poisoned").clone()
    }

    /// Takes the events so far, leaving the log empty.
    ///
    /// # Panics
    ///
    /// As [`events`](Self::events).
    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut *self.log.lock().expect("recorder log poisoned"))
    }

    /// A shared handle to the log, readable while the protocol is owned by
    /// a connection task.
    pub fn log(&self) -> Arc<Mutex<Vec<Event>>> {
        Arc::clone(&self.log)
    }

    /// The errors `connection_lost` received.
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// The transport from `connection_made`.
    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }

    /// All data received, concatenated.
    pub fn data(&self) -> Vec<u8> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn record(&mut self, event: Event) {
        self.log
            .lock()
            .expect("recorder log poisoned")
            .push(event.clone());
        if let (Some(hook), Some(t)) = (self.hook.as_mut(), self.transport.as_ref()) {
            hook(&event, t);
        }
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("events", &self.events())
            .field("eof_keep_open", &self.eof_keep_open)
            .finish_non_exhaustive()
    }
}

impl BaseProtocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
        self.record(Event::Made);
    }

    fn connection_lost(&mut self, exc: Option<Error>) {
        self.record(Event::Lost(exc.as_ref().map(Error::kind)));
        self.errors.extend(exc);
    }

    fn pause_writing(&mut self) {
        self.record(Event::PauseWriting);
    }

    fn resume_writing(&mut self) {
        self.record(Event::ResumeWriting);
    }
}

impl Protocol for Recorder {
    fn data_received(&mut self, data: Bytes) {
        self.record(Event::Data(data));
    }

    fn eof_received(&mut self) -> bool {
        self.record(Event::Eof);
        self.eof_keep_open
    }
}
