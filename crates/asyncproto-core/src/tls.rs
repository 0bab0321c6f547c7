//! What a TLS transport tells about its session (feature `tls`).
//!
//! A backend builds a [`TlsInfo`] from the `rustls` connection once the
//! handshake has finished and gives it to the connection
//! ([`Connection::set_tls_info`](crate::lifecycle::Connection::set_tls_info)).
//! Users read it through [`Transport::tls`](crate::Transport::tls) (typed) or
//! through asyncio's `get_extra_info` keys `peercert`, `cipher`,
//! `compression`, `sslcontext` and `ssl_object`.
//!
//! # Why a snapshot, not the live `rustls` connection?
//!
//! The `rustls` connection is owned by the connection's task, which reads and
//! writes through it without a lock. Everything asyncio's `SSLObject` answers
//! about a session (version, suite, peer certificates, ALPN, SNI) is fixed
//! when the handshake ends (`rustls` does not renegotiate), so a snapshot
//! taken then answers the same, from any thread, without contention.

use std::{fmt, sync::Arc};

use rustls::{
    ClientConfig, ClientConnection, CommonState, ProtocolVersion, ServerConfig, ServerConnection,
    SupportedCipherSuite, pki_types::CertificateDer,
};

/// The `rustls` configuration a TLS transport was made with (asyncio's
/// `sslcontext` extra info).
#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// A client's configuration.
    Client(Arc<ClientConfig>),
    /// A server's configuration.
    Server(Arc<ServerConfig>),
}

impl PartialEq for TlsConfig {
    /// Two configurations are equal when they are the same `Arc`.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Client(a), Self::Client(b)) => Arc::ptr_eq(a, b),
            (Self::Server(a), Self::Server(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for TlsConfig {}

/// The negotiated cipher, as asyncio's `cipher` extra info answers it:
/// `(name, protocol version, secret bits)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cipher {
    /// The IANA name `rustls` gives the suite, e.g.
    /// `"TLS13_AES_256_GCM_SHA384"`.
    pub name: &'static str,
    /// The protocol version as OpenSSL names it: `"TLSv1.2"` or `"TLSv1.3"`.
    pub version: &'static str,
    /// The symmetric key's size in bits, e.g. 128 or 256.
    pub secret_bits: usize,
}

/// A TLS session's details, fixed when the handshake finished (asyncio's
/// `ssl_object` extra info, as typed accessors).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsInfo {
    server_side: bool,
    version: Option<ProtocolVersion>,
    suite: Option<SupportedCipherSuite>,
    peer_certificates: Vec<CertificateDer<'static>>,
    alpn_protocol: Option<Vec<u8>>,
    server_name: Option<String>,
    config: TlsConfig,
}

impl TlsInfo {
    /// The session of a client connection whose handshake has finished.
    /// `server_name` is the name the client sent (SNI) and verified, if any.
    pub fn client(
        conn: &ClientConnection,
        config: Arc<ClientConfig>,
        server_name: Option<String>,
    ) -> Self {
        Self::from_common(conn, server_name, TlsConfig::Client(config))
    }

    /// The session of a server connection whose handshake has finished.
    pub fn server(conn: &ServerConnection, config: Arc<ServerConfig>) -> Self {
        let sni = conn.server_name().map(str::to_owned);
        Self::from_common(conn, sni, TlsConfig::Server(config))
    }

    fn from_common(conn: &CommonState, server_name: Option<String>, config: TlsConfig) -> Self {
        Self {
            server_side: matches!(config, TlsConfig::Server(_)),
            version: conn.protocol_version(),
            suite: conn.negotiated_cipher_suite(),
            peer_certificates: conn
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
            alpn_protocol: conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            config,
        }
    }

    /// Whether this end is the TLS server (asyncio: `server_side`).
    pub fn is_server_side(&self) -> bool {
        self.server_side
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.suite
    }

    /// The suite, version and key size, as asyncio's `cipher` extra info.
    pub fn cipher(&self) -> Option<Cipher> {
        let suite = self.suite?;
        let secret_bits = 8 * match suite {
            SupportedCipherSuite::Tls13(s) => s.aead_alg.key_len(),
            SupportedCipherSuite::Tls12(s) => s.aead_alg.key_block_shape().enc_key_len,
        };
        Some(Cipher {
            name: suite.suite().as_str().unwrap_or("unknown"),
            version: version_name(suite.version().version),
            secret_bits,
        })
    }

    /// The peer's certificate chain as it was sent, leaf first (DER). Empty
    /// when the peer sent none (a client without a certificate).
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.peer_certificates
    }

    /// The peer's leaf certificate (asyncio's `peercert`, as DER instead of
    /// Python's dict).
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificates.first()
    }

    /// The protocol agreed by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn_protocol.as_deref()
    }

    /// The server name: on a client, the name it sent and verified; on a
    /// server, the name the client asked for (SNI), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The configuration the session was made with (asyncio's `sslcontext`).
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }
}

/// OpenSSL's name for a protocol version, as asyncio's `cipher()` shows it.
fn version_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}, {})", self.name, self.version, self.secret_bits)
    }
}
