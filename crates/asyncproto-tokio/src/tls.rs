//! TLS transports (feature `tls`): asyncio's `ssl=` on `create_connection`
//! and `create_server`, and `start_tls`, on `rustls` through tokio-rustls.
//!
//! The handshake runs before `connection_made`; a failed handshake never
//! reaches the protocol. On an established TLS transport:
//!
//! - `close()` flushes the buffer, sends `close_notify` (and the socket's
//!   FIN), then waits for the peer's `close_notify` up to the shutdown
//!   timeout (default 30 s), discarding what the peer still sends; a peer
//!   that answers with a bare FIN ends it cleanly, silence ends it with
//!   [`Error::TlsShutdownTimeout`](asyncproto_core::Error::TlsShutdownTimeout).
//!   `abort()` sends no `close_notify`.
//! - The peer's `close_notify` is EOF: `eof_received` runs, then the
//!   transport closes whatever it returns (no half-close over TLS, as in
//!   asyncio; returning true logs a warning). `can_write_eof()` is false.
//! - A peer that closes TCP **without** `close_notify` is a truncation:
//!   `connection_lost(Some(Error::Io(e)))` with `e.kind() ==
//!   UnexpectedEof`, and no `eof_received` (asyncio cannot tell the two
//!   apart; `rustls` can, and a silently truncated stream is a security
//!   bug).
//! - Write flow control counts plaintext until its ciphertext has been handed
//!   to the socket: bytes inside `rustls` stay in `get_write_buffer_size()`,
//!   so a peer that never reads cannot grow memory past the high mark plus
//!   one `rustls` buffer. The default marks are asyncio's TLS ones, 512 KiB
//!   high and 128 KiB low; the rule is the same as every other transport's
//!   (pause strictly over high), not the TLS transport's `>=`.
//!
//! # Example
//!
//! A TLS echo server and a client (certificates from the test kit; load
//! yours with `rustls::pki_types::pem::PemObject`):
//!
//! ```
//! use asyncproto_core::testing::{Event, Recorder};
//! use asyncproto_testkit::tls::TestPki;
//! use asyncproto_tokio::{
//!     ConnectOptions, ServerOptions, TlsClientOptions, TlsServerOptions, create_connection,
//!     create_server,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pki = TestPki::new();
//! let echo = || {
//!     Recorder::default().on_event(|e, t| {
//!         if let Event::Data(d) = e {
//!             t.write(d.clone()).unwrap();
//!         }
//!     })
//! };
//! let server_tls = TlsServerOptions::new(pki.server_config());
//! let server = create_server(echo, "127.0.0.1:0", ServerOptions::new().tls(server_tls)).await?;
//!
//! let client_tls = TlsClientOptions::new(pki.client_config()).server_name("localhost".try_into()?);
//! let (transport, done) = create_connection(
//!     || Recorder::default().on_event(|e, t| if matches!(e, Event::Data(_)) { t.close() }),
//!     server.local_addrs()[0],
//!     ConnectOptions::new().tls(client_tls),
//! )
//! .await?;
//! assert!(transport.is_tls());
//! transport.write("hello over TLS")?;
//! let client = done.await?; // close() sent close_notify; the server answered
//! assert_eq!(client.data(), b"hello over TLS");
//! assert_eq!(client.events().last(), Some(&Event::Lost(None)));
//! server.close();
//! server.wait_closed().await;
//! # Ok(()) }
//! ```
//!
//! # Why ring?
//!
//! `rustls` needs a crypto provider. `ring` builds in about half the time of
//! `aws-lc-rs` on a 2-core machine (no `CMake`, no C++), and this crate is
//! built in CI on one. Configurations are built with
//! [`rustls::ClientConfig::builder`], which uses the process default
//! provider if one is installed, else the one enabled by features (`ring`).

