//! `Lib/test/test_asyncio/test_buffered_proto.py`.

mod buffered_protocol_selector_tests {
    use asyncproto_core::Buffered;
    use asyncproto_tokio::{ConnectOptions, create_connection};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{
        buffered::{BufRec, Ev},
        support::raw_listener,
    };

    /// Port of CPython 3.11.7
    /// `test_buffered_proto.py::BufferedProtocolSelectorTests::test_buffered_proto_create_connection`.
    ///
    /// - `ReceiveStuffProto` is `Buffered(BufRec)` with a fresh 100-byte
    ///   buffer per `get_buffer`; its `con_lost_fut` is the `ProtocolHandle`.
    /// - The threaded `tcp_server` is a Tokio listener on 127.0.0.1:0 serving
    ///   one client: send the noise, read `1`, close.
    /// - Beyond upstream: every `buffer_updated` fits its 100-byte buffer,
    ///   and the client's callbacks end EOF, `connection_lost(None)`.
    async fn test_buffered_proto_create_connection() {
        let noise: Vec<u8> = b"12345678+".repeat(1024); // NOISE, 9 KiB

        let (listener, addr) = raw_listener(None);
        let sent = noise.clone();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            sock.write_all(&sent).await.expect("send NOISE");
            let mut one = [0u8; 1];
            sock.read_exact(&mut one).await.expect("recv 1");
            assert_eq!(&one, b"1");
            // sock.close()
        });

        let want = noise.clone();
        let (proto, mut report) = BufRec::new(100);
        let proto = proto.fresh_buffers().on_data(move |data, tr| {
            if data == want.as_slice() {
                tr.write("1").expect("tr.write(b'1')");
            }
        });
        let (_tr, done) = create_connection(move || Buffered(proto), addr, ConnectOptions::new())
            .await
            .expect("create_connection");
        server.await.expect("server");

        let proto = done.await.expect("conn_lost_fut");
        let report = report.recv().await.expect("report");
        drop(proto);
        assert_eq!(report.data, noise);
        assert_eq!(report.calls(), [Ev::Made, Ev::Eof, Ev::Lost(None)]);
        assert!(report.error.is_none());
        assert!(report.updates().iter().all(|&n| n <= 100));
    }

    crate::support::on_both_runtimes!(20; test_buffered_proto_create_connection);
}
