//! Existing sockets and streams as transports: `create_connection_with_sock`
//! and `connect_accepted_socket` over Unix and TCP sockets (std and Tokio),
//! and `connect_stream` over `tokio::io::duplex`. Exact callback sequences;
//! each test runs on both runtime flavours.

use std::{
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, RawFd},
        unix::net::UnixStream as StdUnixStream,
    },
};

use asyncproto_core::{
    BaseProtocol, Buffered, BufferedProtocol, Callback, Error as CoreError, ExtraInfo,
    testing::{Event, Recorder},
};
use asyncproto_tokio::{
    ConnectOptions, Error, connect_accepted_socket, connect_stream, create_connection_with_sock,
};
use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, duplex},
    net::{TcpListener, TcpStream, UnixStream},
};

use crate::support::{checksum, echo, on_both_runtimes, payload, tap};

use Event::{Data, Eof, Lost, Made, PauseWriting, ResumeWriting};

on_both_runtimes!(20;
    unix_pair_delivers_data_eof_then_lost_when_peer_closes,
    unix_pair_eof_true_keeps_write_side_open,
    unix_pair_write_eof_half_closes_and_reading_goes_on,
    unix_pair_abort_discards_buffer_and_reports_lost_none,
    unix_transport_lends_its_socket_and_has_no_addresses,
    unix_pair_feeds_a_buffered_protocol,
    connection_made_panic_closes_the_socket_and_fails_the_call,
    std_tcp_stream_answers_with_socket_and_peer_addr,
    accepted_tokio_tcp_stream_reports_the_client_as_peer,
    duplex_64_echoes_1_mb_in_order_then_closes_on_eof,
    duplex_write_eof_gives_peer_eof_and_reading_goes_on,
    duplex_peer_that_stops_reading_pauses_then_resumes_writing,
    duplex_transport_has_no_socket_and_no_addresses,
    duplex_feeds_a_buffered_protocol,
);

fn opts() -> ConnectOptions {
    ConnectOptions::new()
}

/// A std socketpair: our end (blocking, as `socket.socketpair()` gives it)
/// and the peer's end as a Tokio stream.
fn std_pair() -> (StdUnixStream, UnixStream) {
    let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    (ours, UnixStream::from_std(theirs).expect("register"))
}

async fn unix_pair_delivers_data_eof_then_lost_when_peer_closes() {
    let (ours, mut theirs) = std_pair();
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = create_connection_with_sock(move || proto, ours, opts())
        .await
        .expect("create_connection_with_sock");
    // connection_made ran before the call returned.
    assert_eq!(probe.try_next(), Some(Made));
    theirs.write_all(b"hello").await.expect("write");
    theirs.shutdown().await.expect("shutdown");
    assert_eq!(
        probe.until_lost().await,
        [Data("hello".into()), Eof, Lost(None)]
    );
    assert!(transport.is_closing());
    drop(done.await.expect("protocol"));
    probe.finished().await;
    // eof_received returned false: our end closed, the peer sees EOF.
    let mut rest = Vec::new();
    theirs.read_to_end(&mut rest).await.expect("read");
    assert!(rest.is_empty());
}

