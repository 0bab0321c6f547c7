//! Property tests of the whole connection (issue #3), and of
//! [`WriteBuffer`] alone.
//!
//! `connection_matches_the_model_and_keeps_the_contract` runs a model of one
//! connection side by side with `MemoryTransport<Recorder>` over random
//! operations:
//!
//! - the peer sends a chunk (any size, or a run of 1-byte chunks), half-closes
//!   (`feed_eof`) or resets (`feed_error(ConnectionReset)`);
//! - the protocol, through its handle, from outside a callback or from inside
//!   one (the k-th callback runs the k-th scripted reaction through
//!   Recorder's `on_event` hook), writes, `writelines`, `write_eof`,
//!   `close`, `abort`, pauses and resumes reading and sets the water marks
//!   (valid or not);
//! - the write side takes n bytes, blocks, takes everything, or fails;
//! - `eof_received` returns true or false, and `can_write_eof` is true or
//!   false, per case.
//!
//! After every step the connection must equal the model (callback log, the
//! transport's state at each callback, each handle call's result, bytes
//! delivered and bytes reaching the peer, buffer size, limits, closing and
//! lost state), and the contract must hold on what was observed alone
//! (`check_contract`), so a mistake shared by the model and the code still
//! meets the spec's invariants. The model follows
//! `asyncio-semantics.md` §1-6 and the lifecycle docs: pause is checked before
//! the post-callback send, resume after each send.
//!
//! Failing cases are persisted to `tests/it/proptest-regressions/model.txt`
//! and replayed first on later runs.

use std::{
    collections::VecDeque,
    fmt,
    io::{ErrorKind, IoSlice},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use asyncproto_core::{
    Bytes, Error, Transport, TransportInfo,
    flow::{DEFAULT_HIGH_WATER, FlowEvent, MAX_IOVECS, WriteBuffer},
    testing::{Event, MemoryTransport, Recorder, WriteMode},
};
use proptest::{collection::vec, option, prelude::*, test_runner::FileFailurePersistence};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn connection_matches_the_model_and_keeps_the_contract(case in case()) {
        run_case(&case)?;
    }

    #[test]
    fn write_buffer_size_and_edges_match_the_model(ops in vec(buf_op(), 1..120)) {
        run_write_buffer(&ops)?;
    }
}

/// proptest's defaults (256 cases, `PROPTEST_CASES` overrides), with failures
/// persisted beside this file whatever the working directory.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/proptest-regressions/model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// Operations.

/// A call on the transport handle.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HandleOp {
    Write(usize),
    Writelines(Vec<usize>),
    WriteEof,
    Close,
    Abort,
    PauseReading,
    ResumeReading,
    Limits(Option<usize>, Option<usize>),
}

/// One step of a case.
#[derive(Debug, Clone)]
enum Op {
    /// The peer sends one chunk of n bytes (0: nothing).
    Feed(usize),
    /// The peer sends n 1-byte chunks, the connection running after each.
    FeedBytes(usize),
    FeedEof,
    FeedReset,
    /// A handle call from outside a callback; `true`: the connection runs
    /// after it (its task was woken), `false`: the next step runs it.
    Handle(HandleOp, bool),
    Run,
    /// The write side takes n more bytes, then blocks.
    Drain(usize),
    Block,
    Accept,
    /// Every write fails with `BrokenPipe` (and so does the shutdown).
    WriteFails,
    /// Every write returns `Ok(0)` (a fatal `WriteZero`).
    WriteZero,
}

#[derive(Debug, Clone)]
struct Case {
    keep_open: bool,
    can_write_eof: bool,
    /// The k-th callback (0 = `connection_made`) runs `reactions[k]`.
    reactions: Vec<Vec<HandleOp>>,
    ops: Vec<Op>,
}

fn write_len() -> impl Strategy<Value = usize> {
    // Small sizes, marks and drains land exactly on a water mark often.
    prop_oneof![
        4 => 0..=8usize,
        4 => 9..=64usize,
        3 => 65..=400usize,
        1 => 1000..=70_000usize
    ]
}

