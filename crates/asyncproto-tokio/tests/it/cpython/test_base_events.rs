//! `Lib/test/test_asyncio/test_base_events.py`.

mod test_selector_utils {
    use asyncproto_core::testing::Recorder;
    use asyncproto_tokio::{ConnectOptions, ServerOptions, create_connection, create_server};
    use socket2::SockRef;

    use crate::support::{tapped_factory, within};

    /// Port of CPython 3.11.7 `test_base_events.py::TestSelectorUtils::test_set_nodelay`.
    ///
    /// Upstream calls the private `_set_nodelay` on a socket; the port checks
    /// that `TCP_NODELAY` is on for both a client transport and an accepted
    /// one, with default options.
    #[tokio::test]
    async fn test_set_nodelay() {
        within(10, async {
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
                .await
                .expect("connect");
            let st = accepted.next().await.made().await;
            for tr in [&t, &st] {
                let nodelay =
                    tr.with_socket(|fd| SockRef::from(&fd).tcp_nodelay().expect("getsockopt"));
                assert_eq!(nodelay, Some(true), "{tr:?}");
            }
            t.close();
            drop(done.await.expect("protocol"));
            server.close();
            server.wait_closed().await;
        })
        .await;
    }
}

mod base_event_loop_with_selector_tests {
    use std::{
        io,
        net::{Ipv6Addr, SocketAddr, SocketAddrV6},
        sync::atomic::Ordering,
        time::Duration,
    };

    use asyncproto_core::testing::Recorder;
    use asyncproto_tokio::{
        ConnectOptions, Error, Resolver, ServerOptions, create_connection,
        create_connection_to_host, create_server, create_server_on,
    };
    use socket2::{Domain, Socket, Type};

