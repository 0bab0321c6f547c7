//! Raw TLS peers: `tokio-rustls` streams the tests drive byte by byte.

use std::{net::SocketAddr, sync::Arc};

use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (
            Self {
                listener,
                acceptor: TlsAcceptor::from(Arc::clone(&pki.server_config())),
            },
            addr,
        )
    }

    pub(crate) async fn accept(&self) -> server::TlsStream<TcpStream> {
        let (tcp, _) = self.listener.accept().await.expect("accept");
        self.acceptor.accept(tcp).await.expect("server handshake")
    }
}