fn handle_op() -> impl Strategy<Value = HandleOp> {
    let mark = || option::weighted(0.8, prop_oneof![0..=16usize, 17..=300usize]);
    prop_oneof![
        30 => write_len().prop_map(HandleOp::Write),
        8 => vec(0..=100usize, 0..5).prop_map(HandleOp::Writelines),
        3 => Just(HandleOp::WriteEof),
        3 => Just(HandleOp::Close),
        2 => Just(HandleOp::Abort),
        8 => Just(HandleOp::PauseReading),
        10 => Just(HandleOp::ResumeReading),
        10 => (mark(), mark()).prop_map(|(h, l)| HandleOp::Limits(h, l)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => prop_oneof![5 => 0..=16usize, 3 => 17..=2000usize, 1 => 2001..=70_000usize]
            .prop_map(Op::Feed),
        6 => (1..=40usize).prop_map(Op::FeedBytes),
        2 => Just(Op::FeedEof),
        1 => Just(Op::FeedReset),
        40 => (handle_op(), any::<bool>()).prop_map(|(o, run)| Op::Handle(o, run)),
        6 => Just(Op::Run),
        12 => prop_oneof![0..=8usize, 9..=500usize].prop_map(Op::Drain),
        6 => Just(Op::Block),
        6 => Just(Op::Accept),
        1 => prop_oneof![Just(Op::WriteFails), Just(Op::WriteZero)],
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let reaction = prop_oneof![3 => Just(Vec::new()), 2 => vec(handle_op(), 1..=3)];
    (
        any::<bool>(),
        prop::bool::weighted(0.8),
        vec(reaction, 0..40),
        any::<bool>(),
        vec(op(), 1..80),
    )
        .prop_map(|(keep_open, can_write_eof, reactions, blocked, mut ops)| {
            // Half the cases start with a write side that takes nothing, so
            // writes pile up and close/abort meet a full buffer.
            if blocked {
                ops.insert(0, Op::Block);
            }
            Case {
                keep_open,
                can_write_eof,
                reactions,
                ops,
            }
        })
}

// What is observed.

/// A handle call's outcome, comparable across the real and the model side.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Misuse {
    WriteAfterEof,
    InvalidLimits {
        high: usize,
        low: usize,
    },
    Unsupported(&'static str),
    /// Any other error: never expected.
    Other(String),
}

impl From<Error> for Misuse {
    fn from(e: Error) -> Self {
        match e {
            Error::WriteAfterEof => Self::WriteAfterEof,
            Error::InvalidLimits { high, low } => Self::InvalidLimits { high, low },
            Error::Unsupported { method } => Self::Unsupported(method),
            other => Self::Other(format!("{other:?}")),
        }
    }
}

/// What the transport reports: `is_reading`, `is_closing`,
/// `get_write_buffer_size`, `get_write_buffer_limits` (low, high).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    reading: bool,
    closing: bool,
    size: usize,
    limits: (usize, usize),
}

impl Snapshot {
    fn of(t: &Transport) -> Self {
        Self {
            reading: t.is_reading(),
            closing: t.is_closing(),
            size: t.get_write_buffer_size(),
            limits: t.get_write_buffer_limits(),
        }
    }
}

/// One line of the trace: a callback starting, or a handle call.
#[derive(Clone, PartialEq, Eq)]
enum Entry {
    /// A callback began; the transport's state at that moment.
    Callback { event: Event, at: Snapshot },
    /// A handle call (inside or outside a callback): the bytes it carried,
    /// whether the transport was closing just before, and its result.
    Op {
        op: HandleOp,
        bytes: Bytes,
        closing_before: bool,
        result: Result<(), Misuse>,
    },
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Callback { event, at } => write!(f, "{} {at:?}", summary(event)),
            Self::Op {
                op,
                bytes,
                closing_before,
                result,
            } => write!(
                f,
                "{op:?} ({} bytes, closing before: {closing_before}) -> {result:?}",
                bytes.len()
            ),
        }
    }
}

/// An event without its payload, for readable failures.
fn summary(event: &Event) -> String {
    match event {
        Event::Data(d) => format!("Data({} bytes)", d.len()),
        other => format!("{other:?}"),
    }
}