use std::{
    any::Any,
    fmt,
    future::Future,
    io::{self, IoSlice},
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use asyncproto_core::{
    StreamProtocol, TlsInfo, Transport, TransportInfo,
    lifecycle::{Connection, request_upgrade},
};
use bytes::{Bytes, BytesMut};
use rustls::{ClientConfig, ServerConfig, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    sync::oneshot,
};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::{
    conn::{PollIo, ProtocolHandle, spawn_connection},
    error::Error,
    socket::{ReadyStream, SockIo, SocketIo},
};

/// asyncio's default TLS handshake timeout: 60 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's default TLS shutdown timeout: 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS for the client side of a connection (asyncio: `ssl=` with a client
/// `SSLContext`, `server_hostname=`, `ssl_handshake_timeout=`,
/// `ssl_shutdown_timeout=`).
///
/// The `rustls` configuration decides verification; a
/// [`ClientConfig::builder`] configuration verifies the server's certificate
/// and name against its root store, so verification is on unless the
/// configuration itself turns it off (`rustls`' `dangerous()` API).
///
/// # Examples
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use asyncproto_tokio::{ConnectOptions, TlsClientOptions};
/// use rustls::{ClientConfig, RootCertStore};
///
/// let roots = RootCertStore::empty(); // add your CA here
/// let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
/// let tls = TlsClientOptions::new(Arc::new(config))
///     .server_name("localhost".try_into().unwrap())
///     .handshake_timeout(Duration::from_secs(10));
/// let opts = ConnectOptions::new().tls(tls);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until used"]
pub struct TlsClientOptions {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: Option<ServerName<'static>>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl TlsClientOptions {
    /// TLS with `config`, asyncio's timeouts, and the server name derived
    /// from the address connected to (see
    /// [`server_name`](Self::server_name)).
    pub fn new(config: Arc<ClientConfig>) -> Self {
        Self {
            config,
            server_name: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// The name sent (SNI) and verified against the server's certificate
    /// (asyncio's `server_hostname`). Default: the host given to
    /// [`create_connection_to_host`](crate::create_connection_to_host), or
    /// the IP address connected to; required where neither exists
    /// ([`create_connection_with_sock`](crate::create_connection_with_sock),
    /// [`start_tls`] on a transport without a peer address).
    pub fn server_name(mut self, name: ServerName<'static>) -> Self {
        self.server_name = Some(name);
        self
    }

    /// How long the handshake may take (asyncio's `ssl_handshake_timeout`,
    /// default 60 s); must not be zero.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long `close()` may take to flush, send `close_notify` and hear
    /// the peer's (asyncio's `ssl_shutdown_timeout`, default 30 s); must not
    /// be zero.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate(self.handshake_timeout, self.shutdown_timeout)
    }

    /// **Dangerous:** verifies the server's certificate chain against
    /// `roots` but **not its name** (asyncio: `server_hostname=''`, which
    /// turns `check_hostname` off). Any certificate those roots signed, for
    /// any host, is accepted: use it only where the roots are yours (a
    /// private CA for one service), never with public roots.
    ///
    /// Replaces the configuration's certificate verifier with `rustls`'
    /// `WebPkiServerVerifier` over `roots`, minus the name check; the rest of
    /// the configuration (client certificate, ALPN, versions) is kept. The
    /// server name is still sent (SNI) when it is a DNS name.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if `roots` is empty (nothing could be verified).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use asyncproto_tokio::TlsClientOptions;
    /// use asyncproto_testkit::tls::TestPki;
    ///
    /// let pki = TestPki::new();
    /// let tls = TlsClientOptions::new(pki.client_config())
    ///     .danger_skip_hostname_verification(Arc::new(pki.roots()))?;
    /// # let _ = tls;
    /// # Ok::<(), asyncproto_tokio::Error>(())
    /// ```
    pub fn danger_skip_hostname_verification(
        mut self,
        roots: Arc<rustls::RootCertStore>,
    ) -> Result<Self, Error> {
        let provider = Arc::clone(self.config.crypto_provider());
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| Error::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let mut config = (*self.config).clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoHostnameCheck { inner }));
        self.config = Arc::new(config);
        Ok(self)
    }
}

