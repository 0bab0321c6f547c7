//! A panic in any protocol callback ends only that connection.
//!
//! On a server, connection A's protocol panics in one callback while
//! connection B of the same server is open. A must end with
//! `connection_lost(Some(ProtocolPanicked { callback, .. }))` naming that
//! callback, and nothing after it; a panic in `connection_lost` itself just
//! drops the protocol. B keeps echoing, and a new connection is served.
//!
//! The ERROR event each panic logs is not asserted here: this binary's
//! global subscriber is `support`'s formatter, and per-thread scoped
//! subscribers miss events when tests run in parallel.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use asyncproto_core::{
    Callback, Error as CoreError,
    testing::{Event, Recorder},
};
use asyncproto_tokio::{Server, ServerOptions, create_server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{Accepted, Probe, echo, on_both_runtimes, raw_connect, tapped_factory};

use Event::{Data, Eof, Lost, PauseWriting, ResumeWriting};

on_both_runtimes!(20;
    panic_in_connection_made_ends_only_its_connection,
    panic_in_data_received_ends_only_its_connection,
    panic_in_eof_received_ends_only_its_connection,
    panic_in_pause_writing_ends_only_its_connection,
    panic_in_resume_writing_ends_only_its_connection,
    panic_in_connection_lost_drops_only_its_protocol,
);

/// What the protocol writes back for a chunk containing `!`: far over the
/// default high-water mark, so `pause_writing` follows.
const BIG: usize = 1 << 20;

/// The callback a [`Recorder`] event comes from.
fn callback_of(e: &Event) -> Callback {
    match e {
        Event::Made => Callback::ConnectionMade,
        Data(_) => Callback::DataReceived,
        Eof => Callback::EofReceived,
        PauseWriting => Callback::PauseWriting,
        ResumeWriting => Callback::ResumeWriting,
        Lost(_) => Callback::ConnectionLost,
    }
}

/// An echo that panics in `at`, and answers a chunk containing `!` with
/// [`BIG`] bytes.
fn panics_in(at: Callback) -> Recorder {
    Recorder::default().on_event(move |e, t| {
        if callback_of(e) == at {
            panic!("boom in {at}");
        }
        if let Data(d) = e {
            if d.contains(&b'!') {
                t.write(vec![b'x'; BIG]).expect("write");
            } else {
                t.write(d.clone()).expect("echo");
            }
        }
    })
}

/// A recorder's shared event log.
type Log = Arc<Mutex<Vec<Event>>>;

/// A server whose second connection panics in `at`; the others echo. The
/// slot receives the panicking protocol's log, readable after the protocol
/// is dropped.
async fn server_panicking_in(
    at: Callback,
) -> (Server, SocketAddr, Accepted, Arc<Mutex<Option<Log>>>) {
    let count = AtomicUsize::new(0);
    let slot = Arc::new(Mutex::new(None));
    let fill = Arc::clone(&slot);
    let (factory, accepted) = tapped_factory(move || {
        if count.fetch_add(1, Ordering::SeqCst) == 1 {
            let rec = panics_in(at);
            *fill.lock().expect("log slot") = Some(rec.log());
            rec
        } else {
            echo()
        }
    });
    let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    (server, addr, accepted, slot)
}

/// Writes `msg` and reads its echo.
async fn assert_echoes(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.expect("write");
    let mut buf = vec![0; msg.len()];
    stream.read_exact(&mut buf).await.expect("read echo");
    assert_eq!(buf, msg);
}

/// Reads until the server has closed (EOF) or reset the connection.
async fn until_closed(stream: &mut TcpStream) -> usize {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Asserts that connection A ended with a panic in `at`, and that nothing
/// came after `connection_lost`.
async fn assert_panicked(conn: &mut Probe, before: &[Event], at: Callback) {
    let mut expected = before.to_vec();
    expected.push(Lost(Some(io::ErrorKind::Other)));
    assert_eq!(conn.until_lost().await, expected, "{at}");
    match conn.lost_error() {
        Some(CoreError::ProtocolPanicked { callback, message }) => {
            assert_eq!(*callback, at);
            assert_eq!(*message, format!("boom in {at}"));
        }
        other => panic!("expected a panic in {at}: {other:?}"),
    }
    conn.finished().await;
}

/// Connection B (opened first) still echoes, a new connection is served,
/// and B then closes in order.
async fn others_still_served(
    server: Server,
    addr: SocketAddr,
    accepted: &mut Accepted,
    mut b: TcpStream,
    mut conn_b: Probe,
) {
    assert_echoes(&mut b, b"b2").await;
    assert!(server.is_serving());
    let mut c = raw_connect(addr, None).await;
    let mut conn_c = accepted.next().await;
    conn_c.made().await;
    assert_echoes(&mut c, b"c1").await;
    drop((b, c));
    assert_eq!(
        conn_b.until_lost().await,
        [Data("b1b2".into()), Eof, Lost(None)]
    );
    assert_eq!(
        conn_c.until_lost().await,
        [Data("c1".into()), Eof, Lost(None)]
    );
    server.close();
    server.wait_closed().await;
    assert_eq!(server.active_connections(), 0);
}

/// Opens connection B and checks it echoes, then opens connection A.
async fn open_b_then_a(
    addr: SocketAddr,
    accepted: &mut Accepted,
) -> (TcpStream, Probe, TcpStream, Probe) {
    let mut b = raw_connect(addr, None).await;
    let mut conn_b = accepted.next().await;
    conn_b.made().await;
    assert_echoes(&mut b, b"b1").await;
    let a = raw_connect(addr, None).await;
    let conn_a = accepted.next().await;
    (b, conn_b, a, conn_a)
}

async fn panic_in_connection_made_ends_only_its_connection() {
    let at = Callback::ConnectionMade;
    let (server, addr, mut accepted, _) = server_panicking_in(at).await;
    let (b, conn_b, mut a, mut conn_a) = open_b_then_a(addr, &mut accepted).await;
    // The panic comes before the tap could forward connection_made.
    assert_panicked(&mut conn_a, &[], at).await;
    assert_eq!(until_closed(&mut a).await, 0);
    others_still_served(server, addr, &mut accepted, b, conn_b).await;
}

async fn panic_in_data_received_ends_only_its_connection() {
    let at = Callback::DataReceived;
    let (server, addr, mut accepted, _) = server_panicking_in(at).await;
    let (b, conn_b, mut a, mut conn_a) = open_b_then_a(addr, &mut accepted).await;
    conn_a.made().await;
    a.write_all(b"a").await.expect("write");
    assert_panicked(&mut conn_a, &[], at).await;
    assert_eq!(until_closed(&mut a).await, 0);
    others_still_served(server, addr, &mut accepted, b, conn_b).await;
}

async fn panic_in_eof_received_ends_only_its_connection() {
    let at = Callback::EofReceived;
    let (server, addr, mut accepted, _) = server_panicking_in(at).await;
    let (b, conn_b, mut a, mut conn_a) = open_b_then_a(addr, &mut accepted).await;
    conn_a.made().await;
    assert_echoes(&mut a, b"a").await;
    a.shutdown().await.expect("shutdown");
    assert_panicked(&mut conn_a, &[Data("a".into())], at).await;
    assert_eq!(until_closed(&mut a).await, 0);
    others_still_served(server, addr, &mut accepted, b, conn_b).await;
}

async fn panic_in_pause_writing_ends_only_its_connection() {
    let at = Callback::PauseWriting;
    let (server, addr, mut accepted, _) = server_panicking_in(at).await;
    let (b, conn_b, mut a, mut conn_a) = open_b_then_a(addr, &mut accepted).await;
    conn_a.made().await;
    // pause_writing runs right after the callback that wrote BIG, before
    // any of it is sent.
    a.write_all(b"!").await.expect("write");
    assert_panicked(&mut conn_a, &[Data("!".into())], at).await;
    assert_eq!(until_closed(&mut a).await, 0, "the buffer was discarded");
    others_still_served(server, addr, &mut accepted, b, conn_b).await;
}

async fn panic_in_resume_writing_ends_only_its_connection() {
    let at = Callback::ResumeWriting;
    let (server, addr, mut accepted, _) = server_panicking_in(at).await;
    let (b, conn_b, mut a, mut conn_a) = open_b_then_a(addr, &mut accepted).await;
    conn_a.made().await;
    a.write_all(b"!").await.expect("write");
    assert_eq!(conn_a.next().await, Data("!".into()));
    assert_eq!(conn_a.next().await, PauseWriting);
    // Reading drains the buffer to the low mark: resume_writing panics and
    // what is left of the buffer (maybe nothing) is discarded.
    let reader = tokio::spawn(async move { until_closed(&mut a).await });
    assert_panicked(&mut conn_a, &[], at).await;
    assert!(reader.await.expect("reader") <= BIG);
    others_still_served(server, addr, &mut accepted, b, conn_b).await;
}

async fn panic_in_connection_lost_drops_only_its_protocol() {
    let at = Callback::ConnectionLost;
    let (server, addr, mut accepted, slot) = server_panicking_in(at).await;
    let (b, conn_b, mut a, mut conn_a) = open_b_then_a(addr, &mut accepted).await;
    conn_a.made().await;
    assert_echoes(&mut a, b"a").await;
    a.shutdown().await.expect("shutdown");
    assert_eq!(conn_a.next().await, Data("a".into()));
    assert_eq!(conn_a.next().await, Eof);
    // connection_lost(None) ran, once, and panicked before the tap could
    // forward it: the protocol is dropped with no further callback.
    conn_a.finished().await;
    let log = slot.lock().expect("log slot").clone().expect("made");
    assert_eq!(
        *log.lock().expect("log"),
        [Event::Made, Data("a".into()), Eof, Lost(None)]
    );
    assert_eq!(until_closed(&mut a).await, 0);
    others_still_served(server, addr, &mut accepted, b, conn_b).await;
}
