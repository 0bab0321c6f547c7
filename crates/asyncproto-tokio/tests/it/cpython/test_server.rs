//! `Lib/test/test_asyncio/test_server.py`.

mod test_server2 {
    use std::pin::pin;

    use asyncproto_core::testing::{Event, Recorder};
    use asyncproto_tokio::{ConnectOptions, ServerOptions, create_connection, create_server};

    use crate::{
        flow::tiny_sndbuf,
        support::{poll_once, tap, tapped_factory, within},
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
}
