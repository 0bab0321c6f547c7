//! `Lib/test/test_asyncio/test_sslproto.py` (CPython 3.11.7), the TLS rows.
//!
//! The bodies shared with the `test_ssl.py` twins are the `pub(crate)`
//! functions at the end; each twin keeps its own test name. The `(mem)` rows
//! run over loopback with short real timeouts: the backend has no TLS over
//! `tokio::io::duplex`, and a paused clock auto-advances while a socket
//! waits.

mod ssl_proto_handshake_tests {
    use std::{io, sync::atomic::Ordering, time::Duration};

    use asyncproto_core::{
        ExtraInfo,
        testing::{
            Event::{Data, Eof, Lost, Made},
            Recorder,
        },
    };
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::{
        ConnectOptions, Error, ServerOptions, TlsServerOptions, TlsUpgrade, create_connection,
        create_server, start_tls,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{
        peers::{
            self, RawServer, client_tls, connect_options, counting, read_record, read_until_gone,
            server_options,
        },
        support::{linger_zero, raw_listener, refusing_addr, tap, tapped_factory, within},
    };

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_handshake_timeout_zero`.
    ///
    /// `ValueError` is the typed `Error::InvalidTimeout`, checked on every
    /// entry point that takes TLS options (client, server, `start_tls`); the
    /// client target refuses connections, so the error proves nothing was
    /// connected.
    #[tokio::test]
    async fn test_handshake_timeout_zero() {
        within(10, async {
            let pki = TestPki::new();
            let zero = client_tls(&pki).handshake_timeout(Duration::ZERO);
            let (_refusing, addr) = refusing_addr();
            let err = create_connection(
                Recorder::default,
                addr,
                ConnectOptions::new().tls(zero.clone()),
            )
            .await
            .expect_err("zero handshake timeout");
            assert!(
                matches!(
                    err,
                    Error::InvalidTimeout {
                        name: "handshake_timeout"
                    }
                ),
                "{err:?}"
            );

            let opts = ServerOptions::new()
                .tls(TlsServerOptions::new(pki.server_config()).handshake_timeout(Duration::ZERO));
            let err = create_server(Recorder::default, "127.0.0.1:0", opts)
                .await
                .expect_err("zero handshake timeout");
            assert!(
                matches!(
                    err,
                    Error::InvalidTimeout {
                        name: "handshake_timeout"
                    }
                ),
                "{err:?}"
            );

            let (_listener, plain) = raw_listener(None);
            let (t, _done) = create_connection(Recorder::default, plain, ConnectOptions::new())
                .await
                .expect("plain connect");
            let err = start_tls(&t, TlsUpgrade::client(zero))
                .await
                .expect_err("zero handshake timeout");
            assert!(
                matches!(
                    err,
                    Error::InvalidTimeout {
                        name: "handshake_timeout"
                    }
                ),
                "{err:?}"
            );
            assert!(!t.is_closing(), "a rejected request leaves the connection");
            assert!(!t.is_tls());
            t.abort();
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_eof_received_waiter`.
    ///
    /// The peer is a plain socket that reads the `ClientHello` and closes (a
    /// FIN) instead of a mocked transport calling `eof_received`; the factory
    /// is never called.
    #[tokio::test]
    async fn test_eof_received_waiter() {
        within(10, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let peer = tokio::spawn(async move {
                let (mut tcp, _) = listener.accept().await.expect("accept");
                read_record(&mut tcp).await;
            });
            let (factory, calls) = counting(Recorder::default);
            let err = create_connection(factory, addr, connect_options(&pki))
                .await
                .expect_err("EOF during the handshake");
            assert!(
                matches!(&err, Error::Tls(e) if e.kind() == io::ErrorKind::ConnectionReset),
                "{err:?}"
            );
            assert_eq!(calls.load(Ordering::SeqCst), 0);
            peer.await.expect("peer");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_connection_lost`.
    ///
    /// Over loopback, not a mocked transport: the peer resets the connection
    /// (`SO_LINGER` 0) after the `ClientHello`; `create_connection` returns
    /// the reset promptly instead of hanging, and no protocol is made.
    #[tokio::test]
    async fn test_connection_lost() {
        within(10, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let peer = tokio::spawn(async move {
                let (mut tcp, _) = listener.accept().await.expect("accept");
                read_record(&mut tcp).await;
                linger_zero(&tcp);
            });
            let (factory, calls) = counting(Recorder::default);
            let err = create_connection(factory, addr, connect_options(&pki))
                .await
                .expect_err("reset during the handshake");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
            assert!(matches!(err, Error::Tls(_)), "{err:?}");
            assert_eq!(calls.load(Ordering::SeqCst), 0);
            peer.await.expect("peer");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_close_during_handshake`.
    ///
    /// No app transport exists before the handshake here: dropping the
    /// `create_connection` future mid-handshake stands for `close()`, and
    /// the peer seeing EOF proves the raw socket was closed. The same for a
    /// dropped `start_tls` future, which aborts the plain connection.
    #[tokio::test]
    async fn test_close_during_handshake() {
        within(10, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let connecting = tokio::spawn(create_connection(
                Recorder::default,
                addr,
                connect_options(&pki),
            ));
            let (mut tcp, _) = listener.accept().await.expect("accept");
            read_record(&mut tcp).await;
            connecting.abort();
            assert!(connecting.await.expect_err("aborted").is_cancelled());
            assert!(read_until_gone(&mut tcp).await.is_empty(), "socket closed");

            let (proto, mut probe) = tap(Recorder::default());
            let (t, done) = create_connection(move || proto, addr, ConnectOptions::new())
                .await
                .expect("plain connect");
            assert_eq!(probe.next().await, Made);
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let upgrade = start_tls(&t, TlsUpgrade::client(client_tls(&pki)));
            read_record(&mut tcp).await;
            drop(upgrade);
            assert!(read_until_gone(&mut tcp).await.is_empty(), "socket closed");
            assert_eq!(probe.until_lost().await, [Lost(None)]);
            drop(done); // the handle keeps the protocol until dropped
            probe.finished().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_get_extra_info_on_closed_connection`.
    ///
    /// Before `connection_made` there is no transport to ask. After
    /// `connection_lost`, asyncio answers `None` for everything; here
    /// `socket` is `None` (no fd), while `peername` and the TLS keys keep
    /// answering from the handshake's snapshot (documented difference).
    #[tokio::test]
    async fn test_get_extra_info_on_closed_connection() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.expect("our close_notify");
                s.shutdown().await.expect("close_notify");
            });
            let (proto, mut probe) = tap(Recorder::default());
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            assert!(t.get_extra_info("socket").is_some());
            t.close();
            assert_eq!(probe.until_lost().await, [Lost(None)]);
            server.await.expect("server");
            assert_eq!(t.get_extra_info("socket"), None);
            assert_eq!(t.get_extra_info("peername"), Some(ExtraInfo::Addr(addr)));
            assert_eq!(
                t.get_extra_info("peercert"),
                Some(ExtraInfo::PeerCert(pki.server.cert.clone()))
            );
            assert!(t.get_extra_info("cipher").is_some());
            assert!(t.get_extra_info("ssl_object").is_some());
            assert_eq!(t.get_extra_info("compression"), None);
            assert_eq!(t.get_extra_info("no such key"), None);
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_set_new_app_protocol`.
    ///
    /// There is no `get_protocol()`: the new protocol getting the next bytes
    /// (and the old one nothing more, then dropped) shows the swap.
    #[tokio::test]
    async fn test_set_new_app_protocol() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let (go, ready) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                ready.await.expect("go");
                s.write_all(b"for the new one").await.expect("write");
                s.shutdown().await.expect("close_notify");
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.expect("our close_notify");
            });
            let (proto, mut probe) = tap(Recorder::default());
            let (t, done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            let (next, mut next_probe) = tap(Recorder::default());
            t.set_protocol(next);
            go.send(()).expect("server");
            assert_eq!(
                next_probe.until_lost().await,
                [Data("for the new one".into()), Eof, Lost(None)]
            );
            drop(done); // the handle keeps the protocol until dropped
            probe.finished().await;
            server.await.expect("server");
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_data_received_after_closing`.
    ///
    /// A raw TLS client sends application data after it has read our
    /// `close_notify`: nothing fails, and (our rule) the protocol gets no
    /// `data_received` after its `close()`; the connection ends cleanly.
    #[tokio::test]
    async fn test_data_received_after_closing() {
        within(10, async {
            let pki = TestPki::new();
            let (factory, mut accepted) = tapped_factory(Recorder::default);
            let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
                .await
                .expect("server");
            let mut raw = peers::client(&pki, server.local_addrs()[0]).await;
            raw.write_all(b"first").await.expect("write");
            raw.flush().await.expect("flush");
            let mut sp = accepted.next().await;
            let t = sp.made().await;
            assert_eq!(sp.data(5).await, b"first");
            t.close();
            let mut rest = Vec::new();
            raw.read_to_end(&mut rest).await.expect("our close_notify");
            assert!(rest.is_empty());
            raw.write_all(b"late data")
                .await
                .expect("write after close_notify");
            raw.shutdown().await.expect("close_notify");
            assert_eq!(sp.until_lost().await, [Lost(None)]);
            server.close();
            server.wait_closed().await;
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SslProtoHandshakeTests::test_write_after_closing`.
    ///
    /// Over loopback: `write()` after `close()` returns `Ok`, adds nothing to
    /// the buffer, and never reaches the peer.
    #[tokio::test]
    async fn test_write_after_closing() {
        within(10, async {
            let pki = TestPki::new();
            let (raw, addr) = RawServer::bind(&pki).await;
            let server = tokio::spawn(async move {
                let mut s = raw.accept().await;
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.expect("our close_notify");
                s.shutdown().await.expect("close_notify");
                got
            });
            let (proto, mut probe) = tap(Recorder::default());
            let (t, _done) = create_connection(move || proto, addr, connect_options(&pki))
                .await
                .expect("connect");
            assert_eq!(probe.next().await, Made);
            t.write("before").expect("write");
            t.close();
            let size = t.get_write_buffer_size();
            t.write("after").expect("write after close does not fail");
            assert_eq!(t.get_write_buffer_size(), size);
            assert_eq!(probe.until_lost().await, [Lost(None)]);
            t.write("after lost")
                .expect("write after lost does not fail");
            assert_eq!(t.get_write_buffer_size(), 0);
            assert_eq!(server.await.expect("server"), b"before");
        })
        .await;
    }
}

mod selector_start_tls_tests {
    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_start_tls_client_reg_proto_1`.
    ///
    /// The server ends with a bare FIN: asyncproto reports the truncation,
    /// `connection_lost(Some(UnexpectedEof))` instead of `eof_received`
    /// (DESIGN.md point 11); "no leak" is the protocol being dropped.
    #[tokio::test]
    async fn test_start_tls_client_reg_proto_1() {
        crate::support::within(20, super::start_tls_client_reg_proto_1(false)).await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_create_connection_memory_leak`.
    ///
    /// The weakref check is `Arc::strong_count` of the client configuration,
    /// back to 1 once the protocol, which keeps its transport, is dropped;
    /// the server's bare FIN ends in the truncation error.
    #[tokio::test]
    async fn test_create_connection_memory_leak() {
        crate::support::within(20, super::create_connection_memory_leak(false)).await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_start_tls_client_buf_proto_1`.
    ///
    /// The `BufferedProtocol` is `Buffered(..)`, switched to a `Protocol` by
    /// `set_protocol`; the server's bare FIN ends in the truncation error,
    /// not `eof_received`.
    #[tokio::test]
    async fn test_start_tls_client_buf_proto_1() {
        crate::support::within(20, super::start_tls_client_buf_proto_1(false)).await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_start_tls_slow_client_cancel`.
    ///
    /// `wait_for(.., 0.5)` is `tokio::time::timeout` dropping the `start_tls`
    /// future: the connection is aborted and the peer sees it end.
    #[tokio::test]
    async fn test_start_tls_slow_client_cancel() {
        crate::support::within(20, super::start_tls_slow_client_cancel()).await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_start_tls_server_1`.
    ///
    /// The client closes its socket without `close_notify`: the server
    /// protocol gets the 100 KiB, then `connection_lost(Some(UnexpectedEof))`
    /// instead of `connection_lost(None)` (DESIGN.md point 11).
    #[tokio::test]
    async fn test_start_tls_server_1() {
        crate::support::within(20, super::start_tls_server_1(false)).await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_handshake_timeout`.
    ///
    /// Real time, 0.5 s outer timeout around a 10 s handshake timeout; the
    /// exception handler is a WARN/ERROR capture; the freed context is
    /// `Arc::strong_count` back to 1 right after the drop (no timer holds
    /// it).
    #[test]
    fn test_handshake_timeout() {
        super::handshake_cancelled_by_outer_timeout();
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_create_connection_ssl_slow_handshake`.
    ///
    /// Over loopback with a 0.2 s real timeout instead of 1.0 s on a paused
    /// clock; `ConnectionAbortedError` is the typed `TlsHandshakeTimeout`.
    #[test]
    fn test_create_connection_ssl_slow_handshake() {
        super::create_connection_ssl_slow_handshake();
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_create_connection_ssl_failed_certificate`.
    ///
    /// `SSLCertVerificationError` is `Error::Tls` whose `rustls` error is
    /// `InvalidCertificate(UnknownIssuer)`.
    #[tokio::test]
    async fn test_create_connection_ssl_failed_certificate() {
        crate::support::within(10, super::create_connection_ssl_failed_certificate()).await;
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_start_tls_client_corrupted_ssl`.
    ///
    /// Streams become a tapped protocol: the read failing with `SSLError` is
    /// `connection_lost(Some(InvalidData))` carrying the `rustls` error.
    #[tokio::test]
    async fn test_start_tls_client_corrupted_ssl() {
        crate::support::within(10, super::start_tls_client_corrupted_ssl()).await;
    }
}

// ---------------------------------------------------------------------------
// Bodies shared with `test_ssl.py`.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use asyncproto_core::{
    BaseProtocol, Buffered, BufferedProtocol, Bytes, Transport,
    testing::{
        Event::{Data, Eof, Lost, Made, PauseWriting, ResumeWriting},
        Recorder,
    },
};
use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::{
    ConnectOptions, Error, ServerOptions, TlsClientOptions, TlsServerOptions, TlsUpgrade,
    create_connection, create_server, rustls, start_tls,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{
    peers::{
        RawServer, client_tls, connect_options, counting, drop_client_without_close_notify,
        drop_server_without_close_notify, localhost, read_until_gone, run_logged,
        self_signed_server_config,
    },
    support::{raw_listener, tap, tapped_factory, within},
};

/// CPython's `PAYLOAD_SIZE` in the `start_tls` tests.
const PAYLOAD_SIZE: usize = 100 * 1024;

fn hello_msg() -> Bytes {
    Bytes::from(vec![b'1'; PAYLOAD_SIZE])
}

/// `test_start_tls_client_reg_proto_1`; `clean`: the server ends with
/// `close_notify` (`unwrap()`) rather than a bare FIN.
pub(crate) async fn start_tls_client_reg_proto_1(clean: bool) {
    let pki = TestPki::new();
    let hello = hello_msg();
    let (listener, addr) = raw_listener(None);
    let acceptor = TlsAcceptor::from(pki.server_config());
    let expect = hello.clone();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut data = vec![0; expect.len()];
        tcp.read_exact(&mut data).await.expect("plain hello");
        assert_eq!(data, expect);
        let mut tls = acceptor.accept(tcp).await.expect("server-side start_tls");
        tls.write_all(b"O").await.expect("O");
        tls.flush().await.expect("flush");
        tls.read_exact(&mut data).await.expect("TLS hello");
        assert_eq!(data, expect);
        if clean {
            tls.shutdown().await.expect("close_notify");
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await.expect("our close_notify");
            assert!(rest.is_empty());
        } else {
            drop_server_without_close_notify(tls).await;
        }
    });
    let (proto, mut probe) = tap(Recorder::default());
    let (t, done) = create_connection(move || proto, addr, ConnectOptions::new())
        .await
        .expect("plain connect");
    assert_eq!(probe.next().await, Made);
    t.write(hello.clone()).expect("plain write");
    let new_t = start_tls(&t, TlsUpgrade::client(client_tls(&pki)))
        .await
        .expect("start_tls");
    assert!(new_t.is_tls());
    // 100 KiB over the plain transport's 64 KiB high mark, drained before
    // the handshake starts.
    assert_eq!(probe.next().await, PauseWriting);
    assert_eq!(probe.next().await, ResumeWriting);
    assert_eq!(probe.next().await, Data("O".into()));
    new_t.write(hello).expect("TLS write");
    let end = if clean {
        vec![Eof, Lost(None)]
    } else {
        vec![Lost(Some(io::ErrorKind::UnexpectedEof))]
    };
    assert_eq!(probe.until_lost().await, end);
    new_t.close();
    // connection_made ran once (the exact sequence), and the protocol is
    // dropped once the connection ends.
    drop(done); // the handle keeps the protocol until dropped
    probe.finished().await;
    server.await.expect("server");
}

/// `test_create_connection_memory_leak`; `clean` as above.
pub(crate) async fn create_connection_memory_leak(clean: bool) {
    let pki = TestPki::new();
    let hello = hello_msg();
    let (raw, addr) = RawServer::bind(&pki).await;
    let expect = hello.clone();
    let server = tokio::spawn(async move {
        let mut tls = raw.accept().await;
        tls.write_all(b"O").await.expect("O");
        tls.flush().await.expect("flush");
        let mut data = vec![0; expect.len()];
        tls.read_exact(&mut data).await.expect("hello");
        assert_eq!(data, expect);
        if clean {
            tls.shutdown().await.expect("close_notify");
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await.expect("our close_notify");
        } else {
            drop_server_without_close_notify(tls).await;
        }
    });
    let config = pki.client_config();
    let opts = ConnectOptions::new()
        .tls(TlsClientOptions::new(Arc::clone(&config)).server_name(localhost()));
    let (proto, mut probe) = tap(Recorder::default());
    let (t, done) = create_connection(move || proto, addr, opts)
        .await
        .expect("connect");
    assert_eq!(probe.next().await, Made);
    assert_eq!(probe.next().await, Data("O".into()));
    t.write(hello).expect("write");
    let end = if clean {
        vec![Eof, Lost(None)]
    } else {
        vec![Lost(Some(io::ErrorKind::UnexpectedEof))]
    };
    assert_eq!(probe.until_lost().await, end);
    t.close();
    drop(t);
    drop(probe);
    // The protocol kept its transport (the Recorder stores it).
    let protocol = done.await.expect("protocol");
    assert!(protocol.recorder().transport().is_some());
    drop(protocol);
    server.await.expect("server");
    assert_eq!(Arc::strong_count(&config), 1, "the TLS context is freed");
}

/// `ClientProtoFirst`: a `BufferedProtocol` with a 1-byte buffer.
struct OneByte {
    buf: [u8; 1],
    made: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<(Option<usize>, u8)>,
    hint: Option<usize>,
}

impl BaseProtocol for OneByte {
    fn connection_made(&mut self, _transport: Transport) {
        self.made.fetch_add(1, Ordering::SeqCst);
    }
}

impl BufferedProtocol for OneByte {
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8] {
        self.hint = sizehint;
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        assert_eq!(nbytes, 1);
        let _ = self.tx.send((self.hint, self.buf[0]));
    }
}

/// `test_start_tls_client_buf_proto_1`; `clean` as above.
pub(crate) async fn start_tls_client_buf_proto_1(clean: bool) {
    let pki = TestPki::new();
    let hello = hello_msg();
    let (listener, addr) = raw_listener(None);
    let acceptor = TlsAcceptor::from(pki.server_config());
    let expect = hello.clone();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut data = vec![0; expect.len()];
        tcp.read_exact(&mut data).await.expect("plain hello");
        let mut tls = acceptor.accept(tcp).await.expect("server-side start_tls");
        tls.write_all(b"O").await.expect("O");
        tls.flush().await.expect("flush");
        tls.read_exact(&mut data).await.expect("hello 2");
        assert_eq!(data, expect);
        tls.write_all(b"2").await.expect("2");
        tls.flush().await.expect("flush");
        tls.read_exact(&mut data).await.expect("hello 3");
        assert_eq!(data, expect);
        if clean {
            tls.shutdown().await.expect("close_notify");
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await.expect("our close_notify");
        } else {
            drop_server_without_close_notify(tls).await;
        }
    });
    let made = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = OneByte {
        buf: [0],
        made: Arc::clone(&made),
        tx,
        hint: Some(usize::MAX),
    };
    let (t, done) = create_connection(move || Buffered(first), addr, ConnectOptions::new())
        .await
        .expect("plain connect");
    t.write(hello.clone()).expect("plain write");
    let new_t = start_tls(&t, TlsUpgrade::client(client_tls(&pki)))
        .await
        .expect("start_tls");
    assert_eq!(rx.recv().await, Some((None, b'O')), "sizehint None, 1 byte");
    new_t.write(hello.clone()).expect("write");
    let (second, mut probe) = tap(Recorder::default());
    new_t.set_protocol(second);
    assert_eq!(probe.next().await, Data("2".into()));
    new_t.write(hello).expect("write");
    let end = if clean {
        vec![Eof, Lost(None)]
    } else {
        vec![Lost(Some(io::ErrorKind::UnexpectedEof))]
    };
    assert_eq!(probe.until_lost().await, end);
    new_t.close();
    drop(done); // the handle keeps the protocol until dropped
    probe.finished().await;
    assert_eq!(made.load(Ordering::SeqCst), 1, "connection_made once");
    assert!(
        rx.recv().await.is_none(),
        "the first protocol got nothing more"
    );
    server.await.expect("server");
}

/// `test_start_tls_slow_client_cancel`.
pub(crate) async fn start_tls_slow_client_cancel() {
    let pki = TestPki::new();
    let hello = hello_msg();
    let (listener, addr) = raw_listener(None);
    let (waits_tx, waits) = oneshot::channel();
    let n = hello.len();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut data = vec![0; n];
        tcp.read_exact(&mut data).await.expect("plain hello");
        waits_tx.send(()).expect("signal");
        read_until_gone(&mut tcp).await
    });
    let (proto, mut probe) = tap(Recorder::default());
    let (t, done) = create_connection(move || proto, addr, ConnectOptions::new())
        .await
        .expect("plain connect");
    assert_eq!(probe.next().await, Made);
    t.write(hello).expect("write");
    waits.await.expect("server waits on the handshake");
    let res = tokio::time::timeout(
        Duration::from_millis(500),
        start_tls(&t, TlsUpgrade::client(client_tls(&pki))),
    )
    .await;
    assert!(res.is_err(), "TimeoutError");
    assert_eq!(
        probe.until_lost().await,
        [PauseWriting, ResumeWriting, Lost(None)]
    );
    let got = server.await.expect("server");
    assert_eq!(got.first(), Some(&0x16), "the ClientHello, then the end");
    drop(done); // the handle keeps the protocol until dropped
    probe.finished().await;
}

/// `test_start_tls_server_1`; `clean`: the client ends with `close_notify`.
pub(crate) async fn start_tls_server_1(clean: bool) {
    const ANSWER: &[u8] = b"answer";
    let pki = TestPki::new();
    let hello = hello_msg();
    let (factory, mut accepted) = tapped_factory(Recorder::default);
    let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("server");
    let addr = server.local_addrs()[0];
    let config = pki.client_config();
    let expect = hello.clone();
    let client = tokio::spawn(async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut data = vec![0; expect.len()];
        tcp.read_exact(&mut data).await.expect("plain hello");
        assert_eq!(data, expect);
        let mut tls = TlsConnector::from(config)
            .connect(localhost(), tcp)
            .await
            .expect("client-side start_tls");
        tls.write_all(&expect).await.expect("hello");
        let mut answer = vec![0; ANSWER.len()];
        tls.read_exact(&mut answer).await.expect("answer");
        if clean {
            tls.shutdown().await.expect("close_notify");
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest)
                .await
                .expect("their close_notify");
        } else {
            drop_client_without_close_notify(tls).await;
        }
        answer
    });
    let mut sp = accepted.next().await;
    let t = sp.made().await;
    t.write(hello.clone()).expect("plain write");
    let new_t = start_tls(
        &t,
        TlsUpgrade::server(
            TlsServerOptions::new(pki.server_config()).handshake_timeout(Duration::from_secs(10)),
        ),
    )
    .await
    .expect("start_tls");
    assert_eq!(sp.next().await, PauseWriting);
    assert_eq!(sp.next().await, ResumeWriting);
    assert_eq!(sp.data(hello.len()).await, hello);
    new_t.write(ANSWER).expect("answer");
    let end = if clean {
        vec![Eof, Lost(None)]
    } else {
        vec![Lost(Some(io::ErrorKind::UnexpectedEof))]
    };
    assert_eq!(sp.until_lost().await, end);
    assert_eq!(client.await.expect("client"), ANSWER);
    new_t.close();
    server.close();
    server.wait_closed().await;
}

/// `test_handshake_timeout` / `test_ssl_handshake_timeout`: an outer timeout
/// cancels a handshake that has a 10 s timeout of its own.
pub(crate) fn handshake_cancelled_by_outer_timeout() {
    let ((), logged) = run_logged(within(10, async {
        let pki = TestPki::new();
        let config = pki.client_config();
        let (listener, addr) = raw_listener(None);
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            read_until_gone(&mut tcp).await
        });
        let opts = ConnectOptions::new().tls(
            TlsClientOptions::new(Arc::clone(&config))
                .server_name(localhost())
                .handshake_timeout(Duration::from_secs(10)),
        );
        let (factory, calls) = counting(Recorder::default);
        let res = tokio::time::timeout(
            Duration::from_millis(500),
            create_connection(factory, addr, opts),
        )
        .await;
        assert!(res.is_err(), "TimeoutError");
        let got = server.await.expect("server");
        assert_eq!(got.first(), Some(&0x16), "the server saw the abort");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(Arc::strong_count(&config), 1, "no timer keeps the context");
    }));
    assert!(logged.is_empty(), "nothing logged: {logged}");
}

/// `test_create_connection_ssl_slow_handshake`.
pub(crate) fn create_connection_ssl_slow_handshake() {
    let ((), logged) = run_logged(within(10, async {
        let pki = TestPki::new();
        let (listener, addr) = raw_listener(None);
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            read_until_gone(&mut tcp).await
        });
        let opts = ConnectOptions::new()
            .tls(client_tls(&pki).handshake_timeout(Duration::from_millis(200)));
        let err = create_connection(Recorder::default, addr, opts)
            .await
            .expect_err("slow handshake");
        assert!(
            matches!(err, Error::TlsHandshakeTimeout { after } if after == Duration::from_millis(200)),
            "{err:?}"
        );
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("handshake"), "{err}");
        let got = server.await.expect("server");
        assert_eq!(got.first(), Some(&0x16), "aborted after the ClientHello");
    }));
    assert!(logged.is_empty(), "nothing logged: {logged}");
}

/// `test_create_connection_ssl_failed_certificate`.
pub(crate) async fn create_connection_ssl_failed_certificate() {
    let pki = TestPki::new();
    let (raw, addr) = RawServer::bind_with(self_signed_server_config()).await;
    let server = tokio::spawn(async move {
        let (tcp, _) = raw.listener.accept().await.expect("accept");
        raw.acceptor
            .accept(tcp)
            .await
            .expect_err("client rejects us");
    });
    let (factory, calls) = counting(Recorder::default);
    let err = create_connection(factory, addr, connect_options(&pki))
        .await
        .expect_err("self-signed server");
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert_eq!(
        err.tls_error(),
        Some(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.await.expect("server");
}

/// `test_start_tls_client_corrupted_ssl`.
pub(crate) async fn start_tls_client_corrupted_ssl() {
    let pki = TestPki::new();
    let (raw, addr) = RawServer::bind(&pki).await;
    let (done_tx, done) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut tls = raw.accept().await;
        tls.write_all(b"A\n").await.expect("A");
        tls.flush().await.expect("flush");
        let mut b = [0; 1];
        tls.read_exact(&mut b).await.expect("B");
        assert_eq!(&b, b"B");
        tls.get_mut()
            .0
            .write_all(b"please corrupt the SSL connection")
            .await
            .expect("garbage");
        let _ = done.await;
    });
    let (proto, mut probe) = tap(Recorder::default());
    let (t, done) = create_connection(move || proto, addr, connect_options(&pki))
        .await
        .expect("connect");
    assert_eq!(probe.next().await, Made);
    assert_eq!(probe.next().await, Data("A\n".into()));
    t.write("B").expect("write");
    assert_eq!(probe.next().await, Lost(Some(io::ErrorKind::InvalidData)));
    let Some(asyncproto_core::Error::Io(e)) = probe.lost_error() else {
        panic!("not an I/O error: {:?}", probe.lost_error());
    };
    assert!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some(),
        "a rustls error: {e:?}"
    );
    done_tx.send(()).expect("server");
    server.await.expect("server");
    drop(done); // the handle keeps the protocol until dropped
    probe.finished().await;
}
