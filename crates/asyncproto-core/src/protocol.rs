//! Protocol traits: the callbacks a transport calls.
//!
//! They mirror asyncio's classes and method names so a port reads line by
//! line. Callbacks are synchronous `fn(&mut self, ..)`: a protocol reacts to
//! bytes; it never awaits. A protocol that needs async work spawns a task with
//! a clone of its [`Transport`].
//!
//! # When each callback runs
//!
//! All callbacks of one connection run one at a time, in this order
//! (enforced by [`lifecycle`](crate::lifecycle) for every transport):
//!
//! ```text
//! connection_made → data_received* → eof_received? → connection_lost
//!                   (pause_writing / resume_writing anywhere in between)
//! ```

use bytes::Bytes;

use crate::{error::Error, transport::Transport};

/// The callbacks every protocol has (asyncio: `BaseProtocol`).
///
/// Every method has a default that does nothing, as in asyncio.
pub trait BaseProtocol: Send + 'static {
    /// Called once, first, when the connection is made.
    ///
    /// `transport` is a cheap, cloneable handle: store it to write later. No
    /// data is delivered before this returns, and a client's
    /// `create_connection` returns only after it has run.
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }

    /// Called exactly once, last, when the connection is closed.
    ///
    /// `exc` is `None` for a regular close (`close()`, `abort()`, or the peer's
    /// EOF when `eof_received` returned `false`), and the error otherwise: an
    /// I/O error such as a reset, or [`Error::ProtocolPanicked`] if a callback
    /// panicked. No callback follows it; the protocol is dropped (or handed
    /// back to a client) right after.
    fn connection_lost(&mut self, exc: Option<Error>) {
        let _ = exc;
    }

    /// Called when the transport's write buffer goes strictly over its
    /// high-water mark.
    ///
    /// asyncio calls this from inside `write()`. Here it runs right after the
    /// callback that wrote returns, before any other callback and before the
    /// buffer is sent; for writes from outside a callback, as soon as the
    /// connection's task sees them. So a protocol that writes until the
    /// buffer is over the high mark and then waits for `resume_writing` always
    /// gets both. Pauses and resumes alternate, starting with a pause.
    ///
    /// Unlike asyncio, a single callback that writes more than the high mark
    /// gets a pause even if the socket then takes it all (followed at once by
    /// `resume_writing`): asyncio's eager send happens inside `write()`, ours
    /// after the callback.
    fn pause_writing(&mut self) {}

    /// Called when the write buffer falls to its low-water mark or below after
    /// a [`pause_writing`](Self::pause_writing).
    fn resume_writing(&mut self) {}
}

/// A streaming protocol: bytes in, in order (asyncio: `Protocol`).
///
/// # Examples
///
/// ```
/// use asyncproto_core::{Bytes, Protocol, BaseProtocol, Transport};
///
/// /// Writes back every chunk it receives.
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
///
/// impl BaseProtocol for Echo {
///     fn connection_made(&mut self, transport: Transport) {
///         self.0 = Some(transport);
///     }
/// }
///
/// impl Protocol for Echo {
///     fn data_received(&mut self, data: Bytes) {
///         if let Some(t) = &self.0 {
///             // Ok unless we called write_eof(); nothing to do then.
///             let _ = t.write(data);
///         }
///     }
/// }
///
/// let mut t = asyncproto_core::testing::MemoryTransport::new(Echo::default());
/// t.feed("hi");
/// assert_eq!(t.take_written(), "hi");
/// ```
pub trait Protocol: BaseProtocol {
    /// Called with each chunk of bytes read; never with an empty chunk, never
    /// after [`eof_received`](Self::eof_received) or while reading is paused.
    ///
    /// Chunk boundaries carry no meaning: a protocol must buffer and parse.
    fn data_received(&mut self, data: Bytes) {
        let _ = data;
    }

    /// Called at most once, when the peer has closed its write side (EOF).
    ///
    /// Return `false` (the default) to close the transport: what is buffered
    /// is flushed, then `connection_lost(None)`. Return `true` to keep it
    /// half-open: nothing more is read, but the protocol can keep writing and
    /// must call `close()` itself.
    fn eof_received(&mut self) -> bool {
        false
    }
}
