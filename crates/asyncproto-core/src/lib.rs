//! The sans-IO core of [asyncproto]: Python asyncio's Transports and Protocols
//! for Rust.
//!
//! This crate has no Tokio, no sockets and no clock: bytes and events go in,
//! protocol callbacks and writes come out (as `quinn-proto` is to `quinn`).
//! It holds
//!
//! - the protocol traits, with asyncio's names: [`BaseProtocol`],
//!   [`Protocol`];
//! - the transport handle, [`Transport`], with asyncio's methods (`write`,
//!   `writelines`, `write_eof`, `close`, `abort`, `pause_reading`,
//!   `set_write_buffer_limits`, `get_extra_info`, …);
//! - the one state machine that orders callbacks for every transport,
//!   [`lifecycle::Connection`];
//! - write flow control, [`flow::WriteBuffer`];
//! - typed errors, [`Error`];
//! - an in-memory transport for testing protocols,
//!   [`testing::MemoryTransport`].
//!
//! Most users depend on the `asyncproto` facade, which re-exports this crate
//! together with the Tokio backend.
//!
//! # Example
//!
//! A protocol that answers each line, tested without sockets:
//!
//! ```
//! use asyncproto_core::testing::MemoryTransport;
//! use asyncproto_core::{BaseProtocol, Bytes, Protocol, Transport};
//!
//! #[derive(Default)]
//! struct Upper {
//!     transport: Option<Transport>,
//! }
//!
//! impl BaseProtocol for Upper {
//!     fn connection_made(&mut self, transport: Transport) {
//!         self.transport = Some(transport);
//!     }
//! }
//!
//! impl Protocol for Upper {
//!     fn data_received(&mut self, data: Bytes) {
//!         let t = self.transport.as_ref().unwrap();
//!         t.write(data.to_ascii_uppercase()).unwrap();
//!     }
//! }
//!
//! let mut t = MemoryTransport::new(Upper::default());
//! t.feed("hello");
//! assert_eq!(t.take_written(), "HELLO");
//! t.feed_eof(); // eof_received() returns false: the transport closes
//! assert!(t.is_closed());
//! ```
//!
//! # Why callbacks never re-enter
//!
//! asyncio calls `pause_writing()` from inside `write()`. In Rust the protocol
//! is mutably borrowed during its own callback, so a flow-control edge caused
//! by a write is delivered right after the callback that wrote returns, before
//! any other callback: `pause_writing` if the callback left more than the high
//! mark buffered (checked before the buffer is sent), then `resume_writing`
//! once sending brings it to the low mark. A producer therefore writes until
//! `get_write_buffer_size()` exceeds the high mark, returns, and goes on in
//! `resume_writing` — a `while not paused: write()` loop inside one callback
//! would never end. The migration guide lists this and every other difference
//! from asyncio.
//!
//! [asyncproto]: https://docs.rs/asyncproto

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod error;
pub mod extra_info;
pub mod flow;
pub mod lifecycle;
pub mod protocol;
mod sync;
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;

pub use bytes::Bytes;

pub use crate::{
    error::{Callback, Error},
    extra_info::{ExtraInfo, TransportInfo},
    protocol::{BaseProtocol, Buffered, BufferedProtocol, Protocol, StreamProtocol},
    transport::Transport,
};

#[cfg(feature = "tls")]
pub use crate::tls::TlsInfo;
#[cfg(unix)]
pub use crate::transport::SocketLike;
