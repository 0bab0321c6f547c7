//! `Lib/test/test_asyncio/test_base_events.py` (CPython 3.11.7), the TLS
//! rows of `BaseEventLoopWithSelectorTests`. The two rows about options
//! given without TLS are `compile_fail` doctests in `src/tls.rs`.

mod base_event_loop_with_selector_tests {
    use std::sync::Arc;

    use asyncproto_core::testing::{
        Event::{Lost, Made},
        Recorder,
    };
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::{
        ConnectOptions, Error, TlsClientOptions, TlsUpgrade, connect_stream, create_connection,
        create_connection_to_host, create_connection_with_sock, rustls, start_tls,
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::mpsc,
    };
    use tokio_rustls::LazyConfigAcceptor;

    use crate::{
        peers::{localhost, read_until_gone},
        support::{raw_listener, tap, within},
    };

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_ssl_server_hostname_default`.
    ///
    /// Instead of a mocked `_make_ssl_transport`, a `rustls` server records
    /// the SNI each `ClientHello` carries: the host by default, the explicit
    /// name when given, none for an IP address (`rustls` sends no IP SNI;
    /// the IP is still what is verified). `''` (no hostname check) has no
    /// opt-out in the options: a `rustls` verifier built with `dangerous()`
    /// is the way, so that case is not ported.
    #[tokio::test]
    async fn test_create_connection_ssl_server_hostname_default() {
        within(20, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let (sni_tx, mut sni) = mpsc::unbounded_channel();
            let config = pki.server_config();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
                        .await
                        .expect("ClientHello");
                    let name = start.client_hello().server_name().map(str::to_owned);
                    sni_tx.send(name).expect("test");
                    let mut s = start
                        .into_stream(Arc::clone(&config))
                        .await
                        .expect("handshake");
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).await.expect("close_notify");
                    s.shutdown().await.expect("close_notify");
                }
            });
            let port = addr.port();
            let tls = TlsClientOptions::new(pki.client_config());
            let cases = [
                ("localhost", None, Some("localhost"), "localhost"),
                (
                    "127.0.0.1",
                    Some(localhost()),
                    Some("localhost"),
                    "localhost",
                ),
                ("127.0.0.1", None, None, "127.0.0.1"),
            ];
            for (host, name, want_sni, verified) in cases {
                let mut opts = tls.clone();
                if let Some(name) = name {
                    opts = opts.server_name(name);
                }
                let (proto, mut probe) = tap(Recorder::default());
                let (t, _done) = create_connection_to_host(
                    move || proto,
                    host,
                    port,
                    ConnectOptions::new().tls(opts),
                )
                .await
                .expect("connect");
                assert_eq!(sni.recv().await.expect("SNI"), want_sni.map(str::to_owned));
                assert_eq!(t.tls().expect("TLS").server_name(), Some(verified));
                assert_eq!(probe.next().await, Made);
                t.close();
                assert_eq!(probe.until_lost().await, [Lost(None)]);
            }
            // By address, without a host: the IP connected to.
            let (t, _done) =
                create_connection(Recorder::default, addr, ConnectOptions::new().tls(tls))
                    .await
                    .expect("connect");
            assert_eq!(sni.recv().await.expect("SNI"), None);
            assert_eq!(t.tls().expect("TLS").server_name(), Some("127.0.0.1"));
            t.close();
        })
        .await;
    }

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_ssl_server_hostname_errors`.
    ///
    /// `ValueError` is the typed `MissingServerName` wherever no name can be
    /// derived: `sock=` (a TCP stream; the socket is closed, its peer reads
    /// EOF) and `start_tls` on a transport without a peer address. Host `''`
    /// or `None` has no counterpart (the host is a `&str` that resolves, or
    /// an address).
    #[tokio::test]
    async fn test_create_connection_ssl_server_hostname_errors() {
        within(10, async {
            let pki = TestPki::new();
            let (listener, addr) = raw_listener(None);
            let sock = TcpStream::connect(addr).await.expect("connect");
            let (mut peer, _) = listener.accept().await.expect("accept");
            let opts = ConnectOptions::new().tls(TlsClientOptions::new(pki.client_config()));
            let err = create_connection_with_sock(Recorder::default, sock, opts)
                .await
                .expect_err("sock= without server_name");
            assert!(matches!(err, Error::MissingServerName), "{err:?}");
            assert!(read_until_gone(&mut peer).await.is_empty(), "socket closed");

            let (ours, _theirs) = tokio::io::duplex(64);
            let (t, _done) = connect_stream(Recorder::default, ours, ConnectOptions::new())
                .await
                .expect("stream");
            let err = start_tls(
                &t,
                TlsUpgrade::client(TlsClientOptions::new(pki.client_config())),
            )
            .await
            .expect_err("no peer address");
            assert!(matches!(err, Error::MissingServerName), "{err:?}");
            t.abort();
        })
        .await;
    }
}