/// A server-certificate verifier that checks the chain and signatures but
/// accepts a certificate issued for another name.
#[derive(Debug)]
struct NoHostnameCheck {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error as E, client::danger::ServerCertVerified};
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(E::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS for the server side of connections (asyncio: `ssl=` with a server
/// `SSLContext` on `create_server`, `connect_accepted_socket` or
/// `start_tls(server_side=True)`).
///
/// Client certificates (mTLS) are the configuration's business: build it
/// with a `rustls::server::WebPkiClientVerifier` to require or accept them.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use asyncproto_tokio::{ServerOptions, TlsServerOptions};
/// use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
///
/// # #[allow(dead_code)]
/// # fn demo(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
/// let key = PrivateKeyDer::from_pem_slice(key_pem)?;
/// let config = rustls::ServerConfig::builder()
///     .with_no_client_auth()
///     .with_single_cert(chain, key)?;
/// let opts = ServerOptions::new().tls(TlsServerOptions::new(Arc::new(config)));
/// # let _ = opts;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until used"]
pub struct TlsServerOptions {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl TlsServerOptions {
    /// TLS with `config` and asyncio's timeouts.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// How long a handshake may take (default 60 s); must not be zero. A
    /// client that takes longer is dropped; other clients' handshakes run
    /// concurrently and are not delayed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long `close()` may take (default 30 s); must not be zero.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate(self.handshake_timeout, self.shutdown_timeout)
    }
}

fn validate(handshake: Duration, shutdown: Duration) -> Result<(), Error> {
    if handshake.is_zero() {
        return Err(Error::InvalidTimeout {
            name: "handshake_timeout",
        });
    }
    if shutdown.is_zero() {
        return Err(Error::InvalidTimeout {
            name: "shutdown_timeout",
        });
    }
    Ok(())
}

/// One side of a handshake, with everything it needs.
#[derive(Debug, Clone)]
pub(crate) enum TlsSide {
    Client {
        options: TlsClientOptions,
        name: ServerName<'static>,
    },
    Server(TlsServerOptions),
}

impl TlsSide {
    /// The client side; the server name is the options' or `default`.
    pub(crate) fn client(
        options: &TlsClientOptions,
        default: Option<ServerName<'static>>,
    ) -> Result<Self, Error> {
        options.validate()?;
        let name = options
            .server_name
            .clone()
            .or(default)
            .ok_or(Error::MissingServerName)?;
        Ok(Self::Client {
            options: options.clone(),
            name,
        })
    }

    pub(crate) fn server(options: &TlsServerOptions) -> Result<Self, Error> {
        options.validate()?;
        Ok(Self::Server(options.clone()))
    }

    fn handshake_timeout(&self) -> Duration {
        match self {
            Self::Client { options, .. } => options.handshake_timeout,
            Self::Server(o) => o.handshake_timeout,
        }
    }

    fn shutdown_timeout(&self) -> Duration {
        match self {
            Self::Client { options, .. } => options.shutdown_timeout,
            Self::Server(o) => o.shutdown_timeout,
        }
    }
}

/// The server name to verify when the user gave none: the host asked for
/// (an IP literal or a DNS name), else the peer's IP address.
pub(crate) fn default_server_name(
    host: Option<&str>,
    peer: Option<SocketAddr>,
) -> Option<ServerName<'static>> {
    match host {
        Some(h) => ServerName::try_from(h.trim_start_matches('[').trim_end_matches(']'))
            .ok()
            .map(|n| n.to_owned()),
        None => peer.map(|p| ServerName::IpAddress(p.ip().into())),
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Timeout(Duration),
    Io(io::Error),
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Timeout(after) => Self::TlsHandshakeTimeout { after },
            HandshakeError::Io(e) => Self::Tls(e),
        }
    }
}

impl From<HandshakeError> for asyncproto_core::Error {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Timeout(after) => Self::TlsHandshakeTimeout { after },
            HandshakeError::Io(e) => Self::Io(e),
        }
    }
}

