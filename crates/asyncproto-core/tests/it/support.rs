//! Helpers shared by the conformance tests: named transport states and a
//! tracing capture.

use std::{
    cell::RefCell,
    fmt,
    sync::{Arc, Mutex, MutexGuard, Once, PoisonError},
};

use asyncproto_core::{
    Callback, Error,
    testing::{MemoryTransport, Recorder, WriteMode},
};
use tracing::{
    Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, Registry, layer::Context, layer::SubscriberExt};

/// A connection after `connection_made`, with a peer that takes everything.
pub(crate) fn established() -> MemoryTransport<Recorder> {
    MemoryTransport::new(Recorder::default())
}

/// A connection after `connection_made` whose peer takes nothing (every
/// write would block) until the test changes the write mode.
pub(crate) fn blocked() -> MemoryTransport<Recorder> {
    let mut t = established();
    t.set_write_mode(WriteMode::Block);
    t
}

/// Runs the connection once more and asserts that no callback came.
#[track_caller]
pub(crate) fn assert_quiet(t: &mut MemoryTransport<Recorder>) {
    t.run();
    assert_eq!(t.protocol_mut().take(), [], "no further callback");
}

/// Asserts that `connection_lost` got exactly one error: a panic in
/// `callback` with `message`.
#[track_caller]
pub(crate) fn assert_panicked(errors: &[Error], callback: Callback, message: &str) {
    match errors {
        [
            Error::ProtocolPanicked {
                callback: c,
                message: m,
            },
        ] => {
            assert_eq!((*c, m.as_str()), (callback, message));
        }
        other => panic!("expected one ProtocolPanicked from {callback}: {other:?}"),
    }
}

/// One tracing event: its level and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) level: Level,
    pub(crate) message: String,
}

type Sink = Arc<Mutex<Vec<Logged>>>;

thread_local! {
    /// Where the global collector puts this thread's events, if anywhere.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Records the tracing events emitted on this thread while it is alive.
///
/// One global subscriber serves every test thread and hands each event to
/// the capture of the thread that emitted it. (Scoped subscribers set with
/// `tracing::subscriber::set_default` are unreliable when tests run in
/// parallel: a callsite first hit on a thread without one can cache
/// "never" while another thread's capture is alive, because tracing-core
/// then asks only the registering thread's default.)
#[derive(Debug)]
pub(crate) struct LogCapture {
    events: Sink,
}

impl LogCapture {
    /// Starts capturing the events of the current thread.
    pub(crate) fn start() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Registry::default().with(Collector))
                .expect("this test binary sets the only global subscriber");
        });
        // Callsites hit before the subscriber existed cached "never".
        tracing::callsite::rebuild_interest_cache();
        let events = Sink::default();
        SINK.with(|sink| *sink.borrow_mut() = Some(Arc::clone(&events)));
        Self { events }
    }

    /// A handle to the events, e.g. for a protocol hook to look at.
    pub(crate) fn handle(&self) -> LogHandle {
        LogHandle(Arc::clone(&self.events))
    }

    /// The messages logged at exactly `level`, in order.
    pub(crate) fn at(&self, level: Level) -> Vec<String> {
        self.handle().at(level)
    }

    /// The events logged at WARN or ERROR.
    pub(crate) fn warnings_and_errors(&self) -> Vec<Logged> {
        lock(&self.events)
            .iter()
            .filter(|e| e.level <= Level::WARN)
            .cloned()
            .collect()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

/// A cloneable, `Send` view of a [`LogCapture`]'s events.
#[derive(Debug, Clone)]
pub(crate) struct LogHandle(Sink);

impl LogHandle {
    /// The messages logged at exactly `level`, in order.
    pub(crate) fn at(&self, level: Level) -> Vec<String> {
        lock(&self.0)
            .iter()
            .filter(|e| e.level == level)
            .map(|e| e.message.clone())
            .collect()
    }
}

fn lock(events: &Mutex<Vec<Logged>>) -> MutexGuard<'_, Vec<Logged>> {
    events.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The global subscriber's layer: forwards each event to its thread's sink.
struct Collector;

impl<S: Subscriber> Layer<S> for Collector {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let Some(sink) = SINK.with(|sink| sink.borrow().clone()) else {
            return;
        };
        let mut message = Message(String::new());
        event.record(&mut message);
        lock(&sink).push(Logged {
            level: *event.metadata().level(),
            message: message.0,
        });
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
