//! Behaviour asyncproto promises that no upstream test pins
//! (`cpython-test-port.md`, "Gaps"), named by behaviour.

use std::io::ErrorKind;

use asyncproto_core::{
    Bytes, Callback, Error,
    flow::DEFAULT_HIGH_WATER,
    testing::{Event, Event::*, MemoryTransport, Recorder, WriteMode},
};
use proptest::prelude::*;

use crate::support::{assert_quiet, blocked, established};

/// A blocked connection with the given water marks.
fn blocked_with_limits(high: usize, low: usize) -> MemoryTransport<Recorder> {
    let mut t = blocked();
    t.transport()
        .set_write_buffer_limits(Some(high), Some(low))
        .unwrap();
    t.run();
    t
}

fn write(t: &mut MemoryTransport<Recorder>, n: usize) {
    t.transport().write(vec![b'x'; n]).unwrap();
    t.run();
}

// Water marks.

#[test]
fn size_equal_to_high_does_not_pause_and_one_byte_more_does() {
    let mut t = blocked_with_limits(10, 4);
    write(&mut t, 10);
    assert_eq!(t.transport().get_write_buffer_size(), 10);
    assert_eq!(t.protocol().events(), [Made], "size == high: no pause");

    write(&mut t, 1);
    assert_eq!(t.transport().get_write_buffer_size(), 11);
    assert_eq!(t.protocol().events(), [Made, PauseWriting]);

    write(&mut t, 5);
    assert_eq!(
        t.protocol_mut().take(),
        [Made, PauseWriting],
        "one pause per crossing"
    );
    assert_quiet(&mut t);
}

#[test]
fn resume_comes_when_the_size_falls_to_low_not_before() {
    let mut t = blocked_with_limits(10, 4);
    write(&mut t, 16);
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting]);

    t.drain(11);
    assert_eq!(t.transport().get_write_buffer_size(), 5);
    assert_eq!(t.protocol_mut().take(), [], "low + 1: still paused");

    t.drain(1);
    assert_eq!(t.transport().get_write_buffer_size(), 4);
    assert_eq!(
        t.protocol_mut().take(),
        [ResumeWriting],
        "size == low resumes"
    );

    t.set_write_mode(WriteMode::Accept);
    assert_eq!(t.take_written().len(), 16);
    assert_quiet(&mut t);
}

#[test]
fn drain_below_low_in_one_step_resumes_once() {
    let mut t = blocked_with_limits(10, 4);
    write(&mut t, 30);
    t.set_write_mode(WriteMode::Accept);
    assert_eq!(t.transport().get_write_buffer_size(), 0);
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting, ResumeWriting]);
    assert_quiet(&mut t);
}

#[test]
fn high_zero_pauses_on_any_buffered_byte_and_resumes_when_empty() {
    let mut t = blocked();
    t.transport()
        .set_write_buffer_limits(Some(0), None)
        .unwrap();
    assert_eq!(t.transport().get_write_buffer_limits(), (0, 0));

    t.transport().write("").unwrap();
    t.run();
    assert_eq!(
        t.protocol().events(),
        [Made],
        "an empty write buffers nothing"
    );

    write(&mut t, 1);
    assert_eq!(t.protocol().events(), [Made, PauseWriting]);

    t.drain(1);
    assert_eq!(t.transport().get_write_buffer_size(), 0);
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting, ResumeWriting]);
    assert_quiet(&mut t);
}

#[test]
fn high_zero_pauses_even_when_the_write_is_then_taken_whole() {
    // The pause check comes before the send attempt (so a producer that
    // stops at the high mark always hears of it): a write the peer then
    // takes whole gives pause_writing and, at once, resume_writing. asyncio's
    // eager send inside write() would give neither (documented difference).
    let mut t = established();
    t.transport()
        .set_write_buffer_limits(Some(0), None)
        .unwrap();
    t.transport().write("data").unwrap();
    t.run();
    assert_eq!(t.take_written(), "data");
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting, ResumeWriting]);
    assert_quiet(&mut t);
}

