//! Test tools for asyncproto's reliability harness.
//!
//! [`FaultProxy`] is a TCP proxy on `127.0.0.1` that sits between a client and
//! a server and misbehaves on purpose, as a congested or broken network
//! would: it delays, splits, coalesces or stalls the byte stream, half-closes
//! it, cuts it or resets it (see [`Fault`]). Tests run a protocol through it
//! and check what was promised still holds: no byte lost, duplicated or
//! reordered where delivery was promised, and the right `connection_lost`
//! where it was not.
//!
//! [`tls::TestPki`] makes a throw-away certificate authority, a server
//! certificate for `localhost`, `127.0.0.1` and `::1`, and a client
//! certificate, with `rustls` configurations for both ends; nothing is read
//! from or committed to disk.
//!
//! Loopback only; the crate is not published.
//!
//! # Examples
//!
//! ```
//! use asyncproto_testkit::{Fault, FaultProxy};
//! use tokio::{io::{AsyncReadExt, AsyncWriteExt}, net::{TcpListener, TcpStream}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // An upstream that writes back what it reads.
//! let upstream = TcpListener::bind("127.0.0.1:0").await?;
//! let upstream_addr = upstream.local_addr()?;
//! tokio::spawn(async move {
//!     let (mut s, _) = upstream.accept().await?;
//!     let (mut r, mut w) = s.split();
//!     tokio::io::copy(&mut r, &mut w).await?;
//!     std::io::Result::Ok(())
//! });
//!
//! // Every chunk goes through one byte at a time.
//! let proxy = FaultProxy::start(upstream_addr, Fault::SplitBytes)?;
//! let mut client = TcpStream::connect(proxy.addr()).await?;
//! client.write_all(b"hello").await?;
//! client.shutdown().await?;
//! let mut echo = Vec::new();
//! client.read_to_end(&mut echo).await?;
//! assert_eq!(echo, b"hello");
//! proxy.wait_idle().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod proxy;
pub mod tls;

pub use crate::proxy::{DRAIN_TIMEOUT, Direction, Fault, FaultProxy};
