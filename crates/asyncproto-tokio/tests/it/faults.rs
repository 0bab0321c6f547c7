//! An asyncproto echo server and client talking through a misbehaving
//! network ([`FaultProxy`]).
//!
//! The client writes a pseudo-random payload, then `write_eof()`, and
//! collects what comes back. Where the network still delivers (delay,
//! split, coalesce, stall) the echo must be the payload exactly; where it
//! breaks the stream (half-close, cut, reset) each end must get a prefix of
//! what was sent, nothing invented, and the `connection_lost` that matches:
//! `None` after an orderly close, `ConnectionReset`/`BrokenPipe` after a
//! reset. After every fault the same server still echoes a new client.

use std::{io, net::SocketAddr, time::Duration};

use asyncproto_core::{
    Bytes,
    testing::{Event, Recorder},
};
use asyncproto_testkit::{Direction, Fault, FaultProxy};
use asyncproto_tokio::{ConnectOptions, ServerOptions, create_connection, create_server};

use crate::support::{Accepted, checksum, echo, on_both_runtimes, payload, tapped_factory};

use Event::{Eof, Lost, Made};

on_both_runtimes!(20;
    delay_delivers_the_whole_echo,
    split_bytes_delivers_the_whole_echo,
    coalesce_delivers_the_whole_echo,
    stall_delivers_the_whole_echo,
    half_close_toward_server_echoes_exactly_the_prefix_then_closes,
    half_close_toward_client_ends_its_echo_early_and_closes,
    cut_after_gives_prefixes_and_orderly_closes,
    reset_gives_prefixes_and_connection_reset_on_both_ends,
);

const LEN: usize = 256 * 1024;

/// What each end saw of one connection through the proxy.
struct Ends {
    sent: Bytes,
    /// The client's callbacks, in order.
    client: Vec<Event>,
    /// The server connection's callbacks, in order.
    server: Vec<Event>,
}

impl Ends {
    fn client_data(&self) -> Vec<u8> {
        data_of(&self.client)
    }

    fn server_data(&self) -> Vec<u8> {
        data_of(&self.server)
    }
}