#[test]
fn producer_that_stops_over_high_gets_pause_then_resume() {
    // A protocol writes until the buffer is over high, then waits for
    // resume_writing. The send after the callback takes most of it, leaving
    // less than high: the pause must still come (before the send), and the
    // resume once the rest drains to low.
    let mut t = MemoryTransport::new(Recorder::default());
    t.transport()
        .set_write_buffer_limits(Some(4096), Some(1024))
        .unwrap();
    t.set_write_mode(WriteMode::Limit(3000));
    let transport = t.transport().clone();
    while transport.get_write_buffer_size() <= 4096 {
        transport.write(vec![1u8; 1000]).unwrap();
    }
    t.run();
    assert_eq!(t.transport().get_write_buffer_size(), 5000 - 3000);
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting]);
    t.drain(976);
    assert_eq!(t.transport().get_write_buffer_size(), 1024);
    assert_eq!(t.protocol_mut().take(), [ResumeWriting]);
    assert_quiet(&mut t);
}

#[test]
fn pause_writing_comes_right_after_the_writing_callback() {
    // Two chunks are read in one wake-up; the first data_received writes
    // over the high-water mark. pause_writing comes before the second.
    let mut written = false;
    let mut t = MemoryTransport::new(Recorder::default().on_event(move |event, transport| {
        if matches!(event, Data(_)) && !written {
            written = true;
            transport.set_write_buffer_limits(Some(4), None).unwrap();
            transport.write("hello").unwrap();
            assert_eq!(
                transport.get_write_buffer_size(),
                5,
                "not sent inside write()"
            );
        }
    }));
    t.set_write_mode(WriteMode::Block);
    let input: Bytes = vec![b'.'; 40_000].into();
    t.feed(input.clone());

    let events = t.protocol_mut().take();
    let [Made, Data(first), PauseWriting, rest @ ..] = events.as_slice() else {
        panic!("unexpected order: {events:?}");
    };
    assert!(
        !rest.is_empty() && rest.iter().all(|e| matches!(e, Data(_))),
        "{events:?}"
    );
    let mut received = first.to_vec();
    for event in rest {
        if let Data(d) = event {
            received.extend_from_slice(d);
        }
    }
    assert_eq!(received, input);
    assert_quiet(&mut t);
}

// Limits.

#[test]
fn write_buffer_limits_read_back_as_low_then_high() {
    let t = established();
    let tr = t.transport();
    assert_eq!(
        tr.get_write_buffer_limits(),
        (DEFAULT_HIGH_WATER / 4, DEFAULT_HIGH_WATER)
    );
    assert_eq!(tr.get_write_buffer_limits(), (16 * 1024, 64 * 1024));

    tr.set_write_buffer_limits(Some(1000), Some(100)).unwrap();
    assert_eq!(tr.get_write_buffer_limits(), (100, 1000));
    tr.set_write_buffer_limits(Some(1000), None).unwrap();
    assert_eq!(
        tr.get_write_buffer_limits(),
        (250, 1000),
        "only high: low = high / 4"
    );
    tr.set_write_buffer_limits(None, Some(16385)).unwrap();
    assert_eq!(
        tr.get_write_buffer_limits(),
        (16385, 65540),
        "only low: high = 4 × low"
    );
    tr.set_write_buffer_limits(Some(7), Some(7)).unwrap();
    assert_eq!(tr.get_write_buffer_limits(), (7, 7), "high == low is valid");
    tr.set_write_buffer_limits(None, None).unwrap();
    assert_eq!(
        tr.get_write_buffer_limits(),
        (16 * 1024, 64 * 1024),
        "back to the defaults"
    );
}

#[test]
fn invalid_limits_are_rejected_and_change_nothing() {
    let t = established();
    let tr = t.transport();
    tr.set_write_buffer_limits(Some(100), Some(10)).unwrap();
    let err = tr.set_write_buffer_limits(Some(0), Some(1)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidLimits { high: 0, low: 1 }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(tr.get_write_buffer_limits(), (10, 100));
    assert!(matches!(
        tr.set_write_buffer_limits(Some(3), Some(4)),
        Err(Error::InvalidLimits { high: 3, low: 4 })
    ));
    assert_eq!(tr.get_write_buffer_limits(), (10, 100));
}

#[test]
fn raising_limits_while_paused_stays_paused_until_the_next_drain() {
    let mut t = blocked_with_limits(10, 4);
    write(&mut t, 11);
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting]);

    // 11 bytes are now far under the new low mark; still no resume.
    t.transport()
        .set_write_buffer_limits(Some(1000), Some(500))
        .unwrap();
    t.run();
    t.run();
    assert_eq!(t.protocol_mut().take(), []);

    t.drain(1);
    assert_eq!(t.transport().get_write_buffer_size(), 10);
    assert_eq!(
        t.protocol_mut().take(),
        [ResumeWriting],
        "the next drain resumes"
    );
    assert_quiet(&mut t);
}