    use crate::{
        happy_eyeballs::{
            fixed_resolver, hanging_addr, ipv6_available, refusing_addr_v6, skip_without_ipv6,
            syn_sent_to,
        },
        support::{refusing_addr, within},
    };

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_connect_err`.
    ///
    /// Upstream mocks `sock_connect` to raise `OSError`; the port connects to
    /// a bound, non-listening loopback socket, so the error is a real
    /// `ConnectionRefused`, inside the typed `Error::Connect`.
    #[tokio::test]
    async fn test_create_connection_connect_err() {
        within(10, async {
            let (_bound, addr) = refusing_addr();
            let err = create_connection(Recorder::default, addr, ConnectOptions::new())
                .await
                .expect_err("refused");
            assert!(matches!(err, Error::Connect { .. }), "{err:?}");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        })
        .await;
    }

    // The rows that mock `getaddrinfo`, ported with the public resolver
    // hook (`asyncproto_tokio::Resolver`) on loopback addresses.

    /// A resolver that fails the test if it is asked anything.
    fn unused_resolver() -> Resolver {
        Resolver::new(|host: &str, _: u16| {
            let host = host.to_owned();
            async move { panic!("resolver called for {host:?}") }
        })
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_multiple_errors`.
    ///
    /// Upstream mocks `getaddrinfo` (two addresses) and `sock_connect` (two
    /// different `OSError`s). Here the resolver hook returns `[::1]:p` and a
    /// refusing `127.0.0.1` port, with an IPv4 `local_addr`: the IPv6
    /// attempt fails with "no matching local address" (no socket is made),
    /// the IPv4 one is refused. The typed error keeps both, in order
    /// (3.12's `all_errors=True`), and its `Display` lists them as
    /// 'Multiple exceptions' does.
    #[tokio::test]
    async fn test_create_connection_multiple_errors() {
        within(10, async {
            let (_bound, refusing) = refusing_addr();
            let v6: SocketAddr = "[::1]:9".parse().expect("addr");
            let (resolver, _) = fixed_resolver(vec![v6, refusing]);
            let err = create_connection_to_host(
                Recorder::default,
                "example.com",
                80,
                ConnectOptions::new()
                    .resolver(resolver)
                    .local_addr("127.0.0.1:0".parse().expect("addr")),
            )
            .await
            .expect_err("both fail");
            let Error::Connect { attempts } = &err else {
                panic!("expected Error::Connect, got {err:?}");
            };
            assert_eq!(attempts.len(), 2, "{attempts:?}");
            assert_eq!(attempts[0].0, v6);
            assert_eq!(attempts[0].1.kind(), io::ErrorKind::AddrNotAvailable);
            assert_eq!(attempts[1].0, refusing);
            assert_eq!(attempts[1].1.kind(), io::ErrorKind::ConnectionRefused);
            assert_eq!(err.kind(), io::ErrorKind::Other, "different kinds");
            assert_eq!(
                err.to_string(),
                format!(
                    "multiple exceptions: [{v6}] {}, [{refusing}] {}",
                    attempts[0].1, attempts[1].1
                )
            );
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_timeout`.
    ///
    /// Upstream mocks `sock_connect` to raise `TimeoutError` and checks the
    /// socket was closed. Here the connect really hangs (a loopback listener
    /// with a full accept queue, not a black-holed address), and
    /// `tokio::time::timeout` drops the future: the socket is closed, as
    /// its `SYN_SENT` entry leaves `/proc/net/tcp`. The `connect_fds` test
    /// binary counts descriptors for the same case.
    #[tokio::test]
    async fn test_create_connection_timeout() {
        within(10, async {
            let (_hanging, addr) = hanging_addr(false);
            let connect = create_connection(Recorder::default, addr, ConnectOptions::new());
            let res = tokio::time::timeout(Duration::from_millis(100), connect).await;
            assert!(res.is_err(), "the connect should hang");
            assert_eq!(syn_sent_to(addr.port()), 0, "the socket was not closed");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_no_getaddrinfo`.
    ///
    /// The resolver hook returns no address: the typed `Error::NoAddresses`
    /// (`NotFound`) for asyncio's `OSError`.
    #[tokio::test]
    async fn test_create_connection_no_getaddrinfo() {
        within(10, async {
            let (resolver, calls) = fixed_resolver(vec![]);
            let err = create_connection_to_host(
                Recorder::default,
                "example.com",
                80,
                ConnectOptions::new().resolver(resolver),
            )
            .await
            .expect_err("no address");
            assert!(matches!(err, Error::NoAddresses), "{err:?}");
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_multiple`.
    ///
    /// Two IPv4 addresses from the resolver hook, both refused (bound,
    /// non-listening loopback sockets) instead of a mocked `OSError`.
    #[tokio::test]
    async fn test_create_connection_multiple() {
        within(10, async {
            let (_b1, r1) = refusing_addr();
            let (_b2, r2) = refusing_addr();
            let (resolver, _) = fixed_resolver(vec![r1, r2]);
            let err = create_connection_to_host(
                Recorder::default,
                "example.com",
                80,
                ConnectOptions::new().resolver(resolver),
            )
            .await
            .expect_err("both refused");
            let Error::Connect { attempts } = &err else {
                panic!("expected Error::Connect, got {err:?}");
            };
            let tried: Vec<SocketAddr> = attempts.iter().map(|(a, _)| *a).collect();
            assert_eq!(tried, [r1, r2]);
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_multiple_errors_local_addr`.
    ///
    /// Upstream mocks `bind` to fail once and `sock_connect` to fail. Here
    /// the remote addresses are a refusing `[::1]` port and a refusing
    /// `127.0.0.1` port, and the local host resolves to a `[::1]` port in
    /// use and `127.0.0.1:0`: the IPv6 attempt fails to bind, the IPv4
    /// attempt binds and is refused. Both are listed, the bind failure
    /// naming the local address. That every socket is closed is checked by
    /// the `connect_fds` test binary (descriptor count). Needs `::1`.
    #[tokio::test]
    async fn test_create_connection_multiple_errors_local_addr() {
        if skip_without_ipv6("test_create_connection_multiple_errors_local_addr") {
            return;
        }
        within(10, async {
            let (_b6, remote6) = refusing_addr_v6();
            let (_b4, remote4) = refusing_addr();
            let (_in_use, local6) = refusing_addr_v6();
            let local4: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let resolver = Resolver::new(move |host: &str, _: u16| {
                let addrs = if host == "local.test" {
                    vec![local6, local4]
                } else {
                    vec![remote6, remote4]
                };
                async move { Ok(addrs) }
            });
            let err = create_connection_to_host(
                Recorder::default,
                "example.com",
                80,
                ConnectOptions::new()
                    .resolver(resolver)
                    .local_host("local.test", 0),
            )
            .await
            .expect_err("both fail");
            let Error::Connect { attempts } = &err else {
                panic!("expected Error::Connect, got {err:?}");
            };
            assert_eq!(attempts.len(), 2, "{attempts:?}");
            assert_eq!(attempts[0].0, remote6);
            assert_eq!(attempts[0].1.kind(), io::ErrorKind::AddrInUse);
            assert!(
                attempts[0].1.to_string().starts_with(&format!(
                    "error while attempting to bind on address {local6}"
                )),
                "{}",
                attempts[0].1
            );
            assert_eq!(attempts[1].0, remote4);
            assert_eq!(attempts[1].1.kind(), io::ErrorKind::ConnectionRefused);
            assert!(
                err.to_string().starts_with("multiple exceptions: "),
                "{err}"
            );
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_ipv6_scope`.
    ///
    /// The host `fe80::1%1` is an IP literal: it skips the resolver and
    /// keeps its scope id, `('fe80::1', 80, 0, 1)` upstream. Nothing may
    /// connect to a link-local address from the tests (loopback only), so
    /// instead of a mocked `sock_connect` the port gives an IPv4-only
    /// `local_addr`: the attempt stops before any socket is made, and the
    /// error shows the address it would have connected to.
    #[tokio::test]
    async fn test_create_connection_ipv6_scope() {
        within(10, async {
            let err = create_connection_to_host(
                Recorder::default,
                "fe80::1%1",
                80,
                ConnectOptions::new()
                    .resolver(unused_resolver())
                    .local_addr("127.0.0.1:0".parse().expect("addr")),
            )
            .await
            .expect_err("no IPv6 local address");
            let Error::Connect { attempts } = &err else {
                panic!("expected Error::Connect, got {err:?}");
            };
            let expected = SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse::<Ipv6Addr>().expect("ip"),
                80,
                0,
                1,
            ));
            assert_eq!(attempts.len(), 1);
            assert_eq!(attempts[0].0, expected);
            let SocketAddr::V6(v6) = attempts[0].0 else {
                unreachable!()
            };
            assert_eq!(v6.scope_id(), 1);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_ip_addr`.
    ///
    /// Upstream checks that `getaddrinfo` is skipped and the socket family
    /// follows the literal. Here the resolver hook panics if called, and
    /// `127.0.0.1` and `::1` (the latter when available) connect to real
    /// servers with sockets of their own family.
    #[tokio::test]
    async fn test_create_connection_ip_addr() {
        within(10, async {
            let mut hosts = vec!["127.0.0.1"];
            if ipv6_available() {
                hosts.push("::1");
            } else {
                println!("test_create_connection_ip_addr: ::1 unavailable, IPv4 only");
            }
            for host in hosts {
                let server = create_server_on(Recorder::default, [host], 0, ServerOptions::new())
                    .await
                    .expect("create_server_on");
                let addr = server.local_addrs()[0];
                let (t, done) = create_connection_to_host(
                    Recorder::default,
                    host,
                    addr.port(),
                    ConnectOptions::new().resolver(unused_resolver()),
                )
                .await
                .expect("connect");
                assert_eq!(t.peer_addr(), Some(addr));
                let local = t.local_addr().expect("sockname");
                assert_eq!(local.is_ipv6(), host.contains(':'), "{local}");
                t.close();
                drop(done.await.expect("protocol"));
                server.close();
                server.wait_closed().await;
            }
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_no_local_addr`.
    ///
    /// `local_addr=(host, port)` becomes `ConnectOptions::local_host`; the
    /// resolver hook returns nothing for the local host: the typed
    /// `Error::NoAddresses` for asyncio's `OSError`, and no connect is made
    /// to the (real) server.
    #[tokio::test]
    async fn test_create_connection_no_local_addr() {
        within(10, async {
            let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("create_server");
            let addr = server.local_addrs()[0];
            let resolver = Resolver::new(move |host: &str, _: u16| {
                let addrs = if host == "local.test" {
                    vec![]
                } else {
                    vec![addr]
                };
                async move { Ok(addrs) }
            });
            let err = create_connection_to_host(
                Recorder::default,
                "server.test",
                addr.port(),
                ConnectOptions::new()
                    .resolver(resolver)
                    .local_host("local.test", 0),
            )
            .await
            .expect_err("no local address");
            assert!(matches!(err, Error::NoAddresses), "{err:?}");
            assert_eq!(server.active_connections(), 0);
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_no_getaddrinfo`.
    ///
    /// The resolver hook returns nothing for the host: the typed
    /// `Error::NoAddresses` for asyncio's `OSError`.
    #[tokio::test]
    async fn test_create_server_no_getaddrinfo() {
        within(10, async {
            let (resolver, calls) = fixed_resolver(vec![]);
            let err = create_server_on(
                Recorder::default,
                ["server.test"],
                0,
                ServerOptions::new().resolver(resolver),
            )
            .await
            .expect_err("no address");
            assert!(matches!(err, Error::NoAddresses), "{err:?}");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_cant_bind`.
    ///
    /// Upstream mocks `bind` to fail; here the port is really in use. With
    /// two hosts, the first socket is already bound when the second fails:
    /// the error is `Error::Bind` for the second address, and the first
    /// socket was closed (its address can be bound again at once, without
    /// `SO_REUSEADDR`). The `connect_fds` binary counts descriptors too.
    #[tokio::test]
    async fn test_create_server_cant_bind() {
        within(10, async {
            let (_in_use, taken) = refusing_addr();
            let err = create_server_on(
                Recorder::default,
                ["127.0.0.2", "127.0.0.1"],
                taken.port(),
                ServerOptions::new(),
            )
            .await
            .expect_err("port in use on 127.0.0.1");
            match &err {
                Error::Bind { addr, source } => {
                    assert_eq!(*addr, taken);
                    assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
                }
                other => panic!("expected Error::Bind, got {other:?}"),
            }
            // Without SO_REUSEADDR, a bind fails while any socket holds the
            // address.
            let again = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            let first: SocketAddr = ([127, 0, 0, 2], taken.port()).into();
            again
                .bind(&first.into())
                .expect("the first socket was closed");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_empty_host`.
    ///
    /// Upstream checks that `''` reaches `getaddrinfo` as `None`. Here the
    /// host `""` (and an empty host list) binds every interface, `0.0.0.0`
    /// and, with IPv6, `::`, on one port, and the resolver is not asked.
    /// Only loopback clients connect.
    #[tokio::test]
    async fn test_create_server_empty_host() {
        within(10, async {
            for empty in [vec![""], vec![]] {
                let server = create_server_on(
                    Recorder::default,
                    &empty,
                    0,
                    ServerOptions::new().resolver(unused_resolver()),
                )
                .await
                .expect("create_server_on");
                let addrs = server.local_addrs();
                let port = addrs[0].port();
                let mut expected: Vec<SocketAddr> = vec![([0, 0, 0, 0], port).into()];
                if ipv6_available() {
                    expected.push((Ipv6Addr::UNSPECIFIED, port).into());
                }
                assert_eq!(addrs, expected, "hosts {empty:?}");
                let client = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                drop(client);
                server.close();
                server.wait_closed().await;
            }
        })
        .await;
    }

    /// Adapt of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_wrong_sock`.
    ///
    /// The type system takes a `std::net::TcpListener`, so a UDP socket can
    /// only get there through an fd conversion (`OwnedFd` → `TcpListener`);
    /// it is rejected with `ErrorKind::InvalidInput` (asyncio:
    /// `ValueError('A Stream Socket was expected')`).
    #[tokio::test]
    async fn test_create_server_wrong_sock() {
        use std::os::fd::OwnedFd;

        use asyncproto_tokio::create_server_with_sock;

        within(10, async {
            let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
            let sock = std::net::TcpListener::from(OwnedFd::from(udp));
            let err = create_server_with_sock(Recorder::default, sock, ServerOptions::new())
                .expect_err("a datagram socket");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err:?}");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_stream_bittype`.
    ///
    /// `SOCK_NONBLOCK` in the socket type becomes a listener already put in
    /// non-blocking mode; the server takes it, serves on it, and closes
    /// cleanly.
    #[tokio::test]
    async fn test_create_server_stream_bittype() {
        use asyncproto_tokio::create_server_with_sock;

        use crate::support::{raw_connect, refused, tapped_factory};

        within(10, async {
            let sock = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            sock.set_nonblocking(true).expect("O_NONBLOCK");
            let addr = sock.local_addr().expect("addr");
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let srv = create_server_with_sock(factory, sock, ServerOptions::new())
                .expect("create_server_with_sock");
            let client = raw_connect(addr, None).await;
            accepted.next().await.made().await;
            drop(client);
            srv.close();
            srv.wait_closed().await;
            assert!(refused(addr).await);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_ipv6`:
    /// a server on `::1` port 0 has at least one listening socket, on a real
    /// port. Skipped (with a printed reason) where `::1` is unavailable.
    #[tokio::test]
    async fn test_create_server_ipv6() {
        if crate::happy_eyeballs::skip_without_ipv6("test_create_server_ipv6") {
            return;
        }
        within(10, async {
            let server = asyncproto_tokio::create_server(
                asyncproto_core::testing::Recorder::default,
                "[::1]:0",
                asyncproto_tokio::ServerOptions::new(),
            )
            .await
            .expect("create_server on ::1");
            let addrs = server.local_addrs();
            assert!(!addrs.is_empty());
            assert!(
                addrs.iter().all(|a| a.is_ipv6() && a.port() != 0),
                "{addrs:?}"
            );
            let conn = tokio::net::TcpStream::connect(addrs[0]).await;
            assert!(conn.is_ok(), "a client reaches the v6 listener");
            server.close();
            server.wait_closed().await;
        })
        .await;
    }
}
