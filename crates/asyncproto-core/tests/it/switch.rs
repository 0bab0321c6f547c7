//! `set_protocol`: switching a connection to another protocol mid-stream, of
//! either kind. asyncio's rule (semantics §8): the swap is immediate, the new
//! protocol gets no `connection_made`, then everything else; a switch made
//! inside a callback applies when that callback returns.

use std::sync::{Arc, Mutex};

use asyncproto_core::testing::{Event, MemoryTransport, Recorder};
use asyncproto_core::{
    BaseProtocol, Buffered, BufferedProtocol, Bytes, Error, Protocol, Transport,
};

use Event::{Data, Eof, Lost, Made};

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// A line protocol that hands the connection to `next` after an `UPGRADE\n`
/// line, passing it whatever followed the line in the same chunk.
struct LineThenUpgrade {
    transport: Option<Transport>,
    lines: Arc<Mutex<Vec<String>>>,
    pending: Vec<u8>,
    next: Option<Recorder>,
}

impl BaseProtocol for LineThenUpgrade {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
}

impl Protocol for LineThenUpgrade {
    fn data_received(&mut self, data: Bytes) {
        self.pending.extend_from_slice(&data);
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..i]).into_owned();
            self.lines.lock().unwrap().push(line.clone());
            if line == "UPGRADE" {
                let mut next = self.next.take().expect("upgraded once");
                let rest = std::mem::take(&mut self.pending);
                if !rest.is_empty() {
                    // The rest of this chunk belongs to the new protocol.
                    next.data_received(Bytes::from(rest));
                }
                self.transport.as_ref().unwrap().set_protocol(next);
                return;
            }
        }
    }
}

fn upgrade_fixture() -> (
    MemoryTransport<LineThenUpgrade>,
    Shared<String>,
    Shared<Event>,
) {
    let next = Recorder::default();
    let raw_log = next.log();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let t = MemoryTransport::new(LineThenUpgrade {
        transport: None,
        lines: Arc::clone(&lines),
        pending: Vec::new(),
        next: Some(next),
    });
    (t, lines, raw_log)
}

#[test]
fn upgrade_line_hands_the_rest_of_the_stream_to_the_new_protocol() {
    let (mut t, lines, raw) = upgrade_fixture();
    t.feed("HELLO\nUPGRADE\nraw-1");
    t.feed("raw-2");
    t.feed_eof();
    assert_eq!(*lines.lock().unwrap(), ["HELLO", "UPGRADE"]);
    assert_eq!(
        *raw.lock().unwrap(),
        [Data("raw-1".into()), Data("raw-2".into()), Eof, Lost(None)],
        "no connection_made for the new protocol, then everything else"
    );
    assert!(t.is_closed());
}

#[test]
fn upgrade_delivers_every_byte_once_whatever_the_chunking() {
    let stream = b"a\nb\nUPGRADE\n0123456789abcdef".to_vec();
    for split in 1..stream.len() {
        let (mut t, lines, raw) = upgrade_fixture();
        for chunk in stream.chunks(split) {
            t.feed(chunk.to_vec());
        }
        t.feed_eof();
        assert_eq!(
            *lines.lock().unwrap(),
            ["a", "b", "UPGRADE"],
            "split {split}"
        );
        let got: Vec<u8> = raw
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| {
                if let Data(d) = e {
                    Some(d.to_vec())
                } else {
                    None
                }
            })
            .flatten()
            .collect();
        assert_eq!(
            got, b"0123456789abcdef",
            "split {split}: none lost, none twice"
        );
    }
}

#[test]
fn switch_from_outside_a_callback_applies_before_the_next_callback() {
    let mut t = MemoryTransport::new(Recorder::default());
    let next = Recorder::default();
    let log = next.log();
    t.transport().set_protocol(next);
    t.feed("x");
    t.transport().close();
    t.run();
    assert_eq!(
        t.protocol().events(),
        [Made],
        "the original gets nothing after the switch"
    );
    assert_eq!(*log.lock().unwrap(), [Data("x".into()), Lost(None)]);
}

#[test]
fn connection_lost_goes_to_the_new_protocol_and_the_original_is_handed_back() {
    let mut t = MemoryTransport::new(Recorder::default());
    let next = Recorder::default();
    let log = next.log();
    t.transport().set_protocol(next);
    t.feed_error(std::io::ErrorKind::ConnectionReset.into());
    assert_eq!(
        *log.lock().unwrap(),
        [Lost(Some(std::io::ErrorKind::ConnectionReset))]
    );
    let original = t.into_protocol().expect("the original protocol comes back");
    assert_eq!(original.events(), [Made]);
}

