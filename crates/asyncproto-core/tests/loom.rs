//! loom model checks of the [`Transport`] handle's synchronisation: the
//! `Mutex<State>`, the `dirty`/`running` flags and the stored `Waker` that
//! let writers on other threads wake the connection's task without lost
//! wake-ups.
//!
//! Run with (not part of the default test command):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p asyncproto-core --test loom --release
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` defaults to 2 here (each model sets it unless the
//! environment does); raise it for a deeper search. With `--nocapture` each
//! model prints how many executions it explored. At 2 the four models take
//! about 0.2 s together (4: about 3.5 s), after a cold build of about 3 min.
//!
//! The task is played by the model's main thread as an executor would run
//! it: it polls ([`Connection::drive`]) only when woken, clearing the wake
//! flag before each poll. A write whose wake-up is lost is therefore never
//! flushed, and the final assertions catch it.
//!
//! The models: a writer thread against the polling task (no lost wake-up,
//! bytes in order); `close()` against `write()` (every write that returned
//! before the close is sent, nothing after `connection_lost`); `abort()`
//! against a flush spread over several polls (one `connection_lost`); and
//! `pause_reading()`/`resume_reading()` against a read (nothing held back is
//! lost, at most the in-flight delivery starts after the pause returns).

#![cfg(loom)]

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    sync::Arc as StdArc,
    task::{Poll, Wake, Waker},
};

use asyncproto_core::{
    Transport, TransportInfo,
    lifecycle::{Connection, Status, StreamIo},
    testing::{Event, Recorder},
};
use bytes::BytesMut;
use loom::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    thread,
};

#[test]
fn writer_on_another_thread_is_never_left_unflushed() {
    model(|| {
        let mut task = Task::new(Io::default());
        let t = task.transport();
        let writer = thread::spawn(move || {
            t.write("ab").unwrap();
            t.writelines(["c", "d"]).unwrap();
        });
        // One poll, racing with the writer (as a wake-up would cause), then
        // as many as the wake-ups seen meanwhile ask for.
        let _ = task.poll();
        task.run_while_woken();
        writer.join().unwrap();
        // What those polls did not flush, a wake-up must have announced.
        if task.io.written != b"abcd" {
            assert!(
                task.woken(),
                "lost wake-up: only {:?} flushed",
                task.io.written
            );
        }
        task.run_while_woken();
        assert_eq!(task.io.written, b"abcd", "in order, exactly once");
    });
}

#[test]
fn close_races_write_and_loses_nothing_written_before_it() {
    model(|| {
        let mut task = Task::new(Io::default());
        let (tw, tc) = (task.transport(), task.transport());
        let returned = StdArc::new(AtomicUsize::new(0));
        let returned2 = StdArc::clone(&returned);
        let writer = thread::spawn(move || {
            for chunk in ["a", "b"] {
                tw.write(chunk).unwrap();
                returned2.fetch_add(1, SeqCst);
            }
        });
        let closer = thread::spawn(move || {
            // These writes returned before close() was called.
            let before = returned.load(SeqCst);
            tc.close();
            before
        });
        let _ = task.poll();
        writer.join().unwrap();
        let before = closer.join().unwrap();
        task.run_while_woken();
        assert_eq!(task.status, Status::Done, "close() always finishes");
        let written = task.io.written.clone();
        assert!(b"ab".starts_with(&written), "in order: {written:?}");
        assert!(
            written.len() >= before,
            "{before} writes returned before close(), sent {written:?}"
        );
        assert_eq!(task.finish(), [Event::Made, Event::Lost(None)]);
        // After connection_lost nothing is queued or sent.
        let t = task.transport();
        t.write("late").unwrap();
        assert_eq!(t.get_write_buffer_size(), 0);
        assert_eq!(task.poll(), Status::Done);
        assert_eq!(task.io.written, written);
    });
}

#[test]
fn abort_racing_a_flush_gives_one_connection_lost() {
    model(|| {
        // A write side that takes 2 bytes a call, then blocks once and is
        // ready again at once: the flush spans several polls.
        let mut task = Task::new(Io {
            chunk: 2,
            ..Io::default()
        });
        let t = task.transport();
        t.write("hello").unwrap();
        let aborter = thread::spawn(move || t.abort());
        task.run_while_woken();
        aborter.join().unwrap();
        task.run_while_woken();
        assert_eq!(
            task.status,
            Status::Done,
            "abort() always ends the connection"
        );
        assert!(
            b"hello".starts_with(&task.io.written),
            "{:?}",
            task.io.written
        );
        assert_eq!(task.finish(), [Event::Made, Event::Lost(None)]);
        task.transport().abort();
        assert_eq!(task.poll(), Status::Done);
        assert!(task.conn.finish().is_none(), "no second connection_lost");
    });
}

#[test]
fn pause_reading_on_another_thread_holds_data_and_eof_until_resume() {
    model(|| {
        // `paused` is set between pause_reading() returning and
        // resume_reading() being called; `late` counts the data_received and
        // eof_received that started meanwhile. From another thread the pause
        // cannot stop a delivery the task already decided on (it checked
        // before the pause landed, then released the lock to call the
        // protocol), so at most that one may start; nothing after it.
        let paused = StdArc::new(AtomicBool::new(false));
        let late = StdArc::new(AtomicUsize::new(0));
        let (seen, counted) = (StdArc::clone(&paused), StdArc::clone(&late));
        let protocol = Recorder::default().on_event(move |event, _| {
            if matches!(event, Event::Data(_) | Event::Eof) && seen.load(SeqCst) {
                counted.fetch_add(1, SeqCst);
            }
        });
        let mut task = Task::with(protocol, Io::default());
        // The peer's data and EOF arrive; the read races with the pause.
        task.io.inbox.extend([Some("xy"), None]);
        let t = task.transport();
        let pauser = thread::spawn(move || {
            t.pause_reading();
            paused.store(true, SeqCst);
            paused.store(false, SeqCst);
            t.resume_reading();
        });
        let _ = task.poll();
        task.run_while_woken();
        pauser.join().unwrap();
        assert!(
            late.load(SeqCst) <= 1,
            "more than the in-flight delivery while paused"
        );
        // Whatever the pause held back, the resume's wake-up releases.
        task.run_while_woken();
        assert_eq!(task.status, Status::Done, "EOF closes the transport");
        assert_eq!(
            task.finish(),
            [
                Event::Made,
                Event::Data("xy".into()),
                Event::Eof,
                Event::Lost(None)
            ]
        );
    });
}

/// Runs `f` under loom, with at most 2 preemptions unless the environment
/// sets `LOOM_MAX_PREEMPTIONS`, and prints how many executions it explored
/// (`--nocapture` shows it).
#[track_caller]
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    // A std counter: bookkeeping outside the model, not part of it.
    let runs = StdArc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = StdArc::clone(&runs);
    let started = std::time::Instant::now();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    eprintln!(
        "{}: {} executions in {:.1?}",
        std::panic::Location::caller(),
        runs.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed()
    );
}

/// The connection's task: the connection, its stream, and the wake flag an
/// executor keeps.
struct Task {
    conn: Connection<Recorder>,
    io: Io,
    wake: StdArc<Flag>,
    waker: Waker,
    /// What the last poll returned.
    status: Status,
}

impl Task {
    /// A started connection that has been polled once and is parked.
    fn new(io: Io) -> Self {
        Self::with(Recorder::default(), io)
    }

    fn with(protocol: Recorder, io: Io) -> Self {
        let wake = StdArc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(StdArc::clone(&wake));
        let mut conn = Connection::new(protocol, TransportInfo::new("loom"));
        assert!(conn.start());
        let mut task = Self {
            conn,
            io: Io {
                waker: Some(waker.clone()),
                ..io
            },
            wake,
            waker,
            status: Status::Pending,
        };
        assert_eq!(task.poll(), Status::Pending);
        assert!(!task.woken());
        task
    }

    fn transport(&self) -> Transport {
        self.conn.transport().clone()
    }

    /// One poll; the executor clears the wake flag first. Returns the
    /// status.
    fn poll(&mut self) -> Status {
        self.wake.0.store(false, SeqCst);
        self.status = self.conn.drive(&mut self.io, &self.waker);
        if self.status == Status::Done {
            self.io.closed = true;
        }
        self.status
    }

    fn woken(&self) -> bool {
        self.wake.0.load(SeqCst)
    }

    /// Polls while woken (or told to yield) and not done, as an executor
    /// would; `status` then holds the last status.
    fn run_while_woken(&mut self) {
        while self.status != Status::Done && (self.woken() || self.status == Status::Yield) {
            self.status = self.poll();
        }
    }

    /// Delivers `connection_lost` and returns every callback, in order.
    fn finish(&mut self) -> Vec<Event> {
        let recorder = self.conn.finish().expect("the protocol is handed back");
        recorder.events()
    }
}

/// The wake flag: set by every wake-up.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.0.store(true, SeqCst);
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.store(true, SeqCst);
    }
}

/// A stream whose peer sends what is in `inbox` (`None`: EOF) and takes
/// `chunk` bytes a write (0: everything), blocking once between takes and
/// at once ready again.
#[derive(Default)]
struct Io {
    inbox: VecDeque<Option<&'static str>>,
    written: Vec<u8>,
    chunk: usize,
    blocked_last: bool,
    closed: bool,
    waker: Option<Waker>,
}

impl StreamIo for Io {
    fn read(&mut self, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self.inbox.pop_front() {
            None => Poll::Pending,
            Some(None) => Poll::Ready(Ok(0)),
            Some(Some(data)) => {
                buf.extend_from_slice(data.as_bytes());
                Poll::Ready(Ok(data.len()))
            }
        }
    }

    // The models drive data protocols only; a buffered read is a copy of
    // the same scripted chunk.
    fn read_into(&mut self, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut tmp = BytesMut::new();
        let res = self.read(&mut tmp);
        if let Poll::Ready(Ok(n)) = res {
            assert!(n <= buf.len(), "scripted chunks fit the models' buffers");
            buf[..n].copy_from_slice(&tmp);
        }
        res
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        assert!(!self.closed, "a write after the connection was done");
        if self.chunk > 0 && !self.blocked_last {
            self.blocked_last = true;
            // Readiness comes back at once.
            self.waker.as_ref().expect("set by Task::new").wake_by_ref();
            return Poll::Pending;
        }
        self.blocked_last = false;
        let mut budget = if self.chunk == 0 {
            usize::MAX
        } else {
            self.chunk
        };
        let mut taken = 0;
        for b in bufs {
            let n = b.len().min(budget);
            self.written.extend_from_slice(&b[..n]);
            taken += n;
            budget -= n;
        }
        Poll::Ready(Ok(taken))
    }

    fn shutdown_write(&mut self) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