/// Deterministic, position-dependent bytes, so a lost, duplicated or
/// reordered byte shows.
fn pattern(stream: u64, start: u64, len: usize) -> Bytes {
    (0..len as u64)
        .map(|i| {
            let x = ((stream << 48) | (start + i)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x.to_be_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// The payload of the next write: each write gets its own stream.
fn next_payload(serial: &mut u64, len: usize) -> Bytes {
    *serial += 1;
    pattern(*serial, 0, len)
}

/// asyncio's `_set_write_buffer_limits` derivation (§6): the (high, low)
/// that a call with these arguments means.
fn asyncio_limits(high: Option<usize>, low: Option<usize>) -> (usize, usize) {
    match (high, low) {
        (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_HIGH_WATER / 4),
        (Some(h), None) => (h, h / 4),
        (None, Some(l)) => (l * 4, l),
        (Some(h), Some(l)) => (h, l),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The real side's trace, filled by the protocol's hook and by the test.
#[derive(Debug, Default)]
struct Trace {
    reactions: Vec<Vec<HandleOp>>,
    callbacks: usize,
    serial: u64,
    entries: Vec<Entry>,
}

impl Trace {
    /// Records a callback and runs its scripted reaction.
    fn callback(&mut self, event: &Event, t: &Transport) {
        self.entries.push(Entry::Callback {
            event: event.clone(),
            at: Snapshot::of(t),
        });
        let ops = self
            .reactions
            .get(self.callbacks)
            .cloned()
            .unwrap_or_default();
        self.callbacks += 1;
        for op in &ops {
            self.apply(t, op);
        }
    }

    fn apply(&mut self, t: &Transport, op: &HandleOp) {
        let closing_before = t.is_closing();
        let (bytes, result) = match op {
            HandleOp::Write(n) => {
                let data = next_payload(&mut self.serial, *n);
                (data.clone(), t.write(data))
            }
            HandleOp::Writelines(ns) => {
                let items: Vec<Bytes> = ns
                    .iter()
                    .map(|n| next_payload(&mut self.serial, *n))
                    .collect();
                (Bytes::from(items.concat()), t.writelines(items))
            }
            HandleOp::WriteEof => (Bytes::new(), t.write_eof()),
            HandleOp::Close => {
                t.close();
                (Bytes::new(), Ok(()))
            }
            HandleOp::Abort => {
                t.abort();
                (Bytes::new(), Ok(()))
            }
            HandleOp::PauseReading => {
                t.pause_reading();
                (Bytes::new(), Ok(()))
            }
            HandleOp::ResumeReading => {
                t.resume_reading();
                (Bytes::new(), Ok(()))
            }
            HandleOp::Limits(h, l) => (Bytes::new(), t.set_write_buffer_limits(*h, *l)),
        };
        self.entries.push(Entry::Op {
            op: op.clone(),
            bytes,
            closing_before,
            result: result.map_err(Misuse::from),
        });
    }
}

/// How the peer's stream ended, as fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
}

/// What the peer sent: the bytes before its first EOF or reset (nothing
/// after that is ever read), and that end.
#[derive(Debug, Default)]
struct Peer {
    pos: u64,
    sent: Vec<u8>,
    end: Option<End>,
}

impl Peer {
    fn chunk(&mut self, len: usize) -> Bytes {
        let data = pattern(0, self.pos, len);
        self.pos += len as u64;
        if self.end.is_none() {
            self.sent.extend_from_slice(&data);
        }
        data
    }

    fn end(&mut self, end: End) {
        self.end.get_or_insert(end);
    }
}

// The model.

/// What the model's write side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Accept,
    Limit(usize),
    Block,
    Zero,
    Fail,
}

#[derive(Debug)]
enum Incoming {
    Data(Bytes),
    Eof,
    Reset,
}

/// One connection as asyncio's rules (and the documented differences)
/// describe it.
#[derive(Debug)]
struct Model {
    keep_open: bool,
    can_write_eof: bool,
    reactions: Vec<Vec<HandleOp>>,
    callbacks: usize,
    serial: u64,
    entries: Vec<Entry>,
    events: Vec<Event>,
    incoming: VecDeque<Incoming>,
    /// The write buffer, as the chunks written.
    chunks: VecDeque<Bytes>,
    written: Vec<u8>,
    high: usize,
    low: usize,
    write_paused: bool,
    side: Side,
    closing: bool,
    aborted: bool,
    eof_requested: bool,
    shut: bool,
    read_paused: bool,
    read_eof: bool,
    /// asyncio's `_conn_lost != 0`: writes are dropped.
    dropping: bool,
    done: bool,
    error: Option<ErrorKind>,
}

impl Model {
    fn new(case: &Case) -> Self {
        Self {
            keep_open: case.keep_open,
            can_write_eof: case.can_write_eof,
            reactions: case.reactions.clone(),
            callbacks: 0,
            serial: 0,
            entries: Vec::new(),
            events: Vec::new(),
            incoming: VecDeque::new(),
            chunks: VecDeque::new(),
            written: Vec::new(),
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_HIGH_WATER / 4,
            write_paused: false,
            side: Side::Accept,
            closing: false,
            aborted: false,
            eof_requested: false,
            shut: false,
            read_paused: false,
            read_eof: false,
            dropping: false,
            done: false,
            error: None,
        }
    }

    fn size(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            reading: !self.closing && !self.read_paused,
            closing: self.closing,
            size: self.size(),
            limits: (self.low, self.high),
        }
    }

    /// `connection_made`, then run.
    fn start(&mut self, actual: &[Event]) {
        self.callback(Event::Made);
        self.run(actual);
    }

    /// `into_protocol`: an open connection is cancelled.
    fn finish(&mut self, actual: &[Event]) {
        if !self.done {
            self.fail(ErrorKind::ConnectionAborted);
            self.run(actual);
        }
    }

    fn feed(&mut self, data: Bytes, actual: &[Event]) {
        if !data.is_empty() {
            self.incoming.push_back(Incoming::Data(data));
        }
        self.run(actual);
    }

    fn feed_end(&mut self, end: End, actual: &[Event]) {
        self.incoming.push_back(match end {
            End::Eof => Incoming::Eof,
            End::Reset => Incoming::Reset,
        });
        self.run(actual);
    }

    fn set_side(&mut self, side: Side, actual: &[Event]) {
        self.side = side;
        self.run(actual);
    }

    /// The connection runs until it would block.
    ///
    /// Data chunk boundaries carry no meaning: where the read buffer split a
    /// sent chunk is taken from the real log (`actual`), checking only that
    /// each piece is a non-empty prefix of what is left of one sent chunk.
    fn run(&mut self, actual: &[Event]) {
        if self.done {
            return;
        }
        loop {
            if self.aborted {
                return self.lose();
            }
            // Pause is checked before the send attempt.
            if !self.write_paused && self.size() > self.high {
                self.write_paused = true;
                self.callback(Event::PauseWriting);
                continue;
            }
            if self.flush() {
                continue;
            }
            if self.chunks.is_empty() {
                if self.closing {
                    self.dropping = true;
                    return self.lose();
                }
                if self.eof_requested && !self.shut {
                    if self.side == Side::Fail {
                        self.fail(ErrorKind::BrokenPipe);
                        continue;
                    }
                    self.shut = true;
                }
            }
            if self.closing || self.read_paused || self.read_eof {
                return;
            }
            match self.incoming.pop_front() {
                None => return,
                Some(Incoming::Eof) => {
                    self.read_eof = true;
                    self.callback(Event::Eof);
                    if !self.keep_open {
                        self.close();
                    }
                }
                Some(Incoming::Reset) => self.fail(ErrorKind::ConnectionReset),
                Some(Incoming::Data(mut data)) => {
                    let n = match actual.get(self.events.len()) {
                        Some(Event::Data(d)) if !d.is_empty() && d.len() <= data.len() => d.len(),
                        _ => data.len(),
                    };
                    if n < data.len() {
                        let rest = data.split_off(n);
                        self.incoming.push_front(Incoming::Data(rest));
                    }
                    self.callback(Event::Data(data));
                }
            }
        }
    }

    /// Sends what the write side takes, one vectored write (at most
    /// `MAX_IOVECS` chunks) at a time, checking for a resume after each.
    /// Returns true if a callback ran or the connection failed.
    fn flush(&mut self) -> bool {
        while !self.chunks.is_empty() {
            let budget = match self.side {
                Side::Block | Side::Limit(0) => return false,
                Side::Zero => {
                    self.fail(ErrorKind::WriteZero);
                    return true;
                }
                Side::Fail => {
                    self.fail(ErrorKind::BrokenPipe);
                    return true;
                }
                Side::Accept => usize::MAX,
                Side::Limit(n) => n,
            };
            let offered: usize = self.chunks.iter().take(MAX_IOVECS).map(Bytes::len).sum();
            let mut k = offered.min(budget);
            if let Side::Limit(n) = &mut self.side {
                *n -= k;
            }
            while k > 0 {
                let front = self.chunks.front_mut().expect("k <= size");
                let n = k.min(front.len());
                self.written.extend_from_slice(&front.split_to(n));
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                k -= n;
            }
            if self.write_paused && self.size() <= self.low {
                self.write_paused = false;
                self.callback(Event::ResumeWriting);
                return true;
            }
        }
        false
    }

    fn fail(&mut self, kind: ErrorKind) {
        if !self.done {
            self.error.get_or_insert(kind);
        }
        self.chunks.clear();
        self.closing = true;
        self.aborted = true;
        self.dropping = true;
    }

    fn lose(&mut self) {
        self.chunks.clear();
        self.closing = true;
        self.dropping = true;
        self.done = true;
        self.callback(Event::Lost(self.error));
    }

    fn callback(&mut self, event: Event) {
        self.entries.push(Entry::Callback {
            event: event.clone(),
            at: self.snapshot(),
        });
        self.events.push(event);
        let ops = self
            .reactions
            .get(self.callbacks)
            .cloned()
            .unwrap_or_default();
        self.callbacks += 1;
        for op in &ops {
            self.handle(op);
        }
    }

    /// A handle call, as `transport.rs` documents it after asyncio.
    fn handle(&mut self, op: &HandleOp) {
        let closing_before = self.closing;
        let mut bytes = Bytes::new();
        let result = match op {
            HandleOp::Write(n) => {
                let data = next_payload(&mut self.serial, *n);
                bytes = data.clone();
                self.write(vec![data])
            }
            HandleOp::Writelines(ns) => {
                let items: Vec<Bytes> = ns
                    .iter()
                    .map(|n| next_payload(&mut self.serial, *n))
                    .collect();
                bytes = Bytes::from(items.concat());
                self.write(items)
            }
            HandleOp::WriteEof => {
                if !self.can_write_eof {
                    Err(Misuse::Unsupported("write_eof"))
                } else {
                    if !self.closing {
                        self.eof_requested = true;
                    }
                    Ok(())
                }
            }
            HandleOp::Close => {
                self.close();
                Ok(())
            }
            HandleOp::Abort => {
                if !self.dropping {
                    self.chunks.clear();
                    self.closing = true;
                    self.aborted = true;
                    self.dropping = true;
                }
                Ok(())
            }
            HandleOp::PauseReading => {
                if !self.closing {
                    self.read_paused = true;
                }
                Ok(())
            }
            HandleOp::ResumeReading => {
                if !self.closing {
                    self.read_paused = false;
                }
                Ok(())
            }
            HandleOp::Limits(h, l) => {
                let (high, low) = asyncio_limits(*h, *l);
                if high < low {
                    Err(Misuse::InvalidLimits { high, low })
                } else {
                    (self.high, self.low) = (high, low);
                    Ok(())
                }
            }
        };
        self.entries.push(Entry::Op {
            op: op.clone(),
            bytes,
            closing_before,
            result,
        });
    }

    /// `write` (one item) and `writelines` (3.11: the items in order).
    fn write(&mut self, items: Vec<Bytes>) -> Result<(), Misuse> {
        if self.eof_requested {
            return Err(Misuse::WriteAfterEof);
        }
        for data in items.into_iter().filter(|d| !d.is_empty()) {
            if self.dropping {
                return Ok(());
            }
            self.chunks.push_back(data);
        }
        Ok(())
    }

    fn close(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        if self.chunks.is_empty() {
            self.dropping = true;
        }
    }
}

// The property.

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let trace = Arc::new(Mutex::new(Trace {
        reactions: case.reactions.clone(),
        ..Trace::default()
    }));
    let hook_trace = Arc::clone(&trace);
    let recorder = Recorder::default()
        .eof_returns(case.keep_open)
        .on_event(move |event, t| lock(&hook_trace).callback(event, t));
    let info = TransportInfo::new("memory").with_can_write_eof(case.can_write_eof);
    let mut t = MemoryTransport::with_info(recorder, info);
    let mut model = Model::new(case);
    let mut peer = Peer::default();
    let mut side = Side::Accept;

    model.start(&t.protocol().events());
    check_step(&t, &trace, &model, &peer, case, side, true)
        .map_err(|e| context(e, "after connection_made"))?;

    for (i, op) in case.ops.iter().enumerate() {
        let settled = match op {
            Op::Feed(n) => {
                let data = peer.chunk(*n);
                t.feed(data.clone());
                model.feed(data, &t.protocol().events());
                true
            }
            Op::FeedBytes(n) => {
                let chunks: Vec<Bytes> = (0..*n).map(|_| peer.chunk(1)).collect();
                for c in &chunks {
                    t.feed(c.clone());
                }
                let actual = t.protocol().events();
                for c in chunks {
                    model.feed(c, &actual);
                }
                true
            }
            Op::FeedEof | Op::FeedReset => {
                let end = if matches!(op, Op::FeedEof) {
                    t.feed_eof();
                    End::Eof
                } else {
                    t.feed_error(ErrorKind::ConnectionReset.into());
                    End::Reset
                };
                peer.end(end);
                model.feed_end(end, &t.protocol().events());
                true
            }
            Op::Handle(h, run) => {
                lock(&trace).apply(t.transport(), h);
                model.handle(h);
                if *run {
                    t.run();
                    model.run(&t.protocol().events());
                }
                *run
            }
            Op::Run => {
                t.run();
                model.run(&t.protocol().events());
                true
            }
            Op::Drain(_) | Op::Block | Op::Accept | Op::WriteFails | Op::WriteZero => {
                let (mode, s) = match *op {
                    Op::Drain(n) => (WriteMode::Limit(n), Side::Limit(n)),
                    Op::Block => (WriteMode::Block, Side::Block),
                    Op::Accept => (WriteMode::Accept, Side::Accept),
                    Op::WriteFails => (WriteMode::Fail(ErrorKind::BrokenPipe), Side::Fail),
                    _ => (WriteMode::Zero, Side::Zero),
                };
                t.set_write_mode(mode);
                side = s;
                model.set_side(s, &t.protocol().events());
                true
            }
        };
        check_step(&t, &trace, &model, &peer, case, side, settled)
            .map_err(|e| context(e, &format!("after step {i}: {op:?}")))?;
    }

    // The end: an open connection is cancelled; either way exactly one
    // connection_lost, last.
    let written = t.written().to_vec();
    let recorder = t.into_protocol();
    prop_assert!(recorder.is_some(), "the protocol was dropped");
    let events = recorder.map(|r| r.events()).unwrap_or_default();
    model.finish(&events);
    same("events at the end", &events, &model.events)?;
    same("trace at the end", &lock(&trace).entries, &model.entries)?;
    prop_assert_eq!(written, model.written);
    let lost = events
        .iter()
        .filter(|e| matches!(e, Event::Lost(_)))
        .count();
    prop_assert_eq!(lost, 1, "connection_lost exactly once");
    prop_assert!(matches!(events.last(), Some(Event::Lost(_))), "lost last");
    Ok(())
}

fn context(e: TestCaseError, at: &str) -> TestCaseError {
    match e {
        TestCaseError::Fail(m) => TestCaseError::fail(format!("{at}: {m}")),
        other => other,
    }
}

/// Compares the connection with the model, then checks the contract.
fn check_step(
    t: &MemoryTransport<Recorder>,
    trace: &Mutex<Trace>,
    model: &Model,
    peer: &Peer,
    case: &Case,
    side: Side,
    settled: bool,
) -> Result<(), TestCaseError> {
    let events = t.protocol().events();
    let trace = lock(trace);
    let now = Snapshot::of(t.transport());

    same("events", &events, &model.events)?;
    same("trace", &trace.entries, &model.entries)?;
    prop_assert!(
        t.written() == &model.written[..],
        "bytes at the peer differ from the model's"
    );
    prop_assert_eq!(now, model.snapshot(), "transport state");
    prop_assert_eq!(t.is_write_shut(), model.shut, "FIN sent");
    prop_assert_eq!(t.is_closed(), model.done, "closed");
    prop_assert_eq!(paused_by_log(&events), model.write_paused, "writing paused");

    check_contract(&Observed {
        events: &events,
        entries: &trace.entries,
        written: t.written(),
        peer,
        can_write_eof: case.can_write_eof,
        shut: t.is_write_shut(),
        closed: t.is_closed(),
        settled,
        accept_all: side == Side::Accept,
        now,
    })
}

/// Whether the last flow-control callback was `pause_writing`.
fn paused_by_log(events: &[Event]) -> bool {
    events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::PauseWriting | Event::ResumeWriting))
        == Some(&Event::PauseWriting)
}