async fn unix_pair_eof_true_keeps_write_side_open() {
    let (ours, mut theirs) = std_pair();
    let (proto, mut probe) = tap(Recorder::default().eof_returns(true));
    let (transport, done) = create_connection_with_sock(move || proto, ours, opts())
        .await
        .expect("create_connection_with_sock");
    assert_eq!(probe.next().await, Made);
    theirs.shutdown().await.expect("shutdown");
    assert_eq!(probe.next().await, Eof);
    assert!(!transport.is_closing());
    transport
        .write("late")
        .expect("write after eof_received(true)");
    transport.close();
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"late");
    assert_eq!(probe.until_lost().await, [Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn unix_pair_write_eof_half_closes_and_reading_goes_on() {
    let (ours, mut theirs) = std_pair();
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = create_connection_with_sock(move || proto, ours, opts())
        .await
        .expect("create_connection_with_sock");
    assert_eq!(probe.next().await, Made);
    assert!(transport.can_write_eof());
    transport.write("bye").expect("write");
    transport.write_eof().expect("write_eof");
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"bye", "FIN after the buffered data");
    theirs.write_all(b"more").await.expect("write");
    assert_eq!(probe.data(4).await, b"more");
    drop(theirs);
    assert_eq!(probe.until_lost().await, [Eof, Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn unix_pair_abort_discards_buffer_and_reports_lost_none() {
    // A Tokio socketpair this time: taken as it is.
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = create_connection_with_sock(move || proto, ours, opts())
        .await
        .expect("create_connection_with_sock");
    assert_eq!(probe.next().await, Made);
    // Limits over the write, so that no pause_writing comes into the
    // sequence; the peer reads nothing until after the abort.
    transport
        .set_write_buffer_limits(Some(64 << 20), None)
        .expect("limits");
    let big = payload(8 << 20, 7);
    transport.write(big.clone()).expect("write");
    transport.abort();
    assert_eq!(probe.until_lost().await, [Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).await.expect("read");
    assert!(got.len() < big.len(), "abort discarded the buffer");
    assert_eq!(got[..], big[..got.len()], "what was sent is a prefix");
}

async fn unix_transport_lends_its_socket_and_has_no_addresses() {
    let (ours, _theirs) = std_pair();
    let fd = ours.as_raw_fd();
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = create_connection_with_sock(move || proto, ours, opts())
        .await
        .expect("create_connection_with_sock");
    assert_eq!(probe.next().await, Made);
    assert_eq!(transport.kind(), "unix");
    assert!(transport.can_write_eof());
    assert_eq!(transport.with_socket(raw), Some(fd));
    assert_eq!(transport.get_extra_info("socket"), Some(ExtraInfo::Fd(fd)));
    // asyncio answers path strings here; TransportInfo holds only IP
    // addresses.
    assert_eq!(transport.peer_addr(), None);
    assert_eq!(transport.local_addr(), None);
    assert_eq!(transport.get_extra_info("peername"), None);
    assert_eq!(transport.get_extra_info("sockname"), None);
    transport.close();
    assert_eq!(probe.until_lost().await, [Lost(None)]);
    assert_eq!(transport.with_socket(raw), None, "socket gone after loss");
    drop(done.await.expect("protocol"));
}

async fn unix_pair_feeds_a_buffered_protocol() {
    let (ours, mut theirs) = std_pair();
    let (transport, done) =
        create_connection_with_sock(|| Buffered(Collect::default()), ours, opts())
            .await
            .expect("create_connection_with_sock");
    assert!(!transport.is_closing());
    theirs.write_all(b"0123456789abcdef").await.expect("write");
    theirs.shutdown().await.expect("shutdown");
    let Buffered(collect) = done.await.expect("protocol");
    collect.assert_got(b"0123456789abcdef");
}

async fn connection_made_panic_closes_the_socket_and_fails_the_call() {
    let (ours, mut theirs) = std_pair();
    let rec = Recorder::default().on_event(|e, _| {
        if *e == Made {
            panic!("boom in connection_made");
        }
    });
    let log = rec.log();
    let (proto, mut probe) = tap(rec);
    let err = create_connection_with_sock(move || proto, ours, opts())
        .await
        .expect_err("connection_made panicked");
    match &err {
        Error::Protocol(CoreError::ProtocolPanicked {
            callback: Callback::ConnectionMade,
            message,
        }) => assert!(message.contains("boom in connection_made"), "{message}"),
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(
        *log.lock().unwrap(),
        [Made, Lost(Some(io::ErrorKind::Other))]
    );
    assert_eq!(probe.until_lost().await, [Lost(Some(io::ErrorKind::Other))]);
    probe.finished().await;
    // The socket was closed: the peer sees EOF.
    let mut rest = Vec::new();
    theirs.read_to_end(&mut rest).await.expect("read");
    assert!(rest.is_empty());
}

async fn std_tcp_stream_answers_with_socket_and_peer_addr() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    // Loopback connects complete in the kernel's backlog: neither call
    // blocks for long.
    let client = std::net::TcpStream::connect(addr).expect("connect");
    let (server_side, _) = listener.accept().expect("accept");
    let fd = client.as_raw_fd();
    let local = client.local_addr().expect("local_addr");
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = create_connection_with_sock(move || proto, client, opts())
        .await
        .expect("create_connection_with_sock");
    assert_eq!(probe.next().await, Made);
    assert_eq!(transport.kind(), "tcp");
    assert_eq!(transport.peer_addr(), Some(addr));
    assert_eq!(transport.local_addr(), Some(local));
    assert_eq!(
        transport.get_extra_info("peername"),
        Some(ExtraInfo::Addr(addr))
    );
    assert_eq!(transport.with_socket(raw), Some(fd));
    // asyncio sets TCP_NODELAY on every TCP transport, sock= ones included.
    let nodelay = transport.with_socket(|s| SockRef::from(&s).tcp_nodelay());
    assert!(nodelay.expect("socket open").expect("TCP_NODELAY"));

    server_side.set_nonblocking(true).expect("nonblocking");
    let mut server_side = TcpStream::from_std(server_side).expect("register");
    server_side.write_all(b"hi").await.expect("write");
    assert_eq!(probe.data(2).await, b"hi");
    transport.write("ho").expect("write");
    transport.close();
    let mut got = Vec::new();
    server_side.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"ho");
    assert_eq!(probe.until_lost().await, [Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn accepted_tokio_tcp_stream_reports_the_client_as_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (sock, peer) = listener.accept().await.expect("accept");
    assert_eq!(peer, client.local_addr().expect("local_addr"));
    let (proto, mut probe) = tap(echo());
    let (transport, done) = connect_accepted_socket(move || proto, sock, opts())
        .await
        .expect("connect_accepted_socket");
    assert_eq!(probe.next().await, Made);
    assert_eq!(transport.peer_addr(), Some(peer));
    assert_eq!(transport.local_addr(), Some(addr));
    client.write_all(b"ping").await.expect("write");
    client.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"ping");
    assert_eq!(
        probe.until_lost().await,
        [Data("ping".into()), Eof, Lost(None)]
    );
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn duplex_64_echoes_1_mb_in_order_then_closes_on_eof() {
    let (ours, theirs) = duplex(64);
    let (proto, mut probe) = tap(echo());
    let (_transport, done) = connect_stream(move || proto, ours, opts())
        .await
        .expect("connect_stream");
    assert_eq!(probe.next().await, Made);
    let data = payload(1 << 20, 11);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.expect("write");
        wr.shutdown().await.expect("shutdown");
        wr
    });
    let mut echoed = Vec::new();
    rd.read_to_end(&mut echoed).await.expect("read");
    let _wr = writer.await.expect("writer");
    assert_eq!(echoed.len(), data.len());
    assert_eq!(checksum(&echoed), checksum(&data));
    let events = without_flow_control(probe.until_lost().await);
    assert_eq!(events, [Data(data), Eof, Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn duplex_write_eof_gives_peer_eof_and_reading_goes_on() {
    let (ours, mut theirs) = duplex(64);
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = connect_stream(move || proto, ours, opts())
        .await
        .expect("connect_stream");
    assert_eq!(probe.next().await, Made);
    assert!(transport.can_write_eof());
    // More than the pipe holds: write_eof waits for the buffer to drain.
    let data = payload(1000, 3);
    transport.write(data.clone()).expect("write");
    transport.write_eof().expect("write_eof");
    assert!(!transport.is_closing());
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, data, "EOF after every byte");
    theirs.write_all(b"still reading").await.expect("write");
    assert_eq!(probe.data(13).await, b"still reading");
    drop(theirs);
    assert_eq!(probe.until_lost().await, [Eof, Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn duplex_peer_that_stops_reading_pauses_then_resumes_writing() {
    let (ours, mut theirs) = duplex(64);
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = connect_stream(move || proto, ours, opts())
        .await
        .expect("connect_stream");
    assert_eq!(probe.next().await, Made);
    // Over the 64 KiB high mark; the peer reads nothing yet, so the
    // writer is stuck on Pending after 64 bytes.
    let data = payload(100_000, 5);
    transport.write(data.clone()).expect("write");
    assert_eq!(probe.next().await, PauseWriting);
    assert!(transport.get_write_buffer_size() > 64 * 1024 - 64);
    let mut got = vec![0; data.len()];
    theirs.read_exact(&mut got).await.expect("read");
    assert_eq!(got, data);
    assert_eq!(probe.next().await, ResumeWriting);
    assert_eq!(transport.get_write_buffer_size(), 0);
    transport.close();
    assert_eq!(probe.until_lost().await, [Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn duplex_transport_has_no_socket_and_no_addresses() {
    let (ours, _theirs) = duplex(64);
    let (proto, mut probe) = tap(Recorder::default());
    let (transport, done) = connect_stream(move || proto, ours, opts())
        .await
        .expect("connect_stream");
    assert_eq!(probe.next().await, Made);
    assert_eq!(transport.kind(), "stream");
    assert_eq!(transport.with_socket(raw), None);
    assert_eq!(transport.get_extra_info("socket"), None);
    assert_eq!(transport.peer_addr(), None);
    assert_eq!(transport.local_addr(), None);
    transport.abort();
    assert_eq!(probe.until_lost().await, [Lost(None)]);
    drop(done.await.expect("protocol"));
    probe.finished().await;
}

async fn duplex_feeds_a_buffered_protocol() {
    let (ours, mut theirs) = duplex(5);
    let (_transport, done) = connect_stream(|| Buffered(Collect::default()), ours, opts())
        .await
        .expect("connect_stream");
    theirs.write_all(b"0123456789abcdef").await.expect("write");
    drop(theirs);
    let Buffered(collect) = done.await.expect("protocol");
    collect.assert_got(b"0123456789abcdef");
}

// ---------------------------------------------------------------------------
// Helpers.

fn raw(fd: BorrowedFd<'_>) -> RawFd {
    fd.as_raw_fd()
}

/// Checks that pause/resume alternate (starting with a pause, ending resumed)
/// and removes them, merging the data chunks they separated.
fn without_flow_control(events: Vec<Event>) -> Vec<Event> {
    let mut paused = false;
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match e {
            PauseWriting => {
                assert!(!paused, "two pauses in a row");
                paused = true;
            }
            ResumeWriting => {
                assert!(paused, "resume without pause");
                paused = false;
            }
            Data(d) => match out.last_mut() {
                Some(Data(prev)) => *prev = [&prev[..], &d[..]].concat().into(),
                _ => out.push(Data(d)),
            },
            e => out.push(e),
        }
    }
    assert!(!paused, "left paused");
    out
}

/// A buffered protocol with a 7-byte buffer that collects what it reads.
#[derive(Debug, Default)]
struct Collect {
    buf: [u8; 7],
    got: Vec<u8>,
    updates: Vec<usize>,
    made: bool,
    eof: bool,
    lost: Option<Option<io::ErrorKind>>,
}

impl Collect {
    fn assert_got(&self, want: &[u8]) {
        assert!(self.made, "connection_made");
        assert_eq!(self.got, want);
        assert!(self.updates.iter().all(|&n| (1..=7).contains(&n)));
        assert!(self.eof, "eof_received");
        assert_eq!(self.lost, Some(None), "connection_lost(None)");
    }
}

impl BaseProtocol for Collect {
    fn connection_made(&mut self, _transport: asyncproto_core::Transport) {
        self.made = true;
    }

    fn connection_lost(&mut self, exc: Option<CoreError>) {
        self.lost = Some(exc.map(|e| e.kind()));
    }
}

impl BufferedProtocol for Collect {
    fn get_buffer(&mut self, _sizehint: Option<usize>) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        self.updates.push(nbytes);
        self.got.extend_from_slice(&self.buf[..nbytes]);
    }

    fn eof_received(&mut self) -> bool {
        self.eof = true;
        false
    }
}