fn data_of(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data(d) => Some(&d[..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

/// The events other than data and flow control (the order of those two is
/// up to the network).
fn edges(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| matches!(e, Made | Eof | Lost(_)))
        .cloned()
        .collect()
}

/// Asserts that `got` is `sent[..expected_len]` (by length and checksum, so
/// a failure does not print 256 KiB).
#[track_caller]
fn assert_exact(what: &str, got: &[u8], sent: &[u8], expected_len: usize) {
    assert_eq!(got.len(), expected_len, "{what}: byte count");
    assert!(
        checksum(got) == checksum(&sent[..expected_len]),
        "{what}: bytes differ from what was sent"
    );
}

/// Asserts that `got` is a prefix of `sent` of at most `max` bytes.
#[track_caller]
fn assert_prefix(what: &str, got: &[u8], sent: &[u8], max: usize) {
    assert!(
        got.len() <= max,
        "{what}: {} bytes, more than the {max} the network let through",
        got.len()
    );
    assert_exact(what, got, sent, got.len());
}

/// Whether `kind` is what a reset looks like to the end that got it: on a
/// read, `ConnectionReset`; on a write, `ConnectionReset` or `BrokenPipe`.
fn is_reset(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// A client that writes `data` and half-closes as soon as it is connected.
fn sender(data: Bytes) -> Recorder {
    Recorder::default().on_event(move |e, t| {
        if *e == Made {
            t.write(data.clone()).expect("write");
            t.write_eof().expect("write_eof");
        }
    })
}

/// Runs one client through a proxy with `fault` in front of an echo server,
/// then checks the server still echoes a direct client and that neither
/// the proxy nor the server keeps a task behind.
async fn through(fault: Fault, len: usize) -> Ends {
    let (factory, mut accepted) = tapped_factory(echo);
    let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    let proxy = FaultProxy::start(addr, fault).expect("proxy");

    let sent = payload(len, 3);
    let data = sent.clone();
    let (_t, done) = create_connection(move || sender(data), proxy.addr(), ConnectOptions::new())
        .await
        .expect("connect through the proxy");
    let mut conn = accepted.next().await;
    let server_events = conn.until_lost().await;
    conn.finished().await;
    let client = done.await.expect("client protocol").events();
    // Exactly one connection_lost on each end, and it is the last callback.
    for (end, events) in [("client", &client), ("server", &server_events)] {
        let losts = events.iter().filter(|e| matches!(e, Lost(_))).count();
        assert_eq!(losts, 1, "{fault:?}: {end}: {:?}", edges(events));
        assert!(matches!(events.last(), Some(Lost(_))), "{fault:?}: {end}");
    }
    proxy.wait_idle().await;
    drop(proxy);

    clean_echo(addr, &mut accepted).await;
    server.close();
    server.wait_closed().await;
    assert_eq!(server.active_connections(), 0);
    Ends {
        sent,
        client,
        server: server_events,
    }
}

/// A direct client gets its whole echo from the server.
async fn clean_echo(addr: SocketAddr, accepted: &mut Accepted) {
    let sent = payload(16 * 1024, 4);
    let data = sent.clone();
    let (_t, done) = create_connection(move || sender(data), addr, ConnectOptions::new())
        .await
        .expect("connect directly");
    let mut conn = accepted.next().await;
    assert_eq!(edges(&conn.until_lost().await), [Made, Eof, Lost(None)]);
    let client = done.await.expect("client protocol").events();
    assert_exact("clean echo", &data_of(&client), &sent, sent.len());
    assert_eq!(edges(&client), [Made, Eof, Lost(None)]);
}

/// The network delivered everything: both ends got it all, in order, and
/// closed in order.
#[track_caller]
fn assert_whole_echo(ends: &Ends) {
    assert_exact("server", &ends.server_data(), &ends.sent, ends.sent.len());
    assert_exact("client", &ends.client_data(), &ends.sent, ends.sent.len());
    assert_eq!(edges(&ends.server), [Made, Eof, Lost(None)]);
    assert_eq!(edges(&ends.client), [Made, Eof, Lost(None)]);
}

async fn delay_delivers_the_whole_echo() {
    assert_whole_echo(&through(Fault::Delay(Duration::from_millis(2)), LEN).await);
}

async fn split_bytes_delivers_the_whole_echo() {
    // One write per byte each way: 256 KiB takes ~11 s in a debug build;
    // 64 KiB (~3 s) still spans many reads and a pause/resume cycle.
    assert_whole_echo(&through(Fault::SplitBytes, 64 * 1024).await);
}

async fn coalesce_delivers_the_whole_echo() {
    assert_whole_echo(&through(Fault::Coalesce(Duration::from_millis(20)), LEN).await);
}

async fn stall_delivers_the_whole_echo() {
    let fault = Fault::Stall {
        after: 100 * 1024,
        for_: Duration::from_millis(300),
    };
    assert_whole_echo(&through(fault, LEN).await);
}

async fn half_close_toward_server_echoes_exactly_the_prefix_then_closes() {
    const AFTER: usize = 100_000;
    let fault = Fault::HalfClose {
        dir: Direction::ToServer,
        after: AFTER,
    };
    let ends = through(fault, LEN).await;
    // The server got exactly what the network let through, then EOF; it
    // echoed all of it (the way back is intact) and closed in order.
    assert_exact("server", &ends.server_data(), &ends.sent, AFTER);
    assert_eq!(edges(&ends.server), [Made, Eof, Lost(None)]);
    assert_exact("client", &ends.client_data(), &ends.sent, AFTER);
    assert_eq!(edges(&ends.client), [Made, Eof, Lost(None)]);
}

async fn half_close_toward_client_ends_its_echo_early_and_closes() {
    const AFTER: usize = 100_000;
    let fault = Fault::HalfClose {
        dir: Direction::ToClient,
        after: AFTER,
    };
    let ends = through(fault, LEN).await;
    // The client reads EOF after AFTER bytes of echo and closes; its close
    // still flushes the rest of its payload, so the server gets all of it.
    assert_exact("client", &ends.client_data(), &ends.sent, AFTER);
    assert_eq!(edges(&ends.client), [Made, Eof, Lost(None)]);
    assert_exact("server", &ends.server_data(), &ends.sent, LEN);
    assert_eq!(edges(&ends.server), [Made, Eof, Lost(None)]);
}

async fn cut_after_gives_prefixes_and_orderly_closes() {
    const AFTER: usize = 100_000;
    let ends = through(Fault::CutAfter(AFTER), LEN).await;
    // The echo cannot run ahead of the upload, so the cut fires on the way
    // to the server, after exactly AFTER bytes.
    assert_exact("server", &ends.server_data(), &ends.sent, AFTER);
    assert_eq!(edges(&ends.server), [Made, Eof, Lost(None)]);
    assert_prefix("client", &ends.client_data(), &ends.sent, AFTER);
    assert_eq!(edges(&ends.client), [Made, Eof, Lost(None)]);
}

async fn reset_gives_prefixes_and_connection_reset_on_both_ends() {
    const AFTER: usize = 100_000;
    let ends = through(Fault::Reset { after: AFTER }, LEN).await;
    assert_prefix("server", &ends.server_data(), &ends.sent, AFTER);
    assert_prefix("client", &ends.client_data(), &ends.sent, AFTER);
    for (end, events) in [("server", &ends.server), ("client", &ends.client)] {
        match edges(events).as_slice() {
            // No eof_received: a reset is not an EOF.
            [Made, Lost(Some(kind))] => assert!(is_reset(*kind), "{end}: {kind:?}"),
            other => panic!("{end}: expected made, then lost with a reset: {other:?}"),
        }
    }
}
