//! Exact callback sequences on live connections: every way a connection
//! ends, half-close, panics, and extra info. Each test runs on both runtime
//! flavours.

use std::{io, net::SocketAddr, os::fd::AsRawFd};

use asyncproto_core::{
    Callback, Error as CoreError, ExtraInfo,
    testing::{Event, Recorder},
};
use asyncproto_tokio::{
    ConnectOptions, Error, Server, ServerOptions, create_connection, create_server,
};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Accepted, checksum, echo, linger_zero, on_both_runtimes, payload, raw_connect, read_to_end,
    tap, tapped_factory,
};

use Event::{Data, Eof, Lost, Made};

on_both_runtimes!(20;
    client_close_gives_server_data_eof_lost,
    server_close_gives_client_data_eof_lost,
    eof_false_closes_after_peer_half_close,
    eof_true_keeps_write_side_open,
    close_flushes_10_mb_before_fin_and_lost,
    abort_discards_buffer_and_reports_lost_none,
    peer_reset_reports_connection_reset_without_eof,
    connection_made_panic_fails_create_connection_and_reports_lost,
    data_received_panic_ends_only_that_connection,
    extra_info_answers_addresses_and_socket_until_lost,
    echo_1_mb_each_way_between_two_asyncproto_ends,
);

/// A server on 127.0.0.1:0 whose connections are tapped.
async fn tapped_server(
    make: impl Fn() -> Recorder + Send + Sync + 'static,
) -> (Server, SocketAddr, Accepted) {
    let (factory, accepted) = tapped_factory(make);
    let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    (server, addr, accepted)
}

async fn close_server(server: Server) {
    server.close();
    server.wait_closed().await;
}

fn write_then_close(data: &'static str) -> Recorder {
    Recorder::default().on_event(move |e, t| {
        if *e == Made {
            t.write(data).expect("write");
            t.close();
        }
    })
}

/// Sets a small `SO_SNDBUF` so the kernel absorbs little of what we write.
fn small_sndbuf(t: &asyncproto_core::Transport) {
    t.with_socket(|fd| SockRef::from(&fd).set_send_buffer_size(64 * 1024))
        .expect("socket open")
        .expect("SO_SNDBUF");
}

async fn client_close_gives_server_data_eof_lost() {
    let (server, addr, mut accepted) = tapped_server(Recorder::default).await;
    let (client, mut client_probe) = tap(write_then_close("hello"));
    let (transport, done) = create_connection(move || client, addr, ConnectOptions::new())
        .await
        .expect("connect");

    let client = done.await.expect("client protocol");
    assert_eq!(client.recorder().events(), [Made, Lost(None)]);
    assert_eq!(client_probe.until_lost().await, [Made, Lost(None)]);
    assert!(transport.is_closing());

    let mut conn = accepted.next().await;
    assert_eq!(
        conn.until_lost().await,
        [Made, Data("hello".into()), Eof, Lost(None)]
    );
    conn.finished().await;
    close_server(server).await;
}

async fn server_close_gives_client_data_eof_lost() {
    let (server, addr, mut accepted) = tapped_server(|| write_then_close("bye")).await;
    let (client, mut client_probe) = tap(Recorder::default());
    let (_transport, done) = create_connection(move || client, addr, ConnectOptions::new())
        .await
        .expect("connect");

    let mut conn = accepted.next().await;
    assert_eq!(conn.until_lost().await, [Made, Lost(None)]);
    conn.finished().await;

    assert_eq!(
        client_probe.until_lost().await,
        [Made, Data("bye".into()), Eof, Lost(None)]
    );
    let client = done.await.expect("client protocol");
    assert_eq!(client.recorder().data(), b"bye");
    close_server(server).await;
}