/// Runs the handshake over `sock` (with `held` bytes read first) within the
/// side's handshake timeout.
pub(crate) async fn handshake<S: ReadyStream>(
    sock: Arc<S>,
    held: Option<Bytes>,
    side: &TlsSide,
) -> Result<(TlsIo<S>, TlsInfo), HandshakeError> {
    let io = SockIo::new(sock, held);
    let timeout = side.handshake_timeout();
    let fut = async {
        match side {
            TlsSide::Client { options, name } => {
                let stream = TlsConnector::from(Arc::clone(&options.config))
                    .connect(name.clone(), io)
                    .await?;
                let sent = match name {
                    ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
                    ServerName::IpAddress(ip) => Some(std::net::IpAddr::from(*ip).to_string()),
                    _ => None,
                };
                let info = TlsInfo::client(stream.get_ref().1, Arc::clone(&options.config), sent);
                Ok::<_, io::Error>((TlsStream::Client(stream), info))
            }
            TlsSide::Server(options) => {
                let stream = TlsAcceptor::from(Arc::clone(&options.config))
                    .accept(io)
                    .await?;
                let info = TlsInfo::server(stream.get_ref().1, Arc::clone(&options.config));
                Ok((TlsStream::Server(stream), info))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(HandshakeError::Timeout(timeout)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            // asyncio: EOF during the handshake is ConnectionResetError.
            Err(HandshakeError::Io(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection closed during the TLS handshake",
            )))
        }
        Ok(Err(e)) => Err(HandshakeError::Io(e)),
        Ok(Ok((tls, info))) => Ok((
            TlsIo {
                tls,
                inflight: 0,
                shutdown_timeout: side.shutdown_timeout(),
            },
            info,
        )),
    }
}

/// Builds a TLS connection over `sock`: the handshake, then the protocol
/// from `factory`, `connection_made`, and the connection task.
pub(crate) async fn establish<P, F, S>(
    factory: F,
    sock: Arc<S>,
    info: TransportInfo,
    side: &TlsSide,
    span: tracing::Span,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
    S: ReadyStream,
{
    let session = handshake(Arc::clone(&sock), None, side).await?;
    let (conn, io) = connection(factory(), info, sock, session);
    spawn_connection(conn, io, span)
}

/// The connection for a finished handshake: TLS rules, the session's
/// details, the socket lent to `with_socket`.
pub(crate) fn connection<P: StreamProtocol, S: ReadyStream>(
    protocol: P,
    info: TransportInfo,
    sock: Arc<S>,
    (io, tls_info): (TlsIo<S>, TlsInfo),
) -> (Connection<P>, SocketIo<S>) {
    let mut conn = Connection::new(protocol, info);
    conn.set_socket(sock);
    conn.enter_tls();
    conn.set_tls_info(tls_info);
    (conn, SocketIo::Tls(Box::new(io)))
}

/// A TLS stream as the connection task polls it.
pub(crate) struct TlsIo<S> {
    tls: TlsStream<SockIo<S>>,
    /// Plaintext `rustls` took whose ciphertext is not all on the socket
    /// yet: still counted in the write buffer (reported as written only once
    /// flushed).
    inflight: usize,
    shutdown_timeout: Duration,
}

impl<S> TlsIo<S> {
    pub(crate) fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }
}

impl<S: ReadyStream> TlsIo<S> {
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        // One poll of a fresh read_buf future is poll_read_buf: it reads
        // into the spare capacity.
        pin!(self.tls.read_buf(buf)).poll(cx)
    }

    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.tls).poll_read(cx, &mut rb))?;
        Poll::Ready(Ok(rb.filled().len()))
    }

    /// Hands plaintext to `rustls` and reports it written only when its
    /// ciphertext is on the socket. The connection passes the same front
    /// bytes again until they are reported, so after a `Pending` the next
    /// call only flushes.
    pub(crate) fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.inflight == 0 {
            let n = ready!(Pin::new(&mut self.tls).poll_write_vectored(cx, bufs))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            self.inflight = n;
        }
        ready!(Pin::new(&mut self.tls).poll_flush(cx))?;
        Poll::Ready(Ok(std::mem::take(&mut self.inflight)))
    }

    /// Sends `close_notify` (after what is buffered) and the socket's FIN.
    pub(crate) fn poll_shutdown_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

/// `start_tls` on a socket connection: the handshake over the plain socket,
/// then the socket runs TLS.
pub(crate) async fn upgrade_socket<S: ReadyStream>(
    io: &mut SocketIo<S>,
    held: Option<Bytes>,
    side: &TlsSide,
) -> Result<TlsInfo, asyncproto_core::Error> {
    let SocketIo::Plain(crate::socket::Plain { sock, .. }) =
        std::mem::replace(io, SocketIo::Detached)
    else {
        return Err(asyncproto_core::Error::Unsupported {
            method: "start_tls",
        });
    };
    let (tls, info) = handshake(sock, held, side).await?;
    *io = SocketIo::Tls(Box::new(tls));
    Ok(info)
}

