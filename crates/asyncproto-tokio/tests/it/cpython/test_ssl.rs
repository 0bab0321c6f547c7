//! `Lib/test/test_asyncio/test_ssl.py`: the plain-TCP parts; the TLS ones
//! come with the TLS transport.

#[expect(
    clippy::module_inception,
    reason = "module = file, then class: test_ssl.py::TestSSL"
)]
mod test_ssl {
    use asyncproto_core::testing::{
        Event::{Data, Eof, Lost, Made},
        Recorder,
    };
    use asyncproto_tokio::{ConnectOptions, connect_accepted_socket};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use crate::support::{tap, within};

    /// Port of CPython 3.11.7 `test_ssl.py::TestSSL::test_connect_accepted_socket`
    /// (the plain part: `server_ssl=None`).
    ///
    /// The client is a Tokio task instead of a thread, and the accepted
    /// socket a Tokio stream; `MyBaseProto`'s states are the exact callback
    /// sequence (CONNECTED, 9 bytes, EOF, CLOSED).
    #[tokio::test]
    async fn test_connect_accepted_socket() {
        within(10, async {
            let lsock = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = lsock.local_addr().expect("local_addr");
            let message = b"test data";
            let client = tokio::spawn(async move {
                let mut csock = TcpStream::connect(addr).await.expect("connect");
                csock.write_all(message).await.expect("sendall");
                let mut response = [0; 99];
                let n = csock.read(&mut response).await.expect("recv");
                // csock closes as the task ends.
                response[..n].to_vec()
            });
            let (conn, _) = lsock.accept().await.expect("accept");
            // MyProto: writes b'roger' on every data_received.
            let (proto, mut probe) = tap(Recorder::default().on_event(|e, t| {
                if matches!(e, Data(_)) {
                    t.write("roger").expect("write");
                }
            }));
            let (tr, done) = connect_accepted_socket(move || proto, conn, ConnectOptions::new())
                .await
                .expect("connect_accepted_socket");
            assert_eq!(tr.kind(), "tcp", "a plain transport, not TLS");
            assert_eq!(probe.next().await, Made);
            assert_eq!(
                probe.until_lost().await,
                [Data(message[..].into()), Eof, Lost(None)]
            );
            assert_eq!(client.await.expect("client"), b"roger");
            tr.close();
            drop(done.await.expect("protocol"));
        })
        .await;
    }
}
