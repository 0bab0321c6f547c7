//! Helpers shared by every integration test: timeouts, a protocol tap that
//! forwards callbacks to the test, raw loopback peers, payloads.

use std::{
    future::{Future, poll_fn},
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Once,
    task::Poll,
    time::Duration,
};

use asyncproto_core::{
    BaseProtocol, Bytes, Error as CoreError, Protocol, Transport,
    testing::{Event, Recorder},
};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpSocket, TcpStream},
    sync::mpsc,
};

/// Runs `fut`, panicking if it takes longer than `secs` seconds.
pub(crate) async fn within<F: Future>(secs: u64, fut: F) -> F::Output {
    init_tracing();
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("test timed out after {secs} s"),
    }
}

/// Polls `fut` once; `Some` if it completed. Used to check that a future is
/// still pending at a point where nothing can change it (no sleep needed).
pub(crate) async fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Option<F::Output> {
    let mut fut = Some(fut);
    poll_fn(|cx| match fut.take().map(|f| f.poll(cx)) {
        Some(Poll::Ready(out)) => Poll::Ready(Some(out)),
        _ => Poll::Ready(None),
    })
    .await
}

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}

/// Generates one test per runtime flavour for each listed `async fn`:
/// `current_thread::name` and `multi_thread::name` (2 workers), each bounded
/// by `within(secs, ..)`.
macro_rules! on_both_runtimes {
    ($secs:expr; $($name:ident),* $(,)?) => {
        mod current_thread {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::support::within($secs, super::$name()).await
                }
            )*
        }
        mod multi_thread {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::within($secs, super::$name()).await
                }
            )*
        }
    };
}
pub(crate) use on_both_runtimes;

// ---------------------------------------------------------------------------
// Tap: a Recorder whose callbacks are also forwarded to the test.

/// What a [`Tap`] forwards.
#[derive(Debug)]
enum Seen {
    Made(Transport),
    Event(Event),
    Lost(Option<CoreError>),
}

/// Wraps a [`Recorder`] (so its `eof_returns` and `on_event` hook apply) and
/// forwards each callback to a [`Probe`] after the recorder (and its hook)
/// has run. `connection_lost` forwards the error itself.
#[derive(Debug)]
pub(crate) struct Tap {
    rec: Recorder,
    tx: mpsc::UnboundedSender<Seen>,
}

impl Tap {
    /// The wrapped recorder (its log has every event, in order).
    pub(crate) fn recorder(&self) -> &Recorder {
        &self.rec
    }
}

/// Wraps `rec` in a [`Tap`] and returns the probe that sees its callbacks.
pub(crate) fn tap(rec: Recorder) -> (Tap, Probe) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Tap { rec, tx },
        Probe {
            rx,
            transport: None,
            lost: None,
        },
    )
}

/// A factory for a server that taps every connection: each accepted
/// connection's probe comes out of the returned [`Accepted`].
pub(crate) fn tapped_factory(
    make: impl Fn() -> Recorder + Send + Sync + 'static,
) -> (impl Fn() -> Tap + Send + Sync + 'static, Accepted) {
    let (tx, rx) = mpsc::unbounded_channel();
    let factory = move || {
        let (t, probe) = tap(make());
        let _ = tx.send(probe);
        t
    };
    (factory, Accepted { rx })
}

impl BaseProtocol for Tap {
    fn connection_made(&mut self, transport: Transport) {
        self.rec.connection_made(transport.clone());
        let _ = self.tx.send(Seen::Made(transport));
    }

    fn connection_lost(&mut self, exc: Option<CoreError>) {
        self.rec.connection_lost(exc.as_ref().map(clone_error));
        let _ = self.tx.send(Seen::Lost(exc));
    }

    fn pause_writing(&mut self) {
        self.rec.pause_writing();
        let _ = self.tx.send(Seen::Event(Event::PauseWriting));
    }

    fn resume_writing(&mut self) {
        self.rec.resume_writing();
        let _ = self.tx.send(Seen::Event(Event::ResumeWriting));
    }
}

impl Protocol for Tap {
    fn data_received(&mut self, data: Bytes) {
        self.rec.data_received(data.clone());
        let _ = self.tx.send(Seen::Event(Event::Data(data)));
    }

    fn eof_received(&mut self) -> bool {
        let keep_open = self.rec.eof_received();
        let _ = self.tx.send(Seen::Event(Event::Eof));
        keep_open
    }
}

/// A copy of `e` good enough for the recorder's log (kind and message).
fn clone_error(e: &CoreError) -> CoreError {
    match e {
        CoreError::ProtocolPanicked { callback, message } => CoreError::ProtocolPanicked {
            callback: *callback,
            message: message.clone(),
        },
        CoreError::Cancelled => CoreError::Cancelled,
        other => CoreError::Io(io::Error::new(other.kind(), other.to_string())),
    }
}

/// The test's side of a [`Tap`]: the connection's callbacks, in order.
#[derive(Debug)]
pub(crate) struct Probe {
    rx: mpsc::UnboundedReceiver<Seen>,
    transport: Option<Transport>,
    lost: Option<Option<CoreError>>,
}

