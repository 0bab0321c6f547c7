//! `Lib/test/test_asyncio/test_sock_lowlevel.py`: its one
//! `create_connection(sock=)` test.

mod epoll_event_loop_tests {
    use asyncproto_core::testing::{
        Event::{Data, Eof, Lost, Made},
        Recorder,
    };
    use asyncproto_tokio::{ConnectOptions, create_connection_with_sock};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use crate::support::{tap, within};

    const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    /// Port of CPython 3.11.7
    /// `test_sock_lowlevel.py::EPollEventLoopTests::test_create_connection_sock`.
    ///
    /// The test HTTP server is a raw Tokio listener that reads the request,
    /// answers and closes; the socket is connected with Tokio (upstream's
    /// `sock_connect`) and handed over connected. `MyProto`'s states are the
    /// exact callback sequence (CONNECTED, data, EOF, CLOSED).
    #[tokio::test]
    async fn test_create_connection_sock() {
        within(10, async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let httpd = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut buf = [0; 256];
                    let n = s.read(&mut buf).await.expect("read request");
                    assert!(n > 0, "request cut short: {request:?}");
                    request.extend_from_slice(&buf[..n]);
                }
                s.write_all(RESPONSE).await.expect("respond");
                request
            });
            let sock = TcpStream::connect(addr).await.expect("sock_connect");
            // MyProto: writes the request in connection_made.
            let (proto, mut probe) = tap(Recorder::default().on_event(|e, t| {
                if *e == Made {
                    t.write(REQUEST).expect("write");
                }
            }));
            let (tr, done) =
                create_connection_with_sock(move || proto, sock, ConnectOptions::new())
                    .await
                    .expect("create_connection(sock=)");
            assert_eq!(probe.next().await, Made);
            // pr.done; nbytes > 0.
            assert_eq!(
                probe.until_lost().await,
                [Data(RESPONSE.into()), Eof, Lost(None)]
            );
            assert_eq!(httpd.await.expect("httpd"), REQUEST);
            tr.close();
            drop(done.await.expect("protocol"));
        })
        .await;
    }
}
