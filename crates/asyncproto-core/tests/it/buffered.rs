//! `BufferedProtocol` on the memory transport: behaviour no upstream test
//! pins (asyncio-semantics.md §7 and §5), named by behaviour, and
//! [`BufRec`], the recording buffered protocol the `cpython` ports use too.
//!
//! `Recorder` is a data `Protocol`; `BufRec` records the buffered callbacks
//! (`get_buffer` with its size hint, `buffer_updated` with its count) and
//! keeps the bytes each `buffer_updated` reports, so a test can check both
//! the exact callback sequence and the data.

use std::{
    fmt,
    io::ErrorKind,
    sync::{Arc, Mutex, PoisonError},
};

use asyncproto_core::{
    BaseProtocol, Buffered, BufferedProtocol, Error, Transport,
    testing::{MemoryTransport, WriteMode},
};

use Ev::*;

/// A callback recorded by [`BufRec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    /// `connection_made`.
    Made,
    /// `get_buffer(sizehint)`.
    GetBuffer(Option<usize>),
    /// `buffer_updated(nbytes)`.
    Updated(usize),
    /// `eof_received`.
    Eof,
    /// `pause_writing`.
    PauseWriting,
    /// `resume_writing`.
    ResumeWriting,
    /// `connection_lost(exc)`, with the error's kind.
    Lost(Option<ErrorKind>),
}

type Hook = Box<dyn FnMut(&Ev, &Transport) + Send>;

/// A `BufferedProtocol` that records every callback.
///
/// It lends the same buffer on every `get_buffer` (its length is the
/// buffer's size; a test may change it between steps), appends what each
/// `buffer_updated` reports to [`data`](Self::data), and runs an optional
/// hook after recording each event (to write, pause, or panic inside that
/// callback; a panicking hook on `GetBuffer` is a panicking `get_buffer`).
/// The events and data are also readable through [`log`](Self::log) once
/// the protocol is out of reach (after `set_protocol`).
pub(crate) struct BufRec {
    pub(crate) buf: Vec<u8>,
    log: BufLog,
    errors: Vec<Error>,
    transport: Option<Transport>,
    eof_keep_open: bool,
    pause_on_made: bool,
    hook: Option<Hook>,
}

impl BufRec {
    /// A recorder lending a buffer of `size` bytes.
    pub(crate) fn new(size: usize) -> Self {
        Self {
            buf: vec![0; size],
            log: BufLog::default(),
            errors: Vec::new(),
            transport: None,
            eof_keep_open: false,
            pause_on_made: false,
            hook: None,
        }
    }

    /// `eof_received` returns `keep_open`.
    #[must_use]
    pub(crate) fn eof_returns(mut self, keep_open: bool) -> Self {
        self.eof_keep_open = keep_open;
        self
    }

    /// Pauses reading in `connection_made`: nothing is read (and no buffer
    /// asked for) until the test resumes, so what the peer sent meanwhile is
    /// read in one go.
    #[must_use]
    pub(crate) fn paused_on_made(mut self) -> Self {
        self.pause_on_made = true;
        self
    }

    /// Runs `hook` after recording each event.
    #[must_use]
    pub(crate) fn on_event(mut self, hook: impl FnMut(&Ev, &Transport) + Send + 'static) -> Self {
        self.set_hook(hook);
        self
    }

    /// Replaces the hook (e.g. to arm a panic once the connection is up).
    pub(crate) fn set_hook(&mut self, hook: impl FnMut(&Ev, &Transport) + Send + 'static) {
        self.hook = Some(Box::new(hook));
    }

    /// The events so far.
    pub(crate) fn events(&self) -> Vec<Ev> {
        self.log.events()
    }

    /// Takes the events so far.
    pub(crate) fn take(&mut self) -> Vec<Ev> {
        std::mem::take(&mut *lock(&self.log.events))
    }

    /// Every byte `buffer_updated` reported, in order.
    pub(crate) fn data(&self) -> Vec<u8> {
        self.log.data()
    }

    /// A shared handle to the events and data.
    pub(crate) fn log(&self) -> BufLog {
        self.log.clone()
    }

    /// The errors `connection_lost` received.
    pub(crate) fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// The transport from `connection_made`.
    pub(crate) fn transport(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }

    fn record(&mut self, ev: Ev) {
        lock(&self.log.events).push(ev.clone());
        if let (Some(hook), Some(t)) = (self.hook.as_mut(), self.transport.as_ref()) {
            hook(&ev, t);
        }
    }
}

/// A [`BufRec`]'s events and data, shared.
#[derive(Debug, Clone, Default)]
pub(crate) struct BufLog {
    events: Arc<Mutex<Vec<Ev>>>,
    data: Arc<Mutex<Vec<u8>>>,
}

impl BufLog {
    /// The events so far.
    pub(crate) fn events(&self) -> Vec<Ev> {
        lock(&self.events).clone()
    }

