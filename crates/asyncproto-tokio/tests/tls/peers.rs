//! Raw TLS peers: `tokio-rustls` streams the tests drive byte by byte, plus
//! the options, factories and log capture the TLS tests share.

use std::{
    future::Future,
    io::{self, Read, Write},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::{
    ConnectOptions, ServerOptions, TlsClientOptions, TlsServerOptions,
    rustls::{
        ClientConfig, ClientConnection, RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// A raw TLS client connected to `addr`, verifying `localhost`.
pub(crate) async fn client(pki: &TestPki, addr: SocketAddr) -> client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    TlsConnector::from(pki.client_config())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("client handshake")
}

/// A raw TLS server on 127.0.0.1:0; `accept` gives the next connection.
pub(crate) struct RawServer {
    pub(crate) listener: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
}

impl RawServer {
    pub(crate) async fn bind(pki: &TestPki) -> (Self, SocketAddr) {
        Self::bind_with(pki.server_config()).await
    }

    /// A raw server with its own configuration (e.g. a self-signed leaf).
    pub(crate) async fn bind_with(config: Arc<ServerConfig>) -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (
            Self {
                listener,
                acceptor: TlsAcceptor::from(config),
            },
            addr,
        )
    }

    pub(crate) async fn accept(&self) -> server::TlsStream<TcpStream> {
        let (tcp, _) = self.listener.accept().await.expect("accept");
        self.acceptor.accept(tcp).await.expect("server handshake")
    }
}

/// TLS server options with the PKI's server leaf.
pub(crate) fn server_options(pki: &TestPki) -> ServerOptions {
    ServerOptions::new().tls(TlsServerOptions::new(pki.server_config()))
}

/// TLS client options trusting the PKI's CA, verifying `localhost`.
pub(crate) fn client_tls(pki: &TestPki) -> TlsClientOptions {
    TlsClientOptions::new(pki.client_config()).server_name(localhost())
}

/// [`client_tls`] as connect options.
pub(crate) fn connect_options(pki: &TestPki) -> ConnectOptions {
    ConnectOptions::new().tls(client_tls(pki))
}

/// The name `localhost`.
pub(crate) fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

/// A client configuration with no trusted root at all (CPython: a
/// `CERT_REQUIRED` context with no CA loaded, or the default context facing
/// a test certificate).
pub(crate) fn no_roots_client_config() -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    )
}

/// A server configuration whose leaf for `localhost` and `127.0.0.1` is
/// self-signed (CPython's `ONLYCERT`/`ONLYKEY`).
pub(crate) fn self_signed_server_config() -> Arc<ServerConfig> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    Arc::new(
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
            .expect("server config"),
    )
}

/// Ends a raw TLS client without `close_notify`: flushes, then drops the TCP
/// stream (a bare FIN, provided everything the peer sent was read).
pub(crate) async fn drop_client_without_close_notify(mut s: client::TlsStream<TcpStream>) {
    s.flush().await.expect("flush");
    let (tcp, _) = s.into_inner();
    drop(tcp);
}

/// Ends a raw TLS server connection without `close_notify`, as
/// [`drop_client_without_close_notify`].
pub(crate) async fn drop_server_without_close_notify(mut s: server::TlsStream<TcpStream>) {
    s.flush().await.expect("flush");
    let (tcp, _) = s.into_inner();
    drop(tcp);
}

/// Reads a plain TCP stream until EOF or an error; returns what came before.
/// Used by silent peers to see that our end went away.
pub(crate) async fn read_until_gone(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A TLS client handshake driven by hand over a blocking socket, so that
/// `first` rides in the same segment as the client's last handshake flight
/// (uvloop's `test_first_data_after_wakeup`). Returns the connection and the
/// socket; run it on a blocking thread.
pub(crate) fn handshake_with_first_data(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    first: &[u8],
) -> (ClientConnection, std::net::TcpStream) {
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    let mut conn = ClientConnection::new(config, localhost()).expect("client connection");
    loop {
        if !conn.is_handshaking() {
            // The client's Finished is queued: add the data, send both at once.
            conn.writer().write_all(first).expect("plaintext");
            let mut out = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut out).expect("write_tls");
            }
            sock.write_all(&out).expect("send last flight with data");
            return (conn, sock);
        }
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).expect("write_tls");
        }
        if !out.is_empty() {
            sock.write_all(&out).expect("send");
        }
        if conn.is_handshaking() {
            let mut buf = [0; 16384];
            let n = sock.read(&mut buf).expect("recv");
            assert!(n > 0, "server closed during the handshake");
            conn.read_tls(&mut &buf[..n]).expect("read_tls");
            conn.process_new_packets().expect("handshake");
        }
    }
}

/// A factory wrapper that counts its calls.
pub(crate) fn counting<P>(
    make: impl Fn() -> P + Send + Sync + 'static,
) -> (impl Fn() -> P + Send + Sync + 'static, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&calls);
    (
        move || {
            count.fetch_add(1, Ordering::SeqCst);
            make()
        },
        calls,
    )
}

/// Runs `fut` on a fresh current-thread runtime with a subscriber that keeps
/// every WARN and ERROR event, and returns them with the output (CPython's
/// "nothing was logged" checks: a mocked exception handler).
pub(crate) fn run_logged<F: Future>(fut: F) -> (F::Output, String) {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = tracing::subscriber::with_default(subscriber, || rt.block_on(fut));
    drop(rt);
    let logged = String::from_utf8_lossy(&sink.0.lock().expect("sink")).into_owned();
    (out, logged)
}

/// Reads one whole TLS record (a `ClientHello`) from a plain socket, so that
/// closing it afterwards sends a FIN, not a RST. Returns the record.
pub(crate) async fn read_record(tcp: &mut TcpStream) -> Vec<u8> {
    let mut header = [0; 5];
    tcp.read_exact(&mut header).await.expect("record header");
    assert_eq!(header[0], 0x16, "a TLS handshake record");
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0; len];
    tcp.read_exact(&mut body).await.expect("record body");
    [&header[..], &body].concat()
}