/// What [`start_tls`] asks the connection task to do.
struct UpgradeRequest {
    side: TlsSide,
    protocol: Option<SetProtocol>,
    reply: oneshot::Sender<Result<(), asyncproto_core::Error>>,
}

/// Performs a due upgrade on the connection's task (`Status::Upgrade`).
pub(crate) async fn perform_upgrade<P: StreamProtocol, T: PollIo>(
    conn: &mut Connection<P>,
    io: &mut T,
) {
    let Some((request, held)) = conn.take_upgrade() else {
        return;
    };
    let request: Box<dyn Any + Send> = request;
    let Ok(request) = request.downcast::<UpgradeRequest>() else {
        conn.fail(asyncproto_core::Error::Unsupported {
            method: "start_tls",
        });
        return;
    };
    let UpgradeRequest {
        side,
        protocol,
        reply,
    } = *request;
    let transport = conn.transport().clone();
    let mut handshake = io.upgrade_tls(held, &side);
    // A close() or abort() (or a dropped StartTls) during the handshake
    // aborts it: the transport's notification wakes this task.
    let res = std::future::poll_fn(|cx| {
        if transport.is_closing() {
            return Poll::Ready(Err(asyncproto_core::Error::Closed));
        }
        handshake.as_mut().poll(cx)
    })
    .await;
    drop(handshake);
    match res {
        Ok(info) => {
            tracing::debug!(version = ?info.protocol_version(), "start_tls: handshake done");
            conn.enter_tls();
            conn.set_tls_info(info);
            if let Some(set) = protocol {
                set(&transport);
            }
            let _ = reply.send(Ok(()));
        }
        Err(asyncproto_core::Error::Closed) => {
            tracing::debug!("start_tls: closed during the handshake; aborted");
            // Bytes written for the TLS stream must never go out plain.
            transport.abort();
            let _ = reply.send(Err(asyncproto_core::Error::Closed));
        }
        Err(e) => {
            tracing::debug!(error = %e, "start_tls: handshake failed");
            let copy = copy_error(&e);
            conn.fail(e);
            let _ = reply.send(Err(copy));
        }
    }
}

/// The error for the `start_tls` caller; the original goes to
/// `connection_lost`.
fn copy_error(e: &asyncproto_core::Error) -> asyncproto_core::Error {
    match e {
        asyncproto_core::Error::TlsHandshakeTimeout { after } => {
            asyncproto_core::Error::TlsHandshakeTimeout { after: *after }
        }
        // `io::Error` is not `Clone`; the `rustls::Error` inside is, so the
        // caller can still match it (`Error::tls_error`).
        asyncproto_core::Error::Io(io) => asyncproto_core::Error::Io(
            match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(tls) => io::Error::new(io.kind(), tls.clone()),
                None => io::Error::new(io.kind(), io.to_string()),
            },
        ),
        other => asyncproto_core::Error::Io(io::Error::new(other.kind(), other.to_string())),
    }
}

/// How [`start_tls`] upgrades a connection.
#[must_use = "a TlsUpgrade does nothing until passed to start_tls"]
pub struct TlsUpgrade {
    side: Side,
    protocol: Option<SetProtocol>,
}

/// Applies the new protocol of a [`TlsUpgrade`].
type SetProtocol = Box<dyn FnOnce(&Transport) + Send>;

impl fmt::Debug for TlsUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsUpgrade")
            .field("side", &self.side)
            .field("new_protocol", &self.protocol.is_some())
            .finish()
    }
}

#[derive(Debug)]
enum Side {
    Client(TlsClientOptions),
    Server(TlsServerOptions),
}

impl TlsUpgrade {
    /// This end becomes the TLS client (asyncio: `server_side=False`).
    pub fn client(options: TlsClientOptions) -> Self {
        Self {
            side: Side::Client(options),
            protocol: None,
        }
    }

    /// This end becomes the TLS server (asyncio: `server_side=True`).
    pub fn server(options: TlsServerOptions) -> Self {
        Self {
            side: Side::Server(options),
            protocol: None,
        }
    }

    /// The protocol that gets the callbacks once the handshake has finished
    /// (asyncio's `protocol` argument); without it the current protocol goes
    /// on. It gets no `connection_made`: give it the transport when you
    /// build it.
    pub fn protocol(mut self, protocol: impl StreamProtocol) -> Self {
        self.protocol = Some(Box::new(move |t: &Transport| t.set_protocol(protocol)));
        self
    }
}