    /// Every byte `buffer_updated` reported, in order.
    pub(crate) fn data(&self) -> Vec<u8> {
        lock(&self.data).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for BufRec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRec")
            .field("buf", &self.buf.len())
            .field("events", &self.log.events())
            .finish_non_exhaustive()
    }
}

impl BaseProtocol for BufRec {
    fn connection_made(&mut self, transport: Transport) {
        if self.pause_on_made {
            transport.pause_reading();
        }
        self.transport = Some(transport);
        self.record(Made);
    }

    fn connection_lost(&mut self, exc: Option<Error>) {
        self.record(Lost(exc.as_ref().map(Error::kind)));
        self.errors.extend(exc);
    }

    fn pause_writing(&mut self) {
        self.record(PauseWriting);
    }

    fn resume_writing(&mut self) {
        self.record(ResumeWriting);
    }
}

impl BufferedProtocol for BufRec {
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8] {
        self.record(GetBuffer(sizehint));
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        let filled = self.buf.get(..nbytes).unwrap_or_else(|| {
            panic!(
                "buffer_updated({nbytes}) over a {}-byte buffer",
                self.buf.len()
            )
        });
        lock(&self.log.data).extend_from_slice(filled);
        self.record(Updated(nbytes));
    }

    fn eof_received(&mut self) -> bool {
        self.record(Eof);
        self.eof_keep_open
    }
}

/// A buffered connection for `rec`, after `connection_made`.
pub(crate) fn buffered(rec: BufRec) -> MemoryTransport<Buffered<BufRec>> {
    MemoryTransport::new(Buffered(rec))
}

/// Resumes reading and runs the connection.
pub(crate) fn resume(t: &mut MemoryTransport<Buffered<BufRec>>) {
    t.transport().resume_reading();
    t.run();
}

/// Runs the connection once more and asserts that nothing but an
/// unanswered `get_buffer` came (nothing to read, not fatal).
#[track_caller]
pub(crate) fn assert_quiet(t: &mut MemoryTransport<Buffered<BufRec>>) {
    t.run();
    let events = t.protocol_mut().0.take();
    assert!(
        events.iter().all(|e| *e == Ev::GetBuffer(None)),
        "no further callback but an unanswered get_buffer: {events:?}"
    );
}

// ---------------------------------------------------------------------------
// Behaviour.

#[test]
fn ten_bytes_into_a_four_byte_buffer_update_four_four_two_then_eof() {
    // asyncio-semantics.md §7, Ex: the peer sends 10 bytes and closes.
    let mut t = buffered(BufRec::new(4).paused_on_made());
    t.feed("0123456789");
    t.feed_eof();
    assert_eq!(t.protocol().0.events(), [Made]);

    resume(&mut t);
    let hint = GetBuffer(None);
    assert_eq!(
        t.protocol_mut().0.take(),
        [
            Made,
            hint.clone(),
            Updated(4),
            hint.clone(),
            Updated(4),
            hint.clone(),
            Updated(2),
            hint,
            Eof,
            Lost(None),
        ]
    );
    assert_eq!(t.protocol().0.data(), b"0123456789");
    assert!(t.is_closed());
}

#[test]
fn every_read_asks_for_the_buffer_first_with_no_size_hint() {
    let mut t = buffered(BufRec::new(16));
    t.protocol_mut().0.take();
    t.feed("abc");
    t.feed("defgh");
    let events = t.protocol_mut().0.take();
    let answered: Vec<_> = events
        .windows(2)
        .filter_map(|w| match w {
            [GetBuffer(None), Updated(n)] => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(answered, [3, 5], "{events:?}");
    assert_eq!(
        events.iter().filter(|e| matches!(e, Updated(_))).count(),
        2,
        "every buffer_updated follows its get_buffer: {events:?}"
    );
    assert_eq!(t.protocol().0.data(), b"abcdefgh");
}

#[test]
fn pause_reading_in_buffer_updated_asks_for_no_buffer_until_resume() {
    // The protocol pauses in its first buffer_updated. The peer's later
    // bytes stay unread (no get_buffer while paused); on resume they are read
    // into the buffer and reported then.
    let mut t = buffered(BufRec::new(8).on_event(|ev, t| {
        if *ev == Updated(3) {
            t.pause_reading();
        }
    }));
    t.feed("one");
    t.protocol_mut().0.take();
    t.feed("two!");
    assert_eq!(
        t.protocol_mut().0.take(),
        [],
        "no get_buffer and no buffer_updated while paused"
    );
    assert!(!t.transport().is_reading());

    resume(&mut t);
    let events = t.protocol_mut().0.take();
    assert_eq!(events[..2], [GetBuffer(None), Updated(4)], "{events:?}");
    assert_eq!(t.protocol().0.data(), b"onetwo!");
    assert_quiet(&mut t);
}

#[test]
fn bytes_read_as_a_cross_thread_pause_lands_wait_in_the_buffer_for_the_resume() {
    // A pause from outside a callback that lands between `get_buffer` and
    // the read: the bytes are already in the protocol's buffer; their
    // `buffer_updated` comes only after `resume_reading`, and the buffer is
    // not asked for again in between (it still holds them).
    let mut t = buffered(BufRec::new(8));
    t.protocol_mut().0.take();
    t.protocol_mut().0.set_hook(|ev, t| {
        if *ev == GetBuffer(None) {
            // Stands for another thread's pause_reading() racing the read.
            t.pause_reading();
        }
    });
    t.feed("held");
    assert_eq!(
        t.protocol_mut().0.take(),
        [GetBuffer(None)],
        "read into the buffer but not reported while paused"
    );
    assert_eq!(
        &t.protocol().0.buf[..4],
        b"held",
        "the bytes are in the buffer"
    );
    t.feed("more");
    assert_eq!(t.protocol_mut().0.take(), [], "nothing while paused");

    t.protocol_mut().0.set_hook(|_, _| {});
    resume(&mut t);
    let events = t.protocol_mut().0.take();
    assert_eq!(
        events[..3],
        [Updated(4), GetBuffer(None), Updated(4)],
        "the held count first, then the next read: {events:?}"
    );
    assert_eq!(t.protocol().0.data(), b"heldmore");
    assert_quiet(&mut t);
}

#[test]
fn eof_while_a_buffered_protocol_is_paused_is_held_until_resume() {
    let mut t = buffered(BufRec::new(64).paused_on_made());
    t.feed_eof();
    assert_eq!(t.protocol().0.events(), [Made], "no EOF while paused");
    assert!(!t.is_closed());
    assert!(!t.transport().is_closing());

    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Eof, Lost(None)]
    );
    assert!(t.is_closed());
}