/// Equal sequences, or a failure showing where they part.
fn same<T: PartialEq + fmt::Debug>(
    what: &str,
    actual: &[T],
    model: &[T],
) -> Result<(), TestCaseError> {
    let Some(i) = (0..actual.len().max(model.len())).find(|&i| actual.get(i) != model.get(i))
    else {
        return Ok(());
    };
    let from = i.saturating_sub(3);
    let show = |s: &[T]| -> Vec<String> {
        s.iter()
            .enumerate()
            .skip(from)
            .take(i + 3 - from)
            .map(|(k, x)| format!("{k}: {}", short(x)))
            .collect()
    };
    Err(TestCaseError::fail(format!(
        "{what} differ at {i}\n  real:  {:#?}\n  model: {:#?}",
        show(actual),
        show(model)
    )))
}

/// `Debug`, with event payloads elided.
fn short<T: fmt::Debug>(x: &T) -> String {
    let s = format!("{x:?}");
    match s.find("Data(b\"") {
        Some(at) => format!("{}Data(..)", &s[..at]),
        None => s,
    }
}

/// What one step left, as seen from outside.
struct Observed<'a> {
    events: &'a [Event],
    entries: &'a [Entry],
    written: &'a [u8],
    peer: &'a Peer,
    can_write_eof: bool,
    shut: bool,
    closed: bool,
    /// The step ended by running the connection until it would block.
    settled: bool,
    accept_all: bool,
    now: Snapshot,
}

