//! Python asyncio's **Transports and Protocols**, for Rust, on Tokio.
//!
//! A *transport* decides how bytes move; a *protocol* decides which bytes
//! move. A protocol is a set of plain, synchronous callbacks —
//! `connection_made`, `data_received`, `eof_received`, `connection_lost`,
//! `pause_writing`, `resume_writing` — and the transport is a cheap handle it
//! stores and writes to. Method names are asyncio's, so an asyncio protocol
//! ports line by line (see `docs/migrating-from-asyncio.md`).
//!
//! This crate re-exports the sans-IO core ([`asyncproto_core`]) and the Tokio
//! backend ([`asyncproto_tokio`]).
//!
//! # Example: an echo server and a client
//!
//! ```
//! use asyncproto::{
//!     create_connection, create_server, BaseProtocol, Bytes, ConnectOptions, Protocol,
//!     ServerOptions, Transport,
//! };
//!
//! /// Server side: writes back what it receives; closes on EOF.
//! #[derive(Default)]
//! struct Echo(Option<Transport>);
//!
//! impl BaseProtocol for Echo {
//!     fn connection_made(&mut self, transport: Transport) {
//!         self.0 = Some(transport);
//!     }
//! }
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: Bytes) {
//!         let _ = self.0.as_ref().unwrap().write(data);
//!     }
//! }
//!
//! /// Client side: sends a message, half-closes, collects the reply.
//! #[derive(Default)]
//! struct Client {
//!     reply: Vec<u8>,
//! }
//!
//! impl BaseProtocol for Client {
//!     fn connection_made(&mut self, transport: Transport) {
//!         transport.write("Hello World!").unwrap();
//!         transport.write_eof().unwrap();
//!     }
//! }
//!
//! impl Protocol for Client {
//!     fn data_received(&mut self, data: Bytes) {
//!         self.reply.extend_from_slice(&data);
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = create_server(Echo::default, "127.0.0.1:0", ServerOptions::new()).await?;
//! let addr = server.local_addrs()[0];
//!
//! let (_transport, done) = create_connection(Client::default, addr, ConnectOptions::new()).await?;
//! let client = done.await?; // resolves after connection_lost
//! assert_eq!(client.reply, b"Hello World!");
//!
//! server.close();
//! server.wait_closed().await;
//! # Ok(()) }
//! ```
//!
//! # Crates and features
//!
//! | crate | what |
//! |---|---|
//! | `asyncproto-core` | traits, state machine, flow control, in-memory transport; no I/O |
//! | `asyncproto-tokio` | the Tokio backend: TCP clients and servers, existing sockets (TCP and Unix), any `AsyncRead + AsyncWrite` |
//! | `asyncproto` | this facade |
//!
//! | feature | adds |
//! |---|---|
//! | `tls` | TLS on `rustls` (ring provider): [`ConnectOptions::tls`], [`ServerOptions::tls`], [`start_tls`], [`Transport::tls`] and the TLS `get_extra_info` keys |
//!
//! Features add API and never change a default; none is on by default.
//! UDP, pipes and subprocesses will come the same way.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub use asyncproto_core::{
    BaseProtocol, Buffered, BufferedProtocol, Bytes, Callback, Error, ExtraInfo, Protocol,
    StreamProtocol, Transport, TransportInfo, extra_info, flow, lifecycle, testing,
};
/// Errors from `create_server`, `create_connection` and the [`Server`]
/// (the backend's [`asyncproto_tokio::Error`]).
pub use asyncproto_tokio::Error as CreateError;
pub use asyncproto_tokio::{
    ACCEPT_RETRY_DELAY, ConnectOptions, ConnectedSocket, ProtocolHandle, ResolveFuture, Resolver,
    Server, ServerOptions, connect_accepted_socket, connect_stream, create_connection,
    create_connection_to_host, create_connection_with_sock, create_server, create_server_on,
    create_server_with_sock,
};

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use asyncproto_core::{TlsInfo, tls};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use asyncproto_tokio::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, StartTls, TlsClientOptions,
    TlsServerOptions, TlsUpgrade, rustls, start_tls,
};

/// The sans-IO core, re-exported whole.
pub use asyncproto_core as core;
/// The Tokio backend, re-exported whole.
pub use asyncproto_tokio as backend;

/// The README's Rust example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
