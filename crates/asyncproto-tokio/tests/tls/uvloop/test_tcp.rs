//! uvloop `tests/test_tcp.py` (at `0582f94`), the TLS rows.

mod test_uv_tcpssl {
    use std::{io, io::Read, sync::Arc, time::Duration};

    use asyncproto_core::testing::{
        Event::{Data, Eof, Lost, Made},
        Recorder,
    };
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::{
        ServerOptions, TlsServerOptions, TlsUpgrade, create_connection, create_server, start_tls,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{
        peers::{
            self, RawServer, connect_options, drop_server_without_close_notify,
            handshake_with_first_data,
        },
        support::{tap, tapped_factory, within},
    };

    /// Port of uvloop `tests/test_tcp.py::Test_UV_TCPSSL::test_shutdown_timeout`
    /// (uvloop only; asyncio 3.11 has the same `ssl_shutdown_timeout`).
    ///
    /// Over loopback with the upstream 0.5 s real shutdown timeout instead of
    /// a paused clock; the raw clients read our `close_notify` and then hold
    /// the socket open without answering until the server gave up;
    /// `TimeoutError('SSL shutdown timed out')` is
    /// `connection_lost(Some(TlsShutdownTimeout))`.
    #[tokio::test]
    async fn test_shutdown_timeout() {
        within(30, async {
            const TOTAL_CNT: usize = 25;
            const A: usize = 1024 * 1024;
            let pki = TestPki::new();
            let (factory, mut accepted) = tapped_factory(|| {
                let mut got = 0;
                Recorder::default().on_event(move |e, t| {
                    if let Data(d) = e {
                        got += d.len();
                        if got == A {
                            t.write("OK").expect("OK");
                            t.close();
                        }
                    }
                })
            });
            let opts = ServerOptions::new().tls(
                TlsServerOptions::new(pki.server_config())
                    .handshake_timeout(Duration::from_secs(10))
                    .shutdown_timeout(Duration::from_millis(500)),
            );
            let server = create_server(factory, "127.0.0.1:0", opts)
                .await
                .expect("server");
            let addr = server.local_addrs()[0];
            let (release_tx, release) = tokio::sync::watch::channel(false);
            let clients: Vec<_> = (0..TOTAL_CNT)
                .map(|_| {
                    let pki = pki.clone();
                    let mut release = release.clone();
                    tokio::spawn(async move {
                        let mut s = peers::client(&pki, addr).await;
                        s.write_all(&vec![b'A'; A]).await.expect("A_DATA");
                        let mut ok = [0; 2];
                        s.read_exact(&mut ok).await.expect("OK");
                        assert_eq!(&ok, b"OK");
                        let mut buf = [0; 1024];
                        assert_eq!(s.read(&mut buf).await.expect("close_notify"), 0);
                        // Never answer; keep TCP open until told.
                        release.wait_for(|r| *r).await.expect("release");
                    })
                })
                .collect();
            for _ in 0..TOTAL_CNT {
                let mut sp = accepted.next().await;
                assert_eq!(sp.next().await, Made);
                assert_eq!(sp.data(A).await.len(), A);
                assert_eq!(sp.until_lost().await, [Lost(Some(io::ErrorKind::TimedOut))]);
                assert!(matches!(
                    sp.lost_error(),
                    Some(asyncproto_core::Error::TlsShutdownTimeout { .. })
                ));
            }
            release_tx.send(true).expect("release");
            for c in clients {
                c.await.expect("client");
            }
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// One run of `test_write_to_closed_transport`: the server reads our
    /// first write, then ends with `close_notify` (`unwrap`) or a bare
    /// close.
    async fn write_to_closed_transport(unwrap: bool) {
        const NOWHERE1: &[u8] = b"I AM WRITING NOWHERE1";
        let pki = TestPki::new();
        let (raw, addr) = RawServer::bind(&pki).await;
        let server = tokio::spawn(async move {
            let mut s = raw.accept().await;
            let mut first = vec![0; NOWHERE1.len() * 100];
            s.read_exact(&mut first).await.expect("NOWHERE1");
            if unwrap {
                s.shutdown().await.expect("close_notify");
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
            } else {
                drop_server_without_close_notify(s).await;
            }
        });
        let (proto, mut probe) = tap(Recorder::default());
        let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
            .await
            .expect("connect");
        assert_eq!(probe.next().await, Made);
        t.write(NOWHERE1.repeat(100)).expect("write");
        let end = if unwrap {
            vec![Eof, Lost(None)]
        } else {
            vec![Lost(Some(io::ErrorKind::UnexpectedEof))]
        };
        assert_eq!(probe.until_lost().await, end);
        for _ in 0..25 {
            t.write(b"I AM WRITING NOWHERE2".repeat(100))
                .expect("dropped, not an error");
        }
        assert_eq!(t.get_write_buffer_size(), 0);
        server.await.expect("server");
    }

    /// Port of uvloop `tests/test_tcp.py::Test_UV_TCPSSL::test_write_to_closed_transport`
    /// (uvloop only).
    ///
    /// Both servers read our first write before ending, so the bare close
    /// is a FIN (`connection_lost(Some(UnexpectedEof))`, DESIGN.md point 11)
    /// rather than a possible reset; with `unwrap()` the end is
    /// `eof_received`, `connection_lost(None)`. Then 25 writes leave the
    /// buffer empty.
    #[tokio::test]
    async fn test_write_to_closed_transport() {
        within(10, async {
            write_to_closed_transport(false).await;
            write_to_closed_transport(true).await;
        })
        .await;
    }

    /// Port of uvloop `tests/test_tcp.py::Test_UV_TCPSSL::test_shutdown_while_pause_reading`
    /// (uvloop only).
    ///
    /// The raw server sends trailing data right after the handshake, reads
    /// our `close_notify`, answers with its own and sees our socket close.
    /// Departure: asyncio 3.11's `_do_shutdown` calls `eof_received` when
    /// the peer's `close_notify` completes our shutdown; asyncproto calls no
    /// protocol callback but `connection_lost` after `close()` (see the
    /// migration guide, "Why is there no `eof_received` after our own TLS
    /// `close()`?"), so the sequence is `[Lost(None)]`; what is pinned is
    /// that the shutdown completes although reading was paused.
    #[tokio::test]
    async fn test_shutdown_while_pause_reading() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                s.write_all(b"trailing data").await.expect("trailing");
                s.flush().await.expect("flush");
                let mut buf = [0; 64];
                assert_eq!(s.read(&mut buf).await.expect("close_notify"), 0);
                s.shutdown().await.expect("close_notify");
                let mut rest = Vec::new();
                assert_eq!(s.get_mut().0.read_to_end(&mut rest).await.expect("EOF"), 0);
            });
            let (proto, mut probe) = tap(Recorder::default());
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            t.pause_reading();
            t.close();
            assert_eq!(probe.until_lost().await, [Lost(None)]);
            server.await.expect("server");
        })
        .await;
    }

    /// Port of uvloop `tests/test_tcp.py::Test_UV_TCPSSL::test_first_data_after_wakeup`
    /// (uvloop only).
    ///
    /// `start_tls` is requested from `connection_made` (the request takes
    /// effect at the call, no coroutine stepping needed); the client is a
    /// `rustls` connection driven by hand on a blocking thread so that
    /// `hello` rides with its Finished. It closes without `close_notify`,
    /// so the server protocol ends with the truncation error.
    #[tokio::test]
    async fn test_first_data_after_wakeup() {
        within(10, async {
            let pki = TestPki::new();
            let config = pki.server_config();
            let (factory, mut accepted) = tapped_factory(move || {
                let config = Arc::clone(&config);
                Recorder::default().on_event(move |e, t| match e {
                    Made => {
                        let fut = start_tls(
                            t,
                            TlsUpgrade::server(
                                TlsServerOptions::new(Arc::clone(&config))
                                    .handshake_timeout(Duration::from_secs(10)),
                            ),
                        );
                        tokio::spawn(async move { fut.await.expect("start_tls") });
                    }
                    Data(d) => t.write(d.clone()).expect("echo"),
                    _ => {}
                })
            });
            let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
                .await
                .expect("server");
            let addr = server.local_addrs()[0];
            let client_config = pki.client_config();
            let client = tokio::task::spawn_blocking(move || {
                let (mut conn, mut sock) = handshake_with_first_data(client_config, addr, b"hello");
                let mut plain = Vec::new();
                while plain.len() < 5 {
                    let mut buf = [0; 65536];
                    let n = sock.read(&mut buf).expect("recv");
                    assert!(n > 0, "server closed");
                    conn.read_tls(&mut &buf[..n]).expect("read_tls");
                    conn.process_new_packets().expect("records");
                    let mut chunk = [0; 1024];
                    while let Ok(k) = conn.reader().read(&mut chunk) {
                        if k == 0 {
                            break;
                        }
                        plain.extend_from_slice(&chunk[..k]);
                    }
                }
                plain
            });
            assert_eq!(client.await.expect("client"), b"hello");
            let mut sp = accepted.next().await;
            assert_eq!(
                sp.until_lost().await,
                [
                    Made,
                    Data("hello".into()),
                    Lost(Some(io::ErrorKind::UnexpectedEof))
                ]
            );
            server.close();
            server.wait_closed().await;
        })
        .await;
    }
}