/// Upgrades a plain connection to TLS in place (asyncio:
/// `loop.start_tls(transport, protocol, sslcontext, server_side=…,
/// server_hostname=…)`; STARTTLS).
///
/// The request takes effect **when this function is called**, not when the
/// future is first polled, so it can be made from inside a protocol
/// callback (spawn the future, or keep it): from then on nothing more is read
/// as plaintext, and the protocol gets no callback for the peer's bytes
/// until the handshake has finished. Bytes written before the call go out in
/// plaintext, in order; bytes written after it wait and go out over TLS. The
/// handshake runs on the connection's task once the plaintext is sent.
///
/// The future resolves to the same transport, now TLS (asyncio returns a new
/// transport object; here the protocol's stored handle keeps working, and
/// [`Transport::tls`] answers the session's details). With
/// [`TlsUpgrade::protocol`], the new protocol takes over after the
/// handshake.
///
/// # Errors
///
/// - [`Error::Protocol`]`(`[`Closed`](asyncproto_core::Error::Closed)`)` if
///   the transport is closing; `(`[`Unsupported`](asyncproto_core::Error::Unsupported)`)`
///   if it already runs TLS, another upgrade is pending, or the transport
///   cannot be upgraded (only TCP and Unix socket transports can);
/// - [`Error::MissingServerName`] for a client upgrade without a server
///   name on a transport with no peer address; [`Error::InvalidTimeout`];
/// - [`Error::TlsHandshakeTimeout`] or [`Error::Tls`] if the handshake
///   fails: the connection is then closed and its protocol gets
///   `connection_lost(Some(..))` with the same error.
///
/// # Cancel safety
///
/// Dropping the future before it resolves aborts the connection (asyncio:
/// cancelling `start_tls` closes the transport); the request itself is made
/// at the call.
pub fn start_tls(transport: &Transport, upgrade: TlsUpgrade) -> StartTls {
    let transport = transport.clone();
    let side = match &upgrade.side {
        Side::Client(o) => TlsSide::client(o, default_server_name(None, transport.peer_addr())),
        Side::Server(o) => TlsSide::server(o),
    };
    let side = match side {
        Ok(side) => side,
        Err(e) => {
            return StartTls {
                transport,
                state: StartState::Failed(Some(e)),
            };
        }
    };
    let (reply, rx) = oneshot::channel();
    let request = UpgradeRequest {
        side,
        protocol: upgrade.protocol,
        reply,
    };
    let state = match request_upgrade(&transport, Box::new(request)) {
        Ok(()) => StartState::Waiting(rx),
        Err(e) => StartState::Failed(Some(Error::Protocol(e))),
    };
    StartTls { transport, state }
}

/// The future [`start_tls`] returns.
#[must_use = "dropping a StartTls before it resolves aborts the connection"]
pub struct StartTls {
    transport: Transport,
    state: StartState,
}

enum StartState {
    Waiting(oneshot::Receiver<Result<(), asyncproto_core::Error>>),
    Failed(Option<Error>),
    Done,
}

impl fmt::Debug for StartTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartTls")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Future for StartTls {
    type Output = Result<Transport, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let res = match &mut this.state {
            StartState::Waiting(rx) => match ready!(Pin::new(rx).poll(cx)) {
                Ok(Ok(())) => Ok(this.transport.clone()),
                Ok(Err(asyncproto_core::Error::TlsHandshakeTimeout { after })) => {
                    Err(Error::TlsHandshakeTimeout { after })
                }
                Ok(Err(asyncproto_core::Error::Io(e))) => Err(Error::Tls(e)),
                Ok(Err(e)) => Err(Error::Protocol(e)),
                // The connection ended before the upgrade was due.
                Err(_) => Err(Error::Protocol(asyncproto_core::Error::Closed)),
            },
            StartState::Failed(e) => Err(e
                .take()
                .unwrap_or(Error::Protocol(asyncproto_core::Error::Closed))),
            StartState::Done => Err(Error::Protocol(asyncproto_core::Error::Closed)),
        };
        this.state = StartState::Done;
        Poll::Ready(res)
    }
}