async fn eof_false_closes_after_peer_half_close() {
    let (server, addr, mut accepted) = tapped_server(Recorder::default).await;
    let mut peer = raw_connect(addr, None).await;
    peer.write_all(b"ping").await.expect("write");
    peer.shutdown().await.expect("shutdown(Write)");

    let mut conn = accepted.next().await;
    assert_eq!(
        conn.until_lost().await,
        [Made, Data("ping".into()), Eof, Lost(None)]
    );
    // eof_received() returned false: the server closed, so the peer sees FIN.
    assert_eq!(read_to_end(&mut peer).await, b"");
    conn.finished().await;
    close_server(server).await;
}

async fn eof_true_keeps_write_side_open() {
    let (server, addr, mut accepted) =
        tapped_server(|| Recorder::default().eof_returns(true)).await;
    let mut peer = raw_connect(addr, None).await;
    peer.write_all(b"ping").await.expect("write");
    peer.shutdown().await.expect("shutdown(Write)");

    let mut conn = accepted.next().await;
    let t = conn.made().await;
    assert_eq!(conn.data(4).await, b"ping");
    assert_eq!(conn.next().await, Eof);
    assert!(
        !t.is_closing(),
        "eof_received() -> true leaves the transport open"
    );

    // The write side still works after the peer's EOF...
    t.write("still here").expect("write after peer EOF");
    let mut buf = [0; 10];
    peer.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"still here");
    // ...until the protocol closes it: the rest, then FIN, then lost.
    t.write("bye").expect("write");
    t.close();
    assert_eq!(read_to_end(&mut peer).await, b"bye");
    assert_eq!(conn.next().await, Lost(None));
    conn.finished().await;
    close_server(server).await;
}

async fn close_flushes_10_mb_before_fin_and_lost() {
    const N: usize = 10 * 1024 * 1024;
    let data = payload(N, 1);
    let sent = data.clone();
    let (server, addr, mut accepted) = tapped_server(move || {
        let data = data.clone();
        Recorder::default().on_event(move |e, t| {
            if *e == Made {
                small_sndbuf(t);
                t.write(data.clone()).expect("write");
                t.close();
            }
        })
    })
    .await;
    // The peer does not read yet, and its small receive buffer (no
    // autotuning) keeps the kernels from absorbing the 10 MB.
    let mut peer = raw_connect(addr, Some(64 * 1024)).await;
    let mut conn = accepted.next().await;
    let t = conn.made().await;
    // 10 MB is over the default high-water mark (64 KiB).
    assert_eq!(conn.next().await, Event::PauseWriting);
    assert!(t.is_closing());
    let buffered = t.get_write_buffer_size();
    assert!(buffered > N / 2, "only {buffered} bytes still buffered");
    assert_eq!(
        conn.try_next(),
        None,
        "connection_lost before the buffer drained"
    );

    let got = read_to_end(&mut peer).await;
    assert_eq!(got.len(), N);
    assert_eq!(checksum(&got), checksum(&sent));
    // Draining while closing still resumes (asyncio's _write_ready), then
    // connection_lost comes after the last byte.
    assert_eq!(conn.next().await, Event::ResumeWriting);
    assert_eq!(conn.next().await, Lost(None));
    conn.finished().await;
    close_server(server).await;
}

async fn abort_discards_buffer_and_reports_lost_none() {
    const N: usize = 10 * 1024 * 1024;
    let data = payload(N, 2);
    let sent = data.clone();
    let (server, addr, mut accepted) = tapped_server(move || {
        let data = data.clone();
        Recorder::default().on_event(move |e, t| {
            if *e == Made {
                small_sndbuf(t);
                t.write(data.clone()).expect("write");
            }
        })
    })
    .await;
    let mut peer = raw_connect(addr, Some(64 * 1024)).await;
    let mut conn = accepted.next().await;
    let t = conn.made().await;
    assert_eq!(conn.next().await, Event::PauseWriting);
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert!(t.is_closing());
    assert_eq!(
        t.get_write_buffer_size(),
        0,
        "abort() discards the buffer at once"
    );
    assert_eq!(conn.next().await, Lost(None));
    conn.finished().await;

    // The peer gets what the kernel already had, then a plain EOF (no RST).
    let got = read_to_end(&mut peer).await;
    assert!(got.len() < N, "the whole buffer was sent despite abort()");
    assert_eq!(checksum(&got), checksum(&sent[..got.len()]));
    close_server(server).await;
}

