//! Ports of CPython 3.11.7 `test_selector_events.py`:
//! `SelectorSocketTransportBufferedProtocolTests`, on the memory transport
//! (module `cpython::test_selector_events::selector_socket_transport_buffered_protocol_tests`).
//!
//! As for the `Protocol` ports, the peer is played with `feed*`. Upstream
//! calls `_read_ready()` once with `recv_into` mocked; here a read happens
//! whenever the connection runs with reading on, so every run with nothing
//! queued is also a `get_buffer(None)` that goes unanswered (asyncio-semantics
//! §7: "a `get_buffer` may go unanswered"). To make one read see exactly what
//! upstream's mocked `recv_into` returns, most ports pause reading in
//! `connection_made`, queue the peer's bytes, then resume.

use std::io::{self, ErrorKind};

use asyncproto_core::{
    Buffered, Callback, Error,
    testing::{Event, MemoryTransport, Recorder},
};
use tracing::Level;

use crate::{
    buffered::{BufRec, Ev::*, assert_quiet, buffered, resume},
    support::{LogCapture, assert_panicked},
};

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_ctor`.
///
/// - "The reader is added" is `is_reading()` and a read that reaches the
///   protocol's buffer.
#[test]
fn test_ctor() {
    let mut t = buffered(BufRec::new(16));
    let events = t.protocol_mut().0.take();
    assert_eq!(events.first(), Some(&Made), "connection_made comes first");
    assert!(t.transport().is_reading());

    t.protocol()
        .0
        .transport()
        .expect("kept by the recorder")
        .pause_reading();
    assert!(
        !t.transport().is_reading(),
        "connection_made got this transport"
    );
    t.transport().resume_reading();

    t.feed("data");
    assert_eq!(
        t.protocol_mut().0.take(),
        [GetBuffer(None), Updated(4), GetBuffer(None)]
    );
    assert_eq!(t.protocol().0.data(), b"data");
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_get_buffer_error`.
///
/// - The raising `get_buffer` is a panicking one: one ERROR event, then
///   `connection_lost(Some(Error::ProtocolPanicked))` naming `get_buffer`;
///   `buffer_updated` is never called.
#[test]
fn test_get_buffer_error() {
    let logs = LogCapture::start();
    let mut t = buffered(BufRec::new(16).paused_on_made());
    t.protocol_mut().0.set_hook(|ev, _| {
        if *ev == GetBuffer(None) {
            panic!("RuntimeError");
        }
    });
    t.feed("data");
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Lost(Some(ErrorKind::Other))]
    );
    assert_panicked(t.protocol().0.errors(), Callback::GetBuffer, "RuntimeError");
    assert_eq!(t.protocol().0.data(), b"", "no buffer_updated");
    assert!(t.is_closed());
    assert_eq!(logs.at(Level::ERROR).len(), 1);
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_get_buffer_zerosized`.
///
/// - asyncio's `RuntimeError('get_buffer() returned an empty buffer')` is
///   the typed `Error::EmptyBuffer` in `connection_lost`.
#[test]
fn test_get_buffer_zerosized() {
    let logs = LogCapture::start();
    let mut t = buffered(BufRec::new(0).paused_on_made());
    t.feed("data");
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Lost(Some(ErrorKind::InvalidInput))]
    );
    assert!(
        matches!(t.protocol().0.errors(), [Error::EmptyBuffer]),
        "{:?}",
        t.protocol().0.errors()
    );
    assert_eq!(
        t.protocol().0.errors()[0].to_string(),
        "get_buffer() returned an empty buffer"
    );
    assert!(t.is_closed());
    assert_eq!(logs.at(Level::ERROR).len(), 1, "a fatal error is logged");
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_proto_type_switch`.
///
/// - The mocked `BufferedProtocol` is `Buffered(BufRec)`, given to
///   `set_protocol` from outside a callback; it gets no `connection_made`.
/// - `get_buffer(-1)` is `get_buffer(None)`. Upstream's mocked `recv_into`
///   returns 10 for a 4-byte buffer; here the peer sends 10 bytes, so the
///   buffer takes them as 4, 4, 2.
/// - The mid-stream switches both ways are in `switch.rs`.
#[test]
fn test_proto_type_switch() {
    let mut t = MemoryTransport::new(Recorder::default());
    t.feed("data");
    assert_eq!(
        t.protocol().events(),
        [Event::Made, Event::Data("data".into())]
    );

    // switch protocol to a BufferedProtocol
    let buf_proto = BufRec::new(4);
    let log = buf_proto.log();
    t.transport().set_protocol(Buffered(buf_proto));
    t.feed("0123456789");
    assert_eq!(
        log.events(),
        [
            GetBuffer(None),
            Updated(4),
            GetBuffer(None),
            Updated(4),
            GetBuffer(None),
            Updated(2),
            GetBuffer(None)
        ]
    );
    assert_eq!(log.data(), b"0123456789");
    assert_eq!(
        t.protocol().events(),
        [Event::Made, Event::Data("data".into())],
        "the first protocol gets nothing after the switch"
    );
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_buffer_updated_error`.
///
/// - The raising `buffer_updated` is a panicking one, after `get_buffer`
///   was called and the bytes read into the buffer.
#[test]
fn test_buffer_updated_error() {
    let logs = LogCapture::start();
    let mut t = buffered(BufRec::new(16).paused_on_made());
    t.protocol_mut().0.set_hook(|ev, _| {
        if matches!(ev, Updated(_)) {
            panic!("RuntimeError");
        }
    });
    t.feed("data");
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [
            Made,
            GetBuffer(None),
            Updated(4),
            Lost(Some(ErrorKind::Other))
        ]
    );
    assert_panicked(
        t.protocol().0.errors(),
        Callback::BufferUpdated,
        "RuntimeError",
    );
    assert!(t.is_closed());
    assert_eq!(logs.at(Level::ERROR).len(), 1);
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_eof_received_error`.
///
/// - The raising `eof_received` is a panicking one: the connection is
///   aborted (what it wrote is discarded, not flushed as by `close()`).
#[test]
fn test_read_eof_received_error() {
    let logs = LogCapture::start();
    let mut t = buffered(BufRec::new(16).paused_on_made().on_event(|ev, t| {
        if *ev == Eof {
            t.write("unsent").unwrap();
            panic!("LookupError");
        }
    }));
    t.feed_eof();
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Eof, Lost(Some(ErrorKind::Other))]
    );
    assert_panicked(
        t.protocol().0.errors(),
        Callback::EofReceived,
        "LookupError",
    );
    assert_eq!(t.written(), b"", "a fatal error does not flush");
    assert!(!t.is_write_shut());
    assert!(t.is_closed());
    assert_eq!(logs.at(Level::ERROR).len(), 1);
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready`.
///
/// - `get_buffer(-1)` is `get_buffer(None)`; upstream's 100-byte buffer
///   and `recv_into` returning 10 are a 100-byte buffer and 10 bytes sent.
#[test]
fn test_read_ready() {
    let mut t = buffered(BufRec::new(100).paused_on_made());
    t.feed("0123456789");
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Updated(10), GetBuffer(None)],
        "the last get_buffer finds nothing to read"
    );
    assert_eq!(t.protocol().0.data(), b"0123456789");
    assert!(!t.transport().is_closing());
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready_eof`.
///
/// - Instead of a mocked `close()`, its effect: what the protocol wrote in
///   `eof_received` is flushed, then FIN and `connection_lost(None)`; never
///   `buffer_updated(0)`.
#[test]
fn test_read_ready_eof() {
    let mut t = buffered(BufRec::new(16).paused_on_made().on_event(|ev, t| {
        if *ev == Eof {
            t.write("bye").unwrap();
        }
    }));
    t.feed_eof();
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Eof, Lost(None)]
    );
    assert_eq!(t.take_written(), "bye");
    assert!(t.is_closed());
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready_eof_keep_open`.
///
/// - Beyond "not closed": writes still reach the peer (half-close), no
///   buffer is asked for after EOF, and only `close()` ends it.
#[test]
fn test_read_ready_eof_keep_open() {
    let mut t = buffered(BufRec::new(16).eof_returns(true).paused_on_made());
    t.feed_eof();
    resume(&mut t);
    assert_eq!(t.protocol_mut().0.take(), [Made, GetBuffer(None), Eof]);
    assert!(!t.transport().is_closing());
    assert!(!t.is_closed());

    t.transport().write("still open").unwrap();
    t.run();
    assert_eq!(t.take_written(), "still open");
    assert_eq!(t.protocol_mut().0.take(), [], "no get_buffer after EOF");

    t.transport().close();
    t.run();
    assert_eq!(t.protocol_mut().0.take(), [Lost(None)]);
    assert!(t.is_closed());
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready_tryagain`.
///
/// - `BlockingIOError` from `recv_into` is the memory reader's `WouldBlock`
///   when nothing is queued: the `get_buffer` goes unanswered, nothing else
///   is delivered, and it is not fatal.
#[test]
fn test_read_ready_tryagain() {
    let mut t = buffered(BufRec::new(16));
    t.run();
    t.run();
    let events = t.protocol_mut().0.take();
    assert_eq!(events.first(), Some(&Made));
    assert!(
        events[1..].iter().all(|e| *e == GetBuffer(None)),
        "{events:?}"
    );
    assert!(t.transport().is_reading());
    assert!(!t.transport().is_closing());

    t.feed("data");
    assert_eq!(
        t.protocol_mut().0.take(),
        [GetBuffer(None), Updated(4), GetBuffer(None)]
    );
    assert_eq!(t.protocol().0.data(), b"data");
    assert!(t.protocol().0.errors().is_empty());
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready_tryagain_interrupted`.
///
/// - `InterruptedError` is a read failing once with `Interrupted`: retried
///   into the same buffer, without a second `get_buffer`, not fatal.
#[test]
fn test_read_ready_tryagain_interrupted() {
    let mut t = buffered(BufRec::new(16).paused_on_made());
    t.feed_error(ErrorKind::Interrupted.into());
    t.feed("data");
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Updated(4), GetBuffer(None)]
    );
    assert_eq!(t.protocol().0.data(), b"data");
    assert!(!t.transport().is_closing());
    assert!(t.protocol().0.errors().is_empty());
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready_conn_reset`.
///
/// - "Without the fatal-error log" is a tracing capture with no WARN or
///   ERROR event.
#[test]
fn test_read_ready_conn_reset() {
    let logs = LogCapture::start();
    let mut t = buffered(BufRec::new(16).paused_on_made());
    t.feed_error(ErrorKind::ConnectionReset.into());
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [
            Made,
            GetBuffer(None),
            Lost(Some(ErrorKind::ConnectionReset))
        ]
    );
    assert!(
        matches!(t.protocol().0.errors(), [Error::Io(e)] if e.kind() == ErrorKind::ConnectionReset)
    );
    assert!(t.is_closed());
    assert_eq!(logs.warnings_and_errors(), []);
    assert_quiet(&mut t);
}

/// Port of CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_read_ready_err`.
///
/// - The generic `OSError` is `EIO` (errno 5); `connection_lost` gets it
///   unchanged.
#[test]
fn test_read_ready_err() {
    let err = io::Error::from_raw_os_error(5);
    let kind = err.kind();
    let mut t = buffered(BufRec::new(16).paused_on_made());
    t.feed_error(err);
    resume(&mut t);
    assert_eq!(
        t.protocol_mut().0.take(),
        [Made, GetBuffer(None), Lost(Some(kind))]
    );
    assert!(matches!(t.protocol().0.errors(), [Error::Io(e)] if e.raw_os_error() == Some(5)));
    assert!(t.is_closed());
    assert_quiet(&mut t);
}
