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
    use std::io;

    use asyncproto_core::testing::Recorder;
    use asyncproto_tokio::{ConnectOptions, Error, create_connection};

    use crate::support::{refusing_addr, within};

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
}