#[test]
fn eof_read_as_a_cross_thread_pause_lands_is_held_until_resume() {
    let mut t = buffered(BufRec::new(8));
    t.protocol_mut().0.take();
    t.protocol_mut().0.set_hook(|ev, t| {
        if *ev == GetBuffer(None) {
            t.pause_reading();
        }
    });
    t.feed_eof();
    assert_eq!(t.protocol_mut().0.take(), [GetBuffer(None)]);
    assert!(!t.is_closed());

    t.protocol_mut().0.set_hook(|_, _| {});
    resume(&mut t);
    assert_eq!(t.protocol_mut().0.take(), [Eof, Lost(None)]);
    assert!(t.is_closed());
}

#[test]
fn the_buffer_is_never_asked_for_after_connection_lost() {
    let mut t = buffered(BufRec::new(8));
    t.feed("data");
    t.transport().close();
    t.run();
    assert!(t.is_closed());
    let events = t.protocol_mut().0.take();
    assert_eq!(events.last(), Some(&Lost(None)), "{events:?}");

    t.feed("late");
    t.feed_eof();
    t.transport().resume_reading();
    t.run();
    assert_eq!(t.protocol_mut().0.take(), [], "no callback at all");
}

#[test]
fn the_buffer_is_never_asked_for_after_abort_or_a_reset() {
    let mut aborted = buffered(BufRec::new(8));
    aborted.protocol_mut().0.take();
    aborted.transport().abort();
    aborted.feed("late");
    assert_eq!(aborted.protocol_mut().0.take(), [Lost(None)]);

    let mut reset = buffered(BufRec::new(8));
    reset.protocol_mut().0.take();
    reset.feed_error(ErrorKind::ConnectionReset.into());
    reset.feed("late");
    assert_eq!(
        reset.protocol_mut().0.take(),
        [GetBuffer(None), Lost(Some(ErrorKind::ConnectionReset))]
    );
}

#[test]
fn close_with_bytes_held_for_a_paused_protocol_drops_them() {
    // As for a data protocol: what was read but not delivered when close()
    // lands is never delivered.
    let mut t = buffered(BufRec::new(8));
    t.protocol_mut().0.take();
    t.protocol_mut().0.set_hook(|ev, t| {
        if *ev == GetBuffer(None) {
            t.pause_reading();
        }
    });
    t.feed("held");
    t.protocol_mut().0.set_hook(|_, _| {});
    t.transport().close();
    t.run();
    assert_eq!(t.protocol_mut().0.take(), [GetBuffer(None), Lost(None)]);
    assert_eq!(t.protocol().0.data(), b"");
}

#[test]
fn writes_in_buffer_updated_and_flow_control_work_as_for_data_protocols() {
    let mut t = buffered(BufRec::new(4).on_event(|ev, t| {
        if let Updated(n) = ev {
            t.write(vec![b'x'; *n * 10]).unwrap();
        }
    }));
    t.transport()
        .set_write_buffer_limits(Some(20), Some(0))
        .unwrap();
    t.set_write_mode(WriteMode::Block);
    t.protocol_mut().0.take();
    t.feed("abc");
    assert_eq!(
        t.protocol_mut().0.take(),
        [GetBuffer(None), Updated(3), PauseWriting, GetBuffer(None)]
    );
    t.set_write_mode(WriteMode::Accept);
    assert_eq!(t.take_written().len(), 30);
    let events = t.protocol_mut().0.take();
    assert_eq!(events.first(), Some(&ResumeWriting), "{events:?}");
}
