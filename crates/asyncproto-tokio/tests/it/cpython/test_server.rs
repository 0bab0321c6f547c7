//! `Lib/test/test_asyncio/test_server.py`.

mod test_server2 {
    use std::pin::pin;

    use asyncproto_core::testing::{Event, Recorder};
    use asyncproto_tokio::{ConnectOptions, ServerOptions, create_connection, create_server};

    use crate::{
        flow::tiny_sndbuf,
        support::{poll_once, raw_connect, tap, tapped_factory, within},
    };

    /// Port of CPython main (`001c286`)
    /// `test_server.py::TestServer2::test_wait_closed_basic` (the 3.12.1+ rule).
    ///
    /// Upstream checks `task.done()` after `sleep(0)`; the port polls each
    /// `wait_closed()` future once instead. The client is an asyncproto
    /// connection; the server's protocol closes on the client's EOF as the
    /// upstream handler does.
    #[tokio::test]
    async fn test_wait_closed_basic() {
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let srv = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");

            // active count = 0, not closed: should block
            let mut task1 = pin!(srv.wait_closed());
            assert!(poll_once(task1.as_mut()).await.is_none());

            // active count != 0, not closed: should block
            let addr = srv.local_addrs()[0];
            let (wr, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
                .await
                .expect("connect");
            let mut conn = accepted.next().await;
            conn.made().await;
            let mut task2 = pin!(srv.wait_closed());
            assert!(poll_once(task1.as_mut()).await.is_none());
            assert!(poll_once(task2.as_mut()).await.is_none());

            srv.close();
            // active count != 0, closed: should block
            let mut task3 = pin!(srv.wait_closed());
            assert!(poll_once(task1.as_mut()).await.is_none());
            assert!(poll_once(task2.as_mut()).await.is_none());
            assert!(poll_once(task3.as_mut()).await.is_none());

            wr.close();
            drop(done.await.expect("client protocol"));
            // active count == 0, closed: should unblock
            task1.await;
            task2.await;
            task3.await;
            assert!(
                poll_once(pin!(srv.wait_closed())).await.is_some(),
                "returns immediately"
            );
            assert_eq!(conn.until_lost().await, [Event::Eof, Event::Lost(None)]);
        })
        .await;
    }

    /// Port of CPython main (`001c286`) `test_server.py::TestServer2::test_abort_clients`
    /// (asyncio 3.13).
    ///
    /// Both ends are asyncproto. The client pauses reading in
    /// `connection_made` instead of filling a `StreamReader`; the server fills
    /// its buffer in one write and the port waits for its `pause_writing`
    /// instead of polling `get_write_buffer_size()`.
    #[tokio::test]
    async fn test_abort_clients() {
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let srv = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = srv.local_addrs()[0];

            let client = Recorder::default().on_event(|e, t| {
                if *e == Event::Made {
                    t.with_socket(|fd| socket2::SockRef::from(&fd).set_recv_buffer_size(65536))
                        .expect("socket open")
                        .expect("SO_RCVBUF");
                    t.pause_reading();
                }
            });
            let (client, mut c_probe) = tap(client);
            let (c_wr, done) = create_connection(move || client, addr, ConnectOptions::new())
                .await
                .expect("connect");
            assert!(!c_wr.is_reading());
            assert_eq!(c_probe.next().await, Event::Made);

            let mut conn = accepted.next().await;
            let s_wr = conn.made().await;
            tiny_sndbuf(&s_wr);
            s_wr.write(vec![b'a'; 16 << 20]).expect("write");
            assert_eq!(conn.next().await, Event::PauseWriting);
            assert_ne!(s_wr.get_write_buffer_size(), 0);

            let mut task = pin!(srv.wait_closed());
            assert!(poll_once(task.as_mut()).await.is_none());

            srv.close();
            srv.abort_clients();
            task.await;
            assert_eq!(conn.until_lost().await, [Event::Lost(None)]);

            c_wr.abort();
            let client = done.await.expect("client protocol");
            assert_eq!(client.recorder().events(), [Event::Made, Event::Lost(None)]);
        })
        .await;
    }

    /// Port of CPython main (`001c286`)
    /// `test_server.py::TestServer2::test_wait_closed_race` (the 3.12.1+
    /// rule).
    ///
    /// Upstream schedules `srv.close` and `wr.close` with `call_soon` in the
    /// same tick; the port calls both in one synchronous step. The client is
    /// an asyncproto connection.
    #[tokio::test]
    async fn test_wait_closed_race() {
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let srv = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let mut task = pin!(srv.wait_closed());
            assert!(poll_once(task.as_mut()).await.is_none());

            let addr = srv.local_addrs()[0];
            let (wr, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
                .await
                .expect("connect");
            let mut conn = accepted.next().await;
            conn.made().await;

            srv.close();
            wr.close();
            srv.wait_closed().await;
            task.await;
            drop(done.await.expect("client protocol"));
            assert_eq!(conn.until_lost().await, [Event::Eof, Event::Lost(None)]);
        })
        .await;
    }

    /// Port of CPython main (`001c286`) `test_server.py::TestServer2::test_close_clients`
    /// (asyncio 3.13).
    ///
    /// Upstream checks `task.done()` after two `sleep(0)`; the port awaits
    /// the `wait_closed()` future (bounded by `within`). The client is an
    /// asyncproto connection and sees the server's close as EOF.
    #[tokio::test]
    async fn test_close_clients() {
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let srv = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let mut task = pin!(srv.wait_closed());
            assert!(poll_once(task.as_mut()).await.is_none());

            let addr = srv.local_addrs()[0];
            let (_wr, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
                .await
                .expect("connect");
            let mut conn = accepted.next().await;
            conn.made().await;
            assert!(poll_once(task.as_mut()).await.is_none());

            srv.close();
            srv.close_clients();
            task.await;
            assert_eq!(conn.until_lost().await, [Event::Lost(None)]);
            let client = done.await.expect("client protocol");
            assert_eq!(
                client.events(),
                [Event::Made, Event::Eof, Event::Lost(None)]
            );
        })
        .await;
    }

    /// Adapt of CPython main (`001c286`) `test_server.py::TestServer2::test_close_race`.
    ///
    /// Upstream mocks `sock.accept` to close the server between `accept()`
    /// and the connection's setup. There is no test hook for that point;
    /// instead the server is closed right after a client's connect has
    /// completed (the handshake is done, the accept may or may not have run
    /// yet), 50 times on fresh servers: nothing panics, and `wait_closed()`
    /// returns once the client is gone, whichever side of the race won.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_close_race() {
        within(30, async {
            for _ in 0..50 {
                let srv = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new())
                    .await
                    .expect("create_server");
                let addr = srv.local_addrs()[0];
                let client = raw_connect(addr, None).await;
                srv.close();
                drop(client);
                srv.wait_closed().await;
                assert!(!srv.is_serving());
                assert_eq!(srv.active_connections(), 0);
            }
        })
        .await;
    }
}

