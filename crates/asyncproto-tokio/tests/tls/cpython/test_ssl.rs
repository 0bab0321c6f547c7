//! `Lib/test/test_asyncio/test_ssl.py` (CPython 3.11.7), the TLS rows of
//! `TestSSL`. Rows shared with `test_sslproto.py` call its bodies; Python's
//! streams become tapped protocols and its threads Tokio tasks.

#[expect(
    clippy::module_inception,
    reason = "module = file, then class: test_ssl.py::TestSSL"
)]
mod test_ssl {
    use std::{io, sync::Arc, time::Duration};

    use asyncproto_core::{
        Bytes,
        testing::{
            Event::{Data, Eof, Lost, Made, PauseWriting, ResumeWriting},
            Recorder,
        },
    };
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::{
        ConnectOptions, Error, TlsClientOptions, TlsServerOptions, TlsUpgrade, create_connection,
        create_connection_with_sock, create_server, start_tls,
    };
    use socket2::SockRef;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::{mpsc, oneshot},
    };
    use tokio_rustls::TlsAcceptor;

    use super::super::test_sslproto as shared;
    use crate::{
        peers::{
            self, RawServer, connect_options, counting, drop_client_without_close_notify,
            drop_server_without_close_notify, localhost, read_record, read_until_gone,
            server_options,
        },
        support::{raw_listener, tap, tapped_factory, within},
    };

    /// CPython's `BUF_MULTIPLIER` sizes on Linux: 1 MiB per message.
    const MIB: usize = 1024 * 1024;
    const TOTAL_CNT: usize = 25;

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_create_server_ssl_1`.
    ///
    /// `start_server` + streams become a protocol that answers `OK` after
    /// `A_DATA`, then `writelines([SP, A, M])` and `close()` after `B_DATA`;
    /// the 25 clients are raw `tokio-rustls` streams that read our
    /// `close_notify` and then close without theirs, which ends each
    /// server connection cleanly (a bare FIN after our `close_notify`).
    #[tokio::test]
    async fn test_create_server_ssl_1() {
        within(60, async {
            let pki = TestPki::new();
            let (factory, mut accepted) = tapped_factory(|| {
                let mut got = 0;
                Recorder::default().on_event(move |e, t| {
                    if let Data(d) = e {
                        let before = got;
                        got += d.len();
                        if before < MIB && got >= MIB {
                            t.write("OK").expect("OK");
                        }
                        if got == 2 * MIB {
                            t.writelines([
                                Bytes::from_static(b"SP"),
                                Bytes::from_static(b"A"),
                                Bytes::from_static(b"M"),
                            ])
                            .expect("writelines");
                            t.close();
                        }
                    }
                })
            });
            let opts = asyncproto_tokio::ServerOptions::new().tls(
                TlsServerOptions::new(pki.server_config())
                    .handshake_timeout(Duration::from_secs(30)),
            );
            let server = create_server(factory, "127.0.0.1:0", opts)
                .await
                .expect("server");
            let addr = server.local_addrs()[0];
            let clients: Vec<_> = (0..TOTAL_CNT)
                .map(|_| {
                    let pki = pki.clone();
                    tokio::spawn(async move {
                        let mut s = peers::client(&pki, addr).await;
                        s.write_all(&vec![b'A'; MIB]).await.expect("A_DATA");
                        let mut ok = [0; 2];
                        s.read_exact(&mut ok).await.expect("OK");
                        assert_eq!(&ok, b"OK");
                        s.write_all(&vec![b'B'; MIB]).await.expect("B_DATA");
                        let mut spam = [0; 4];
                        s.read_exact(&mut spam).await.expect("SPAM");
                        assert_eq!(&spam, b"SPAM");
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).await.expect("server close_notify");
                        assert!(rest.is_empty());
                        drop_client_without_close_notify(s).await;
                    })
                })
                .collect();
            let mut expect = vec![b'A'; MIB];
            expect.extend_from_slice(&vec![b'B'; MIB]);
            for _ in 0..TOTAL_CNT {
                let mut sp = accepted.next().await;
                assert_eq!(
                    sp.until_lost().await,
                    [Made, Data(expect.clone().into()), Lost(None)]
                );
            }
            for c in clients {
                c.await.expect("client");
            }
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// A raw TLS server for `test_create_connection_ssl_1`: `A_DATA` in,
    /// `OK` out, `B_DATA` in, `SPAM` out, then a close without
    /// `close_notify` once ours has arrived.
    async fn serve_a_b(raw: Arc<RawServer>) {
        let mut s = raw.accept().await;
        let mut data = vec![0; MIB];
        s.read_exact(&mut data).await.expect("A_DATA");
        assert!(data.iter().all(|&b| b == b'A'));
        s.write_all(b"OK").await.expect("OK");
        s.read_exact(&mut data).await.expect("B_DATA");
        assert!(data.iter().all(|&b| b == b'B'));
        s.write_all(b"SPAM").await.expect("SPAM");
        s.flush().await.expect("flush");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.expect("client close_notify");
        drop_server_without_close_notify(s).await;
    }

    /// The client half of `test_create_connection_ssl_1`.
    async fn client_a_b(t: asyncproto_core::Transport, mut probe: crate::support::Probe) {
        assert_eq!(probe.next().await, Made);
        t.write(vec![b'A'; MIB]).expect("A_DATA");
        // 1 MiB over the 512 KiB TLS high mark.
        assert_eq!(probe.next().await, PauseWriting);
        assert_eq!(probe.next().await, ResumeWriting);
        assert_eq!(probe.data(2).await, b"OK");
        t.write(vec![b'B'; MIB]).expect("B_DATA");
        assert_eq!(probe.next().await, PauseWriting);
        assert_eq!(probe.next().await, ResumeWriting);
        assert_eq!(probe.data(4).await, b"SPAM");
        t.close();
        assert_eq!(probe.until_lost().await, [Lost(None)]);
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_create_connection_ssl_1`.
    ///
    /// Streams become a tapped protocol; the raw server waits for our
    /// `close_notify` before its bare close, so the end is deterministic:
    /// `connection_lost(None)` (a bare FIN after our `close_notify` is a
    /// clean end). 25 clients by address, then 25 with `sock=`.
    #[tokio::test]
    async fn test_create_connection_ssl_1() {
        within(60, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let raw = Arc::new(raw);
            for with_sock in [false, true] {
                let mut tasks = Vec::new();
                for _ in 0..TOTAL_CNT {
                    tasks.push(tokio::spawn(serve_a_b(Arc::clone(&raw))));
                    let pki = pki.clone();
                    tasks.push(tokio::spawn(async move {
                        let (proto, probe) = tap(Recorder::default());
                        let opts = connect_options(&pki);
                        let (t, _done) = if with_sock {
                            let sock = TcpStream::connect(addr).await.expect("connect");
                            create_connection_with_sock(move || proto, sock, opts).await
                        } else {
                            create_connection(move || proto, addr, opts).await
                        }
                        .expect("TLS connect");
                        client_a_b(t, probe).await;
                    }));
                }
                for task in tasks {
                    task.await.expect("task");
                }
            }
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_ssl.py::TestSSL::test_create_connection_ssl_slow_handshake`.
    ///
    /// Shares its body with the `test_sslproto.py` port (0.2 s real timeout
    /// over loopback, typed `TlsHandshakeTimeout`).
    #[test]
    fn test_create_connection_ssl_slow_handshake() {
        shared::create_connection_ssl_slow_handshake();
    }

    /// Port of CPython 3.11.7
    /// `test_ssl.py::TestSSL::test_create_connection_ssl_failed_certificate`.
    ///
    /// Shares its body with the `test_sslproto.py` port.
    #[tokio::test]
    async fn test_create_connection_ssl_failed_certificate() {
        within(10, shared::create_connection_ssl_failed_certificate()).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_ssl_handshake_timeout`.
    ///
    /// As `test_sslproto.py::SelectorStartTLSTests::test_handshake_timeout`
    /// (shared body): an outer 0.5 s timeout drops the connect; nothing
    /// logged; the context freed.
    #[test]
    fn test_ssl_handshake_timeout() {
        shared::handshake_cancelled_by_outer_timeout();
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_ssl_handshake_connection_lost`.
    ///
    /// The server reads the whole `ClientHello` (not 1024 bytes) before
    /// closing, so it sends a FIN; the protocol, built before the call, is
    /// dropped without any callback.
    #[tokio::test]
    async fn test_ssl_handshake_connection_lost() {
        within(10, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let server = tokio::spawn(async move {
                let (mut tcp, _) = listener.accept().await.expect("accept");
                read_record(&mut tcp).await;
            });
            let (proto, mut probe) = tap(Recorder::default());
            let err = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect_err("ConnectionResetError");
            assert!(
                matches!(&err, Error::Tls(e) if e.kind() == io::ErrorKind::ConnectionReset),
                "{err:?}"
            );
            probe.finished().await;
            server.await.expect("server");
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_ssl_connect_accepted_socket`.
    ///
    /// 3.11.7's body is a stub; this runs the complete version, sharing the
    /// body of `test_events.py::EPollEventLoopTests::test_ssl_connect_accepted_socket`.
    #[tokio::test]
    async fn test_ssl_connect_accepted_socket() {
        within(10, ssl_connect_accepted_socket()).await;
    }

    /// `_basetest_connect_accepted_socket(server_ssl, client_ssl)`: the
    /// client closes without `close_notify`, so the server protocol ends
    /// with the truncation error (upstream does not check it).
    pub(crate) async fn ssl_connect_accepted_socket() {
        let pki = TestPki::new();
        let lsock = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = lsock.local_addr().expect("addr");
        let message = b"test data";
        let client_pki = pki.clone();
        let client = tokio::spawn(async move {
            let mut csock = peers::client(&client_pki, addr).await;
            csock.write_all(message).await.expect("sendall");
            let mut response = [0; 99];
            let n = csock.read(&mut response).await.expect("recv");
            drop_client_without_close_notify(csock).await;
            response[..n].to_vec()
        });
        let (conn, _) = lsock.accept().await.expect("accept");
        let (proto, mut probe) = tap(Recorder::default().on_event(|e, t| {
            if matches!(e, Data(_)) {
                t.write("roger").expect("write");
            }
        }));
        let opts = ConnectOptions::new().tls_server(TlsServerOptions::new(pki.server_config()));
        let (tr, _done) = asyncproto_tokio::connect_accepted_socket(move || proto, conn, opts)
            .await
            .expect("connect_accepted_socket");
        assert!(tr.is_tls());
        assert_eq!(probe.next().await, Made);
        assert_eq!(
            probe.until_lost().await,
            [
                Data(message[..].into()),
                Lost(Some(io::ErrorKind::UnexpectedEof))
            ]
        );
        assert_eq!(client.await.expect("client"), b"roger");
        tr.close();
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_start_tls_client_corrupted_ssl`.
    ///
    /// Shares its body with the `test_sslproto.py` port.
    #[tokio::test]
    async fn test_start_tls_client_corrupted_ssl() {
        within(10, shared::start_tls_client_corrupted_ssl()).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_start_tls_client_reg_proto_1`.
    ///
    /// Shares its body with the `test_sslproto.py` port; this server ends
    /// with `close_notify` (`unwrap()`), so the client gets `eof_received`.
    #[tokio::test]
    async fn test_start_tls_client_reg_proto_1() {
        within(20, shared::start_tls_client_reg_proto_1(true)).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_create_connection_memory_leak`.
    ///
    /// The weakref is `Arc::strong_count` of the client configuration (shared
    /// body); the clean end keeps `eof_received`.
    #[tokio::test]
    async fn test_create_connection_memory_leak() {
        within(20, shared::create_connection_memory_leak(true)).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_start_tls_client_buf_proto_1`.
    ///
    /// Kind switch through `set_protocol` (shared body); the clean end keeps
    /// `eof_received`.
    #[tokio::test]
    async fn test_start_tls_client_buf_proto_1() {
        within(20, shared::start_tls_client_buf_proto_1(true)).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_start_tls_slow_client_cancel`.
    ///
    /// Shares its body with the `test_sslproto.py` port (`wait_for` is
    /// `tokio::time::timeout`).
    #[tokio::test]
    async fn test_start_tls_slow_client_cancel() {
        within(20, shared::start_tls_slow_client_cancel()).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_start_tls_server_1`.
    ///
    /// Shares its body with the `test_sslproto.py` port; this client ends
    /// with `close_notify`, so the server gets `eof_received` then
    /// `connection_lost(None)`.
    #[tokio::test]
    async fn test_start_tls_server_1() {
        within(20, shared::start_tls_server_1(true)).await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_create_server_ssl_over_ssl`.
    ///
    /// Decided: `start_tls` does not take a TLS transport. The server
    /// protocol's `start_tls` from `connection_made` fails with
    /// `Unsupported`, and the TLS connection goes on untouched (one client
    /// instead of 25; there is no second layer to exchange data through).
    #[tokio::test]
    async fn test_create_server_ssl_over_ssl() {
        within(10, async {
            let pki = TestPki::new();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let config = pki.server_config();
            let (factory, mut accepted) = tapped_factory(move || {
                let tx = tx.clone();
                let config = Arc::clone(&config);
                Recorder::default().on_event(move |e, t| match e {
                    Made => {
                        let fut = start_tls(
                            t,
                            TlsUpgrade::server(TlsServerOptions::new(Arc::clone(&config))),
                        );
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(fut.await.map(|_| ()));
                        });
                    }
                    Data(d) => t.write(d.clone()).expect("echo"),
                    _ => {}
                })
            });
            let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
                .await
                .expect("server");
            let mut raw = peers::client(&pki, server.local_addrs()[0]).await;
            let res = rx.recv().await.expect("start_tls result");
            assert!(
                matches!(
                    res,
                    Err(Error::Protocol(asyncproto_core::Error::Unsupported {
                        method: "start_tls"
                    }))
                ),
                "{res:?}"
            );
            raw.write_all(b"ping").await.expect("ping");
            let mut pong = [0; 4];
            raw.read_exact(&mut pong).await.expect("echo");
            assert_eq!(&pong, b"ping");
            raw.shutdown().await.expect("close_notify");
            let mut sp = accepted.next().await;
            assert_eq!(
                sp.until_lost().await,
                [Made, Data("ping".into()), Eof, Lost(None)]
            );
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_shutdown_cleanly`.
    ///
    /// Streams become a tapped protocol; `reader.read() == b''` is
    /// `eof_received`, after which the transport closes itself.
    #[tokio::test]
    async fn test_shutdown_cleanly() {
        within(60, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let raw = Arc::new(raw);
            let mut tasks = Vec::new();
            for _ in 0..TOTAL_CNT {
                let raw = Arc::clone(&raw);
                tasks.push(tokio::spawn(async move {
                    let mut s = raw.accept().await;
                    let mut data = vec![0; MIB];
                    s.read_exact(&mut data).await.expect("A_DATA");
                    s.write_all(b"OK").await.expect("OK");
                    s.shutdown().await.expect("close_notify");
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).await.expect("client close_notify");
                    assert!(rest.is_empty());
                }));
                let pki = pki.clone();
                tasks.push(tokio::spawn(async move {
                    let (proto, mut probe) = tap(Recorder::default());
                    let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                        .await
                        .expect("connect");
                    assert_eq!(probe.next().await, Made);
                    t.write(vec![b'A'; MIB]).expect("A_DATA");
                    assert_eq!(probe.next().await, PauseWriting);
                    assert_eq!(probe.next().await, ResumeWriting);
                    assert_eq!(
                        probe.until_lost().await,
                        [Data("OK".into()), Eof, Lost(None)]
                    );
                }));
            }
            for task in tasks {
                task.await.expect("task");
            }
        })
        .await;
    }

    /// Shrinks our socket's send buffer so that a write backlog stays in the
    /// transport (CPython pauses the SSL protocol instead).
    fn small_sndbuf(t: &asyncproto_core::Transport) {
        t.with_socket(|fd| {
            SockRef::from(&fd)
                .set_send_buffer_size(16 * 1024)
                .expect("SO_SNDBUF");
        })
        .expect("socket");
    }

    const CHUNK: usize = 128 * 1024;
    const SIZE: usize = 32;

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_flush_before_shutdown`.
    ///
    /// No hook pauses the TLS layer: a small `SO_SNDBUF` here and a raw
    /// server that does not read until we have called `close()` build the
    /// 4 MiB backlog instead; every byte arrives before our `close_notify`.
    #[tokio::test]
    async fn test_flush_before_shutdown() {
        within(30, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(Some(16 * 1024));
            let acceptor = TlsAcceptor::from(pki.server_config());
            let (go_tx, go) = oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.expect("accept");
                let mut s = acceptor.accept(tcp).await.expect("handshake");
                let mut ping = [0; 4];
                s.read_exact(&mut ping).await.expect("ping");
                assert_eq!(&ping, b"ping");
                s.write_all(b"pong").await.expect("pong");
                s.flush().await.expect("flush");
                go.await.expect("client closed");
                let mut data = Vec::new();
                s.read_to_end(&mut data)
                    .await
                    .expect("everything, then close_notify");
                s.shutdown().await.expect("close_notify");
                data
            });
            let (proto, mut probe) = tap(Recorder::default());
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            small_sndbuf(&t);
            t.write("ping").expect("ping");
            assert_eq!(probe.data(4).await, b"pong");
            for _ in 0..SIZE {
                t.write(vec![b'x'; CHUNK]).expect("chunk");
            }
            t.close();
            assert!(t.get_write_buffer_size() > 0, "a backlog at close()");
            go_tx.send(()).expect("server");
            // resume_writing still comes while the closing transport drains.
            assert_eq!(
                probe.until_lost().await,
                [PauseWriting, ResumeWriting, Lost(None)]
            );
            let data = server.await.expect("server");
            assert_eq!(data.len(), CHUNK * SIZE);
            assert!(data.iter().all(|&b| b == b'x'));
        })
        .await;
    }

    /// One run of `test_remote_shutdown_receives_trailing_data`: the server
    /// ends its side with `close_notify` (`clean`) or a bare FIN while our
    /// 4 MiB backlog is pending; returns our callbacks after `pong` and how
    /// many bytes the server read.
    async fn remote_shutdown_with_backlog(
        clean: bool,
    ) -> (Vec<asyncproto_core::testing::Event>, usize) {
        let pki = TestPki::new();
        let (listener, addr) = raw_listener(Some(16 * 1024));
        let acceptor = TlsAcceptor::from(pki.server_config());
        let (go_tx, go) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut s = acceptor.accept(tcp).await.expect("handshake");
            let mut ping = [0; 4];
            s.read_exact(&mut ping).await.expect("ping");
            s.write_all(b"pong").await.expect("pong");
            s.flush().await.expect("flush");
            go.await.expect("backlog filled");
            if clean {
                // close_notify, but TCP stays open both ways.
                s.get_mut().1.send_close_notify();
                s.flush().await.expect("close_notify");
            } else {
                s.get_mut().0.shutdown().await.expect("FIN");
            }
            let mut n = 0;
            let mut buf = vec![0; 64 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        });
        let (proto, mut probe) = tap(Recorder::default());
        let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
            .await
            .expect("connect");
        assert_eq!(probe.next().await, Made);
        small_sndbuf(&t);
        t.write("ping").expect("ping");
        assert_eq!(probe.data(4).await, b"pong");
        for _ in 0..SIZE {
            t.write(vec![b'x'; CHUNK]).expect("chunk");
        }
        go_tx.send(()).expect("server");
        let events = probe.until_lost().await;
        (events, server.await.expect("server"))
    }

    /// Port of CPython 3.11.7
    /// `test_ssl.py::TestSSL::test_remote_shutdown_receives_trailing_data`.
    ///
    /// The backlog is 32 plain writes against a small `SO_SNDBUF` and a
    /// server that does not read, not `_test__append_write_backlog`. With
    /// the server's `close_notify`: `eof_received`, the whole backlog, our
    /// `close_notify`, `connection_lost(None)`. With a bare FIN asyncproto
    /// reports the truncation, and (pinned) the connection ends at once with
    /// `connection_lost(Some(UnexpectedEof))`: the backlog is dropped, where
    /// asyncio flushes it (a difference to document).
    #[tokio::test]
    async fn test_remote_shutdown_receives_trailing_data() {
        within(30, async {
            let (events, n) = remote_shutdown_with_backlog(true).await;
            assert_eq!(events, [PauseWriting, Eof, ResumeWriting, Lost(None)]);
            assert_eq!(n, CHUNK * SIZE);
            let (events, n) = remote_shutdown_with_backlog(false).await;
            assert_eq!(
                events,
                [PauseWriting, Lost(Some(io::ErrorKind::UnexpectedEof))]
            );
            assert!(
                n < CHUNK * SIZE,
                "the backlog is dropped: {n} bytes arrived"
            );
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_connect_timeout_warning`.
    ///
    /// `ResourceWarning` becomes the peer seeing our socket closed (EOF)
    /// right after the outer timeout dropped the connect; counting the
    /// process's fds is racy while other tests run in parallel.
    #[tokio::test]
    async fn test_connect_timeout_warning() {
        within(10, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let server = tokio::spawn(async move {
                let (mut tcp, _) = listener.accept().await.expect("accept");
                read_until_gone(&mut tcp).await
            });
            let (factory, calls) = counting(Recorder::default);
            let res = tokio::time::timeout(
                Duration::from_millis(100),
                create_connection(factory, addr, connect_options(&pki)),
            )
            .await;
            assert!(res.is_err(), "TimeoutError");
            let got = server.await.expect("server");
            assert_eq!(got.first(), Some(&0x16), "ClientHello, then closed");
            assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_handshake_timeout_handler_leak`.
    ///
    /// The weakref is `Arc::strong_count` of the client configuration and
    /// the protocol's drop (its probe closing); both after the outer 0.1 s
    /// timeout and after the handshake's own timeout.
    #[tokio::test]
    async fn test_handshake_timeout_handler_leak() {
        within(10, async {
            let pki = TestPki::new();
            // Listening, never accepting: the TCP connect succeeds, the
            // handshake never gets an answer.
            let (_listener, addr) = raw_listener(None);
            let config = pki.client_config();
            let tls = TlsClientOptions::new(Arc::clone(&config)).server_name(localhost());

            let (proto, mut probe) = tap(Recorder::default());
            let res = tokio::time::timeout(
                Duration::from_millis(100),
                create_connection(move || proto, addr, ConnectOptions::new().tls(tls.clone())),
            )
            .await;
            assert!(res.is_err(), "TimeoutError");
            probe.finished().await;
            assert_eq!(Arc::strong_count(&config), 2, "ours and `tls`");

            let (proto, mut probe) = tap(Recorder::default());
            let opts = ConnectOptions::new().tls(tls.handshake_timeout(Duration::from_millis(100)));
            let err = create_connection(move || proto, addr, opts)
                .await
                .expect_err("handshake timeout");
            assert!(matches!(err, Error::TlsHandshakeTimeout { .. }), "{err:?}");
            probe.finished().await;
            assert_eq!(Arc::strong_count(&config), 1, "the context is freed");
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_shutdown_timeout_handler_leak`.
    ///
    /// The server closes without `close_notify` after reading ours (a clean
    /// end for us); the weakref is `Arc::strong_count` of the client
    /// configuration once the protocol is dropped.
    #[tokio::test]
    async fn test_shutdown_timeout_handler_leak() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                let mut buf = [0; 32];
                assert_eq!(s.read(&mut buf).await.expect("close_notify"), 0);
                drop_server_without_close_notify(s).await;
            });
            let config = pki.client_config();
            let opts = ConnectOptions::new()
                .tls(TlsClientOptions::new(Arc::clone(&config)).server_name(localhost()));
            let (proto, mut probe) = tap(Recorder::default());
            let (t, done) = create_connection(move || proto, addr, opts)
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            t.close();
            assert_eq!(probe.until_lost().await, [Lost(None)]);
            drop(t);
            drop(probe);
            drop(done.await.expect("protocol"));
            server.await.expect("server");
            assert_eq!(Arc::strong_count(&config), 1, "the context is freed");
        })
        .await;
    }

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_shutdown_timeout_handler_not_set`.
    ///
    /// The bytes that came while reading was paused are delivered after
    /// `resume_reading()`; the server's bare FIN then ends the connection
    /// with `connection_lost(Some(UnexpectedEof))`, not `None` (documented
    /// difference: truncation is reported).
    #[tokio::test]
    async fn test_shutdown_timeout_handler_not_set() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let (eof_tx, eof) = oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                s.write_all(b"hello").await.expect("hello");
                s.flush().await.expect("flush");
                let mut world = [0; 5];
                s.read_exact(&mut world).await.expect("world");
                assert_eq!(&world, b"world");
                s.write_all(b"extra bytes").await.expect("extra");
                s.flush().await.expect("flush");
                s.get_mut().0.shutdown().await.expect("FIN");
                eof_tx.send(()).expect("signal");
                let mut rest = Vec::new();
                let _ = s.get_mut().0.read_to_end(&mut rest).await;
            });
            let (proto, mut probe) = tap(Recorder::default().on_event(|e, t| {
                if *e == Data("hello".into()) {
                    t.write("world").expect("world");
                    t.pause_reading();
                }
            }));
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            assert_eq!(probe.next().await, Data("hello".into()));
            eof.await.expect("server sent EOF");
            t.resume_reading();
            assert_eq!(
                probe.until_lost().await,
                [
                    Data("extra bytes".into()),
                    Lost(Some(io::ErrorKind::UnexpectedEof))
                ]
            );
            server.await.expect("server");
        })
        .await;
    }
}

pub(crate) use test_ssl::ssl_connect_accepted_socket;
