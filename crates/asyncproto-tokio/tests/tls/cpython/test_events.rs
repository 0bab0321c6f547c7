//! `Lib/test/test_asyncio/test_events.py` (CPython 3.11.7), the TLS rows of
//! `EPollEventLoopTests`.
//!
//! asyncproto has no `create_unix_server`/`create_unix_connection`: the Unix
//! rows run TLS over a `UnixStream::pair()`, one end through
//! `connect_accepted_socket` (server) and the other through
//! `create_connection_with_sock` (client). `server_hostname=''` (no
//! hostname check) has no opt-out in the options; those rows verify
//! `localhost`.

mod e_poll_event_loop_tests {
    use std::{net::SocketAddr, sync::atomic::Ordering};

    use asyncproto_core::{
        ExtraInfo, Transport,
        testing::{
            Event::{Data, Eof, Lost, Made},
            Recorder,
        },
    };
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::{
        ConnectOptions, Error, TlsClientOptions, TlsServerOptions, connect_accepted_socket,
        create_connection, create_connection_with_sock, create_server,
        rustls::{self, pki_types::CertificateDer},
    };
    use tokio::{
        io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
        net::UnixStream,
    };
    use tokio_rustls::{TlsAcceptor, server::TlsStream};

    use crate::{
        peers::{
            RawServer, client_tls, connect_options, counting, localhost, no_roots_client_config,
            server_options,
        },
        support::{tap, tapped_factory, within},
    };

    const GET: &[u8] = b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n";
    const REPLY: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\nTest message";

    /// `MyProto`: writes a request in `connection_made`.
    fn my_proto() -> Recorder {
        Recorder::default().on_event(|e, t| {
            if *e == Made {
                t.write(GET).expect("request");
            }
        })
    }

    /// `run_test_server(use_ssl=True)`: reads one request, answers, ends
    /// with `close_notify`, waits for ours.
    async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(mut s: TlsStream<S>) {
        let mut req = Vec::new();
        while !req.ends_with(b"\r\n\r\n") {
            let mut b = [0; 1];
            s.read_exact(&mut b).await.expect("request");
            req.push(b[0]);
        }
        assert_eq!(req, GET);
        s.write_all(REPLY).await.expect("reply");
        s.shutdown().await.expect("close_notify");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.expect("client close_notify");
    }

    /// `check_ssl_extra_info`, with the peer's leaf (DER) as `peercert`.
    fn check_ssl_extra_info(
        t: &Transport,
        peername: Option<SocketAddr>,
        peercert: &CertificateDer<'static>,
    ) {
        if let Some(addr) = peername {
            assert!(t.get_extra_info("sockname").is_some());
            assert_eq!(t.get_extra_info("peername"), Some(ExtraInfo::Addr(addr)));
        }
        assert_eq!(
            t.get_extra_info("peercert"),
            Some(ExtraInfo::PeerCert(peercert.clone()))
        );
        let Some(ExtraInfo::Cipher(cipher)) = t.get_extra_info("cipher") else {
            panic!("no cipher");
        };
        assert!(!cipher.name.is_empty());
        assert!(cipher.version.starts_with("TLSv"), "{cipher:?}");
        assert!(cipher.secret_bits > 0);
        let Some(ExtraInfo::SslObject(obj)) = t.get_extra_info("ssl_object") else {
            panic!("no ssl_object");
        };
        assert_eq!(obj.cipher(), Some(cipher));
        assert_eq!(obj.peer_certificate(), Some(peercert));
        assert_eq!(t.get_extra_info("compression"), None);
    }

    /// Runs `my_proto` as a TLS client over `connect` against `serve_http`
    /// and checks the extra info and the callbacks.
    async fn basetest_create_ssl_connection(
        t: Transport,
        mut probe: crate::support::Probe,
        peername: Option<SocketAddr>,
        pki: &TestPki,
    ) {
        assert!(t.is_tls());
        check_ssl_extra_info(&t, peername, &pki.server.cert);
        assert_eq!(
            probe.until_lost().await,
            [Made, Data(REPLY.into()), Eof, Lost(None)]
        );
        t.close();
    }