/// A buffered protocol recording its calls, with buffers of `size` bytes.
struct BufRecorder {
    size: usize,
    buf: Vec<u8>,
    calls: Arc<Mutex<Vec<String>>>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl BufRecorder {
    fn new(size: usize) -> (Self, Shared<String>, Shared<u8>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let p = Self {
            size,
            buf: Vec::new(),
            calls: Arc::clone(&calls),
            received: Arc::clone(&received),
        };
        (p, calls, received)
    }
}

impl BaseProtocol for BufRecorder {
    fn connection_lost(&mut self, exc: Option<Error>) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("lost({:?})", exc.map(|e| e.kind())));
    }
}

impl BufferedProtocol for BufRecorder {
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8] {
        self.calls
            .lock()
            .unwrap()
            .push(format!("get_buffer({sizehint:?})"));
        self.buf = vec![0; self.size];
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("buffer_updated({nbytes})"));
        self.received
            .lock()
            .unwrap()
            .extend_from_slice(&self.buf[..nbytes]);
    }

    fn eof_received(&mut self) -> bool {
        self.calls.lock().unwrap().push("eof_received".into());
        false
    }
}

/// Adapted from CPython 3.11.7
/// `test_selector_events.py::SelectorSocketTransportBufferedProtocolTests::test_proto_type_switch`:
/// switching from a data `Protocol` to a `BufferedProtocol` switches the read
/// path to `get_buffer(None)` (asyncio's `-1`) then `buffer_updated(n)`.
#[test]
fn switch_to_a_buffered_protocol_reads_into_its_buffer() {
    let mut t = MemoryTransport::new(Recorder::default());
    t.feed("before");
    let (next, calls, received) = BufRecorder::new(4);
    t.transport().set_protocol(Buffered(next));
    t.feed("0123456789");
    t.feed_eof();
    assert_eq!(t.protocol().events(), [Made, Data("before".into())]);
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "get_buffer(None)",
            "buffer_updated(4)",
            "get_buffer(None)",
            "buffer_updated(4)",
            "get_buffer(None)",
            "buffer_updated(2)",
            // Nothing more was ready: this get_buffer goes unanswered (as
            // asyncio's on EAGAIN); the EOF read asks again.
            "get_buffer(None)",
            "get_buffer(None)",
            "eof_received",
            "lost(None)"
        ]
    );
    assert_eq!(*received.lock().unwrap(), b"0123456789");
}

/// A buffered protocol with 1-byte buffers that switches to a data protocol
/// after 3 bytes, as `test_start_tls_client_buf_proto_1` does mid-stream.
struct BufThenData {
    buf: [u8; 1],
    got: Arc<Mutex<Vec<u8>>>,
    transport: Option<Transport>,
    next: Option<Recorder>,
}

impl BaseProtocol for BufThenData {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
}

impl BufferedProtocol for BufThenData {
    fn get_buffer(&mut self, _sizehint: Option<usize>) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        assert_eq!(nbytes, 1);
        let mut got = self.got.lock().unwrap();
        got.push(self.buf[0]);
        if got.len() == 3 {
            let next = self.next.take().expect("switch once");
            self.transport.as_ref().unwrap().set_protocol(next);
        }
    }
}

#[test]
fn switch_from_buffered_to_data_protocol_mid_stream() {
    let next = Recorder::default();
    let log = next.log();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut t = MemoryTransport::new(Buffered(BufThenData {
        buf: [0],
        got: Arc::clone(&got),
        transport: None,
        next: Some(next),
    }));
    t.feed("abcdefgh");
    t.feed_eof();
    assert_eq!(
        *got.lock().unwrap(),
        b"abc",
        "one byte per buffer until the switch"
    );
    let events = log.lock().unwrap().clone();
    let data: Vec<u8> = events
        .iter()
        .filter_map(|e| {
            if let Data(d) = e {
                Some(d.to_vec())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert_eq!(data, b"defgh", "the rest of the stream, in order, once");
    assert_eq!(events.last(), Some(&Lost(None)));
    assert_eq!(events.iter().filter(|e| **e == Eof).count(), 1);
}

#[test]
fn a_later_set_protocol_before_the_switch_replaces_the_earlier_one() {
    let mut t = MemoryTransport::new(Recorder::default());
    let first = Recorder::default();
    let first_log = first.log();
    let second = Recorder::default();
    let second_log = second.log();
    t.transport().set_protocol(first);
    t.transport().set_protocol(second);
    t.feed("z");
    assert!(first_log.lock().unwrap().is_empty());
    assert_eq!(*second_log.lock().unwrap(), [Data("z".into())]);
}