mod test_aio_tcpssl {
    use asyncproto_core::testing::{
        Event::{Lost, Made},
        Recorder,
    };
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::create_connection;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        sync::oneshot,
    };

    use crate::{
        peers::{RawServer, connect_options, run_logged},
        support::{tap, within},
    };

    /// Port of uvloop `tests/test_tcp.py::Test_AIO_TCPSSL::test_bpo_39951_discard_trailing_data`.
    ///
    /// The lock is a channel: the raw server writes `trailing` only after
    /// our `close()`; "no `SSLError`" is `connection_lost(None)` with no
    /// `data_received` after the close and nothing logged at WARN or above.
    #[test]
    fn test_bpo_39951_discard_trailing_data() {
        let ((), logged) = run_logged(within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let (closed_tx, closed) = oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                let mut ping = [0; 4];
                s.read_exact(&mut ping).await.expect("ping");
                assert_eq!(&ping, b"ping");
                s.write_all(b"pong").await.expect("pong");
                s.flush().await.expect("flush");
                closed.await.expect("client closed");
                s.write_all(b"trailing").await.expect("trailing");
                s.flush().await.expect("flush");
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.expect("close_notify");
                s.shutdown().await.expect("close_notify");
            });
            let (proto, mut probe) = tap(Recorder::default());
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            t.write("ping").expect("ping");
            assert_eq!(probe.next().await, Made);
            assert_eq!(probe.data(4).await, b"pong");
            t.close();
            closed_tx.send(()).expect("server");
            assert_eq!(probe.until_lost().await, [Lost(None)]);
            server.await.expect("server");
        }));
        assert!(logged.is_empty(), "nothing logged: {logged}");
    }
}
