//! Ports of uvloop `tests/test_tcp.py` (at `0582f94`) that need no socket.

mod test_aio_tcp {
    use std::io::ErrorKind;

    use asyncproto_core::{
        Callback,
        testing::{Event::*, MemoryTransport, Recorder},
    };
    use tracing::Level;

    use crate::support::{LogCapture, assert_panicked, assert_quiet};

    /// Port of uvloop `0582f94`
    /// `tests/test_tcp.py::Test_AIO_TCP::test_tcp_handle_exception_in_connection_made`.
    ///
    /// - Departs in behaviour (documented: asyncproto-core `lifecycle` and
    ///   the migration guide, "Differences from asyncio"): asyncio only logs
    ///   an exception in `connection_made` and keeps the transport open; here
    ///   a panic in `connection_made` aborts, and `connection_lost(Some(
    ///   Error::ProtocolPanicked))` is delivered once. A later `close()`
    ///   changes nothing.
    /// - `create_connection` returning the error is a socket test, in
    ///   asyncproto-tokio.
    #[test]
    fn test_tcp_handle_exception_in_connection_made() {
        let logs = LogCapture::start();
        let mut t = MemoryTransport::new(Recorder::default().on_event(|event, _| {
            if *event == Made {
                panic!("ZeroDivisionError");
            }
        }));
        assert_eq!(
            t.protocol_mut().take(),
            [Made, Lost(Some(ErrorKind::Other))]
        );
        assert_panicked(
            t.protocol().errors(),
            Callback::ConnectionMade,
            "ZeroDivisionError",
        );
        assert!(t.is_closed());
        assert!(t.transport().is_closing());
        assert_eq!(logs.at(Level::ERROR).len(), 1);

        t.transport().close();
        t.feed("data");
        assert_quiet(&mut t);
    }
}

mod test_uv_tcp {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use asyncproto_core::{
        Bytes,
        testing::{Event, Event::*, MemoryTransport, Recorder, WriteMode},
    };

    /// The peer reads at most this much per wake-up, as upstream's server
    /// (`reader.read(10000)`).
    const READ_SIZE: usize = 10_000;

    /// The writer's side of the test: it plays upstream's coroutine, which
    /// writes through a `StreamWriter` and awaits `drain()`.
    struct Writer {
        t: MemoryTransport<Recorder>,
        paused: Arc<AtomicBool>,
        sent: Vec<u8>,
        received: Vec<u8>,
        max_buffered: usize,
    }

    impl Writer {
        fn new() -> Self {
            let paused = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&paused);
            let recorder = Recorder::default().on_event(move |event, _| match event {
                PauseWriting => assert!(!flag.swap(true, Ordering::SeqCst), "two pauses"),
                ResumeWriting => assert!(flag.swap(false, Ordering::SeqCst), "resume unpaused"),
                _ => {}
            });
            let mut t = MemoryTransport::new(recorder);
            t.set_write_mode(WriteMode::Block);
            Self {
                t,
                paused,
                sent: Vec::new(),
                received: Vec::new(),
                max_buffered: 0,
            }
        }

        fn write(&mut self, data: &Bytes) {
            self.t.transport().write(data.clone()).unwrap();
            self.sent.extend_from_slice(data);
            self.max_buffered = self
                .max_buffered
                .max(self.t.transport().get_write_buffer_size());
        }

        /// `await writer.drain()`: the peer reads once, then as long as the
        /// protocol is paused.
        fn drain(&mut self) {
            // Bounded: a pause that is never resumed fails instead of hanging.
            for _ in 0..1_000 {
                self.t.drain(READ_SIZE);
                self.received.extend_from_slice(&self.t.take_written());
                if !self.paused.load(Ordering::SeqCst) {
                    return;
                }
            }
            panic!("still paused after the peer read 10 MB: {:?}", self.t);
        }
    }

    /// Port of uvloop `0582f94`
    /// `tests/test_tcp.py::Test_UV_TCP::test_many_small_writes` (uvloop only).
    ///
    /// - Scaled down from 100 KiB × 10 000 to 1 KiB × 1 000 per phase; the
    ///   default water marks (64 KiB / 16 KiB) make every phase cross them.
    /// - `StreamWriter.drain()` is the test waiting on the protocol's
    ///   pause/resume (a flag set in `pause_writing`, cleared in
    ///   `resume_writing`), letting the peer read 10 000 bytes per wake-up.
    /// - The `write('a')` `TypeError` has no counterpart (`&str` is bytes).
    /// - Beyond upstream: pauses and resumes alternate, and the bytes arrive
    ///   in order, not only in number.
    #[test]
    fn test_many_small_writes() {
        const N: usize = 1000;
        let data: Bytes = (0..=250u8).cycle().take(1024).collect::<Vec<u8>>().into();

        let mut w = Writer::new();
        w.write(&data);
        w.drain();
        for _ in 0..3 {
            w.write(&data);
        }
        w.drain();
        for _ in 0..10 {
            w.write(&data);
        }
        w.drain();

        for i in 0..N {
            // Each write is distinct so that reordering would show.
            w.write(&Bytes::from(format!("[{i}]")));
            w.write(&data);
        }
        w.drain();
        for _ in 0..N {
            w.write(&data);
            w.drain();
        }

        w.t.transport().close();
        for _ in 0..1_000 {
            if w.t.is_closed() {
                break;
            }
            w.drain();
        }
        assert!(w.t.is_closed());

        let total = N * 2 * data.len()
            + 14 * data.len()
            + (0..N).map(|i| format!("[{i}]").len()).sum::<usize>();
        assert_eq!(w.received.len(), total);
        assert!(w.received == w.sent, "bytes arrive in order");
        assert!(
            w.max_buffered > 64 * 1024,
            "the test crossed the high-water mark"
        );

        let events = w.t.protocol_mut().take();
        assert_eq!(events.first(), Some(&Made));
        assert_eq!(events.last(), Some(&Lost(None)));
        let flow = &events[1..events.len() - 1];
        assert!(!flow.is_empty());
        for (i, event) in flow.iter().enumerate() {
            let expected: Event = if i % 2 == 0 {
                PauseWriting
            } else {
                ResumeWriting
            };
            assert_eq!(*event, expected, "pause and resume alternate: {flow:?}");
        }
        assert_eq!(flow.len() % 2, 0, "every pause was resumed");
    }
}