async fn peer_reset_reports_connection_reset_without_eof() {
    let (server, addr, mut accepted) = tapped_server(Recorder::default).await;
    let mut peer = raw_connect(addr, None).await;
    peer.write_all(b"abc").await.expect("write");
    let mut conn = accepted.next().await;
    conn.made().await;
    assert_eq!(conn.data(3).await, b"abc");

    linger_zero(&peer);
    drop(peer); // RST
    assert_eq!(
        conn.next().await,
        Lost(Some(io::ErrorKind::ConnectionReset))
    );
    assert!(
        matches!(conn.lost_error(), Some(CoreError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset),
        "{:?}",
        conn.lost_error()
    );
    conn.finished().await;
    close_server(server).await;
}

async fn connection_made_panic_fails_create_connection_and_reports_lost() {
    let (server, addr, mut accepted) = tapped_server(Recorder::default).await;
    let rec = Recorder::default().on_event(|e, _| {
        if *e == Made {
            panic!("boom in connection_made");
        }
    });
    let log = rec.log();
    let (client, mut probe) = tap(rec);
    let err = create_connection(move || client, addr, ConnectOptions::new())
        .await
        .expect_err("connection_made panicked");
    match &err {
        Error::Protocol(CoreError::ProtocolPanicked {
            callback: Callback::ConnectionMade,
            message,
        }) => {
            assert!(message.contains("boom in connection_made"), "{message}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    // The protocol still got connection_lost, once, with the panic.
    assert_eq!(
        *log.lock().unwrap(),
        [Made, Lost(Some(io::ErrorKind::Other))]
    );
    assert_eq!(probe.until_lost().await, [Lost(Some(io::ErrorKind::Other))]);
    assert!(matches!(
        probe.lost_error(),
        Some(CoreError::ProtocolPanicked {
            callback: Callback::ConnectionMade,
            ..
        })
    ));
    probe.finished().await;

    // The server saw the aborted client go away.
    let mut conn = accepted.next().await;
    assert_eq!(conn.until_lost().await, [Made, Eof, Lost(None)]);
    close_server(server).await;
}

async fn data_received_panic_ends_only_that_connection() {
    let (server, addr, mut accepted) = tapped_server(|| {
        Recorder::default().on_event(|e, t| {
            if let Data(d) = e {
                assert!(&d[..] != b"boom", "boom in data_received");
                t.write(d.clone()).expect("echo");
            }
        })
    })
    .await;

    let mut a = raw_connect(addr, None).await;
    let mut conn_a = accepted.next().await;
    conn_a.made().await;
    let mut b = raw_connect(addr, None).await;
    let mut conn_b = accepted.next().await;
    conn_b.made().await;

    for (peer, msg) in [(&mut a, b"a1"), (&mut b, b"b1")] {
        peer.write_all(msg).await.expect("write");
        let mut buf = [0; 2];
        peer.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, msg);
    }

    a.write_all(b"boom").await.expect("write");
    assert_eq!(
        conn_a.until_lost().await,
        [Data("a1".into()), Lost(Some(io::ErrorKind::Other))]
    );
    assert!(matches!(
        conn_a.lost_error(),
        Some(CoreError::ProtocolPanicked {
            callback: Callback::DataReceived,
            ..
        })
    ));
    conn_a.finished().await;
    assert_eq!(
        read_to_end(&mut a).await,
        b"",
        "the panicking connection was closed"
    );

    // The other connection of the same server goes on echoing.
    b.write_all(b"b2").await.expect("write");
    let mut buf = [0; 2];
    b.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"b2");
    assert!(server.is_serving());
    drop(b);
    assert_eq!(
        conn_b.until_lost().await,
        [Data("b1b2".into()), Eof, Lost(None)]
    );
    close_server(server).await;
}

async fn extra_info_answers_addresses_and_socket_until_lost() {
    let (server, addr, mut accepted) = tapped_server(Recorder::default).await;
    let (client, mut probe) = tap(Recorder::default());
    let (t, done) = create_connection(move || client, addr, ConnectOptions::new())
        .await
        .expect("connect");
    let mut conn = accepted.next().await;
    let st = conn.made().await;

    let local = t.local_addr().expect("local_addr");
    assert_eq!(t.peer_addr(), Some(addr));
    assert_eq!(t.get_extra_info("peername"), Some(ExtraInfo::Addr(addr)));
    assert_eq!(t.get_extra_info("sockname"), Some(ExtraInfo::Addr(local)));
    assert_eq!(st.get_extra_info("peername"), Some(ExtraInfo::Addr(local)));
    assert_eq!(st.get_extra_info("sockname"), Some(ExtraInfo::Addr(addr)));
    let fd = t
        .with_socket(|fd| fd.as_raw_fd())
        .expect("socket while open");
    assert_eq!(t.get_extra_info("socket"), Some(ExtraInfo::Fd(fd)));
    assert!(matches!(
        st.get_extra_info("socket"),
        Some(ExtraInfo::Fd(_))
    ));
    assert_eq!(t.get_extra_info("no such key"), None);

    t.close();
    assert_eq!(probe.until_lost().await, [Made, Lost(None)]);
    drop(done.await.expect("client protocol"));
    assert_eq!(conn.until_lost().await, [Eof, Lost(None)]);

    // After the loss: no socket, but the addresses are still answered.
    for (tr, peer, sock) in [(&t, addr, local), (&st, local, addr)] {
        assert_eq!(tr.get_extra_info("socket"), None);
        assert_eq!(tr.with_socket(|fd| fd.as_raw_fd()), None);
        assert_eq!(tr.get_extra_info("peername"), Some(ExtraInfo::Addr(peer)));
        assert_eq!(tr.get_extra_info("sockname"), Some(ExtraInfo::Addr(sock)));
        assert_eq!(tr.peer_addr(), Some(peer));
        assert_eq!(tr.local_addr(), Some(sock));
    }
    close_server(server).await;
}

async fn echo_1_mb_each_way_between_two_asyncproto_ends() {
    const N: usize = 1024 * 1024;
    let (server, addr, mut accepted) = tapped_server(echo).await;
    let data = payload(N, 3);
    let sent = data.clone();
    let client = Recorder::default().on_event(move |e, t| {
        if *e == Made {
            t.write(data.clone()).expect("write");
            t.write_eof().expect("write_eof");
        }
    });
    let (_t, done) = create_connection(move || client, addr, ConnectOptions::new())
        .await
        .expect("connect");
    let client = done.await.expect("client protocol");
    assert_echoed(&client.events(), &sent);
    let mut conn = accepted.next().await;
    let mut server_events = Vec::new();
    loop {
        let e = conn.next().await;
        let lost = matches!(e, Lost(_));
        server_events.push(e);
        if lost {
            break;
        }
    }
    assert_echoed(&server_events, &sent);
    close_server(server).await;
}

/// `events` is `Made`, data (with any pause/resume edges) equal to `sent`,
/// `Eof`, `Lost(None)`.
fn assert_echoed(events: &[Event], sent: &[u8]) {
    assert_eq!(events.first(), Some(&Made));
    assert_eq!(events[events.len() - 2..], [Eof, Lost(None)]);
    let mut got = Vec::with_capacity(sent.len());
    for e in &events[1..events.len() - 2] {
        match e {
            Data(d) => got.extend_from_slice(d),
            Event::PauseWriting | Event::ResumeWriting => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got.len(), sent.len());
    assert_eq!(checksum(&got), checksum(sent));
}