    /// Asserts that `err` is the `rustls` verdict on a certificate from an
    /// issuer the client does not trust.
    fn assert_unknown_issuer(err: &Error) {
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
        assert_eq!(
            err.tls_error(),
            Some(&rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )),
            "{err:?}"
        );
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_ssl_connection`.
    ///
    /// `run_test_server` is a raw TLS server answering one request;
    /// `dummy_ssl_context()` (no verification) is a client trusting the test
    /// CA, so `peercert` is the server's leaf (DER), not `{}`; the
    /// `ssl=True` mock has no counterpart; "the real default context fails"
    /// is a client with no trusted root: `UnknownIssuer`.
    #[tokio::test]
    async fn test_create_ssl_connection() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let server = tokio::spawn(async move {
                serve_http(raw.accept().await).await;
                let (tcp, _) = raw.listener.accept().await.expect("accept");
                raw.acceptor.accept(tcp).await.expect_err("client rejects");
            });
            let (proto, probe) = tap(my_proto());
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            basetest_create_ssl_connection(t, probe, Some(addr), &pki).await;

            let opts = ConnectOptions::new()
                .tls(TlsClientOptions::new(no_roots_client_config()).server_name(localhost()));
            let err = create_connection(Recorder::default, addr, opts)
                .await
                .expect_err("CERTIFICATE_VERIFY_FAILED");
            assert_unknown_issuer(&err);
            server.await.expect("server");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_ssl_unix_connection`.
    ///
    /// Over a `UnixStream::pair()` with `create_connection_with_sock` and
    /// `server_name("localhost")`; a Unix transport has no IP `peername`
    /// (pinned: `None`). The verify-failed half is as in
    /// `test_create_ssl_connection`.
    #[tokio::test]
    async fn test_create_ssl_unix_connection() {
        within(10, async {
            let pki = TestPki::new();
            let (ours, theirs) = UnixStream::pair().expect("pair");
            let acceptor = TlsAcceptor::from(pki.server_config());
            let server = tokio::spawn(async move {
                serve_http(acceptor.accept(theirs).await.expect("handshake")).await;
            });
            let (proto, probe) = tap(my_proto());
            let (t, _done) =
                create_connection_with_sock(move || proto, ours, connect_options(&pki))
                    .await
                    .expect("connect");
            assert_eq!(t.get_extra_info("peername"), None);
            basetest_create_ssl_connection(t, probe, None, &pki).await;
            server.await.expect("server");

            let (ours, theirs) = UnixStream::pair().expect("pair");
            let acceptor = TlsAcceptor::from(pki.server_config());
            let server = tokio::spawn(async move {
                acceptor.accept(theirs).await.expect_err("client rejects");
            });
            let opts = ConnectOptions::new()
                .tls(TlsClientOptions::new(no_roots_client_config()).server_name(localhost()));
            let err = create_connection_with_sock(Recorder::default, ours, opts)
                .await
                .expect_err("CERTIFICATE_VERIFY_FAILED");
            assert_unknown_issuer(&err);
            server.await.expect("server");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_ssl_connect_accepted_socket`.
    ///
    /// Shares its body with `test_ssl.py::TestSSL::test_ssl_connect_accepted_socket`;
    /// the client closes without `close_notify`, so the server protocol ends
    /// with `connection_lost(Some(UnexpectedEof))` (upstream does not check
    /// it).
    #[tokio::test]
    async fn test_ssl_connect_accepted_socket() {
        within(10, super::super::test_ssl::ssl_connect_accepted_socket()).await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_ssl`.
    ///
    /// The client trusts the test CA instead of not verifying; `MyProto`'s
    /// states are the exact callbacks on both sides.
    #[tokio::test]
    async fn test_create_server_ssl() {
        within(10, async {
            let pki = TestPki::new();
            let (factory, mut accepted) = tapped_factory(my_proto);
            let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
                .await
                .expect("server");
            let addr = server.local_addrs()[0];
            assert_eq!(addr.ip().to_string(), "127.0.0.1");
            let (cproto, mut cprobe) = tap(Recorder::default());
            let (client, _done) = create_connection(move || cproto, addr, connect_options(&pki))
                .await
                .expect("connect");
            client.write("xxx").expect("write");
            let mut sp = accepted.next().await;
            let t = sp.made().await;
            assert_eq!(sp.data(3).await, b"xxx");
            check_ssl_extra_info(&client, Some(addr), &pki.server.cert);
            t.close();
            assert_eq!(sp.until_lost().await, [Lost(None)]);
            assert_eq!(
                cprobe.until_lost().await,
                [Made, Data(GET.into()), Eof, Lost(None)]
            );
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Server and client halves of a TLS connection over a Unix socket pair.
    async fn unix_pair(
        server_proto: Recorder,
        client_proto: Recorder,
        server_tls: TlsServerOptions,
        client: ConnectOptions,
    ) -> (
        Result<Transport, Error>,
        crate::support::Probe,
        Result<Transport, Error>,
        crate::support::Probe,
    ) {
        let (a, b) = UnixStream::pair().expect("pair");
        let (sproto, sprobe) = tap(server_proto);
        let (cproto, cprobe) = tap(client_proto);
        let (s, c) = tokio::join!(
            connect_accepted_socket(
                move || sproto,
                a,
                ConnectOptions::new().tls_server(server_tls)
            ),
            create_connection_with_sock(move || cproto, b, client),
        );
        (s.map(|(t, _)| t), sprobe, c.map(|(t, _)| t), cprobe)
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_unix_server_ssl`.
    ///
    /// A socket pair stands for the Unix server (module docs); the client
    /// verifies `localhost` instead of `server_hostname=''`.
    #[tokio::test]
    async fn test_create_unix_server_ssl() {
        within(10, async {
            let pki = TestPki::new();
            let (s, mut sp, c, mut cp) = unix_pair(
                my_proto(),
                Recorder::default(),
                TlsServerOptions::new(pki.server_config()),
                connect_options(&pki),
            )
            .await;
            let (t, client) = (s.expect("server side"), c.expect("client side"));
            client.write("xxx").expect("write");
            assert_eq!(sp.next().await, Made);
            assert_eq!(sp.data(3).await, b"xxx");
            t.close();
            assert_eq!(sp.until_lost().await, [Lost(None)]);
            assert_eq!(
                cp.until_lost().await,
                [Made, Data(GET.into()), Eof, Lost(None)]
            );
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_ssl_verify_failed`.
    ///
    /// "certificate verify failed" is `UnknownIssuer`; the server protocol
    /// never exists: its factory is never called.
    #[tokio::test]
    async fn test_create_server_ssl_verify_failed() {
        within(10, async {
            let pki = TestPki::new();
            let (factory, calls) = counting(my_proto);
            let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
                .await
                .expect("server");
            let opts = ConnectOptions::new()
                .tls(TlsClientOptions::new(no_roots_client_config()).server_name(localhost()));
            let err = create_connection(my_proto, server.local_addrs()[0], opts)
                .await
                .expect_err("no CA loaded");
            assert_unknown_issuer(&err);
            server.close();
            server.wait_closed().await;
            assert_eq!(calls.load(Ordering::SeqCst), 0);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_unix_server_ssl_verify_failed`.
    ///
    /// Over a socket pair (module docs): the client fails with
    /// `UnknownIssuer`, and the server side's `connect_accepted_socket`
    /// fails too, so no server protocol sees `connection_made`.
    #[tokio::test]
    async fn test_create_unix_server_ssl_verify_failed() {
        within(10, async {
            let pki = TestPki::new();
            let (s, mut sp, c, mut cp) = unix_pair(
                my_proto(),
                my_proto(),
                TlsServerOptions::new(pki.server_config()),
                ConnectOptions::new()
                    .tls(TlsClientOptions::new(no_roots_client_config()).server_name(localhost())),
            )
            .await;
            assert_unknown_issuer(&c.expect_err("no CA loaded"));
            let err = s.expect_err("the client aborted the handshake");
            assert!(matches!(err, Error::Tls(_)), "{err:?}");
            sp.finished().await;
            cp.finished().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_ssl_match_failed`.
    ///
    /// The test leaf covers `127.0.0.1`, so a name it lacks
    /// (`wrong.example`) stands for the IP mismatch; `CertificateError` is
    /// `rustls`' `NotValidForName`; the server factory is never called.
    #[tokio::test]
    async fn test_create_server_ssl_match_failed() {
        within(10, async {
            let pki = TestPki::new();
            let (factory, calls) = counting(my_proto);
            let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
                .await
                .expect("server");
            let opts = ConnectOptions::new().tls(
                TlsClientOptions::new(pki.client_config())
                    .server_name("wrong.example".try_into().expect("name")),
            );
            let err = create_connection(my_proto, server.local_addrs()[0], opts)
                .await
                .expect_err("name mismatch");
            assert!(
                matches!(
                    err.tls_error(),
                    Some(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForName
                            | rustls::CertificateError::NotValidForNameContext { .. }
                    ))
                ),
                "{err:?}"
            );
            server.close();
            server.wait_closed().await;
            assert_eq!(calls.load(Ordering::SeqCst), 0);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_unix_server_ssl_verified`.
    ///
    /// Over a socket pair (module docs). Both protocols are `MyProto`; the
    /// server closes after the client's request, and the client ends on the
    /// server's `close_notify` rather than its own `close()`, so both
    /// sequences are exact.
    #[tokio::test]
    async fn test_create_unix_server_ssl_verified() {
        within(10, async {
            let pki = TestPki::new();
            let (s, mut sp, c, mut cp) = unix_pair(
                my_proto(),
                my_proto(),
                TlsServerOptions::new(pki.server_config()),
                ConnectOptions::new().tls(client_tls(&pki)),
            )
            .await;
            let (t, _client) = (s.expect("server side"), c.expect("client side"));
            assert_eq!(sp.next().await, Made);
            assert_eq!(sp.data(GET.len()).await, GET);
            t.close();
            assert_eq!(sp.until_lost().await, [Lost(None)]);
            assert_eq!(
                cp.until_lost().await,
                [Made, Data(GET.into()), Eof, Lost(None)]
            );
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_create_server_ssl_verified`.
    ///
    /// `peercert` is compared as the leaf's DER instead of Python's
    /// `getpeercert()` dict; the close is ordered as in
    /// `test_create_unix_server_ssl_verified`.
    #[tokio::test]
    async fn test_create_server_ssl_verified() {
        within(10, async {
            let pki = TestPki::new();
            let (factory, mut accepted) = tapped_factory(my_proto);
            let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
                .await
                .expect("server");
            let addr = server.local_addrs()[0];
            let (cproto, mut cp) = tap(my_proto());
            let (client, _done) = create_connection(move || cproto, addr, connect_options(&pki))
                .await
                .expect("right CA and name");
            check_ssl_extra_info(&client, Some(addr), &pki.server.cert);
            let mut sp = accepted.next().await;
            let t = sp.made().await;
            assert_eq!(sp.data(GET.len()).await, GET);
            t.close();
            assert_eq!(sp.until_lost().await, [Lost(None)]);
            assert_eq!(
                cp.until_lost().await,
                [Made, Data(GET.into()), Eof, Lost(None)]
            );
            server.close();
            server.wait_closed().await;
        })
        .await;
    }
}