impl Probe {
    /// The next callback. Panics if the protocol is gone.
    pub(crate) async fn next(&mut self) -> Event {
        match self.rx.recv().await {
            Some(seen) => self.note(seen),
            None => panic!("protocol dropped: no more events"),
        }
    }

    /// The next callback if one was already delivered.
    pub(crate) fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok().map(|seen| self.note(seen))
    }

    fn note(&mut self, seen: Seen) -> Event {
        match seen {
            Seen::Made(t) => {
                self.transport = Some(t);
                Event::Made
            }
            Seen::Event(e) => e,
            Seen::Lost(exc) => {
                let kind = exc.as_ref().map(CoreError::kind);
                self.lost = Some(exc);
                Event::Lost(kind)
            }
        }
    }

    /// Waits for `connection_made` and returns the transport.
    pub(crate) async fn made(&mut self) -> Transport {
        assert_eq!(self.next().await, Event::Made);
        self.transport().clone()
    }

    /// The transport from `connection_made`.
    pub(crate) fn transport(&self) -> &Transport {
        self.transport
            .as_ref()
            .expect("connection_made not seen yet")
    }

    /// Collects exactly `n` bytes of `data_received`; panics on any other
    /// callback first.
    pub(crate) async fn data(&mut self, n: usize) -> Vec<u8> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self.next().await {
                Event::Data(d) => got.extend_from_slice(&d),
                other => panic!(
                    "expected data ({} of {n} bytes so far), got {other:?}",
                    got.len()
                ),
            }
        }
        assert_eq!(got.len(), n, "more data than expected");
        got
    }

    /// Every callback up to and including `connection_lost`, with adjacent
    /// `Data` chunks merged (chunk boundaries carry no meaning).
    pub(crate) async fn until_lost(&mut self) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        loop {
            let e = self.next().await;
            let lost = matches!(e, Event::Lost(_));
            match (events.last_mut(), e) {
                (Some(Event::Data(prev)), Event::Data(d)) => {
                    let mut joined = prev.to_vec();
                    joined.extend_from_slice(&d);
                    *prev = joined.into();
                }
                (_, e) => events.push(e),
            }
            if lost {
                return events;
            }
        }
    }

    /// The error `connection_lost` got (after it was seen).
    pub(crate) fn lost_error(&self) -> Option<&CoreError> {
        self.lost
            .as_ref()
            .expect("connection_lost not seen yet")
            .as_ref()
    }

    /// Asserts that no callback follows: resolves once the protocol is
    /// dropped (server side) and panics if anything else arrives.
    pub(crate) async fn finished(&mut self) {
        if let Some(seen) = self.rx.recv().await {
            let e = self.note(seen);
            panic!("callback after connection_lost: {e:?}");
        }
    }
}

/// The probes of a server's connections, in accept order.
#[derive(Debug)]
pub(crate) struct Accepted {
    rx: mpsc::UnboundedReceiver<Probe>,
}

impl Accepted {
    /// The next accepted connection's probe.
    pub(crate) async fn next(&mut self) -> Probe {
        self.rx.recv().await.expect("server factory dropped")
    }
}

/// A recorder that writes back everything it receives.
pub(crate) fn echo() -> Recorder {
    Recorder::default().on_event(|event, t| {
        if let Event::Data(d) = event {
            t.write(d.clone()).expect("echo write");
        }
    })
}

// ---------------------------------------------------------------------------
// Raw peers.

/// A plain Tokio listener on 127.0.0.1:0; `rcvbuf` shrinks the receive
/// buffer of every accepted socket (and turns off autotuning).
pub(crate) fn raw_listener(rcvbuf: Option<u32>) -> (TcpListener, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(128).expect("listen");
    let addr = listener.local_addr().expect("local_addr");
    (listener, addr)
}

/// A plain Tokio client connected to `addr`; `rcvbuf` as for
/// [`raw_listener`].
pub(crate) async fn raw_connect(addr: SocketAddr, rcvbuf: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    socket.connect(addr).await.expect("connect")
}

/// Reads until EOF.
pub(crate) async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read_to_end");
    out
}

/// Makes the next close of `stream` send RST (`SO_LINGER` 0).
pub(crate) fn linger_zero(stream: &TcpStream) {
    SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// A bound, non-listening socket: connects to its address are refused for
/// as long as it lives (no race with other processes over a freed port).
pub(crate) fn refusing_addr() -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet");
    (socket, addr)
}

/// A port on 127.0.0.1 that was free a moment ago (CPython's
/// `find_unused_port`).
pub(crate) fn unused_port() -> u16 {
    let (socket, addr) = refusing_addr();
    drop(socket);
    addr.port()
}

/// Whether connecting to `addr` is refused now.
pub(crate) async fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect(addr).await {
        Ok(_) => false,
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
            true
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (up to the hard limit).
pub(crate) fn raise_nofile(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).expect("setrlimit");
    }
}

// ---------------------------------------------------------------------------
// Payloads.

/// `len` pseudo-random bytes from `seed` (xorshift), so reordering or loss
/// shows in the checksum.
pub(crate) fn payload(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

/// FNV-1a 64 of `data`.
pub(crate) fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