#[test]
fn lowering_limits_under_the_buffered_size_pauses_once() {
    let mut t = blocked();
    write(&mut t, 100);
    assert_eq!(t.protocol().events(), [Made]);
    t.transport()
        .set_write_buffer_limits(Some(50), None)
        .unwrap();
    t.transport()
        .set_write_buffer_limits(Some(20), None)
        .unwrap();
    t.run();
    assert_eq!(t.protocol_mut().take(), [Made, PauseWriting]);
    assert_quiet(&mut t);
}

// EOF and reading.

#[test]
fn eof_while_reading_is_paused_is_held_until_resume() {
    let mut t = MemoryTransport::new(Recorder::default().on_event(|event, transport| {
        if *event == Made {
            transport.pause_reading();
        }
    }));
    t.feed("0123456789");
    t.feed_eof();
    assert_eq!(
        t.protocol().events(),
        [Made],
        "neither data nor EOF while paused"
    );
    assert!(!t.is_closed());
    assert!(!t.transport().is_closing());

    t.transport().resume_reading();
    t.run();
    assert_eq!(
        t.protocol_mut().take(),
        [Made, Data("0123456789".into()), Eof, Lost(None)]
    );
    assert!(t.is_closed());
    assert_quiet(&mut t);
}

#[test]
fn eof_received_fires_once_even_after_pause_and_resume() {
    let mut t = MemoryTransport::new(Recorder::default().eof_returns(true));
    t.feed("data");
    t.feed_eof();
    assert_eq!(t.protocol().events(), [Made, Data("data".into()), Eof]);

    // asyncio re-arms the reader here and calls eof_received again.
    t.transport().pause_reading();
    t.run();
    t.transport().resume_reading();
    t.run();
    t.feed_eof();
    t.feed("late");
    assert_eq!(
        t.protocol().events(),
        [Made, Data("data".into()), Eof],
        "no second EOF, no data after it"
    );
    assert!(!t.transport().is_closing(), "the protocol kept it open");

    t.transport().close();
    t.run();
    assert_eq!(
        t.protocol_mut().take(),
        [Made, Data("data".into()), Eof, Lost(None)]
    );
    assert_quiet(&mut t);
}

// close, abort and errors.

#[test]
fn abort_inside_connection_made_gives_one_connection_lost() {
    let mut t = MemoryTransport::new(Recorder::default().on_event(|event, transport| {
        if *event == Made {
            transport.abort();
        }
    }));
    assert_eq!(t.protocol_mut().take(), [Made, Lost(None)]);
    assert!(t.transport().is_closing());
    assert!(t.is_closed());
    t.transport().close();
    t.transport().abort();
    assert_quiet(&mut t);
}

#[test]
fn close_and_abort_repeated_give_one_connection_lost() {
    let mut t = established();
    let tr = t.transport().clone();
    tr.close();
    tr.abort();
    tr.close();
    tr.abort();
    t.run();
    assert_eq!(t.protocol_mut().take(), [Made, Lost(None)]);
    tr.close();
    tr.abort();
    assert_quiet(&mut t);
}

#[test]
fn abort_after_close_discards_what_close_was_flushing() {
    let mut t = blocked();
    t.transport().write("pending").unwrap();
    t.run();
    t.transport().close();
    t.run();
    assert_eq!(t.protocol().events(), [Made]);

    t.transport().abort();
    assert_eq!(t.transport().get_write_buffer_size(), 0);
    t.set_write_mode(WriteMode::Accept);
    assert_eq!(t.written(), b"");
    assert_eq!(t.protocol_mut().take(), [Made, Lost(None)]);
    assert_quiet(&mut t);
}

#[test]
fn write_after_close_with_pending_data_is_sent_before_the_close() {
    // asyncio 3.11–3.13: _conn_lost stays 0 while close() flushes.
    let mut t = blocked();
    t.transport().write("data").unwrap();
    t.run();
    t.transport().close();
    t.transport().write("more").unwrap();
    t.run();
    assert_eq!(t.transport().get_write_buffer_size(), 8);

    t.set_write_mode(WriteMode::Accept);
    assert_eq!(t.take_written(), "datamore");
    assert_eq!(t.protocol_mut().take(), [Made, Lost(None)]);
    assert_quiet(&mut t);
}