mod selector_start_server_tests {
    use std::pin::pin;

    use asyncproto_tokio::{Error, ServerOptions, create_server};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::support::{echo, poll_once, raw_connect, within};

    /// Adapt of CPython main (`001c286`)
    /// `test_server.py::SelectorStartServerTests::test_start_server_1`.
    ///
    /// Streams are replaced by an echo protocol. Cancelling the
    /// `serve_forever()` task inside `async with` is dropping its future,
    /// which closes the server (`local_addrs()` empty, not serving); the
    /// second `serve_forever()` fails with the typed `Error::ServerClosed`
    /// instead of `RuntimeError`.
    #[tokio::test]
    async fn test_start_server_1() {
        within(10, async {
            let srv = create_server(
                echo,
                "127.0.0.1:0",
                ServerOptions::new().start_serving(false),
            )
            .await
            .expect("create_server");
            assert!(!srv.is_serving());
            let addr = srv.local_addrs()[0];

            let client = {
                let mut fut = pin!(srv.serve_forever());
                assert!(poll_once(fut.as_mut()).await.is_none());
                assert!(srv.is_serving());
                tokio::select! {
                    res = fut.as_mut() => panic!("serve_forever returned {res:?}"),
                    client = async {
                        let mut client = raw_connect(addr, None).await;
                        client.write_all(b"hello\n").await.expect("send");
                        let mut reply = [0u8; 6];
                        client.read_exact(&mut reply).await.expect("echo");
                        assert_eq!(&reply, b"hello\n");
                        client
                    } => client,
                }
            };
            assert!(!srv.is_serving());
            assert!(srv.local_addrs().is_empty());
            assert!(matches!(
                srv.serve_forever().await,
                Err(Error::ServerClosed)
            ));

            drop(client);
            srv.wait_closed().await;
        })
        .await;
    }
}
