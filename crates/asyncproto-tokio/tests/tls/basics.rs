//! The TLS transport's contract, end to end: echo, `close_notify` both ways,
//! truncation, `start_tls`.

use std::{io, time::Duration};

use asyncproto_core::testing::{Event, Recorder};
use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::{
    ConnectOptions, ServerOptions, TlsClientOptions, TlsServerOptions, TlsUpgrade,
    create_connection, create_server, start_tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    peers,
    support::{checksum, echo, payload, tap, tapped_factory, within},
};

fn tls_server(pki: &TestPki) -> ServerOptions {
    ServerOptions::new().tls(TlsServerOptions::new(pki.server_config()))
}

fn tls_client(pki: &TestPki) -> ConnectOptions {
    ConnectOptions::new().tls(
        TlsClientOptions::new(pki.client_config())
            .server_name("localhost".try_into().expect("name")),
    )
}

/// 10 MB through a TLS echo server and back, checksummed; both sides end
/// with `connection_lost(None)` after our client's `close()`.
#[tokio::test]
async fn ten_mb_echo_over_tls_is_exact() {
    within(60, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(echo);
        let server = create_server(factory, "127.0.0.1:0", tls_server(&pki))
            .await
            .expect("server");
        let addr = server.local_addrs()[0];
        let (client, mut probe) = tap(Recorder::default());
        let (transport, _done) = create_connection(move || client, addr, tls_client(&pki))
            .await
            .expect("connect");
        assert!(transport.is_tls());
        assert!(!transport.can_write_eof());
        assert_eq!(probe.next().await, Event::Made);
        let data = payload(10 * 1024 * 1024, 7);
        transport.write(data.clone()).expect("write");
        let mut got = Vec::with_capacity(data.len());
        let mut edges = Vec::new();
        while got.len() < data.len() {
            match probe.next().await {
                Event::Data(d) => got.extend_from_slice(&d),
                e @ (Event::PauseWriting | Event::ResumeWriting) => edges.push(e),
                other => panic!("unexpected {other:?}"),
            }
        }
        // 10 MB over the 512 KiB TLS high mark: one pause, one resume.
        assert_eq!(edges, [Event::PauseWriting, Event::ResumeWriting]);
        assert_eq!(checksum(&got), checksum(&data));
        transport.close();
        assert_eq!(probe.next().await, Event::Lost(None));
        let mut sp = accepted.next().await;
        let events = sp.until_lost().await;
        assert_eq!(events.first(), Some(&Event::Made));
        // Our `close_notify` is EOF for the server: eof_received, then its own
        // close.
        assert_eq!(&events[events.len() - 2..], [Event::Eof, Event::Lost(None)]);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// A peer's `close_notify` is EOF: `eof_received` then `connection_lost(None)`;
/// the server answers with its own `close_notify` (the raw peer reads a clean
/// end).
#[tokio::test]
async fn peer_close_notify_is_eof_and_clean_close() {
    within(20, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(Recorder::default);
        let server = create_server(factory, "127.0.0.1:0", tls_server(&pki))
            .await
            .expect("server");
        let mut raw = peers::client(&pki, server.local_addrs()[0]).await;
        raw.write_all(b"abc").await.expect("write");
        raw.shutdown().await.expect("close_notify");
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest)
            .await
            .expect("clean end from the server");
        assert!(rest.is_empty());
        let mut sp = accepted.next().await;
        assert_eq!(
            sp.until_lost().await,
            [
                Event::Made,
                Event::Data("abc".into()),
                Event::Eof,
                Event::Lost(None)
            ]
        );
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// A peer that drops TCP without `close_notify` truncated the stream: the data
/// before it is delivered, then `connection_lost(Some(UnexpectedEof))`, and no
/// `eof_received`.
#[tokio::test]
async fn truncation_is_reported_not_eof() {
    within(20, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(Recorder::default);
        let server = create_server(factory, "127.0.0.1:0", tls_server(&pki))
            .await
            .expect("server");
        let mut raw = peers::client(&pki, server.local_addrs()[0]).await;
        raw.write_all(b"abc").await.expect("write");
        raw.flush().await.expect("flush");
        let (tcp, _) = raw.into_inner();
        drop(tcp); // FIN without close_notify
        let mut sp = accepted.next().await;
        assert_eq!(
            sp.until_lost().await,
            [
                Event::Made,
                Event::Data("abc".into()),
                Event::Lost(Some(io::ErrorKind::UnexpectedEof))
            ]
        );
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// Our `close()` sends `close_notify`; a peer that answers with its own ends
/// the connection cleanly; one that stays silent hits the shutdown timeout.
#[tokio::test]
async fn close_waits_for_peer_close_notify_then_times_out() {
    within(20, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(Recorder::default);
        let opts = ServerOptions::new().tls(
            TlsServerOptions::new(pki.server_config()).shutdown_timeout(Duration::from_millis(300)),
        );
        let server = create_server(factory, "127.0.0.1:0", opts)
            .await
            .expect("server");
        let addr = server.local_addrs()[0];

        // A peer that answers.
        let mut raw = peers::client(&pki, addr).await;
        let mut sp = accepted.next().await;
        let t = sp.made().await;
        t.write("bye").expect("write");
        t.close();
        let mut got = Vec::new();
        raw.read_to_end(&mut got).await.expect("clean end");
        assert_eq!(got, b"bye");
        raw.shutdown().await.expect("answer close_notify");
        assert_eq!(sp.until_lost().await, [Event::Lost(None)]);

        // A peer that never answers (and keeps TCP open).
        let mut silent = peers::client(&pki, addr).await;
        let mut sp = accepted.next().await;
        let t = sp.made().await;
        t.close();
        let mut got = Vec::new();
        silent.read_to_end(&mut got).await.expect("clean end");
        assert_eq!(
            sp.until_lost().await,
            [Event::Lost(Some(io::ErrorKind::TimedOut))]
        );
        assert!(matches!(
            sp.lost_error(),
            Some(asyncproto_core::Error::TlsShutdownTimeout { .. })
        ));
        drop(silent);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// STARTTLS: the server protocol writes "OK" and calls `start_tls` from
/// inside `data_received`; "OK" goes out in plaintext, the handshake
/// follows, and the protocol then echoes over TLS.
#[tokio::test]
async fn start_tls_from_a_callback_upgrades_in_place() {
    within(20, async {
        let pki = TestPki::new();
        let config = pki.server_config();
        let (factory, mut accepted) = tapped_factory(move || {
            let config = config.clone();
            let mut upgraded = false;
            Recorder::default().on_event(move |e, t| {
                if let Event::Data(d) = e {
                    if upgraded {
                        t.write(d.clone()).expect("echo");
                    } else {
                        assert_eq!(&d[..], b"STARTTLS\n");
                        t.write("OK\n").expect("write");
                        let fut =
                            start_tls(t, TlsUpgrade::server(TlsServerOptions::new(config.clone())));
                        tokio::spawn(fut);
                        // Written after the request: goes out over TLS.
                        t.write("secure hello\n").expect("write");
                        upgraded = true;
                    }
                }
            })
        });
        let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("server");
        let mut tcp = tokio::net::TcpStream::connect(server.local_addrs()[0])
            .await
            .expect("connect");
        tcp.write_all(b"STARTTLS\n").await.expect("write");
        let mut ok = [0; 3];
        tcp.read_exact(&mut ok).await.expect("OK");
        assert_eq!(&ok, b"OK\n");
        let mut tls = tokio_rustls::TlsConnector::from(pki.client_config())
            .connect("localhost".try_into().expect("name"), tcp)
            .await
            .expect("handshake");
        let mut hello = [0; 13];
        tls.read_exact(&mut hello).await.expect("hello");
        assert_eq!(&hello, b"secure hello\n");
        tls.write_all(b"ping").await.expect("ping");
        let mut pong = [0; 4];
        tls.read_exact(&mut pong).await.expect("pong");
        assert_eq!(&pong, b"ping");
        let mut sp = accepted.next().await;
        let t = sp.made().await;
        assert!(t.is_tls());
        assert!(t.tls().is_some());
        tls.shutdown().await.expect("close_notify");
        let events = sp.until_lost().await;
        assert_eq!(&events[events.len() - 2..], [Event::Eof, Event::Lost(None)]);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// A TLS client's extra info: the server's leaf as `peercert`, the cipher as
/// (name, version, bits), the client's config as `sslcontext`, the session
/// as `ssl_object`; `compression` is None; the addresses are the socket's.
#[tokio::test]
async fn client_extra_info_answers_tls_keys() {
    use asyncproto_core::{ExtraInfo, tls::TlsConfig};
    within(20, async {
        let pki = TestPki::new();
        let (raw, addr) = peers::RawServer::bind(&pki).await;
        let server = tokio::spawn(async move {
            let mut s = raw.accept().await;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read to close_notify");
            s.shutdown().await.expect("close_notify");
            buf
        });
        let config = pki.client_config();
        let opts = ConnectOptions::new().tls(TlsClientOptions::new(config.clone()));
        let (t, done) = create_connection(Recorder::default, addr, opts)
            .await
            .expect("connect by IP: the leaf has IP:127.0.0.1");
        assert_eq!(
            t.get_extra_info("peercert"),
            Some(ExtraInfo::PeerCert(pki.server.cert.clone()))
        );
        let Some(ExtraInfo::Cipher(cipher)) = t.get_extra_info("cipher") else {
            panic!("no cipher");
        };
        assert_eq!(cipher.version, "TLSv1.3");
        assert!(cipher.name.starts_with("TLS13_"), "{cipher:?}");
        assert!(matches!(cipher.secret_bits, 128 | 256), "{cipher:?}");
        assert_eq!(
            t.get_extra_info("sslcontext"),
            Some(ExtraInfo::SslContext(TlsConfig::Client(config)))
        );
        assert_eq!(t.get_extra_info("compression"), None);
        let Some(ExtraInfo::SslObject(info)) = t.get_extra_info("ssl_object") else {
            panic!("no ssl_object");
        };
        assert!(!info.is_server_side());
        assert_eq!(info.server_name(), Some("127.0.0.1"));
        assert_eq!(info.peer_certificates().len(), 2, "leaf and CA");
        assert_eq!(t.get_extra_info("peername"), Some(ExtraInfo::Addr(addr)));
        t.write("x").expect("write");
        t.close();
        let protocol = done.await.expect("done");
        assert_eq!(protocol.events().last(), Some(&Event::Lost(None)));
        assert_eq!(server.await.expect("server"), b"x");
    })
    .await;
}

/// `connect_stream` over a TLS stream the user made: `close()` shuts it down
/// (`poll_shutdown`), so the peer reads a clean `close_notify` end, not a
/// truncation.
#[tokio::test]
async fn connect_stream_close_sends_close_notify_on_a_users_tls_stream() {
    within(20, async {
        let pki = TestPki::new();
        let (raw, addr) = peers::RawServer::bind(&pki).await;
        let server = tokio::spawn(async move {
            let mut s = raw.accept().await;
            let mut buf = Vec::new();
            // Err(UnexpectedEof) here would mean no close_notify.
            s.read_to_end(&mut buf).await.expect("clean end");
            buf
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(pki.client_config())
            .connect("localhost".try_into().expect("name"), tcp)
            .await
            .expect("handshake");
        let (t, done) =
            asyncproto_tokio::connect_stream(Recorder::default, tls, ConnectOptions::new())
                .await
                .expect("connect_stream");
        t.write("over a user's TLS stream").expect("write");
        t.close();
        assert_eq!(server.await.expect("server"), b"over a user's TLS stream");
        drop(done);
    })
    .await;
}
