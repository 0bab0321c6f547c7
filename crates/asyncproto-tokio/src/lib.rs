//! The Tokio backend of [asyncproto]: asyncio's event-loop entry points for
//! TCP — [`create_server`] and [`create_connection`] — running
//! [`asyncproto_core`] protocols, with TLS on `rustls` behind the `tls`
//! feature (`ConnectOptions::tls`, `ServerOptions::tls`, `start_tls`; see
//! the `tls` module for the semantics).
//!
//! One Tokio task per connection owns the socket and the protocol; it reads
//! into the protocol's `data_received`, drains the transport's write buffer
//! with vectored writes, and is woken when another task writes through a
//! clone of the [`Transport`](asyncproto_core::Transport) handle. All of a
//! connection's callbacks run on its task, one at a time, so a protocol needs
//! `Send`, never `Sync`.
//!
//! Most users depend on the `asyncproto` facade instead.
//!
//! # Example
//!
//! ```
//! use asyncproto_core::testing::{Event, Recorder};
//! use asyncproto_tokio::{create_connection, create_server, ConnectOptions, ServerOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A server whose protocol records what it gets, and closes on EOF.
//! let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new()).await?;
//! let addr = server.local_addrs()[0];
//!
//! let (transport, done) = create_connection(Recorder::default, addr, ConnectOptions::new()).await?;
//! transport.write("hello")?;
//! transport.write_eof()?; // half-close: the server's protocol closes on EOF
//! let client = done.await?;
//! assert_eq!(client.events(), [Event::Made, Event::Eof, Event::Lost(None)]);
//! server.close();
//! server.wait_closed().await;
//! # Ok(()) }
//! ```
//!
//! [asyncproto]: https://docs.rs/asyncproto

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod conn;
mod error;
mod server;
mod socket;
mod stream;
mod tcp;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

pub use crate::{
    conn::ProtocolHandle,
    error::Error,
    server::{ACCEPT_RETRY_DELAY, Server, ServerOptions, create_server},
    server::{create_server_on, create_server_with_sock},
    stream::{
        ConnectedSocket, connect_accepted_socket, connect_stream, create_connection_with_sock,
    },
    tcp::{ConnectOptions, create_connection},
    tcp::{ResolveFuture, Resolver, create_connection_to_host},
};

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use crate::tls::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, StartTls, TlsClientOptions,
    TlsServerOptions, TlsUpgrade, start_tls,
};

/// `rustls`, re-exported for building TLS configurations (feature `tls`).
#[cfg(feature = "tls")]
pub use rustls;
