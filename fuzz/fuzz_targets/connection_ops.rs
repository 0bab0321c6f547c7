//! Random operations on a `MemoryTransport<Recorder>`: the peer feeds data,
//! EOF and errors and scripts the write side; the test (and the protocol,
//! from inside its callbacks) writes, half-closes, closes, aborts, pauses
//! and resumes reading and changes the water marks. After every operation
//! the callback contract and the write accounting are checked.
//!
//! Checked:
//! - callback order: `Made` first and once, no empty `Data`, `Data` never
//!   after `Eof`, `Eof` at most once, `PauseWriting`/`ResumeWriting`
//!   alternate starting with a pause, `Lost` at most once and last;
//! - `Data`/`Eof` never while reading is paused or the transport is closing,
//!   and the data delivered is a prefix of what the peer fed (all of it, up to
//!   the EOF, when `Eof` comes);
//! - `pause_writing` only over the high mark, `resume_writing` only at or
//!   below the low mark; after the connection ran, a buffer over the high
//!   mark has an outstanding pause;
//! - writes while open are always accepted (the buffer grows by their size);
//!   after `write_eof()` they fail with `WriteAfterEof`; while closing they
//!   are accepted or dropped, whole;
//! - the bytes the peer received are a prefix of the bytes accepted, and
//!   `get_write_buffer_size()` is their difference while the connection is
//!   open and not aborted; a graceful `close()` (`Lost(None)` without an
//!   abort) delivers every accepted byte;
//! - `is_reading()`, `is_closing()` and the limits agree with the calls made.

#![no_main]

use std::{
    io,
    sync::{Arc, Mutex, MutexGuard},
};

use arbitrary::Arbitrary;
use asyncproto_core::{
    Bytes, Error, Transport,
    flow::DEFAULT_HIGH_WATER,
    testing::{Event, MemoryTransport, Recorder, WriteMode},
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Kind {
    ConnectionReset,
    BrokenPipe,
    NotConnected,
    Other,
    /// Retried by the state machine.
    Interrupted,
    /// Taken as "nothing to read now".
    WouldBlock,
}

impl Kind {
    fn io(self) -> io::ErrorKind {
        match self {
            Self::ConnectionReset => io::ErrorKind::ConnectionReset,
            Self::BrokenPipe => io::ErrorKind::BrokenPipe,
            Self::NotConnected => io::ErrorKind::NotConnected,
            Self::Other => io::ErrorKind::Other,
            Self::Interrupted => io::ErrorKind::Interrupted,
            Self::WouldBlock => io::ErrorKind::WouldBlock,
        }
    }
}

/// Error kinds for `WriteMode::Fail`. `Interrupted` is left out: a write side
/// that fails every call with `EINTR` forever makes `flush` spin (it retries
/// `Interrupted` at once, as the `StreamIo` contract says), which no real
/// socket does.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum FailKind {
    ConnectionReset,
    BrokenPipe,
    NotConnected,
    Other,
    WouldBlock,
}

