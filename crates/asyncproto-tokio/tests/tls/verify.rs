//! Handshakes that must fail, and the ones mutual TLS must pass: issue #6's
//! "Done when" checks not already covered by an upstream port.

use std::{io, sync::Arc, sync::atomic::Ordering, time::Duration};

use asyncproto_core::testing::{
    Event::{Data, Eof, Lost, Made},
    Recorder,
};
use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::{
    ConnectOptions, ServerOptions, TlsClientOptions, TlsServerOptions, create_connection,
    create_server,
    rustls::{self, ClientConfig},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    peers::{self, counting, localhost, read_until_gone, server_options},
    support::{echo, tap, tapped_factory, within},
};

/// A server whose leaf was signed by a CA the client does not trust is
/// rejected with `UnknownIssuer`; the server never builds a protocol.
#[tokio::test]
async fn client_rejects_server_signed_by_an_unknown_ca() {
    within(10, async {
        let ours = TestPki::new();
        let theirs = TestPki::with_ca_name("some other CA");
        let (factory, calls) = counting(Recorder::default);
        let server = create_server(factory, "127.0.0.1:0", server_options(&theirs))
            .await
            .expect("server");
        let opts = ConnectOptions::new()
            .tls(TlsClientOptions::new(ours.client_config()).server_name(localhost()));
        let err = create_connection(Recorder::default, server.local_addrs()[0], opts)
            .await
            .expect_err("unknown CA");
        assert_unknown_issuer(&err);
        server.close();
        server.wait_closed().await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    })
    .await;
}