/// The contract (`asyncio-semantics.md` §1-6, lifecycle docs), checked on
/// observations alone.
fn check_contract(o: &Observed<'_>) -> Result<(), TestCaseError> {
    let events = o.events;

    // Callback order: Made first and once; no empty Data, none after Eof;
    // Eof at most once; Lost at most once and last, and only when closed.
    prop_assert_eq!(events.first(), Some(&Event::Made));
    prop_assert_eq!(events.iter().filter(|e| **e == Event::Made).count(), 1);
    prop_assert!(
        events.iter().filter(|e| **e == Event::Eof).count() <= 1,
        "eof twice"
    );
    let eof_at = events.iter().position(|e| *e == Event::Eof);
    for (i, e) in events.iter().enumerate() {
        if let Event::Data(d) = e {
            prop_assert!(!d.is_empty(), "empty data_received at {}", i);
            prop_assert!(
                eof_at.is_none_or(|k| i < k),
                "data_received after eof at {}",
                i
            );
        }
    }
    let lost: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(events[i], Event::Lost(_)))
        .collect();
    prop_assert!(lost.len() <= 1, "connection_lost twice");
    if let Some(&k) = lost.first() {
        prop_assert_eq!(k, events.len() - 1, "a callback after connection_lost");
    }
    prop_assert_eq!(o.closed, !lost.is_empty(), "closed iff connection_lost");
    let lost_with = match events.last() {
        Some(Event::Lost(kind)) => Some(*kind),
        _ => None,
    };
    if let Some(Some(kind)) = lost_with {
        prop_assert!(
            matches!(
                kind,
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::WriteZero
            ),
            "connection_lost({:?}): a panic or an error nobody caused",
            kind
        );
    }
    if o.closed {
        prop_assert!(o.now.closing && !o.now.reading && o.now.size == 0);
    }

    // Flow-control edges: alternate, starting with a pause.
    let mut paused = false;
    for e in events {
        match e {
            Event::PauseWriting => {
                prop_assert!(!paused, "two pause_writing in a row");
                paused = true;
            }
            Event::ResumeWriting => {
                prop_assert!(paused, "resume_writing without a pause");
                paused = false;
            }
            _ => {}
        }
    }

    // The trace: reading on for data and eof; each edge at its mark; each
    // handle call gives exactly the typed error the spec says.
    let mut eof_requested = false;
    let mut accepted = Vec::new(); // every write that returned Ok, in order
    let mut before_close = Vec::new(); // the ones made before the transport was closing
    let mut aborted = false;
    for entry in o.entries {
        match entry {
            Entry::Callback { event, at } => match event {
                Event::Data(_) | Event::Eof => {
                    prop_assert!(at.reading, "{} while paused or closing", summary(event));
                }
                Event::PauseWriting => {
                    prop_assert!(at.size > at.limits.1, "pause_writing at {:?}", at);
                }
                Event::ResumeWriting => {
                    prop_assert!(at.size <= at.limits.0, "resume_writing at {:?}", at);
                }
                Event::Made | Event::Lost(_) => {}
            },
            Entry::Op {
                op,
                bytes,
                closing_before,
                result,
            } => {
                let expected = match op {
                    HandleOp::Write(_) | HandleOp::Writelines(_) if eof_requested => {
                        Err(Misuse::WriteAfterEof)
                    }
                    HandleOp::Write(_) | HandleOp::Writelines(_) => {
                        accepted.extend_from_slice(bytes);
                        if !closing_before {
                            before_close.extend_from_slice(bytes);
                        }
                        Ok(())
                    }
                    HandleOp::WriteEof if !o.can_write_eof => Err(Misuse::Unsupported("write_eof")),
                    HandleOp::WriteEof => {
                        eof_requested |= !closing_before;
                        Ok(())
                    }
                    HandleOp::Limits(h, l) => match asyncio_limits(*h, *l) {
                        (high, low) if high < low => Err(Misuse::InvalidLimits { high, low }),
                        _ => Ok(()),
                    },
                    HandleOp::Abort => {
                        aborted = true;
                        Ok(())
                    }
                    HandleOp::Close | HandleOp::PauseReading | HandleOp::ResumeReading => Ok(()),
                };
                prop_assert_eq!(result, &expected, "{:?}", op);
            }
        }
    }

    // Protocol to peer: in order, never invented; all of it by the FIN
    // (write_eof) and by a clean close; a prefix after abort or failure.
    prop_assert!(
        accepted.starts_with(o.written),
        "the peer got bytes out of order or never written"
    );
    if o.shut {
        prop_assert_eq!(
            o.written.len(),
            accepted.len(),
            "FIN before everything written was sent"
        );
    }
    if lost_with == Some(None) && !aborted {
        prop_assert!(
            o.written.len() >= before_close.len(),
            "close() lost data written before it: sent {} of {}",
            o.written.len(),
            before_close.len()
        );
    }

    // Peer to protocol: a prefix of what was sent before EOF, in order,
    // exactly once; all of it by eof_received, by a reset, and whenever the
    // connection settled while reading.
    let delivered: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::Data(d) => Some(&d[..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect();
    prop_assert!(
        o.peer.sent.starts_with(&delivered),
        "delivered bytes out of order or never sent"
    );
    if eof_at.is_some() {
        prop_assert_eq!(o.peer.end, Some(End::Eof));
        prop_assert_eq!(
            delivered.len(),
            o.peer.sent.len(),
            "eof_received before all data"
        );
    }
    if lost_with == Some(Some(ErrorKind::ConnectionReset)) {
        prop_assert_eq!(o.peer.end, Some(End::Reset));
        prop_assert!(eof_at.is_none(), "eof_received and a reset");
        prop_assert_eq!(
            delivered.len(),
            o.peer.sent.len(),
            "data before the reset lost"
        );
    }
    if o.settled && !o.closed {
        if o.now.reading {
            prop_assert_eq!(
                delivered.len(),
                o.peer.sent.len(),
                "reading, yet data held back"
            );
            if o.peer.end == Some(End::Eof) {
                prop_assert!(eof_at.is_some(), "reading, yet eof held back");
            }
        }
        // A settled connection is never over high without a pause, nor
        // drained while paused; a write side that takes everything leaves
        // nothing buffered.
        if paused {
            prop_assert!(o.now.size > 0, "drained without resume_writing");
        } else {
            prop_assert!(
                o.now.size <= o.now.limits.1,
                "over high without pause_writing"
            );
        }
        if o.accept_all {
            prop_assert_eq!(o.now.size, 0, "the write side takes everything");
        }
    }
    Ok(())
}

// WriteBuffer alone.

#[derive(Debug, Clone)]
enum BufOp {
    Push(usize),
    Consume(usize),
    Limits(Option<usize>, Option<usize>),
    CheckPause,
    Clear,
}

fn buf_op() -> impl Strategy<Value = BufOp> {
    let mark = || option::weighted(0.8, 0..=300usize);
    prop_oneof![
        8 => prop_oneof![4 => 0..=50usize, 1 => 51..=400usize].prop_map(BufOp::Push),
        6 => (0..=400usize).prop_map(BufOp::Consume),
        3 => (mark(), mark()).prop_map(|(h, l)| BufOp::Limits(h, l)),
        6 => Just(BufOp::CheckPause),
        1 => Just(BufOp::Clear),
    ]
}

fn run_write_buffer(ops: &[BufOp]) -> Result<(), TestCaseError> {
    let mut b = WriteBuffer::new();
    let mut bytes: VecDeque<u8> = VecDeque::new();
    let mut chunks = 0usize; // non-empty chunks, an upper bound after consumes
    let (mut high, mut low, mut paused) = (DEFAULT_HIGH_WATER, DEFAULT_HIGH_WATER / 4, false);
    let mut serial = 0;
    let mut edges = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            BufOp::Push(n) => {
                let data = next_payload(&mut serial, n);
                bytes.extend(&data[..]);
                chunks += usize::from(n > 0);
                b.push(data);
            }
            BufOp::Consume(n) => {
                let got = b.consume(n);
                bytes.drain(..n.min(bytes.len()));
                let expected = (paused && bytes.len() <= low).then(|| {
                    paused = false;
                    FlowEvent::Resume
                });
                prop_assert_eq!(got, expected, "step {}: {:?}", i, op);
                edges.extend(got);
            }
            BufOp::Limits(h, l) => {
                let got = b.set_limits(h, l).map_err(Misuse::from);
                let expected = match asyncio_limits(h, l) {
                    (h, l) if h < l => Err(Misuse::InvalidLimits { high: h, low: l }),
                    (h, l) => {
                        (high, low) = (h, l);
                        Ok(())
                    }
                };
                prop_assert_eq!(got, expected, "step {}: {:?}", i, op);
            }
            BufOp::CheckPause => {
                let got = b.check_pause();
                let expected = (!paused && bytes.len() > high).then(|| {
                    paused = true;
                    FlowEvent::Pause
                });
                prop_assert_eq!(got, expected, "step {}: {:?}", i, op);
                edges.extend(got);
            }
            BufOp::Clear => {
                b.clear();
                bytes.clear();
                chunks = 0;
            }
        }
        prop_assert_eq!(b.len(), bytes.len(), "size after step {}: {:?}", i, op);
        prop_assert_eq!(b.is_empty(), bytes.is_empty());
        prop_assert_eq!(b.is_paused(), paused);
        prop_assert_eq!(b.limits(), (low, high));
        // The vectored view is the front of the buffer, without empty
        // slices; all of it when it fits in MAX_IOVECS slices.
        let mut slots = [IoSlice::new(&[]); MAX_IOVECS];
        let n = b.chunks_vectored(&mut slots);
        prop_assert!(slots[..n].iter().all(|s| !s.is_empty()), "an empty slice");
        let view: Vec<u8> = slots[..n].iter().flat_map(|s| s.iter().copied()).collect();
        prop_assert!(
            bytes
                .iter()
                .copied()
                .take(view.len())
                .eq(view.iter().copied())
        );
        if chunks <= MAX_IOVECS || n < MAX_IOVECS {
            prop_assert_eq!(view.len(), bytes.len(), "the view misses bytes");
        }
    }
    // Edges alternate, starting with a pause.
    for (i, e) in edges.iter().enumerate() {
        let want = if i % 2 == 0 {
            FlowEvent::Pause
        } else {
            FlowEvent::Resume
        };
        prop_assert_eq!(*e, want);
    }
    Ok(())
}

