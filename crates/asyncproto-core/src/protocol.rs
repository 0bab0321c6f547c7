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
    ///
    /// `data` is split off the read buffer it was read into, without a copy:
    /// writing it back or dropping it is free, and keeping it keeps that
    /// buffer's allocation alive until it is dropped. Copy a small piece
    /// kept for long (`Bytes::copy_from_slice`), as with `tokio-util`'s
    /// codecs.
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

/// A streaming protocol that manages its own receive buffer (asyncio:
/// `BufferedProtocol`): the transport reads straight into the buffer the
/// protocol lends it, with no intermediate copy.
///
/// Run one by wrapping it in [`Buffered`] where a protocol is expected (e.g.
/// `create_server(|| Buffered(MyProto::new()), ..)`).
///
/// # Examples
///
/// ```
/// use asyncproto_core::testing::MemoryTransport;
/// use asyncproto_core::{BaseProtocol, Buffered, BufferedProtocol};
///
/// /// Counts bytes through a fixed 4-byte buffer, allocated once.
/// struct Count { buf: [u8; 4], total: usize, calls: Vec<usize> }
///
/// impl BaseProtocol for Count {}
///
/// impl BufferedProtocol for Count {
///     fn get_buffer(&mut self, _sizehint: Option<usize>) -> &mut [u8] {
///         &mut self.buf
///     }
///     fn buffer_updated(&mut self, nbytes: usize) {
///         self.total += nbytes;
///         self.calls.push(nbytes);
///     }
/// }
///
/// let mut t = MemoryTransport::new(Buffered(Count { buf: [0; 4], total: 0, calls: vec![] }));
/// t.feed("0123456789");
/// assert_eq!(t.protocol().0.calls, [4, 4, 2]); // asyncio's example, exactly
/// ```
pub trait BufferedProtocol: BaseProtocol {
    /// Called to get the buffer the next read goes into.
    ///
    /// `sizehint` is how many bytes are expected, if the transport knows
    /// (`None` is asyncio's `-1`: any size; sockets always pass `None`). The
    /// returned buffer may be any non-empty size; an empty one is a fatal
    /// [`Error::EmptyBuffer`] (asyncio: `RuntimeError('get_buffer() returned
    /// an empty buffer')`). A `get_buffer` may go unanswered by a
    /// `buffer_updated` if nothing was ready to read.
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8];

    /// Called after `nbytes` (never 0, at most the buffer's length) were
    /// written into the buffer from the last [`get_buffer`](Self::get_buffer).
    fn buffer_updated(&mut self, nbytes: usize);

    /// As [`Protocol::eof_received`]: return `false` (the default) to close
    /// the transport, `true` to keep it half-open.
    fn eof_received(&mut self) -> bool {
        false
    }
}

/// Runs a [`BufferedProtocol`] where a stream protocol is expected.
///
/// `Buffered(p)` implements [`StreamProtocol`], so it can be given to
/// `create_server`, `create_connection` and
/// [`MemoryTransport`](crate::testing::MemoryTransport). The wrapped protocol
/// is field `.0`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Buffered<P>(pub P);

impl<P: BufferedProtocol> BaseProtocol for Buffered<P> {
    fn connection_made(&mut self, transport: Transport) {
        self.0.connection_made(transport);
    }
    fn connection_lost(&mut self, exc: Option<Error>) {
        self.0.connection_lost(exc);
    }
    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }
}

/// How a stream transport hands bytes to a protocol: the bound every stream
/// entry point takes.
///
/// Implemented for every [`Protocol`] (bytes arrive as [`Bytes`] in
/// `data_received`) and for [`Buffered`]`<P>` for every [`BufferedProtocol`]
/// (bytes are read into the protocol's own buffer). There is nothing to
/// implement by hand.
pub trait StreamProtocol: BaseProtocol {
    /// The receive path this protocol uses.
    #[doc(hidden)]
    fn receiver(&mut self) -> Receiver<'_>;
}

/// The receive path of a [`StreamProtocol`]; used by the connection state
/// machine.
#[doc(hidden)]
#[derive(Debug)]
pub enum Receiver<'a> {
    /// `data_received(Bytes)` and `eof_received`.
    Data(&'a mut dyn DataReceiver),
    /// `get_buffer`, `buffer_updated` and `eof_received`.
    Buffer(&'a mut dyn BufferReceiver),
}

/// Object-safe view of a [`Protocol`]'s receive callbacks.
#[doc(hidden)]
pub trait DataReceiver {
    /// `data_received`.
    fn data_received(&mut self, data: Bytes);
    /// `eof_received`.
    fn eof_received(&mut self) -> bool;
}

/// Object-safe view of a [`BufferedProtocol`]'s receive callbacks.
#[doc(hidden)]
pub trait BufferReceiver {
    /// `get_buffer`.
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8];
    /// `buffer_updated`.
    fn buffer_updated(&mut self, nbytes: usize);
    /// `eof_received`.
    fn eof_received(&mut self) -> bool;
}

impl std::fmt::Debug for dyn DataReceiver + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataReceiver")
    }
}

impl std::fmt::Debug for dyn BufferReceiver + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BufferReceiver")
    }
}

impl<P: Protocol> DataReceiver for P {
    fn data_received(&mut self, data: Bytes) {
        Protocol::data_received(self, data);
    }
    fn eof_received(&mut self) -> bool {
        Protocol::eof_received(self)
    }
}

impl<P: BufferedProtocol> BufferReceiver for P {
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8] {
        BufferedProtocol::get_buffer(self, sizehint)
    }
    fn buffer_updated(&mut self, nbytes: usize) {
        BufferedProtocol::buffer_updated(self, nbytes);
    }
    fn eof_received(&mut self) -> bool {
        BufferedProtocol::eof_received(self)
    }
}

impl<P: Protocol> StreamProtocol for P {
    fn receiver(&mut self) -> Receiver<'_> {
        Receiver::Data(self)
    }
}

impl<P: BufferedProtocol> StreamProtocol for Buffered<P> {
    fn receiver(&mut self) -> Receiver<'_> {
        Receiver::Buffer(&mut self.0)
    }
}
