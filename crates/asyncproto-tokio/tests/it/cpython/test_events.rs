//! `Lib/test/test_asyncio/test_events.py`.

mod epoll_event_loop_tests {
    use std::{io, net::SocketAddr};

    use asyncproto_core::{ExtraInfo, testing::Recorder};
    use asyncproto_tokio::{
        ConnectOptions, Error, ServerOptions, create_connection, create_server,
    };
    use tokio::io::AsyncWriteExt;

    use crate::support::{echo, raw_connect, refused, unused_port, within};

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_connection_local_addr`.
    ///
    /// The test HTTP server is an asyncproto echo server.
    #[tokio::test]
    async fn test_create_connection_local_addr() {
        within(10, async {
            let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let port = unused_port();
            let local: SocketAddr = ([127, 0, 0, 1], port).into();
            let (t, done) = create_connection(
                Recorder::default,
                addr,
                ConnectOptions::new().local_addr(local),
            )
            .await
            .expect("connect");
            assert_eq!(t.local_addr(), Some(local));
            assert_eq!(t.get_extra_info("sockname"), Some(ExtraInfo::Addr(local)));
            t.close();
            drop(done.await.expect("protocol"));
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_connection_local_addr_in_use`.
    ///
    /// `EADDRINUSE` is the typed `Error::Bind` with `AddrInUse`; its `Display`
    /// names the address, as the `strerror` does upstream.
    #[tokio::test]
    async fn test_create_connection_local_addr_in_use() {
        within(10, async {
            let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let err = create_connection(
                Recorder::default,
                addr,
                ConnectOptions::new().local_addr(addr),
            )
            .await
            .expect_err("local address in use");
            match &err {
                Error::Bind { addr: a, source } => {
                    assert_eq!(*a, addr);
                    assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
                }
                other => panic!("unexpected error: {other:?}"),
            }
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            assert!(err.to_string().contains(&addr.to_string()), "{err}");
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_addr_in_use`.
    ///
    /// The first server is made by `create_server` on 127.0.0.1 (no `sock=`
    /// entry point yet).
    #[tokio::test]
    async fn test_create_server_addr_in_use() {
        within(10, async {
            let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let err = create_server(echo, addr, ServerOptions::new())
                .await
                .expect_err("port in use");
            assert!(
                matches!(&err, Error::Bind { addr: a, .. } if *a == addr),
                "{err:?}"
            );
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_events.py::EPollEventLoopTests::test_server_close`.
    ///
    /// On 127.0.0.1 instead of 0.0.0.0 (loopback only); the client is a
    /// plain Tokio stream.
    #[tokio::test]
    async fn test_server_close() {
        within(10, async {
            let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let mut client = raw_connect(addr, None).await;
            client.write_all(b"xxx").await.expect("send");
            drop(client);

            server.close();
            // Refused at once: no await between close() and the connect.
            assert!(refused(addr).await);
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_connect_accepted_socket`.
    ///
    /// As upstream, a blocking client in a thread connects to a plain
    /// listener; the accepted std socket goes to `connect_accepted_socket`.
    /// `MyBaseProto`'s states are the exact callback sequence (CONNECTED,
    /// 9 bytes, EOF, CLOSED). The blocking `accept` runs on the blocking pool.
    #[tokio::test]
    async fn test_connect_accepted_socket() {
        use std::io::{Read as _, Write as _};

        use asyncproto_core::testing::Event::{Data, Eof, Lost, Made};
        use asyncproto_tokio::connect_accepted_socket;

        use crate::support::tap;

        within(10, async {
            let lsock = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = lsock.local_addr().expect("local_addr");
            let message = b"test data";
            let client = std::thread::spawn(move || {
                let mut csock = std::net::TcpStream::connect(addr).expect("connect");
                csock.write_all(message).expect("sendall");
                let mut response = [0; 99];
                let n = csock.read(&mut response).expect("recv");
                // csock closes as the thread ends.
                response[..n].to_vec()
            });
            let conn = tokio::task::spawn_blocking(move || lsock.accept())
                .await
                .expect("accept task")
                .expect("accept")
                .0;
            // MyProto: writes b'roger' on every data_received.
            let (proto, mut probe) = tap(Recorder::default().on_event(|e, t| {
                if matches!(e, Data(_)) {
                    t.write("roger").expect("write");
                }
            }));
            let (tr, done) = connect_accepted_socket(move || proto, conn, ConnectOptions::new())
                .await
                .expect("connect_accepted_socket");
            assert_eq!(probe.next().await, Made);
            // state CONNECTED → EOF → CLOSED; nbytes == len(message).
            assert_eq!(
                probe.until_lost().await,
                [Data(message[..].into()), Eof, Lost(None)]
            );
            let response = tokio::task::spawn_blocking(move || client.join())
                .await
                .expect("join task")
                .expect("client thread");
            assert_eq!(response, b"roger");
            tr.close();
            drop(done.await.expect("protocol"));
        })
        .await;
    }
}
