//! `Lib/test/test_asyncio/test_selector_events.py`.

mod selector_socket_transport_tests {
    use asyncproto_core::testing::{Event, Recorder};
    use asyncproto_tokio::{ConnectOptions, create_connection};

    use crate::support::{raw_listener, within};

    /// Port of CPython 3.11.7
    /// `test_selector_events.py::SelectorSocketTransportTests::test_ctor_with_waiter`.
    ///
    /// Over loopback: the creation waiter is `create_connection` itself,
    /// which returns only after `connection_made` has run.
    #[tokio::test]
    async fn test_ctor_with_waiter() {
        within(10, async {
            let (listener, addr) = raw_listener(None);
            let rec = Recorder::default();
            let log = rec.log();
            let (t, done) = create_connection(move || rec, addr, ConnectOptions::new())
                .await
                .expect("connect");
            assert_eq!(*log.lock().unwrap(), [Event::Made]);
            let (_peer, _) = listener.accept().await.expect("accept");
            t.close();
            assert_eq!(
                done.await.expect("protocol").events(),
                [Event::Made, Event::Lost(None)]
            );
        })
        .await;
    }
}
