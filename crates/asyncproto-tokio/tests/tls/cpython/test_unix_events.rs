//! `Lib/test/test_asyncio/test_unix_events.py` (CPython 3.11.7), the TLS row
//! of `SelectorEventLoopUnixSocketTests`.

mod selector_event_loop_unix_socket_tests {
    use asyncproto_core::testing::Recorder;
    use asyncproto_testkit::tls::TestPki;
    use asyncproto_tokio::{ConnectOptions, Error, TlsClientOptions, create_connection_with_sock};
    use tokio::{io::AsyncReadExt, net::UnixStream};

    use crate::support::within;

    /// Port of CPython 3.11.7
    /// `test_unix_events.py::SelectorEventLoopUnixSocketTests::test_create_unix_connection_ssl_noserverhost`.
    ///
    /// There is no `create_unix_connection(path)`: a connected Unix socket
    /// through `create_connection_with_sock`; `ValueError` is the typed
    /// `MissingServerName`, and the socket is closed (its peer reads EOF).
    #[tokio::test]
    async fn test_create_unix_connection_ssl_noserverhost() {
        within(10, async {
            let pki = TestPki::new();
            let (ours, mut theirs) = UnixStream::pair().expect("pair");
            let opts = ConnectOptions::new().tls(TlsClientOptions::new(pki.client_config()));
            let err = create_connection_with_sock(Recorder::default, ours, opts)
                .await
                .expect_err("no server_hostname");
            assert!(matches!(err, Error::MissingServerName), "{err:?}");
            let mut rest = Vec::new();
            theirs.read_to_end(&mut rest).await.expect("EOF");
            assert!(rest.is_empty());
        })
        .await;
    }
}