// Regressions the model found, pinned by behaviour.

#[test]
fn failed_shutdown_delivers_connection_lost_at_once() {
    // Before the fix the failed shutdown aborted the state but the drive
    // returned Pending: no connection_lost until something woke the task
    // again (the Tokio backend would wait forever).
    let mut t = MemoryTransport::new(Recorder::default());
    t.transport().write_eof().unwrap();
    t.set_write_mode(WriteMode::Fail(ErrorKind::BrokenPipe));
    assert!(t.is_closed());
    assert_eq!(
        t.protocol().events(),
        [Event::Made, Event::Lost(Some(ErrorKind::BrokenPipe))]
    );
}

#[test]
fn no_data_received_after_a_failed_shutdown() {
    // The same drive went on to read with the state it saw before the
    // failure, delivering data to a failed connection.
    let mut t = MemoryTransport::new(Recorder::default().on_event(|event, t| {
        if *event == Event::Made {
            t.pause_reading();
        }
    }));
    t.feed("late");
    t.set_write_mode(WriteMode::Fail(ErrorKind::BrokenPipe));
    t.transport().write_eof().unwrap();
    t.transport().resume_reading();
    t.run();
    assert_eq!(
        t.protocol().events(),
        [Event::Made, Event::Lost(Some(ErrorKind::BrokenPipe))]
    );
}