/// `err` is rustls' verdict on a chain from a CA the client does not trust.
fn assert_unknown_issuer(err: &asyncproto_tokio::Error) {
    assert_eq!(
        err.tls_error(),
        Some(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
        "{err:?}"
    );
}

/// A trusted certificate for another name is rejected (`NotValidForName`).
#[tokio::test]
async fn client_rejects_a_hostname_mismatch() {
    within(10, async {
        let pki = TestPki::new();
        let (factory, calls) = counting(Recorder::default);
        let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
            .await
            .expect("server");
        let opts = ConnectOptions::new().tls(
            TlsClientOptions::new(pki.client_config())
                .server_name("not-localhost.example".try_into().expect("name")),
        );
        let err = create_connection(Recorder::default, server.local_addrs()[0], opts)
            .await
            .expect_err("name mismatch");
        assert!(
            matches!(
                err.tls_error(),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{err:?}"
        );
        server.close();
        server.wait_closed().await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    })
    .await;
}

/// The loud opt-out (asyncio's `server_hostname=''`): a trusted certificate
/// for another name is accepted, but a chain from an untrusted CA is still
/// rejected.
#[tokio::test]
async fn skipping_hostname_verification_still_checks_the_chain() {
    within(10, async {
        let pki = TestPki::new();
        let server = create_server(echo, "127.0.0.1:0", server_options(&pki))
            .await
            .expect("server");
        let addr = server.local_addrs()[0];
        let tls = TlsClientOptions::new(pki.client_config())
            .server_name("not-localhost.example".try_into().expect("name"))
            .danger_skip_hostname_verification(Arc::new(pki.roots()))
            .expect("roots");
        let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new().tls(tls))
            .await
            .expect("name not checked");
        assert!(t.is_tls());
        t.close();
        assert_eq!(done.await.expect("done").events().last(), Some(&Lost(None)));

        let other = TestPki::with_ca_name("some other CA");
        let tls = TlsClientOptions::new(other.client_config())
            .server_name(localhost())
            .danger_skip_hostname_verification(Arc::new(other.roots()))
            .expect("roots");
        let err = create_connection(Recorder::default, addr, ConnectOptions::new().tls(tls))
            .await
            .expect_err("unknown CA");
        assert_unknown_issuer(&err);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// A client that connects and says nothing is dropped after the server's
/// handshake timeout, while a real client connecting meanwhile is served.
#[tokio::test]
async fn server_handshake_timeout_drops_a_silent_client() {
    within(10, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(echo);
        let opts = ServerOptions::new().tls(
            TlsServerOptions::new(pki.server_config())
                .handshake_timeout(Duration::from_millis(300)),
        );
        let server = create_server(factory, "127.0.0.1:0", opts)
            .await
            .expect("server");
        let addr = server.local_addrs()[0];
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let mut good = peers::client(&pki, addr).await;
        good.write_all(b"ping").await.expect("ping");
        let mut pong = [0; 4];
        good.read_exact(&mut pong).await.expect("echo");
        assert_eq!(&pong, b"ping");
        assert!(
            read_until_gone(&mut silent).await.is_empty(),
            "dropped without a byte"
        );
        good.shutdown().await.expect("close_notify");
        let mut sp = accepted.next().await;
        assert_eq!(
            sp.until_lost().await,
            [Made, Data("ping".into()), Eof, Lost(None)]
        );
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// A client that speaks plain text to the TLS server is dropped at its first
/// bytes; a TLS client connected before it goes on unaffected.
#[tokio::test]
async fn plain_text_garbage_client_is_dropped_without_affecting_others() {
    within(10, async {
        let pki = TestPki::new();
        let (factory, calls) = counting(echo);
        let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
            .await
            .expect("server");
        let addr = server.local_addrs()[0];
        let mut good = peers::client(&pki, addr).await;
        good.write_all(b"one").await.expect("write");
        let mut buf = [0; 3];
        good.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"one");

        let mut garbage = TcpStream::connect(addr).await.expect("connect");
        garbage
            .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("garbage");
        let answer = read_until_gone(&mut garbage).await;
        // Nothing but, at most, a TLS alert record.
        assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");

        good.write_all(b"two").await.expect("write");
        good.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"two");
        good.shutdown().await.expect("close_notify");
        let mut rest = Vec::new();
        good.read_to_end(&mut rest).await.expect("clean end");
        server.close();
        server.wait_closed().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "only the TLS client");
    })
    .await;
}

/// Mutual TLS: a client certificate signed by the server's trusted CA is
/// accepted, and the server sees it as the peer certificate.
#[tokio::test]
async fn mtls_accepts_a_client_certificate_from_the_trusted_ca() {
    within(10, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(echo);
        let opts = ServerOptions::new().tls(TlsServerOptions::new(pki.mtls_server_config()));
        let server = create_server(factory, "127.0.0.1:0", opts)
            .await
            .expect("server");
        let (proto, mut probe) = tap(Recorder::default());
        let opts = ConnectOptions::new()
            .tls(TlsClientOptions::new(pki.mtls_client_config()).server_name(localhost()));
        let (t, _done) = create_connection(move || proto, server.local_addrs()[0], opts)
            .await
            .expect("mTLS connect");
        assert_eq!(probe.next().await, Made);
        t.write("hi").expect("write");
        assert_eq!(probe.data(2).await, b"hi");
        let mut sp = accepted.next().await;
        let st = sp.made().await;
        let info = st.tls().expect("TLS");
        assert_eq!(info.peer_certificate(), Some(&pki.client.cert));
        assert!(info.is_server_side());
        t.close();
        assert_eq!(probe.until_lost().await, [Lost(None)]);
        assert_eq!(sp.until_lost().await, [Data("hi".into()), Eof, Lost(None)]);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// Connects `client` to an mTLS server and asserts the client is rejected
/// and the server never builds a protocol. In TLS 1.3 the client may finish
/// its handshake before the server's verdict arrives: then the connection
/// ends at once with the server's alert instead.
async fn assert_mtls_rejects(pki: &TestPki, client: Arc<ClientConfig>) {
    let (factory, calls) = counting(echo);
    let opts = ServerOptions::new().tls(TlsServerOptions::new(pki.mtls_server_config()));
    let server = create_server(factory, "127.0.0.1:0", opts)
        .await
        .expect("server");
    let (proto, mut probe) = tap(Recorder::default());
    let opts = ConnectOptions::new().tls(TlsClientOptions::new(client).server_name(localhost()));
    match create_connection(move || proto, server.local_addrs()[0], opts).await {
        Err(err) => assert!(
            matches!(err.tls_error(), Some(rustls::Error::AlertReceived(_))),
            "{err:?}"
        ),
        Ok((_t, _done)) => {
            assert_eq!(probe.next().await, Made);
            let Lost(Some(kind)) = probe.next().await else {
                panic!("not lost with an error");
            };
            assert_ne!(kind, io::ErrorKind::UnexpectedEof);
            let Some(asyncproto_core::Error::Io(e)) = probe.lost_error() else {
                panic!("{:?}", probe.lost_error());
            };
            assert!(
                matches!(
                    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
                    Some(rustls::Error::AlertReceived(_))
                ),
                "{e:?}"
            );
        }
    }
    server.close();
    server.wait_closed().await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Mutual TLS: a client without a certificate is rejected.
#[tokio::test]
async fn mtls_rejects_a_client_without_a_certificate() {
    within(10, async {
        let pki = TestPki::new();
        assert_mtls_rejects(&pki, pki.client_config()).await;
    })
    .await;
}

/// Mutual TLS: a client certificate from another CA is rejected.
#[tokio::test]
async fn mtls_rejects_a_client_certificate_from_another_ca() {
    within(10, async {
        let pki = TestPki::new();
        let other = TestPki::with_ca_name("some other CA");
        let client = Arc::new(
            ClientConfig::builder()
                .with_root_certificates(pki.roots())
                .with_client_auth_cert(vec![other.client.cert.clone()], other.client.key())
                .expect("client config"),
        );
        assert_mtls_rejects(&pki, client).await;
    })
    .await;
}