impl FailKind {
    fn io(self) -> io::ErrorKind {
        match self {
            Self::ConnectionReset => io::ErrorKind::ConnectionReset,
            Self::BrokenPipe => io::ErrorKind::BrokenPipe,
            Self::NotConnected => io::ErrorKind::NotConnected,
            Self::Other => io::ErrorKind::Other,
            Self::WouldBlock => io::ErrorKind::WouldBlock,
        }
    }
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Mode {
    Accept,
    Limit(u16),
    Block,
    Zero,
    Fail(FailKind),
}

impl Mode {
    fn write_mode(self) -> WriteMode {
        match self {
            Self::Accept => WriteMode::Accept,
            Self::Limit(n) => WriteMode::Limit(usize::from(n)),
            Self::Block => WriteMode::Block,
            Self::Zero => WriteMode::Zero,
            Self::Fail(k) => WriteMode::Fail(k.io()),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Feed(Vec<u8>),
    /// A large chunk (split over several reads).
    FeedLarge {
        len: u32,
        fill: u8,
    },
    FeedEof,
    FeedError(Kind),
    Write(Vec<u8>),
    WriteLarge {
        len: u32,
        fill: u8,
    },
    WriteLines(Vec<Vec<u8>>),
    WriteEof,
    Close,
    Abort,
    PauseReading,
    ResumeReading,
    SetLimits {
        high: Option<u16>,
        low: Option<u16>,
    },
    SetMode(Mode),
    Drain(u16),
    Run,
    TakeWritten,
}

/// What the protocol does from inside its callbacks.
#[derive(Debug, Arbitrary, Clone)]
struct Reactions {
    eof_keep_open: bool,
    on_made: Vec<u8>,
    on_data: DataReaction,
    on_eof: EofReaction,
    /// `pause_reading()` in `pause_writing`, `resume_reading()` in
    /// `resume_writing` (what `echo_server` does).
    flow_pauses_reading: bool,
    /// Change the marks in `pause_writing` (low, high).
    limits_in_pause: Option<(u16, u16)>,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum DataReaction {
    Nothing,
    Echo,
    EchoTwice,
    EchoThenClose,
    EchoThenWriteEof,
    Close,
    Abort,
    PauseReading,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum EofReaction {
    Nothing,
    Write,
    WriteEof,
    WriteThenClose,
    Abort,
}

#[derive(Debug, Arbitrary)]
struct Input {
    reactions: Reactions,
    ops: Vec<Op>,
}

/// What the test knows from the calls it made.
#[derive(Debug, Default)]
struct Model {
    /// Every byte accepted into the write buffer, in order, minus what an
    /// abort or a failure discarded.
    accepted: Vec<u8>,
    /// How many bytes the peer received that the test took with
    /// `take_written` (already checked against `accepted`).
    taken: usize,
    /// How many of the peer's bytes were checked against `accepted`.
    peer_checked: usize,
    eof_requested: bool,
    read_paused: bool,
    aborted: bool,
    /// Data fed by the peer, in order.
    fed: Vec<u8>,
    /// How much of `fed` came before the first EOF or read error queued.
    fed_before_end: Option<usize>,
    /// How much data was delivered to `data_received` (checked against
    /// `fed` as it comes).
    delivered: usize,
    limits: (usize, usize),
}

type Shared = Arc<Mutex<Model>>;

fn lock(m: &Shared) -> MutexGuard<'_, Model> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn write(t: &Transport, m: &mut Model, data: Bytes) {
    let before = t.get_write_buffer_size();
    let closing = t.is_closing();
    let len = data.len();
    let res = t.write(data.clone());
    let after = t.get_write_buffer_size();
    if m.eof_requested {
        assert!(
            matches!(res, Err(Error::WriteAfterEof)),
            "write after write_eof: {res:?}"
        );
        assert_eq!(after, before);
        return;
    }
    assert!(res.is_ok(), "write: {res:?}");
    if after == before + len && len > 0 {
        m.accepted.extend_from_slice(&data);
    } else {
        assert_eq!(after, before, "a write is accepted whole or dropped");
        assert!(
            len == 0 || closing,
            "a write of {len} B while open was dropped"
        );
    }
}

fn writelines(t: &Transport, m: &mut Model, list: &[Vec<u8>]) {
    let before = t.get_write_buffer_size();
    let closing = t.is_closing();
    let total: usize = list.iter().map(Vec::len).sum();
    let res = t.writelines(list.iter().map(|v| Bytes::from(v.clone())));
    let after = t.get_write_buffer_size();
    if m.eof_requested {
        assert!(matches!(res, Err(Error::WriteAfterEof)), "{res:?}");
        assert_eq!(after, before);
        return;
    }
    assert!(res.is_ok(), "writelines: {res:?}");
    if after == before + total && total > 0 {
        for v in list {
            m.accepted.extend_from_slice(v);
        }
    } else {
        assert_eq!(after, before, "writelines is accepted whole or dropped");
        assert!(
            total == 0 || closing,
            "writelines of {total} B dropped while open"
        );
    }
}

fn write_eof(t: &Transport, m: &mut Model) {
    let closing = t.is_closing();
    assert!(t.write_eof().is_ok());
    if !closing {
        m.eof_requested = true;
    }
}

fn pause_reading(t: &Transport, m: &mut Model) {
    t.pause_reading();
    m.read_paused = true;
    assert!(!t.is_reading());
}

fn resume_reading(t: &Transport, m: &mut Model) {
    if !t.is_closing() {
        m.read_paused = false;
    }
    t.resume_reading();
}

fn abort(t: &Transport, m: &mut Model, peer_len: Option<usize>) {
    t.abort();
    m.aborted = true;
    assert!(t.is_closing());
    assert_eq!(t.get_write_buffer_size(), 0, "abort discards the buffer");
    if let Some(n) = peer_len {
        m.accepted.truncate(n);
    }
}

fn set_limits(t: &Transport, m: &mut Model, high: Option<u16>, low: Option<u16>) {
    let (high, low) = (high.map(usize::from), low.map(usize::from));
    let res = t.set_write_buffer_limits(high, low);
    let want = match (high, low) {
        (None, None) => (DEFAULT_HIGH_WATER / 4, DEFAULT_HIGH_WATER),
        (Some(h), None) => (h / 4, h),
        (None, Some(l)) => (l, l * 4),
        (Some(h), Some(l)) => (l, h),
    };
    if want.1 < want.0 {
        assert!(matches!(res, Err(Error::InvalidLimits { .. })), "{res:?}");
    } else {
        assert!(res.is_ok(), "{res:?}");
        m.limits = want;
    }
    assert_eq!(t.get_write_buffer_limits(), m.limits);
}

/// The protocol's reaction to each event, with the checks that need the
/// moment of the callback.
fn hook(model: Shared, r: Reactions) -> impl FnMut(&Event, &Transport) + Send + 'static {
    move |event, t| {
        let mut m = lock(&model);
        match event {
            Event::Made => {
                write(t, &mut m, Bytes::from(r.on_made.clone()));
            }
            Event::Data(d) => {
                assert!(!d.is_empty(), "data_received with empty data");
                assert!(!m.read_paused, "data_received while reading is paused");
                assert!(!t.is_closing(), "data_received while closing");
                let at = m.delivered;
                assert!(
                    m.fed.get(at..at + d.len()) == Some(&d[..]),
                    "delivered data is not a prefix of what the peer fed"
                );
                m.delivered += d.len();
                match r.on_data {
                    DataReaction::Nothing => {}
                    DataReaction::Echo => write(t, &mut m, d.clone()),
                    DataReaction::EchoTwice => {
                        write(t, &mut m, d.clone());
                        writelines(t, &mut m, &[d.to_vec(), b"!".to_vec()]);
                    }
                    DataReaction::EchoThenClose => {
                        write(t, &mut m, d.clone());
                        t.close();
                    }
                    DataReaction::EchoThenWriteEof => {
                        write(t, &mut m, d.clone());
                        write_eof(t, &mut m);
                    }
                    DataReaction::Close => t.close(),
                    // The peer's byte count is not visible from here: the
                    // discarded tail is trimmed after the operation.
                    DataReaction::Abort => abort(t, &mut m, None),
                    DataReaction::PauseReading => pause_reading(t, &mut m),
                }
            }
            Event::Eof => {
                assert!(!m.read_paused, "eof_received while reading is paused");
                assert!(!t.is_closing(), "eof_received while closing");
                let end = m.fed_before_end.expect("EOF delivered before one was fed");
                assert_eq!(
                    m.delivered, end,
                    "EOF delivered before all the data fed before it"
                );
                match r.on_eof {
                    EofReaction::Nothing => {}
                    EofReaction::Write => write(t, &mut m, Bytes::from_static(b"bye")),
                    EofReaction::WriteEof => write_eof(t, &mut m),
                    EofReaction::WriteThenClose => {
                        write(t, &mut m, Bytes::from_static(b"bye"));
                        t.close();
                    }
                    EofReaction::Abort => abort(t, &mut m, None),
                }
            }
            Event::PauseWriting => {
                let (_, high) = t.get_write_buffer_limits();
                assert!(
                    t.get_write_buffer_size() > high,
                    "pause_writing at {} B with high {high}",
                    t.get_write_buffer_size()
                );
                if r.flow_pauses_reading {
                    pause_reading(t, &mut m);
                }
                if let Some((low, high)) = r.limits_in_pause {
                    set_limits(t, &mut m, Some(high), Some(low));
                }
            }
            Event::ResumeWriting => {
                let (low, _) = t.get_write_buffer_limits();
                assert!(
                    t.get_write_buffer_size() <= low,
                    "resume_writing at {} B with low {low}",
                    t.get_write_buffer_size()
                );
                if r.flow_pauses_reading {
                    resume_reading(t, &mut m);
                }
            }
            Event::Lost(_) => {}
        }
    }
}

/// Checks the event log incrementally.
#[derive(Debug, Default)]
struct Order {
    seen: usize,
    made: bool,
    eof: bool,
    lost: bool,
    pause_outstanding: bool,
}

impl Order {
    fn check(&mut self, events: &[Event]) {
        for e in &events[self.seen..] {
            assert!(!self.lost, "{e:?} after connection_lost");
            if !self.made {
                assert_eq!(*e, Event::Made, "first callback is connection_made");
                self.made = true;
                continue;
            }
            match e {
                Event::Made => panic!("connection_made twice"),
                Event::Data(d) => {
                    assert!(!d.is_empty(), "empty data_received");
                    assert!(!self.eof, "data_received after eof_received");
                }
                Event::Eof => {
                    assert!(!self.eof, "eof_received twice");
                    self.eof = true;
                }
                Event::PauseWriting => {
                    assert!(!self.pause_outstanding, "two pause_writing in a row");
                    self.pause_outstanding = true;
                }
                Event::ResumeWriting => {
                    assert!(self.pause_outstanding, "resume_writing without a pause");
                    self.pause_outstanding = false;
                }
                Event::Lost(_) => self.lost = true,
            }
        }
        self.seen = events.len();
    }
}

/// How many bytes the peer received in all.
fn peer_len(t: &MemoryTransport<Recorder>, m: &Model) -> usize {
    m.taken + t.written().len()
}

/// Checks after an operation (outside any callback). `ran` is true when the
/// operation ran the connection until it would block.
fn check_after(t: &MemoryTransport<Recorder>, model: &Shared, order: &mut Order, ran: bool) {
    let events = t.protocol().events();
    order.check(&events);
    let mut m = lock(model);
    // The peer's bytes are a prefix of the accepted ones. Checked as they
    // come: what arrived since the last check is at the end of `written()`.
    let peer = peer_len(t, &m);
    let new = &t.written()[m.peer_checked - m.taken..];
    assert!(
        m.accepted.get(m.peer_checked..peer) == Some(new),
        "peer got {peer} B that are not a prefix of the {} B accepted",
        m.accepted.len()
    );
    m.peer_checked = peer;
    let tr = t.transport();
    let size = tr.get_write_buffer_size();
    if t.is_closed() {
        assert!(order.lost, "closed without connection_lost");
        assert!(matches!(events.last(), Some(Event::Lost(_))));
        assert_eq!(size, 0, "buffer left after the connection closed");
        assert!(tr.is_closing());
        assert!(!tr.is_reading());
        let graceful = matches!(events.last(), Some(Event::Lost(None))) && !m.aborted;
        if graceful {
            assert_eq!(
                peer,
                m.accepted.len(),
                "graceful close did not deliver every accepted byte"
            );
        }
        m.accepted.truncate(peer);
        return;
    }
    assert!(!order.lost, "connection_lost before the transport closed");
    if m.aborted {
        assert_eq!(size, 0, "buffer after abort");
        m.accepted.truncate(peer);
    } else {
        assert_eq!(
            size,
            m.accepted.len() - peer,
            "write buffer size != accepted - received"
        );
    }
    assert_eq!(tr.is_reading(), !tr.is_closing() && !m.read_paused);
    assert_eq!(tr.get_write_buffer_limits(), m.limits);
    if ran {
        let (_, high) = m.limits;
        if size > high {
            assert!(
                order.pause_outstanding,
                "{size} B buffered over high {high} with no pause_writing"
            );
        }
    }
}

fn fill(len: u32, fill: u8) -> Vec<u8> {
    // Up to ~300 KB: more than one read (`MAX_READ_SIZE` is 256 KiB) and
    // several times the default high mark.
    let len = (len % 300_000) as usize;
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fuzz_target!(|input: Input| {
    let Input { reactions, ops } = input;
    let model: Shared = Arc::new(Mutex::new(Model {
        limits: (DEFAULT_HIGH_WATER / 4, DEFAULT_HIGH_WATER),
        ..Model::default()
    }));
    let recorder = Recorder::default()
        .eof_returns(reactions.eof_keep_open)
        .on_event(hook(Arc::clone(&model), reactions));
    let mut t = MemoryTransport::new(recorder);
    let mut order = Order::default();
    check_after(&t, &model, &mut order, true);

    for op in ops.into_iter().take(128) {
        let tr = t.transport().clone();
        let ran = match op {
            Op::Feed(data) => {
                {
                    let mut m = lock(&model);
                    if m.fed_before_end.is_none() {
                        m.fed.extend_from_slice(&data);
                    }
                }
                t.feed(data);
                true
            }
            Op::FeedLarge { len, fill: f } => {
                let data = fill(len, f);
                {
                    let mut m = lock(&model);
                    if m.fed_before_end.is_none() {
                        m.fed.extend_from_slice(&data);
                    }
                }
                t.feed(data);
                true
            }
            Op::FeedEof => {
                {
                    let mut m = lock(&model);
                    if m.fed_before_end.is_none() {
                        m.fed_before_end = Some(m.fed.len());
                    }
                }
                t.feed_eof();
                true
            }
            Op::FeedError(kind) => {
                if !matches!(kind, Kind::Interrupted | Kind::WouldBlock) {
                    let mut m = lock(&model);
                    if m.fed_before_end.is_none() {
                        m.fed_before_end = Some(m.fed.len());
                    }
                }
                t.feed_error(io::Error::new(kind.io(), "fuzz"));
                true
            }
            Op::Write(data) => {
                write(&tr, &mut lock(&model), Bytes::from(data));
                false
            }
            Op::WriteLarge { len, fill: f } => {
                write(&tr, &mut lock(&model), Bytes::from(fill(len, f)));
                false
            }
            Op::WriteLines(list) => {
                writelines(&tr, &mut lock(&model), &list);
                false
            }
            Op::WriteEof => {
                write_eof(&tr, &mut lock(&model));
                false
            }
            Op::Close => {
                tr.close();
                assert!(tr.is_closing());
                assert!(!tr.is_reading());
                false
            }
            Op::Abort => {
                let mut m = lock(&model);
                let n = peer_len(&t, &m);
                abort(&tr, &mut m, Some(n));
                false
            }
            Op::PauseReading => {
                pause_reading(&tr, &mut lock(&model));
                false
            }
            Op::ResumeReading => {
                resume_reading(&tr, &mut lock(&model));
                false
            }
            Op::SetLimits { high, low } => {
                set_limits(&tr, &mut lock(&model), high, low);
                false
            }
            Op::SetMode(mode) => {
                t.set_write_mode(mode.write_mode());
                true
            }
            Op::Drain(n) => {
                t.drain(usize::from(n));
                true
            }
            Op::Run => {
                t.run();
                true
            }
            Op::TakeWritten => {
                let taken = t.take_written();
                // Already checked by the previous `check_after`.
                lock(&model).taken += taken.len();
                false
            }
        };
        check_after(&t, &model, &mut order, ran);
    }

    // End of the test: an open connection is aborted with `Cancelled`.
    let was_closed = t.is_closed();
    let log = t.protocol().log();
    let p = t.into_protocol().expect("the recorder never panics");
    let events = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    order.check(&events);
    assert!(order.lost, "connection_lost never delivered");
    if !was_closed {
        assert_eq!(
            events.last(),
            Some(&Event::Lost(Some(io::ErrorKind::ConnectionAborted)))
        );
    }
    assert!(p.errors().len() <= 1);
});