#[test]
fn write_after_write_eof_fails_even_when_empty() {
    let mut t = blocked();
    t.transport().write("data").unwrap();
    t.transport().write_eof().unwrap();
    assert!(matches!(t.transport().write(""), Err(Error::WriteAfterEof)));
    assert!(matches!(
        t.transport().write("x"),
        Err(Error::WriteAfterEof)
    ));
    assert!(matches!(
        t.transport().writelines(["y", "z"]),
        Err(Error::WriteAfterEof)
    ));
    t.set_write_mode(WriteMode::Accept);
    assert_eq!(
        t.take_written(),
        "data",
        "nothing of the failed writes was queued"
    );
    assert!(t.is_write_shut());
    assert_eq!(t.protocol_mut().take(), [Made]);
    assert_quiet(&mut t);
}

#[test]
fn panic_in_pause_writing_aborts_the_connection() {
    // asyncio logs and keeps the connection; a panic in any callback aborts
    // here (documented in lifecycle).
    let mut t = MemoryTransport::new(Recorder::default().on_event(|event, _| {
        if *event == PauseWriting {
            panic!("pause failed");
        }
    }));
    t.set_write_mode(WriteMode::Block);
    t.transport()
        .set_write_buffer_limits(Some(1), None)
        .unwrap();
    write(&mut t, 2);
    assert_eq!(
        t.protocol_mut().take(),
        [Made, PauseWriting, Lost(Some(ErrorKind::Other))]
    );
    assert!(matches!(
        t.protocol().errors(),
        [Error::ProtocolPanicked {
            callback: Callback::PauseWriting,
            ..
        }]
    ));
    assert_eq!(t.transport().get_write_buffer_size(), 0);
    t.set_write_mode(WriteMode::Accept);
    assert_eq!(t.written(), b"");
    assert_quiet(&mut t);
}

#[test]
fn panic_in_connection_lost_drops_the_protocol() {
    let mut t = MemoryTransport::new(Recorder::default().on_event(|event, _| {
        if matches!(event, Lost(_)) {
            panic!("lost failed");
        }
    }));
    assert!(t.has_protocol());
    t.transport().close();
    t.run();
    assert!(t.is_closed());
    assert!(!t.has_protocol());
    assert!(t.into_protocol().is_none());
}

// For any writes, drains and limits: pause and resume alternate at the
// documented edges and the buffer size is exact.

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Drain(usize),
    Limits(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..300usize).prop_map(Op::Write),
        3 => (0..400usize).prop_map(Op::Drain),
        1 => (0..200usize, 0..200usize).prop_map(|(a, b)| Op::Limits(a.max(b), a.min(b))),
    ]
}

/// The flow-control model: asyncio's rules, applied after each wake-up.
#[derive(Debug)]
struct Model {
    size: usize,
    budget: usize,
    high: usize,
    low: usize,
    paused: bool,
    events: Vec<Event>,
}

impl Model {
    fn run(&mut self) {
        // Pause is checked before the send attempt, resume after it.
        if !self.paused && self.size > self.high {
            self.paused = true;
            self.events.push(PauseWriting);
        }
        let sent = self.size.min(self.budget);
        self.size -= sent;
        self.budget -= sent;
        if sent > 0 && self.paused && self.size <= self.low {
            self.paused = false;
            self.events.push(ResumeWriting);
        }
    }
}

proptest! {
    #[test]
    fn flow_control_edges_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut t = blocked();
        let (low, high) = t.transport().get_write_buffer_limits();
        let mut m = Model { size: 0, budget: 0, high, low, paused: false, events: vec![Made] };
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Write(n) => {
                    let chunk = vec![u8::try_from(i % 256).unwrap(); n];
                    sent.extend_from_slice(&chunk);
                    t.transport().write(chunk).unwrap();
                    m.size += n;
                    t.run();
                }
                Op::Drain(n) => {
                    m.budget = n;
                    t.drain(n);
                }
                Op::Limits(h, l) => {
                    t.transport().set_write_buffer_limits(Some(h), Some(l)).unwrap();
                    (m.high, m.low) = (h, l);
                    t.run();
                }
            }
            m.run();
            received.extend_from_slice(&t.take_written());
            prop_assert_eq!(t.transport().get_write_buffer_size(), m.size, "after {:?}", op);
            prop_assert_eq!(t.protocol().events(), m.events.clone(), "after {:?}", op);
        }
        prop_assert_eq!(&received[..], &sent[..received.len()]);
        prop_assert_eq!(received.len() + m.size, sent.len());
    }
}
