//! `Server`: serving, closing, draining its connections, and many
//! connections at once.

use std::{
    pin::pin,
    sync::Arc,
    time::{Duration, Instant},
};

use asyncproto_core::testing::{Event, Recorder};
use asyncproto_tokio::{ConnectOptions, Error, ServerOptions, create_connection, create_server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Barrier,
    task::JoinSet,
};

use crate::support::{
    echo, on_both_runtimes, poll_once, raise_nofile, raw_connect, read_to_end, refused,
    tapped_factory, within,
};

use Event::{Lost, Made};

on_both_runtimes!(30;
    thousand_concurrent_connections_each_get_their_own_echo,
    close_clients_flushes_then_ends_connections,
    abort_clients_ends_connections_and_wait_closed_returns,
);

/// Writes `msg` on `stream` and reads the echo back.
async fn assert_echoes(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.expect("write");
    let mut buf = vec![0; msg.len()];
    stream.read_exact(&mut buf).await.expect("read echo");
    assert_eq!(buf, msg);
}

#[tokio::test]
async fn start_serving_false_refuses_connects_until_started() {
    within(10, async {
        let server = create_server(
            echo,
            "127.0.0.1:0",
            ServerOptions::new().start_serving(false),
        )
        .await
        .expect("create_server");
        let addr = server.local_addrs()[0];
        assert_ne!(addr.port(), 0, "bound even when not serving");
        assert!(!server.is_serving());
        assert!(refused(addr).await, "bound but not listening");

        server.start_serving().expect("start_serving");
        assert!(server.is_serving());
        let mut peer = TcpStream::connect(addr)
            .await
            .expect("connect after start_serving");
        assert_echoes(&mut peer, b"hi").await;
        drop(peer);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

#[tokio::test]
async fn serve_forever_on_a_closed_server_is_server_closed() {
    within(10, async {
        let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        server.close();
        assert!(matches!(
            server.serve_forever().await,
            Err(Error::ServerClosed)
        ));
        assert!(matches!(server.start_serving(), Err(Error::ServerClosed)));
        server.wait_closed().await;
    })
    .await;
}

#[tokio::test]
async fn serve_forever_twice_is_already_serving() {
    within(10, async {
        let server = create_server(
            echo,
            "127.0.0.1:0",
            ServerOptions::new().start_serving(false),
        )
        .await
        .expect("create_server");
        let mut first = pin!(server.serve_forever());
        assert!(
            poll_once(first.as_mut()).await.is_none(),
            "serve_forever returned early"
        );
        assert!(server.is_serving());
        assert!(matches!(
            server.serve_forever().await,
            Err(Error::AlreadyServing)
        ));
        assert!(
            server.is_serving(),
            "the failed call left the first one serving"
        );

        server.close();
        assert!(matches!(first.await, Ok(())), "close() ends serve_forever");
        server.wait_closed().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_serve_forever_closes_the_server() {
    within(10, async {
        let server = create_server(
            echo,
            "127.0.0.1:0",
            ServerOptions::new().start_serving(false),
        )
        .await
        .expect("create_server");
        let addr = server.local_addrs()[0];
        let mut peer = {
            let mut serving = pin!(server.serve_forever());
            assert!(poll_once(serving.as_mut()).await.is_none());
            assert!(server.is_serving());
            let mut peer = TcpStream::connect(addr).await.expect("connect");
            assert_echoes(&mut peer, b"one").await;
            peer
        };
        assert!(!server.is_serving());
        assert!(server.local_addrs().is_empty());
        assert!(refused(addr).await, "the listener closed with the future");
        assert!(matches!(
            server.serve_forever().await,
            Err(Error::ServerClosed)
        ));

        // The accepted connection outlives the listener (asyncio: close()
        // leaves connections open).
        assert_echoes(&mut peer, b"two").await;
        drop(peer);
        server.wait_closed().await;
    })
    .await;
}

async fn close_clients_flushes_then_ends_connections() {
    let (factory, mut accepted) = tapped_factory(|| {
        Recorder::default().on_event(|e, t| {
            if *e == Made {
                t.write("hello").expect("write");
            }
        })
    });
    let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    let mut peers = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..2 {
        peers.push(raw_connect(addr, None).await);
        let mut conn = accepted.next().await;
        conn.made().await;
        conns.push(conn);
    }
    server.close();
    let mut waiting = pin!(server.wait_closed());
    assert!(
        poll_once(waiting.as_mut()).await.is_none(),
        "clients are still connected"
    );
    assert_eq!(server.active_connections(), 2);

    server.close_clients();
    for (peer, conn) in peers.iter_mut().zip(&mut conns) {
        assert_eq!(read_to_end(peer).await, b"hello", "flushed, then FIN");
        assert_eq!(conn.until_lost().await, [Lost(None)]);
    }
    waiting.await;
    assert_eq!(server.active_connections(), 0);
}

async fn abort_clients_ends_connections_and_wait_closed_returns() {
    let (factory, mut accepted) = tapped_factory(Recorder::default);
    let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    let mut peer = raw_connect(addr, None).await;
    let mut conn = accepted.next().await;
    let t = conn.made().await;

    server.close();
    let mut waiting = pin!(server.wait_closed());
    assert!(poll_once(waiting.as_mut()).await.is_none());
    server.abort_clients();
    assert!(t.is_closing());
    assert_eq!(conn.until_lost().await, [Lost(None)]);
    waiting.await;
    assert_eq!(read_to_end(&mut peer).await, b"");
}

#[tokio::test]
async fn shutdown_aborts_a_connection_whose_peer_never_reads_at_the_deadline() {
    within(10, async {
        const DEADLINE: Duration = Duration::from_millis(300);
        let (factory, mut accepted) = tapped_factory(|| {
            Recorder::default().on_event(|e, t| {
                if *e == Made {
                    t.write("hi").expect("write");
                }
            })
        });
        let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let addr = server.local_addrs()[0];

        // A well-behaved idle peer, and one that never reads while the server
        // has 16 MB for it.
        let mut idle = raw_connect(addr, None).await;
        let mut idle_conn = accepted.next().await;
        idle_conn.made().await;
        let _stuck = raw_connect(addr, Some(64 * 1024)).await;
        let mut stuck_conn = accepted.next().await;
        let t = stuck_conn.made().await;
        t.write(vec![0u8; 16 << 20]).expect("write");
        assert_eq!(stuck_conn.next().await, Event::PauseWriting);

        let start = Instant::now();
        server.shutdown(DEADLINE).await;
        let took = start.elapsed();
        assert!(
            took >= DEADLINE,
            "aborted after {took:?}, before the deadline"
        );

        assert!(!server.is_serving());
        assert_eq!(server.active_connections(), 0);
        assert_eq!(
            read_to_end(&mut idle).await,
            b"hi",
            "the idle peer was closed gracefully"
        );
        assert_eq!(idle_conn.until_lost().await, [Lost(None)]);
        assert_eq!(
            stuck_conn.until_lost().await,
            [Lost(None)],
            "aborted: no resume, no error"
        );
        assert_eq!(t.get_write_buffer_size(), 0);
        server.wait_closed().await;
    })
    .await;
}

async fn thousand_concurrent_connections_each_get_their_own_echo() {
    const CONNS: usize = 1000;
    // Two descriptors per connection in this process, plus the runtime's.
    raise_nofile(4096);
    let server = create_server(echo, "127.0.0.1:0", ServerOptions::new().backlog(1024))
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    // Every client connects first, so all 1,000 are open at once.
    let barrier = Arc::new(Barrier::new(CONNS));
    let mut clients = JoinSet::new();
    for i in 0..CONNS {
        let barrier = Arc::clone(&barrier);
        clients.spawn(async move {
            let msg = format!("client {i} says {}", "x".repeat(i % 97));
            let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
                .await
                .expect("connect");
            barrier.wait().await;
            t.write(msg.clone()).expect("write");
            t.write_eof().expect("write_eof");
            let rec = done.await.expect("client protocol");
            assert_eq!(rec.data(), msg.as_bytes(), "client {i} got another's echo");
            assert_eq!(rec.events().last(), Some(&Lost(None)));
        });
    }
    while let Some(res) = clients.join_next().await {
        res.expect("client task");
    }
    server.close();
    server.wait_closed().await;
    assert_eq!(server.active_connections(), 0);
}