impl Drop for StartTls {
    fn drop(&mut self) {
        if let StartState::Waiting(rx) = &mut self.state
            && !matches!(rx.try_recv(), Ok(Ok(())))
        {
            // Cancelled before the handshake finished: asyncio closes the
            // transport; a half-upgraded stream is of no use to anyone.
            self.transport.abort();
        }
    }
}

/// Ports of the asyncio rows that pass a TLS-only option without TLS
/// (`cpython-test-port.md`, sections TCP, Server lifecycle and TLS). asyncio
/// raises `ValueError('… is only meaningful with ssl')`; here the handshake
/// timeout and the server name exist only on [`TlsClientOptions`] and
/// [`TlsServerOptions`], so the call does not compile. Each doctest differs
/// from a compiling program only by that call.
#[cfg(doctest)]
mod compile_fail_rows {
    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_server_ssl_timeout_for_plain_socket`.
    ///
    /// `ServerOptions` has no handshake timeout; only `TlsServerOptions` has.
    ///
    /// ```compile_fail
    /// use std::time::Duration;
    /// use asyncproto_tokio::ServerOptions;
    ///
    /// let _opts = ServerOptions::new().handshake_timeout(Duration::from_secs(1));
    /// ```
    fn test_create_server_ssl_timeout_for_plain_socket() {}

    /// Port of uvloop `tests/test_tcp.py::Test_AIO_TCP::test_create_server_8`.
    ///
    /// As `test_create_server_ssl_timeout_for_plain_socket`.
    ///
    /// ```compile_fail
    /// use std::time::Duration;
    /// use asyncproto_tokio::ServerOptions;
    ///
    /// let _opts = ServerOptions::new().handshake_timeout(Duration::from_secs(1));
    /// ```
    fn test_create_server_8() {}

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_ssl_timeout_for_plain_socket`.
    ///
    /// `ConnectOptions` has no handshake timeout; only `TlsClientOptions` has.
    ///
    /// ```compile_fail
    /// use std::time::Duration;
    /// use asyncproto_tokio::ConnectOptions;
    ///
    /// let _opts = ConnectOptions::new().handshake_timeout(Duration::from_secs(1));
    /// ```
    fn test_create_connection_ssl_timeout_for_plain_socket() {}

    /// Port of uvloop `tests/test_tcp.py::Test_AIO_TCP::test_create_connection_6`.
    ///
    /// As `test_create_connection_ssl_timeout_for_plain_socket`.
    ///
    /// ```compile_fail
    /// use std::time::Duration;
    /// use asyncproto_tokio::ConnectOptions;
    ///
    /// let _opts = ConnectOptions::new().handshake_timeout(Duration::from_secs(1));
    /// ```
    fn test_create_connection_6() {}

    /// Port of CPython 3.11.7
    /// `test_events.py::EPollEventLoopTests::test_connect_accepted_socket_ssl_timeout_for_plain_socket`.
    ///
    /// `connect_accepted_socket` takes `ConnectOptions`, which has no
    /// handshake timeout; only `TlsServerOptions` (given through
    /// `ConnectOptions::tls_server`) has.
    ///
    /// ```compile_fail
    /// use std::time::Duration;
    /// use asyncproto_core::testing::Recorder;
    /// use asyncproto_tokio::{ConnectOptions, connect_accepted_socket};
    ///
    /// async fn demo(sock: std::net::TcpStream) {
    ///     let opts = ConnectOptions::new().handshake_timeout(Duration::from_secs(1));
    ///     let _ = connect_accepted_socket(Recorder::default, sock, opts).await;
    /// }
    /// ```
    fn test_connect_accepted_socket_ssl_timeout_for_plain_socket() {}

    /// Port of CPython 3.11.7
    /// `test_base_events.py::BaseEventLoopWithSelectorTests::test_create_connection_no_ssl_server_hostname_errors`.
    ///
    /// `ConnectOptions` has no server name; only `TlsClientOptions` has.
    ///
    /// ```compile_fail
    /// use asyncproto_tokio::{ConnectOptions, rustls::pki_types::ServerName};
    ///
    /// let _opts = ConnectOptions::new().server_name(ServerName::try_from("localhost").unwrap());
    /// ```
    fn test_create_connection_no_ssl_server_hostname_errors() {}
}
