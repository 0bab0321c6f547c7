//! `Lib/test/test_asyncio/test_events.py`.

mod epoll_event_loop_tests {
    use std::{io, net::SocketAddr};

    use asyncproto_core::{ExtraInfo, testing::Recorder};
    use asyncproto_tokio::{
        ConnectOptions, Error, Resolver, ServerOptions, create_connection,
        create_connection_to_host, create_server, create_server_on,
    };
    use tokio::{io::AsyncWriteExt, net::TcpStream};

    use crate::{
        happy_eyeballs::skip_without_ipv6,
        support::{echo, raw_connect, refused, refusing_addr, tapped_factory, unused_port, within},
    };

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

    /// A resolver for `local.test` (→ `local`) and any other name (→
    /// `remote`).
    fn local_and_remote(local: Vec<SocketAddr>, remote: SocketAddr) -> Resolver {
        Resolver::new(move |host: &str, _: u16| {
            let addrs = if host == "local.test" {
                local.clone()
            } else {
                vec![remote]
            };
            async move { Ok(addrs) }
        })
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_connection_local_addr_skip_different_family`.
    ///
    /// Upstream mocks `getaddrinfo` for the local name. Here the resolver
    /// hook gives the local host `[::1]:0` and `127.0.0.1:0`, and the remote
    /// is a refusing IPv4 loopback port: the IPv6 local address is skipped
    /// (no bind error), the IPv4 one is bound, and the result is the connect
    /// error.
    #[tokio::test]
    async fn test_create_connection_local_addr_skip_different_family() {
        within(10, async {
            let (_bound, remote) = refusing_addr();
            let locals = vec![
                "[::1]:0".parse().expect("addr"),
                "127.0.0.1:0".parse().expect("addr"),
            ];
            let err = create_connection_to_host(
                Recorder::default,
                "server.test",
                remote.port(),
                ConnectOptions::new()
                    .resolver(local_and_remote(locals, remote))
                    .local_host("local.test", 0),
            )
            .await
            .expect_err("refused");
            let Error::Connect { attempts } = &err else {
                panic!("expected Error::Connect, got {err:?}");
            };
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            assert_eq!(attempts[0].0, remote);
            assert_eq!(attempts[0].1.kind(), io::ErrorKind::ConnectionRefused);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_connection_local_addr_nomatch_family`.
    ///
    /// The resolver hook gives the local host only `[::1]:0`; the remote is
    /// a real IPv4 server. asyncio's `OSError('no matching local address
    /// with family=AF_INET found')` is the one attempt in `Error::Connect`,
    /// with `AddrNotAvailable`, and no connection reaches the server.
    #[tokio::test]
    async fn test_create_connection_local_addr_nomatch_family() {
        within(10, async {
            let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let err = create_connection_to_host(
                Recorder::default,
                "server.test",
                addr.port(),
                ConnectOptions::new()
                    .resolver(local_and_remote(
                        vec!["[::1]:0".parse().expect("addr")],
                        addr,
                    ))
                    .local_host("local.test", 0),
            )
            .await
            .expect_err("no IPv4 local address");
            let Error::Connect { attempts } = &err else {
                panic!("expected Error::Connect, got {err:?}");
            };
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            assert_eq!(attempts[0].0, addr);
            assert_eq!(attempts[0].1.kind(), io::ErrorKind::AddrNotAvailable);
            assert_eq!(
                attempts[0].1.to_string(),
                "no matching local address with family=AF_INET found"
            );
            assert_eq!(server.active_connections(), 0);
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_multiple_hosts_ipv4`.
    ///
    /// Upstream mocks the bind to `1.2.3.4` and `5.6.7.8`; here the hosts
    /// are real loopback addresses, `127.0.0.1`, `127.0.0.2`, `127.0.0.1`:
    /// two listeners (duplicates collapse), on one port, each accepting.
    #[tokio::test]
    async fn test_create_server_multiple_hosts_ipv4() {
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let server = create_server_on(
                factory,
                ["127.0.0.1", "127.0.0.2", "127.0.0.1"],
                0,
                ServerOptions::new(),
            )
            .await
            .expect("create_server_on");
            let addrs = server.local_addrs();
            let port = addrs[0].port();
            assert_eq!(
                addrs,
                [
                    SocketAddr::from(([127, 0, 0, 1], port)),
                    SocketAddr::from(([127, 0, 0, 2], port)),
                ]
            );
            for addr in &addrs {
                let client = TcpStream::connect(addr).await.expect("connect");
                let st = accepted.next().await.made().await;
                assert_eq!(st.local_addr(), Some(*addr));
                drop(client);
            }
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_multiple_hosts_ipv6`.
    ///
    /// Only `::1` exists on loopback (upstream mocks `::1`, `::2`, `::1`):
    /// `::1` twice gives one listener, which accepts.
    #[tokio::test]
    async fn test_create_server_multiple_hosts_ipv6() {
        if skip_without_ipv6("test_create_server_multiple_hosts_ipv6") {
            return;
        }
        within(10, async {
            let server =
                create_server_on(Recorder::default, ["::1", "::1"], 0, ServerOptions::new())
                    .await
                    .expect("create_server_on");
            let addrs = server.local_addrs();
            assert_eq!(addrs.len(), 1, "{addrs:?}");
            assert_eq!(
                addrs[0].ip(),
                "::1".parse::<std::net::IpAddr>().expect("ip")
            );
            drop(TcpStream::connect(addrs[0]).await.expect("connect"));
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_dual_stack`.
    ///
    /// `host=None` is an empty host list. Upstream picks a free port and
    /// retries on `EADDRINUSE`; with port 0 asyncproto binds every address
    /// on the same port, so no retry loop is needed. Clients to `127.0.0.1`
    /// and `::1` on that port both connect. Skipped without `::1`.
    #[tokio::test]
    async fn test_create_server_dual_stack() {
        if skip_without_ipv6("test_create_server_dual_stack") {
            return;
        }
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let server = create_server_on(factory, None::<&str>, 0, ServerOptions::new())
                .await
                .expect("create_server_on");
            let port = server.local_addrs()[0].port();
            for host in ["127.0.0.1", "::1"] {
                let client = TcpStream::connect((host, port)).await.expect("connect");
                let st = accepted.next().await.made().await;
                assert_eq!(st.peer_addr(), client.local_addr().ok());
                drop(client);
            }
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_connection`.
    ///
    /// The test HTTP server is a tiny reply-then-close server (a raw Tokio
    /// listener): the client's `connection_made` writes a request, the reply
    /// arrives, then EOF; the states INITIAL → CONNECTED → EOF → CLOSED are
    /// the recorded callbacks. `sockname` is answered and the transport the
    /// protocol stored is the one `create_connection` returned.
    #[tokio::test]
    async fn test_create_connection() {
        use tokio::io::AsyncReadExt;
        within(10, async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut req = [0u8; 18];
                s.read_exact(&mut req).await.expect("request");
                assert_eq!(&req, b"GET / HTTP/1.0\r\n\r\n");
                s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello")
                    .await
                    .expect("reply");
                // Dropping the stream closes it: the client sees EOF.
            });
            let client = || {
                Recorder::default().on_event(|event, t| {
                    if *event == asyncproto_core::testing::Event::Made {
                        t.write("GET / HTTP/1.0\r\n\r\n").expect("write");
                    }
                })
            };
            let (transport, done) = create_connection(client, addr, ConnectOptions::new())
                .await
                .expect("create_connection");
            assert!(matches!(
                transport.get_extra_info("sockname"),
                Some(ExtraInfo::Addr(a)) if a.ip() == addr.ip() && a.port() != 0
            ));
            let protocol = done.await.expect("protocol back");
            server.await.expect("server task");
            assert_eq!(protocol.data(), b"HTTP/1.0 200 OK\r\n\r\nhello");
            let events = protocol.events();
            use asyncproto_core::testing::Event::{Eof, Lost, Made};
            assert_eq!(events.first(), Some(&Made));
            assert_eq!(&events[events.len() - 2..], [Eof, Lost(None)]);
            let stored = protocol.transport().expect("stored in connection_made");
            assert_eq!(
                stored.local_addr(),
                transport.local_addr(),
                "the same transport"
            );
            assert!(stored.is_closing() && transport.is_closing());
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_sock`.
    ///
    /// The socket is a `std::net::TcpListener` on 127.0.0.1 (already
    /// listening, unlike upstream's bound-only socket). "Same socket" is
    /// checked through the fd: its `/proc/self/fd` link (the socket inode)
    /// still names the same socket inode after the hand-over (the server did
    /// not replace it), `local_addrs()` is the socket's own address, and a
    /// client connecting to it is accepted by the server's protocol.
    #[tokio::test]
    async fn test_create_server_sock() {
        use std::os::fd::AsRawFd;

        use asyncproto_core::testing::Event;
        use asyncproto_tokio::create_server_with_sock;

        within(10, async {
            let sock = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = sock.local_addr().expect("addr");
            let fd = sock.as_raw_fd();
            let link = |fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("fd open");
            let inode = link(fd);
            assert!(inode.to_string_lossy().starts_with("socket:"), "{inode:?}");

            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let server = create_server_with_sock(factory, sock, ServerOptions::new())
                .expect("create_server_with_sock");
            assert!(server.is_serving());
            assert_eq!(server.local_addrs(), [addr]);
            assert_eq!(link(fd), inode, "the server holds the very socket");

            let mut client = raw_connect(addr, None).await;
            let mut conn = accepted.next().await;
            conn.made().await;
            client.write_all(b"abc").await.expect("send");
            assert_eq!(conn.data(3).await, b"abc");
            drop(client);
            assert_eq!(conn.until_lost().await, [Event::Eof, Event::Lost(None)]);

            server.close();
            assert!(refused(addr).await);
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_events.py::EPollEventLoopTests::test_create_server`.
    ///
    /// On 127.0.0.1 instead of 0.0.0.0 (loopback only); the client is a
    /// plain Tokio stream. `MyProto`'s states are the recorded callbacks;
    /// `transport.close()` is called by the test once the 3 bytes are in.
    #[tokio::test]
    async fn test_create_server() {
        use asyncproto_core::testing::Event;
        use tokio::io::AsyncReadExt;

        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addrs = server.local_addrs();
            assert_eq!(addrs.len(), 1);
            let addr = addrs[0];

            let mut client = raw_connect(addr, None).await;
            client.write_all(b"xxx").await.expect("send");
            let mut conn = accepted.next().await;
            let transport = conn.made().await;
            assert_eq!(conn.data(3).await, b"xxx");

            assert!(matches!(
                transport.get_extra_info("sockname"),
                Some(ExtraInfo::Addr(a)) if a == addr
            ));
            let client_addr = client.local_addr().expect("client addr");
            assert!(matches!(
                transport.get_extra_info("peername"),
                Some(ExtraInfo::Addr(a)) if a == client_addr
            ));

            transport.close();
            assert_eq!(conn.until_lost().await, [Event::Lost(None)]);
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.expect("EOF");
            assert!(rest.is_empty());

            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_reuse_port`.
    ///
    /// Upstream reads `SO_REUSEPORT` back from `server.sockets[0]`; the
    /// server does not expose its listening sockets, so the port tests the
    /// option through what it does: a `reuse_port(true)` server cannot share
    /// the port of a default server (the default is off), and two
    /// `reuse_port(true)` servers share one port (it is on). On 127.0.0.1.
    #[tokio::test]
    async fn test_create_server_reuse_port() {
        within(10, async {
            let on = ServerOptions::new().reuse_port(true);

            let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let err = create_server(echo, addr, on.clone())
                .await
                .expect_err("SO_REUSEPORT is off by default");
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            server.close();
            server.wait_closed().await;

            let server = create_server(echo, "127.0.0.1:0", on.clone())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let second = create_server(echo, addr, on)
                .await
                .expect("SO_REUSEPORT is on with reuse_port(true)");
            assert_eq!(second.local_addrs(), [addr]);
            for s in [server, second] {
                s.close();
                s.wait_closed().await;
            }
        })
        .await;
    }
}
