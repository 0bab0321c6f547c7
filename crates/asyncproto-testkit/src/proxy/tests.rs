//! The proxy against plain Tokio peers.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::*;

async fn within<F: Future>(secs: u64, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("test timed out after {secs} s"))
}

/// An upstream that echoes every connection.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// An upstream that accepts connections and hands them to the test.
async fn raw_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).expect("< 256"))
        .collect()
}

/// Sends `data`, half-closes, reads to EOF.
async fn round_trip(addr: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut r, mut w) = stream.into_split();
    let data = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await?;
        w.shutdown().await
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await?;
    writer.await.expect("writer")?;
    Ok(got)
}

#[tokio::test]
async fn delivering_faults_keep_every_byte_in_order() {
    within(30, async {
        let upstream = echo_upstream().await;
        let data = payload(48 * 1024);
        for fault in [
            Fault::None,
            Fault::Delay(Duration::from_millis(1)),
            Fault::SplitBytes,
            Fault::Coalesce(Duration::from_millis(20)),
            Fault::Stall {
                after: 1000,
                for_: Duration::from_millis(50),
            },
        ] {
            let proxy = FaultProxy::start(upstream, fault).expect("start");
            let got = round_trip(proxy.addr(), &data).await.expect("round trip");
            assert!(
                got == data,
                "{fault:?}: {} of {} bytes",
                got.len(),
                data.len()
            );
            proxy.wait_idle().await;
            assert_eq!((proxy.accepted(), proxy.active()), (1, 0), "{fault:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn stall_holds_the_stream_for_its_duration() {
    within(10, async {
        let upstream = echo_upstream().await;
        let for_ = Duration::from_millis(300);
        let proxy = FaultProxy::start(upstream, Fault::Stall { after: 10, for_ }).expect("start");
        let started = Instant::now();
        let got = round_trip(proxy.addr(), b"0123456789abcdef")
            .await
            .expect("round trip");
        assert_eq!(got, b"0123456789abcdef");
        assert!(started.elapsed() >= for_, "{:?}", started.elapsed());
    })
    .await;
}

#[tokio::test]
async fn cut_after_forwards_exactly_n_bytes_then_eof_both_ways() {
    within(10, async {
        let (upstream, mut accepted) = raw_upstream().await;
        let proxy = FaultProxy::start(upstream, Fault::CutAfter(1000)).expect("start");
        let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut server = accepted.recv().await.expect("upstream connection");
        client.write_all(&payload(5000)).await.expect("write");

        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("server reads");
        assert_eq!(got, payload(1000), "exactly the first 1000 bytes, then EOF");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("client reads");
        assert_eq!(got, b"", "the client gets EOF");
        // Both still may write: the proxy discards it until their EOF.
        server.write_all(b"late").await.expect("write after cut");
        drop((client, server));
        proxy.wait_idle().await;
    })
    .await;
}

#[tokio::test]
async fn reset_resets_both_sides_mid_stream() {
    within(10, async {
        let (upstream, mut accepted) = raw_upstream().await;
        let proxy = FaultProxy::start(upstream, Fault::Reset { after: 1000 }).expect("start");
        let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut server = accepted.recv().await.expect("upstream connection");
        client.write_all(&payload(5000)).await.expect("write");

        let mut got = Vec::new();
        let err = server
            .read_to_end(&mut got)
            .await
            .expect_err("server reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(
            got.len() <= 1000 && got == payload(got.len()),
            "{}",
            got.len()
        );
        let err = client.read(&mut [0; 16]).await.expect_err("client reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        proxy.wait_idle().await;
    })
    .await;
}

#[tokio::test]
async fn half_close_gives_one_side_eof_and_keeps_the_other_direction() {
    within(10, async {
        let (upstream, mut accepted) = raw_upstream().await;
        let fault = Fault::HalfClose {
            dir: Direction::ToServer,
            after: 100,
        };
        let proxy = FaultProxy::start(upstream, fault).expect("start");
        let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut server = accepted.recv().await.expect("upstream connection");
        client.write_all(&payload(5000)).await.expect("write");

        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("server reads");
        assert_eq!(got, payload(100));
        // The other direction still flows, to its own EOF.
        server.write_all(b"reply").await.expect("write");
        server.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("client reads");
        assert_eq!(got, b"reply");
        drop(client);
        proxy.wait_idle().await;
    })
    .await;
}

#[tokio::test]
async fn a_reset_from_one_side_resets_the_other() {
    within(10, async {
        let (upstream, mut accepted) = raw_upstream().await;
        let proxy = FaultProxy::start(upstream, Fault::None).expect("start");
        let client = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut server = accepted.recv().await.expect("upstream connection");
        SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
        drop(client);
        let err = server.read(&mut [0; 16]).await.expect_err("reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        proxy.wait_idle().await;
    })
    .await;
}

#[tokio::test]
async fn drop_stops_accepting_and_ends_proxied_connections() {
    within(10, async {
        let upstream = echo_upstream().await;
        let proxy = FaultProxy::start(upstream, Fault::None).expect("start");
        let addr = proxy.addr();
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(b"hi").await.expect("write");
        let mut buf = [0; 2];
        client.read_exact(&mut buf).await.expect("echo");
        drop(proxy);
        let err = TcpStream::connect(addr).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        // The proxied connection is closed too (its task was aborted).
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        assert_eq!(rest, b"");
    })
    .await;
}

#[tokio::test]
async fn only_loopback_upstreams() {
    let err = FaultProxy::start("192.0.2.1:80".parse().expect("addr"), Fault::None)
        .expect_err("not loopback");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn proxy_is_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<FaultProxy>();
    check::<Fault>();
}
